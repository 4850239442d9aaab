"""gSDF video (reference ``hsdf_osdf_2net_video_pa``): the pixel-aligned feature maps of T frames
(T = 3 or 5) are refined jointly by a spatial-temporal transformer; the middle frame is then
reconstructed exactly as by :class:`~gsdf.models.gsdf.GSDF` (pose network, IK, object centre
and SDF losses on the middle frame; the reference averages the losses of every frame).

Batch: the keys of the image model with a time axis after the batch axis (``image``
(B, T, 3, H, W), ``cam_intr`` (B, T, 3, 3), ...); per-frame targets may also come without it
(then they are the middle frame's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from gsdf.models.args import GSDFVideoArgs
from gsdf.models.base import State, base_state
from gsdf.models.gsdf import GSDF
from gsdf.models.pose import PoseNet
from gsdf.models.transformer import SpatialTemporalTransformer

# number of dimensions of each batch key *without* a time axis (after collation)
_NDIM = {"image": 4, "cam_intr": 3, "hand_joints_3d": 3, "hand_center_3d": 2, "hand_pose": 2,
         "hand_shape": 2, "obj_center_3d": 2, "obj_corners_3d": 3, "obj_rest_corners_3d": 3,
         "obj_transform": 3, "recon_scale": 1, "points": 3, "sdf_hand": 2, "sdf_obj": 2,
         "hand_part": 2}


def middle_frame(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch of the middle frame: every known key with a time axis loses it."""
    t = batch["image"].shape[1] if batch["image"].ndim == 5 else 1
    out = dict(batch)
    for key, ndim in _NDIM.items():
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == ndim + 1:
            out[key] = value[:, t // 2]
    return out


class GSDFVideo(GSDF):
    """gSDF over a clip; reconstructs the middle frame."""

    name = "gsdf_video"

    def __init__(self, args: GSDFVideoArgs, pose_net: PoseNet, hand_asset: Any = None) -> None:
        super().__init__(args, pose_net, hand_asset)
        side = args.image_size // 32 * 2 ** args.pixel_neck_stages  # backbone /32, x2 per stage
        self.transformer = SpatialTemporalTransformer(args.pixel_channels, side * side,
                                                      args.num_frames, args.transformer)

    def targets(self, batch: Mapping[str, Any]) -> Mapping[str, Any]:
        return middle_frame(batch)

    def encode(self, batch: Mapping[str, Any]) -> State:
        image = batch["image"]
        if image.ndim != 5 or image.shape[1] != self.args.num_frames:
            raise ValueError(f"gsdf_video needs image (B, T={self.args.num_frames}, 3, H, W), got "
                             f"{tuple(image.shape)} (model_args 'num_frames')")
        b, t = image.shape[:2]
        mid = middle_frame(batch)
        state = base_state(mid)
        self.hand_pose(mid["image"], state, mid)
        feat, maps = self.pixel_maps(image.flatten(0, 1))  # (B T, C, h, w), (B T, C', h', w')
        maps = maps.unflatten(0, (b, t))
        state["feat_map"] = self.transformer(maps)[:, t // 2]
        self.object_pose(feat.unflatten(0, (b, t))[:, t // 2], state, mid)
        return state
