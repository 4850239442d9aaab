"""The per-epoch training log (``train_log.csv``) and its plot (``learning_curves.png``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from gsdf.utils.io import atomic_path, write_text

# Columns that are not loss terms, in the order they are written after ``epoch``.
META_COLUMNS = ("lr", "samples_per_s", "data_wait_share", "epoch_time_s", "steps")


def loss_columns(rows: Sequence[Mapping[str, float]]) -> list[str]:
    """Loss-term columns of the rows: ``loss`` first, then the others sorted."""
    names: set[str] = set()
    for row in rows:
        names.update(k for k in row if k not in META_COLUMNS and k != "epoch")
    return (["loss"] if "loss" in names else []) + sorted(names - {"loss"})


def write_log_csv(path: str | Path, rows: Sequence[Mapping[str, float]]) -> None:
    """Atomically write one row per epoch: ``epoch``, every loss term (mean over the epoch's
    steps and ranks), ``lr``, ``samples_per_s`` (all ranks), ``data_wait_share`` (share of the
    epoch's wall time spent waiting for the next batch), ``epoch_time_s``, ``steps``."""
    columns = ["epoch", *loss_columns(rows), *META_COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    write_text(path, buf.getvalue())


def _fmt(value: object) -> object:
    if isinstance(value, float):
        return repr(value)  # full precision: the log is compared across runs
    return value


def plot_curves(path: str | Path, rows: Sequence[Mapping[str, float]], title: str = "") -> None:
    """Atomically write a PNG: loss terms per epoch (log scale) and the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), dpi=100)
    ax_loss, ax_lr = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for name in loss_columns(rows):
        values = [float(r.get(name, float("nan"))) for r in rows]
        ax_loss.plot(epochs, values, marker="o" if len(rows) < 20 else None,
                     linewidth=2.0 if name == "loss" else 1.0, label=name)
    if rows and all(float(r.get("loss", 1.0)) > 0 for r in rows):
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (mean over the epoch)")
    ax_loss.grid(True, alpha=0.3)
    if rows:
        ax_loss.legend(fontsize=7)
    ax_lr.step(epochs, [float(r.get("lr", float("nan"))) for r in rows], where="post",
               color="k")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
