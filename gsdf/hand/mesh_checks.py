"""Mesh sanity checks used by the procedural asset and its tests (numpy, vectorised)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _segments_hit_triangles(p0: np.ndarray, p1: np.ndarray, tri: np.ndarray,
                            eps: float = 1e-9) -> np.ndarray:
    """Möller-Trumbore: does segment ``p0 -> p1`` (N, 3) cross triangle ``tri`` (N, 3, 3)?

    Touching within ``eps`` (relative) is not counted, so shared edges/vertices do not count.
    """
    d = p1 - p0
    e1 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    h = np.cross(d, e2)
    a = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(a) > 1e-18
    inv = np.where(ok, 1.0 / np.where(ok, a, 1.0), 0.0)
    s = p0 - tri[:, 0]
    u = inv * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = inv * np.einsum("ij,ij->i", d, q)
    t = inv * np.einsum("ij,ij->i", e2, q)
    return ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)


def self_intersections(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Pairs of triangles that intersect each other (triangles sharing a vertex are skipped).

    Two non-coplanar triangles intersect iff an edge of one crosses the other, so every candidate
    pair (bounding spheres overlap) gets six segment-triangle tests.

    Args:
        vertices: (V, 3). faces: (F, 3) int.

    Returns:
        (K, 2) int64 indices of intersecting face pairs (empty if the mesh is free of
        self-intersections).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]  # (F, 3, 3)
    centre = tri.mean(1)
    radius = np.linalg.norm(tri - centre[:, None], axis=2).max(1)
    pairs = cKDTree(centre).query_pairs(2.0 * radius.max(), output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    close = np.linalg.norm(centre[i] - centre[j], axis=1) <= radius[i] + radius[j]
    shared = (f[i][:, :, None] == f[j][:, None, :]).any(axis=(1, 2))
    keep = close & ~shared
    i, j = i[keep], j[keep]
    hit = np.zeros(len(i), dtype=bool)
    for a, b in ((i, j), (j, i)):
        for k in range(3):
            hit |= _segments_hit_triangles(tri[a, k], tri[a, (k + 1) % 3], tri[b])
    return np.stack([i[hit], j[hit]], axis=1)
