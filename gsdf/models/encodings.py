"""Point encodings: raw, kinematic (joint frames, object frame, joint offsets), pixel-aligned.

All query points are in the hand frame (docs/architecture.md): ``p = (p_cam - wrist) * s`` with
``s = recon_scale / 2``. Frames and joints given to these functions are in metres relative to the
wrist (camera axes), and converted here by the same ``s``, so every encoding is in hand-frame
units (the reference computes in metres and multiplies by ``s`` at the end; identical result).

Kinematic embeddings (gSDF, Chen et al. CVPR 2023, Sec. 3.2, Eq. 2-3): the point expressed in the
local frame ``G_k = [R_k | t_k]`` of joint ``k`` is ``G_k^{-1} p = R_k^T (p - t_k)``.

Joint-frame order (16, gSDF order, as the reference's reordered ``global_trans``): wrist,
thumb1-3, index1-3, middle1-3, ring1-3, pinky1-3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# MANO kinematic order (wrist, index, middle, pinky, ring, thumb) -> gSDF order of the 16 frames
MANO16_TO_GSDF16 = [0, 13, 14, 15, 1, 2, 3, 4, 5, 6, 10, 11, 12, 7, 8, 9]
# the 21-joint index (gSDF order) of each of the 16 kinematic joints in gSDF order
KINEMATIC_IN_21 = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]
# frames used by each hand latent size: wrist, then first / second / third phalanx frames
_LEVELS = {6: [0], 21: [0, 1, 4, 7, 10, 13], 36: [0, 1, 4, 7, 10, 13, 2, 5, 8, 11, 14],
           51: [0, 1, 4, 7, 10, 13, 2, 5, 8, 11, 14, 3, 6, 9, 12, 15]}


def joint_frames(rotations_mano: torch.Tensor, joints21: torch.Tensor) -> torch.Tensor:
    """Per-joint global frames relative to the wrist, gSDF order.

    Args:
        rotations_mano: (B, 16, 3, 3) global rotation of each kinematic joint, MANO order (the
            rotation block of the LBS layer's transforms).
        joints21: (B, 21, 3) posed joints, gSDF order, metres (any origin).

    Returns:
        (B, 16, 4, 4) frames ``[R_k | t_k]`` with ``t_k`` the joint position minus the wrist,
        metres, gSDF order.
    """
    b = joints21.shape[0]
    frames = torch.zeros(b, 16, 4, 4, dtype=joints21.dtype, device=joints21.device)
    frames[:, :, :3, :3] = rotations_mano[:, MANO16_TO_GSDF16]
    frames[:, :, :3, 3] = joints21[:, KINEMATIC_IN_21] - joints21[:, :1]
    frames[:, :, 3, 3] = 1
    return frames


def to_local(points: torch.Tensor, frames: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Points in the local frames.

    Args:
        points: (B, N, 3) hand-frame units.
        frames: (B, K, 4, 4) rigid frames, translation in metres relative to the wrist.
        scale: (B,) hand-frame scale ``recon_scale / 2``.

    Returns:
        (B, N, K, 3) ``R_k^T (p - s t_k)`` in hand-frame units.
    """
    rot = frames[..., :3, :3]  # (B, K, 3, 3)
    trans = frames[..., :3, 3] * scale[:, None, None]  # (B, K, 3) hand units
    rel = points[:, :, None, :] - trans[:, None]  # (B, N, K, 3)
    return torch.einsum("bkji,bnkj->bnki", rot, rel)


def hand_embedding(points: torch.Tensor, latent: int, scale: torch.Tensor,
                   frames: torch.Tensor | None = None) -> torch.Tensor:
    """Hand point encoding: raw (3) or kinematic (6, 21, 36, 51).

    Args:
        points: (B, N, 3) hand-frame units.
        latent: 3 (the point), 6 (+ wrist frame), 21 (+ the 5 first-phalanx frames),
            36 (+ second), 51 (+ third: all 16 joint frames).
        scale: (B,) ``recon_scale / 2``.
        frames: (B, 16, 4, 4) joint frames from :func:`joint_frames` (needed unless latent 3).

    Returns:
        (B, N, latent).
    """
    if latent == 3:
        return points
    local = to_local(points, frames[:, _LEVELS[latent]], scale)  # (B, N, K, 3)
    return torch.cat([points, local.flatten(2)], dim=-1)


def obj_embedding(points: torch.Tensor, latent: int, scale: torch.Tensor,
                  obj_frame: torch.Tensor | None = None, wrist_frame: torch.Tensor | None = None,
                  joints: torch.Tensor | None = None) -> torch.Tensor:
    """Object point encoding: raw (3) or 6, 9, 69, 72 (gSDF Eq. 3).

    Args:
        points: (B, N, 3) hand-frame units.
        latent: 3 (point); 6 = point, point in the object frame; 9 = + point in the wrist frame;
            69 = point, object frame, offsets to the 21 joints; 72 = all of them.
        scale: (B,) ``recon_scale / 2``.
        obj_frame: (B, 4, 4) object frame (rotation, centre - wrist in metres).
        wrist_frame: (B, 4, 4) wrist frame (rotation, translation relative to the wrist).
        joints: (B, 21, 3) joints minus the wrist, metres.

    Returns:
        (B, N, latent).
    """
    if latent == 3:
        return points
    parts = [points, to_local(points, obj_frame[:, None], scale)[:, :, 0]]
    if latent in (9, 72):
        parts.append(to_local(points, wrist_frame[:, None], scale)[:, :, 0])
    if latent in (69, 72):
        offsets = points[:, :, None, :] - (joints * scale[:, None, None])[:, None]  # (B,N,21,3)
        parts.append(offsets.flatten(2))
    return torch.cat(parts, dim=-1)


def hand_to_camera(points: torch.Tensor, wrist: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) hand-frame units -> (B, N, 3) camera metres."""
    return points / scale[:, None, None] + wrist[:, None, :]


def pixel_aligned_features(feat_map: torch.Tensor, points: torch.Tensor, wrist: torch.Tensor,
                           scale: torch.Tensor, cam_intr: torch.Tensor,
                           image_hw: tuple[int, int], with_add_feats: bool = True) -> torch.Tensor:
    """Sample a feature map at the projections of the query points (gSDF Sec. 3.3).

    The point goes to the camera (metres), is projected with the intrinsics to pixel ``(u, v)``
    (OpenCV: pixel centres at integers) and the map is sampled bilinearly, treating the map as
    covering the whole image (cell ``j`` centred on image coordinate ``(j + 0.5) W / w - 0.5``).
    Outside the image the feature is zero.

    Args:
        feat_map: (B, C, h, w).
        points: (B, N, 3) hand-frame units.
        wrist: (B, 3) camera metres (origin of the hand frame).
        scale: (B,) ``recon_scale / 2``.
        cam_intr: (B, 3, 3) intrinsics of the input image.
        image_hw: (H, W) input image size, pixels.
        with_add_feats: append the camera depth ``z`` (metres) and the unit view direction.

    Returns:
        (B, N, C) or (B, N, C + 4).
    """
    cam = hand_to_camera(points, wrist, scale)  # (B, N, 3)
    proj = cam @ cam_intr.transpose(1, 2)
    uv = proj[..., :2] / proj[..., 2:3].clamp_min(1e-6)  # (B, N, 2) pixels
    img_h, img_w = image_hw
    size = torch.tensor([img_w, img_h], dtype=uv.dtype, device=uv.device)
    grid = (uv + 0.5) / size * 2 - 1  # align_corners=False convention
    sampled = F.grid_sample(feat_map, grid[:, :, None, :], mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # (B, C, N, 1)
    feats = sampled[..., 0].transpose(1, 2)  # (B, N, C)
    if with_add_feats:
        feats = torch.cat([feats, cam[..., 2:3], F.normalize(cam, dim=-1)], dim=-1)
    return feats
