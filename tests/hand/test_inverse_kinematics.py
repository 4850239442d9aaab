"""gSDF inverse kinematics: FK -> IK -> FK round trip, batching, options, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.hand import HandLayer, inverse_kinematics, procedural_hand, random_pose
from gsdf.hand.ik import procrustes_rotation, swing_rotation
from gsdf.hand.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module")
def asset():
    return procedural_hand(0)


@pytest.mark.parametrize("flat_hand_mean, center_idx", [(True, None), (False, 0), (True, 9)])
def test_fk_ik_fk_roundtrip(asset, flat_hand_mean, center_idx):
    layer = HandLayer(asset, flat_hand_mean=flat_hand_mean, center_idx=center_idx)
    n = 200
    pose = random_pose(asset, np.random.default_rng(11), n)
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(n, 10, generator=g)
    trans = torch.randn(n, 3, generator=g) * 0.3
    target = layer(pose, shape, trans)
    pose_ik, out = inverse_kinematics(layer, target.joints, shape)
    err = (out.joints - target.joints).norm(dim=-1)  # (n, 21) metres
    assert err.mean() < 1e-3 and err.max() < 3e-3, (err.mean(), err.max())
    assert err.max() < 1e-5  # in fact exact up to float32 rounding
    # the pose reproduces the same joints when fed back through the layer
    again = layer(pose_ik, shape)
    offset = target.joints[:, :1] - again.joints[:, :1]
    torch.testing.assert_close(again.joints + offset, target.joints, atol=1e-5, rtol=0)
    # transforms are consistent with the returned joints
    kin_in_21 = [0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3]
    torch.testing.assert_close(out.transforms[:, :, :3, 3], out.joints[:, kin_in_21])
    # the global rotation is recovered exactly (palm is rigid)
    torch.testing.assert_close(out.transforms[:, 0, :3, :3], target.transforms[:, 0, :3, :3],
                               atol=1e-4, rtol=0)


def test_vertices_close_after_roundtrip(asset):
    """Only twist about the bones is lost: vertices stay within a few millimetres."""
    layer = HandLayer(asset)
    pose = random_pose(asset, 2, 64)
    target = layer(pose)
    _, out = inverse_kinematics(layer, target.joints)
    verr = (out.vertices - target.vertices).norm(dim=-1)
    assert verr.mean() < 5e-4 and verr.max() < 6e-3


def test_noisy_joints_give_valid_hand(asset):
    layer = HandLayer(asset)
    target = layer(random_pose(asset, 3, 32)).joints
    noisy = target + torch.randn(target.shape, generator=torch.Generator().manual_seed(1)) * 0.005
    pose, out = inverse_kinematics(layer, noisy)
    assert torch.isfinite(pose).all() and torch.isfinite(out.vertices).all()
    torch.testing.assert_close(out.joints[:, 0], noisy[:, 0])
    assert (out.joints - noisy).norm(dim=-1).mean() < 0.01


def test_swing_rotation():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(100, 3, generator=g, dtype=torch.float64)
    b = torch.randn(100, 3, generator=g, dtype=torch.float64)
    b[0] = a[0] * 2.0  # parallel
    b[1] = -a[1]  # antiparallel
    r = axis_angle_to_matrix(swing_rotation(a, b))
    rotated = (r @ a[..., None])[..., 0]
    torch.testing.assert_close(rotated / rotated.norm(dim=-1, keepdim=True),
                               b / b.norm(dim=-1, keepdim=True))


def test_procrustes_never_reflects():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(8, 5, 3, generator=g, dtype=torch.float64)
    dst = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # mirror image
    r = procrustes_rotation(src, dst)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(8, dtype=torch.float64))
    rot = axis_angle_to_matrix(torch.randn(8, 3, generator=g, dtype=torch.float64))
    torch.testing.assert_close(procrustes_rotation(src, src @ rot.transpose(1, 2)), rot)


def test_bad_input(asset):
    layer = HandLayer(asset)
    with pytest.raises(ValueError, match="joints"):
        inverse_kinematics(layer, torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match="NaN"):
        inverse_kinematics(layer, torch.full((2, 21, 3), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        inverse_kinematics(layer, torch.zeros(2, 21, 3), torch.zeros(3, 10))
    with pytest.raises(ValueError, match="use_pca"):
        inverse_kinematics(HandLayer(asset, use_pca=True), torch.zeros(2, 21, 3))


def test_tip_iterations_fix_pose_blendshape_tips(asset):
    """With pose blend shapes (as in MANO) the fingertips drift; tip iterations correct them."""
    fake = asset.copy()
    fake.posedirs = np.random.default_rng(0).normal(0, 2e-3, fake.posedirs.shape)
    layer = HandLayer(fake)
    target = layer(random_pose(fake, 5, 100))
    errors = []
    for iterations in (0, 2):
        _, out = inverse_kinematics(layer, target.joints, tip_iterations=iterations)
        errors.append((out.joints - target.joints).norm(dim=-1).mean().item())
    assert errors[0] > 1e-4  # the blend shapes matter
    assert errors[1] < 0.5 * errors[0]
    with pytest.raises(ValueError, match="tip_iterations"):
        inverse_kinematics(layer, target.joints, tip_iterations=-1)


def test_left_hand_roundtrip():
    left = procedural_hand(0, side="left")
    layer = HandLayer(left)
    shape = torch.randn(50, 10, generator=torch.Generator().manual_seed(3))
    target = layer(random_pose(left, 6, 50), shape)
    _, out = inverse_kinematics(layer, target.joints, shape)
    assert (out.joints - target.joints).norm(dim=-1).max() < 1e-5
