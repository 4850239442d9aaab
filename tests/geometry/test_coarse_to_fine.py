"""The coarse-to-fine bookkeeping in torch gives the same bits as the numpy one (on the CPU
here; on CUDA in tests/eval/test_reconstruct_gpu.py), through numpy and tensor fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analytic_fields import FINGER_RADIUS, capsule, sphere

from gsdf.geometry.coarse_to_fine import choose_backend, sample_coarse_to_fine
from gsdf.geometry.meshing import GridSpec, MeshingConfig, TorchField, mesh_fields


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The bookkeeping's tensors are small: one thread (no OpenMP spinning on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clamped_capsule(p):
    return np.clip(capsule(p), -0.05, 0.05)


def no_crossing(p):
    return np.full(len(p), 0.05)


def thin_blob(p):
    """A blob smaller than a stride-8 block, off its nodes (the sign rule loses it)."""
    h8 = 8 * 2.0 / 127
    centre = np.full(3, -1.0 + 5 * h8 + 0.2 * h8)
    return np.clip(np.linalg.norm(p - centre, axis=1) - 0.02, -0.05, 0.05)


def flat(p):
    """Near zero over a wide band (|f| < 0.01 over most of the cube): little is certified."""
    return 0.02 * sphere(p)


def two_thin_plates(p):
    """Two slabs thinner than a voxel of the coarse grids, side by side."""
    x = p[:, 0]
    return np.minimum(np.abs(x - 0.11) - 0.004, np.abs(x + 0.2) - FINGER_RADIUS / 3)


FIELDS = {"sphere": sphere, "capsule": capsule, "clamped_capsule": clamped_capsule,
          "no_crossing": no_crossing, "thin_blob": thin_blob, "flat": flat,
          "thin_plates": two_thin_plates}
# (resolution, coarse stride): non-powers of two, strides larger than the grid included
GRIDS = [(41, 4), (53, 8), (64, 16), (9, 16)]


def _sample(field, res, stride, refine, signs_only, backend, lipschitz=1.4):
    return sample_coarse_to_fine(field, GridSpec.reference_cube(res), lipschitz, stride, 4096,
                                 signs_only, refine, backend)


def _assert_identical(a, b):
    assert a.values.dtype == b.values.dtype == np.float64
    assert a.values.tobytes() == b.values.tobytes()
    assert a.exact.tobytes() == b.exact.tobytes()
    assert a.num_queries == b.num_queries and a.spec == b.spec


@pytest.mark.parametrize("signs_only", [False, True])
@pytest.mark.parametrize("refine", ["lipschitz", "sign"])
@pytest.mark.parametrize("res,stride", GRIDS)
@pytest.mark.parametrize("name", sorted(FIELDS))
def test_torch_bookkeeping_gives_the_numpy_bits(name, res, stride, refine, signs_only):
    field = FIELDS[name]
    ref = _sample(field, res, stride, refine, signs_only, "numpy")
    out = _sample(field, res, stride, refine, signs_only, "torch")
    _assert_identical(ref, out)


def test_an_unsound_lipschitz_bound_is_reproduced_too():
    """Where the bound is wrong (the finger is missed), both backends make the same mistake."""
    ref = _sample(capsule, 128, 8, "lipschitz", False, "numpy", lipschitz=0.05)
    _assert_identical(ref, _sample(capsule, 128, 8, "lipschitz", False, "torch", 0.05))


@pytest.mark.parametrize("refine", ["lipschitz", "sign"])
def test_mesh_fields_gives_identical_meshes_at_128(refine):
    fields = {"hand": clamped_capsule,
              "obj": lambda p: np.clip(sphere(p, (0.2, 0.0, 0.0), 0.15), -0.05, 0.05)}
    res = {b: mesh_fields(fields, MeshingConfig(refine=refine, lipschitz=1.4, backend=b))
           for b in ("numpy", "torch")}
    assert res["numpy"].spec == res["torch"].spec
    assert res["numpy"].num_queries == res["torch"].num_queries
    for name in fields:
        for a, b in zip(res["numpy"].meshes[name], res["torch"].meshes[name], strict=True):
            assert a.tobytes() == b.tobytes()


def test_tensor_field_is_queried_with_float64_tensors_in_the_numpy_chunks():
    """A tensor-native field gets float64 tensors on its device, never numpy arrays, in the
    same chunks (same points, same order) as the numpy bookkeeping hands a numpy field: a
    decoder's values then do not depend on the backend either."""
    numpy_chunks, tensor_chunks = [], []

    def numpy_field(p):
        numpy_chunks.append(p.copy())
        return clamped_capsule(p)

    def tensor_field(points):
        assert isinstance(points, torch.Tensor) and points.dtype == torch.float64
        tensor_chunks.append(points.numpy().copy())
        a = torch.tensor([-0.3, 0.0, 0.02], dtype=torch.float64)
        b = torch.tensor([0.3, 0.1, 0.0], dtype=torch.float64)
        t = ((points - a) @ (b - a) / ((b - a) @ (b - a))).clamp(0.0, 1.0)
        d = (points - a - t[:, None] * (b - a)).norm(dim=1) - FINGER_RADIUS
        return d.clamp(-0.05, 0.05).float()  # any float dtype comes back as float64

    class DeviceOnlyField(TorchField):
        def __call__(self, points):
            raise AssertionError("the torch bookkeeping called the field with numpy points")

    spec = GridSpec.reference_cube(64)
    ref = sample_coarse_to_fine(numpy_field, spec, 1.4, 8, 1000, backend="numpy")
    out = sample_coarse_to_fine(DeviceOnlyField(tensor_field, "cpu"), spec, 1.4, 8, 1000,
                                backend="torch")
    assert len(numpy_chunks) == len(tensor_chunks) > 1
    for a, b in zip(numpy_chunks, tensor_chunks, strict=True):
        assert a.tobytes() == b.tobytes() and len(a) <= 1000
    assert ref.num_queries == out.num_queries
    np.testing.assert_array_equal(ref.exact, out.exact)
    np.testing.assert_allclose(ref.values, out.values, atol=1e-6)  # float32 field values


def test_torch_field_also_answers_numpy_calls_and_checks_shapes():
    field = TorchField(lambda p: p[:, 0] * 2.0, "cpu")
    np.testing.assert_array_equal(field(np.ones((5, 3))), np.full(5, 2.0))
    bad = TorchField(lambda p: p[:, :2], "cpu")
    with pytest.raises(ValueError, match="values for"):
        sample_coarse_to_fine(bad, GridSpec.reference_cube(16), backend="torch")


def test_backend_follows_the_fields_device():
    assert choose_backend(sphere) == "numpy"
    assert choose_backend(TorchField(lambda p: p[:, 0], "cpu")) == "numpy"
    assert choose_backend(TorchField(lambda p: p[:, 0], "cuda")) == "torch"
    assert choose_backend(sphere, "torch") == "torch"
    with pytest.raises(ValueError, match="backend"):
        choose_backend(sphere, "jax")
    with pytest.raises(ValueError, match="backend"):
        MeshingConfig(backend="gpu")
