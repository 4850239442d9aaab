"""HandLayer forward: zero pose, rigid equivariance, options, left hands, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.hand import HandLayer, mirror_asset, procedural_hand, random_pose
from gsdf.hand.asset import JOINTS21_FROM_16_AND_TIPS
from gsdf.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle


@pytest.fixture(scope="module")
def asset():
    return procedural_hand(0)


@pytest.fixture(scope="module")
def layer(asset):
    return HandLayer(asset).double()


def test_zero_pose_is_template(asset, layer):
    out = layer(torch.zeros(2, 48, dtype=torch.float64))
    assert out.vertices.shape == (2, asset.num_vertices, 3)
    assert out.joints.shape == (2, 21, 3)
    assert out.transforms.shape == (2, 16, 4, 4)
    v = torch.as_tensor(asset.v_template)
    torch.testing.assert_close(out.vertices[0], v)
    rest = torch.as_tensor(asset.J_regressor @ asset.v_template)
    tips = v[asset.tip_vertex_ids]
    expected = torch.cat([rest, tips])[JOINTS21_FROM_16_AND_TIPS]
    torch.testing.assert_close(out.joints[0], expected)
    eye = torch.eye(3, dtype=torch.float64).expand(16, 3, 3)
    torch.testing.assert_close(out.transforms[0, :, :3, :3], eye)
    torch.testing.assert_close(out.transforms[0, :, :3, 3], rest)
    torch.testing.assert_close(out.transforms[0, :, 3], torch.tensor([0, 0, 0, 1.0],
                               dtype=torch.float64).expand(16, 4))


def test_rigid_equivariance(asset, layer):
    pose = random_pose(asset, 3, 5, global_rot=False).double()
    shape = torch.randn(5, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    base = layer(pose, shape)
    rot_aa = torch.tensor([[0.3, -1.2, 0.7]], dtype=torch.float64)
    rot = axis_angle_to_matrix(rot_aa)[0]
    pose2 = pose.clone()
    pose2[:, :3] = rot_aa.expand(5, 3)
    trans = torch.tensor([[0.1, -0.2, 0.5]], dtype=torch.float64).expand(5, 3)
    moved = layer(pose2, shape, trans)
    # rotation about the wrist joint (the root of the chain), then translation
    wrist = base.joints[:, :1]
    exp_v = (base.vertices - wrist) @ rot.T + wrist + trans[:, None]
    exp_j = (base.joints - wrist) @ rot.T + wrist + trans[:, None]
    torch.testing.assert_close(moved.vertices, exp_v)
    torch.testing.assert_close(moved.joints, exp_j)
    torch.testing.assert_close(moved.transforms[:, :, :3, :3], rot @ base.transforms[:, :, :3, :3])


def test_transforms_embed_points(asset, layer):
    """A vertex weighted fully to joint j: inverse(T_j) @ posed == rest - J_rest_j."""
    pose = random_pose(asset, 4, 3).double()
    out = layer(pose)
    rest_j = asset.J_regressor @ asset.v_template
    for j in (0, 3, 8, 15):
        vid = int(np.argmax(asset.weights[:, j]))
        assert asset.weights[vid, j] == pytest.approx(1.0)
        local = torch.linalg.inv(out.transforms[:, j]) @ torch.cat(
            [out.vertices[:, vid], torch.ones(3, 1, dtype=torch.float64)], 1)[..., None]
        expected = torch.as_tensor(asset.v_template[vid] - rest_j[j]).expand(3, 3)
        torch.testing.assert_close(local[:, :3, 0], expected)


def test_transform_translation_is_joint(asset, layer):
    pose = random_pose(asset, 5, 4).double()
    out = layer(pose, trans=torch.full((4, 3), 0.3, dtype=torch.float64))
    kin_in_21 = [0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3]
    torch.testing.assert_close(out.transforms[:, :, :3, 3], out.joints[:, kin_in_21])


def test_center_idx(asset):
    layer = HandLayer(asset, center_idx=9)
    out = layer(random_pose(asset, 0, 3), trans=torch.ones(3, 3))
    torch.testing.assert_close(out.joints[:, 9], torch.ones(3, 3))


def test_pca_and_mean_pose(asset):
    """PCA input: coefficients of the orthonormal basis reproduce the axis-angle input; the
    mean pose is added when flat_hand_mean=False; few components explain most poses."""
    comps = torch.as_tensor(asset.hands_components, dtype=torch.float32)
    torch.testing.assert_close(comps @ comps.T, torch.eye(45), atol=1e-5, rtol=0)
    pose = random_pose(asset, 1, 200)
    full = HandLayer(asset)(pose)
    coeffs = torch.cat([pose[:, :3], pose[:, 3:] @ comps.T], 1)
    pca = HandLayer(asset, use_pca=True, ncomps=45)(coeffs)
    torch.testing.assert_close(pca.vertices, full.vertices, atol=1e-5, rtol=0)
    mean = torch.as_tensor(asset.hands_mean, dtype=torch.float32)
    centred = torch.cat([pose[:, :3], pose[:, 3:] - mean], 1)
    torch.testing.assert_close(HandLayer(asset, flat_hand_mean=False)(centred).vertices,
                               full.vertices, atol=1e-5, rtol=0)
    short = HandLayer(asset, use_pca=True, ncomps=10, flat_hand_mean=False)
    approx = short(torch.cat([pose[:, :3], (pose[:, 3:] - mean) @ comps[:10].T], 1))
    err = (approx.joints - full.joints).norm(dim=-1).mean()
    assert err < 0.006, err  # 10 of 45 components: a few millimetres
    with pytest.raises(ValueError, match="pose"):
        short(pose)


def test_left_hand_is_mirror(asset):
    right = HandLayer(asset).double()
    left = HandLayer(mirror_asset(asset)).double()
    assert left.side == "left"
    pose = random_pose(asset, 2, 3).double()
    mirrored = pose * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64).repeat(16)
    out_r, out_l = right(pose), left(mirrored)
    m = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(out_l.vertices, out_r.vertices * m)
    torch.testing.assert_close(out_l.joints, out_r.joints * m)


def test_left_procedural(asset):
    left = procedural_hand(0, side="left")
    np.testing.assert_allclose(left.v_template[:, 0], -asset.v_template[:, 0])
    assert left.side == "left"


def test_gradients_flow(asset):
    layer = HandLayer(asset)
    pose = torch.zeros(2, 48, requires_grad=True)
    shape = torch.zeros(2, 10, requires_grad=True)
    out = layer(pose, shape)
    (out.vertices.sum() + out.joints.pow(2).sum()).backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    assert torch.isfinite(shape.grad).all() and shape.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "pose, shape, trans, match",
    [
        (torch.zeros(2, 45), None, None, "pose"),
        (torch.zeros(2, 48), torch.zeros(2, 9), None, "shape"),
        (torch.zeros(2, 48), torch.zeros(1, 10), None, "batch"),
        (torch.full((2, 48), float("nan")), None, None, "NaN"),
        (torch.zeros(2, 48), None, torch.zeros(2, 2), "trans"),
        (torch.zeros(2, 48), torch.full((2, 10), float("inf")), None, "shape"),
        (torch.zeros(48), None, None, "pose"),
    ],
)
def test_bad_input(layer, pose, shape, trans, match):
    with pytest.raises(ValueError, match=match):
        layer(pose.double(), None if shape is None else shape.double(),
              None if trans is None else trans.double())


def test_rotation_roundtrip():
    g = torch.Generator().manual_seed(1)
    aa = torch.randn(500, 3, generator=g, dtype=torch.float64)
    aa = aa / aa.norm(dim=1, keepdim=True) * torch.rand(500, 1, generator=g,
                                                         dtype=torch.float64) * 3.14
    aa[0] = 0.0
    aa[1] = torch.tensor([np.pi - 1e-7, 0, 0])
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    torch.testing.assert_close(axis_angle_to_matrix(back), axis_angle_to_matrix(aa))
    torch.testing.assert_close(back[2:], aa[2:])


def _naive_lbs(asset, full_pose: np.ndarray, shape: np.ndarray):
    """Per-sample, per-joint, per-vertex reference implementation (numpy float64)."""
    from scipy.spatial.transform import Rotation

    rots = Rotation.from_rotvec(full_pose.reshape(16, 3)).as_matrix()
    v_shaped = asset.v_template + asset.shapedirs @ shape
    joints = asset.J_regressor @ v_shaped
    pose_map = np.concatenate([(rots[j] - np.eye(3)).ravel() for j in range(1, 16)])
    v_posed = v_shaped + asset.posedirs @ pose_map
    glob = [None] * 16
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        p = asset.parents[j]
        local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        glob[j] = local if p < 0 else glob[p] @ local
    verts = np.zeros_like(v_posed)
    for i in range(len(v_posed)):
        t = sum(asset.weights[i, j] * glob[j] @ np.block(
            [[np.eye(3), -joints[j][:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])
            for j in range(16))
        verts[i] = (t @ np.append(v_posed[i], 1.0))[:3]
    return verts, np.stack(glob)


def test_matches_naive_reference_with_posedirs_and_pca(asset):
    rng = np.random.default_rng(0)
    fake = asset.copy()
    fake.posedirs = rng.normal(0, 1e-3, fake.posedirs.shape)
    fake.hands_components = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    fake.hands_mean = rng.normal(0, 0.2, 45)
    layer = HandLayer(fake, use_pca=True, ncomps=10, flat_hand_mean=False).double()
    coeffs = rng.normal(0, 0.5, (2, 13))
    shape = rng.normal(0, 1, (2, 10))
    out = layer(torch.as_tensor(coeffs), torch.as_tensor(shape))
    for b in range(2):
        full = np.concatenate([coeffs[b, :3],
                               coeffs[b, 3:] @ fake.hands_components[:10] + fake.hands_mean])
        verts, glob = _naive_lbs(fake, full, shape[b])
        np.testing.assert_allclose(out.vertices[b].numpy(), verts, atol=1e-7)  # float32 buffers
        np.testing.assert_allclose(out.transforms[b].numpy(), glob, atol=1e-7)
