"""Mesh and pose metrics of the published protocol (DESIGN.md section 11). Pure functions.

Chamfer distance and F-score follow the reference's ``datasets/*/_evaluate``: points in cm,
Chamfer = mean squared nearest-neighbour distance from prediction to ground truth plus the same
from ground truth to prediction (cm^2); F-score at threshold ``t`` = harmonic mean of the share
of predicted points within ``t`` of the ground truth (precision) and of ground-truth points within
``t`` of the prediction (recall).
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

# Protocol constants.
NUM_SURFACE_SAMPLES = 30000
M_TO_CM = 100.0


def sample_surface(mesh: trimesh.Trimesh, count: int = NUM_SURFACE_SAMPLES,
                   seed: int = 0) -> np.ndarray:
    """Area-uniform surface samples: (count, 3), in the mesh's units."""
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float64)


def nn_distances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances both ways.

    Args:
        pred: (P, 3) predicted surface points.
        gt: (G, 3) ground-truth surface points (same units).

    Returns:
        ``(pred_to_gt (P,), gt_to_pred (G,))``.
    """
    pred_to_gt, _ = cKDTree(gt).query(pred, workers=1)
    gt_to_pred, _ = cKDTree(pred).query(gt, workers=1)
    return pred_to_gt, gt_to_pred


def chamfer(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray) -> float:
    """Symmetric Chamfer distance: mean squared distance each way, summed (units^2)."""
    return float(np.mean(np.square(pred_to_gt)) + np.mean(np.square(gt_to_pred)))


def fscore(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, threshold: float) -> float:
    """F-score at ``threshold`` (same units as the distances), in [0, 1]."""
    precision = float(np.mean(pred_to_gt < threshold))
    recall = float(np.mean(gt_to_pred < threshold))
    if precision + recall == 0.0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def surface_metrics(pred_cm: np.ndarray, gt_cm: np.ndarray,
                    thresholds_cm: tuple[float, ...]) -> dict[str, float]:
    """Chamfer (cm^2) and F-scores of two point sets in cm.

    Returns:
        ``{"chamfer": ..., "fscore@{t}": ...}`` with ``t`` the thresholds in cm.
    """
    d_pred, d_gt = nn_distances(pred_cm, gt_cm)
    out = {"chamfer": chamfer(d_pred, d_gt)}
    for t in thresholds_cm:
        out[f"fscore@{t:g}"] = fscore(d_pred, d_gt, t)
    return out


def joint_error_cm(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean Euclidean error over joints: (J, 3) and (J, 3) in metres -> cm."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"joint arrays differ in shape: {pred.shape} vs {gt.shape}")
    return float(np.linalg.norm(pred - gt, axis=-1).mean() * M_TO_CM)


def center_error_cm(pred: np.ndarray, gt: np.ndarray) -> float:
    """Euclidean distance between two (3,) points in metres -> cm."""
    pred, gt = np.asarray(pred, np.float64).reshape(3), np.asarray(gt, np.float64).reshape(3)
    return float(np.linalg.norm(pred - gt) * M_TO_CM)


def largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected component (by faces sharing an edge) of largest area, as the reference."""
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh
    return max(parts, key=lambda m: m.area)
