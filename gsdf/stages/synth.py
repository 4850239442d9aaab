"""Stage ``synth``: the embedded synthetic dataset (DESIGN.md section 4, library :mod:`gsdf.synth`).

One job per split shard writes the canonical layout (rgb, mask, depth, meshes, meta) of the
shard's sequences into the split folder it is given, then the shard manifest; a second job
(rule ``synth_contact_sheet``) draws a contact sheet of train samples.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gsdf.config import ConfigError, from_dict, to_dict
from gsdf.data.canonical import round_floats
from gsdf.synth.config import SynthConfig
from gsdf.synth.contact_sheet import make_contact_sheet
from gsdf.synth.dataset import load_hand_asset, shard_sequences, write_sample
from gsdf.synth.generate import SequenceGenerator, load_backgrounds
from gsdf.synth.objects import UserMeshes, load_user_meshes
from gsdf.utils.io import remove_stale_temporaries, write_text


@dataclass(frozen=True)
class Inputs:
    """The stage reads no file: which shard of which split to generate.

    Attributes:
        split: ``train`` or ``test``.
        shard: shard number, ``0 <= shard < dataset.num_shards``.
    """

    split: str
    shard: int


@dataclass(frozen=True)
class Outputs:
    """Attributes:
        split_dir: the split folder the samples are written into
            (``results/datasets/synth/{split}``).
        manifest: the shard manifest, written last (``{split_dir}/shards/shard_{k}.json``).
    """

    split_dir: Path
    manifest: Path


@dataclass(frozen=True)
class ContactSheetInputs:
    """Attributes: split_dir: the canonical split to show (the train split)."""

    split_dir: Path


@dataclass(frozen=True)
class ContactSheetOutputs:
    """Attributes: png: the contact sheet to write."""

    png: Path


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` threads inside the block (same floats whatever the machine)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _generator(cfg: SynthConfig, hand_cfg: Mapping[str, Any]
               ) -> tuple[SequenceGenerator, UserMeshes | None, tuple]:
    """The sequence generator, the user meshes and the skipped background images."""
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
    return gen, user, skipped_bg


def _generate(gen: SequenceGenerator, cfg: SynthConfig, videos: list[int], split_dir: Path,
              desc: str, progress: bool) -> tuple[list[str], dict]:
    """Write every sample of ``videos``; returns (ids, grasp-quality stats)."""
    ids: list[str] = []
    pen, gap, attempts, covered = [], [], [], []
    with _torch_threads(1):
        for vid in tqdm(videos, desc=desc, unit="seq", disable=not progress):
            for sample in gen.sequence(vid):
                write_sample(split_dir, sample, cfg.jpeg_quality)
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
    return ids, stats


def run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any], *,
        progress: bool = True) -> dict:
    """Generate shard ``inputs.shard`` of ``inputs.split`` into ``outputs.split_dir``.

    Args:
        params: the job's resolved config: ``{"synth": {...}, "hand": {...}, "dataset":
            {"num_shards": N, ...}}``; ``hand`` and ``dataset.num_shards`` are required (the
            hand asset and the sharding decide which data is made).
        progress: show a tqdm bar (runtime).

    Returns:
        The manifest: ``ids`` written, ``skipped`` samples (none: every sequence is written),
        ``skipped_meshes`` / ``skipped_backgrounds`` (unreadable user meshes and background
        images, path and reason), ``config`` (what ran), ``stats`` (grasp quality: deepest
        penetration, fraction of samples with a hand vertex within 2 mm of the object,
        fraction where hand and object both cover ``min_coverage`` of the image, draws per
        sequence).
    Raises:
        ConfigError: ``hand`` or ``dataset.num_shards`` missing from ``params``.
    """
    if not params.get("hand"):
        raise ConfigError("synth: --params has no 'hand' section (the hand asset the data is "
                          "made with; config key hand)")
    if (params.get("dataset") or {}).get("num_shards") is None:
        raise ConfigError("synth: --params has no dataset.num_shards "
                          "(datasets.synth.num_shards in config/config.yaml)")
    cfg = from_dict(SynthConfig, params.get("synth"), "synth")
    hand_cfg = dict(params["hand"])
    # per-sample files a killed synth job of this split left half-written
    remove_stale_temporaries([outputs.split_dir])
    num_shards = int(params["dataset"]["num_shards"])
    videos = shard_sequences(cfg, inputs.split, int(inputs.shard), num_shards)
    gen, user, skipped_bg = _generator(cfg, hand_cfg)
    ids, stats = _generate(gen, cfg, videos, Path(outputs.split_dir),
                           f"synth {inputs.split} shard {inputs.shard}", progress)
    record = {
        "ids": ids,
        "skipped": [],
        "skipped_meshes": [{"path": p, "reason": r} for p, r in (user.skipped if user else ())],
        "skipped_backgrounds": [{"path": p, "reason": r} for p, r in skipped_bg],
        "config": {"synth": to_dict(cfg), "hand": hand_cfg, "split": inputs.split,
                   "shard": int(inputs.shard), "num_shards": num_shards, "video_ids": videos},
        "stats": stats,
    }
    write_text(outputs.manifest, json.dumps(record, indent=1) + "\n")
    return record


def run_contact_sheet(inputs: ContactSheetInputs, outputs: ContactSheetOutputs,
                      params: Mapping[str, Any] | None = None, *, num: int = 16) -> list[str]:
    """Write the contact sheet of ``num`` samples of the split; returns the ids shown."""
    return make_contact_sheet(inputs.split_dir, outputs.png, num=num)
