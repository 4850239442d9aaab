"""The hand pose network of gSDF (reference ``playground/pose_kpt``, hand only), trained alone in
the ``train_pose`` stage and then frozen inside ``gsdf`` / ``gsdf_video``.

ResNet -> UNet neck -> 21 x D heatmap volumes -> 3D soft-argmax -> wrist-relative depth decoding
(camera metres; the wrist depth comes from the batch's ``hand_center_3d`` as in the reference).
Loss: MSE (or, with ``joints_loss: l1``, L1) on the 21 joints (camera metres) + the hand ordinal
loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gsdf.models.args import PoseArgs
from gsdf.models.backbones import ResNetBackbone
from gsdf.models.base import State, base_state
from gsdf.models.heads import VolumeHead
from gsdf.models.losses import HandOrdinalLoss


class PoseNet(nn.Module):
    """21-joint 3D heatmap regression.

    ``encode(batch)`` -> state with ``joints`` (B, 21, 3) camera metres.
    """

    name = "pose"

    def __init__(self, args: PoseArgs) -> None:
        super().__init__()
        self.args = args
        self.backbone = ResNetBackbone(args.backbone, args.backbone_weights)
        skips = self.backbone.level_channels[::-1] if args.neck_skips else None
        self.volume = VolumeHead(self.backbone.out_channels, 21, args.heatmap_depth,
                                 args.depth_dim, args.neck_channels, args.neck_stages, skips)
        self.ordinal = HandOrdinalLoss()

    def predict_joints(self, image: torch.Tensor, wrist: torch.Tensor,
                       cam_intr: torch.Tensor) -> torch.Tensor:
        """Args: image (B, 3, H, W); wrist (B, 3) camera metres; cam_intr (B, 3, 3).
        Returns (B, 21, 3) camera metres."""
        image_hw = (int(image.shape[-2]), int(image.shape[-1]))
        if self.args.neck_skips:
            feat, skips = self.backbone.levels(image)
            return self.volume(feat, image_hw, wrist, cam_intr, skips)
        return self.volume(self.backbone(image), image_hw, wrist, cam_intr)

    def encode(self, batch: Mapping[str, Any]) -> State:
        state = base_state(batch)
        state["joints"] = self.predict_joints(batch["image"], state["wrist"], state["cam_intr"])
        return state

    def predict_pose(self, state: State) -> dict[str, torch.Tensor | None]:
        """``joints`` (B, 21, 3) camera metres; ``obj_center`` and ``obj_corners`` are None."""
        return {"joints": state["joints"], "obj_center": None, "obj_corners": None}

    def forward(self, batch: Mapping[str, Any], epoch: int) -> dict[str, torch.Tensor]:
        """Terms ``joints`` (weighted MSE or L1, camera metres), ``hand_ord`` and ``loss``."""
        a = self.args
        joints = self.encode(batch)["joints"]
        gt = batch["hand_joints_3d"].to(joints.dtype)
        loss = F.l1_loss if a.joints_loss == "l1" else F.mse_loss
        losses = {"joints": a.joints_weight * loss(joints, gt)}
        if a.hand_ordinal_weight > 0:
            losses["hand_ord"] = a.hand_ordinal_weight * self.ordinal(joints, gt)
        losses["loss"] = sum(losses.values())
        return losses
