"""gsdf.eval.pose_error against analytic expectations."""

from __future__ import annotations

import numpy as np
import pytest

from gsdf.eval.pose_error import mean_offsets, mean_pose, pose_errors

K = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])


def _hand(seed: int = 0) -> np.ndarray:
    """(21, 3) joints around 0.5 m in front of the camera."""
    rng = np.random.default_rng(seed)
    return 0.03 * rng.standard_normal((21, 3)) + [0.0, 0.0, 0.5]


def test_exact_prediction_has_no_error_and_the_wrist_is_not_scored():
    gt = _hand()
    assert pose_errors(gt, gt, K) == (0.0, 0.0, 0.0)
    pred = gt.copy()
    pred[0] += [0.1, 0.1, 0.1]  # the wrist is given to every model: not part of the error
    assert pose_errors(pred, gt, K) == (0.0, 0.0, 0.0)


def test_a_shift_along_the_optical_axis_is_depth_error():
    gt = np.tile([0.0, 0.0, 0.5], (21, 1))  # every joint on the optical axis
    pred = gt + [0.0, 0.0, 0.01]
    cm, px, depth = pose_errors(pred, gt, K)
    assert cm == pytest.approx(1.0) and depth == pytest.approx(1.0)
    assert px == pytest.approx(0.0, abs=1e-9)  # still projects onto the principal point


def test_a_sideways_shift_is_image_error_in_pixels():
    gt = np.tile([0.0, 0.0, 0.5], (21, 1))
    pred = gt + [0.005, 0.0, 0.0]  # 5 mm at 0.5 m with fx = 480 px: 4.8 px
    cm, px, depth = pose_errors(pred, gt, K)
    assert (cm, px, depth) == pytest.approx((0.5, 4.8, 0.0))


def test_mean_pose_baseline():
    train = [_hand(seed) for seed in range(5)]
    offsets = mean_offsets([{"hand_joints_3d": j.tolist()} for j in train])
    expected = np.mean([j - j[0] for j in train], axis=0)
    np.testing.assert_allclose(offsets, expected, atol=1e-12)
    # a test hand whose joints are the mean offsets + 2 cm in x from its wrist: baseline 2 cm
    gt = np.vstack([[0.01, 0.0, 0.5], [0.01, 0.0, 0.5] + offsets[1:] + [0.02, 0.0, 0.0]])
    np.testing.assert_allclose(mean_pose(gt, offsets)[0], gt[0])
    assert pose_errors(mean_pose(gt, offsets), gt, K)[0] == pytest.approx(2.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="training split"):
        mean_offsets([])
    with pytest.raises(ValueError, match=r"\(J, 3\)"):
        pose_errors(np.zeros((21, 3)), np.zeros((20, 3)), K)
