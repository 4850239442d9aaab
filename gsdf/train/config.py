"""The training schedule of one experiment (``experiment["train"]``), as a typed dataclass, and
the runtime settings of one training job (:class:`TrainRuntime`).

Science vs runtime: :class:`TrainConfig` is what the run learns from (it is part of the rule's
params, so changing it reruns training, and of the resume identity); :class:`TrainRuntime`
(DataLoader workers, checkpoint interval, SyncBatchNorm, ``torch.compile``, channels-last) only
changes how fast or how safely the same run is computed: it comes from CLI flags of
``gsdf train`` / the profile, and changing it resumes ``checkpoint.last.pt``.

Resolution (later wins): the defaults below, the config's global ``train:`` section (schema
``gsdf/schemas/config.schema.yaml``), the experiment's own ``train:`` mapping
(``config/experiments/{name}.yaml``, then ``experiment_overrides`` and sweeps). Loss weights and
``sdf_add_epoch`` belong to the model (``model_args``): the model receives the epoch in
``model(batch, epoch)`` and decides which terms it adds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from gsdf.config import ConfigError, check_renamed_keys, deep_merge, from_dict, to_dict
from gsdf.data.augment import AugmentConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Schedule and data-loading settings of one training run.

    Attributes:
        epochs: passes over the training split.
        batch_size: samples per step *per process* (the global batch is ``batch_size * world``);
            ignored when ``global_batch_size`` is set.
        global_batch_size: samples per step over all processes (the reference: 64 per GPU x 4
            GPUs = 256 for the SDF models, 32 x 4 = 128 for the pose network); each process
            takes ``global_batch_size / processes``, so 1, 4 or 8 GPUs take the same steps.
            ``None``: ``batch_size`` per process.
        precision: ``fp32`` (IEEE float32 everywhere: the reproducible default), ``tf32``
            (float32 tensors, TensorFloat-32 matrix products and convolutions on GPUs that
            have it) or ``bf16`` (autocast to bfloat16; weights, optimizer and loss reduction
            stay float32). Changes the numbers, so it is part of the run's identity.
        lr: Adam learning rate at epoch 0.
        lr_decay_epochs: epochs at whose start the learning rate is multiplied by
            ``lr_decay_factor`` (the reference's ``lr_dec_epoch``, step decay).
        lr_decay_factor: multiplicative step decay (the reference halves: 0.5).
        weight_decay: Adam L2 weight decay.
        num_points: SDF query points per sample (half hand set, half object set); unused by
            the pose stage.
        seed: seeds model initialisation, sampling order, augmentation and dropout.
        augment: random image/pose augmentation of the training samples.
        aug: augmentation settings (fields of ``gsdf.data.augment.AugmentConfig``); ``None``
            keeps that class's defaults.

    The input side and the video clip length are the model's (``model_args.image_size``,
    ``model_args.num_frames``; one key per concept, see ``gsdf.config.RENAMED_KEYS``).
    """

    epochs: int = 1600
    batch_size: int = 64
    lr: float = 1e-4
    lr_decay_epochs: tuple[int, ...] = (600, 1200)
    lr_decay_factor: float = 0.5
    weight_decay: float = 0.0
    num_points: int = 2000
    seed: int = 0
    augment: bool = True
    global_batch_size: int | None = None
    precision: str = "fp32"
    aug: dict | None = None

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "num_points")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr!r}")
        if not 0 < self.lr_decay_factor <= 1:
            raise ConfigError(f"train.lr_decay_factor must be in (0, 1], got "
                              f"{self.lr_decay_factor!r}")
        gb = self.global_batch_size
        if gb is not None and (not isinstance(gb, int) or isinstance(gb, bool) or gb < 1):
            raise ConfigError(f"train.global_batch_size must be a positive integer or null, "
                              f"got {gb!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {list(PRECISIONS)}, got "
                              f"{self.precision!r}")
        if list(self.lr_decay_epochs) != sorted(self.lr_decay_epochs):
            raise ConfigError(f"train.lr_decay_epochs must be increasing, got "
                              f"{list(self.lr_decay_epochs)}")

    def per_process_batch(self, world_size: int) -> int:
        """Samples per step of one of ``world_size`` processes.

        Raises:
            ConfigError: ``global_batch_size`` is not a multiple of ``world_size``.
        """
        if self.global_batch_size is None:
            return self.batch_size
        if self.global_batch_size % world_size:
            raise ConfigError(
                f"train.global_batch_size = {self.global_batch_size} is not divisible by the "
                f"{world_size} training processes; use a multiple of {world_size} or another "
                f"process count (resources nproc / gpu)")
        return self.global_batch_size // world_size


PRECISIONS = ("fp32", "tf32", "bf16")

# Fields TrainConfig had before the model's args owned them (``model_args.image_size``,
# ``model_args.num_frames``): checkpoints written then still record them in ``train``.
RETIRED_KEYS = ("image_size", "frames")


def recorded_train(train: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``train`` dict a checkpoint recorded, without :data:`RETIRED_KEYS` (so that a
    checkpoint written before they moved to ``model_args`` still loads and resumes)."""
    return {k: v for k, v in (train or {}).items() if k not in RETIRED_KEYS}

# Keys that were ``train:`` settings before they became runtime settings (TrainRuntime).
RUNTIME_KEYS = {"num_workers": "--num-workers", "checkpoint_every": "--checkpoint-every",
                "sync_bn": "--sync-bn / --no-sync-bn"}


@dataclasses.dataclass(frozen=True)
class TrainRuntime:
    """How one training job runs (not what it learns): CLI flags of ``gsdf train``.

    Attributes:
        num_workers: DataLoader worker processes per training process; ``None`` sizes them
            from the job's CPUs (:meth:`workers`).
        checkpoint_every: write ``checkpoint.last.pt`` every N epochs (and on SIGTERM/SIGUSR1).
        sync_bn: SyncBatchNorm across GPUs when training on several (PyTorch supports it on
            GPUs only; CPU processes keep per-process statistics).
        compile: wrap the model in ``torch.compile`` (off by default: see docs/gpus.md).
        channels_last: images and convolution weights in channels-last memory format.
        cpus: CPUs of the job on this machine (``--threads``); ``None``: the CPUs this process
            may run on.
    """

    num_workers: int | None = None
    checkpoint_every: int = 1
    sync_bn: bool = True
    compile: bool = False
    channels_last: bool = False
    cpus: int | None = None

    def __post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"--num-workers must be >= 0, got {self.num_workers!r}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every!r}")
        if self.cpus is not None and self.cpus < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.cpus!r}")

    def workers(self, local_world_size: int, gpu: bool) -> int:
        """DataLoader workers per process: ``num_workers``, or from the job's CPUs.

        Each of the ``local_world_size`` processes on this machine gets ``cpus / processes``
        CPUs. On a GPU the process itself needs one CPU to feed the GPU and the others decode
        samples; on a CPU the process computes the model with its threads, so only a quarter
        of its CPUs become workers (0 on a 2-core machine: the samples load in-process).
        """
        if self.num_workers is not None:
            return self.num_workers
        cpus = self.cpus or len(os.sched_getaffinity(0))
        share = max(1, cpus // max(1, local_world_size))
        return share - 1 if gpu else share // 4


def train_config(experiment: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
                 ) -> TrainConfig:
    """The :class:`TrainConfig` of a resolved experiment.

    Args:
        experiment: resolved experiment dict (``gsdf.config.resolve_experiment``).
        defaults: the config's global ``train`` section (may be ``None``).

    Raises:
        ConfigError: unknown key (naming the allowed ones), invalid value, or a key that moved
            to ``model_args`` (``train.image_size``, naming the key to use).
    """
    check_renamed_keys(experiment, f"experiment {experiment.get('name')!r}")
    merged = deep_merge(defaults or {}, experiment.get("train") or {})
    moved = sorted(k for k in RUNTIME_KEYS if k in merged)
    if moved:
        flags = ", ".join(f"train.{k} -> {RUNTIME_KEYS[k]}" for k in moved)
        raise ConfigError(f"experiment {experiment.get('name')!r}: {moved} are runtime settings "
                          f"now, not part of the experiment (changing them must not retrain); "
                          f"remove them from the config and pass them to `gsdf train` or the "
                          f"profile instead ({flags})")
    cfg = from_dict(TrainConfig, merged, "train")
    if cfg.aug is not None:
        # checked (unknown keys) and converted (numbers given as strings) here, before training;
        # only the keys given, so that the dataset's defaults (datasets.{name}.aug) fill the rest
        checked = to_dict(from_dict(AugmentConfig, cfg.aug, "train.aug"))
        cfg = dataclasses.replace(cfg, aug={k: checked[k] for k in cfg.aug})
    return cfg
