"""Grids and fields of the meshing code (:mod:`gsdf.geometry.meshing`).

A field is either a numpy callable, ``query_fn(points (K, 3) float64) -> (K,)`` (analytic
fields, tests), or a :class:`TorchField`, which is queried with float64 tensors on its device
(the decoders: :func:`gsdf.eval.reconstruct.decoder_field`), so that the coarse-to-fine
bookkeeping can run on the decoders' device without moving points through the host. Both kinds
can be called with numpy points.

Grid conventions (the reference's): array axis 0, 1, 2 = x, y, z; node ``(i, j, k)`` lies at
``origin + (i, j, k) * voxel_size``. Coordinates are in the hand frame (dimensionless, metres
times ``recon_scale / 2``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

QueryFn = Callable[[np.ndarray], np.ndarray]
"""``query_fn(points (K, 3) float64 hand frame) -> (K,) signed distances``."""


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

    def points_torch(self, index: torch.Tensor) -> torch.Tensor:
        """:meth:`points` on tensors, on ``index``'s device: (K, 3) int64 -> (K, 3) float64.
        The same two float64 operations (product, then sum), so the same bits as numpy."""
        origin = torch.tensor(self.origin, dtype=torch.float64, device=index.device)
        return index.to(torch.float64) * self.voxel_size + origin


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


class TorchField:
    """A field queried with tensors on ``device``.

    Args:
        fn: ``fn(points (K, 3) float64 tensor on device) -> (K,) tensor on device`` (any float
            dtype; read as float64).
        device: where ``fn`` wants its points (and where the coarse-to-fine bookkeeping runs).
        numpy_fn: the same field as a numpy callable, if it is one (:meth:`from_numpy`): numpy
            callers then call it directly.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device | str,
                 numpy_fn: QueryFn | None = None):
        self.fn, self.device, self.numpy_fn = fn, torch.device(device), numpy_fn

    @classmethod
    def from_numpy(cls, fn: QueryFn) -> TorchField:
        """A numpy field on the CPU: tensors go to ``fn`` as numpy views (no copy)."""
        def query(points: torch.Tensor) -> torch.Tensor:
            out = np.asarray(fn(points.numpy()), dtype=np.float64)
            return torch.from_numpy(out)
        return cls(query, "cpu", fn)

    def query(self, points: torch.Tensor) -> torch.Tensor:
        """Values at (K, 3) float64 points on :attr:`device`: (K,) float64 on the device."""
        return self.fn(points).reshape(-1).to(torch.float64)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """The numpy interface: (K, 3) float64 points -> (K,) float64."""
        if self.numpy_fn is not None:
            return np.asarray(self.numpy_fn(points), dtype=np.float64)
        pts = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float64))
        return self.query(pts.to(self.device)).cpu().numpy()


def as_field(field: QueryFn | TorchField) -> TorchField:
    """A :class:`TorchField` of either kind of field (numpy callables run on the CPU)."""
    return field if isinstance(field, TorchField) else TorchField.from_numpy(field)


def field_device(field: QueryFn | TorchField) -> torch.device:
    """Where a field is evaluated (numpy callables: the CPU)."""
    return field.device if isinstance(field, TorchField) else torch.device("cpu")


def query_batched(query_fn: QueryFn, points: np.ndarray, batch_size: int) -> np.ndarray:
    """Evaluate ``query_fn`` on (K, 3) points in chunks of ``batch_size``: (K,) float64."""
    out = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), batch_size):
        chunk = points[start:start + batch_size]
        values = np.asarray(query_fn(chunk), dtype=np.float64).reshape(-1)
        if values.shape != (len(chunk),):
            raise ValueError(f"query_fn returned {values.shape} values for {len(chunk)} points")
        out[start:start + len(chunk)] = values
    return out


def query_batched_torch(field: TorchField, points: torch.Tensor,
                        batch_size: int) -> torch.Tensor:
    """:func:`query_batched` on tensors: (K, 3) float64 on the field's device -> (K,) float64
    there; the same chunks in the same order."""
    out = torch.empty(len(points), dtype=torch.float64, device=points.device)
    for start in range(0, len(points), batch_size):
        chunk = points[start:start + batch_size]
        values = field.query(chunk)
        if values.shape != (len(chunk),):
            raise ValueError(f"query_fn returned {tuple(values.shape)} values for "
                             f"{len(chunk)} points")
        out[start:start + len(chunk)] = values
    return out


def sample_dense(query_fn: QueryFn, spec: GridSpec, batch_size: int = 65536) -> SampledGrid:
    """Evaluate the field at every node of ``spec`` (what the reference does)."""
    n = spec.resolution
    index = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), -1).reshape(-1, 3)
    values = query_batched(query_fn, spec.points(index), batch_size).reshape(n, n, n)
    return SampledGrid(values, np.ones((n, n, n), dtype=bool), spec, n ** 3)
