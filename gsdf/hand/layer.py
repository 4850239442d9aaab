"""Linear-blend-skinning hand layer (the manopth ``ManoLayer`` equivalent), batched and
differentiable, for any :class:`~gsdf.hand.asset.HandAsset`.

Transform convention (what :attr:`HandOutput.transforms` holds):

``T_j`` (4x4) is the global transform of kinematic joint ``j`` (MANO order). Its rotation is the
accumulated rotation of the chain wrist..j; its translation is the posed position of joint ``j``
in the output space (after ``center_idx`` and ``trans``). ``T_j`` maps coordinates expressed in
joint ``j``'s local frame -- origin at the joint, axes parallel to the rest-pose axes -- to the
output space. So

* at the zero pose (with ``flat_hand_mean``), ``T_j`` is a pure translation by the rest joint;
* ``T_j`` *includes* the rest joint offset: ``T_j @ [0, 0, 0, 1] = posed joint j``;
* the kinematic embedding of a point ``p`` (gSDF) is ``inverse(T_j) @ p``: ``p`` in joint ``j``'s
  frame; a rest-pose point ``x`` rigidly attached to joint ``j`` poses to
  ``T_j @ (x - J_rest_j)``, i.e. the LBS skinning transform is ``T_j @ translate(-J_rest_j)``.

This is the ``th_results_global`` of manopth (gSDF's ``global_trans``) except that gSDF reorders
those to thumb-first finger order; we keep the MANO kinematic order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from gsdf.hand.asset import JOINTS21_FROM_16_AND_TIPS, NUM_BETAS, HandAsset
from gsdf.hand.rotations import axis_angle_to_matrix


class HandOutput(NamedTuple):
    """Output of :class:`HandLayer`.

    Attributes:
        vertices: (B, V, 3) posed vertices, metres.
        joints: (B, 21, 3) joints in gSDF order (wrist, thumb1-4, index1-4, middle1-4, ring1-4,
            pinky1-4), fingertips are tip vertices, metres.
        transforms: (B, 16, 4, 4) per-joint global transforms, MANO kinematic order (see module
            docstring for the convention).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    transforms: torch.Tensor


def _check_input(name: str, x: torch.Tensor, width: int, batch: int | None) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name} must have shape (B, {width}), got {tuple(x.shape)}")
    if batch is not None and x.shape[0] != batch:
        raise ValueError(
            f"{name} has batch size {x.shape[0]} but pose has {batch} (no broadcasting)"
        )
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")


def joint_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Group joints by depth in the tree: ``[[0], [children of 0], ...]`` (MANO: 1 + 3 x 5)."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [np.nonzero(depth == d)[0] for d in range(int(depth.max()) + 1)]


class HandLayer(nn.Module):
    """LBS hand layer.

    Args:
        asset: the hand model (:func:`~gsdf.hand.procedural_hand` or :func:`~gsdf.hand.load_mano`).
        use_pca: if True, the pose input is ``(B, 3 + ncomps)``: global axis-angle then PCA
            coefficients of the finger pose; otherwise ``(B, 48)`` axis-angle.
        ncomps: number of PCA components used when ``use_pca`` (1..45).
        flat_hand_mean: if False, the asset's ``hands_mean`` is added to the finger pose (manopth
            semantics), so the zero pose is the mean (slightly bent) hand.
        center_idx: if given, outputs are translated so that joint ``center_idx`` (gSDF 21-joint
            order; 0 = wrist) is at the origin (before ``trans`` is added).

    Buffers are float32; call ``.double()`` / ``.to(device)`` like any module.
    """

    def __init__(self, asset: HandAsset, use_pca: bool = False, ncomps: int = 45,
                 flat_hand_mean: bool = True, center_idx: int | None = None) -> None:
        super().__init__()
        if not isinstance(asset, HandAsset):
            raise ValueError(f"asset must be a HandAsset, got {type(asset).__name__}")
        if not 1 <= int(ncomps) <= 45:
            raise ValueError(f"ncomps must be in 1..45, got {ncomps}")
        if center_idx is not None and not 0 <= int(center_idx) < 21:
            raise ValueError(f"center_idx must be in 0..20 or None, got {center_idx}")
        asset.validate()
        self.asset = asset
        self.side = asset.side
        self.use_pca = bool(use_pca)
        self.ncomps = int(ncomps)
        self.flat_hand_mean = bool(flat_hand_mean)
        self.center_idx = None if center_idx is None else int(center_idx)
        self.levels = joint_levels(asset.parents)
        self.parents = asset.parents.copy()

        def buf(name: str, value: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(value), dtype=dtype))

        buf("v_template", asset.v_template)
        buf("shapedirs", asset.shapedirs)
        buf("posedirs", asset.posedirs.reshape(-1, 135))  # (V*3, 135)
        buf("J_regressor", asset.J_regressor)
        buf("weights", asset.weights)
        buf("faces", asset.faces, torch.int64)
        buf("faces_closed", asset.faces_closed, torch.int64)
        buf("tip_vertex_ids", asset.tip_vertex_ids, torch.int64)
        buf("hands_components", asset.hands_components[: self.ncomps])
        mean = np.zeros(45) if self.flat_hand_mean else asset.hands_mean
        buf("hands_mean", mean)
        self.has_posedirs = bool(np.any(asset.posedirs != 0))

    @property
    def pose_dim(self) -> int:
        """Width of the pose input: 48, or 3 + ncomps with PCA."""
        return 3 + self.ncomps if self.use_pca else 48

    def full_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, pose_dim) input pose -> (B, 48) axis-angle pose actually applied (mean added)."""
        _check_input("pose", pose, self.pose_dim, None)
        pose = pose.to(self.v_template.dtype)
        hand = pose[:, 3:]
        if self.use_pca:
            hand = hand @ self.hands_components  # (B, 45)
        return torch.cat([pose[:, :3], hand + self.hands_mean], dim=1)

    def shaped(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shaped rest template and joints.

        Args:
            shape: (B, 10) betas.

        Returns:
            v_shaped (B, V, 3) and rest joints (B, 16, 3), metres, MANO order.
        """
        v_shaped = self.v_template + torch.einsum("vck,bk->bvc", self.shapedirs, shape)
        joints = torch.einsum("jv,bvc->bjc", self.J_regressor, v_shaped)
        return v_shaped, joints

    def forward(self, pose: torch.Tensor, shape: torch.Tensor | None = None,
                trans: torch.Tensor | None = None) -> HandOutput:
        """Pose the hand.

        Args:
            pose: (B, 48) axis-angle (global rotation then 15 finger joints in MANO order), or
                (B, 3 + ncomps) with ``use_pca``.
            shape: (B, 10) betas, zeros if None.
            trans: (B, 3) translation added to every output (metres), none if None.

        Returns:
            :class:`HandOutput` (vertices (B, V, 3), joints (B, 21, 3), transforms (B, 16, 4, 4)).

        Raises:
            ValueError: wrong shape, batch mismatch, non-float or non-finite input.
        """
        full = self.full_pose(pose)
        batch = full.shape[0]
        dtype = self.v_template.dtype
        if shape is None:
            shape = full.new_zeros(batch, NUM_BETAS)
        _check_input("shape", shape, NUM_BETAS, batch)
        shape = shape.to(dtype)
        if trans is not None:
            _check_input("trans", trans, 3, batch)
            trans = trans.to(dtype)
        rot = axis_angle_to_matrix(full.reshape(batch, 16, 3))  # (B, 16, 3, 3)
        v_shaped, rest_j = self.shaped(shape)
        if self.has_posedirs:
            eye = torch.eye(3, dtype=dtype, device=rot.device)
            pose_map = (rot[:, 1:] - eye).reshape(batch, 135)
            v_posed = v_shaped + (pose_map @ self.posedirs.T).reshape(batch, -1, 3)
        else:
            v_posed = v_shaped
        glob_r, glob_t = self._chain(rot, rest_j)  # (B,16,3,3), (B,16,3)
        # skinning transforms A_j = [R_j, t_j - R_j J_j]
        skin_t = glob_t - (glob_r @ rest_j[..., None])[..., 0]
        skin = torch.cat([glob_r, skin_t[..., None]], dim=-1).reshape(batch, 16, 12)
        per_vertex = (self.weights @ skin).reshape(batch, -1, 3, 4)  # (B, V, 3, 4)
        verts = (per_vertex[..., :3] @ v_posed[..., None])[..., 0] + per_vertex[..., 3]
        tips = verts[:, self.tip_vertex_ids]  # (B, 5, 3)
        joints = torch.cat([glob_t, tips], dim=1)[:, JOINTS21_FROM_16_AND_TIPS]  # (B, 21, 3)
        offset = None
        if self.center_idx is not None:
            offset = -joints[:, self.center_idx]
        if trans is not None:
            offset = trans if offset is None else offset + trans
        if offset is not None:
            verts = verts + offset[:, None]
            joints = joints + offset[:, None]
            glob_t = glob_t + offset[:, None]
        transforms = _homogeneous(glob_r, glob_t)
        return HandOutput(verts, joints, transforms)

    def _chain(self, rot: torch.Tensor, rest_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return chain_transforms(rot, rest_j, self.parents, self.levels)

    def extra_repr(self) -> str:
        return (f"side={self.side}, vertices={self.v_template.shape[0]}, use_pca={self.use_pca}, "
                f"ncomps={self.ncomps}, flat_hand_mean={self.flat_hand_mean}, "
                f"center_idx={self.center_idx}")


def chain_transforms(rot: torch.Tensor, rest_j: torch.Tensor, parents: np.ndarray,
                     levels: list[np.ndarray] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics over the tree, one batched step per tree level.

    Args:
        rot: (B, J, 3, 3) local rotations. rest_j: (B, J, 3) rest joints, metres.
        parents: (J,) parent indices (-1 for the root, each joint after its parent).
        levels: :func:`joint_levels` of ``parents`` (computed if None).

    Returns:
        global rotations (B, J, 3, 3) and posed joint positions (B, J, 3).
    """
    levels = joint_levels(parents) if levels is None else levels
    n = len(parents)
    glob_r: list = [None] * n
    glob_t: list = [None] * n
    for j in levels[0]:
        glob_r[j] = rot[:, j]
        glob_t[j] = rest_j[:, j]
    for level in levels[1:]:
        par = parents[level]
        pr = torch.stack([glob_r[p] for p in par], 1)  # (B, n, 3, 3)
        pt = torch.stack([glob_t[p] for p in par], 1)  # (B, n, 3)
        offs = rest_j[:, level] - rest_j[:, par]  # (B, n, 3)
        r = pr @ rot[:, level]
        t = (pr @ offs[..., None])[..., 0] + pt
        for i, j in enumerate(level):
            glob_r[j] = r[:, i]
            glob_t[j] = t[:, i]
    return torch.stack(glob_r, 1), torch.stack(glob_t, 1)


def _homogeneous(r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations and (..., 3) translations -> (..., 4, 4)."""
    top = torch.cat([r, t[..., None]], dim=-1)  # (..., 3, 4)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)
