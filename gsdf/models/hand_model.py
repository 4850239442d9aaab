"""Access to the hand model (``gsdf.hand``) for the models: the asset, the LBS layer, IK.

Which asset a run uses: :mod:`gsdf.hand_asset` (MANO on real data and with ``hand.asset: mano``,
else the procedural hand). The stages load it once (:func:`load_hand_asset`) and pass it to
``build_model(..., hand_asset=...)`` in training and reconstruction.

The layers are kept out of the models' ``state_dict`` (they hold no learned weights and are
rebuilt from the asset), and moved to the input's device when used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

from gsdf.hand_asset import REAL_DATASETS, check_hand_config, hand_asset_kind


@functools.lru_cache(maxsize=4)
def _load(kind: str, root: str | None, seed: int) -> Any:
    if kind == "mano":
        from gsdf.hand import load_mano

        return load_mano(root, side="right")
    from gsdf.hand.procedural import procedural_hand

    return procedural_hand(seed)


def load_hand_asset(hand_cfg: Mapping[str, Any] | None, dataset: str | None) -> Any:
    """The :class:`gsdf.hand.HandAsset` of a run (see :func:`hand_asset_kind`), loaded once per
    process.

    Args:
        hand_cfg: the config section ``hand`` (``asset``, ``mano_root``, ``seed``).
        dataset: the dataset name (``synth``, ``obman``, ``dexycb``).

    Raises:
        ConfigError: MANO is needed and ``hand.mano_root`` does not hold it
            (:func:`gsdf.hand_asset.check_hand_config`).
    """
    hand_cfg = dict(hand_cfg or {})
    kind = hand_asset_kind(hand_cfg, dataset)
    if kind == "mano":
        check_hand_config({"hand": hand_cfg, "dataset": dataset})
    root = hand_cfg.get("mano_root")
    return _load(kind, str(root) if root else None, int(hand_cfg.get("seed", 0)))


def default_asset(asset: Any = None) -> Any:
    """The given :class:`gsdf.hand.HandAsset`, or the procedural hand (seed 0) for models built
    outside the stages (tests, notebooks); the stages always pass their run's asset."""
    if asset is not None:
        return asset
    from gsdf.hand.procedural import procedural_hand

    return procedural_hand(0)


class LayerHolder:
    """A :class:`gsdf.hand.layer.HandLayer` that is not a registered sub-module."""

    def __init__(self, asset: Any, **kwargs: Any) -> None:
        from gsdf.hand.layer import HandLayer

        self.layer = HandLayer(default_asset(asset), **kwargs)

    def get(self, like: torch.Tensor) -> Any:
        """The layer on ``like``'s device and dtype."""
        buf = self.layer.v_template
        if buf.device != like.device or buf.dtype != like.dtype:
            self.layer.to(device=like.device, dtype=like.dtype)
        return self.layer


def ik_refit(holder: LayerHolder, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse kinematics of predicted joints (gSDF Sec. 3.2): joint frames and refit joints.

    Args:
        holder: the IK layer (flat mean, no PCA).
        joints: (B, 21, 3) camera metres (gSDF order).

    Returns:
        ``frames`` (B, 16, 4, 4) relative to the wrist (metres), gSDF order (see
        :func:`gsdf.models.encodings.joint_frames`), and ``refit`` (B, 21, 3) camera metres:
        the joints of the hand model posed by the solved rotations (mean shape, wrist at
        ``joints[:, 0]``), what the reference writes as the predicted joints
        (``common/mano/inverse_kinematics.py`` ``ik_solver_mano`` returns ``joints``).
    """
    import gsdf.hand as hand
    from gsdf.models.encodings import joint_frames

    # IK (SVD, determinants) in float32 at least, also under bf16 autocast (train.precision).
    dtype = joints.dtype if joints.dtype in (torch.float32, torch.float64) else torch.float32
    rel = (joints - joints[:, :1]).to(dtype)
    with torch.no_grad(), torch.autocast(joints.device.type, enabled=False):
        _, out = hand.inverse_kinematics(holder.get(rel), rel)
    frames = joint_frames(out.transforms[..., :3, :3].to(dtype), out.joints.to(dtype))
    return frames, out.joints.to(dtype) + joints[:, :1].to(dtype)


def ik_frames(holder: LayerHolder, joints: torch.Tensor) -> torch.Tensor:
    """Joint frames (B, 16, 4, 4) of predicted joints (B, 21, 3), see :func:`ik_refit`."""
    return ik_refit(holder, joints)[0]


__all__ = ["REAL_DATASETS", "LayerHolder", "check_hand_config", "default_asset",
           "hand_asset_kind", "ik_frames", "ik_refit", "load_hand_asset"]
