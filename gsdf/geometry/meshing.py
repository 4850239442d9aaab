"""Meshing of SDF fields: coarse-to-fine grid sampling and marching cubes (DESIGN.md section 10).

The reference (zerchen/gSDF ``playground/*/recon.py``) evaluates the decoders densely twice:
a 128^3 grid over the cube ``[-1, 1]^3`` of the hand frame, then a second 128^3 grid over the
bounding cube of the negative (inside) nodes of the first grid, grown by 2 voxels on each side
(the same cube for the hand and the object fields), and runs marching cubes on the second grid.

:func:`sample_grid` in ``coarse_to_fine`` mode returns a grid on which marching cubes gives the
same mesh as on the dense grid while querying only a fraction of its nodes:

* the grid is split into blocks of ``coarse_stride`` voxels; for each block the field is
  evaluated at its 8 corners and its centre;
* if these 9 values have one sign and all satisfy ``|f| > L * R`` where ``R = sqrt(5)/4 * side``
  is the covering radius of the 9 nodes (every point of the block is within ``R`` of one of
  them) and ``L`` the assumed Lipschitz constant of the field, the block cannot contain the zero
  level set: a clamped signed distance is 1-Lipschitz, ``L > 1`` is the safety margin for a
  learned field. Saturated (clamped) values only certify a radius ``clamp / L``, which is what
  limits how coarse the first level can usefully be;
* other blocks are split into 8 and tested again, down to single cells, whose 8 corners are then
  all evaluated exactly;
* nodes never evaluated lie in certified blocks and are filled with ``sign * fill`` of the
  block. Every cell that contains a sign change therefore has exact values at all 8 corners,
  and marching cubes (which only interpolates along edges with a sign change, and resolves
  ambiguous cells from their own corners) outputs the same vertices and faces as on the dense
  grid.

Grid conventions (the reference's): array axis 0, 1, 2 = x, y, z; node ``(i, j, k)`` lies at
``origin + (i, j, k) * voxel_size``. Coordinates are in the hand frame (dimensionless, metres
times ``recon_scale / 2``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import skimage.measure

QueryFn = Callable[[np.ndarray], np.ndarray]
"""``query_fn(points (K, 3) float64 hand frame) -> (K,) signed distances``."""

Mode = Literal["coarse_to_fine", "dense"]

# Offsets of the 8 corners of a unit cell, (8, 3).
_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)), dtype=np.int64)
# Covering radius of the 8 corners + the centre of a cube of side 1 (attained at (1/2, 1/4, 0)).
COVER_RADIUS = math.sqrt(5.0) / 4.0


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """A cubic grid of ``resolution^3`` nodes.

    Attributes:
        origin: (3,) position of node (0, 0, 0), hand frame.
        voxel_size: node spacing, hand frame units.
        resolution: nodes per axis.
    """

    origin: tuple[float, float, float]
    voxel_size: float
    resolution: int

    @classmethod
    def reference_cube(cls, resolution: int = 128) -> GridSpec:
        """The reference's first grid: ``resolution^3`` nodes spanning ``[-1, 1]^3``."""
        return cls((-1.0, -1.0, -1.0), 2.0 / (resolution - 1), resolution)

    def points(self, index: np.ndarray) -> np.ndarray:
        """Node positions: (K, 3) int indices -> (K, 3) float64 hand-frame points."""
        origin = np.asarray(self.origin, dtype=np.float64)
        return origin + index.astype(np.float64) * self.voxel_size


@dataclasses.dataclass
class SampledGrid:
    """Field values on a :class:`GridSpec`.

    Attributes:
        values: (R, R, R) float64; exact where ``exact`` is set, else ``sign * fill``.
        exact: (R, R, R) bool, nodes whose value was queried.
        spec: the grid.
        num_queries: number of points passed to the query function (including padding nodes).
    """

    values: np.ndarray
    exact: np.ndarray
    spec: GridSpec
    num_queries: int


@dataclasses.dataclass(frozen=True)
class MeshingConfig:
    """Settings of :func:`mesh_fields` (config section ``reconstruct``).

    Attributes:
        mode: ``coarse_to_fine`` or ``dense`` (the reference's two dense passes).
        resolution: nodes per axis of each grid (the reference's ``mesh_resolution``, 128).
        fit_cube: if true (the reference), a second grid over the bounding cube of the inside
            nodes of the first grid (+2 voxels each side) gives the mesh; else the first grid.
        lipschitz: assumed Lipschitz constant of the field (>= 1; margin for learned fields).
        coarse_stride: block size of the first coarse-to-fine level, voxels (power of 2).
        batch_size: maximum number of points per query call.
    """

    mode: Mode = "coarse_to_fine"
    resolution: int = 128
    fit_cube: bool = True
    lipschitz: float = 1.5
    coarse_stride: int = 8
    batch_size: int = 65536

    def __post_init__(self):
        if self.mode not in ("coarse_to_fine", "dense"):
            raise ValueError(f"meshing mode must be coarse_to_fine or dense, got {self.mode!r}")
        if self.resolution < 2:
            raise ValueError(f"resolution must be >= 2, got {self.resolution}")
        if self.coarse_stride < 1 or self.coarse_stride & (self.coarse_stride - 1):
            raise ValueError(f"coarse_stride must be a power of 2, got {self.coarse_stride}")
        if self.lipschitz <= 0:
            raise ValueError(f"lipschitz must be > 0, got {self.lipschitz}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def _query_batched(query_fn: QueryFn, points: np.ndarray, batch_size: int) -> np.ndarray:
    """Evaluate ``query_fn`` on (K, 3) points in chunks of ``batch_size``: (K,) float64."""
    out = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), batch_size):
        chunk = points[start:start + batch_size]
        values = np.asarray(query_fn(chunk), dtype=np.float64).reshape(-1)
        if values.shape != (len(chunk),):
            raise ValueError(f"query_fn returned {values.shape} values for {len(chunk)} points")
        out[start:start + len(chunk)] = values
    return out


def sample_dense(query_fn: QueryFn, spec: GridSpec, batch_size: int = 65536) -> SampledGrid:
    """Evaluate the field at every node of ``spec`` (what the reference does)."""
    n = spec.resolution
    index = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), -1).reshape(-1, 3)
    values = _query_batched(query_fn, spec.points(index), batch_size).reshape(n, n, n)
    return SampledGrid(values, np.ones((n, n, n), dtype=bool), spec, n ** 3)


def sample_coarse_to_fine(query_fn: QueryFn, spec: GridSpec, lipschitz: float = 1.5,
                          coarse_stride: int = 8, batch_size: int = 65536) -> SampledGrid:
    """Evaluate the field only where the zero level set may pass (see the module docstring).

    Returns a grid on which marching cubes gives the dense grid's mesh, provided the field is
    ``lipschitz``-Lipschitz.
    """
    n = spec.resolution
    stride = coarse_stride
    blocks_per_axis = max(1, math.ceil((n - 1) / stride))
    m = blocks_per_axis * stride + 1  # padded nodes per axis; padding nodes lie outside the cube
    values = np.zeros(m ** 3, dtype=np.float64)
    known = np.zeros(m ** 3, dtype=bool)
    num_queries = 0
    strides = np.array([m * m, m, 1], dtype=np.int64)

    def evaluate(index: np.ndarray) -> np.ndarray:
        """Values at (K, 3) node indices, querying the unknown ones: (K,)."""
        nonlocal num_queries
        lin = index @ strides
        todo = np.unique(lin[~known[lin]])
        if len(todo):
            todo_index = np.stack(np.unravel_index(todo, (m, m, m)), -1)
            values[todo] = _query_batched(query_fn, spec.points(todo_index), batch_size)
            known[todo] = True
            num_queries += len(todo)
        return values[lin]

    # Lower corners of the blocks of the current level, (K, 3).
    grid = np.arange(blocks_per_axis) * stride
    blocks = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    certified: list[tuple[np.ndarray, int, np.ndarray]] = []  # (blocks, stride, signs)
    while len(blocks):
        corners = blocks[:, None, :] + stride * _CORNERS  # (K, 8, 3)
        if stride == 1:
            # Cells from a split block know two opposite corners (the block's corner and its
            # centre), which together cover the cell within sqrt(5)/2 voxels.
            lin = corners.reshape(-1, 3) @ strides
            have = known[lin].reshape(-1, 8)
            vals = values[lin].reshape(-1, 8)
            pair = have[:, 0] & have[:, 7]
            same = (np.sign(vals[:, 0]) == np.sign(vals[:, 7])) & (vals[:, 0] != 0)
            far = np.minimum(np.abs(vals[:, 0]), np.abs(vals[:, 7])) > (
                lipschitz * 2.0 * COVER_RADIUS * spec.voxel_size)
            ok = pair & same & far
            if ok.any():
                certified.append((blocks[ok], 1, np.sign(vals[ok, 0])))
            evaluate(corners[~ok].reshape(-1, 3))
            break
        nodes = np.concatenate([corners, blocks[:, None, :] + stride // 2], axis=1)  # (K, 9, 3)
        vals = evaluate(nodes.reshape(-1, 3)).reshape(-1, 9)
        radius = lipschitz * COVER_RADIUS * stride * spec.voxel_size
        positive = (vals > 0).all(1)
        negative = (vals < 0).all(1)
        # One node farther than the block diagonal also proves the block has no crossing.
        diagonal = lipschitz * math.sqrt(3.0) * stride * spec.voxel_size
        ok = (positive | negative) & (
            (np.abs(vals).min(1) > radius) | (np.abs(vals).max(1) > diagonal))
        if ok.any():
            certified.append((blocks[ok], stride, np.where(positive[ok], 1.0, -1.0)))
        stride //= 2
        blocks = (blocks[~ok][:, None, :] + stride * _CORNERS).reshape(-1, 3)

    # Fill the nodes never evaluated with the sign of a certified block holding them.
    fill = float(np.abs(values[known]).max()) if known.any() else 1.0
    fill = fill if fill > 0 else 1.0
    signs = np.zeros(m ** 3, dtype=np.float64)
    for cert_blocks, cert_stride, cert_signs in certified:
        span = np.arange(cert_stride + 1)
        offsets = np.stack(np.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)
        for start in range(0, len(cert_blocks), 4096):
            chunk = cert_blocks[start:start + 4096]
            lin = (chunk[:, None, :] + offsets) @ strides  # (k, (s+1)^3)
            signs[lin] = np.broadcast_to(cert_signs[start:start + 4096, None], lin.shape)
    values = np.where(known, values, signs * fill).reshape(m, m, m)[:n, :n, :n]
    exact = known.reshape(m, m, m)[:n, :n, :n]
    if not np.all(exact | (values != 0)):
        raise RuntimeError("coarse-to-fine meshing left a node without a value (bug)")
    return SampledGrid(np.ascontiguousarray(values), np.ascontiguousarray(exact), spec,
                       num_queries)


def sample_grid(query_fn: QueryFn, spec: GridSpec, config: MeshingConfig) -> SampledGrid:
    """:func:`sample_dense` or :func:`sample_coarse_to_fine` according to ``config.mode``."""
    if config.mode == "dense":
        return sample_dense(query_fn, spec, config.batch_size)
    return sample_coarse_to_fine(query_fn, spec, config.lipschitz, config.coarse_stride,
                                 config.batch_size)


def fitted_cube(grids: list[SampledGrid], resolution: int) -> GridSpec | None:
    """The reference's second grid (``get_higher_res_cube``): the bounding cube of the inside
    (negative) nodes of all ``grids`` (same spec), grown by 2 voxels each side, with
    ``resolution`` nodes per axis. ``None`` if no grid has an inside node.

    (Where one field has no inside node the reference uses index 0 as its bounding box; we
    use the other fields only.)
    """
    spec = grids[0].spec
    lows, highs = [], []
    for grid in grids:
        inside = np.argwhere(grid.values < 0)
        if len(inside):
            lows.append(inside.min(0))
            highs.append(inside.max(0))
    if not lows:
        return None
    low = np.min(lows, axis=0).astype(np.float64)
    high = np.max(highs, axis=0).astype(np.float64)
    cube = (float(np.max(high - low)) + 4.0) * spec.voxel_size
    origin = (low - 2.0) * spec.voxel_size + np.asarray(spec.origin)
    return GridSpec(tuple(float(x) for x in origin), cube / (resolution - 1), resolution)


def marching_cubes(grid: SampledGrid) -> tuple[np.ndarray, np.ndarray] | None:
    """Zero level set of a sampled grid (scikit-image, Lewiner).

    Returns:
        ``(vertices (V, 3) float64 hand frame, faces (F, 3) int64)``, or ``None`` if the field
        has no zero crossing on the grid.
    """
    values = grid.values
    if not (values.min() < 0.0 < values.max()):
        return None
    h = grid.spec.voxel_size
    verts, faces, _, _ = skimage.measure.marching_cubes(values, level=0.0, spacing=(h, h, h))
    if len(faces) == 0:
        return None
    return verts.astype(np.float64) + np.asarray(grid.spec.origin), faces.astype(np.int64)


@dataclasses.dataclass
class MeshingResult:
    """Output of :func:`mesh_fields`.

    Attributes:
        meshes: field name -> ``(vertices (V, 3) hand frame, faces (F, 3))`` or ``None`` (no zero
            crossing).
        num_queries: field name -> points queried over both passes.
        dense_queries: field name -> points the dense reference would query (two passes).
        spec: the grid the meshes were extracted from (``None`` if no field has an inside node).
    """

    meshes: dict[str, tuple[np.ndarray, np.ndarray] | None]
    num_queries: dict[str, int]
    dense_queries: dict[str, int]
    spec: GridSpec | None


def mesh_fields(query_fns: Mapping[str, QueryFn], config: MeshingConfig) -> MeshingResult:
    """Mesh several fields of one sample as the reference does (shared fitted cube).

    Args:
        query_fns: field name (``hand``, ``obj``) -> ``query_fn(points (K, 3)) -> (K,)``.
        config: grid and mode settings.
    """
    first = GridSpec.reference_cube(config.resolution)
    grids = {name: sample_grid(fn, first, config) for name, fn in query_fns.items()}
    queries = {name: g.num_queries for name, g in grids.items()}
    dense = {name: config.resolution ** 3 for name in query_fns}
    spec: GridSpec | None = first
    if config.fit_cube:
        spec = fitted_cube(list(grids.values()), config.resolution)
        if spec is None:
            return MeshingResult({name: None for name in query_fns}, queries, dense, None)
        grids = {name: sample_grid(fn, spec, config) for name, fn in query_fns.items()}
        for name, g in grids.items():
            queries[name] += g.num_queries
            dense[name] += config.resolution ** 3
    meshes = {name: marching_cubes(g) for name, g in grids.items()}
    return MeshingResult(meshes, queries, dense, spec)


def hand_to_camera(points: np.ndarray, wrist: np.ndarray, recon_scale: float) -> np.ndarray:
    """Hand frame -> camera space: ``p_cam = p_hand * 2 / recon_scale + wrist``.

    Args:
        points: (V, 3) hand frame.
        wrist: (3,) camera space, metres: the hand centre the query points were built around
            (at test time the reference uses the annotated wrist, ``hand_center_3d``).
        recon_scale: dataset hand-frame scale.

    Returns:
        (V, 3) camera space, metres.
    """
    return np.asarray(points, np.float64) * (2.0 / recon_scale) + np.asarray(wrist, np.float64)
