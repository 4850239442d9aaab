"""The hand frame without ground truth: the wrist from the model's own pose network.

``reconstruct.hand_frame: predicted`` and ``gsdf predict`` place the hand frame (its origin is
the wrist, docs/architecture.md "Conventions") where :mod:`gsdf.hand.root` puts it from the
pose network's 2D joints and metric depth offsets, instead of at the annotated
``hand_center_3d``. The model then runs exactly as with the annotated wrist: its pose network
decodes depths around the solved wrist, its pixel-aligned features project the query points
from it, and the meshes are moved to camera space with it.

Only models with a pose network that predicts 2D joints support this (``gsdf``,
``gsdf_video``). AlignSDF's MANO branch predicts wrist-relative 3D joints but no 2D joints, and
Grasping Field predicts no hand pose: both are refused with :class:`HandFrameError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from gsdf.hand.root import RootSolution, model_bone_lengths, project, root_from_2p5d

HAND_FRAMES = ("ground_truth", "predicted")
# Wrist depth the pose network decodes around while we read its 2D joints and depth offsets; the
# heatmaps do not depend on it (gsdf.models.heads.decode_volume), any positive value works.
_PROBE_DEPTH = 1.0


class HandFrameError(ValueError):
    """The model cannot place its own hand frame (no pose network with 2D joints)."""


def pose_network(model: Any, what: str = "reconstruct.hand_frame: predicted") -> Any:
    """The model's pose network (a :class:`gsdf.models.pose.PoseNet`), or HandFrameError."""
    net = getattr(model, "pose_net", None)
    if net is None:
        name = getattr(model, "name", type(model).__name__)
        raise HandFrameError(
            f"{what} needs a model with a pose network (gsdf or gsdf_video); model {name!r} "
            "predicts no 2D hand joints (alignsdf's MANO branch gives wrist-relative 3D joints "
            "only, gf no hand pose)")
    return net


def hand_bones(model: Any) -> np.ndarray:
    """(20,) bone lengths (metres) of the model's hand model (its IK layer's asset)."""
    holder = getattr(model, "ik_layer", None)
    if holder is None:
        from gsdf.models.hand_model import LayerHolder

        holder = LayerHolder(None)
    return model_bone_lengths(holder.layer)


def _middle(x: torch.Tensor, ndim: int, pos: torch.Tensor | None = None) -> torch.Tensor:
    """The frame ``pos`` (B,) of a clip tensor (one more dim than ``ndim``; the middle frame
    without ``pos``: the batch's ``frame_pos``, the frame the video model reconstructs), else
    ``x``."""
    if x.dim() != ndim + 1:
        return x
    if pos is None:
        return x[:, x.shape[1] // 2]
    rows = torch.arange(x.shape[0], device=x.device)
    return x[rows, torch.as_tensor(pos).reshape(-1).to(x.device).long()]


def pose_2p5d(model: Any, batch: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The pose network's 2D joints and metric depth offsets of the batch's (middle) image.

    Returns:
        joints_2d (B, 21, 2) pixels of the input image; depth_rel (B, 21) metres, relative to
        an arbitrary common depth.
    """
    net = pose_network(model)
    image = _middle(batch["image"], 4, batch.get("frame_pos"))
    cam_intr = _middle(batch["cam_intr"], 3, batch.get("frame_pos")).to(image.dtype)
    probe = torch.zeros(image.shape[0], 3, dtype=image.dtype, device=image.device)
    probe[:, 2] = _PROBE_DEPTH
    with torch.no_grad():
        joints = net.predict_joints(image, probe, cam_intr).detach().to("cpu", torch.float64)
    joints = joints.numpy()
    k = cam_intr.detach().to("cpu", torch.float64).numpy()
    uv = np.stack([project(j, kk) for j, kk in zip(joints, k, strict=True)])
    return uv, joints[..., 2] - _PROBE_DEPTH


def predicted_roots(model: Any, batch: Mapping[str, Any],
                    bones: np.ndarray | None = None) -> list[RootSolution]:
    """One :class:`RootSolution` per batch element (camera of the batch's ``cam_intr``).

    Raises:
        HandFrameError: the model has no pose network.
        gsdf.hand.root.RootSolveError: degenerate 2D joints.
    """
    uv, depth_rel = pose_2p5d(model, batch)
    bones = hand_bones(model) if bones is None else bones
    k = _middle(batch["cam_intr"], 3, batch.get("frame_pos"))
    k = k.detach().to("cpu", torch.float64).numpy()
    return [root_from_2p5d(uv[i], depth_rel[i], k[i], bones) for i in range(len(uv))]


def with_predicted_frame(model: Any, batch: Mapping[str, Any], bones: np.ndarray | None = None
                         ) -> tuple[dict[str, Any], list[RootSolution]]:
    """A copy of ``batch`` whose ``hand_center_3d`` is the predicted wrist (every frame of a
    clip gets the middle frame's), and the solutions."""
    sols = predicted_roots(model, batch, bones)
    ref = batch["image"]
    wrist = torch.as_tensor(np.stack([s.root for s in sols]), dtype=ref.dtype,
                            device=ref.device)  # (B, 3)
    out = dict(batch)
    old = batch.get("hand_center_3d")
    if isinstance(old, torch.Tensor) and old.dim() == 3:  # clip: (B, T, 3)
        wrist = wrist[:, None].expand(-1, old.shape[1], -1)
    out["hand_center_3d"] = wrist
    return out, sols
