"""Necks and heads: UNet deconvolution neck, 3D heatmaps with soft-argmax and wrist-relative depth
decoding, MLP heads (MANO parameters, object rotation) and rotation parametrisations.

Heatmap convention (reference ``common/utils/pose_utils.py``): a volume head outputs
``J * D`` channels on an ``h x w`` map, read as ``J`` volumes of ``D x h x w`` (depth, row,
column). :func:`soft_argmax_3d` returns continuous voxel indices ``(x, y, z)`` = (column, row,
depth bin). :func:`decode_volume` turns them into camera metres: the pixel of cell ``x`` is its
centre ``(x + 0.5) * W / w - 0.5`` (OpenCV pixel centres; the reference uses ``x * W / w``, half a
cell off), and the depth bin is a depth relative to the wrist,
``z_cam = ((z + 0.5) / D * 2 - 1) * depth_dim + z_wrist`` (reference: ``z / D * 2 - 1``).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

_LEGACY_NECK_KEY = re.compile(r"(^|\.)(\w*neck)\.layers\.(\d+)\.")


def upgrade_neck_keys(state_dict: dict) -> dict:
    """Rename the UNet-neck entries of a state dict written before the necks had skip
    connections: stage ``i`` was ``*neck.layers.{3i}`` (deconvolution) and ``{3i+1}`` (its
    BatchNorm), it is ``*neck.ups.{i}.0`` / ``.1`` now. Other keys are kept as they are.

    Returns:
        A new dict (the input is not modified).
    """
    def rename(key: str) -> str:
        def sub(m: re.Match) -> str:
            stage, kind = divmod(int(m.group(3)), 3)
            return f"{m.group(1)}{m.group(2)}.ups.{stage}.{kind}."
        return _LEGACY_NECK_KEY.sub(sub, key, count=1)

    return {rename(k): v for k, v in state_dict.items()}


class UNetNeck(nn.Module):
    """Stride-2 transposed convolutions (kernel 4) + BN + ReLU (reference ``UNet``), optionally
    with skip connections: after stage ``i`` the backbone map of the same resolution, projected
    by a 1x1 convolution + BN, is added before the ReLU (a UNet proper; the reference has none).

    Args:
        in_channels: channels of the backbone's final map.
        out_channels: channels of every stage.
        stages: number of x2 upsampling stages.
        skip_channels: channels of the skip maps, coarse to fine (one per stage, e.g. the
            backbone's ``level_channels`` reversed); None = no skips.

    Shapes:
        (B, in_channels, h, w) [+ skips (B, skip_channels[i], h * 2**(i+1), w * 2**(i+1))]
        -> (B, out_channels, h * 2**stages, w * 2**stages).
    """

    def __init__(self, in_channels: int, out_channels: int = 256, stages: int = 3,
                 skip_channels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if skip_channels is not None and len(skip_channels) < stages:
            raise ValueError(f"a UNet neck with {stages} stages needs {stages} skip maps, got "
                             f"channels {tuple(skip_channels)}")
        self.ups = nn.ModuleList()
        self.skips = nn.ModuleList() if skip_channels is not None else None
        for i in range(stages):
            self.ups.append(nn.Sequential(
                nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1,
                                   bias=False),
                nn.BatchNorm2d(out_channels)))
            if self.skips is not None:
                self.skips.append(nn.Sequential(
                    nn.Conv2d(skip_channels[i], out_channels, kernel_size=1, bias=False),
                    nn.BatchNorm2d(out_channels)))
            in_channels = out_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Args: x (B, C, h, w); skips: the maps of ``skip_channels`` (needed with skips)."""
        if self.skips is not None and skips is None:
            raise ValueError("this UNet neck has skip connections: pass the backbone's "
                             "intermediate maps (ResNetBackbone.levels)")
        for i, up in enumerate(self.ups):
            x = up(x)
            if self.skips is not None:
                x = x + self.skips[i](skips[i])
            x = torch.relu(x)
        return x


class VolumeHead(nn.Module):
    """Neck + 1x1 convolution to ``num_joints * depth`` heatmap channels + soft-argmax + decoding.

    Args:
        in_channels: backbone channels.
        num_joints: heatmap volumes (21 hand joints, or 1 object centre).
        depth: depth bins ``D``.
        depth_dim: half depth range in metres around the wrist depth.
        neck_channels, neck_stages: :class:`UNetNeck` settings.
    """

    def __init__(self, in_channels: int, num_joints: int, depth: int = 64,
                 depth_dim: float = 0.28, neck_channels: int = 256, neck_stages: int = 3,
                 skip_channels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.num_joints, self.depth, self.depth_dim = num_joints, depth, depth_dim
        self.neck = UNetNeck(in_channels, neck_channels, neck_stages, skip_channels)
        self.conv = nn.Conv2d(neck_channels, num_joints * depth, kernel_size=1)

    def forward(self, feat: torch.Tensor, image_hw: tuple[int, int], wrist: torch.Tensor,
                cam_intr: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Args: feat (B, C, h, w) backbone features; image_hw (H, W) input image size in pixels;
        wrist (B, 3) camera metres (depth reference); cam_intr (B, 3, 3); skips: the
        backbone's intermediate maps when the neck has skip connections.

        Returns: (B, J, 3) camera metres."""
        heatmaps = self.conv(self.neck(feat, skips))
        coords = soft_argmax_3d(heatmaps, self.num_joints)
        return decode_volume(coords, heatmaps.shape[-2:], self.depth, image_hw, self.depth_dim,
                             wrist, cam_intr)


def soft_argmax_3d(heatmaps: torch.Tensor, num_joints: int) -> torch.Tensor:
    """Expected voxel index under the softmax of each joint's volume (integral regression).

    Args:
        heatmaps: (B, J * D, h, w) logits.
        num_joints: J.

    Returns:
        (B, J, 3) continuous voxel indices (x column in [0, w-1], y row, z depth bin).
    """
    b, c, h, w = heatmaps.shape
    d = c // num_joints
    prob = F.softmax(heatmaps.reshape(b, num_joints, d * h * w), dim=2)
    prob = prob.reshape(b, num_joints, d, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device)
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device)
    zs = torch.arange(d, dtype=prob.dtype, device=prob.device)
    x = (prob.sum(dim=(2, 3)) * xs).sum(-1)  # (B, J)
    y = (prob.sum(dim=(2, 4)) * ys).sum(-1)
    z = (prob.sum(dim=(3, 4)) * zs).sum(-1)
    return torch.stack([x, y, z], dim=-1)


def decode_volume(coords: torch.Tensor, heatmap_hw: tuple[int, int], depth: int,
                  image_hw: tuple[int, int], depth_dim: float, wrist: torch.Tensor,
                  cam_intr: torch.Tensor) -> torch.Tensor:
    """Voxel indices -> camera metres (wrist-relative depth; see the module docstring).

    Args:
        coords: (B, J, 3) voxel indices from :func:`soft_argmax_3d`.
        heatmap_hw: (h, w) heatmap size; depth: D bins.
        image_hw: (H, W) input image size (pixels, the frame of ``cam_intr``).
        depth_dim: half depth range, metres.
        wrist: (B, 3) camera metres; only its depth is used.
        cam_intr: (B, 3, 3).

    Returns:
        (B, J, 3) camera metres.
    """
    (h, w), (img_h, img_w) = heatmap_hw, image_hw
    u = (coords[..., 0] + 0.5) * (img_w / w) - 0.5
    v = (coords[..., 1] + 0.5) * (img_h / h) - 0.5
    z = ((coords[..., 2] + 0.5) / depth * 2 - 1) * depth_dim + wrist[:, 2:3]
    fx, fy = cam_intr[:, 0:1, 0], cam_intr[:, 1:2, 1]
    cx, cy = cam_intr[:, 0:1, 2], cam_intr[:, 1:2, 2]
    return torch.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], dim=-1)


def encode_volume(points: torch.Tensor, heatmap_hw: tuple[int, int], depth: int,
                  image_hw: tuple[int, int], depth_dim: float, wrist: torch.Tensor,
                  cam_intr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`decode_volume`: camera metres (B, J, 3) -> voxel indices (B, J, 3)."""
    (h, w), (img_h, img_w) = heatmap_hw, image_hw
    z = points[..., 2]
    u = points[..., 0] / z * cam_intr[:, 0:1, 0] + cam_intr[:, 0:1, 2]
    v = points[..., 1] / z * cam_intr[:, 1:2, 1] + cam_intr[:, 1:2, 2]
    x = (u + 0.5) / (img_w / w) - 0.5
    y = (v + 0.5) / (img_h / h) - 0.5
    zi = ((z - wrist[:, 2:3]) / depth_dim + 1) / 2 * depth - 0.5
    return torch.stack([x, y, zi], dim=-1)


class MLPHead(nn.Module):
    """Linear + ReLU layers then a linear output (reference ``FCHead``).

    Shapes: (B, neurons[0]) -> (B, out_dim).
    """

    def __init__(self, neurons: tuple[int, ...] = (512, 256, 128), out_dim: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip(neurons[:-1], neurons[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(neurons[-1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class GlobalFeature(nn.Module):
    """1x1 conv + BN + ReLU then global average pooling (reference ``backbone_2_*``).

    Shapes: (B, C, h, w) -> (B, out_channels).
    """

    def __init__(self, in_channels: int, out_channels: int = 512) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class ManoParamHead(nn.Module):
    """MANO parameter regression for AlignSDF (reference ``ManoHead``, ``use_pca``).

    Args:
        in_features: global feature size (512).
        ncomps: finger-pose PCA components (15); 45 with ``pca=None`` means full axis-angle.
        neurons: MLP widths; the first must equal ``in_features``.

    Shapes:
        forward: (B, in_features) -> pose coefficients (B, 3 + ncomps) (global axis-angle then
        PCA coefficients), shape (B, 10).
    """

    def __init__(self, in_features: int = 512, ncomps: int = 15,
                 neurons: tuple[int, ...] = (512, 512, 512)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip((in_features,) + tuple(neurons[1:-1]), neurons[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.pose_reg = nn.Linear(neurons[-1], 3 + ncomps)
        self.shape_reg = nn.Linear(neurons[-1], 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.pose_reg(h), self.shape_reg(h)


# ----------------------------------------------------------------------------------------------
# Rotations
# ----------------------------------------------------------------------------------------------


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Continuous 6D rotation (Zhou et al. 2019, Gram-Schmidt on two columns).

    Args: x (..., 6). Returns: (..., 3, 3) rotation matrices whose first two columns are the
    orthonormalised inputs."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. Args: aa (..., 3) axis * angle (radians). Returns (..., 3, 3)."""
    angle = aa.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    axis = aa / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def rotation_from_head(x: torch.Tensor, style: str) -> torch.Tensor:
    """Rotation head output (B, 6) or (B, 3) -> (B, 3, 3) for ``rot_style`` 6d | axisang."""
    return rotation_6d_to_matrix(x) if style == "6d" else axis_angle_to_matrix(x)
