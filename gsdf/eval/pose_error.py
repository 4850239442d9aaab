"""Hand joint error of a pose estimate, next to the mean-pose baseline.

The wrist is given to every model (the hand frame is centred on the annotated wrist, as in the
reference), so errors are over the other 20 joints. Three numbers per split: the 3D error (cm),
its image part (pixels of the stored 256x256 crop) and its depth part (cm). The baseline
predicts, for every image, the mean wrist-relative joint offsets of the training split: a pose
network that does not beat it has learned nothing about the hand's articulation.

Used by ``scripts/pose_error.py``; the numbers of README "What the default run gives" come from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

PredictFn = Callable[[dict], torch.Tensor]
"""``predict(batch) -> (B, 21, 3)`` camera metres."""


def _project(points: torch.Tensor, cam_intr: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) camera metres, (B, 3, 3) -> (B, J, 2) pixels."""
    uvw = points @ cam_intr.transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:3].clamp_min(1e-9)


def joint_errors(pred: torch.Tensor, gt: torch.Tensor, cam_intr: torch.Tensor,
                 image_size: int, stored_size: int = 256) -> torch.Tensor:
    """Per-sample mean errors over joints 1..20.

    Args:
        pred, gt: (B, 21, 3) camera metres.
        cam_intr: (B, 3, 3) intrinsics of the network input of side ``image_size``.
        image_size: input side, pixels; pixel errors are rescaled to ``stored_size``.

    Returns:
        (B, 3): 3D error (metres), image error (pixels at ``stored_size``), depth error (metres).
    """
    e3d = (pred - gt).norm(dim=-1)[:, 1:].mean(1)
    px = (_project(pred, cam_intr) - _project(gt, cam_intr)).norm(dim=-1)[:, 1:].mean(1)
    dz = (pred[..., 2] - gt[..., 2]).abs()[:, 1:].mean(1)
    return torch.stack([e3d, px * stored_size / image_size, dz], dim=1)


def evaluate_split(predict: PredictFn, dataset: Sequence[dict], image_size: int,
                   mean_offsets: np.ndarray | None = None, max_samples: int | None = None,
                   batch_size: int = 32) -> dict[str, float]:
    """Mean errors of ``predict`` (and of the mean pose) on a dataset of pose items.

    Args:
        predict: the estimate, ``batch -> (B, 21, 3)``.
        dataset: items with ``image``, ``hand_joints_3d``, ``cam_intr`` (``gsdf.data`` pose or
            SDF Datasets in test mode).
        image_size: the items' input side, pixels.
        mean_offsets: (21, 3) mean wrist-relative joints of the training split (metres); adds
            the ``mean_pose_*`` keys.
        max_samples: evaluate evenly spaced samples only.

    Returns:
        ``joint_cm``, ``image_px``, ``depth_cm`` (and ``mean_pose_*``), ``samples``.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("the split has no samples; pack it first (stage pack)")
    index = np.arange(n) if not max_samples or max_samples >= n else \
        np.linspace(0, n - 1, max_samples).round().astype(int)
    rows, base = [], []
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            batch = default_collate([dataset[int(i)] for i in index[start:start + batch_size]])
            gt = batch["hand_joints_3d"].float()
            cam = batch["cam_intr"].float()
            rows.append(joint_errors(predict(batch).float(), gt, cam, image_size))
            if mean_offsets is not None:
                mean = gt[:, :1] + torch.as_tensor(mean_offsets, dtype=gt.dtype)[None]
                base.append(joint_errors(mean, gt, cam, image_size))
    out = {"samples": float(len(index))}
    for prefix, parts in (("", rows), ("mean_pose_", base)):
        if parts:
            m = torch.cat(parts).mean(0)
            out.update({f"{prefix}joint_cm": float(m[0]) * 100, f"{prefix}image_px": float(m[1]),
                        f"{prefix}depth_cm": float(m[2]) * 100})
    return out


def mean_offsets(annotations: Sequence[dict]) -> np.ndarray:
    """(21, 3) mean of ``hand_joints_3d - wrist`` over annotation dicts (metres)."""
    if not annotations:
        raise ValueError("no annotations to average; is the training split empty?")
    joints = np.stack([np.asarray(a["hand_joints_3d"], np.float64) for a in annotations])
    return (joints - joints[:, :1]).mean(0)
