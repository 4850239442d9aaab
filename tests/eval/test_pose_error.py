"""gsdf.eval.pose_error against analytic expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.eval.pose_error import evaluate_split, joint_errors, mean_offsets

K = torch.tensor([[120.0, 0.0, 32.0], [0.0, 120.0, 32.0], [0.0, 0.0, 1.0]])


def _items(n: int = 5) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        joints = 0.05 * torch.randn(21, 3, generator=gen) + torch.tensor([0.0, 0.0, 0.5])
        items.append({"image": torch.zeros(3, 64, 64), "hand_joints_3d": joints, "cam_intr": K})
    return items


def test_exact_prediction_has_no_error_and_a_shift_has_its_length():
    items = _items()
    exact = evaluate_split(lambda b: b["hand_joints_3d"], items, 64)
    assert exact["joint_cm"] == pytest.approx(0.0, abs=1e-6)
    assert exact["samples"] == 5
    # 1 cm along the optical axis: depth error 1 cm, 3D error 1 cm
    shifted = evaluate_split(lambda b: b["hand_joints_3d"] + torch.tensor([0.0, 0.0, 0.01]),
                             items, 64)
    assert shifted["joint_cm"] == pytest.approx(1.0, rel=1e-4)
    assert shifted["depth_cm"] == pytest.approx(1.0, rel=1e-4)


def test_image_error_is_in_pixels_of_the_stored_crop():
    gt = torch.tensor([[0.0, 0.0, 0.5]]).repeat(1, 21, 1)  # (1, 21, 3) on the optical axis
    pred = gt + torch.tensor([0.005, 0.0, 0.0])  # 5 mm sideways at 0.5 m: 1.2 px at fx 120
    err = joint_errors(pred, gt, K[None], image_size=64)
    assert float(err[0, 1]) == pytest.approx(1.2 * 256 / 64, rel=1e-5)
    assert float(err[0, 2]) == pytest.approx(0.0, abs=1e-9)


def test_mean_pose_baseline():
    items = _items()
    anns = [{"hand_joints_3d": it["hand_joints_3d"].numpy()} for it in items]
    offsets = mean_offsets(anns)
    joints = np.stack([a["hand_joints_3d"] for a in anns])
    np.testing.assert_allclose(offsets, (joints - joints[:, :1]).mean(0), atol=1e-6)
    r = evaluate_split(lambda b: b["hand_joints_3d"], items, 64, offsets, max_samples=3)
    assert r["samples"] == 3 and r["joint_cm"] == pytest.approx(0.0, abs=1e-6)
    assert r["mean_pose_joint_cm"] > 1.0  # random joints are far from their mean
    with pytest.raises(ValueError, match="no samples"):
        evaluate_split(lambda b: b["hand_joints_3d"], [], 64)
    with pytest.raises(ValueError, match="training split"):
        mean_offsets([])
