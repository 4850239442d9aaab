"""articulate / random_pose: anatomical meaning of the controls, limits, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.hand import (
    JOINT_NAMES_21,
    HandLayer,
    anatomical_axes,
    articulate,
    mirror_asset,
    procedural_hand,
    random_controls,
    random_pose,
)
from gsdf.hand.kinematics import FIRST_JOINTS


@pytest.fixture(scope="module")
def asset():
    return procedural_hand(0)


def _palm_normal(joints: torch.Tensor, side: str) -> torch.Tensor:
    """(B, 21, 3) -> (B, 3) palm-side normal from wrist, index1, pinky1."""
    w, i, p = joints[:, 0], joints[:, JOINT_NAMES_21.index("index1")], joints[:, 17]
    n = torch.cross(i - w, p - w, dim=-1)
    n = n / n.norm(dim=-1, keepdim=True)
    return n if side == "right" else -n


@pytest.mark.parametrize("side", ["right", "left"])
def test_flexion_curls_towards_palm(asset, side):
    hand = asset if side == "right" else mirror_asset(asset)
    layer = HandLayer(hand)
    b = 3
    flex = torch.zeros(b, 15)
    flex[:, :] = torch.tensor([0.0, 0.2, 0.4])[:, None]  # per batch element
    rot = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, -0.3], [-2.0, 0.1, 0.4]])
    out0 = layer(articulate(hand, rot, torch.zeros(b, 15), torch.zeros(b, 5)))
    out = layer(articulate(hand, rot, flex, torch.zeros(b, 5)))
    n = _palm_normal(out0.joints, side)
    for finger in ("index", "middle", "ring", "pinky", "thumb"):
        tip = JOINT_NAMES_21.index(f"{finger}4")
        moved = ((out.joints[:, tip] - out0.joints[:, tip]) * n).sum(-1)
        assert moved[0].abs() < 1e-6
        assert (moved[1:] > 0.005).all(), (finger, moved)
        assert moved[2] > moved[1]


def test_abduction_spreads(asset):
    layer = HandLayer(asset)
    zeros = torch.zeros(1, 3)
    out0 = layer(articulate(asset, zeros, torch.zeros(1, 15), torch.zeros(1, 5)))
    out = layer(articulate(asset, zeros, torch.zeros(1, 15), torch.full((1, 5), 0.2)))
    tip = {f: JOINT_NAMES_21.index(f"{f}4") for f in ("index", "middle", "ring", "pinky")}
    # right hand: +x is the thumb side
    assert out.joints[0, tip["index"], 0] > out0.joints[0, tip["index"], 0] + 0.005
    assert out.joints[0, tip["middle"], 0] > out0.joints[0, tip["middle"], 0] + 0.005
    assert out.joints[0, tip["ring"], 0] < out0.joints[0, tip["ring"], 0] - 0.005
    assert out.joints[0, tip["pinky"], 0] < out0.joints[0, tip["pinky"], 0] - 0.005


def test_clamped_to_limits(asset):
    big = articulate(asset, torch.zeros(1, 3), torch.full((1, 15), 10.0), torch.zeros(1, 5))
    lim = articulate(asset, torch.zeros(1, 3), torch.as_tensor(
        asset.flexion_limits[:, 1], dtype=torch.float32)[None], torch.zeros(1, 5))
    torch.testing.assert_close(big, lim)
    # a single-axis joint's rotation angle equals the clamped flexion
    angles = big[0, 3:].reshape(15, 3).norm(dim=-1).numpy()
    np.testing.assert_allclose(angles, np.abs(asset.flexion_limits[:, 1]), atol=1e-5)


def test_random_pose_in_limits_and_deterministic(asset):
    p1 = random_pose(asset, np.random.default_rng(3), 64)
    p2 = random_pose(asset, np.random.default_rng(3), 64)
    assert p1.shape == (64, 48) and p1.dtype == torch.float32
    torch.testing.assert_close(p1, p2)
    flex, abd = random_controls(asset, 5, 500)
    assert (flex >= asset.flexion_limits[:, 0] - 1e-9).all()
    assert (flex <= asset.flexion_limits[:, 1] + 1e-9).all()
    al = asset.abduction_limits[FIRST_JOINTS]
    assert (abd >= al[:, 0] - 1e-9).all() and (abd <= al[:, 1] + 1e-9).all()
    assert flex.std(0).min() > 0.05  # poses vary


def test_mirrored_axes_match_recomputed(asset):
    left = mirror_asset(asset)
    axes = anatomical_axes(left.J_regressor @ left.v_template,
                           left.v_template[left.tip_vertex_ids], "left")
    np.testing.assert_allclose(axes["flexion"], left.flexion_axes, atol=1e-9)
    np.testing.assert_allclose(axes["abduction"], left.abduction_axes, atol=1e-9)


@pytest.mark.parametrize(
    "rot, flex, abd, match",
    [
        (torch.zeros(2, 3), torch.zeros(2, 14), torch.zeros(2, 5), "flexion"),
        (torch.zeros(2, 3), torch.zeros(2, 15), torch.zeros(3, 5), "abduction"),
        (torch.zeros(2, 4), torch.zeros(2, 15), torch.zeros(2, 5), "global_rot"),
        (torch.zeros(2, 3), torch.full((2, 15), float("nan")), torch.zeros(2, 5), "NaN"),
    ],
)
def test_articulate_bad_input(asset, rot, flex, abd, match):
    with pytest.raises(ValueError, match=match):
        articulate(asset, rot, flex, abd)


def test_random_poses_keep_fingertips_out_of_the_palm(asset):
    from gsdf.hand.procedural import _palm_sdf

    layer = HandLayer(asset)
    distal = np.isin(asset.weights.argmax(1), [3, 6, 9, 12])  # index, middle, pinky, ring tips
    verts = layer(random_pose(asset, 0, 200, global_rot=False)).vertices.numpy()
    depth = np.stack([_palm_sdf(v[distal]) for v in verts]).min(1)
    assert (depth > -0.001).all(), depth.min()
    flex, _ = random_controls(asset, 0, 500)
    assert flex.reshape(500, 5, 3)[:, :4].sum(-1).max() <= 3.0 + 1e-9


def test_random_pose_avoids_finger_collisions(asset):
    from gsdf.hand.kinematics import bone_radii, finger_collision_depth

    radii = bone_radii(asset)
    assert ((radii > 0.005) & (radii < 0.016)).all(), radii
    pose = random_pose(asset, 8, 100, global_rot=False)
    assert (finger_collision_depth(asset, pose, radii) <= 0.002).all()
    raw = random_pose(asset, 8, 100, global_rot=False, avoid_collisions=False)
    assert (finger_collision_depth(asset, raw, radii) > 0.002).any()


def test_skeleton_joints_match_layer(asset):
    from gsdf.hand.kinematics import skeleton_joints

    pose = random_pose(asset, 9, 10)
    np.testing.assert_allclose(skeleton_joints(asset, pose),
                               HandLayer(asset).double()(pose.double()).joints.numpy(), atol=1e-6)
