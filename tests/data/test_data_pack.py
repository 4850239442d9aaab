"""The packed format and the LMDB readers: lossless round trip, counts, O(1) lookups,
concurrency (the stage's own checks: tests/stages/test_pack.py)."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from gsdf.data.lmdb_io import PackError, RGBReader, SDFReader, read_meta_info
from gsdf.data.pack import check_database, load_annotations
from gsdf.data.sdf_shard import load_shard


def test_round_trip_is_lossless(packed_split):
    root = packed_split.parents[1]
    split_dir = root / "datasets" / "synth" / "train"
    coco = load_annotations(packed_split)
    ids = [a["sample_id"] for a in coco["annotations"]]
    assert len(ids) == 6 and coco["info"]["count"] == 6 and coco["info"]["skipped"] == []
    # annotations carry every meta key unchanged
    for ann in coco["annotations"]:
        meta = json.loads((split_dir / "meta" / f"{ann['sample_id']}.json").read_text())
        for key, value in meta.items():
            assert ann[key] == value, key
    # images: the JPEG bytes, unchanged
    rgb = RGBReader(packed_split / "rgb.lmdb")
    for sid in ids:
        assert rgb.get_bytes(sid) == (split_dir / "rgb" / f"{sid}.jpg").read_bytes()
        assert rgb.get(sid).shape == (256, 256, 3)
    # SDF rows: exactly the shard's rows, counts match annotations
    readers = {w: SDFReader(packed_split / f"sdf_{w}.lmdb") for w in ("hand", "obj")}
    for k in range(2):
        shard = load_shard(root / "synth" / "sdf" / "train" / f"shard_{k:03d}.npz")
        for i, sid in enumerate(shard.ids):
            for which, reader in readers.items():
                s = shard.get(i, which)
                pos, neg = reader.get(sid)
                rows = np.concatenate([pos, neg])
                np.testing.assert_array_equal(rows[:, :5], s.data)
                np.testing.assert_array_equal(rows[:, 5], s.part)
                assert len(pos) == s.num_pos
                ann = coco["annotations"][ids.index(sid)]
                assert ann[f"sdf_{which}_num"] == [len(pos), len(neg)]
    for name in ("rgb.lmdb", "sdf_hand.lmdb", "sdf_obj.lmdb"):
        meta = check_database(packed_split, name, coco)
        assert meta["count"] == len(coco["annotations"]) == len(coco["images"])


class NoScanList(list):
    """A key list that fails if anything scans it."""

    def index(self, *a, **k):
        raise AssertionError("key lookup scanned the key list")

    def __iter__(self):
        raise AssertionError("key lookup iterated the key list")

    def __contains__(self, item):
        raise AssertionError("key lookup scanned the key list")


def test_key_lookup_does_not_scan_the_key_list(packed_split):
    reader = SDFReader(packed_split / "sdf_hand.lmdb")
    sid = reader.meta["keys"][-1]
    reader.meta["keys"] = NoScanList(reader.meta["keys"])
    pos, neg = reader.get(sid)
    assert len(pos) + len(neg) == 2000


def test_disagreeing_counts_are_a_clear_error(packed_split, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(packed_split, bad)
    meta_path = bad / "sdf_obj.lmdb" / "meta_info.json"
    meta = json.loads(meta_path.read_text())
    dropped = meta["keys"].pop()
    del meta["index"][dropped]
    meta["count"] -= 1
    meta["pos_num"].pop()
    meta["neg_num"].pop()
    meta_path.write_text(json.dumps(meta))
    coco = load_annotations(bad)
    with pytest.raises(PackError, match="rerun the pack stage"):
        check_database(bad, "sdf_obj.lmdb", coco)
    from gsdf.data import build_dataset

    with pytest.raises(PackError, match="sdf_obj.lmdb"):
        build_dataset(bad, kind="sdf", train=True)
    meta["count"] += 5
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(PackError, match="count"):
        read_meta_info(bad / "sdf_obj.lmdb")


def test_training_on_a_truncated_database_is_a_clear_error(packed_split, tmp_path):
    """#25 item 6: the training dataset refuses a truncated LMDB when it is built (before, a
    DataLoader worker died with SIGBUS)."""
    import os

    from gsdf.data import build_dataset

    bad = tmp_path / "bad"
    shutil.copytree(packed_split, bad)
    data = bad / "sdf_hand.lmdb" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(PackError, match=r"sdf_hand.lmdb: truncated .*rerun pack"):
        build_dataset(bad, kind="sdf", train=True)


class ReadAll(Dataset):
    def __init__(self, packed):
        self.rgb = RGBReader(packed / "rgb.lmdb")
        self.sdf = SDFReader(packed / "sdf_hand.lmdb")
        self.keys = list(self.rgb.meta["keys"]) * 4

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        import os

        pos, neg = self.sdf.get(self.keys[i])
        return {"pid": os.getpid(), "img": torch.from_numpy(self.rgb.get(self.keys[i])),
                "n": len(pos) + len(neg)}


def test_two_workers_read_concurrently(packed_split):
    ds = ReadAll(packed_split)
    ds.rgb.get(ds.keys[0])  # open in the parent first: workers must open their own
    loader = DataLoader(ds, batch_size=3, num_workers=2)
    pids, n = set(), 0
    for batch in loader:
        pids.update(batch["pid"].tolist())
        assert batch["img"].shape[1:] == (256, 256, 3)
        assert (batch["n"] == 2000).all()
        n += len(batch["n"])
    assert n == len(ds) and len(pids) == 2


def test_writer_sizes_its_map_and_commits_in_batches(tmp_path):
    from gsdf.data.lmdb_io import LMDBReader, map_size_for, write_lmdb

    values = [(f"k{i:03d}", np.random.default_rng(i).bytes(300_000 + i)) for i in range(40)]
    total = sum(len(v) for _, v in values)
    assert map_size_for(total, len(values)) < 3 * total + (70 << 20)
    meta = write_lmdb(tmp_path / "x.lmdb", iter(values), total, len(values),
                      {"format": "test"}, batch=7)
    assert meta["count"] == 40 and meta["index"]["k039"] == 39
    reader = LMDBReader(tmp_path / "x.lmdb", "test")
    assert all(reader.get_bytes(k) == v for k, v in values)
    with pytest.raises(PackError, match="duplicate"):
        write_lmdb(tmp_path / "y.lmdb", iter(values + values[:1]), total, 41, {}, batch=7)
    assert not (tmp_path / "y.lmdb").exists()
    assert not list(tmp_path.glob(".y.lmdb*"))  # the temporary folder is removed
