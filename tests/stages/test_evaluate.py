"""Stage evaluate called with explicit Inputs / Outputs on a tiny canonical split: CSVs,
failures, renders, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import gt_layout, pred_layout
from PIL import Image

from gsdf.eval import evaluate as evaluate_module
from gsdf.eval.evaluate import EvaluationError
from gsdf.stages import evaluate


def _run(layout, threads=2, train_annotations=None, **params):
    out = layout.root / "gsdf_synth"
    renders = tuple(out / "renders" / f"{w}.png" for w in ("best", "median", "worst"))
    pred = pred_layout(layout, "gsdf")
    inputs = evaluate.Inputs(
        gt_layout(layout).root, (layout.dataset_shard(dataset="synth", split="test", shard=0),),
        (layout.recon_shard(exp="gsdf", dataset="synth", shard=0),), pred.meshes_dir,
        pred.poses_dir, train_annotations)
    outputs = evaluate.Outputs(out / "metrics_per_sample.csv", out / "metrics.csv", renders,
                               out / "renders" / "gallery.png")
    params = {"evaluate": {"num_points": 20000, **params}, "experiment": {"name": "gsdf"},
              "dataset": {"name": "synth"}}
    summary = evaluate.run(inputs, outputs, params, threads=threads)
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


def test_parallel_and_serial_agree(split_with_predictions):
    layout, _ = split_with_predictions
    serial = _run(layout, threads=1)[1]
    parallel = _run(layout, threads=3)[1]
    pd.testing.assert_frame_equal(serial, parallel)


def test_empty_split_is_a_clear_error(tmp_path, make_split):
    layout = make_split(tmp_path / "results", [])
    with pytest.raises(EvaluationError, match="empty"):
        _run(layout)


def test_evaluate_reports_the_root_error_and_the_unsolved_roots(split_with_predictions):
    """metrics column root_err_cm = |pose root - annotated wrist| (cm), NaN without a root;
    a no_root sample's reason names it."""
    layout, ids = split_with_predictions
    path = pred_layout(layout, "gsdf").pose(ids[0])
    pose = json.loads(path.read_text())
    wrist = np.asarray(json.loads(gt_layout(layout).meta(ids[0]).read_text()
                                  )["hand_joints_3d"][0])
    path.write_text(json.dumps({**pose, "root": (wrist + [0.03, 0.0, 0.04]).tolist()}))
    recon = layout.recon_shard(exp="gsdf", dataset="synth", shard=0)
    manifest = json.loads(recon.read_text())
    recon.write_text(json.dumps({**manifest, "no_root": [{"id": ids[3], "reason": "degenerate"}]}))
    summary, per_sample, _ = _run(layout, threads=1, num_points=2000, contact=False)
    per_sample = per_sample.set_index("id")
    assert per_sample.loc[ids[0], "root_err_cm"] == pytest.approx(5.0)
    assert np.isnan(per_sample.loc[ids[1], "root_err_cm"])
    assert per_sample.loc[ids[3], "reason"].startswith("root not solved (degenerate)")
    assert summary.loc[0, "root_err_cm_median"] == pytest.approx(5.0)


def test_samples_skipped_upstream_fail_with_the_reason_and_are_never_scored(
        split_with_predictions):
    """#25 item 2: an older prediction left for a sample skipped upstream is not scored."""
    layout, ids = split_with_predictions
    recon = layout.recon_shard(exp="gsdf", dataset="synth", shard=0)
    manifest = json.loads(recon.read_text())
    manifest["done"].remove(ids[0])  # ids[0] keeps its (good, old) prediction files
    manifest["missing"] = [ids[0]]
    manifest["skipped_upstream"] = [{"id": ids[0], "reason": "rgb.jpg: image does not decode"}]
    recon.write_text(json.dumps(manifest))
    assert pred_layout(layout, "gsdf").mesh("hand", ids[0]).exists()
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
    gt = gt_layout(layout)
    for kind in ("mesh_hand", "mesh_obj", "meta"):
        shutil.rmtree(gt.folder(kind))
    with pytest.raises(EvaluationError, match="no ground truth of any test sample"):
        _run(layout)


def _train_annotations(layout, joints: list[np.ndarray]):
    """A packed training split's annotations.json holding ``joints`` (the pack format)."""
    from gsdf.data.pack import ANNOTATIONS_FORMAT

    path = layout.annotations(dataset="synth", split="train")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "info": {"format": ANNOTATIONS_FORMAT, "count": len(joints)},
        "images": [{"id": k} for k in range(len(joints))],
        "annotations": [{"hand_joints_3d": j.tolist()} for j in joints]}))
    return path


def test_pose_network_error_mean_pose_baseline_and_view_extents(split_with_predictions):
    """The diagnostic columns, by hand: the fixture's predicted joints are the true ones, and
    its hands' joints lie on the optical axis (K = identity); a training split whose hands hold
    the same joints 1 cm to the side (x) puts the mean-pose baseline 1 cm off in 3D, 0 in depth
    and 0.01 / z pixels in the image. The scaled prediction (1.1x about the camera, shifted)
    has 1.1x the extents of the truth, the others 1x."""
    layout, ids = split_with_predictions
    truth = np.asarray(json.loads(gt_layout(layout).meta(ids[0]).read_text())["hand_joints_3d"])
    side = truth + np.r_[[[0.0, 0.0, 0.0]], np.tile([0.01, 0.0, 0.0], (20, 1))]
    annotations = _train_annotations(layout, [side, side + [0.0, 0.2, 0.0]])  # offsets equal
    summary, per_sample, _ = _run(layout, threads=1, train_annotations=annotations,
                                  contact=False)
    by_id = per_sample.set_index("id")
    for sid in ids[:3]:  # the ones with a readable pose file and hand mesh
        row = by_id.loc[sid]
        assert (row["pose_err_cm"], row["pose_err_px"], row["pose_err_depth_cm"]) == (0, 0, 0)
        assert row["mean_pose_err_cm"] == pytest.approx(1.0)
        assert row["mean_pose_err_depth_cm"] == pytest.approx(0.0, abs=1e-9)
        # (the CSV keeps 6 significant digits)
        assert row["mean_pose_err_px"] == pytest.approx(np.mean(0.01 / truth[1:, 2]), rel=1e-5)
    for sid, ratio in ((ids[0], 1.0), (ids[1], 1.1)):
        for column in ("depth_ratio_hand", "lateral_ratio_hand", "depth_ratio_obj",
                       "lateral_ratio_obj"):
            assert by_id.loc[sid, column] == pytest.approx(ratio, rel=0.02), (sid, column)
    assert np.isnan(by_id.loc[ids[2], "depth_ratio_obj"])  # no object mesh
    assert np.isfinite(by_id.loc[ids[2], "depth_ratio_hand"])
    assert summary.loc[0, "mean_pose_err_cm_median"] == pytest.approx(1.0)
    assert summary.loc[0, "depth_ratio_hand_n"] == 3
    # without the training split: no baseline, the rest unchanged
    _, without, _ = _run(layout, threads=1, contact=False)
    assert without["mean_pose_err_cm"].isna().all()
    pd.testing.assert_frame_equal(without.drop(columns=list(evaluate_module.MEAN_POSE_COLUMNS)),
                                  per_sample.drop(columns=list(evaluate_module.MEAN_POSE_COLUMNS)))


def test_the_paper_columns_come_first_in_their_order(split_with_predictions):
    layout, _ = split_with_predictions
    summary, per_sample, _ = _run(layout, threads=1, num_points=2000, contact=False)
    paper = ["chamfer_hand_cm2", "fscore_hand_1mm", "fscore_hand_5mm", "chamfer_obj_cm2",
             "fscore_obj_5mm", "fscore_obj_10mm", "hand_joint_err_cm", "obj_center_err_cm",
             "obj_corner_err_cm", "penetration_depth_cm", "intersection_volume_cm3", "contact",
             "icp_scale", "root_err_cm"]
    assert list(per_sample.columns[:3 + len(paper)]) == ["id", "failed", "reason", *paper]
    assert list(per_sample.columns[3 + len(paper):]) == list(
        evaluate_module.METRICS[len(paper):])
