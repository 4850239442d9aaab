"""The synthetic dataset's splits and shards, and writing a sample in the canonical layout
(docs/architecture.md); the stage that generates a shard is :mod:`gsdf.stages.synth`.

Splits are made of whole sequences: train holds ``video_id`` 0 .. T-1, test T .. T+S-1. Shard
``k`` of a split holds the split's sequences whose position in the split is ``k`` modulo the
number of shards, so shards are fixed subsets whatever the machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gsdf.config import ConfigError
from gsdf.data import canonical
from gsdf.hand import HandAsset
from gsdf.paths import SPLITS, SplitLayout
from gsdf.synth.config import SynthConfig
from gsdf.synth.generate import Sample


def split_sequences(cfg: SynthConfig, split: str) -> list[int]:
    """The ``video_id`` values of a split."""
    if split == "train":
        return list(range(cfg.num_train_sequences))
    if split == "test":
        return list(range(cfg.num_train_sequences,
                          cfg.num_train_sequences + cfg.num_test_sequences))
    raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")


def shard_sequences(cfg: SynthConfig, split: str, shard: int, num_shards: int) -> list[int]:
    """The ``video_id`` values of shard ``shard`` (0-based) of ``split``."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
    return split_sequences(cfg, split)[shard::num_shards]


def write_sample(split_dir: str | Path, sample: Sample, jpeg_quality: int = 95) -> None:
    """Write one sample's files under ``split_dir`` (rgb, mask, depth, meshes, meta)."""
    canonical.write_sample(SplitLayout(split_dir), sample.id, rgb=sample.rgb,
                           hand_vertices=sample.hand_vertices, hand_faces=sample.hand_faces,
                           hand_parts=sample.hand_parts, obj_vertices=sample.obj_vertices,
                           obj_faces=sample.obj_faces, meta=sample.meta, mask=sample.mask,
                           depth=sample.depth, jpeg_quality=jpeg_quality)


def load_hand_asset(hand_cfg: Mapping[str, Any]) -> HandAsset:
    """The hand asset named by the config section ``hand`` (procedural, or MANO's right hand)."""
    kind = hand_cfg.get("asset", "procedural")
    if kind == "procedural":
        from gsdf.hand import procedural_hand

        return procedural_hand(int(hand_cfg.get("seed", 0)))
    if kind == "mano":
        root = hand_cfg.get("mano_root")
        if not root:
            raise ConfigError("hand.asset = 'mano' needs hand.mano_root (the folder holding "
                              "MANO_RIGHT.pkl); see README 'Real datasets'")
        try:
            from gsdf.hand import load_mano
        except ImportError as err:
            raise ConfigError("hand.asset = 'mano': this version of gsdf.hand has no "
                              "load_mano; use hand.asset: procedural") from err
        return load_mano(root, side="right")
    raise ConfigError(f"hand.asset = {kind!r}; allowed values: ['procedural', 'mano']")
