"""MANO wherever the reference uses MANO: gSDF's IK and AlignSDF's MANO branch use the MANO asset
of ``hand.mano_root`` on real data (and with ``hand.asset: mano``); the procedural hand is not
used; a real-data run without MANO stops at the start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gsdf.hand.procedural
from gsdf.config import ConfigError, load_config
from gsdf.hand import HandLayer
from gsdf.hand_asset import check_hand_config, hand_asset_kind
from gsdf.models import build_model
from gsdf.models.hand_model import ik_refit, load_hand_asset
from gsdf.models.pose import PoseNet
from gsdf.models.registry import parse_model_args
from gsdf.testing.mano_fixture import fake_source, write_fake_mano


def write_fixture_mano(root):
    """A MANO_RIGHT.pkl in the official format (chumpy objects), whose template is the
    procedural hand's scaled by 1.15 (so it cannot be mistaken for the procedural hand)."""
    src = fake_source()
    src["v_template"] = src["v_template"] * 1.15
    root.mkdir(parents=True, exist_ok=True)
    write_fake_mano(root / "MANO_RIGHT.pkl", src)
    return src


@pytest.fixture
def mano(tmp_path, monkeypatch):
    """(hand config, fixture source); the procedural hand raises if anything builds it."""
    src = write_fixture_mano(tmp_path / "mano")

    def no_procedural(*args, **kwargs):
        raise AssertionError("the procedural hand was built in a MANO run")

    monkeypatch.setattr(gsdf.hand.procedural, "procedural_hand", no_procedural)
    return {"asset": "procedural", "mano_root": str(tmp_path / "mano"), "seed": 0}, src


def test_real_datasets_use_mano_whatever_hand_asset_says():
    assert hand_asset_kind({"asset": "procedural"}, "obman") == "mano"
    assert hand_asset_kind({"asset": "procedural"}, "dexycb") == "mano"
    assert hand_asset_kind({"asset": "procedural"}, "synth") == "procedural"
    assert hand_asset_kind({"asset": "mano"}, "synth") == "mano"


def test_mano_reaches_gsdf_ik(mano):
    hand_cfg, src = mano
    asset = load_hand_asset(hand_cfg, "obman")
    np.testing.assert_allclose(asset.v_template, src["v_template"])
    args = {"image_size": 64, "sdf_latent": 32, "pixel_channels": 32,
            "decoder": {"dims": [128, 128, 128, 128]}}
    pose_args = parse_model_args("pose", {"image_size": 64})
    model = build_model("gsdf", args, hand_asset=asset,
                        pose_state_dict=PoseNet(pose_args).state_dict(),
                        pose_model_args={"image_size": 64})
    layer = model.ik_layer.layer
    np.testing.assert_allclose(layer.v_template.numpy(), src["v_template"], rtol=1e-6)
    # IK round trip with MANO's bone lengths: MANO joints (zero pose, flat mean, mean shape)
    # are reproduced exactly; the procedural hand's bones are 13% shorter and could not
    joints = HandLayer(asset, center_idx=0)(torch.zeros(1, 48)).joints + torch.tensor(
        [0.0, 0.0, 0.5])
    frames, refit = ik_refit(model.ik_layer, joints.float())
    torch.testing.assert_close(refit, joints.float(), atol=1e-5, rtol=0)
    assert frames.shape == (1, 16, 4, 4)


def test_mano_reaches_the_alignsdf_head(mano):
    hand_cfg, src = mano
    asset = load_hand_asset(hand_cfg, "dexycb")
    model = build_model("alignsdf", {"image_size": 64, "sdf_latent": 32,
                                     "decoder": {"dims": [64, 64, 64, 64]}}, hand_asset=asset)
    layer = model.hand_layer.layer
    assert layer.use_pca and layer.ncomps == 15
    np.testing.assert_allclose(layer.v_template.numpy(), src["v_template"], rtol=1e-6)
    # PCA-15 pose of MANO's own components and mean
    np.testing.assert_allclose(layer.hands_mean.numpy().ravel(), src["hands_mean"], rtol=1e-6)
    state = model.encode({"image": torch.zeros(2, 3, 64, 64),
                          "cam_intr": torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]])
                          .expand(2, 3, 3),
                          "hand_center_3d": torch.tensor([[0.0, 0.0, 0.5]] * 2),
                          "recon_scale": torch.tensor([7.0, 7.0])})
    # the MANO branch's joints are MANO's: the wrist-to-middle-MCP bone of the posed hand
    # equals MANO's rest bone (global rotation and finger pose do not change that bone)
    bone = (state["joints"][:, 9] - state["joints"][:, 0]).norm(dim=-1)
    rest = HandLayer(asset, center_idx=0)(torch.zeros(1, 48), state["mano_shape"][:1]).joints
    torch.testing.assert_close(bone[0], (rest[0, 9] - rest[0, 0]).norm(), atol=1e-5, rtol=0)


def test_real_data_without_mano_root_stops_at_the_start(tmp_path):
    from gsdf.workflow import Pipeline

    cfg = load_config(overrides={"dataset": "obman"})
    with pytest.raises(ConfigError, match="hand.mano_root"):
        Pipeline(cfg)
    with pytest.raises(ConfigError, match="MANO_RIGHT.pkl"):
        check_hand_config({"dataset": "dexycb", "hand": {"mano_root": str(tmp_path)}})
    check_hand_config({"dataset": "synth", "hand": {"asset": "procedural"}})  # no MANO needed


def test_training_refuses_real_data_without_mano(tmp_path):
    from gsdf.train.loop import TrainOutputs
    from gsdf.train.run import run_train

    params = {"experiment": {"name": "alignsdf", "model": "alignsdf"},
              "dataset": {"name": "obman", "recon_scale": 7.0}, "hand": {"mano_root": None}}
    outputs = TrainOutputs(*(tmp_path / n for n in ("c.pt", "l.csv", "c.png", "c.yaml")))
    with pytest.raises(ConfigError, match="mano_root"):
        run_train(params, tmp_path / "missing_packed", outputs)
