"""Building blocks of gsdf.models against analytic expectations."""

from __future__ import annotations

import math

import pytest
import torch

from gsdf.config import ConfigError
from gsdf.models.args import DecoderArgs
from gsdf.models.backbones import ResNetBackbone
from gsdf.models.decoder import SDFDecoder
from gsdf.models.encodings import (
    hand_embedding,
    joint_frames,
    obj_embedding,
    pixel_aligned_features,
    to_local,
)
from gsdf.models.heads import (
    UNetNeck,
    axis_angle_to_matrix,
    decode_volume,
    encode_volume,
    rotation_6d_to_matrix,
    soft_argmax_3d,
    upgrade_neck_keys,
)
from gsdf.models.losses import HandOrdinalLoss, masked_l1, sdf_masks


def _random_rotation(b: int, gen: torch.Generator) -> torch.Tensor:
    return axis_angle_to_matrix(torch.randn(b, 3, generator=gen))


def _hand_frames(b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames and joints of randomly posed procedural hands (metres, wrist at origin)."""
    from gsdf.hand import HandLayer, procedural_hand

    gen = torch.Generator().manual_seed(seed)
    layer = HandLayer(procedural_hand(0))
    out = layer(0.3 * torch.randn(b, 48, generator=gen))
    joints = out.joints - out.joints[:, :1]
    return joint_frames(out.transforms[..., :3, :3], joints), joints


# ----------------------------------------------------------------------------------------------
# heatmaps


def test_soft_argmax_of_one_hot_returns_the_voxel():
    j, d, h, w = 3, 8, 6, 5
    heat = torch.full((2, j * d, h, w), -1e4)
    voxels = [(1, 2, 3), (4, 0, 7), (0, 5, 0)]  # (x, y, z)
    for k, (x, y, z) in enumerate(voxels):
        heat[:, k * d + z, y, x] = 0.0
    coords = soft_argmax_3d(heat, j)
    assert coords.shape == (2, j, 3)
    expected = torch.tensor(voxels, dtype=torch.float32).expand(2, -1, -1)
    torch.testing.assert_close(coords, expected)


def test_soft_argmax_of_uniform_heatmap_is_the_centre():
    coords = soft_argmax_3d(torch.zeros(1, 2 * 4, 6, 10), 2)
    torch.testing.assert_close(coords, torch.tensor([[[4.5, 2.5, 1.5]] * 2]))


def test_depth_decoding_inverts_encoding_and_is_wrist_relative():
    gen = torch.Generator().manual_seed(0)
    b = 3
    cam = torch.tensor([[240.0, 0, 64], [0, 250, 60], [0, 0, 1]]).repeat(b, 1, 1)
    wrist = torch.tensor([0.02, -0.01, 0.6]) + 0.05 * torch.randn(b, 3, generator=gen)
    pts = wrist[:, None] + 0.1 * torch.randn(b, 21, 3, generator=gen)
    args = dict(heatmap_hw=(32, 32), depth=64, image_hw=(128, 128), depth_dim=0.28, wrist=wrist,
                cam_intr=cam)
    vox = encode_volume(pts, **args)
    torch.testing.assert_close(decode_volume(vox, **args), pts, atol=1e-5, rtol=1e-5)
    # the middle of the depth range is the wrist depth; the ends are +-depth_dim
    mid = torch.tensor([[[16.0, 16.0, 31.5]]]).expand(b, 1, 3)
    torch.testing.assert_close(decode_volume(mid, **args)[..., 2], wrist[:, 2:3])
    ends = torch.tensor([[[0.0, 0.0, -0.5], [0.0, 0.0, 63.5]]]).expand(b, 2, 3)
    z = decode_volume(ends, **args)[..., 2] - wrist[:, 2:3]
    torch.testing.assert_close(z, torch.tensor([-0.28, 0.28]).expand(b, 2))


def test_decoded_pixel_is_the_cell_centre():
    cam = torch.tensor([[[100.0, 0, 0], [0, 100, 0], [0, 0, 1]]])
    wrist = torch.tensor([[0.0, 0.0, 1.0]])
    vox = torch.tensor([[[0.0, 0.0, 31.5]]])  # first cell, at the wrist depth
    cam_pt = decode_volume(vox, (16, 16), 64, (64, 64), 0.2, wrist, cam)
    # cell 0 of a stride-4 map covers pixels 0..3: centre 1.5
    torch.testing.assert_close(cam_pt[0, 0, :2] * 100, torch.tensor([1.5, 1.5]))


# ----------------------------------------------------------------------------------------------
# point encodings


def test_kinematic_embedding_is_invariant_to_a_rigid_motion():
    gen = torch.Generator().manual_seed(1)
    frames, joints = _hand_frames(2)
    scale = torch.tensor([3.5, 3.1])
    points = 0.5 * torch.randn(2, 40, 3, generator=gen)
    rot = _random_rotation(2, gen)
    trans = 0.1 * torch.randn(2, 3, generator=gen)  # metres
    motion = torch.eye(4).repeat(2, 1, 1)
    motion[:, :3, :3], motion[:, :3, 3] = rot, trans
    moved_frames = motion[:, None] @ frames
    moved_points = points @ rot.transpose(1, 2) + (trans * scale[:, None])[:, None]
    for latent in (6, 21, 36, 51):
        a = hand_embedding(points, latent, scale, frames)[..., 3:]
        b = hand_embedding(moved_points, latent, scale, moved_frames)[..., 3:]
        assert a.shape == (2, 40, latent - 3)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    obj_frame = motion.clone()  # any rigid frame
    rel_joints = joints[:, :21]
    for latent in (6, 9, 69, 72):
        a = obj_embedding(points, latent, scale, obj_frame, frames[:, 0], rel_joints)
        b = obj_embedding(moved_points, latent, scale, motion @ obj_frame,
                          motion @ frames[:, 0], rel_joints @ rot.transpose(1, 2) + trans[:, None])
        assert a.shape == (2, 40, latent)
        local = 9 if latent in (9, 72) else 6  # object (and wrist) frame coordinates
        torch.testing.assert_close(a[..., 3:local], b[..., 3:local], atol=1e-5, rtol=1e-5)
        if latent in (69, 72):  # joint offsets rotate with the motion
            off_a = a[..., -63:].reshape(2, 40, 21, 3)
            off_b = b[..., -63:].reshape(2, 40, 21, 3)
            torch.testing.assert_close(off_a @ rot[:, None].transpose(-1, -2), off_b,
                                       atol=1e-5, rtol=1e-5)


def test_kinematic_embedding_through_ik_is_invariant_to_a_rigid_motion():
    from gsdf.models.hand_model import LayerHolder, ik_frames

    gen = torch.Generator().manual_seed(2)
    _, joints = _hand_frames(2, seed=3)
    holder = LayerHolder(None)
    rot = _random_rotation(2, gen)
    trans = torch.tensor([0.05, -0.02, 0.6])
    cam_a = joints + trans
    cam_b = joints @ rot.transpose(1, 2) + trans
    scale = torch.full((2,), 3.5)
    points = 0.5 * torch.randn(2, 30, 3, generator=gen)
    emb_a = hand_embedding(points, 51, scale, ik_frames(holder, cam_a))[..., 3:]
    emb_b = hand_embedding(points @ rot.transpose(1, 2), 51, scale,
                           ik_frames(holder, cam_b))[..., 3:]
    torch.testing.assert_close(emb_a, emb_b, atol=1e-4, rtol=1e-4)


def test_each_joint_is_the_origin_of_its_own_frame():
    frames, _ = _hand_frames(2)
    scale = torch.tensor([3.5, 3.0])
    at_joints = frames[:, :, :3, 3] * scale[:, None, None]  # (B, 16, 3) hand units
    local = to_local(at_joints, frames, scale)  # (B, 16 points, 16 frames, 3)
    diag = local[:, torch.arange(16), torch.arange(16)]
    torch.testing.assert_close(diag, torch.zeros_like(diag), atol=1e-6, rtol=0)
    # the wrist-frame encoding (latent 6) of the wrist is zero
    wrist = torch.zeros(2, 1, 3)
    torch.testing.assert_close(hand_embedding(wrist, 6, scale, frames), torch.zeros(2, 1, 6))
    # and the object centre is the origin of the object frame
    obj = torch.eye(4).repeat(2, 1, 1)
    obj[:, :3, 3] = torch.tensor([0.03, 0.01, -0.02])
    centre = (obj[:, :3, 3] * scale[:, None])[:, None]
    torch.testing.assert_close(obj_embedding(centre, 6, scale, obj)[..., 3:],
                               torch.zeros(2, 1, 3), atol=1e-6, rtol=0)


def test_pixel_alignment_reads_back_the_pixel_coordinates():
    b, size, stride = 2, 64, 8
    h = w = size // stride
    centres = (torch.arange(w, dtype=torch.float32) + 0.5) * stride - 0.5
    fmap = torch.stack([centres[None, :].expand(h, w), centres[:, None].expand(h, w)])
    fmap = fmap.expand(b, 2, h, w).contiguous()  # channel 0 = u, channel 1 = v of each cell
    gen = torch.Generator().manual_seed(0)
    uv = centres[0] + (centres[-1] - centres[0]) * torch.rand(b, 50, 2, generator=gen)
    depth = 0.4 + 0.3 * torch.rand(b, 50, 1, generator=gen)
    cam = torch.tensor([[120.0, 0, 30], [0, 110, 33], [0, 0, 1]]).repeat(b, 1, 1)
    xy = (uv - torch.stack([cam[:, 0, 2], cam[:, 1, 2]], -1)[:, None]) / torch.stack(
        [cam[:, 0, 0], cam[:, 1, 1]], -1)[:, None] * depth
    p_cam = torch.cat([xy, depth], -1)
    wrist = torch.tensor([[0.01, 0.02, 0.5], [-0.03, 0.0, 0.55]])
    scale = torch.tensor([3.5, 3.1])
    points = (p_cam - wrist[:, None]) * scale[:, None, None]
    feats = pixel_aligned_features(fmap, points, wrist, scale, cam, (size, size), True)
    assert feats.shape == (b, 50, 2 + 4)
    torch.testing.assert_close(feats[..., :2], uv, atol=1e-3, rtol=0)
    torch.testing.assert_close(feats[..., 2:3], depth, atol=1e-5, rtol=0)
    torch.testing.assert_close(feats[..., 3:], torch.nn.functional.normalize(p_cam, dim=-1),
                               atol=1e-5, rtol=0)
    plain = pixel_aligned_features(fmap, points, wrist, scale, cam, (size, size), False)
    assert plain.shape == (b, 50, 2)


# ----------------------------------------------------------------------------------------------
# decoder, backbone, rotations, losses


def test_decoder_structure_matches_deepsdf():
    dec = SDFDecoder(256, 51, DecoderArgs(), with_parts=True)
    assert len(dec.layers) == 5
    widths = [(layer.in_features, layer.out_features) for layer in dec.layers]
    assert widths == [(307, 512), (512, 512 - 307), (512, 512), (512, 512), (512, 1)]
    for i in range(4):
        assert hasattr(dec.layers[i], "parametrizations"), "hidden layers use weight norm"
    assert not hasattr(dec.layers[4], "parametrizations")
    x = torch.randn(100, 307) * 10
    dec.eval()
    sdf, parts = dec(x)
    assert sdf.shape == (100,) and parts.shape == (100, 6)
    assert sdf.abs().max() < 1  # tanh
    # the input is re-injected at layer 2: changing only the point part changes the output
    # even if layers 0-1 are bypassed
    dec.train()
    a, _ = dec(x)
    b, _ = dec(x)
    assert not torch.allclose(a, b), "dropout is active in training mode"


def test_decoder_rejects_a_reinjection_wider_than_the_layer():
    with pytest.raises(ValueError, match="decoder.dims"):
        SDFDecoder(256, 72, DecoderArgs(dims=(128, 128, 128, 128)))


def test_backbone_shapes_and_local_weights(tmp_path):
    net = ResNetBackbone("resnet18")
    assert net(torch.randn(1, 3, 64, 96)).shape == (1, 512, 2, 3)
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    loaded = ResNetBackbone("resnet18", weights_path=path)
    torch.testing.assert_close(loaded.conv1.weight, reference.conv1.weight)
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        ResNetBackbone("resnet18", weights_path=tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="allowed values"):
        ResNetBackbone("vgg16")


def test_backbone_levels_feed_a_unet_neck_with_skips():
    net = ResNetBackbone("resnet18").eval()
    image = torch.randn(2, 3, 64, 64)
    final, skips = net.levels(image)
    torch.testing.assert_close(final, net(image))
    assert [tuple(s.shape[1:]) for s in skips] == [(256, 4, 4), (128, 8, 8), (64, 16, 16),
                                                   (64, 32, 32)]
    assert [s.shape[1] for s in skips] == list(net.level_channels[::-1])
    neck = UNetNeck(512, 32, 3, net.level_channels[::-1])
    out = neck(final, skips)
    assert out.shape == (2, 32, 16, 16)
    # the skips carry information: changing the finest one used changes the output
    changed = neck(final, skips[:2] + [skips[2] + 1.0] + skips[3:])
    assert not torch.allclose(out, changed)
    # four stages reach the stride-2 map of conv1
    assert UNetNeck(512, 32, 4, net.level_channels[::-1])(final, skips).shape == (2, 32, 32, 32)
    with pytest.raises(ValueError, match="skip"):
        neck(final)
    plain = UNetNeck(512, 32, 3)
    assert plain(final).shape == (2, 32, 16, 16)


def test_state_dicts_from_before_the_skip_necks_still_load():
    from gsdf.models import build_model

    net = build_model("pose", {"image_size": 64, "neck_channels": 8, "heatmap_depth": 4})
    current = net.state_dict()
    # the old layout: Sequential(deconv, BN, ReLU) x stages under "layers"
    legacy = {}
    for key, value in current.items():
        if ".neck.ups." in key:
            stage, kind, rest = key.split(".neck.ups.")[1].split(".", 2)
            key = f"volume.neck.layers.{3 * int(stage) + int(kind)}.{rest}"
        legacy[key] = value
    assert any(".neck.layers.3." in k for k in legacy)
    upgraded = upgrade_neck_keys(legacy)
    assert set(upgraded) == set(current)
    assert upgrade_neck_keys({"pixel_neck.layers.1.weight": 1})["pixel_neck.ups.0.1.weight"] == 1
    net.load_state_dict(upgraded)


def test_pose_network_with_neck_skips_trains_and_checks_its_stages():
    from gsdf.models import build_model

    args = {"image_size": 64, "neck_channels": 16, "heatmap_depth": 8, "neck_skips": True}
    net = build_model("pose", args)
    wrist = torch.tensor([[0.0, 0.0, 0.5]]).repeat(2, 1)
    cam = torch.tensor([[120.0, 0, 32], [0, 120.0, 32], [0, 0, 1]]).repeat(2, 1, 1)
    joints = net.predict_joints(torch.randn(2, 3, 64, 64), wrist, cam)
    assert joints.shape == (2, 21, 3)
    joints.sum().backward()
    assert net.volume.neck.skips[2][0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="neck_stages"):
        build_model("pose", {**args, "neck_stages": 5})
    four = build_model("pose", {**args, "neck_stages": 4})  # conv1's stride-2 map as 4th skip
    assert four.predict_joints(torch.randn(2, 3, 64, 64), wrist, cam).shape == (2, 21, 3)


def test_pose_network_joint_losses():
    from gsdf.models import build_model

    args = {"image_size": 64, "neck_channels": 16, "heatmap_depth": 8, "neck_skips": True,
            "hand_ordinal_weight": 0.0}
    torch.manual_seed(0)
    batch = {"image": torch.randn(2, 3, 64, 64),
             "hand_center_3d": torch.tensor([[0.0, 0.0, 0.5]]).repeat(2, 1),
             "recon_scale": torch.full((2,), 7.0),
             "cam_intr": torch.tensor([[120.0, 0, 32], [0, 120.0, 32], [0, 0, 1]]).repeat(2, 1, 1),
             "hand_joints_3d": torch.randn(2, 21, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.5])}
    terms = {}
    for loss in ("mse", "l1"):
        net = build_model("pose", {**args, "joints_loss": loss})
        net.eval()
        pred = net.encode(batch)["joints"]
        terms[loss] = net(batch, epoch=0)["joints"]
        err = pred - batch["hand_joints_3d"]
        expect = err.abs().mean() if loss == "l1" else err.pow(2).mean()
        torch.testing.assert_close(terms[loss], expect)
    with pytest.raises(ConfigError, match="joints_loss.*'mse', 'l1'"):
        build_model("pose", {**args, "joints_loss": "huber"})


def test_rotation_parametrisations_are_rotations():
    gen = torch.Generator().manual_seed(0)
    for rot in (rotation_6d_to_matrix(torch.randn(5, 6, generator=gen)),
                axis_angle_to_matrix(torch.randn(5, 3, generator=gen))):
        torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(5, 3, 3),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.linalg.det(rot), torch.ones(5))
    quarter = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]]))
    torch.testing.assert_close(quarter[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]),
                               atol=1e-6, rtol=0)


def test_sdf_mask_schedule_and_clamped_l1():
    hand, obj = sdf_masks(2, 6, True, epoch=3, sdf_add_epoch=5, device=torch.device("cpu"))
    assert hand[0].tolist() == [1, 1, 1, 0, 0, 0] and obj[0].tolist() == [0, 0, 0, 1, 1, 1]
    hand, obj = sdf_masks(2, 6, True, epoch=5, sdf_add_epoch=5, device=torch.device("cpu"))
    assert hand.sum() == obj.sum() == 12
    hand, _ = sdf_masks(2, 6, False, epoch=0, sdf_add_epoch=5, device=torch.device("cpu"))
    assert hand.sum() == 12
    pred = torch.tensor([[0.5, 0.0, -0.01]])
    gt = torch.tensor([[0.04, 0.1, 0.3]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # |0.05 - 0.04| and |0 - 0.05| over two points
    assert masked_l1(pred, gt, mask, 0.05).item() == pytest.approx(0.03)


def test_band_l1_equals_clamped_inside_the_band_and_has_no_dead_zone():
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(4, 64, generator=gen) - 0.5) * 0.3  # inside and beyond +-0.05
    mask = torch.ones_like(target)
    inside = (torch.rand(4, 64, generator=gen) - 0.5) * 0.1  # predictions within the band
    torch.testing.assert_close(masked_l1(inside, target, mask, 0.05, "band"),
                               masked_l1(inside, target, mask, 0.05, "clamped"))
    # beyond the band: never smaller than the reference's value
    outside = (torch.rand(4, 64, generator=gen) - 0.5) * 0.6
    assert (masked_l1(outside, target, mask, 0.05, "band")
            >= masked_l1(outside, target, mask, 0.05, "clamped"))
    # a prediction above +clamp where the truth is on the surface: no gradient from the
    # reference's loss, a gradient towards the surface from band
    pred = torch.tensor([[0.2, 0.2, 0.2]], requires_grad=True)
    truth = torch.tensor([[0.0, 0.3, -0.3]])
    for style, expected in (("clamped", [0.0, 0.0, 0.0]), ("band", [1 / 3, 0.0, 1 / 3])):
        pred.grad = None
        masked_l1(pred, truth, torch.ones_like(truth), 0.05, style).backward()
        assert pred.grad[0].tolist() == pytest.approx(expected)
    # both beyond +clamp: no loss either way
    assert masked_l1(torch.tensor([[0.2]]), torch.tensor([[0.3]]), torch.ones(1, 1), 0.05,
                     "band").item() == 0.0
    with pytest.raises(ValueError, match="band"):
        masked_l1(pred, truth, torch.ones_like(truth), 0.05, "huber")


def test_band_loss_pulls_back_a_decoder_stuck_above_the_clamp():
    """A field above +clamp everywhere: the reference loss cannot move it, band can."""
    points = torch.rand(1, 256, 3) * 2 - 1
    target = points.norm(dim=-1) - 0.5  # a sphere, crossing zero inside the cube
    for style, moves in (("clamped", False), ("band", True)):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        with torch.no_grad():
            net[2].bias.fill_(0.5)  # stuck: every prediction > +clamp
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(200):
            opt.zero_grad()
            loss = masked_l1(net(points)[..., 0], target, torch.ones_like(target), 0.05, style)
            loss.backward()
            opt.step()
        crosses = bool((net(points)[..., 0] < 0).any())
        assert crosses == moves, style


def test_hand_ordinal_loss_is_zero_for_the_truth_and_positive_when_mirrored():
    gen = torch.Generator().manual_seed(0)
    _, joints = _hand_frames(2)
    joints = joints + torch.tensor([0.0, 0.0, 0.5])
    loss = HandOrdinalLoss()
    assert loss(joints, joints).item() == 0.0
    mirrored = joints * torch.tensor([1.0, 1.0, -1.0]) + torch.tensor([0.0, 0.0, 1.0])
    torch.manual_seed(0)
    assert loss(mirrored + 1e-3 * torch.randn(joints.shape, generator=gen), joints).item() > 0


def test_fast_dropout_matches_inverted_dropout_semantics():
    from gsdf.models.decoder import fast_dropout

    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = fast_dropout(x, 0.2, True)
    zero = (y == 0).float().mean().item()
    assert abs(zero - 0.2) < 0.005  # ~0.0009 standard deviation
    assert torch.allclose(y[y != 0], torch.tensor(1.25))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask)/dx = mask
    assert fast_dropout(x, 0.2, False) is x and fast_dropout(x, 0.0, True) is x
    assert torch.equal(fast_dropout(x, 1.0, True), torch.zeros_like(x))
    torch.manual_seed(3)
    a = fast_dropout(x, 0.5, True)
    torch.manual_seed(3)
    assert torch.equal(a, fast_dropout(x, 0.5, True))  # the global generator: seeded runs repeat
