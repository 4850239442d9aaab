"""AlignSDF (Chen et al. ECCV 2022), as the reference's ``hsdf_osdf_1net`` with ``mano_branch``
and ``obj_trans``: one ResNet, a MANO branch (pose + shape regression through the LBS layer), an
object-centre heatmap branch, and kinematic point encodings from these estimates.

The MANO layer is centred on the wrist (``center_idx=0``, PCA pose, non-flat mean as the
reference), and its joints are placed at the batch's wrist ``hand_center_3d`` (the reference's
``get_mano_preds`` without ``mano_depth``). The SDF losses back-propagate into the MANO and object
branches through the encodings, as in the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from gsdf.models.args import AlignSDFArgs
from gsdf.models.base import ObjectPoseBranch, State
from gsdf.models.encodings import joint_frames
from gsdf.models.gf import GraspingField
from gsdf.models.hand_model import LayerHolder
from gsdf.models.heads import GlobalFeature, ManoParamHead


def needs_hand_pose(args: Any) -> bool:
    """Whether the encodings need hand joints / frames."""
    hand = args.hand_branch and args.hand_encode_style == "kine"
    obj = args.obj_branch and args.obj_encode_style == "kine" and args.obj_point_latent != 6
    return hand or obj


class AlignSDF(GraspingField, ObjectPoseBranch):
    """GF + MANO branch + object-centre heatmap (+ optional rotation head).

    Extra state: ``mano_pose`` (B, 48) full axis-angle, ``mano_shape`` (B, 10).
    """

    name = "alignsdf"

    def __init__(self, args: AlignSDFArgs, hand_asset: Any = None) -> None:
        super().__init__(args)
        c = self.backbone.out_channels
        self.mano_global = self.mano_head = self.hand_layer = None
        if args.hand_branch or needs_hand_pose(args):
            self.mano_global = GlobalFeature(c, args.mano_neurons[0])
            self.mano_head = ManoParamHead(args.mano_neurons[0], args.mano_ncomps,
                                           args.mano_neurons)
            self.hand_layer = LayerHolder(hand_asset, use_pca=True, ncomps=args.mano_ncomps,
                                          flat_hand_mean=False, center_idx=0)
        self.build_object_pose(c)

    def encode(self, batch: Mapping[str, Any]) -> State:
        state, feat = self.encode_image(batch)
        wrist = state["wrist"]
        if self.mano_head is not None:
            coeffs, shape = self.mano_head(self.mano_global(feat))
            layer = self.hand_layer.get(coeffs)
            out = layer(coeffs, shape)  # wrist at the origin
            state["joints"] = out.joints + wrist[:, None]
            state["hand_frames"] = joint_frames(out.transforms[..., :3, :3], out.joints)
            state["mano_pose"] = layer.full_pose(coeffs)
            state["mano_shape"] = shape
            state["mano_mean"] = layer.hands_mean
        self.object_pose(feat, state, batch)
        return state

    def pose_losses(self, state: State, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        a: AlignSDFArgs = self.args
        losses = {}
        if self.mano_head is not None:
            gt = batch["hand_joints_3d"].to(state["joints"].dtype)
            losses["mano_joints"] = a.mano_joints_weight * F.mse_loss(state["joints"], gt)
            losses["mano_shape"] = a.mano_shape_weight * state["mano_shape"].pow(2).mean()
            finger = state["mano_pose"][:, 3:] - state["mano_mean"]
            losses["mano_pose"] = a.mano_pose_weight * finger.pow(2).mean()
        losses.update(self.object_pose_losses(state, batch))
        return losses
