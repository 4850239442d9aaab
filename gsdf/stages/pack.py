"""Stage ``pack`` (the reference's "cocoify"): a split's canonical layout and SDF shards become
``annotations.json`` (COCO style) and the ``rgb`` / ``sdf_hand`` / ``sdf_obj`` LMDB databases
(the formats: :mod:`gsdf.data.pack`, :mod:`gsdf.data.lmdb_io`).

A sample is packed when its meta JSON is complete, its SDF shard holds it and its JPEG decodes
(each JPEG is read once, while ``rgb.lmdb`` is written); otherwise it is skipped and listed with
the reason in ``info.skipped`` and in ``skipped.csv``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gsdf.config import ConfigError, from_dict, to_dict
from gsdf.data.lmdb_io import PackError
from gsdf.data.pack import (
    ANNOTATIONS_FORMAT,
    PackConfig,
    check_meta,
    coco_annotations,
    read_manifests,
    write_rgb_lmdb,
    write_sdf_lmdb,
)
from gsdf.data.sdf_shard import shard_counts
from gsdf.data.skipped import write_skipped
from gsdf.paths import SplitLayout
from gsdf.utils.io import read_json, write_json

log = logging.getLogger("gsdf.pack")


@dataclass(frozen=True)
class Inputs:
    """Attributes:
        split_dir: the canonical split, ``results/datasets/{dataset}/{split}``.
        manifests: the split's dataset shard manifests, in shard order.
        sdf_shards: the split's SDF shards, in shard order.
    """

    split_dir: Path
    manifests: tuple[Path, ...]
    sdf_shards: tuple[Path, ...]


@dataclass(frozen=True)
class Outputs:
    """The packed split ``results/{dataset}/{split}/``: ``annotations.json``, the three LMDB
    folders and ``skipped.csv``."""

    annotations: Path
    rgb_lmdb: Path
    sdf_hand_lmdb: Path
    sdf_obj_lmdb: Path
    skipped: Path


def _checked_metas(layout: SplitLayout, ids: list[str], sdf_rows: dict, skipped: list[dict]
                   ) -> dict[str, dict]:
    """``id -> meta`` of the ids with SDF samples and a complete meta JSON; the others are
    appended to ``skipped`` with their reason."""
    metas = {}
    for sid in ids:
        try:
            if sid not in sdf_rows:
                raise ValueError("no SDF samples (skipped by sample_sdf, see its skipped csv)")
            meta = read_json(layout.meta(sid))
            check_meta(meta, str(layout.meta(sid)))
            metas[sid] = meta
        except (ValueError, OSError) as err:
            log.warning("skipping %s: %s", sid, err)
            skipped.append({"id": sid, "reason": str(err).replace("\n", " ")})
    return metas


def _rgb_bytes_bound(layout: SplitLayout, ids: list[str], encoding: str) -> int:
    """Upper bound of the bytes ``rgb.lmdb`` stores (file sizes; decoded sizes for ``raw``)."""
    sizes = [layout.rgb(sid).stat().st_size for sid in ids if layout.rgb(sid).exists()]
    if encoding != "raw" or not sizes:
        return sum(sizes)
    from PIL import Image

    first = next(layout.rgb(sid) for sid in ids if layout.rgb(sid).exists())
    with Image.open(first) as img:  # reads the header only
        w, h = img.size
    return len(ids) * h * w * 3


def run(inputs: Inputs, outputs: Outputs, params: dict, *, batch: int = 256,
        progress: bool = True) -> dict:
    """Pack one split. Returns counts ``{"packed": S, "skipped": n}``.

    Args:
        params: ``{"pack": {...}, "dataset": {"name", "recon_scale", ...}}``.
        batch: values per LMDB write transaction (runtime: memory and speed only).
        progress: unused (kept for symmetry with the other stages' CLI).
    Raises:
        FileNotFoundError: the split folder is missing.
        ConfigError: no ``dataset.recon_scale``.
        PackError: the databases written disagree with the annotations (a bug).
    """
    layout = SplitLayout(inputs.split_dir)
    if not layout.root.is_dir():
        raise FileNotFoundError(f"split folder {layout.root} not found; run synth/prepare first")
    if batch < 1:
        raise ValueError(f"gsdf pack: --batch must be >= 1, got {batch}")
    cfg = from_dict(PackConfig, params.get("pack", {}), "pack")
    dataset = params.get("dataset") or {}
    if dataset.get("recon_scale") is None:
        raise ConfigError("pack: --params has no dataset.recon_scale "
                          "(datasets.{dataset}.recon_scale in config/config.yaml)")
    recon_scale = float(dataset["recon_scale"])

    ids, skipped = read_manifests(inputs.manifests)
    sdf_rows: dict[str, tuple[int, int]] = {}
    for path in inputs.sdf_shards:
        sdf_rows.update(shard_counts(path))
    metas = _checked_metas(layout, ids, sdf_rows, skipped)
    checked = [sid for sid in ids if sid in metas]
    records, rgb_meta = write_rgb_lmdb(
        outputs.rgb_lmdb, ((sid, layout.rgb(sid)) for sid in checked),
        _rgb_bytes_bound(layout, checked, cfg.image_encoding), len(checked),
        cfg.image_encoding, skipped, batch)
    keep = {r.id for r in records}
    sdf_num = {which: write_sdf_lmdb(
        out, which, inputs.sdf_shards, keep, sum(sdf_rows[s][i] for s in keep), recon_scale,
        batch) for i, (which, out) in enumerate((("hand", outputs.sdf_hand_lmdb),
                                                 ("obj", outputs.sdf_obj_lmdb)))}
    sizes = {r.size for r in records}
    info = {"format": ANNOTATIONS_FORMAT, "dataset": dataset.get("name"),
            "split": layout.root.name, "count": len(records), "recon_scale": recon_scale,
            "image_size": list(next(iter(sizes))) if len(sizes) == 1 else None,
            "skipped": skipped, "config": {"pack": to_dict(cfg), "dataset": dataset}}
    write_skipped(outputs.skipped, skipped)
    write_json(outputs.annotations, coco_annotations(layout, records, metas, sdf_num, info),
               indent=None)
    if rgb_meta["count"] != len(records):
        raise PackError(f"{outputs.rgb_lmdb}: {rgb_meta['count']} images for {len(records)} "
                        "samples")
    counts = {"packed": len(records), "skipped": len(skipped)}
    log.info("pack %s: %d samples packed, %d skipped", layout.root, counts["packed"],
             counts["skipped"])
    return counts
