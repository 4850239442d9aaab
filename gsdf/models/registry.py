"""String-keyed model registry: ``build_model(name, model_args, **context)``.

``model_args`` is the experiment YAML's ``model_args`` mapping (validated into the model's
dataclass, see :mod:`gsdf.models.args`); ``context`` carries what is not science config:

* ``hand_asset``: the :class:`gsdf.hand.HandAsset` of the MANO / IK layer (``alignsdf``,
  ``gsdf``, ``gsdf_video``); the procedural hand (seed 0) when None.
* ``pose_checkpoint``: path of the ``train_pose`` checkpoint (a dict with ``model`` = ``pose``,
  ``model_args`` and ``state_dict``) -- ``gsdf`` / ``gsdf_video`` load and freeze it;
* ``pose_state_dict`` (+ optional ``pose_model_args``): the same from memory;
* ``restore=True``: build ``gsdf`` without pose weights because the caller loads a complete
  ``gsdf`` state dict next (its pose architecture is ``model_args.pose``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsdf.config import ConfigError, from_dict
from gsdf.models import args as A

CONTEXT_KEYS = ("hand_asset", "pose_checkpoint", "pose_state_dict", "pose_model_args", "restore")


def _check_choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"model_args '{key}' = {value!r} is not allowed; allowed values: "
                          f"{list(allowed)}")


def validate_args(name: str, args: Any) -> None:
    """Cross-key checks (encode styles vs point-latent sizes, backbone names ...).

    Raises:
        ConfigError: naming the key and the allowed values.
    """
    _check_choice("backbone", args.backbone, A.BACKBONES)
    if isinstance(args, A.PoseArgs):
        if args.neck_skips and not 1 <= args.neck_stages <= 4:
            raise ConfigError(f"model_args 'neck_stages' = {args.neck_stages} with 'neck_skips: "
                              f"true'; allowed values: 1 to 4 (one backbone map per stage)")
        _check_choice("joints_loss", args.joints_loss, A.JOINTS_LOSSES)
        return
    if not (args.hand_branch or args.obj_branch):
        raise ConfigError("model_args: 'hand_branch' and 'obj_branch' are both false; enable at "
                          "least one")
    _check_choice("sdf_loss", args.sdf_loss, A.SDF_LOSSES)
    stages = getattr(args, "pixel_neck_stages", None)
    if stages is not None and not (1 <= stages <= 4 if args.pixel_neck_skips else stages >= 1):
        raise ConfigError(f"model_args 'pixel_neck_stages' = {stages}; allowed values: 1 to 4 "
                          f"with 'pixel_neck_skips: true' (one backbone map per stage), else >= 1")
    for branch, kine in (("hand", A.HAND_KINE_LATENTS), ("obj", A.OBJ_KINE_LATENTS)):
        style = getattr(args, f"{branch}_encode_style")
        latent = getattr(args, f"{branch}_point_latent")
        _check_choice(f"{branch}_encode_style", style, A.ENCODE_STYLES)
        if style == "kine" and name == "gf":
            raise ConfigError(f"model 'gf' has no pose estimate: model_args "
                              f"'{branch}_encode_style' must be 'raw' (allowed values: ['raw'])")
        allowed = (3,) if style == "raw" else kine
        if latent not in allowed:
            raise ConfigError(f"model_args '{branch}_point_latent' = {latent!r} does not fit "
                              f"'{branch}_encode_style: {style}'; allowed values: {list(allowed)}")
    dec = args.decoder
    in_dim = args.sdf_latent + max(args.hand_point_latent, args.obj_point_latent)
    for layer in dec.latent_in:
        if not 0 < layer < len(dec.dims) or dec.dims[layer - 1] <= in_dim:
            raise ConfigError(f"model_args 'decoder.latent_in' = {list(dec.latent_in)}: layer "
                              f"{layer} must be a hidden layer (1..{len(dec.dims) - 1}) whose "
                              f"input width exceeds the decoder input ({in_dim}); widen "
                              f"'decoder.dims' or lower 'sdf_latent'")
    if hasattr(args, "rot_style"):
        _check_choice("rot_style", args.rot_style, A.ROT_STYLES)
    if isinstance(args, A.AlignSDFArgs) and not 1 <= args.mano_ncomps <= 45:
        raise ConfigError(f"model_args 'mano_ncomps' = {args.mano_ncomps!r}; allowed values: "
                          f"1..45")
    if isinstance(args, A.GSDFArgs):
        _check_choice("pose_source", args.pose_source, A.POSE_SOURCES)
        validate_args("pose", args.pose)
    if isinstance(args, A.GSDFVideoArgs):
        if args.num_frames < 1 or args.num_frames % 2 == 0:
            raise ConfigError(f"model_args 'num_frames' = {args.num_frames!r}; allowed values: "
                              f"odd numbers (3 or 5 in the paper)")
        if args.image_size % 16:
            raise ConfigError(f"model_args 'image_size' = {args.image_size} must be a multiple "
                              f"of 16 for gsdf_video")


def _build_gf(args: A.GFArgs, **context: Any) -> nn.Module:
    from gsdf.models.gf import GraspingField

    return GraspingField(args)


def _build_alignsdf(args: A.AlignSDFArgs, **context: Any) -> nn.Module:
    from gsdf.models.alignsdf import AlignSDF

    return AlignSDF(args, hand_asset=context.get("hand_asset"))


def _build_pose(args: A.PoseArgs, **context: Any) -> nn.Module:
    from gsdf.models.pose import PoseNet

    return PoseNet(args)


def load_pose_network(args: A.GSDFArgs, pose_checkpoint: str | Path | None = None,
                      pose_state_dict: Mapping[str, torch.Tensor] | None = None,
                      pose_model_args: Mapping[str, Any] | None = None,
                      restore: bool = False) -> tuple[nn.Module, A.PoseArgs]:
    """The pose network of a gSDF model, with its pretrained weights.

    Returns:
        (network, its :class:`PoseArgs`). From a checkpoint, the checkpoint's ``model_args``
        define the architecture (they replace ``args.pose``).
    """
    from gsdf.models.backbones import without_pretrained
    from gsdf.models.pose import PoseNet

    pose_args = args.pose
    state = None
    if pose_checkpoint is not None:
        path = Path(pose_checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"pose checkpoint {path} not found (context "
                                    f"'pose_checkpoint'); train the pose network first (stage "
                                    f"train_pose of the experiment named by 'pose_experiment')")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
            raise ConfigError(f"{path} is not a training checkpoint (no 'state_dict')")
        if ckpt.get("model", "pose") != "pose":
            raise ConfigError(f"{path} is a checkpoint of model {ckpt.get('model')!r}; the "
                              f"'pose_checkpoint' of gsdf must come from model 'pose'")
        # trained weights are loaded below: never read ImageNet weights for them
        pose_args = from_dict(A.PoseArgs, without_pretrained(ckpt.get("model_args") or {}),
                              "pose model_args")
        state = ckpt["state_dict"]
    elif pose_state_dict is not None:
        if pose_model_args is not None:
            pose_args = from_dict(A.PoseArgs, without_pretrained(pose_model_args),
                                  "pose_model_args")
        else:
            pose_args = dataclasses.replace(pose_args, backbone_weights=None)
        state = pose_state_dict
    elif restore:
        pose_args = dataclasses.replace(pose_args, backbone_weights=None)
    else:
        raise ConfigError("model 'gsdf' needs its pretrained pose network: pass the context "
                          "'pose_checkpoint' (the train_pose checkpoint.pt of 'pose_experiment') "
                          "or 'pose_state_dict', or 'restore=True' when a complete gsdf "
                          "checkpoint is loaded afterwards")
    validate_args("pose", pose_args)
    net = PoseNet(pose_args)
    if state is not None:
        from gsdf.models.heads import upgrade_neck_keys

        state = upgrade_neck_keys({k.removeprefix("module."): v for k, v in state.items()})
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"pose weights do not fit the pose network of {pose_args}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return net, pose_args


def _build_gsdf(args: A.GSDFArgs, **context: Any) -> nn.Module:
    from gsdf.models.gsdf import GSDF
    from gsdf.models.gsdf_video import GSDFVideo

    net, pose_args = load_pose_network(
        args, context.get("pose_checkpoint"), context.get("pose_state_dict"),
        context.get("pose_model_args"), bool(context.get("restore", False)))
    args = dataclasses.replace(args, pose=pose_args)
    cls = GSDFVideo if isinstance(args, A.GSDFVideoArgs) else GSDF
    return cls(args, net, hand_asset=context.get("hand_asset"))


MODELS: dict[str, tuple[type, Callable[..., nn.Module]]] = {
    "gf": (A.GFArgs, _build_gf),
    "alignsdf": (A.AlignSDFArgs, _build_alignsdf),
    "gsdf": (A.GSDFArgs, _build_gsdf),
    "gsdf_video": (A.GSDFVideoArgs, _build_gsdf),
    "pose": (A.PoseArgs, _build_pose),
}


def parse_model_args(name: str, model_args: Mapping[str, Any] | None) -> Any:
    """Validate ``model_args`` of model ``name`` into its dataclass (no network is built)."""
    if name not in MODELS:
        raise ConfigError(f"config key 'model' = {name!r} is not a registered model; allowed "
                          f"values: {sorted(MODELS)}")
    args = from_dict(MODELS[name][0], model_args or {}, "model_args")
    validate_args(name, args)
    return args


def build_model(name: str, model_args: Mapping[str, Any] | None = None,
                **context: Any) -> nn.Module:
    """Build registered model ``name``.

    Args:
        name: ``gf`` | ``alignsdf`` | ``gsdf`` | ``gsdf_video`` | ``pose``.
        model_args: the experiment's ``model_args`` (unknown keys are refused).
        **context: see the module docstring.

    Returns:
        The model, in training mode, on the CPU. The resolved settings are ``model.args``.

    Raises:
        ConfigError: unknown model, bad ``model_args`` / context (naming key and allowed values).
        FileNotFoundError: a missing pose checkpoint or backbone weights file.
    """
    unknown = sorted(set(context) - set(CONTEXT_KEYS))
    if unknown:
        raise ConfigError(f"unknown build context {unknown} for model {name!r}; allowed keys: "
                          f"{list(CONTEXT_KEYS)}")
    args = parse_model_args(name, model_args)
    return MODELS[name][1](args, **context)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
