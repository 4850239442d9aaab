"""Stage synth called with explicit Inputs / Outputs: the settings it depends on (the hand
asset, the sharding) must reach it from the params, never from a silent default."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsdf.config import ConfigError
from gsdf.geometry.mesh_io import load_mesh
from gsdf.paths import SplitLayout
from gsdf.stages import synth

SYNTH = {"seed": 7, "num_train_sequences": 1, "num_test_sequences": 1,
         "frames_per_sequence": [1, 1]}


def _run(tmp_path, name: str, hand: dict | None, num_shards: int | None = 1) -> SplitLayout:
    split_dir = tmp_path / name / "train"
    params = {"synth": SYNTH, "dataset": {} if num_shards is None else {"num_shards": num_shards}}
    if hand is not None:
        params["hand"] = hand
    synth.run(synth.Inputs("train", 0), synth.Outputs(split_dir, split_dir / "manifest.json"),
              params, progress=False)
    return SplitLayout(split_dir)


def test_the_hand_asset_of_the_params_makes_the_data(tmp_path):
    """Two procedural hands (seeds 0 and 5): different hand meshes, each recorded."""
    layouts = [_run(tmp_path, f"h{seed}", {"asset": "procedural", "seed": seed})
               for seed in (0, 5)]
    ids = [layout.ids() for layout in layouts]
    assert ids[0] == ids[1] == ["000000_000"]
    meshes = [load_mesh(layout.mesh("hand", ids[0][0])) for layout in layouts]
    assert len(meshes[0].vertices) == len(meshes[1].vertices)
    assert np.abs(meshes[0].vertices - meshes[1].vertices).max() > 1e-4
    for layout, seed in zip(layouts, (0, 5), strict=True):
        record = json.loads((layout.root / "manifest.json").read_text())
        assert record["config"]["hand"] == {"asset": "procedural", "seed": seed}
        assert record["ids"] == ids[0]


def test_missing_hand_or_sharding_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="hand"):
        _run(tmp_path, "nohand", None)
    with pytest.raises(ConfigError, match="num_shards"):
        _run(tmp_path, "noshards", {"asset": "procedural", "seed": 0}, num_shards=None)


def test_contact_sheet_reads_the_split_it_is_given(tmp_path):
    layout = _run(tmp_path, "sheet", {"asset": "procedural", "seed": 0})
    png = tmp_path / "sheet.png"
    shown = synth.run_contact_sheet(synth.ContactSheetInputs(layout.root),
                                    synth.ContactSheetOutputs(png), num=4)
    assert shown == layout.ids() and png.stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="synth stage"):
        synth.run_contact_sheet(synth.ContactSheetInputs(tmp_path / "empty"),
                                synth.ContactSheetOutputs(tmp_path / "x.png"))
