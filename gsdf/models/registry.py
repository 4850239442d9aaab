"""Model registry: one :class:`ModelSpec` per model, ``build_model(name, model_args, **context)``.

A spec says everything the pipeline needs to know about a model: its ``model_args`` dataclass
(defaults and validation, :mod:`gsdf.models.args`), its builder, the dataset kind it trains on
and the build context it reads. Adding a model is one model file + one :func:`register` call
here + one ``config/experiments/{name}.yaml`` (docs/adding_a_model.md).

``model_args`` is the experiment YAML's ``model_args`` mapping (validated into the model's
dataclass); ``context`` carries what is not science config:

* ``hand_asset``: the :class:`gsdf.hand.HandAsset` of the MANO / IK layer of the models whose
  spec lists it (:func:`uses_hand_asset`: ``alignsdf``, ``gsdf``, ``gsdf_video``); the
  procedural hand (seed 0) when None.
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

#: what ``gsdf.data.build_dataset`` builds for a model (docs/architecture.md, "Training batch")
DATA_KINDS = ("sdf", "pose", "video")
#: every build-context key a builder may read (a spec lists the ones its builder reads)
CONTEXT_KEYS = ("hand_asset", "pose_checkpoint", "pose_state_dict", "pose_model_args", "restore")
_POSE_CONTEXT = ("pose_checkpoint", "pose_state_dict", "pose_model_args", "restore")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        name: registry name, the ``model:`` of an experiment file.
        args: its ``model_args`` dataclass (a :class:`gsdf.models.args.ModelArgs`: defaults and
            ``validate``).
        build: ``build(args, **context) -> nn.Module``; the module implements the model API of
            :mod:`gsdf.models` (``forward(batch, epoch)``, ``encode``, ``query``,
            ``predict_pose``, ``args``).
        data_kind: the training batches it consumes, one of :data:`DATA_KINDS`.
        context: the build-context keys ``build`` reads (a subset of :data:`CONTEXT_KEYS`);
            other keys are refused. ``hand_asset`` in it declares a hand layer (MANO branch,
            IK): training and reconstruction then load the run's hand asset and pass it, and
            the checkpoint records which one (:attr:`uses_hand_asset`).
        pose_network: trained on top of a frozen ``train_pose`` network: the experiment must
            name its ``pose_experiment``, whose checkpoint the workflow passes as
            ``pose_checkpoint``.
    """

    name: str
    args: type
    build: Callable[..., nn.Module]
    data_kind: str = "sdf"
    context: tuple[str, ...] = ()
    pose_network: bool = False

    def __post_init__(self) -> None:
        if not (dataclasses.is_dataclass(self.args) and issubclass(self.args, A.ModelArgs)):
            raise TypeError(f"model {self.name!r}: args must be a dataclass derived from "
                            f"gsdf.models.args.ModelArgs, got {self.args!r}")
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"model {self.name!r}: data_kind {self.data_kind!r}; allowed "
                             f"values: {list(DATA_KINDS)}")
        unknown = sorted(set(self.context) - set(CONTEXT_KEYS))
        if unknown:
            raise ValueError(f"model {self.name!r}: unknown context keys {unknown}; allowed: "
                             f"{list(CONTEXT_KEYS)}")
        if self.pose_network and "pose_checkpoint" not in self.context:
            raise ValueError(f"model {self.name!r}: pose_network=True needs the context key "
                             f"'pose_checkpoint'")

    @property
    def uses_hand_asset(self) -> bool:
        """The model contains a hand layer built from the run's hand asset (its builder reads
        the context key ``hand_asset``)."""
        return "hand_asset" in self.context


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry (``replace=True`` to overwrite a name). Returns it."""
    if spec.name in MODELS and not replace:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove model ``name`` (tests that register a toy model)."""
    MODELS.pop(name, None)


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``.

    Raises:
        ConfigError: not a registered model (naming the registered ones).
    """
    if name not in MODELS:
        raise ConfigError(f"config key 'model' = {name!r} is not a registered model; allowed "
                          f"values: {sorted(MODELS)}")
    return MODELS[name]


def data_kind(name: str) -> str:
    """``"sdf"`` / ``"pose"`` / ``"video"``: what ``gsdf.data.build_dataset`` builds for model
    ``name``."""
    return get_spec(name).data_kind


def uses_hand_asset(name: str) -> bool:
    """Whether registered model ``name`` contains a hand layer (:attr:`ModelSpec.uses_hand_asset`):
    the one source of that fact for training, reconstruction and checkpoint loading."""
    return get_spec(name).uses_hand_asset


def check_experiment(experiment: Mapping[str, Any]) -> Any:
    """Check a resolved experiment against its model's spec; return its ``model_args`` object.

    Raises:
        ConfigError: unknown model, bad ``model_args``, or a model trained on a pose network
            whose experiment names no ``pose_experiment``.
    """
    spec = get_spec(experiment.get("model"))
    args = parse_model_args(spec.name, experiment.get("model_args"))
    if spec.pose_network and not experiment.get("pose_experiment"):
        raise ConfigError(f"experiment {experiment.get('name')!r}: model {spec.name!r} is "
                          f"trained on a frozen pose network; set 'pose_experiment' (e.g. pose)")
    return args


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

    Raises:
        FileNotFoundError: ``pose_checkpoint`` does not exist.
        CheckpointError: ``pose_checkpoint`` is corrupt or not a gsdf training checkpoint.
        ConfigError: no pose weights given, a checkpoint of another model than ``pose``, or
            weights that do not fit the network.
    """
    from gsdf.models.backbones import without_pretrained
    from gsdf.models.pose import PoseNet

    pose_args = args.pose
    state = None
    if pose_checkpoint is not None:
        pose_args, state = _pose_checkpoint(Path(pose_checkpoint))
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
    net = PoseNet(pose_args)
    if state is not None:
        from gsdf.models.heads import upgrade_neck_keys

        state = upgrade_neck_keys({k.removeprefix("module."): v for k, v in state.items()})
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"pose weights do not fit the pose network of {pose_args}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return net, pose_args


def _pose_checkpoint(path: Path) -> tuple[A.PoseArgs, Mapping[str, torch.Tensor]]:
    """``(architecture, state_dict)`` of a ``train_pose`` checkpoint, read by the format's one
    reader (:func:`gsdf.checkpoint.read_checkpoint`)."""
    from gsdf.checkpoint import read_checkpoint
    from gsdf.models.backbones import without_pretrained

    if not path.exists():
        raise FileNotFoundError(f"pose checkpoint {path} not found (context "
                                f"'pose_checkpoint'); train the pose network first (stage "
                                f"train_pose of the experiment named by 'pose_experiment')")
    ckpt = read_checkpoint(path)
    if ckpt["model"] != "pose":
        raise ConfigError(f"{path} is a checkpoint of model {ckpt['model']!r}; the "
                          f"'pose_checkpoint' of gsdf must come from model 'pose'")
    # trained weights are loaded next: never read ImageNet weights for them
    pose_args = from_dict(A.PoseArgs, without_pretrained(ckpt.get("model_args") or {}),
                          "pose model_args")
    return pose_args, ckpt["state_dict"]


def _build_gsdf(args: A.GSDFArgs, **context: Any) -> nn.Module:
    from gsdf.models.gsdf import GSDF
    from gsdf.models.gsdf_video import GSDFVideo

    net, pose_args = load_pose_network(
        args, context.get("pose_checkpoint"), context.get("pose_state_dict"),
        context.get("pose_model_args"), bool(context.get("restore", False)))
    args = dataclasses.replace(args, pose=pose_args)
    cls = GSDFVideo if isinstance(args, A.GSDFVideoArgs) else GSDF
    return cls(args, net, hand_asset=context.get("hand_asset"))


for _spec in (
    ModelSpec("gf", A.GFArgs, _build_gf),
    ModelSpec("alignsdf", A.AlignSDFArgs, _build_alignsdf, context=("hand_asset",)),
    ModelSpec("gsdf", A.GSDFArgs, _build_gsdf, context=("hand_asset", *_POSE_CONTEXT),
              pose_network=True),
    ModelSpec("gsdf_video", A.GSDFVideoArgs, _build_gsdf, data_kind="video",
              context=("hand_asset", *_POSE_CONTEXT), pose_network=True),
    ModelSpec("pose", A.PoseArgs, _build_pose, data_kind="pose"),
):
    register(_spec)


def parse_model_args(name: str, model_args: Mapping[str, Any] | None) -> Any:
    """Validate ``model_args`` of model ``name`` into its dataclass (no network is built)."""
    return from_dict(get_spec(name).args, model_args or {}, "model_args")


def build_model(name: str, model_args: Mapping[str, Any] | None = None,
                **context: Any) -> nn.Module:
    """Build registered model ``name``.

    Args:
        name: a registered name (``gf`` | ``alignsdf`` | ``gsdf`` | ``gsdf_video`` | ``pose``
            and any model added with :func:`register`).
        model_args: the experiment's ``model_args`` (unknown keys are refused).
        **context: the keys the model's spec lists (see the module docstring); ``hand_asset``
            is accepted and ignored by models without a hand layer, so callers can pass it to
            any model.

    Returns:
        The model, in training mode, on the CPU. The resolved settings are ``model.args``.

    Raises:
        ConfigError: unknown model, bad ``model_args`` / context (naming key and allowed values).
        FileNotFoundError: a missing pose checkpoint or backbone weights file.
    """
    spec = get_spec(name)
    unknown = sorted(set(context) - set(spec.context) - {"hand_asset"})
    if unknown:
        raise ConfigError(f"unknown build context {unknown} for model {name!r}; allowed keys: "
                          f"{list(spec.context)}")
    args = parse_model_args(name, model_args)
    return spec.build(args, **{k: v for k, v in context.items() if k in spec.context})


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
