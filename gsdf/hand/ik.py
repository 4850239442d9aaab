"""gSDF's analytic inverse kinematics: 21 joints -> 48-d pose (and the posed hand).

Method (gSDF, Chen et al. CVPR 2023, section 3.2; the reference's ``ik_solver_mano``):

1. the global rotation is the orthogonal Procrustes (Kabsch) fit that maps the five template
   palm vectors (wrist -> thumb1, index1, middle1, ring1, pinky1) onto the predicted ones;
2. then, finger by finger from the palm outwards, each joint's local rotation is the swing (the
   minimal rotation, no twist) that aligns the template bone to the predicted bone, expressed in
   the frame of the already-solved parent.

All five fingers are solved at once and the batch is never looped over (three steps, one per
joint level). Unlike the reference, a Procrustes solution that would be a reflection is corrected
(``diag(1, 1, det)``) instead of leaving that sample at the zero pose.
"""

from __future__ import annotations

import torch

from gsdf.hand.asset import JOINTS21_FROM_16_AND_TIPS, NUM_BETAS
from gsdf.hand.layer import HandLayer, HandOutput
from gsdf.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

# per finger in gSDF order (thumb, index, middle, ring, pinky): its 21-joint chain and its
# 16 kinematic joints
_CHAINS_21 = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16],
                           [17, 18, 19, 20]])
_KIN = torch.tensor([[13, 14, 15], [1, 2, 3], [4, 5, 6], [10, 11, 12], [7, 8, 9]])


def swing_rotation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Minimal rotation taking direction ``a`` to direction ``b``.

    Args:
        a, b: (..., 3) non-zero vectors (need not be unit).

    Returns:
        (..., 3) axis-angle. Parallel vectors give zero; antiparallel ones a half turn about an
        axis orthogonal to ``a``.
    """
    a_n = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b_n = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    cross = torch.linalg.cross(a_n, b_n, dim=-1)
    sin = cross.norm(dim=-1, keepdim=True)
    cos = (a_n * b_n).sum(-1, keepdim=True)
    angle = torch.atan2(sin, cos)
    axis = cross / sin.clamp_min(eps)
    # antiparallel: any axis orthogonal to a
    helper = torch.where(a_n[..., :1].abs() < 0.9, torch.tensor([1.0, 0.0, 0.0]).to(a),
                         torch.tensor([0.0, 1.0, 0.0]).to(a))
    ortho = torch.linalg.cross(a_n, helper.expand_as(a_n), dim=-1)
    ortho = ortho / ortho.norm(dim=-1, keepdim=True).clamp_min(eps)
    degenerate = (sin < 1e-7) & (cos < 0)
    axis = torch.where(degenerate, ortho, axis)
    return axis * angle


def procrustes_rotation(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Rotation ``R`` minimising ``sum_i |R src_i - dst_i|^2`` (Kabsch, reflection corrected).

    Args:
        src, dst: (B, N, 3) corresponding vectors.

    Returns:
        (B, 3, 3) proper rotations.
    """
    h = src.transpose(1, 2) @ dst  # (B, 3, 3) = sum_i src_i dst_i^T
    u, _, vt = torch.linalg.svd(h)
    v = vt.transpose(1, 2)
    det = torch.linalg.det(v @ u.transpose(1, 2))
    d = torch.ones_like(h[:, 0])  # (B, 3)
    d[:, 2] = torch.sign(det) + (det == 0).to(det.dtype)
    return v @ torch.diag_embed(d) @ u.transpose(1, 2)


def template_joints(layer: HandLayer, shape: torch.Tensor) -> torch.Tensor:
    """(B, 21, 3) joints of the unrotated (all-zero rotation) hand for ``shape`` (B, 10)."""
    v_shaped, rest = layer.shaped(shape)
    tips = v_shaped[:, layer.tip_vertex_ids]
    return torch.cat([rest, tips], dim=1)[:, JOINTS21_FROM_16_AND_TIPS]


def inverse_kinematics(layer: HandLayer, joints: torch.Tensor,
                       shape: torch.Tensor | None = None,
                       tip_iterations: int = 0) -> tuple[torch.Tensor, HandOutput]:
    """Solve the hand pose that reproduces 21 joints (gSDF's IK), batched.

    Args:
        layer: a :class:`HandLayer` with ``use_pca=False`` (any ``flat_hand_mean``, ``center_idx``).
        joints: (B, 21, 3) target joints in gSDF order, metres, any frame; treated as constants
            (detached), as in gSDF.
        shape: (B, 10) betas of the hand (zeros if None); bone lengths come from it, so the
            joints are reproduced exactly only if it is the shape that produced them.
        tip_iterations: extra passes that re-solve the distal joints with the fingertip offset
            actually produced by the layer (pose blend shapes and multi-joint skinning of the tip
            vertex move MANO's fingertips by up to ~3 mm). 0 (the default) is gSDF's solver; the
            procedural hand needs none (its tips are rigidly attached to the distal joints).

    Returns:
        ``pose`` (B, 48): the layer's pose input (axis-angle; ``hands_mean`` already subtracted
        when ``flat_hand_mean=False``), and the :class:`HandOutput` of ``layer(pose, shape)``
        translated so that its wrist is at ``joints[:, 0]`` (vertices, joints and the
        translations of the transforms, which then live in the frame of ``joints``).

    Raises:
        ValueError: wrong shapes, non-finite values, or a PCA layer.
    """
    if not isinstance(layer, HandLayer):
        raise ValueError(f"layer must be a HandLayer, got {type(layer).__name__}")
    if layer.use_pca:
        raise ValueError("inverse_kinematics needs a HandLayer with use_pca=False")
    if not isinstance(joints, torch.Tensor) or joints.ndim != 3 or joints.shape[1:] != (21, 3):
        got = tuple(joints.shape) if isinstance(joints, torch.Tensor) else type(joints).__name__
        raise ValueError(f"joints must be a tensor of shape (B, 21, 3), got {got}")
    if not bool(torch.isfinite(joints).all()):
        raise ValueError("joints contain NaN or inf")
    dtype = layer.v_template.dtype
    joints = joints.detach().to(dtype)
    batch = joints.shape[0]
    if shape is None:
        shape = joints.new_zeros(batch, NUM_BETAS)
    if (not isinstance(shape, torch.Tensor) or shape.shape != (batch, NUM_BETAS)):
        got = tuple(shape.shape) if isinstance(shape, torch.Tensor) else type(shape).__name__
        raise ValueError(f"shape must be a tensor of shape ({batch}, {NUM_BETAS}), got {got}")
    if not bool(torch.isfinite(shape).all()):
        raise ValueError("shape contains NaN or inf")
    shape = shape.detach().to(dtype)

    if not isinstance(tip_iterations, int) or tip_iterations < 0:
        raise ValueError(f"tip_iterations must be a non-negative int, got {tip_iterations!r}")

    with torch.no_grad():
        target = joints - joints[:, :1]  # (B, 21, 3) wrist at the origin
        tmpl = template_joints(layer, shape)
        tmpl = tmpl - tmpl[:, :1]
        chains = _CHAINS_21.to(joints.device)
        kin = _KIN.to(joints.device)
        bones = [tmpl[:, chains[:, k + 1]] - tmpl[:, chains[:, k]] for k in range(3)]  # (B,5,3)
        for it in range(tip_iterations + 1):
            pose = _solve(layer, target, tmpl, bones, chains, kin)
            out = layer(pose, shape)
            if it < tip_iterations:
                # distal bone as the layer really places it, in the distal joint's frame
                distal = out.transforms[:, kin[:, 2]]  # (B, 5, 4, 4)
                offset = out.joints[:, chains[:, 3]] - distal[..., :3, 3]
                bones[2] = (distal[..., :3, :3].transpose(-1, -2) @ offset[..., None])[..., 0]
        shift = joints[:, :1] - out.joints[:, :1]  # (B, 1, 3)
        transforms = out.transforms.clone()
        transforms[:, :, :3, 3] += shift
        return pose, HandOutput(out.vertices + shift, out.joints + shift, transforms)


def _solve(layer: HandLayer, target: torch.Tensor, tmpl: torch.Tensor,
           bones: list[torch.Tensor], chains: torch.Tensor, kin: torch.Tensor) -> torch.Tensor:
    """One IK pass. target, tmpl: (B, 21, 3) wrist-relative; bones: 3 x (B, 5, 3) rest bones per
    finger (thumb..pinky) from joint k to k+1. Returns the layer's (B, 48) pose input."""
    batch = target.shape[0]
    dtype = target.dtype
    root = procrustes_rotation(tmpl[:, chains[:, 0]], target[:, chains[:, 0]])  # (B, 3, 3)
    local = torch.eye(3, dtype=dtype, device=target.device).repeat(batch, 16, 1, 1)
    local[:, 0] = root
    parent_rot = root[:, None].expand(batch, 5, 3, 3)  # (B, 5, 3, 3)
    position = (parent_rot @ tmpl[:, chains[:, 0], :, None])[..., 0]  # (B, 5, 3) joint1
    for k in range(3):
        wanted = target[:, chains[:, k + 1]] - position  # (B, 5, 3) posed bone
        wanted_local = (parent_rot.transpose(-1, -2) @ wanted[..., None])[..., 0]
        rot = axis_angle_to_matrix(swing_rotation(bones[k], wanted_local))  # (B, 5, 3, 3)
        local[:, kin[:, k]] = rot
        parent_rot = parent_rot @ rot
        position = position + (parent_rot @ bones[k][..., None])[..., 0]
    full = matrix_to_axis_angle(local).reshape(batch, 48)
    pose = full.clone()
    pose[:, 3:] = full[:, 3:] - layer.hands_mean
    return pose
