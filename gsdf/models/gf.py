"""Grasping Field (Karunratanakul et al. 3DV 2020), as the reference's ``hsdf_osdf_1net`` with
3-d point inputs: one ResNet, a global image feature, two DeepSDF decoders on ``(feature, xyz)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gsdf.models.args import GFArgs
from gsdf.models.backbones import ResNetBackbone
from gsdf.models.base import SDFModel, State, base_state
from gsdf.models.heads import GlobalFeature


class GraspingField(SDFModel):
    """Global-feature SDF model.

    ``encode``: image (B, 3, H, W) -> backbone (B, C, H/32, W/32) -> 1x1 conv + BN + ReLU (512)
    -> average pool -> linear -> ``feat`` (B, sdf_latent), shared by every query point.
    """

    name = "gf"

    def __init__(self, args: GFArgs) -> None:
        super().__init__(args)
        self.backbone = ResNetBackbone(args.backbone, args.backbone_weights)
        self.sdf_global = GlobalFeature(self.backbone.out_channels, 512)
        self.sdf_encoder = nn.Linear(512, args.sdf_latent)
        self.build_decoders(args.sdf_latent)

    def encode_image(self, batch: Mapping[str, Any]) -> tuple[State, torch.Tensor]:
        """State with the global feature, and the backbone map (B, C, h, w) for subclasses."""
        state = base_state(batch)
        feat = self.backbone(batch["image"])
        state["feat"] = self.sdf_encoder(self.sdf_global(feat))  # (B, sdf_latent)
        return state, feat

    def encode(self, batch: Mapping[str, Any]) -> State:
        return self.encode_image(batch)[0]

    def point_features(self, state: State, points: torch.Tensor) -> torch.Tensor:
        feat = state["feat"]
        return feat[:, None, :].expand(-1, points.shape[1], -1)  # (B, N, sdf_latent)
