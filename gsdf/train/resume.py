"""What a training run writes and how a killed run continues: :class:`TrainOutputs`, the run's
position (:class:`RunState`) and :func:`maybe_resume`, which restores ``checkpoint.last.pt`` when
it belongs to the same run configuration (experiment, ``train`` schedule, dataset settings;
runtime settings are not part of it). The loop itself: :mod:`gsdf.train.loop`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsdf import checkpoint as ckpt_io
from gsdf.config import to_dict
from gsdf.train.config import TrainConfig, recorded_train
from gsdf.train.distributed import DistEnv, barrier


@dataclasses.dataclass(frozen=True)
class TrainOutputs:
    """Files a training run writes (rank 0 only).

    Attributes:
        checkpoint: the final checkpoint (exists only once training finished); the resumable
            one is :func:`gsdf.checkpoint.last_checkpoint_path` of it.
        log_csv: ``train_log.csv``, rewritten after every epoch.
        curves: ``learning_curves.png``, written at the end.
        config: resolved ``config.yaml`` of the run (optional).
    """

    checkpoint: Path
    log_csv: Path
    curves: Path
    config: Path | None = None

    @classmethod
    def in_dir(cls, directory: str | Path) -> TrainOutputs:
        """The standard file names inside ``directory``."""
        d = Path(directory)
        return cls(d / "checkpoint.pt", d / "train_log.csv", d / "learning_curves.png",
                   d / "config.yaml")

    @property
    def last(self) -> Path:
        return ckpt_io.last_checkpoint_path(self.checkpoint)


@dataclasses.dataclass
class RunState:
    """Position of the run (what the resumable checkpoint restores)."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    accum: dict[str, float] = dataclasses.field(default_factory=dict)  # term sums + "_steps"


def resolved_model_args(model: nn.Module, model_args: Mapping[str, Any]) -> dict:
    """The model's complete settings (``model.args`` dataclass, e.g. with gSDF's pose network
    architecture taken from its pose checkpoint), else the experiment's ``model_args``."""
    args = getattr(ckpt_io.unwrap(model), "args", None)
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        return to_dict(args)
    return dict(model_args)


def maybe_resume(model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, state: RunState,
                 outputs: TrainOutputs, experiment: Mapping, dataset_info: Mapping,
                 cfg: TrainConfig, env: DistEnv) -> None:
    """Restore ``checkpoint.last.pt`` if it belongs to this very run configuration; one written
    with another configuration is moved aside to ``checkpoint.last.stale.pt``.

    Raises:
        CheckpointError: the resumable checkpoint is corrupt or does not fit the model.
    """
    path = outputs.last
    if not path.exists():
        return
    ckpt = ckpt_io.read_checkpoint(path)
    if not same_run(ckpt, experiment, dataset_info, cfg):
        barrier(env)  # every rank has read it before rank 0 moves it
        if env.is_main:
            stale = path.with_name(path.stem + ".stale" + path.suffix)
            path.replace(stale)
            print(f"{path} was written with another configuration; moved to {stale}, "
                  f"training from scratch", file=sys.stderr)
        return
    ckpt_io.check_compatible(ckpt, experiment["model"], experiment.get("model_args") or {},
                             path)
    ckpt_io.load_weights(model, ckpt["state_dict"], path)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    _restore_position(ckpt, state, env, path)


def same_run(ckpt: Mapping[str, Any], experiment: Mapping, dataset_info: Mapping,
             cfg: TrainConfig) -> bool:
    """Whether checkpoint ``ckpt`` was written by a run of the same experiment, ``train``
    schedule and dataset settings (the resume identity; runtime settings are not part of it).
    ``train`` keys that moved to ``model_args`` (:data:`gsdf.train.config.RETIRED_KEYS`) are
    not compared: the experiment's ``model_args`` hold them."""
    return (ckpt["experiment"] == dict(experiment)
            and recorded_train(ckpt.get("train")) == to_dict(cfg)
            and ckpt.get("dataset", {}) == dict(dataset_info))


def _restore_position(ckpt: Mapping[str, Any], state: RunState, env: DistEnv,
                      path: Path) -> None:
    """Epoch, step, history, and (same process count) the batch position, the partial epoch
    sums and this rank's RNG states of ``ckpt``, into ``state``."""
    state.epoch = int(ckpt["epoch"])
    state.step = int(ckpt["step"])
    state.history = [dict(r) for r in ckpt.get("history", [])]
    if int(ckpt.get("world_size", 1)) == env.world_size:
        state.batch_in_epoch = int(ckpt["batch_in_epoch"])
        state.accum = dict(ckpt.get("accum") or {})
        ckpt_io.restore_rng(ckpt["rng"]["per_rank"][env.rank])
    else:
        # Other process count: batch boundaries differ, so restart the epoch in progress.
        state.batch_in_epoch = 0
        state.accum = {}
        if env.is_main:
            print(f"{path}: written by {ckpt.get('world_size')} processes, resuming with "
                  f"{env.world_size}: restarting epoch {state.epoch + 1} (not bit-identical)",
                  file=sys.stderr)
    if env.is_main and ckpt.get("finished"):
        print(f"resuming from {path}: training had finished (epoch {state.epoch}, step "
              f"{state.step}); writing the final checkpoint again", file=sys.stderr, flush=True)
    elif env.is_main:
        print(f"resuming from {path}: epoch {state.epoch + 1}, batch {state.batch_in_epoch}, "
              f"step {state.step}", file=sys.stderr, flush=True)
