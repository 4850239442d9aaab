from pathlib import Path

import pytest

from gsdf.paths import Layout


def test_pattern_and_path_agree():
    lay = Layout("res")
    assert lay.pattern("sdf_shard") == "res/{dataset}/sdf/{split}/shard_{shard}.npz"
    assert lay.sdf_shard(dataset="synth", split="train", shard=3) == Path(
        "res/synth/sdf/train/shard_003.npz")
    assert lay.metrics(exp="gsdf", dataset="obman") == Path("res/gsdf_obman/metrics.csv")


def test_missing_field_and_unknown_name():
    lay = Layout("res")
    with pytest.raises(ValueError, match="needs"):
        lay.path("sdf_shard", dataset="synth")
    with pytest.raises(KeyError, match="unknown artifact"):
        lay.pattern("nope")
