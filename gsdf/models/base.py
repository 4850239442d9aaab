"""The SDF-model skeleton every reconstruction model shares (docs/architecture.md, "Models").

A model implements :meth:`SDFModel.encode` (image -> state: features, pose estimates) and
:meth:`SDFModel.point_features` (the conditioning feature of each query point); the base class
owns the decoders, the point encodings, the query function and the losses, so training,
reconstruction and evaluation follow one code path for every model.

State: a ``dict`` with at least

* ``wrist`` (B, 3) camera metres, origin of the hand frame (the batch's ``hand_center_3d``);
* ``scale`` (B,) ``recon_scale / 2``; ``cam_intr`` (B, 3, 3); ``image_hw`` (H, W);
* ``joints`` (B, 21, 3) camera metres or None; ``obj_center`` (B, 3) camera metres or None;
* ``obj_corners`` (B, 8, 3) or None; ``hand_frames`` (B, 16, 4, 4) joint frames (metres relative
  to the wrist, gSDF order) or None; ``obj_frame`` (B, 4, 4) or None;

plus model-specific features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gsdf.models.args import GFArgs
from gsdf.models.decoder import SDFDecoder
from gsdf.models.encodings import hand_embedding, obj_embedding
from gsdf.models.heads import GlobalFeature, MLPHead, VolumeHead, rotation_from_head
from gsdf.models.losses import masked_l1, sdf_masks

State = dict[str, Any]
BRANCHES = ("hand", "obj")


def base_state(batch: Mapping[str, Any]) -> State:
    """The frame information every model keeps: wrist, scale, intrinsics, image size."""
    image = batch["image"]
    return {
        "wrist": batch["hand_center_3d"].to(image.dtype),
        "scale": batch["recon_scale"].to(image.dtype).reshape(-1) / 2,
        "cam_intr": batch["cam_intr"].to(image.dtype),
        "image_hw": (int(image.shape[-2]), int(image.shape[-1])),
        "joints": None, "obj_center": None, "obj_corners": None,
        "hand_frames": None, "obj_frame": None,
    }


def object_frame(center: torch.Tensor, wrist: torch.Tensor,
                 rotation: torch.Tensor | None = None) -> torch.Tensor:
    """Object frame relative to the wrist: rotation (identity without a rotation head) and
    ``center - wrist``. Args: center, wrist (B, 3) camera metres; rotation (B, 3, 3).
    Returns (B, 4, 4)."""
    b = center.shape[0]
    frame = torch.eye(4, dtype=center.dtype, device=center.device).repeat(b, 1, 1)
    if rotation is not None:
        frame[:, :3, :3] = rotation
    frame[:, :3, 3] = center - wrist
    return frame


class ObjectPoseBranch:
    """Object centre from a 3D heatmap (soft-argmax) and an optional rotation head, shared by
    AlignSDF and gSDF (the reference's ``obj_trans`` / ``obj_rot`` branches).

    Mixed into an ``nn.Module`` whose ``args`` has ``obj_branch``, ``obj_rot``, ``rot_style``,
    ``heatmap_depth``, ``depth_dim``, ``neck_channels``, ``neck_stages``, ``obj_center_weight``
    and ``corner_weight``; it owns the submodules ``obj_volume``, ``rot_global``, ``rot_head``.
    """

    def build_object_pose(self, channels: int) -> None:
        """Create the branch on a backbone map of ``channels`` channels (None if disabled)."""
        a = self.args
        self.obj_volume = self.rot_global = self.rot_head = None
        if a.obj_branch:
            self.obj_volume = VolumeHead(channels, 1, a.heatmap_depth, a.depth_dim,
                                         a.neck_channels, a.neck_stages)
            if a.obj_rot:
                self.rot_global = GlobalFeature(channels, 512)
                self.rot_head = MLPHead((512, 256, 128), 6 if a.rot_style == "6d" else 3)

    def object_pose(self, feat: torch.Tensor, state: State, batch: Mapping[str, Any]) -> None:
        """Fill ``state`` with ``obj_center`` (B, 3) camera metres, ``obj_frame`` (B, 4, 4) and,
        with a rotation head and rest corners in ``batch``, ``obj_corners`` (B, 8, 3).

        Args:
            feat: backbone map (B, C, h, w).
        """
        if self.obj_volume is None:
            return
        wrist = state["wrist"]
        center = self.obj_volume(feat, state["image_hw"], wrist, state["cam_intr"])[:, 0]
        rot = None
        if self.rot_head is not None:
            rot = rotation_from_head(self.rot_head(self.rot_global(feat)), self.args.rot_style)
            if "obj_rest_corners_3d" in batch:
                rest = batch["obj_rest_corners_3d"].to(center.dtype)
                state["obj_corners"] = rest @ rot.transpose(1, 2) + center[:, None]
        state["obj_center"] = center
        state["obj_frame"] = object_frame(center, wrist, rot)

    def object_pose_losses(self, state: State,
                           batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Weighted MSE of the object centre (and corners), camera metres."""
        a = self.args
        losses = {}
        if self.obj_volume is not None:
            gt = batch["obj_center_3d"].to(state["obj_center"].dtype)
            losses["obj_center"] = a.obj_center_weight * F.mse_loss(state["obj_center"], gt)
            if state["obj_corners"] is not None and a.corner_weight > 0:
                gt = batch["obj_corners_3d"].to(state["obj_corners"].dtype)
                losses["obj_corners"] = a.corner_weight * F.mse_loss(state["obj_corners"], gt)
        return losses


class SDFModel(nn.Module):
    """Base class: two DeepSDF decoders over (image feature, point encoding).

    Subclasses set ``self.feat_dim`` before calling :meth:`build_decoders` and implement
    :meth:`encode`, :meth:`point_features` and optionally :meth:`pose_losses`.
    """

    name = "sdf"

    def __init__(self, args: GFArgs) -> None:
        super().__init__()
        self.args = args
        self.hand_decoder: SDFDecoder | None = None
        self.obj_decoder: SDFDecoder | None = None

    def build_decoders(self, feat_dim: int) -> None:
        a = self.args
        if a.hand_branch:
            self.hand_decoder = SDFDecoder(feat_dim, a.hand_point_latent, a.decoder, a.hand_cls)
        if a.obj_branch:
            self.obj_decoder = SDFDecoder(feat_dim, a.obj_point_latent, a.decoder, False)

    # -- to implement -----------------------------------------------------------------------

    def encode(self, batch: Mapping[str, Any]) -> State:
        """Image (and frame information) -> state, once per image."""
        raise NotImplementedError

    def point_features(self, state: State, points: torch.Tensor) -> torch.Tensor:
        """Conditioning features of the query points: (B, N, 3) hand frame -> (B, N, F)."""
        raise NotImplementedError

    def pose_losses(self, state: State, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Weighted pose/centre loss terms (none by default)."""
        return {}

    def targets(self, batch: Mapping[str, Any]) -> Mapping[str, Any]:
        """The supervised sample of a batch (the video model picks its middle frame)."""
        return batch

    # -- shared -------------------------------------------------------------------------------

    def point_encoding(self, state: State, points: torch.Tensor, branch: str) -> torch.Tensor:
        """(B, N, 3) hand frame -> (B, N, latent) for the branch's encode style."""
        a = self.args
        if branch == "hand":
            return hand_embedding(points, a.hand_point_latent, state["scale"],
                                  state["hand_frames"])
        frames, joints = state["hand_frames"], state["joints"]
        return obj_embedding(
            points, a.obj_point_latent, state["scale"], state["obj_frame"],
            None if frames is None else frames[:, 0],
            None if joints is None else joints - state["wrist"][:, None])

    def decode(self, state: State, points: torch.Tensor, branch: str,
               feats: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoder output for one branch.

        Args:
            state: from :meth:`encode`.
            points: (B, N, 3) hand frame.
            branch: ``hand`` | ``obj``.
            feats: (B, N, F) precomputed :meth:`point_features` (optional).

        Returns:
            sdf (B, N) hand-frame units (unclamped tanh output) and part logits (B, N, 6) or None.
        """
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {list(BRANCHES)}, got {branch!r}")
        decoder = self.hand_decoder if branch == "hand" else self.obj_decoder
        if decoder is None:
            raise ValueError(f"the {branch} branch is switched off (model_args "
                             f"'{branch}_branch: false')")
        if feats is None:
            feats = self.point_features(state, points)
        enc = self.point_encoding(state, points, branch)
        b, n = points.shape[:2]
        x = torch.cat([feats, enc.to(feats.dtype)], dim=-1).reshape(b * n, -1)
        sdf, parts = decoder(x)
        return sdf.reshape(b, n), None if parts is None else parts.reshape(b, n, -1)

    def query(self, state: State, points: torch.Tensor, branch: str) -> torch.Tensor:
        """Signed distances of query points.

        Args: state from :meth:`encode`; points (B, N, 3) hand frame; branch ``hand`` | ``obj``.
        Returns: (B, N) SDF in hand-frame units (negative inside).
        """
        return self.decode(state, points, branch)[0]

    def predict_pose(self, state: State) -> dict[str, torch.Tensor | None]:
        """``joints`` (B, 21, 3), ``obj_center`` (B, 3), ``obj_corners`` (B, 8, 3): camera
        metres, each None when the model does not estimate it."""
        return {"joints": state["joints"], "obj_center": state["obj_center"],
                "obj_corners": state["obj_corners"]}

    def forward(self, batch: Mapping[str, Any], epoch: int) -> dict[str, torch.Tensor]:
        """Loss terms (already weighted) and their sum ``loss``.

        Terms: ``hand_sdf``, ``obj_sdf`` (clamped L1 with the ``sdf_add_epoch`` masks),
        ``hand_cls`` (part cross-entropy, 0 before ``sdf_add_epoch``) and the model's pose terms.
        """
        state = self.encode(batch)
        losses = self.frame_losses(state, self.targets(batch), epoch)
        losses["loss"] = sum(losses.values())
        return losses

    def frame_losses(self, state: State, tgt: Mapping[str, Any],
                     epoch: int) -> dict[str, torch.Tensor]:
        """The weighted loss terms of one frame: ``state`` from :meth:`encode`, ``tgt`` the
        frame's batch (``points`` (B, N, 3), ``sdf_hand``, ``sdf_obj``, ``hand_part`` (B, N) and
        the pose targets)."""
        a = self.args
        points = tgt["points"].to(state["wrist"].dtype)
        b, n = points.shape[:2]
        mask_hand, mask_obj = sdf_masks(b, n, a.hand_branch and a.obj_branch, epoch,
                                        a.sdf_add_epoch, points.device)
        feats = self.point_features(state, points)
        losses: dict[str, torch.Tensor] = {}
        if self.hand_decoder is not None:
            sdf, parts = self.decode(state, points, "hand", feats)
            losses["hand_sdf"] = a.hand_sdf_weight * masked_l1(
                sdf, tgt["sdf_hand"].to(sdf.dtype), mask_hand, a.clamp_dist, a.sdf_loss)
            if parts is not None:
                labels = tgt["hand_part"].reshape(-1).long()  # -1 = ignore
                ce = nn.functional.cross_entropy(parts.reshape(b * n, -1), labels,
                                                 ignore_index=-1, reduction="sum")
                ce = ce / (labels >= 0).sum().clamp_min(1)  # no NaN when all are ignored
                weight = a.hand_cls_weight if epoch >= a.sdf_add_epoch else 0.0
                losses["hand_cls"] = weight * ce
        if self.obj_decoder is not None:
            sdf, _ = self.decode(state, points, "obj", feats)
            losses["obj_sdf"] = a.obj_sdf_weight * masked_l1(
                sdf, tgt["sdf_obj"].to(sdf.dtype), mask_obj, a.clamp_dist, a.sdf_loss)
        losses.update(self.pose_losses(state, tgt))
        return losses
