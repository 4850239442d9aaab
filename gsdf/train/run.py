"""Training from a job's params: build the model and the dataset, then
:func:`gsdf.train.loop.fit`. The stages ``train_pose`` / ``train_sdf`` (:mod:`gsdf.stages`) call
:func:`run_train`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gsdf.config import ConfigError, check_renamed_keys
from gsdf.data.augment import resolve_aug
from gsdf.models.hand_model import hand_asset_kind, load_hand_asset
from gsdf.models.registry import uses_hand_asset
from gsdf.train.config import TrainConfig, TrainRuntime, train_config
from gsdf.train.distributed import cleanup_distributed, init_distributed, seed_everything
from gsdf.train.loop import fit
from gsdf.train.resume import TrainOutputs


def data_kind(model_name: str) -> str:
    """``"pose"`` / ``"video"`` / ``"sdf"``: what ``gsdf.data.build_dataset`` builds for a model
    (its registry spec's ``data_kind``)."""
    from gsdf.models.registry import data_kind as spec_data_kind

    return spec_data_kind(model_name)


def dataset_options(experiment: Mapping[str, Any], cfg: TrainConfig,
                    dataset_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``gsdf.data.build_dataset`` for a training run.

    The input side and the clip length are the model's (``model_args.image_size``,
    ``model_args.num_frames``; one key each, see ``gsdf.config.RENAMED_KEYS``).
    ``dataset_info`` (``datasets.{name}`` of the config) gives the dataset's augmentation
    defaults (``aug``), which the experiment's ``train.aug`` overrides key by key.

    Raises:
        ConfigError: unknown model, bad ``model_args``, or a moved key such as
            ``train.image_size`` (naming the key to use).
    """
    from gsdf.models.registry import parse_model_args

    check_renamed_keys(experiment, f"experiment {experiment.get('name', '')!r}")
    args = parse_model_args(experiment["model"], experiment.get("model_args"))
    return {"kind": data_kind(experiment["model"]), "train": True,
            "image_size": args.image_size, "num_points": cfg.num_points,
            "clamp": getattr(args, "clamp_dist", None),
            "frames": getattr(args, "num_frames", 1),
            "augment": cfg.augment,
            "aug": resolve_aug((dataset_info or {}).get("aug"), cfg.aug), "seed": cfg.seed}


def run_train(params: Mapping[str, Any], packed_dir: str | Path, outputs: TrainOutputs,
              pose_checkpoint: str | Path | None = None, device: str | None = None,
              progress: bool = True, threads: int | None = None,
              runtime: TrainRuntime | None = None,
              init_checkpoint: str | Path | None = None) -> list[dict[str, float]]:
    """Train the experiment of ``params`` on the packed split ``packed_dir``.

    Args:
        params: ``{"experiment": resolved experiment, "dataset": {"name", "recon_scale", ...},
            "train": global train defaults (optional), "hand": the config's hand section
            (optional; the hand asset of alignsdf / gsdf models, see
            :mod:`gsdf.models.hand_model`)}`` (what ``Pipeline.experiment_params`` gives the
            rule).
        packed_dir: ``results/{dataset}/train`` (``gsdf.paths`` ``packed_dir``).
        outputs: the files to write.
        pose_checkpoint: the frozen pose network's checkpoint (gsdf-style models).
        init_checkpoint: a finished checkpoint whose weights start this model
            (:func:`init_from_checkpoint`; gsdf_video from gsdf, as the reference). A resumed
            run continues from its own ``checkpoint.last.pt`` instead.
        device: ``cpu`` / ``cuda`` / ``None`` (GPU if available).
        progress: progress bar on rank 0.
        threads: CPU threads of the whole job on this machine; each of the
            ``LOCAL_WORLD_SIZE`` processes uses its share for intra-op parallelism (and, unless
            ``runtime.num_workers`` is given, to size its DataLoader workers).
        runtime: workers, checkpoint interval, SyncBN, compile, channels-last (not part of
            the run's identity); default ``TrainRuntime(cpus=threads)``.

    Returns:
        The per-epoch log rows.
    """
    from gsdf.data import build_dataset
    from gsdf.models import build_model
    from gsdf.utils.proc import exit_with_launcher

    exit_with_launcher()  # a torchrun worker dies with its launcher (kill -9 of the job)
    experiment = dict(params["experiment"])
    if "model" not in experiment:
        raise ConfigError("--params: 'experiment' has no 'model'")
    cfg = train_config(experiment, params.get("train"))
    options = dataset_options(experiment, cfg, params.get("dataset"))
    context = {"pose_checkpoint": str(pose_checkpoint)} if pose_checkpoint else {}
    hand = _hand_context(experiment, params)
    runtime = _job_runtime(runtime, threads)
    env = init_distributed(device)
    try:
        seed_everything(cfg.seed)  # identical initial weights on every rank
        model = build_model(experiment["model"], dict(experiment.get("model_args") or {}),
                            **context, **hand)
        if init_checkpoint:
            init_from_checkpoint(model, init_checkpoint)
        dataset = build_dataset(packed_dir, **options)
        return fit(model, dataset, cfg, outputs, experiment=experiment, env=env,
                   runtime=runtime, dataset_info=params.get("dataset") or {},
                   context=context, progress=progress)
    finally:
        cleanup_distributed(env)


def _hand_context(experiment: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``{"hand_asset": ...}`` for a model whose spec reads the hand asset, else ``{}``.

    MANO on real data (or ``hand.asset: mano``), loaded once, before any process starts work;
    the checkpoint records which asset (not where it lives): this sets ``experiment["hand"]``
    (``asset``, ``seed``) in place.
    """
    if not uses_hand_asset(experiment["model"]):
        return {}
    dataset_name = (params.get("dataset") or {}).get("name")
    hand_cfg = params.get("hand") or {}
    experiment["hand"] = {"asset": hand_asset_kind(hand_cfg, dataset_name),
                          "seed": int(hand_cfg.get("seed", 0))}
    return {"hand_asset": load_hand_asset(hand_cfg, dataset_name)}


def _job_runtime(runtime: TrainRuntime | None, threads: int | None) -> TrainRuntime:
    """``runtime`` (default :class:`TrainRuntime`) with the job's CPUs; sets this process's
    share of ``threads`` (one of ``LOCAL_WORLD_SIZE`` processes) as torch's intra-op threads."""
    runtime = runtime or TrainRuntime()
    if runtime.cpus is None and threads:
        runtime = dataclasses.replace(runtime, cpus=threads)
    if threads:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, threads // local_world))
    return runtime


def init_from_checkpoint(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Copy the weights of a finished checkpoint into ``model``: every tensor of the checkpoint
    must exist in ``model`` with the same shape (the image gsdf's backbone, necks, heads,
    decoders and frozen pose network inside gsdf_video, as the reference's train.py loads
    ``pose_model, backbone, neck, volume_head, hand_sdf_head, obj_sdf_head, backbone_2_sdf,
    sdf_encoder``); the model's other tensors (the transformer) keep their initialisation.

    Returns:
        the names of the model's tensors the checkpoint did not set.

    Raises:
        CheckpointError: unfinished checkpoint, or tensors that do not fit.
    """
    from gsdf.checkpoint import CheckpointError, read_checkpoint, strip_module_prefix
    from gsdf.models.heads import upgrade_neck_keys

    ckpt = read_checkpoint(path)
    if not ckpt["finished"]:
        raise CheckpointError(f"{path} is the checkpoint of an unfinished run; finish the "
                              f"experiment named by init_experiment first")
    state = upgrade_neck_keys(strip_module_prefix(ckpt["state_dict"]))
    own = model.state_dict()
    extra = sorted(k for k in state if k not in own)
    shapes = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    if extra or shapes:
        raise CheckpointError(f"{path} ({ckpt['model']}) does not fit model "
                              f"{getattr(model, 'name', type(model).__name__)}: tensors "
                              f"missing here {extra[:5]}, shapes differing {shapes[:5]}")
    model.load_state_dict(state, strict=False)
    return sorted(k for k in own if k not in state)
