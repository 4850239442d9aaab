"""Writing the synthetic dataset in the canonical layout (docs/architecture.md), shard by shard.

Splits are made of whole sequences: train holds ``video_id`` 0 .. T-1, test T .. T+S-1. Shard
``k`` of a split holds the split's sequences whose position in the split is ``k`` modulo the
number of shards, so shards are fixed subsets whatever the machine.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gsdf.config import ConfigError, from_dict, to_dict
from gsdf.data import canonical
from gsdf.data.canonical import round_floats
from gsdf.hand import HandAsset
from gsdf.paths import SPLITS, SplitLayout
from gsdf.synth.config import SynthConfig
from gsdf.synth.generate import Sample, SequenceGenerator, load_backgrounds
from gsdf.synth.objects import UserMeshes, load_user_meshes
from gsdf.utils.io import write_text


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


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` threads inside the block (same floats whatever the machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_shard(params: Mapping[str, Any], split: str, shard: int, out_dir: str | Path,
              manifest: str | Path, progress: bool = True) -> dict:
    """Generate shard ``shard`` of ``split`` and write it under ``out_dir`` (the split folder).

    Args:
        params: the job's resolved config: ``{"synth": {...}, "hand": {...}, "dataset":
            {"num_shards": N, ...}}`` (missing sections take their defaults).
        split: ``train`` or ``test``.
        shard: shard number, ``0 <= shard < dataset.num_shards``.
        out_dir: the split folder (``results/datasets/synth/{split}``).
        manifest: the shard manifest to write last (``{out_dir}/shards/shard_{k:03d}.json``).
        progress: show a tqdm bar.

    Returns:
        The manifest: ``ids`` written, ``skipped`` samples (none: every sequence is written),
        ``skipped_meshes`` / ``skipped_backgrounds`` (unreadable user meshes and background
        images, path and reason), ``config`` (what ran),
        ``stats`` (grasp quality: deepest penetration, fraction of samples with a hand vertex
        within 2 mm of the object, fraction where hand and object both cover
        ``min_coverage`` of the image, draws per sequence).
    """
    cfg = from_dict(SynthConfig, params.get("synth"), "synth")
    hand_cfg = dict(params.get("hand") or {})
    num_shards = int((params.get("dataset") or {}).get("num_shards", 1))
    videos = shard_sequences(cfg, split, int(shard), num_shards)
    user: UserMeshes | None = None
    if cfg.user_mesh_dir:
        user = load_user_meshes(cfg.user_mesh_dir)
        for path, reason in user.skipped:
            tqdm.write(f"synth: skipped unreadable user mesh {path}: {reason}")
    backgrounds, skipped_bg = (), ()
    if cfg.background_dir:
        backgrounds, skipped_bg = load_backgrounds(cfg.background_dir)
        for path, reason in skipped_bg:
            tqdm.write(f"synth: skipped background image {path}: {reason}")
    gen = SequenceGenerator(cfg, load_hand_asset(hand_cfg), user, backgrounds=backgrounds)
    out_dir = Path(out_dir)
    ids: list[str] = []
    pen, gap, attempts, covered = [], [], [], []
    with _torch_threads(1):
        bar = tqdm(videos, desc=f"synth {split} shard {shard}", unit="seq", disable=not progress)
        for vid in bar:
            for sample in gen.sequence(vid):
                write_sample(out_dir, sample, cfg.jpeg_quality)
                ids.append(sample.id)
                pen.append(sample.grasp["penetration"])
                gap.append(sample.grasp["gap"])
                covered.append(min((sample.mask == 1).mean(), (sample.mask == 2).mean())
                               >= cfg.min_coverage)
            attempts.append(sample.grasp["attempt"] + 1)
    stats = {
        "num_sequences": len(videos),
        "num_samples": len(ids),
        "max_penetration_m": round_floats(float(max(pen, default=0.0))),
        "frac_contact_2mm": round_floats(float(np.mean(np.asarray(gap) <= 0.002))) if gap else None,
        "mean_attempts": round_floats(float(np.mean(attempts)) if attempts else 0.0),
        "frac_min_coverage": round_floats(float(np.mean(covered))) if covered else None,
    }
    record = {
        "ids": ids,
        "skipped": [],
        "skipped_meshes": [{"path": p, "reason": r} for p, r in (user.skipped if user else ())],
        "skipped_backgrounds": [{"path": p, "reason": r} for p, r in skipped_bg],
        "config": {"synth": to_dict(cfg), "hand": hand_cfg, "split": split, "shard": int(shard),
                   "num_shards": num_shards, "video_ids": videos},
        "stats": stats,
    }
    write_text(manifest, json.dumps(record, indent=1) + "\n")
    return record
