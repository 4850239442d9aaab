"""Per-dataset augmentation defaults (``datasets.{name}.aug``), overridden by ``train.aug``."""

from __future__ import annotations

import pytest

from gsdf.config import ConfigError, load_config, resolve_experiment
from gsdf.data.augment import AugmentConfig, resolve_aug
from gsdf.train.config import train_config
from gsdf.train.run import dataset_options


def _aug(dataset: str, overrides: dict | None = None) -> AugmentConfig:
    cfg = load_config(overrides={"dataset": dataset, **(overrides or {})})
    exp = resolve_experiment(cfg, "gsdf")
    opts = dataset_options(exp, train_config(exp, cfg["train"]), cfg["datasets"][dataset])
    return AugmentConfig(**(opts["aug"] or {}))


def test_dexycb_shifts_obman_does_not():
    # zerchen/gSDF datasets/base_dataset.py get_aug_config: trans_factor 0.10 on dexycb, 0 on
    # obman; the rest (rotation 45 deg with p 0.6, colour 0.2, no scale) is shared
    assert _aug("dexycb").trans_factor == pytest.approx(0.1)
    assert _aug("obman").trans_factor == 0.0
    assert _aug("dexycb").rot_factor == _aug("obman").rot_factor == 45.0


def test_experiment_aug_overrides_the_dataset_key_by_key():
    over = {"experiment_overrides": {"gsdf": {"train": {"aug": {"rot_factor": 10.0}}}}}
    aug = _aug("dexycb", over)
    assert aug.rot_factor == 10.0 and aug.trans_factor == pytest.approx(0.1)
    assert resolve_aug({"trans_factor": 0.1}, {"trans_factor": 0.0})["trans_factor"] == 0.0
    assert resolve_aug(None, None) is None


def test_unknown_dataset_aug_key_is_named():
    with pytest.raises(ConfigError, match="trans"):
        resolve_aug({"trans": 0.1}, None)
