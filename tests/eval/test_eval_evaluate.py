"""Evaluation of one sample and the renders (the stage itself: tests/stages/test_evaluate.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import gt_layout, pred_layout

from gsdf.eval.evaluate import EvalConfig, evaluate_sample, sample_paths
from gsdf.eval.render import gallery_ids


def test_gallery_ids_spread_over_the_ranking():
    frame = pd.DataFrame({"id": [f"s{i:02d}" for i in range(13)],
                          "chamfer_hand_cm2": [float(12 - i) for i in range(12)] + [np.nan]})
    picked = gallery_ids(frame, rows=6)
    # 12 valid samples, best (lowest CD: s11) first; quantiles 1/12, 3/12, ... 11/12
    assert [q for q, _ in picked] == pytest.approx([(i + 0.5) / 6 for i in range(6)])
    assert [sid for _, sid in picked] == ["s10", "s08", "s06", "s04", "s02", "s00"]
    assert len(gallery_ids(frame.iloc[:2], rows=6)) == 2
    assert gallery_ids(frame.iloc[12:], rows=6) == []


def test_missing_pose_is_a_failure(split_with_predictions):
    layout, ids = split_with_predictions
    pred = pred_layout(layout, "gsdf")
    pred.pose(ids[0]).unlink()
    paths = sample_paths(gt_layout(layout), pred, ids[:1])[0]
    row = evaluate_sample(paths, EvalConfig(num_points=5000, contact=False))
    assert row["failed"] and "pose" in row["reason"]
    assert np.isfinite(row["chamfer_hand_cm2"])


def test_renders_draw_the_evaluated_component(tmp_path):
    """With keep_largest (evaluate's largest_component) a small floating piece of a predicted
    mesh is not drawn: the panel equals the one of the main piece alone."""
    import trimesh

    from gsdf.eval.render import sample_panel

    main = trimesh.creation.icosphere(2, radius=0.04)
    main.apply_translation((0.0, 0.0, 0.4))
    floater = trimesh.creation.icosphere(1, radius=0.005)
    floater.apply_translation((0.03, 0.06, 0.35))
    both = trimesh.util.concatenate([main, floater])
    paths = {}
    for name, mesh in (("main", main), ("both", both)):
        paths[name] = tmp_path / f"{name}.ply"
        mesh.export(paths[name])
    gt = (paths["main"], paths["main"])
    rgb = tmp_path / "missing.jpg"
    alone = np.asarray(sample_panel(rgb, gt, (paths["main"], paths["main"]), "t", 96))
    kept = np.asarray(sample_panel(rgb, gt, (paths["both"], paths["both"]), "t", 96,
                                   keep_largest=True))
    raw = np.asarray(sample_panel(rgb, gt, (paths["both"], paths["both"]), "t", 96))
    np.testing.assert_array_equal(kept, alone)
    assert not np.array_equal(raw, alone)
