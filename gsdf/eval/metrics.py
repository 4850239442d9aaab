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


def nn_distances(pred: np.ndarray, gt: np.ndarray, tree_pred: cKDTree | None = None,
                 tree_gt: cKDTree | None = None, scale: float = 1.0,
                 translation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances both ways between ``scale * pred + translation`` and ``gt``.

    Args:
        pred: (P, 3) predicted surface points (before the similarity).
        gt: (G, 3) ground-truth surface points (same units).
        tree_pred, tree_gt: optional prebuilt ``cKDTree(pred)`` / ``cKDTree(gt)``.
        scale, translation: similarity applied to ``pred`` (default identity).

    Returns:
        ``(pred_to_gt (P,), gt_to_pred (G,))``.
    """
    t = np.zeros(3) if translation is None else np.asarray(translation, np.float64)
    tree_pred = cKDTree(pred) if tree_pred is None else tree_pred
    tree_gt = cKDTree(gt) if tree_gt is None else tree_gt
    pred_to_gt, _ = tree_gt.query(scale * pred + t, workers=1)
    gt_to_pred, _ = tree_pred.query((gt - t) / scale, workers=1)  # distances in pred units
    return pred_to_gt, gt_to_pred * abs(scale)


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
                    thresholds_cm: tuple[float, ...], **kwargs) -> dict[str, float]:
    """Chamfer (cm^2) and F-scores of two point sets in cm.

    ``kwargs`` go to :func:`nn_distances` (prebuilt trees, a similarity applied to ``pred_cm``).

    Returns:
        ``{"chamfer": ..., "fscore@{t}": ...}`` with ``t`` the thresholds in cm.
    """
    d_pred, d_gt = nn_distances(pred_cm, gt_cm, **kwargs)
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


def view_extents(points: np.ndarray, view_dir: np.ndarray,
                 coverage: float = 0.95) -> tuple[float, float]:
    """Extent of a point set along a viewing direction and across it.

    Args:
        points: (N, 3) surface samples, camera metres.
        view_dir: (3,) direction of the camera ray through the object (normalised here).
        coverage: share of the points the extents cover (robust to stray fragments).

    Returns:
        ``(depth, lateral)``: the length of the central ``coverage`` of the points' positions
        along ``view_dir``, and the radius around their median (projected on the plane across
        it) that holds ``coverage`` of them. A reconstruction drawn out along the camera rays
        has a depth extent above the true one and a lateral extent close to it.
    """
    d = np.asarray(view_dir, dtype=np.float64)
    d = d / np.linalg.norm(d)
    pts = np.asarray(points, dtype=np.float64)
    along = pts @ d
    tail = 50.0 * (1.0 - coverage)
    depth = float(np.percentile(along, 100.0 - tail) - np.percentile(along, tail))
    across = pts - np.outer(along, d)
    lateral = float(np.percentile(np.linalg.norm(across - np.median(across, axis=0), axis=1),
                                  100.0 * coverage))
    return depth, lateral


def largest_component(mesh: trimesh.Trimesh, watertight_only: bool = False) -> trimesh.Trimesh:
    """The connected component (by faces sharing an edge) of largest area.

    Args:
        mesh: the predicted mesh.
        watertight_only: ``False`` (``evaluate.protocol: gsdf``): the largest of all components.
            ``True`` (``protocol: reference``): as the reference's
            ``trimesh.graph.split(pred_mesh)`` (whose default ``only_watertight=True`` lists the
            watertight components only; zerchen/gSDF ``playground/*/recon.py``
            ``convert_sdf_samples_to_ply``): the largest watertight component when there are
            at least two, else the whole mesh (open pieces included).
    """
    parts = mesh.split(only_watertight=watertight_only)
    if len(parts) <= 1:
        return mesh
    return max(parts, key=lambda m: m.area)
