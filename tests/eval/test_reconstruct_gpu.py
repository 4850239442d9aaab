"""Meshing with the decoder queries on the GPU (marked ``gpu``; skipped without CUDA): dense
and coarse-to-fine give the same meshes, which match the analytic surface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_samples
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
