"""The ``evaluate`` stage's bookkeeping around the per-sample metrics
(:mod:`gsdf.eval.evaluate`): which ids a split holds, what the ``reconstruct`` manifests say
about samples (no zero crossing, root not solved, skipped upstream), the failed rows of samples
an earlier stage skipped, the one-row summary ``metrics.csv`` and the CSV writer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gsdf.utils.io import atomic_path, read_json


def summarize(per_sample: pd.DataFrame) -> pd.DataFrame:
    """One-row summary: sample counts, then ``{metric}_mean`` and ``{metric}_median`` of every
    metric over the samples where it is finite (the paper quotes the median Chamfer), and
    ``{metric}_n``, the number of samples it was computed on."""
    out: dict = {
        "num_samples": len(per_sample),
        "num_evaluated": int((~per_sample["failed"]).sum()),
        "num_failed": int(per_sample["failed"].sum()),
    }
    for name in [c for c in per_sample.columns if c not in ("id", "failed", "reason")]:
        values = pd.to_numeric(per_sample[name], errors="coerce").to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        out[f"{name}_mean"] = float(values.mean()) if len(values) else np.nan
        out[f"{name}_median"] = float(np.median(values)) if len(values) else np.nan
        out[f"{name}_n"] = len(values)
    return pd.DataFrame([out])


def test_ids(dataset_shards: Iterable[str | Path]) -> list[str]:
    """Sample ids of a split from its dataset shard manifests (``{"ids": [...]}``)."""
    ids: list[str] = []
    for path in dataset_shards:
        manifest = read_json(path)
        ids += [str(i) for i in manifest.get("ids", [])]
    return ids


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


@dataclasses.dataclass
class ReconstructNotes:
    """What the ``reconstruct`` manifests say about samples, by id: the fields without a zero
    crossing (``"hand,obj"``), roots not solved (``hand_frame: predicted``) and samples an
    earlier stage skipped (with its reason)."""

    no_surface: dict[str, str]
    no_root: dict[str, str]
    upstream: dict[str, str]


def reconstruct_notes(recon_shards: Iterable[str | Path]) -> ReconstructNotes:
    """:class:`ReconstructNotes` of the ``reconstruct`` shard manifests."""
    notes = ReconstructNotes({}, {}, {})
    for path in recon_shards:
        manifest = read_json(path)
        for item in manifest.get("no_surface", []):
            notes.no_surface[str(item["id"])] = ",".join(item.get("fields", []))
        for item in manifest.get("no_root", []):
            notes.no_root[str(item["id"])] = str(item.get("reason", ""))
        for sid in manifest.get("missing", []):  # manifests written before skipped_upstream
            notes.upstream.setdefault(str(sid), "not in the packed split")
        for item in manifest.get("skipped_upstream", []):
            notes.upstream[str(item["id"])] = str(item.get("reason", ""))
    return notes


def add_reasons(per_sample: pd.DataFrame, notes: ReconstructNotes) -> None:
    """Prefix the ``reason`` of samples ``reconstruct`` could not mesh or place, in place."""
    for i, row in per_sample.iterrows():
        if row["id"] in notes.no_surface:
            per_sample.at[i, "reason"] = (f"no zero crossing ({notes.no_surface[row['id']]}); "
                                          + row["reason"]).rstrip("; ")
        if row["id"] in notes.no_root:
            per_sample.at[i, "reason"] = (f"root not solved ({notes.no_root[row['id']]}); "
                                          + per_sample.at[i, "reason"]).rstrip("; ")


def with_upstream(per_sample: pd.DataFrame, ids: Sequence[str],
                  upstream: dict[str, str]) -> pd.DataFrame:
    """``per_sample`` (the scored samples) plus a failed row per sample an earlier stage
    skipped (``skipped upstream: <reason>``; a prediction an older run left is never scored),
    in the order of ``ids``."""
    skipped = pd.DataFrame([{"id": i, "failed": True, "reason": f"skipped upstream: {upstream[i]}"}
                            for i in ids if i in upstream], columns=per_sample.columns)
    order = {sid: k for k, sid in enumerate(ids)}
    out = pd.concat([df for df in (per_sample, skipped) if len(df)] or [per_sample],
                    ignore_index=True)
    out = out.sort_values("id", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    out["failed"] = out["failed"].astype(bool)
    return out


def summary_of(per_sample: pd.DataFrame, ids: Sequence[str], notes: ReconstructNotes
               ) -> pd.DataFrame:
    """:func:`summarize` with the counts ``num_skipped_upstream`` and ``num_no_surface``
    (evaluated + failed + skipped upstream = samples)."""
    summary = summarize(per_sample)
    num_upstream = len(set(notes.upstream) & set(ids))
    summary["num_failed"] = int(summary["num_failed"].iloc[0]) - num_upstream
    summary.insert(3, "num_skipped_upstream", num_upstream)
    summary.insert(4, "num_no_surface", len(set(notes.no_surface) & set(ids)))
    return summary
