"""The training schedule of one experiment (``experiment["train"]``), as a typed dataclass.

Resolution (later wins): the defaults below, the config's global ``train:`` section (schema
``workflow/schemas/config.schema.yaml``), the experiment's own ``train:`` mapping
(``config/experiments/{name}.yaml``, then ``experiment_overrides`` and sweeps). Loss weights and
``sdf_add_epoch`` belong to the model (``model_args``): the model receives the epoch in
``model(batch, epoch)`` and decides which terms it adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gsdf.config import ConfigError, deep_merge, from_dict, to_dict
from gsdf.data.augment import AugmentConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Schedule and data-loading settings of one training run.

    Attributes:
        epochs: passes over the training split.
        batch_size: samples per step *per process* (the global batch is ``batch_size * world``).
        lr: Adam learning rate at epoch 0.
        lr_decay_epochs: epochs at whose start the learning rate is multiplied by
            ``lr_decay_factor`` (the reference's ``lr_dec_epoch``, step decay).
        lr_decay_factor: multiplicative step decay (the reference halves: 0.5).
        weight_decay: Adam L2 weight decay.
        num_points: SDF query points per sample (half hand set, half object set); unused by
            the pose stage.
        image_size: square input resolution in pixels (must equal ``model_args.image_size``
            when the model has one).
        checkpoint_every: write the resumable checkpoint every N epochs (and on SIGTERM/SIGUSR1).
        seed: seeds model initialisation, sampling order, augmentation and dropout.
        num_workers: DataLoader worker processes per training process.
        augment: random image/pose augmentation of the training samples.
        sync_bn: convert BatchNorm to SyncBatchNorm when training on several GPUs (PyTorch
            supports it on GPUs only; CPU processes keep per-process statistics).
        frames: frames per clip of the video dataset (``gsdf_video``); ``None`` takes
            ``model_args.num_frames``, and a value must equal it.
        aug: augmentation settings (fields of ``gsdf.data.augment.AugmentConfig``); ``None``
            keeps that class's defaults.
    """

    epochs: int = 1600
    batch_size: int = 64
    lr: float = 1e-4
    lr_decay_epochs: tuple[int, ...] = (600, 1200)
    lr_decay_factor: float = 0.5
    weight_decay: float = 0.0
    num_points: int = 2000
    image_size: int = 256
    checkpoint_every: int = 100
    seed: int = 0
    num_workers: int = 2
    augment: bool = True
    sync_bn: bool = True
    frames: int | None = None
    aug: dict | None = None

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "num_points", "image_size", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr!r}")
        if not 0 < self.lr_decay_factor <= 1:
            raise ConfigError(f"train.lr_decay_factor must be in (0, 1], got "
                              f"{self.lr_decay_factor!r}")
        if self.frames is not None and (self.frames < 1 or self.frames % 2 == 0):
            raise ConfigError(f"train.frames must be an odd positive integer (3 or 5), got "
                              f"{self.frames!r}")
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers must be >= 0, got {self.num_workers!r}")
        if list(self.lr_decay_epochs) != sorted(self.lr_decay_epochs):
            raise ConfigError(f"train.lr_decay_epochs must be increasing, got "
                              f"{list(self.lr_decay_epochs)}")


def train_config(experiment: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
                 ) -> TrainConfig:
    """The :class:`TrainConfig` of a resolved experiment.

    Args:
        experiment: resolved experiment dict (``gsdf.config.resolve_experiment``).
        defaults: the config's global ``train`` section (may be ``None``).

    Raises:
        ConfigError: unknown key (naming the allowed ones) or invalid value.
    """
    merged = deep_merge(defaults or {}, experiment.get("train") or {})
    cfg = from_dict(TrainConfig, merged, "train")
    if cfg.aug is not None:
        # checked (unknown keys) and converted (numbers given as strings) here, before training;
        # only the keys given, so that the dataset's defaults (datasets.{name}.aug) fill the rest
        checked = to_dict(from_dict(AugmentConfig, cfg.aug, "train.aug"))
        cfg = dataclasses.replace(cfg, aug={k: checked[k] for k in cfg.aug})
    return cfg
