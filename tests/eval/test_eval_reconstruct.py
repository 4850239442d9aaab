"""The reconstruct driver with a fake model (analytic SDFs) and a fake dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_samples
from gsdf.geometry.mesh_io import load_mesh
from gsdf.paths import PredictionLayout

RECON_SCALE = 7.0
WRIST = np.array([0.02, -0.03, 0.55])
# Camera space: a finger-like capsule from the wrist along +x and a sphere object beside it.
CAPSULE = (WRIST, WRIST + [0.08, 0.0, 0.0], 0.009)
SPHERE = (WRIST + [0.04, 0.035, 0.0], 0.025)


def capsule_sdf(p: np.ndarray) -> np.ndarray:
    a, b, r = CAPSULE
    pa, ba = p - a, b - a
    t = np.clip(pa @ ba / (ba @ ba), 0, 1)
    return np.linalg.norm(pa - t[:, None] * ba, axis=1) - r


def sphere_sdf(p: np.ndarray) -> np.ndarray:
    c, r = SPHERE
    return np.linalg.norm(p - c, axis=1) - r


class FakeModel:
    """encode / query / predict_pose with analytic clamped SDFs in the hand frame."""

    hand_decoder = object()
    obj_decoder = object()

    def __init__(self):
        self.queries = 0

    def encode(self, batch):
        return {"wrist": batch["hand_center_3d"], "scale": batch["recon_scale"] / 2,
                "empty_obj": batch["id"][0].endswith("empty")}

    def query(self, state, points, branch):
        assert points.dim() == 3 and points.shape[0] == 1
        self.queries += points.shape[1]
        scale = float(state["scale"][0])
        p_cam = points[0].double().numpy() / scale + state["wrist"][0].double().numpy()
        if branch == "obj" and state["empty_obj"]:
            return torch.full((1, points.shape[1]), 0.05)
        sdf = capsule_sdf(p_cam) if branch == "hand" else sphere_sdf(p_cam)
        return torch.as_tensor(np.clip(sdf * scale, -0.05, 0.05), dtype=torch.float32)[None]

    def predict_pose(self, state):
        joints = torch.as_tensor(np.tile(WRIST, (21, 1)), dtype=torch.float32)[None]
        return {"joints": joints, "obj_center": torch.as_tensor(SPHERE[0])[None],
                "obj_corners": None}


class FakeDataset:
    def __init__(self, ids):
        self.ids = list(ids)

    def __getitem__(self, index):
        return {"id": self.ids[index], "image": torch.zeros(3, 8, 8),
                "hand_center_3d": torch.as_tensor(WRIST, dtype=torch.float32),
                "recon_scale": torch.tensor(RECON_SCALE)}


def _run(tmp_path, ids, mode="coarse_to_fine"):
    layout = PredictionLayout(tmp_path / "meshes", tmp_path / "poses")
    model = FakeModel()
    cfg = ReconstructConfig(mode=mode, resolution=128, lipschitz=1.4)
    manifest = reconstruct_samples(model, FakeDataset(["000000_000", "000000_empty"]), ids,
                                   layout, cfg)
    return layout, manifest, model


def test_meshes_land_in_camera_space_and_poses_are_written(tmp_path):
    layout, manifest, _ = _run(tmp_path, ["000000_000"])
    assert manifest["done"] == ["000000_000"] and manifest["no_surface"] == []
    hand = load_mesh(layout.mesh("hand", "000000_000"))
    obj = load_mesh(layout.mesh("obj", "000000_000"))
    voxel_m = 2.0 / 127 / (RECON_SCALE / 2)  # first-grid voxel in metres; the mesh is finer
    assert np.abs(capsule_sdf(hand.vertices)).max() < 0.25 * voxel_m
    assert np.abs(sphere_sdf(obj.vertices)).max() < 0.25 * voxel_m
    pose = json.loads(layout.pose("000000_000").read_text())
    assert np.allclose(pose["joints"], np.tile(WRIST, (21, 1)), atol=1e-6)
    assert pose["obj_corners"] is None and len(pose["obj_center"]) == 3
    stats = manifest["stats"]["000000_000"]
    assert stats["queries"]["hand"] < 2 * 128 ** 3 / 10


def test_field_without_zero_crossing_is_reported_and_the_shard_goes_on(tmp_path):
    layout, manifest, _ = _run(tmp_path, ["000000_empty", "000000_000", "not_packed"])
    assert manifest["done"] == ["000000_000"]
    assert manifest["no_surface"] == [{"id": "000000_empty", "fields": ["obj"]}]
    assert manifest["missing"] == ["not_packed"]
    assert layout.mesh("hand", "000000_empty").exists()
    assert not layout.mesh("obj", "000000_empty").exists()


def test_dense_mode_gives_the_same_meshes_with_many_more_queries(tmp_path):
    layout_c, man_c, model_c = _run(tmp_path / "c2f", ["000000_000"])
    layout_d, man_d, model_d = _run(tmp_path / "dense", ["000000_000"], mode="dense")
    assert model_d.queries == 2 * 2 * 128 ** 3
    assert model_c.queries * 10 < model_d.queries
    for which in ("hand", "obj"):
        a = load_mesh(layout_c.mesh(which, "000000_000"))
        b = load_mesh(layout_d.mesh(which, "000000_000"))
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)
        np.testing.assert_array_equal(a.faces, b.faces)


def test_unknown_config_key_is_refused():
    from gsdf.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="resolutoin"):
        from_dict(ReconstructConfig, {"resolutoin": 64}, "reconstruct")


def test_a_rerun_removes_the_shards_earlier_outputs(tmp_path):
    """#25 item 2: a sample skipped upstream now keeps no prediction of an earlier run."""
    import subprocess

    layout, manifest, _ = _run(tmp_path, ["000000_000"])
    files = [layout.mesh("hand", "000000_000"), layout.mesh("obj", "000000_000"),
             layout.pose("000000_000")]
    assert all(p.exists() for p in files)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = files[0].parent / f".000000_000_hand.{dead.pid}.abcd1234.tmp.ply"
    stale.write_bytes(b"half")
    cfg = ReconstructConfig(mode="coarse_to_fine", resolution=32, lipschitz=1.4)
    manifest = reconstruct_samples(FakeModel(), FakeDataset([]), ["000000_000"], layout, cfg,
                                   upstream={"000000_000": "NaN joints"})
    assert manifest["missing"] == ["000000_000"]
    assert manifest["skipped_upstream"] == [{"id": "000000_000", "reason": "NaN joints"}]
    assert not any(p.exists() for p in files) and not stale.exists()


def test_decoder_field_gives_the_same_meshes_with_either_bookkeeping():
    """The decoders as tensor fields: the torch bookkeeping (what a GPU runs) queries them with
    tensors and gives the numpy bookkeeping's meshes and query counts bit for bit."""
    from gsdf.eval.reconstruct import decoder_field
    from gsdf.geometry.meshing import MeshingConfig, mesh_fields

    model = FakeModel()
    item = FakeDataset(["000000_000"])[0]
    batch = {k: v[None] if isinstance(v, torch.Tensor) else [v] for k, v in item.items()}
    state = model.encode(batch)
    dev = torch.device("cpu")
    fields = {b: decoder_field(model, state, b, dev, 5000) for b in ("hand", "obj")}
    res = {backend: mesh_fields(fields, MeshingConfig(lipschitz=1.4, backend=backend,
                                                      batch_size=1 << 22))
           for backend in ("numpy", "torch")}
    assert res["numpy"].num_queries == res["torch"].num_queries
    assert res["numpy"].spec == res["torch"].spec is not None
    for branch in fields:
        for a, b in zip(res["numpy"].meshes[branch], res["torch"].meshes[branch], strict=True):
            assert a.tobytes() == b.tobytes()
