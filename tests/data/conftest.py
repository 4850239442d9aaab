"""Session fixture of issue 4: a packed split built from the toy samples of sdf_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sdf_fixtures import SMALL_PARAMS, write_split


@pytest.fixture(scope="session")
def packed_split(tmp_path_factory) -> Path:
    """A packed split (6 samples, 2 sequences of 3 frames): the folder with annotations.json."""
    from gsdf.data.pack import pack_split
    from gsdf.geometry.sdf import run_shard

    root = tmp_path_factory.mktemp("packed")
    split_dir = root / "datasets" / "synth" / "train"
    manifests = write_split(split_dir)
    shards = []
    for k, m in enumerate(manifests):
        out = root / "synth" / "sdf" / "train" / f"shard_{k:03d}.npz"
        run_shard(split_dir, m, out, out.with_suffix(".csv"), SMALL_PARAMS, progress=False)
        shards.append(out)
    packed = root / "synth" / "train"
    pack_split(split_dir, manifests, shards, packed / "annotations.json", packed / "rgb.lmdb",
               packed / "sdf_hand.lmdb", packed / "sdf_obj.lmdb", SMALL_PARAMS, progress=False)
    return packed
