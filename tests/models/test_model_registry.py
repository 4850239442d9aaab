"""The registered models: shapes, the model API, bad input, checkpoints, experiment files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from modelkit import SMALL_ARGS, SMALL_POSE, build_small, make_batch, save_finished

from gsdf.config import ConfigError, resolve_experiment
from gsdf.models import (
    MODELS,
    build_model,
    check_experiment,
    count_parameters,
    get_spec,
    parse_model_args,
)

SDF_MODELS = ("gf", "alignsdf", "gsdf", "gsdf_video")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "config" / "experiments"


def _batch(name: str, **kw) -> dict:
    return make_batch(frames=3 if name == "gsdf_video" else None, **kw)


@pytest.mark.parametrize("name", SDF_MODELS)
@pytest.mark.parametrize("branches", [(True, True), (True, False), (False, True)])
def test_sdf_model_shapes_and_api(name, branches):
    hand, obj = branches
    model = build_small(name, hand_branch=hand, obj_branch=obj, hand_cls=True)
    batch = _batch(name, b=2, n=16)
    terms = model(batch, epoch=0)
    assert ("hand_sdf" in terms) == hand and ("obj_sdf" in terms) == obj
    assert ("hand_cls" in terms) == hand
    assert all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())
    torch.testing.assert_close(terms["loss"], sum(v for k, v in terms.items() if k != "loss"))
    terms["loss"].backward()
    model.eval()
    with torch.no_grad():
        state = model.encode(batch)
        points = 0.4 * torch.randn(2, 7, 3)
        for branch, on in (("hand", hand), ("obj", obj)):
            if on:
                assert model.query(state, points, branch).shape == (2, 7)
            else:
                with pytest.raises(ValueError, match=f"{branch}_branch"):
                    model.query(state, points, branch)
        pose = model.predict_pose(state)
    if name == "gf":
        assert pose["joints"] is None and pose["obj_center"] is None
    else:
        if name != "alignsdf" or hand:
            assert pose["joints"].shape == (2, 21, 3)
        assert (pose["obj_center"] is not None) == obj
        if obj:
            assert pose["obj_center"].shape == (2, 3)


def test_pose_model_api():
    model = build_small("pose")
    batch = make_batch()
    terms = model(batch, 0)
    assert set(terms) == {"joints", "hand_ord", "loss"}
    terms["loss"].backward()
    state = model.eval().encode(batch)
    pose = model.predict_pose(state)
    assert pose["joints"].shape == (2, 21, 3) and pose["obj_center"] is None
    # depth is decoded around the wrist: within +-depth_dim of it
    dz = pose["joints"][..., 2] - batch["hand_center_3d"][:, None, 2]
    assert dz.abs().max() <= model.args.depth_dim + 1e-6


def test_sdf_loss_masks_follow_sdf_add_epoch():
    model = build_small("gf", sdf_add_epoch=5, hand_cls=True, hand_cls_weight=1.0)
    model.eval()  # no dropout: the two calls see the same network
    batch = make_batch(n=16)
    early, late = model(batch, 4), model(batch, 5)
    assert early["hand_cls"].item() == 0.0 and late["hand_cls"].item() > 0
    # early: each decoder on its own half only (a different mean than on all points)
    assert early["hand_sdf"].item() != pytest.approx(late["hand_sdf"].item())
    batch["hand_part"][:] = -1  # every label ignored: a zero loss, not NaN
    assert model(batch, 5)["hand_cls"].item() == 0.0
    state = model.encode(batch)
    sdf = model.query(state, batch["points"], "hand").clamp(-0.05, 0.05)
    err = (sdf - batch["sdf_hand"]).abs()
    assert early["hand_sdf"].item() == pytest.approx(0.5 * err[:, :8].mean().item(), rel=1e-5)
    assert late["hand_sdf"].item() == pytest.approx(0.5 * err.mean().item(), rel=1e-5)


def test_gsdf_pose_network_is_frozen_and_used():
    model = build_small("gsdf")
    batch = make_batch()
    before = {k: v.clone() for k, v in model.pose_net.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert not model.pose_net.training
    model(batch, 0)["loss"].backward()
    opt.step()
    for k, v in model.pose_net.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"pose weight {k} changed")
    assert all(not p.requires_grad for p in model.pose_net.parameters())
    state = model.encode(batch)
    expected = model.pose_net.predict_joints(batch["image"], batch["hand_center_3d"],
                                             batch["cam_intr"])
    torch.testing.assert_close(model.predict_pose(state)["joints"], expected)
    assert count_parameters(model, trainable_only=True) < count_parameters(model)


@pytest.mark.parametrize("name", ["gsdf", "gsdf_video"])
def test_gsdf_ground_truth_pose_source_is_an_oracle(name):
    model = build_small(name, pose_source="ground_truth").eval()
    batch = _batch(name)
    state = model.encode(batch)
    joints = batch["hand_joints_3d"]
    if name == "gsdf_video":
        joints = joints[:, joints.shape[1] // 2]  # the middle frame
    torch.testing.assert_close(state["joints"], joints)
    from gsdf.models.hand_model import ik_frames

    # the frames are the IK of the annotated joints, as they are of the network's otherwise
    torch.testing.assert_close(state["hand_frames"], ik_frames(model.ik_layer, joints))
    model(batch, 0)["loss"].backward()
    del batch["hand_joints_3d"]
    with pytest.raises(ValueError, match="pose_source"):
        model.encode(batch)
    with pytest.raises(ConfigError, match="allowed values"):
        build_small(name, pose_source="magic")


def test_gsdf_checkpoint_round_trip(tmp_path):
    pose = build_model("pose", SMALL_POSE)
    path = tmp_path / "pose.pt"
    save_finished(path, "pose", SMALL_POSE, pose.state_dict())
    model = build_model("gsdf", SMALL_ARGS["gsdf"], pose_checkpoint=str(path))
    for k, v in pose.state_dict().items():
        torch.testing.assert_close(model.pose_net.state_dict()[k], v)
    state_dict = model.state_dict()
    assert any(k.startswith("pose_net.") for k in state_dict)
    # a gsdf checkpoint alone rebuilds the model (pose architecture from model_args.pose)
    args = dict(SMALL_ARGS["gsdf"], pose=SMALL_POSE)
    restored = build_model("gsdf", args, restore=True)
    restored.load_state_dict(state_dict, strict=True)
    batch = make_batch()
    model.eval(), restored.eval()
    with torch.no_grad():
        a, b = model.encode(batch), restored.encode(batch)
        pts = batch["points"]
        torch.testing.assert_close(model.query(a, pts, "obj"), restored.query(b, pts, "obj"))
        torch.testing.assert_close(a["joints"], b["joints"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_build_and_load_state_dict_round_trip(name):
    model = build_small(name)
    context = {"restore": True} if name.startswith("gsdf") else {}
    args = dict(SMALL_ARGS[name], **({"pose": SMALL_POSE} if context else {}))
    other = build_model(name, args, **context)
    other.load_state_dict(model.state_dict(), strict=True)


def test_bad_input_is_refused_with_key_and_allowed_values(tmp_path):
    with pytest.raises(ConfigError, match=r"'model' = 'deepsdf'.*allowed values.*gsdf"):
        build_model("deepsdf", {})
    with pytest.raises(ConfigError, match=r"hand_point_latent.*allowed values: \[6, 21, 36, 51\]"):
        build_model("gsdf", {"hand_point_latent": 12}, restore=True)
    with pytest.raises(ConfigError, match=r"obj_point_latent.*allowed values: \[6, 9, 69, 72\]"):
        build_model("alignsdf", {"obj_point_latent": 51})
    with pytest.raises(ConfigError, match=r"hand_point_latent.*allowed values: \[3\]"):
        build_model("gf", {"hand_point_latent": 6})
    with pytest.raises(ConfigError, match=r"gf.*hand_encode_style.*raw"):
        build_model("gf", {"hand_encode_style": "kine", "hand_point_latent": 6})
    with pytest.raises(ConfigError, match=r"hand_encode_style.*allowed values"):
        build_model("alignsdf", {"hand_encode_style": "nerf"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['sdf_latnt'\].*allowed keys"):
        build_model("gf", {"sdf_latnt": 3})
    with pytest.raises(ConfigError, match=r"backbone.*allowed values"):
        build_model("pose", {"backbone": "resnet19"})
    with pytest.raises(ConfigError, match=r"sdf_loss.*allowed values: \['clamped', 'band'\]"):
        build_model("gf", {"sdf_loss": "huber"})
    with pytest.raises(ConfigError, match=r"hand_branch.*obj_branch"):
        build_model("gf", {"hand_branch": False, "obj_branch": False})
    with pytest.raises(ConfigError, match=r"pose_checkpoint"):
        build_model("gsdf", {})
    with pytest.raises(FileNotFoundError, match=r"pose checkpoint .*missing\.pt.*train_pose"):
        build_model("gsdf", {}, pose_checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match=r"unknown build context"):
        build_model("gf", {}, pose_ckpt="x")
    gf = build_model("gf", SMALL_ARGS["gf"])
    wrong = tmp_path / "gf.pt"
    save_finished(wrong, "gf", SMALL_ARGS["gf"], gf.state_dict())
    with pytest.raises(ConfigError, match=r"model 'gf'.*must come from model 'pose'"):
        build_model("gsdf", {}, pose_checkpoint=str(wrong))


@pytest.mark.parametrize("content", ["truncated", "foreign"])
def test_a_corrupt_or_foreign_pose_checkpoint_is_refused_naming_it(tmp_path, content):
    from gsdf.checkpoint import CheckpointError

    path = tmp_path / "pose_pose" / "checkpoint.pt"
    path.parent.mkdir()
    pose = build_model("pose", SMALL_POSE)
    if content == "truncated":  # a job killed while copying it
        save_finished(path, "pose", SMALL_POSE, pose.state_dict())
        path.write_bytes(path.read_bytes()[:200])
        match = "corrupt or not a torch file"
    else:  # a bare state dict of another program
        torch.save({"model": "pose", "state_dict": pose.state_dict()}, path)
        match = "not a gsdf training checkpoint"
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}.*{match}"):
        build_model("gsdf", SMALL_ARGS["gsdf"], pose_checkpoint=str(path))


def test_video_model_needs_the_configured_clip_length():
    model = build_small("gsdf_video")
    with pytest.raises(ValueError, match="num_frames"):
        model.encode(make_batch(frames=5))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_experiment_files_parse(name):
    exp = resolve_experiment({}, name, EXPERIMENTS)
    assert exp["model"] == name
    args = check_experiment(exp)  # the spec's checks: model_args, pose_experiment
    assert args == parse_model_args(name, exp.get("model_args"))
    assert (exp.get("pose_experiment") == "pose") == get_spec(name).pose_network


def test_parameter_counts_at_reference_settings(capsys):
    counts = {}
    for name in ("gf", "alignsdf", "gsdf", "gsdf_video", "pose"):
        exp = resolve_experiment({}, name, EXPERIMENTS)
        context = {"restore": True} if name.startswith("gsdf") else {}
        model = build_model(name, exp.get("model_args"), **context)
        counts[name] = (count_parameters(model), count_parameters(model, trainable_only=True))
    with capsys.disabled():
        print("\nparameters at the reference settings (all / trainable):")
        for name, (total, trainable) in counts.items():
            print(f"  {name:11s} {total / 1e6:7.2f} M / {trainable / 1e6:7.2f} M")
    # ResNet-18 trunk (11.18 M) + 1x1 conv + linear + two 5-layer decoders (~0.79 M each)
    assert 12.5e6 < counts["gf"][0] < 14e6
    # gsdf = frozen pose network + its own trunk, neck, heatmap head and decoders
    assert counts["gsdf"][0] - counts["gsdf"][1] == counts["pose"][0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_resolved_model_args_round_trip(name):
    """``to_dict(model.args)`` (what a checkpoint stores) rebuilds the same settings."""
    from gsdf.config import to_dict

    model = build_small(name)
    assert parse_model_args(name, to_dict(model.args)) == model.args
    if name.startswith("gsdf"):
        assert model.args.pose == parse_model_args("pose", SMALL_POSE)


@pytest.mark.parametrize("name", ["alignsdf", "gsdf"])
@pytest.mark.parametrize("latents", [(6, 6), (21, 9), (36, 69), (51, 72)])
def test_every_kinematic_latent_size_runs(name, latents):
    hand, obj = latents
    model = build_small(name, hand_point_latent=hand, obj_point_latent=obj)
    batch = make_batch(n=8)
    state = model.encode(batch)
    assert model.point_encoding(state, batch["points"], "hand").shape == (2, 8, hand)
    assert model.point_encoding(state, batch["points"], "obj").shape == (2, 8, obj)
    assert torch.isfinite(model(batch, 0)["loss"])


@pytest.mark.parametrize("name", ["alignsdf", "gsdf"])
@pytest.mark.parametrize("style", ["6d", "axisang"])
def test_object_rotation_head(name, style):
    model = build_small(name, obj_rot=True, rot_style=style, corner_weight=1.0)
    batch = make_batch()
    terms = model(batch, 0)
    assert "obj_corners" in terms and terms["obj_corners"].item() > 0
    pose = model.predict_pose(model.encode(batch))
    corners = pose["obj_corners"]
    assert corners.shape == (2, 8, 3)
    # a rigid motion of the rest box: edge lengths are kept, the centre is the predicted one
    rest = batch["obj_rest_corners_3d"]
    torch.testing.assert_close(torch.cdist(corners, corners), torch.cdist(rest, rest),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(corners.mean(1), pose["obj_center"] + rest.mean(1), atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize("name", ["gsdf", "gsdf_video"])
@pytest.mark.parametrize("stages,skips", [(1, False), (3, True), (2, False), (4, True)])
def test_pixel_neck_stages_set_the_feature_map_resolution(name, stages, skips):
    """model_args pixel_neck_stages: the pixel-aligned map is (64 px / 32) * 2**stages wide,
    with or without the backbone skips, and the model trains through it."""
    model = build_small(name, pixel_neck_stages=stages, pixel_neck_skips=skips)
    batch = _batch(name, b=2, n=16)
    state = model.encode(batch)
    side = 64 // 32 * 2 ** stages
    assert state["feat_map"].shape == (2, 32, side, side)
    model(batch, epoch=0)["loss"].backward()
    grads = [p.grad for p in model.pixel_neck.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_pixel_neck_skips_need_one_backbone_map_per_stage():
    with pytest.raises(ConfigError, match="pixel_neck_stages"):
        build_small("gsdf", pixel_neck_stages=5, pixel_neck_skips=True)
    with pytest.raises(ConfigError, match="pixel_neck_stages"):
        build_small("gsdf", pixel_neck_stages=0)
