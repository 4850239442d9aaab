"""reconstruct.hand_frame: predicted, with a fake pose network whose 2D joints and depth
offsets are those of a known hand: the root is found, the meshes follow it, the error is
recorded; models without a pose network are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_eval_reconstruct import RECON_SCALE, WRIST, FakeModel, capsule_sdf

from gsdf.eval.evaluate import center_error_cm
from gsdf.eval.hand_frame import HandFrameError, hand_bones, with_predicted_frame
from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_samples
from gsdf.geometry.mesh_io import load_mesh
from gsdf.hand.root import project
from gsdf.models.hand_model import LayerHolder
from gsdf.paths import PredictionLayout

K = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])


def hand_joints(scale: float = 1.0) -> np.ndarray:
    """(21, 3) joints of the default hand model, posed, wrist at WRIST, sized by ``scale``."""
    layer = LayerHolder(None).layer
    g = torch.Generator().manual_seed(1)
    pose = (torch.randn(1, 48, generator=g, dtype=torch.float64) * 0.3).to(
        layer.v_template.dtype)
    joints = layer(pose).joints[0].double().numpy()
    return (joints - joints[0]) * scale + WRIST


class FakePoseNet:
    """Decodes like gsdf.models.heads.decode_volume: fixed pixels and depth offsets of
    ``joints`` (camera metres), placed around the given wrist depth."""

    def __init__(self, joints: np.ndarray):
        self.uv = project(joints, K)
        self.dz = joints[:, 2] - joints[0, 2]

    def predict_joints(self, image, wrist, cam_intr):
        k = cam_intr[0].double().numpy()
        z = wrist[0, 2].double().item() + self.dz
        rays = np.concatenate([self.uv, np.ones((21, 1))], 1) @ np.linalg.inv(k).T
        return torch.as_tensor(rays * z[:, None], dtype=torch.float32)[None]


class FakeGSDF(FakeModel):
    name = "fake_gsdf"

    def __init__(self, joints: np.ndarray):
        super().__init__()
        self.pose_net = FakePoseNet(joints)
        self.ik_layer = LayerHolder(None)
        self.wrists = []

    def encode(self, batch):
        self.wrists.append(batch["hand_center_3d"][0].double().numpy().copy())
        return super().encode(batch)


class FakeDataset:
    def __init__(self, ids):
        self.ids = list(ids)

    def __getitem__(self, index):
        return {"id": self.ids[index], "image": torch.zeros(3, 8, 8),
                "cam_intr": torch.as_tensor(K, dtype=torch.float32),
                "hand_center_3d": torch.as_tensor(WRIST, dtype=torch.float32),
                "recon_scale": torch.tensor(RECON_SCALE)}


def _run(tmp_path, model, hand_frame="predicted"):
    layout = PredictionLayout(tmp_path / "meshes", tmp_path / "poses")
    cfg = ReconstructConfig(resolution=64, hand_frame=hand_frame)
    manifest = reconstruct_samples(model, FakeDataset(["000000_000"]), ["000000_000"], layout,
                                   cfg)
    pose = json.loads(layout.pose("000000_000").read_text())
    return layout, manifest, pose


def test_predicted_frame_of_a_hand_of_the_model_size_is_the_annotated_wrist(tmp_path):
    model = FakeGSDF(hand_joints())
    layout, manifest, pose = _run(tmp_path, model)
    np.testing.assert_allclose(model.wrists[0], WRIST, atol=2e-6)  # float32 batch
    np.testing.assert_allclose(pose["root"], WRIST, atol=2e-6)
    assert pose["root_err_cm"] < 1e-3 and manifest["root_err_cm_median"] < 1e-3
    assert manifest["done"] == ["000000_000"] and manifest["no_root"] == []
    hand = load_mesh(layout.mesh("hand", "000000_000"))
    assert np.abs(capsule_sdf(hand.vertices)).max() < 2.0 / 63 / (RECON_SCALE / 2)


def test_a_larger_hand_moves_the_frame_and_the_error_is_recorded(tmp_path):
    """A hand 10% larger than the model is placed nearer (the scale ambiguity); the model gets
    that wrist, and the recorded error is the distance to the annotated wrist."""
    model = FakeGSDF(hand_joints(1.1))
    layout, manifest, pose = _run(tmp_path, model)
    root = np.asarray(pose["root"])
    assert root[2] < WRIST[2] - 0.02  # nearer: the skeleton is shrunk to the model's size
    np.testing.assert_allclose(project(root[None], K), project(WRIST[None], K), atol=1e-3)
    assert pose["root_err_cm"] == pytest.approx(center_error_cm(root, WRIST), abs=1e-4)
    hand = load_mesh(layout.mesh("hand", "000000_000"))
    np.testing.assert_allclose(model.wrists[0], root, atol=2e-6)
    # the fake fields live in camera space (hand frame + the state's wrist): the mesh lands on
    # the capsule only if meshing moves it back with the same wrist the model was given
    assert np.abs(capsule_sdf(hand.vertices)).max() < 2.0 / 63 / (RECON_SCALE / 2)


def test_ground_truth_frame_is_unchanged(tmp_path):
    model = FakeGSDF(hand_joints(1.1))
    _, manifest, pose = _run(tmp_path, model, "ground_truth")
    assert set(pose) == {"joints", "obj_center", "obj_corners"} and "no_root" not in manifest
    np.testing.assert_allclose(model.wrists[0], WRIST, atol=1e-6)


def test_models_without_a_pose_network_are_refused(tmp_path):
    with pytest.raises(HandFrameError, match="needs a model with a pose network"):
        _run(tmp_path, FakeModel())


def test_degenerate_pose_is_skipped_with_its_reason(tmp_path):
    joints = np.tile(WRIST, (21, 1))  # every joint on one pixel
    model = FakeGSDF(joints)
    layout = PredictionLayout(tmp_path / "meshes", tmp_path / "poses")
    manifest = reconstruct_samples(model, FakeDataset(["000000_000"]), ["000000_000"], layout,
                                   ReconstructConfig(resolution=32, hand_frame="predicted"))
    assert manifest["done"] == [] and manifest["no_root"][0]["id"] == "000000_000"
    assert "degenerate" in manifest["no_root"][0]["reason"]


def test_video_batches_get_the_middle_frame_wrist_everywhere():
    joints = hand_joints()
    model = FakeGSDF(joints)
    t = 3
    batch = {"image": torch.zeros(1, t, 3, 8, 8),
             "cam_intr": torch.as_tensor(K, dtype=torch.float32)[None, None].repeat(1, t, 1, 1),
             "hand_center_3d": torch.zeros(1, t, 3)}
    out, sols = with_predicted_frame(model, batch, hand_bones(model))
    assert out["hand_center_3d"].shape == (1, t, 3)
    np.testing.assert_allclose(out["hand_center_3d"][0].numpy(), np.tile(WRIST, (t, 1)),
                               atol=2e-6)


def test_unknown_hand_frame_is_refused():
    with pytest.raises(ValueError, match="hand_frame must be one of"):
        ReconstructConfig(hand_frame="oracle")
