"""The coarse-to-fine bookkeeping in numpy, on the CPU (the algorithm is described in
:mod:`gsdf.geometry.coarse_to_fine`, whose torch implementation gives the same bits).

Kept as the reference the torch bookkeeping is tested against, and as the faster one on small
CPUs (``backend="numpy"`` of :func:`gsdf.geometry.coarse_to_fine.sample_coarse_to_fine`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from gsdf.geometry.grid import GridSpec, QueryFn, SampledGrid, query_batched

# Offsets of the 8 corners of a unit cell, (8, 3).
CORNERS = np.array(list(itertools.product((0, 1), repeat=3)), dtype=np.int64)
# Covering radius of the 8 corners + the centre of a cube of side 1 (attained at (1/2, 1/4, 0)).
COVER_RADIUS = math.sqrt(5.0) / 4.0


def offsets(span: int) -> np.ndarray:
    """All integer offsets in ``[0, span]^3``: ((span + 1)^3, 3)."""
    r = np.arange(span + 1)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


# The 26 neighbours of a node and their distances in voxels.
NEIGHBOURS = offsets(2) - 1
NEIGHBOURS = NEIGHBOURS[np.abs(NEIGHBOURS).sum(1) > 0]
NEIGHBOUR_DIST = np.linalg.norm(NEIGHBOURS, axis=1)


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
    corners = CORNERS @ strides  # (8,) linear offsets of a cell's corners
    neighbours = offsets(2) - 1  # (27, 3)
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



class NumpyCoarseToFine:
    """State of one :func:`sample_coarse_to_fine` call on a padded grid of ``m^3`` nodes.

    Attributes:
        values, known, node_sign: (m^3,) queried values, whether queried, proven signs of the
            nodes not queried (0: unknown).
        box_lo, box_hi: (3,) node-index bounding box of the inside nodes found so far
            (``signs_only`` mode).
        certified: ``(blocks (K, 3), stride, signs (K,))`` of every block proven one-signed.
    """

    def __init__(self, query_fn: QueryFn, spec: GridSpec, lipschitz: float, stride: int,
                 batch_size: int, signs_only: bool, refine: str):
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
            self.values[todo] = query_batched(self.query_fn, self.spec.points(todo_index),
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
            corners = blocks[:, None, :] + stride * CORNERS  # (K, 8, 3)
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
            blocks = (rest[:, None, :] + stride * CORNERS).reshape(-1, 3)
        return np.zeros((0, 3), dtype=np.int64)

    def sign_certified_nodes(self) -> None:
        """Signs of the nodes of certified blocks (proven, or assumed under the sign rule)."""
        for cert_blocks, cert_stride, cert_signs in self.certified:
            offset_lin = _lin(offsets(cert_stride), self.strides)
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
        for offset, dist in zip(NEIGHBOURS, NEIGHBOUR_DIST, strict=True):
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
        lin = _unique(_lin(final, self.strides)[:, None] + _lin(offsets(2), self.strides),
                      m ** 3)
        unknown = lin[~self.known[lin]]
        proven = self._prove_signs(unknown)
        self.node_sign[unknown] = proven
        self.evaluate(unknown[proven == 0])
        cells = (final[:, None, :] + offsets(1)).reshape(-1, 3)  # (8K, 3) lower corners
        cells = cells[(cells < n - 1).all(1)]
        if self.refine == "sign":
            # Follow the surface from the cells of the final blocks, across block borders.
            _follow_surface(cells, self.evaluate, self.values, self.known, self.node_sign, n, m)
        elif self.signs_only:
            inside = self.values[lin] * self.known[lin] + self.node_sign[lin] < 0
            self._grow_box_inside(np.stack(np.unravel_index(lin[inside], (m, m, m)), -1))
        else:
            cell_lin = _lin(cells, self.strides)[:, None] + _lin(CORNERS, self.strides)  # (C, 8)
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

