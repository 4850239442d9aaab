"""Stage pack called with explicit Inputs / Outputs: bad samples skipped with reasons, each JPEG
read once, and the LMDB write batch (runtime) changes nothing in what is packed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sdf_fixtures import SMALL_PARAMS, write_split

from gsdf.config import ConfigError
from gsdf.data.lmdb_io import RGBReader, SDFReader
from gsdf.data.pack import check_database, load_annotations
from gsdf.data.skipped import read_skipped
from gsdf.stages import pack, sample_sdf


def _outputs(out: Path) -> pack.Outputs:
    return pack.Outputs(out / "annotations.json", out / "rgb.lmdb", out / "sdf_hand.lmdb",
                        out / "sdf_obj.lmdb", out / "skipped.csv")


def _split(tmp_path: Path, frames: int = 4) -> tuple[Path, list[Path], Path]:
    """A split of ``frames`` samples in one shard, sampled: (split_dir, manifests, SDF shard)."""
    split_dir = tmp_path / "datasets" / "synth" / "train"
    manifests = write_split(split_dir, videos=1, frames=frames, shards=1)
    sdf = tmp_path / "shard_000.npz"
    sample_sdf.run(sample_sdf.Inputs(split_dir, manifests[0]),
                   sample_sdf.Outputs(sdf, tmp_path / "skipped_000.csv"), SMALL_PARAMS,
                   progress=False)
    return split_dir, manifests, sdf


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pack"):
        load_annotations(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="synth/prepare"):
        pack.run(pack.Inputs(tmp_path / "nowhere", (), ()), _outputs(tmp_path), SMALL_PARAMS)


def test_missing_recon_scale_is_refused(tmp_path):
    split_dir, manifests, sdf = _split(tmp_path, frames=1)
    with pytest.raises(ConfigError, match="recon_scale"):
        pack.run(pack.Inputs(split_dir, tuple(manifests), (sdf,)), _outputs(tmp_path / "p"),
                 {"pack": {}, "dataset": {"name": "synth"}})


def test_bad_samples_are_skipped_with_reasons(tmp_path):
    split_dir = tmp_path / "datasets" / "synth" / "train"
    manifests = write_split(split_dir, videos=1, frames=4, shards=1)
    (split_dir / "mesh_obj" / "000000_001.ply").write_bytes(b"ply\ngarbage")  # unreadable
    sdf = tmp_path / "shard_000.npz"
    counts = sample_sdf.run(sample_sdf.Inputs(split_dir, manifests[0]),
                            sample_sdf.Outputs(sdf, tmp_path / "skipped.csv"), SMALL_PARAMS,
                            progress=False)
    assert counts == {"done": 3, "skipped": 1}
    (split_dir / "rgb" / "000000_002.jpg").write_bytes(b"not a jpeg")  # undecodable image
    meta = json.loads((split_dir / "meta" / "000000_003.json").read_text())
    del meta["cam_intr"]
    (split_dir / "meta" / "000000_003.json").write_text(json.dumps(meta))
    out = tmp_path / "packed"
    counts = pack.run(pack.Inputs(split_dir, tuple(manifests), (sdf,)), _outputs(out),
                      SMALL_PARAMS)
    assert counts == {"packed": 1, "skipped": 3}
    reasons = {r["id"]: r["reason"] for r in read_skipped(out / "skipped.csv")}
    assert "SDF" in reasons["000000_001"]
    assert "decodable" in reasons["000000_002"]
    assert "cam_intr" in reasons["000000_003"]
    coco = load_annotations(out)
    assert [a["sample_id"] for a in coco["annotations"]] == ["000000_000"]
    assert coco["images"][0]["file_name"] == "rgb/000000_000.jpg"
    assert len(coco["info"]["skipped"]) == 3
    for name in ("rgb.lmdb", "sdf_hand.lmdb", "sdf_obj.lmdb"):
        check_database(out, name, coco)


def test_each_jpeg_is_read_once(tmp_path, monkeypatch):
    split_dir, manifests, sdf = _split(tmp_path)
    reads: dict[str, int] = {}
    original = Path.read_bytes

    def counting(self):
        if self.suffix == ".jpg":
            reads[self.name] = reads.get(self.name, 0) + 1
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    pack.run(pack.Inputs(split_dir, tuple(manifests), (sdf,)), _outputs(tmp_path / "p"),
             SMALL_PARAMS)
    assert reads == {f"000000_{f:03d}.jpg": 1 for f in range(4)}


@pytest.mark.parametrize("encoding", ["jpeg", "raw"])
def test_write_batch_is_runtime_only(tmp_path, encoding):
    """batch 1 and batch 256 pack the same annotations and the same database values."""
    split_dir, manifests, sdf = _split(tmp_path)
    params = dict(SMALL_PARAMS, pack={"image_encoding": encoding})
    outs = []
    for batch in (1, 256):
        out = tmp_path / f"b{batch}"
        pack.run(pack.Inputs(split_dir, tuple(manifests), (sdf,)), _outputs(out), params,
                 batch=batch)
        outs.append(out)
    assert (outs[0] / "annotations.json").read_bytes() == \
        (outs[1] / "annotations.json").read_bytes()
    ids = [a["sample_id"] for a in load_annotations(outs[0])["annotations"]]
    assert len(ids) == 4
    rgb = [RGBReader(o / "rgb.lmdb") for o in outs]
    hand = [SDFReader(o / "sdf_hand.lmdb") for o in outs]
    for sid in ids:
        assert rgb[0].get_bytes(sid) == rgb[1].get_bytes(sid)
        for a, b in zip(hand[0].get(sid), hand[1].get(sid), strict=True):
            np.testing.assert_array_equal(a, b)
    if encoding == "raw":
        assert rgb[0].get(ids[0]).shape == (256, 256, 3)
    with pytest.raises(ValueError, match="--batch"):
        pack.run(pack.Inputs(split_dir, tuple(manifests), (sdf,)), _outputs(tmp_path / "x"),
                 params, batch=0)
