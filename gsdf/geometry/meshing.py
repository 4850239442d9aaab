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
* other blocks are split into 8 and tested again, down to blocks of 2 voxels; there, each of
  the 27 nodes gets its sign proven by a neighbour ``c`` with ``|f(c)| > L * distance`` or is
  evaluated, and the cells whose corner signs differ get all 8 corners evaluated exactly;
* nodes never evaluated are filled with ``sign * fill`` (sign of their certified block or of
  their proof). Marching cubes only draws in cells with a sign change, interpolating along
  edges with a sign change and resolving ambiguous cells from their own corners; all their
  corners are exact and every other node has its true sign, so it outputs the same vertices and
  faces as on the dense grid.

With ``refine="sign"`` (opt-in, the Multiresolution IsoSurface Extraction of Occupancy Networks,
Mescheder et al. CVPR 2019) a block is refined when its 9 node signs differ or a neighbouring
block of the same level (26-neighbourhood) has differing signs, and the last level evaluates all
27 nodes of each refined block; no Lipschitz bound is assumed. This is not certified (a surface
detail thinner than a block that passes between the nodes of a block and of its neighbours is
lost), but a learned field whose values stay close to zero over a wide band around its surface
(a briefly trained decoder: small values, small gradient) can prove nothing under the
Lipschitz rule and is queried there almost densely; the sign rule only follows sign changes.

The first (``[-1, 1]^3``) grid only serves the bounding box of its inside nodes, so there
(``signs_only``) blocks lying inside the box found so far are not refined and no exact values
are needed. The clamp of the fields bounds the gain: a saturated value only certifies a radius
``clamp / L``, so far from the surface blocks of 4 voxels of the first grid are the coarsest
that can be certified (with ``L = 1.4`` and the 0.05 clamp, at resolution 128).

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
Refine = Literal["lipschitz", "sign"]

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
        refine: which blocks coarse-to-fine refines: ``lipschitz`` (certified, same mesh as
            dense for a ``lipschitz``-Lipschitz field) or ``sign`` (blocks with a sign change
            and their neighbours; see the module docstring).
    """

    mode: Mode = "coarse_to_fine"
    resolution: int = 128
    fit_cube: bool = True
    lipschitz: float = 1.5
    coarse_stride: int = 8
    batch_size: int = 65536
    refine: Refine = "lipschitz"

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
        if self.refine not in ("lipschitz", "sign"):
            raise ValueError(f"refine must be lipschitz or sign, got {self.refine!r}")


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


def _offsets(span: int) -> np.ndarray:
    """All integer offsets in ``[0, span]^3``: ((span + 1)^3, 3)."""
    r = np.arange(span + 1)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


# The 26 neighbours of a node and their distances in voxels.
_NEIGHBOURS = _offsets(2) - 1
_NEIGHBOURS = _NEIGHBOURS[np.abs(_NEIGHBOURS).sum(1) > 0]
_NEIGHBOUR_DIST = np.linalg.norm(_NEIGHBOURS, axis=1)


def _lin(index: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Linear node indices of (..., 3) integer indices: ``index @ strides`` by element-wise
    integer arithmetic (numpy's integer matmul has no fast path; this is ~10x faster)."""
    return index[..., 0] * strides[0] + index[..., 1] * strides[1] + index[..., 2] * strides[2]


def _unique(lin: np.ndarray, size: int) -> np.ndarray:
    """Sorted unique values of integer array ``lin`` in ``[0, size)`` (a mask: O(size))."""
    mask = np.zeros(size, dtype=bool)
    mask[lin.reshape(-1)] = True
    return np.flatnonzero(mask)


def _follow_surface(cells: np.ndarray, evaluate: Callable[[np.ndarray], np.ndarray],
                    values: np.ndarray, known: np.ndarray, node_sign: np.ndarray, n: int,
                    m: int) -> None:
    """Evaluate the corners of every cell the zero level set crosses that is connected to
    ``cells``: a cell whose corner signs (exact where evaluated, else ``node_sign``) differ
    gets its 8 corners evaluated, then its 26 neighbours are examined, until no new cell
    changes sign. Works in place on ``values`` / ``known`` (through ``evaluate``). Cells with
    a corner of unknown sign (inside the box of ``signs_only`` mode, never refined) are left.

    Args:
        cells: (C, 3) lower-corner node indices of the cells to start from.
        evaluate: queries the unknown nodes of linear indices.
        values, known, node_sign: (m^3,) padded-grid arrays of the caller.
        n: grid nodes per axis; cells have lower corners in ``[0, n - 2]``.
        m: padded nodes per axis.
    """
    strides = np.array([m * m, m, 1], dtype=np.int64)
    corners = _CORNERS @ strides  # (8,) linear offsets of a cell's corners
    neighbours = _offsets(2) - 1  # (27, 3)
    done = np.zeros(m ** 3, dtype=bool)
    frontier = _unique(_lin(cells, strides), m ** 3)
    while len(frontier):
        cell_lin = frontier[:, None] + corners  # (K, 8)
        sign = np.where(known[cell_lin], np.sign(values[cell_lin]), node_sign[cell_lin])
        unsigned = (~known[cell_lin] & (node_sign[cell_lin] == 0)).any(1)
        mixed = ~((sign > 0).all(1) | (sign < 0).all(1)) & ~unsigned
        done[frontier] = True
        frontier = frontier[mixed]
        if not len(frontier):
            break
        evaluate(frontier[:, None] + corners)
        index = np.stack(np.unravel_index(frontier, (m, m, m)), -1)
        nb = (index[:, None, :] + neighbours).reshape(-1, 3)  # (27K, 3)
        nb = nb[((nb >= 0) & (nb <= n - 2)).all(1)]
        frontier = _unique(_lin(nb, strides), m ** 3)
        frontier = frontier[~done[frontier]]


def sample_coarse_to_fine(query_fn: QueryFn, spec: GridSpec, lipschitz: float = 1.5,
                          coarse_stride: int = 8, batch_size: int = 65536,
                          signs_only: bool = False, refine: Refine = "lipschitz") -> SampledGrid:
    """Evaluate the field only where the zero level set may pass (see the module docstring).

    Args:
        query_fn: the field, ``(K, 3) -> (K,)``.
        spec: the grid.
        lipschitz: assumed Lipschitz constant of the field.
        coarse_stride: block size of the first level (power of 2; 1 = dense).
        batch_size: maximum points per ``query_fn`` call.
        signs_only: only the bounding box of the inside nodes is needed (the reference's first
            grid): blocks that cannot move that box are not refined and no exact values are
            computed; the returned values are then only good for :func:`fitted_cube`.
        refine: ``lipschitz`` (certified) or ``sign`` (follow sign changes; module docstring).

    Returns:
        with ``signs_only=False``, a grid on which marching cubes gives the dense grid's mesh,
        provided the field is ``lipschitz``-Lipschitz.
    """
    if refine not in ("lipschitz", "sign"):
        raise ValueError(f"refine must be lipschitz or sign, got {refine!r}")
    if coarse_stride < 2:
        return sample_dense(query_fn, spec, batch_size)
    run = _CoarseToFine(query_fn, spec, lipschitz, coarse_stride, batch_size, signs_only,
                        refine)
    final = run.refine_blocks()
    run.sign_certified_nodes()
    if len(final):
        run.last_level(final)
    return run.result()


class _CoarseToFine:
    """State of one :func:`sample_coarse_to_fine` call on a padded grid of ``m^3`` nodes.

    Attributes:
        values, known, node_sign: (m^3,) queried values, whether queried, proven signs of the
            nodes not queried (0: unknown).
        box_lo, box_hi: (3,) node-index bounding box of the inside nodes found so far
            (``signs_only`` mode).
        certified: ``(blocks (K, 3), stride, signs (K,))`` of every block proven one-signed.
    """

    def __init__(self, query_fn: QueryFn, spec: GridSpec, lipschitz: float, stride: int,
                 batch_size: int, signs_only: bool, refine: Refine):
        self.query_fn, self.spec, self.lipschitz = query_fn, spec, lipschitz
        self.stride, self.batch_size = stride, batch_size
        self.signs_only, self.refine = signs_only, refine
        self.n = n = spec.resolution
        self.blocks_per_axis = max(1, math.ceil((n - 1) / stride))
        # padded nodes per axis; padding nodes lie outside the cube
        self.m = m = self.blocks_per_axis * stride + 1
        self.values = np.zeros(m ** 3, dtype=np.float64)
        self.known = np.zeros(m ** 3, dtype=bool)
        self.node_sign = np.zeros(m ** 3, dtype=np.float64)
        self.num_queries = 0
        self.strides = np.array([m * m, m, 1], dtype=np.int64)
        self.box_lo = np.full(3, n, dtype=np.int64)
        self.box_hi = np.full(3, -1, dtype=np.int64)
        self.certified: list[tuple[np.ndarray, int, np.ndarray]] = []

    def evaluate(self, lin: np.ndarray) -> np.ndarray:
        """Values at linear node indices (any shape), querying the unknown ones."""
        m = self.m
        todo = _unique(lin[~self.known[lin]], m ** 3)
        if len(todo):
            todo_index = np.stack(np.unravel_index(todo, (m, m, m)), -1)
            self.values[todo] = _query_batched(self.query_fn, self.spec.points(todo_index),
                                               self.batch_size)
            self.known[todo] = True
            self.num_queries += len(todo)
        return self.values[lin]

    def grow_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Grow the inside box by node ranges [lo, hi] (K, 3), clipped to the grid."""
        n = self.n
        lo, hi = np.minimum(lo, n - 1), np.minimum(hi, n - 1)
        if len(lo):
            self.box_lo[:] = np.minimum(self.box_lo, lo.min(0))
            self.box_hi[:] = np.maximum(self.box_hi, hi.max(0))

    def _grow_box_inside(self, index: np.ndarray) -> None:
        """Grow the inside box by inside nodes (K, 3) of the padded grid (padding dropped)."""
        index = index[(index < self.n).all(1)]
        self.grow_box(index, index)

    def refine_blocks(self) -> np.ndarray:
        """Test blocks level by level (stride, stride / 2, ..., 2); certified blocks go to
        :attr:`certified`. Returns the uncertified blocks of stride 2, (K, 3) lower corners."""
        n, h, stride = self.n, self.spec.voxel_size, self.stride
        grid = np.arange(self.blocks_per_axis) * stride
        blocks = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
        while len(blocks):
            blocks = blocks[(blocks < n - 1).all(1)]  # blocks holding no cell of the grid
            corners = blocks[:, None, :] + stride * _CORNERS  # (K, 8, 3)
            nodes = np.concatenate([corners, blocks[:, None, :] + stride // 2], 1)  # (K, 9, 3)
            vals = self.evaluate(_lin(nodes, self.strides))  # (K, 9)
            positive, negative = (vals > 0).all(1), (vals < 0).all(1)
            # Every point of the block lies within COVER_RADIUS * side of one of the 9 nodes;
            # one node farther than the block diagonal also proves the block has no crossing.
            cover = self.lipschitz * COVER_RADIUS * stride * h
            diagonal = self.lipschitz * math.sqrt(3.0) * stride * h
            ok = positive | negative
            if self.refine != "sign":
                ok &= (np.abs(vals).min(1) > cover) | (np.abs(vals).max(1) > diagonal)
            if ok.any():
                self.certified.append((blocks[ok], stride, np.where(positive[ok], 1.0, -1.0)))
            rest = blocks[~ok]
            if self.signs_only:
                self._grow_box_inside(nodes[~ok][vals[~ok] < 0])
                neg_blocks = blocks[ok & negative]
                self.grow_box(neg_blocks, neg_blocks + stride)
                hi = np.minimum(rest + stride, n - 1)
                rest = rest[~((rest >= self.box_lo).all(1) & (hi <= self.box_hi).all(1))]
            if stride == 2:
                return rest
            stride //= 2
            blocks = (rest[:, None, :] + stride * _CORNERS).reshape(-1, 3)
        return np.zeros((0, 3), dtype=np.int64)

    def sign_certified_nodes(self) -> None:
        """Signs of the nodes of certified blocks (proven, or assumed under the sign rule)."""
        for cert_blocks, cert_stride, cert_signs in self.certified:
            offset_lin = _lin(_offsets(cert_stride), self.strides)
            for start in range(0, len(cert_blocks), 4096):
                chunk = cert_blocks[start:start + 4096]
                # (k, (s+1)^3) linear indices: block corner + offset, added as integers
                lin = _lin(chunk, self.strides)[:, None] + offset_lin
                self.node_sign[lin] = np.broadcast_to(cert_signs[start:start + 4096, None],
                                                      lin.shape)

    def _prove_signs(self, unknown: np.ndarray) -> np.ndarray:
        """Signs of nodes (linear indices) proven by a neighbour ``c`` with
        ``|f(c)| > L * distance`` (Lipschitz rule; 0 = no proof): (K,)."""
        m, h = self.m, self.spec.voxel_size
        index = np.stack(np.unravel_index(unknown, (m, m, m)), -1)
        proven = np.zeros(len(unknown), dtype=np.float64)
        if self.refine != "lipschitz":
            return proven
        # per axis: may the neighbour index step down / up and stay inside [0, m - 1]
        steps = {-1: index > 0, 1: index < m - 1}
        for offset, dist in zip(_NEIGHBOURS, _NEIGHBOUR_DIST, strict=True):
            valid = np.ones(len(unknown), dtype=bool)
            for axis, step in enumerate(offset):
                if step:
                    valid &= steps[int(step)][:, axis]
            nb_lin = np.where(valid, unknown + int(_lin(offset, self.strides)), 0)
            v = self.values[nb_lin]
            good = (valid & self.known[nb_lin] & (np.abs(v) > self.lipschitz * dist * h)
                    & (proven == 0))
            proven[good] = np.sign(v[good])
        return proven

    def last_level(self, final: np.ndarray) -> None:
        """The 27 nodes of each uncertified 2-voxel block: proven or evaluated; then the cells
        whose corner signs differ (the only ones marching cubes draws) get exact corners."""
        m, n = self.m, self.n
        lin = _unique(_lin(final, self.strides)[:, None] + _lin(_offsets(2), self.strides),
                      m ** 3)
        unknown = lin[~self.known[lin]]
        proven = self._prove_signs(unknown)
        self.node_sign[unknown] = proven
        self.evaluate(unknown[proven == 0])
        cells = (final[:, None, :] + _offsets(1)).reshape(-1, 3)  # (8K, 3) lower corners
        cells = cells[(cells < n - 1).all(1)]
        if self.refine == "sign":
            # Follow the surface from the cells of the final blocks, across block borders.
            _follow_surface(cells, self.evaluate, self.values, self.known, self.node_sign, n, m)
        elif self.signs_only:
            inside = self.values[lin] * self.known[lin] + self.node_sign[lin] < 0
            self._grow_box_inside(np.stack(np.unravel_index(lin[inside], (m, m, m)), -1))
        else:
            cell_lin = _lin(cells, self.strides)[:, None] + _lin(_CORNERS, self.strides)  # (C, 8)
            sign = np.where(self.known[cell_lin], np.sign(self.values[cell_lin]),
                            self.node_sign[cell_lin])
            mixed = ~((sign > 0).all(1) | (sign < 0).all(1))
            self.evaluate(cell_lin[mixed])

    def result(self) -> SampledGrid:
        """The grid: nodes never evaluated are filled with ``sign * fill``."""
        m, n, known = self.m, self.n, self.known
        if self.signs_only and self.refine == "sign":
            inside = np.flatnonzero(known & (self.values < 0))
            self._grow_box_inside(np.stack(np.unravel_index(inside, (m, m, m)), -1))
        fill = float(np.abs(self.values[known]).max()) if known.any() else 1.0
        fill = fill if fill > 0 else 1.0
        values = np.where(known, self.values, self.node_sign * fill)
        values = values.reshape(m, m, m)[:n, :n, :n]
        exact = known.reshape(m, m, m)[:n, :n, :n]
        if not self.signs_only and not np.all(exact | (values != 0)):
            raise RuntimeError("coarse-to-fine meshing left a node without a value (bug)")
        return SampledGrid(np.ascontiguousarray(values), np.ascontiguousarray(exact),
                           self.spec, self.num_queries)


def sample_grid(query_fn: QueryFn, spec: GridSpec, config: MeshingConfig,
                signs_only: bool = False) -> SampledGrid:
    """:func:`sample_dense` or :func:`sample_coarse_to_fine` according to ``config.mode``."""
    if config.mode == "dense":
        return sample_dense(query_fn, spec, config.batch_size)
    return sample_coarse_to_fine(query_fn, spec, config.lipschitz, config.coarse_stride,
                                 config.batch_size, signs_only, config.refine)


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
    # With a fitted cube the first grid only serves its inside nodes' bounding box.
    grids = {name: sample_grid(fn, first, config, signs_only=config.fit_cube)
             for name, fn in query_fns.items()}
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
