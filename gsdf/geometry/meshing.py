"""Meshing of SDF fields: grid sampling and marching cubes (DESIGN.md section 10).

The reference (zerchen/gSDF ``playground/*/recon.py``) evaluates the decoders densely twice:
a 128^3 grid over the cube ``[-1, 1]^3`` of the hand frame, then a second 128^3 grid over the
bounding cube of the negative (inside) nodes of the first grid, grown by 2 voxels on each side
(the same cube for the hand and the object fields), and runs marching cubes on the second grid.
:func:`mesh_fields` does the same, by default sampling each grid coarse to fine
(:mod:`gsdf.geometry.coarse_to_fine`: the dense grid's mesh from a fraction of its queries),
and runs marching cubes on the CPU (scikit-image).

Fields are numpy callables or :class:`~gsdf.geometry.grid.TorchField` (queried with tensors on
their device), see :mod:`gsdf.geometry.grid`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import numpy as np
import skimage.measure

from gsdf.geometry.coarse_to_fine import (
    COVER_RADIUS,
    Backend,
    Refine,
    choose_backend,
    sample_coarse_to_fine,
)
from gsdf.geometry.grid import GridSpec, QueryFn, SampledGrid, TorchField, as_field, sample_dense

__all__ = ["COVER_RADIUS", "Backend", "GridSpec", "MeshingConfig", "MeshingResult", "Mode",
           "QueryFn", "Refine", "SampledGrid", "TorchField", "as_field", "choose_backend",
           "fitted_cube", "hand_to_camera", "marching_cubes", "mesh_fields",
           "sample_coarse_to_fine", "sample_dense", "sample_grid"]

Mode = Literal["coarse_to_fine", "dense"]



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
            dense for a ``lipschitz``-Lipschitz field) or ``sign`` (blocks with a sign change,
            then the surface followed; see :mod:`gsdf.geometry.coarse_to_fine`).
        backend: where the coarse-to-fine bookkeeping runs (a runtime choice, same results):
            ``auto`` (torch on the fields' accelerator, numpy on the CPU), ``numpy``, ``torch``.
    """

    mode: Mode = "coarse_to_fine"
    resolution: int = 128
    fit_cube: bool = True
    lipschitz: float = 1.5
    coarse_stride: int = 8
    batch_size: int = 65536
    refine: Refine = "lipschitz"
    backend: Backend = "auto"

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
        if self.backend not in ("auto", "numpy", "torch"):
            raise ValueError(f"backend must be auto, numpy or torch, got {self.backend!r}")


def sample_grid(query_fn: QueryFn | TorchField, spec: GridSpec, config: MeshingConfig,
                signs_only: bool = False) -> SampledGrid:
    """:func:`sample_dense` or :func:`sample_coarse_to_fine` according to ``config.mode``."""
    if config.mode == "dense":
        return sample_dense(query_fn, spec, config.batch_size)
    return sample_coarse_to_fine(query_fn, spec, config.lipschitz, config.coarse_stride,
                                 config.batch_size, signs_only, config.refine, config.backend)


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


def mesh_fields(query_fns: Mapping[str, QueryFn | TorchField],
                config: MeshingConfig) -> MeshingResult:
    """Mesh several fields of one sample as the reference does (shared fitted cube).

    Args:
        query_fns: field name (``hand``, ``obj``) -> ``query_fn(points (K, 3)) -> (K,)`` (numpy)
            or a :class:`TorchField`.
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
