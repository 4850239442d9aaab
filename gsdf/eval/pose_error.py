"""Hand joint error of a pose estimate, next to the mean-pose baseline (pure functions).

The wrist is given to every model (the hand frame is centred on the annotated wrist, as in the
reference), so these errors are over the other 20 joints: the 3D error (cm), its image part
(pixels of the stored 256x256 crop, whose intrinsics the annotation holds) and its depth part
(cm). The baseline predicts, for every image, the mean wrist-relative joint offsets of the
training split: a pose network that does not beat it has learned nothing about the hand's
articulation.

The ``evaluate`` stage reports both per sample (columns ``pose_err_*`` and ``mean_pose_err_*``
of ``metrics_per_sample.csv``, their means and medians in ``metrics.csv``;
docs/architecture.md "Evaluation outputs").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

M_TO_CM = 100.0


def _project(points: np.ndarray, cam_intr: np.ndarray) -> np.ndarray:
    """(J, 3) camera metres, (3, 3) -> (J, 2) pixels."""
    uvw = points @ cam_intr.T
    return uvw[:, :2] / np.maximum(uvw[:, 2:3], 1e-9)


def pose_errors(pred: Sequence, gt: Sequence, cam_intr: Sequence) -> tuple[float, float, float]:
    """Mean errors over joints 1..20 of one sample.

    Args:
        pred, gt: (21, 3) joints, camera metres.
        cam_intr: (3, 3) intrinsics of the image the pixel error is measured in.

    Returns:
        ``(3D error cm, image error px, depth error cm)``.

    Raises:
        ValueError: the joint arrays differ in shape or are not (J, 3) with J >= 2.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 3 or len(pred) < 2:
        raise ValueError(f"joint arrays must both be (J, 3), J >= 2: {pred.shape} vs {gt.shape}")
    k = np.asarray(cam_intr, np.float64).reshape(3, 3)
    e3d = np.linalg.norm(pred[1:] - gt[1:], axis=1).mean()
    px = np.linalg.norm(_project(pred[1:], k) - _project(gt[1:], k), axis=1).mean()
    dz = np.abs(pred[1:, 2] - gt[1:, 2]).mean()
    return float(e3d * M_TO_CM), float(px), float(dz * M_TO_CM)


def mean_pose(gt: Sequence, offsets: np.ndarray) -> np.ndarray:
    """The baseline's estimate for one sample: (21, 3) = its annotated wrist + ``offsets``."""
    gt = np.asarray(gt, np.float64)
    return gt[:1] + np.asarray(offsets, np.float64)


def mean_offsets(annotations: Sequence[dict]) -> np.ndarray:
    """(21, 3) mean of ``hand_joints_3d - wrist`` over annotation dicts (metres)."""
    if not annotations:
        raise ValueError("no annotations to average; is the training split empty?")
    joints = np.stack([np.asarray(a["hand_joints_3d"], np.float64) for a in annotations])
    return (joints - joints[:, :1]).mean(0)
