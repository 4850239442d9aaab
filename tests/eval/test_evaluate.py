"""The evaluate stage on a tiny canonical split: CSVs, failures, renders, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gsdf.eval.evaluate import EvalConfig, EvaluationError, evaluate_sample, run_evaluate
from gsdf.eval.evaluate import sample_paths as make_paths
from gsdf.eval.render import gallery_ids


def _run(layout, threads=2, **params):
    root = layout.root
    out = root / "gsdf_synth"
    renders = [out / "renders" / f"{w}.png" for w in ("best", "median", "worst")]
    summary = run_evaluate(
        root, "gsdf", "synth",
        [layout.dataset_shard(dataset="synth", split="test", shard=0)],
        [layout.recon_shard(exp="gsdf", dataset="synth", shard=0)],
        {"evaluate": {"num_points": 20000, **params}},
        out / "metrics_per_sample.csv", out / "metrics.csv", renders, threads=threads,
        gallery=out / "renders" / "gallery.png")
    return summary, pd.read_csv(out / "metrics_per_sample.csv"), renders


def test_evaluate_writes_metrics_counts_failures_and_renders(split_with_predictions):
    layout, ids = split_with_predictions
    summary, per_sample, renders = _run(layout)
    written = pd.read_csv(layout.metrics(exp="gsdf", dataset="synth"))
    assert written.loc[0, "num_samples"] == 4
    assert written.loc[0, "num_evaluated"] == 2 and written.loc[0, "num_failed"] == 2
    assert written.loc[0, "num_no_surface"] == 1
    by_id = per_sample.set_index("id")
    # the perfect and the scaled + shifted prediction are both aligned back by the ICP
    for sid in ids[:2]:
        assert by_id.loc[sid, "chamfer_hand_cm2"] < 0.01
        assert by_id.loc[sid, "fscore_hand_5mm"] == pytest.approx(1.0)
        assert by_id.loc[sid, "fscore_obj_10mm"] == pytest.approx(1.0)
        assert by_id.loc[sid, "hand_joint_err_cm"] == pytest.approx(0.0)
        assert by_id.loc[sid, "obj_center_err_cm"] == pytest.approx(1.0)
        assert not by_id.loc[sid, "failed"]
    assert by_id.loc[ids[1], "icp_scale"] == pytest.approx(1 / 1.1, rel=0.01)
    # the capsule touches the sphere (shared tangent region): contact metrics are computed
    assert by_id.loc[ids[0], "contact"] in (0.0, 1.0)
    # missing object mesh: hand metrics still computed, sample failed with the reason
    assert by_id.loc[ids[2], "failed"] and "object mesh" in by_id.loc[ids[2], "reason"]
    assert "no zero crossing" in by_id.loc[ids[2], "reason"]
    assert np.isfinite(by_id.loc[ids[2], "chamfer_hand_cm2"])
    assert np.isnan(by_id.loc[ids[2], "chamfer_obj_cm2"])
    # corrupt hand PLY is reported and counted
    assert by_id.loc[ids[3], "failed"] and "hand mesh" in by_id.loc[ids[3], "reason"]
    assert written.loc[0, "chamfer_hand_cm2_n"] == 3
    assert {"chamfer_hand_cm2_mean", "chamfer_hand_cm2_median", "fscore_obj_5mm_mean",
            "hand_joint_err_cm_mean", "penetration_depth_cm_mean"} <= set(written.columns)
    for png in renders:
        image = Image.open(png)
        assert image.width == 5 * 256 and image.height > 256
    # the gallery: one 192 px row (+ 20 px title) per sample with a hand Chamfer (3 here)
    gallery = Image.open(layout.root / "gsdf_synth" / "renders" / "gallery.png")
    assert gallery.size == (5 * 192, 3 * (192 + 20))


def test_gallery_ids_spread_over_the_ranking():
    frame = pd.DataFrame({"id": [f"s{i:02d}" for i in range(13)],
                          "chamfer_hand_cm2": [float(12 - i) for i in range(12)] + [np.nan]})
    picked = gallery_ids(frame, rows=6)
    # 12 valid samples, best (lowest CD: s11) first; quantiles 1/12, 3/12, ... 11/12
    assert [q for q, _ in picked] == pytest.approx([(i + 0.5) / 6 for i in range(6)])
    assert [sid for _, sid in picked] == ["s10", "s08", "s06", "s04", "s02", "s00"]
    assert len(gallery_ids(frame.iloc[:2], rows=6)) == 2
    assert gallery_ids(frame.iloc[12:], rows=6) == []


def test_parallel_and_serial_agree(split_with_predictions):
    layout, _ = split_with_predictions
    serial = _run(layout, threads=1)[1]
    parallel = _run(layout, threads=3)[1]
    pd.testing.assert_frame_equal(serial, parallel)


def test_missing_pose_is_a_failure(split_with_predictions):
    layout, ids = split_with_predictions
    layout.pose_pred(exp="gsdf", dataset="synth", id=ids[0]).unlink()
    paths = make_paths(layout, "gsdf", "synth", ids[:1])[0]
    row = evaluate_sample(paths, EvalConfig(num_points=5000, contact=False))
    assert row["failed"] and "pose" in row["reason"]
    assert np.isfinite(row["chamfer_hand_cm2"])


def test_empty_split_is_a_clear_error(tmp_path, make_split):
    layout = make_split(tmp_path / "results", [])
    with pytest.raises(EvaluationError, match="empty"):
        _run(layout)


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


def test_samples_skipped_upstream_fail_with_the_reason_and_are_never_scored(
        split_with_predictions):
    """#25 item 2: an older prediction left for a sample skipped upstream is not scored."""
    import json

    layout, ids = split_with_predictions
    recon = layout.recon_shard(exp="gsdf", dataset="synth", shard=0)
    manifest = json.loads(recon.read_text())
    manifest["done"].remove(ids[0])  # ids[0] keeps its (good, old) prediction files
    manifest["missing"] = [ids[0]]
    manifest["skipped_upstream"] = [{"id": ids[0], "reason": "rgb.jpg: image does not decode"}]
    recon.write_text(json.dumps(manifest))
    assert layout.mesh_hand(exp="gsdf", dataset="synth", id=ids[0]).exists()
    summary, per_sample, _ = _run(layout)
    by_id = per_sample.set_index("id")
    assert list(per_sample["id"]) == ids  # test-split order kept
    assert by_id.loc[ids[0], "failed"]
    assert by_id.loc[ids[0], "reason"] == "skipped upstream: rgb.jpg: image does not decode"
    assert np.isnan(by_id.loc[ids[0], "chamfer_hand_cm2"])
    assert np.isnan(by_id.loc[ids[0], "hand_joint_err_cm"])
    written = pd.read_csv(layout.metrics(exp="gsdf", dataset="synth")).iloc[0]
    assert (written["num_samples"], written["num_evaluated"], written["num_failed"],
            written["num_skipped_upstream"]) == (4, 1, 2, 1)
    assert written["chamfer_hand_cm2_n"] == 2


def test_every_ground_truth_missing_is_an_error(split_with_predictions):
    import shutil

    layout, _ = split_with_predictions
    shutil.rmtree(layout.split_dir(dataset="synth", split="test") / "mesh_hand")
    shutil.rmtree(layout.split_dir(dataset="synth", split="test") / "mesh_obj")
    shutil.rmtree(layout.split_dir(dataset="synth", split="test") / "meta")
    with pytest.raises(EvaluationError, match="no ground truth of any test sample"):
        _run(layout)
