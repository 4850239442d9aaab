"""Evaluation of one sample and the renders (the stage itself: tests/stages/test_evaluate.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import gt_layout, pred_layout

from gsdf.eval.evaluate import EvalConfig, evaluate_sample, extent_ratios, sample_paths
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


def _cylinder_on_a_ray(height: float, radius: float = 0.02, scale: float = 1.0,
                       seed: int = 0) -> np.ndarray:
    """30,000 surface samples of a closed cylinder whose axis lies on the camera ray through
    (0.1, 0.05, 0.5) with its centre there, uniformly scaled by ``scale`` about that centre."""
    import trimesh

    centre = np.array([0.1, 0.05, 0.5])
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=128)  # axis z
    mesh.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], centre))
    mesh.apply_scale(scale)
    mesh.apply_translation(centre)
    return trimesh.sample.sample_surface(mesh, 30000, seed=seed)[0]


def test_view_extent_ratios_of_a_reconstruction_drawn_along_the_ray():
    """A closed cylinder along the ray, 4 cm long and 2 cm in radius: each cap holds 1/6 of the
    surface (2 pi r^2 of 2 pi r (h + r)), more than the 2.5% each end the depth extent drops,
    so the depth extent is the length; the side holds 2/3 > 95% - 1/3 of the points, all at
    the radius, so the lateral extent is the radius. Twice as long along the ray (caps 1/10
    each, side 4/5): depth ratio 2, lateral ratio 1; the whole thing 1.5x: both 1.5."""
    gt = _cylinder_on_a_ray(0.04)
    drawn = extent_ratios("obj", _cylinder_on_a_ray(0.08, seed=1), gt)
    assert drawn["depth_ratio_obj"] == pytest.approx(2.0, rel=0.01)
    assert drawn["lateral_ratio_obj"] == pytest.approx(1.0, rel=0.01)
    scaled = extent_ratios("hand", _cylinder_on_a_ray(0.04, scale=1.5, seed=2), gt)
    assert scaled == pytest.approx({"depth_ratio_hand": 1.5, "lateral_ratio_hand": 1.5},
                                   rel=0.01)
    same = extent_ratios("hand", _cylinder_on_a_ray(0.04, seed=3), gt)  # other samples
    assert same == pytest.approx({"depth_ratio_hand": 1.0, "lateral_ratio_hand": 1.0}, rel=0.01)
    flat = np.column_stack([np.zeros(100), np.zeros(100), np.full(100, 0.5)])  # one point
    assert np.isnan(extent_ratios("hand", gt, flat)["depth_ratio_hand"])
