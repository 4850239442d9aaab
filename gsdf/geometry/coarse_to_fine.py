"""Coarse-to-fine grid sampling (DESIGN.md section 10): the mesh of the dense grid from a
fraction of its queries.

:func:`sample_coarse_to_fine` returns a grid on which marching cubes gives the same mesh as on
the dense grid while querying only a fraction of its nodes:

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

With ``refine="sign"`` (opt-in, after the Multiresolution IsoSurface Extraction of Occupancy
Networks, Mescheder et al. CVPR 2019) a block is refined when its 9 node signs differ, and from
the cells of the last level the surface is followed across block borders (every cell with a
sign change gets its corners evaluated, then its 26 neighbours are examined); no Lipschitz
bound is assumed. This is not certified (a surface detail thinner than a block that passes
between the nodes of a block is lost), but a learned field whose values stay close to zero
over a wide band around its surface (a briefly trained decoder: small values, small gradient)
can prove nothing under the Lipschitz rule and is queried there almost densely; the sign rule
only follows sign changes.

The first (``[-1, 1]^3``) grid only serves the bounding box of its inside nodes, so there
(``signs_only``) blocks lying inside the box found so far are not refined and no exact values
are needed. The clamp of the fields bounds the gain: a saturated value only certifies a radius
``clamp / L``, so far from the surface blocks of 4 voxels of the first grid are the coarsest
that can be certified (with ``L = 1.4`` and the 0.05 clamp, at resolution 128).

The bookkeeping (block tests, neighbour proofs, node-index sets over the padded grid) runs in
torch on the field's device (:class:`TorchCoarseToFine`), so on a GPU the points never leave
it; on the CPU the numpy implementation (:mod:`gsdf.geometry.coarse_to_fine_numpy`) is faster
and is used there (``backend="auto"``). Both give the same bits.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from gsdf.geometry.coarse_to_fine_numpy import (
    CORNERS,
    COVER_RADIUS,
    NEIGHBOUR_DIST,
    NEIGHBOURS,
    NumpyCoarseToFine,
    offsets,
)
from gsdf.geometry.grid import (
    GridSpec,
    QueryFn,
    SampledGrid,
    TorchField,
    as_field,
    field_device,
    query_batched_torch,
    sample_dense,
)

Refine = Literal["lipschitz", "sign"]
Backend = Literal["auto", "numpy", "torch"]

__all__ = ["COVER_RADIUS", "Backend", "Refine", "TorchCoarseToFine", "choose_backend",
           "sample_coarse_to_fine"]


def choose_backend(field: QueryFn | TorchField, backend: Backend = "auto") -> str:
    """``numpy`` or ``torch``: ``auto`` is torch on an accelerator, numpy on the CPU (where it
    is faster, see docs/gpus.md)."""
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be auto, numpy or torch, got {backend!r}")
    if backend != "auto":
        return backend
    return "numpy" if field_device(field).type == "cpu" else "torch"


def sample_coarse_to_fine(query_fn: QueryFn | TorchField, spec: GridSpec,
                          lipschitz: float = 1.5, coarse_stride: int = 8,
                          batch_size: int = 65536, signs_only: bool = False,
                          refine: Refine = "lipschitz", backend: Backend = "auto"
                          ) -> SampledGrid:
    """Evaluate the field only where the zero level set may pass (see the module docstring).

    Args:
        query_fn: the field, a numpy callable ``(K, 3) -> (K,)`` or a :class:`TorchField`.
        spec: the grid.
        lipschitz: assumed Lipschitz constant of the field.
        coarse_stride: block size of the first level (power of 2; 1 = dense).
        batch_size: maximum points per query call.
        signs_only: only the bounding box of the inside nodes is needed (the reference's first
            grid): blocks that cannot move that box are not refined and no exact values are
            computed; the returned values are then only good for :func:`fitted_cube`.
        refine: ``lipschitz`` (certified) or ``sign`` (follow sign changes; module docstring).
        backend: where the bookkeeping runs: ``torch`` (on the field's device), ``numpy``
            (CPU) or ``auto`` (:func:`choose_backend`). The results are identical.

    Returns:
        with ``signs_only=False``, a grid on which marching cubes gives the dense grid's mesh,
        provided the field is ``lipschitz``-Lipschitz.
    """
    if refine not in ("lipschitz", "sign"):
        raise ValueError(f"refine must be lipschitz or sign, got {refine!r}")
    backend = choose_backend(query_fn, backend)
    if coarse_stride < 2:
        return sample_dense(query_fn, spec, batch_size)
    args = (spec, lipschitz, coarse_stride, batch_size, signs_only, refine)
    if backend == "numpy":
        run: NumpyCoarseToFine | TorchCoarseToFine = NumpyCoarseToFine(query_fn, *args)
    else:
        run = TorchCoarseToFine(as_field(query_fn), *args)
    final = run.refine_blocks()
    run.sign_certified_nodes()
    if len(final):
        run.last_level(final)
    return run.result()


def _unique(lin: torch.Tensor, size: int) -> torch.Tensor:
    """Sorted unique values of the integer tensor ``lin`` in ``[0, size)`` (a mask: O(size))."""
    mask = torch.zeros(size, dtype=torch.bool, device=lin.device)
    mask[lin.reshape(-1)] = True
    return mask.nonzero().reshape(-1)


class TorchCoarseToFine:
    """State of one :func:`sample_coarse_to_fine` call on a padded grid of ``m^3`` nodes, in
    torch on the field's device; the same steps as :class:`NumpyCoarseToFine`, the same bits.

    Attributes:
        values, known, node_sign: (m^3,) queried values (float64), whether queried, proven
            signs of the nodes not queried (0: unknown).
        box_lo, box_hi: (3,) node-index bounding box of the inside nodes found so far
            (``signs_only`` mode).
        certified: ``(blocks (K, 3), stride, signs (K,))`` of every block proven one-signed.
    """

    def __init__(self, field: TorchField, spec: GridSpec, lipschitz: float, stride: int,
                 batch_size: int, signs_only: bool, refine: str):
        self.field, self.spec, self.lipschitz = field, spec, lipschitz
        self.stride, self.batch_size = stride, batch_size
        self.signs_only, self.refine = signs_only, refine
        self.n = n = spec.resolution
        self.blocks_per_axis = max(1, math.ceil((n - 1) / stride))
        # padded nodes per axis; padding nodes lie outside the cube
        self.m = m = self.blocks_per_axis * stride + 1
        self.dev = dev = field.device
        self.values = torch.zeros(m ** 3, dtype=torch.float64, device=dev)
        self.known = torch.zeros(m ** 3, dtype=torch.bool, device=dev)
        self.node_sign = torch.zeros(m ** 3, dtype=torch.float64, device=dev)
        self.num_queries = 0
        self.box_lo = torch.full((3,), n, dtype=torch.int64, device=dev)
        self.box_hi = torch.full((3,), -1, dtype=torch.int64, device=dev)
        self.certified: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        self.corners = self.tensor(CORNERS)  # (8, 3) corners of a unit cell

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """A numpy constant on the device."""
        return torch.as_tensor(array, device=self.dev)

    def lin(self, index: torch.Tensor) -> torch.Tensor:
        """Linear padded-grid indices of (..., 3) node indices: (...)."""
        m = self.m
        return index[..., 0] * (m * m) + index[..., 1] * m + index[..., 2]

    def unravel(self, lin: torch.Tensor) -> torch.Tensor:
        """Node indices (K, 3) of linear indices (K,) (``np.unravel_index``)."""
        m = self.m
        return torch.stack((lin // (m * m), lin // m % m, lin % m), -1)

    def evaluate(self, lin: torch.Tensor) -> torch.Tensor:
        """Values at linear node indices (any shape), querying the unknown ones in ascending
        order of their linear index (the numpy order, so the same query chunks)."""
        todo = _unique(lin[~self.known[lin]], self.m ** 3)
        if len(todo):
            points = self.spec.points_torch(self.unravel(todo))
            self.values[todo] = query_batched_torch(self.field, points, self.batch_size)
            self.known[todo] = True
            self.num_queries += len(todo)
        return self.values[lin]

    def grow_box(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Grow the inside box by node ranges [lo, hi] (K, 3), clipped to the grid."""
        n = self.n
        if len(lo):
            self.box_lo = torch.minimum(self.box_lo, lo.clamp(max=n - 1).amin(0))
            self.box_hi = torch.maximum(self.box_hi, hi.clamp(max=n - 1).amax(0))

    def _grow_box_inside(self, index: torch.Tensor) -> None:
        """Grow the inside box by inside nodes (K, 3) of the padded grid (padding dropped)."""
        index = index[(index < self.n).all(1)]
        self.grow_box(index, index)

    def _test_blocks(self, blocks: torch.Tensor, stride: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The 9-node test of blocks (K, 3) of ``stride``: (nodes (K, 9, 3), values (K, 9),
        ok (K,) proven one-signed, negative (K,) all 9 values negative)."""
        h = self.spec.voxel_size
        corners = blocks[:, None, :] + stride * self.corners  # (K, 8, 3)
        nodes = torch.cat([corners, blocks[:, None, :] + stride // 2], 1)  # (K, 9, 3)
        vals = self.evaluate(self.lin(nodes))  # (K, 9)
        positive, negative = (vals > 0).all(1), (vals < 0).all(1)
        ok = positive | negative
        if self.refine != "sign":
            # Every point of the block lies within COVER_RADIUS * side of one of the 9 nodes;
            # one node farther than the block diagonal also proves the block has no crossing.
            cover = self.lipschitz * COVER_RADIUS * stride * h
            diagonal = self.lipschitz * math.sqrt(3.0) * stride * h
            mag = vals.abs()
            ok &= (mag.amin(1) > cover) | (mag.amax(1) > diagonal)
        signs = torch.where(positive[ok], 1.0, -1.0).to(torch.float64)
        self.certified.append((blocks[ok], stride, signs))
        return nodes, vals, ok, negative

    def refine_blocks(self) -> torch.Tensor:
        """Test blocks level by level (stride, stride / 2, ..., 2); certified blocks go to
        :attr:`certified`. Returns the uncertified blocks of stride 2, (K, 3) lower corners."""
        n, stride = self.n, self.stride
        grid = torch.arange(self.blocks_per_axis, device=self.dev) * stride
        blocks = torch.stack(torch.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
        while len(blocks):
            blocks = blocks[(blocks < n - 1).all(1)]  # blocks holding no cell of the grid
            nodes, vals, ok, negative = self._test_blocks(blocks, stride)
            rest = blocks[~ok]
            if self.signs_only:
                self._grow_box_inside(nodes[~ok][vals[~ok] < 0])
                neg_blocks = blocks[ok & negative]
                self.grow_box(neg_blocks, neg_blocks + stride)
                hi = (rest + stride).clamp(max=n - 1)
                rest = rest[~((rest >= self.box_lo).all(1) & (hi <= self.box_hi).all(1))]
            if stride == 2:
                return rest
            stride //= 2
            blocks = (rest[:, None, :] + stride * self.corners).reshape(-1, 3)
        return torch.zeros((0, 3), dtype=torch.int64, device=self.dev)

    def sign_certified_nodes(self) -> None:
        """Signs of the nodes of certified blocks (proven, or assumed under the sign rule),
        finer levels written after coarser ones (as in numpy: the last write wins)."""
        for cert_blocks, cert_stride, cert_signs in self.certified:
            offset_lin = self.lin(self.tensor(offsets(cert_stride)))
            for start in range(0, len(cert_blocks), 4096):
                chunk = cert_blocks[start:start + 4096]
                # (k, (s+1)^3) linear indices: block corner + offset. Within one level all
                # writes to a node agree (aligned blocks sharing a node share a corner).
                lin = self.lin(chunk)[:, None] + offset_lin
                self.node_sign[lin] = cert_signs[start:start + 4096, None].expand(lin.shape)

    def _prove_signs(self, unknown: torch.Tensor) -> torch.Tensor:
        """Signs of nodes (linear indices) proven by a neighbour ``c`` with
        ``|f(c)| > L * distance`` (Lipschitz rule; 0 = no proof): (K,) float64."""
        m, h = self.m, self.spec.voxel_size
        proven = torch.zeros(len(unknown), dtype=torch.float64, device=self.dev)
        if self.refine != "lipschitz":
            return proven
        index = self.unravel(unknown)
        # per axis: may the neighbour index step down / up and stay inside [0, m - 1]
        steps = {-1: index > 0, 1: index < m - 1}
        for offset, dist in zip(NEIGHBOURS, NEIGHBOUR_DIST, strict=True):
            valid = torch.ones(len(unknown), dtype=torch.bool, device=self.dev)
            for axis, step in enumerate(offset):
                if step:
                    valid &= steps[int(step)][:, axis]
            step_lin = int(offset[0]) * m * m + int(offset[1]) * m + int(offset[2])
            nb_lin = torch.where(valid, unknown + step_lin, 0)
            v = self.values[nb_lin]
            threshold = float(self.lipschitz * dist * h)  # numpy's float64 product
            good = valid & self.known[nb_lin] & (v.abs() > threshold) & (proven == 0)
            proven = torch.where(good, torch.sign(v), proven)
        return proven

    def _cell_signs(self, cell_lin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Corner signs of cells (C, 8) (exact where known, else proven) and whether each cell
        has a corner of unknown sign (C,)."""
        known, node_sign = self.known[cell_lin], self.node_sign[cell_lin]
        sign = torch.where(known, torch.sign(self.values[cell_lin]), node_sign)
        return sign, (~known & (node_sign == 0)).any(1)

    def last_level(self, final: torch.Tensor) -> None:
        """The 27 nodes of each uncertified 2-voxel block: proven or evaluated; then the cells
        whose corner signs differ (the only ones marching cubes draws) get exact corners."""
        m, n = self.m, self.n
        lin = _unique(self.lin(final)[:, None] + self.lin(self.tensor(offsets(2))), m ** 3)
        unknown = lin[~self.known[lin]]
        proven = self._prove_signs(unknown)
        self.node_sign[unknown] = proven
        self.evaluate(unknown[proven == 0])
        cells = (final[:, None, :] + self.tensor(offsets(1))).reshape(-1, 3)  # (8K, 3)
        cells = cells[(cells < n - 1).all(1)]
        if self.refine == "sign":
            # Follow the surface from the cells of the final blocks, across block borders.
            self._follow_surface(cells)
        elif self.signs_only:
            inside = self.values[lin] * self.known[lin] + self.node_sign[lin] < 0
            self._grow_box_inside(self.unravel(lin[inside]))
        else:
            cell_lin = self.lin(cells)[:, None] + self.lin(self.corners)  # (C, 8)
            sign, _ = self._cell_signs(cell_lin)
            mixed = ~((sign > 0).all(1) | (sign < 0).all(1))
            self.evaluate(cell_lin[mixed])

    def _follow_surface(self, cells: torch.Tensor) -> None:
        """Evaluate the corners of every cell the zero level set crosses that is connected to
        ``cells`` (C, 3) (lower corners in ``[0, n - 2]``): a cell whose corner signs differ
        gets its 8 corners evaluated, then its 26 neighbours are examined, until no new cell
        changes sign. Cells with a corner of unknown sign (inside the box of ``signs_only``
        mode, never refined) are left."""
        m, n = self.m, self.n
        corners = self.lin(self.corners)  # (8,) linear offsets of a cell's corners
        neighbours = self.tensor(offsets(2) - 1)  # (27, 3)
        done = torch.zeros(m ** 3, dtype=torch.bool, device=self.dev)
        frontier = _unique(self.lin(cells), m ** 3)
        while len(frontier):
            sign, unsigned = self._cell_signs(frontier[:, None] + corners)  # (K, 8), (K,)
            mixed = ~((sign > 0).all(1) | (sign < 0).all(1)) & ~unsigned
            done[frontier] = True
            frontier = frontier[mixed]
            if not len(frontier):
                break
            self.evaluate(frontier[:, None] + corners)
            nb = (self.unravel(frontier)[:, None, :] + neighbours).reshape(-1, 3)  # (27K, 3)
            nb = nb[((nb >= 0) & (nb <= n - 2)).all(1)]
            frontier = _unique(self.lin(nb), m ** 3)
            frontier = frontier[~done[frontier]]

    def result(self) -> SampledGrid:
        """The grid (numpy, on the host): nodes never evaluated are filled with
        ``sign * fill``."""
        m, n, known = self.m, self.n, self.known
        exact_values = self.values[known]
        fill = float(exact_values.abs().max()) if len(exact_values) else 1.0
        fill = fill if fill > 0 else 1.0
        values = torch.where(known, self.values, self.node_sign * fill)
        values = values.reshape(m, m, m)[:n, :n, :n]
        exact = known.reshape(m, m, m)[:n, :n, :n]
        if not self.signs_only and not bool((exact | (values != 0)).all()):
            raise RuntimeError("coarse-to-fine meshing left a node without a value (bug)")
        return SampledGrid(values.contiguous().cpu().numpy(), exact.contiguous().cpu().numpy(),
                           self.spec, self.num_queries)
