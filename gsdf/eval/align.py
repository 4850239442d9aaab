"""ICP over scale and translation only (the reference's ``common/utils/solver.py: icp_ts``).

Aligns predicted surface points to ground-truth ones with ``x -> s * x + t``: first matching the
centroids and RMS radii, then alternating nearest-neighbour matching in both directions and a
closed-form least-squares update of ``(s, t)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import trimesh
from scipy.spatial import cKDTree


@dataclasses.dataclass(frozen=True)
class Similarity:
    """``x -> scale * x + translation``; translation (3,) in the points' units."""

    scale: float
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) -> (N, 3)."""
        return self.scale * np.asarray(points, np.float64) + self.translation


def _fit_scale_translation(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray]:
    """argmin_{s,t} sum |s * src + t - dst|^2 for (N, 3) pairs."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    denom = float((a * a).sum())
    s = float((a * b).sum() / denom) if denom > 0 else 1.0
    return s, mu_d - s * mu_s


def icp_scale_translation(source: np.ndarray, target: np.ndarray, max_iter: int = 100,
                          stop_error: float = 1e-3, stop_improvement: float = 1e-5,
                          units_per_metre: float = 100.0,
                          trees: tuple[cKDTree, cKDTree] | None = None) -> Similarity:
    """Align ``source`` (N, 3) to ``target`` (M, 3) over scale and translation.

    ``stop_error`` and ``stop_improvement`` are in the reference's units (metres, RMS of the
    matched distances); ``units_per_metre`` converts them to the points' units (cm by default).

    Args:
        trees: optional prebuilt ``(cKDTree(source), cKDTree(target))``.

    Returns:
        the similarity mapping source points onto the target.
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    off_s, off_t = source.mean(0), target.mean(0)
    rad_s = np.sqrt(((source - off_s) ** 2).sum(1).mean())
    rad_t = np.sqrt(((target - off_t) ** 2).sum(1).mean())
    s = rad_t / rad_s if rad_s > 0 else 1.0
    t = off_t - s * off_s  # initial: centroid and RMS radius matched
    tree_s, tree_t = trees if trees is not None else (cKDTree(source), cKDTree(target))
    stop_error *= units_per_metre
    stop_improvement *= units_per_metre
    previous = np.inf
    for _ in range(max_iter):
        moved = s * source + t
        _, to_t = tree_t.query(moved, workers=1)  # nearest target of each source point
        _, to_s = tree_s.query((target - t) / s, workers=1)  # nearest source of each target
        src = np.concatenate([source, source[to_s]])
        dst = np.concatenate([target[to_t], target])
        error = np.sqrt(((s * src + t - dst) ** 2).sum(1).mean())
        if previous - error < stop_improvement or error < stop_error:
            break
        previous = error
        s, t = _fit_scale_translation(src, dst)
    return Similarity(float(s), np.asarray(t, np.float64))


def icp_on_meshes(source: trimesh.Trimesh, target: trimesh.Trimesh, num_points: int = 30000,
                  max_iter: int = 100, seed: int = 0) -> Similarity:
    """The reference's mesh alignment (``icp_ts(pred, gt).sample_mesh(30000, 'both')``, then
    ``run_icp_f(max_iter=100)``): ``num_points`` area-uniform samples of each mesh (metres),
    aligned in cm by :func:`icp_scale_translation`.

    Returns:
        the similarity in cm (``scale * x_cm + translation_cm``).
    """
    rng = np.random.default_rng(seed)
    src, _ = trimesh.sample.sample_surface(source, num_points, seed=int(rng.integers(2 ** 31)))
    dst, _ = trimesh.sample.sample_surface(target, num_points, seed=int(rng.integers(2 ** 31)))
    return icp_scale_translation(np.asarray(src) * 100.0, np.asarray(dst) * 100.0,
                                 max_iter=max_iter)
