"""Meshing with the decoder queries on the GPU (marked ``gpu``; skipped without CUDA): dense
and coarse-to-fine give the same meshes, which match the analytic surface; the coarse-to-fine
bookkeeping on the GPU gives the numpy bookkeeping's bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_samples
from gsdf.geometry.coarse_to_fine import choose_backend, sample_coarse_to_fine
from gsdf.geometry.grid import GridSpec, TorchField
from gsdf.geometry.mesh_io import load_mesh
from gsdf.paths import PredictionLayout

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
RECON_SCALE = 7.0
WRIST = [0.02, -0.03, 0.55]
CENTRE, RADIUS = np.array([0.05, 0.02, 0.56]), 0.03  # camera metres


class CudaSphereModel:
    """A model whose object field is a sphere, evaluated on the GPU; no hand branch."""

    hand_decoder = None
    obj_decoder = object()

    def __init__(self):
        self.devices: set[str] = set()

    def encode(self, batch):
        return {"wrist": batch["hand_center_3d"], "scale": batch["recon_scale"] / 2}

    def query(self, state, points, branch):
        self.devices.add(points.device.type)
        scale = state["scale"][0]
        p_cam = points[0] / scale + state["wrist"][0]
        sdf = (p_cam - torch.as_tensor(CENTRE, device=points.device, dtype=points.dtype)).norm(
            dim=1) - RADIUS
        return (sdf * scale).clamp(-0.05, 0.05)[None]

    def predict_pose(self, state):
        return {"joints": None, "obj_center": None, "obj_corners": None}


class Items:
    ids = ["000000_000"]

    def __getitem__(self, index):
        return {"id": self.ids[index], "hand_center_3d": torch.tensor(WRIST),
                "recon_scale": torch.tensor(RECON_SCALE)}


def test_dense_and_coarse_to_fine_on_cuda_agree(tmp_path):
    meshes = {}
    for mode in ("coarse_to_fine", "dense"):
        model = CudaSphereModel()
        layout = PredictionLayout(tmp_path / mode / "meshes", tmp_path / mode / "poses")
        cfg = ReconstructConfig(mode=mode, resolution=64)
        man = reconstruct_samples(model, Items(), Items.ids, layout, cfg, "cuda",
                                  point_batch_size=10000)
        assert man["done"] == Items.ids and model.devices == {"cuda"}
        meshes[mode] = load_mesh(layout.mesh("obj", Items.ids[0]))
    np.testing.assert_allclose(meshes["coarse_to_fine"].vertices, meshes["dense"].vertices,
                               atol=1e-6)
    dist = np.abs(np.linalg.norm(meshes["dense"].vertices - CENTRE, axis=1) - RADIUS)
    assert dist.max() < 0.5 * 2.0 / 63 / (RECON_SCALE / 2)  # within half a first-grid voxel


class DeviceOnlyField(TorchField):
    """A CUDA field that fails when called through the numpy interface (a host round trip)."""

    def __call__(self, points):
        raise AssertionError("the torch bookkeeping called the field with numpy points")


def _cuda_field(name, devices):
    def fn(points):
        devices.add((points.device.type, points.dtype))
        if name == "sphere":
            c = torch.tensor([0.1, 0.05, -0.1], dtype=torch.float64, device=points.device)
            d = (points - c).norm(dim=1) - 0.3
        else:  # a thin capsule (1.5 cm finger in the hand frame)
            a = torch.tensor([-0.3, 0.0, 0.02], dtype=torch.float64, device=points.device)
            b = torch.tensor([0.3, 0.1, 0.0], dtype=torch.float64, device=points.device)
            t = ((points - a) @ (b - a) / ((b - a) @ (b - a))).clamp(0.0, 1.0)
            d = (points - a - t[:, None] * (b - a)).norm(dim=1) - 0.0075 * 3.5
        return d.clamp(-0.05, 0.05)
    return fn


@pytest.mark.parametrize("signs_only", [False, True])
@pytest.mark.parametrize("refine", ["lipschitz", "sign"])
@pytest.mark.parametrize("name", ["sphere", "capsule"])
def test_bookkeeping_on_cuda_gives_the_numpy_bits(name, refine, signs_only):
    devices: set = set()
    fn = _cuda_field(name, devices)
    spec = GridSpec.reference_cube(97)
    ref = sample_coarse_to_fine(TorchField(fn, "cuda"), spec, 1.4, 8, 4096, signs_only, refine,
                                backend="numpy")
    field = DeviceOnlyField(fn, "cuda")
    assert choose_backend(field) == "torch"
    out = sample_coarse_to_fine(field, spec, 1.4, 8, 4096, signs_only, refine)  # auto
    assert devices == {("cuda", torch.float64)}
    assert ref.values.tobytes() == out.values.tobytes()
    assert ref.exact.tobytes() == out.exact.tobytes()
    assert ref.num_queries == out.num_queries < 97 ** 3 / 2  # not dense
