"""gSDF (Chen et al. CVPR 2023), as the reference's ``hsdf_osdf_2net_pa``.

* A pose network (:class:`~gsdf.models.pose.PoseNet`), pretrained in ``train_pose`` and frozen
  (``requires_grad=False`` and always in eval mode, so its BatchNorm statistics stay those of
  the pose training), predicts 21 joints; inverse kinematics (``gsdf.hand``) turns them into 16
  joint frames for the kinematic hand embedding (Sec. 3.2).
* A second ResNet gives a feature map (one x2 deconvolution stage, 256 channels) sampled at the
  projection of each query point, with its depth and view direction (Sec. 3.3), then a linear
  layer to ``sdf_latent``.
* An object-centre heatmap branch (and optionally a rotation head) gives the object frame for the
  object embedding; the object embedding can also use the wrist frame and the 21 joints.

The model's ``state_dict`` contains the frozen pose network, so a gSDF checkpoint alone rebuilds
the whole model (``build_model("gsdf", model_args, restore=True)`` then ``load_state_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gsdf.models.args import GSDFArgs
from gsdf.models.backbones import ResNetBackbone
from gsdf.models.base import ObjectPoseBranch, SDFModel, State, base_state
from gsdf.models.encodings import pixel_aligned_features
from gsdf.models.hand_model import LayerHolder, ik_refit
from gsdf.models.heads import UNetNeck
from gsdf.models.pose import PoseNet


class GSDF(SDFModel, ObjectPoseBranch):
    """gSDF single image.

    Args:
        args: :class:`GSDFArgs` (``args.pose`` describes ``pose_net``).
        pose_net: the pretrained pose network (frozen here).
        hand_asset: asset of the IK layer (procedural hand by default).
    """

    name = "gsdf"

    def __init__(self, args: GSDFArgs, pose_net: PoseNet, hand_asset: Any = None) -> None:
        super().__init__(args)
        self.pose_net = pose_net
        for p in self.pose_net.parameters():
            p.requires_grad_(False)
        self.pose_net.eval()
        self.ik_layer = LayerHolder(hand_asset)
        self.backbone = ResNetBackbone(args.backbone, args.backbone_weights)
        c = self.backbone.out_channels
        skips = self.backbone.level_channels[::-1] if args.pixel_neck_skips else None
        self.pixel_neck = UNetNeck(c, args.pixel_channels, args.pixel_neck_stages, skips)
        self.sdf_encoder = nn.Linear(args.pixel_channels + (4 if args.with_add_feats else 0),
                                     args.sdf_latent)
        self.build_object_pose(c)
        self.build_decoders(args.sdf_latent)

    def train(self, mode: bool = True) -> GSDF:
        super().train(mode)
        self.pose_net.eval()  # frozen: keep its BatchNorm statistics
        return self

    @property
    def needs_frames(self) -> bool:
        a = self.args
        return ((a.hand_branch and a.hand_encode_style == "kine")
                or (a.obj_branch and a.obj_encode_style == "kine"
                    and a.obj_point_latent in (9, 72)))

    def hand_pose(self, image: torch.Tensor, state: State,
                  batch: Mapping[str, Any] | None = None) -> None:
        """Frozen pose network (+ IK) on ``image`` (B, 3, H, W): fills ``joints`` and
        ``hand_frames`` of ``state``. With ``pose_source: ground_truth`` the joints are the
        annotated ``batch["hand_joints_3d"]`` instead (an oracle, for ablations only)."""
        if self.args.pose_source == "ground_truth":
            if batch is None or "hand_joints_3d" not in batch:
                raise ValueError("model_args 'pose_source: ground_truth' needs the annotated "
                                 "joints 'hand_joints_3d' in every batch, test batches included")
            joints = batch["hand_joints_3d"].to(image.dtype)
        else:
            with torch.no_grad():
                joints = self.pose_net.predict_joints(image, state["wrist"], state["cam_intr"])
        state["joints"] = joints
        if self.needs_frames:
            state["hand_frames"], state["ik_joints"] = ik_refit(self.ik_layer, joints)

    def encode(self, batch: Mapping[str, Any]) -> State:
        state = base_state(batch)
        image = batch["image"]
        self.hand_pose(image, state, batch)
        feat, state["feat_map"] = self.pixel_maps(image)
        self.object_pose(feat, state, batch)
        return state

    def pixel_maps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone map (B, C, H/32, W/32) and pixel-aligned feature map (B, pixel_channels,
        H/32 * 2**pixel_neck_stages, ...) of ``image`` (B, 3, H, W)."""
        if self.args.pixel_neck_skips:
            feat, skips = self.backbone.levels(image)
            return feat, self.pixel_neck(feat, skips)
        feat = self.backbone(image)
        return feat, self.pixel_neck(feat)

    def point_features(self, state: State, points: torch.Tensor) -> torch.Tensor:
        feats = pixel_aligned_features(state["feat_map"], points, state["wrist"], state["scale"],
                                       state["cam_intr"], state["image_hw"],
                                       self.args.with_add_feats)
        return self.sdf_encoder(feats)  # (B, N, sdf_latent)

    def pose_losses(self, state: State, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return self.object_pose_losses(state, batch)

    def predict_pose(self, state: State) -> dict[str, torch.Tensor | None]:
        """As :meth:`SDFModel.predict_pose`, plus ``ik_joints`` (B, 21, 3): the joints of the
        hand model refit to the network's joints by IK (what the reference scores,
        ``evaluate.protocol: reference``), None without IK."""
        return {**super().predict_pose(state), "ik_joints": state.get("ik_joints")}
