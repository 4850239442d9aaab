"""gSDF video (reference ``hsdf_osdf_2net_video_pa``): the pixel-aligned feature maps of T frames
(T = 3 or 5) are refined jointly by a spatial-temporal transformer; each frame is then
reconstructed as by :class:`~gsdf.models.gsdf.GSDF` (pose network and IK, object centre, SDF
decoders on that frame's refined map).

Training: the losses of every frame, averaged over the T frames (the reference's
``sum(loss_frames) / num_frames`` in ``playground/hsdf_osdf_2net_video_pa/net.py``). Test:
:meth:`GSDFVideo.encode` gives the state of the frame ``batch["frame_pos"]`` of the clip (the
middle one when absent), so every frame of a clip is reconstructed with the clip's context.

Batch: the keys of the image model with a time axis after the batch axis (``image``
(B, T, 3, H, W), ``cam_intr`` (B, T, 3, 3), ...), plus ``frame_pos`` (B,) int64; per-frame
targets may also come without a time axis (then they are every frame's).
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


def frame_batch(batch: Mapping[str, Any], pos: torch.Tensor | int) -> dict[str, Any]:
    """The batch of one frame of each clip: every known key with a time axis loses it.

    Args:
        batch: a clip batch (``image`` (B, T, 3, H, W)).
        pos: the frame, an int or (B,) int64 (one per clip).
    """
    image = batch["image"]
    b = image.shape[0]
    if isinstance(pos, int):
        pos = torch.full((b,), pos, dtype=torch.int64)
    rows = torch.arange(b)
    pos = pos.to("cpu").long()
    out = dict(batch)
    for key, ndim in _NDIM.items():
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == ndim + 1:
            out[key] = value[rows.to(value.device), pos.to(value.device)]
    return out


def middle_frame(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch of the middle frame of each clip."""
    t = batch["image"].shape[1] if batch["image"].ndim == 5 else 1
    return frame_batch(batch, t // 2)


class GSDFVideo(GSDF):
    """gSDF over a clip; reconstructs any frame of it (``frame_pos``), trains on all."""

    name = "gsdf_video"

    def __init__(self, args: GSDFVideoArgs, pose_net: PoseNet, hand_asset: Any = None) -> None:
        super().__init__(args, pose_net, hand_asset)
        side = args.image_size // 32 * 2 ** args.pixel_neck_stages  # backbone /32, x2 per stage
        self.transformer = SpatialTemporalTransformer(args.pixel_channels, side * side,
                                                      args.num_frames, args.transformer)

    def targets(self, batch: Mapping[str, Any]) -> Mapping[str, Any]:
        return frame_batch(batch, self._positions(batch))

    def _positions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        b, t = batch["image"].shape[:2]
        pos = batch.get("frame_pos")
        if pos is None:
            return torch.full((b,), t // 2, dtype=torch.int64)
        return torch.as_tensor(pos).reshape(-1).expand(b).long()

    def encode_clip(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone maps (B, T, C, h, w) and transformer-refined pixel-aligned maps
        (B, T, C2, h2, w2) of the clip ``batch["image"]`` (B, T, 3, H, W)."""
        image = batch["image"]
        if image.ndim != 5 or image.shape[1] != self.args.num_frames:
            raise ValueError(f"gsdf_video needs image (B, T={self.args.num_frames}, 3, H, W), got "
                             f"{tuple(image.shape)} (model_args 'num_frames')")
        b, t = image.shape[:2]
        feat, maps = self.pixel_maps(image.flatten(0, 1))  # (B T, C, h, w), (B T, C2, h2, w2)
        return feat.unflatten(0, (b, t)), self.transformer(maps.unflatten(0, (b, t)))

    def frame_state(self, batch: Mapping[str, Any], feat: torch.Tensor, maps: torch.Tensor,
                    pos: torch.Tensor) -> State:
        """The state of frame ``pos`` (B,) of each clip, from :meth:`encode_clip`'s maps."""
        rows = torch.arange(feat.shape[0], device=feat.device)
        idx = pos.to(feat.device)
        fb = frame_batch(batch, pos)
        state = base_state(fb)
        self.hand_pose(fb["image"], state, fb)
        state["feat_map"] = maps[rows, idx]
        self.object_pose(feat[rows, idx], state, fb)
        return state

    def encode(self, batch: Mapping[str, Any]) -> State:
        feat, maps = self.encode_clip(batch)
        return self.frame_state(batch, feat, maps, self._positions(batch))

    def forward(self, batch: Mapping[str, Any], epoch: int) -> dict[str, torch.Tensor]:
        """Loss terms averaged over the T frames of the clips, and their sum ``loss``."""
        feat, maps = self.encode_clip(batch)
        b, t = batch["image"].shape[:2]
        totals: dict[str, torch.Tensor] = {}
        for i in range(t):
            pos = torch.full((b,), i, dtype=torch.int64)
            state = self.frame_state(batch, feat, maps, pos)
            for key, value in self.frame_losses(state, frame_batch(batch, pos), epoch).items():
                totals[key] = totals.get(key, 0.0) + value / t
        totals["loss"] = sum(totals.values())
        return totals
