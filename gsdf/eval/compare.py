"""Comparison tables (stage ``compare``, run by :mod:`gsdf.stages.compare`): every experiment of
a dataset side by side, as in the paper's tables.

Columns (gSDF paper, Tables 5 and 6): CDh and CDo are the *median* Chamfer distances (cm^2);
F-scores, hand joint error Eh and object centre error Eo (cm) are means, as the reference's
``tools/eval.py`` prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gsdf.utils.io import atomic_path  # noqa: E402

# (paper column, metrics.csv column, direction: +1 higher is better, -1 lower is better)
PAPER_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("CDh", "chamfer_hand_cm2_median", -1),
    ("F@1h", "fscore_hand_1mm_mean", +1),
    ("F@5h", "fscore_hand_5mm_mean", +1),
    ("CDo", "chamfer_obj_cm2_median", -1),
    ("F@5o", "fscore_obj_5mm_mean", +1),
    ("F@10o", "fscore_obj_10mm_mean", +1),
    ("Eh", "hand_joint_err_cm_mean", -1),
    ("Eo", "obj_center_err_cm_mean", -1),
)
# Extra columns of the CSV (units in the names); the last four are the evaluate stage's
# diagnostics (the pose network against the mean-pose baseline, the view extents: NaN in a
# metrics.csv written before it reported them).
EXTRA_COLUMNS = ("num_samples", "num_evaluated", "num_failed", "chamfer_hand_cm2_mean",
                 "chamfer_obj_cm2_mean", "penetration_depth_cm_mean",
                 "intersection_volume_cm3_mean", "contact_mean",
                 "pose_err_cm_mean", "mean_pose_err_cm_mean", "depth_ratio_hand_median",
                 "depth_ratio_obj_median")
UNITS = {"CDh": "cm^2", "CDo": "cm^2", "Eh": "cm", "Eo": "cm"}


def comparison_table(metrics: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per experiment (in the given order) from each experiment's ``metrics.csv``.

    Args:
        metrics: experiment name -> path of its ``metrics.csv``.

    Returns:
        columns ``experiment``, the paper columns with units
        (``CDh_cm2`` ...) and :data:`EXTRA_COLUMNS`.
    """
    if not metrics:
        raise ValueError("compare needs at least one experiment's metrics.csv")
    rows = []
    for exp, path in metrics.items():
        summary = pd.read_csv(path)
        if len(summary) != 1:
            raise ValueError(f"{path}: expected one summary row, found {len(summary)}")
        src = summary.iloc[0]
        row: dict = {"experiment": exp}
        for name, column, _ in PAPER_COLUMNS:
            row[_with_unit(name)] = float(src[column]) if column in src else np.nan
        for column in EXTRA_COLUMNS:
            row[column] = src.get(column, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _with_unit(name: str) -> str:
    unit = UNITS.get(name)
    return f"{name}_{unit.replace('^', '')}" if unit else name


def markdown_table(table: pd.DataFrame, dataset: str) -> str:
    """The paper's layout: ``| dataset | CDh | F@1h | ... |``, best value of each column bold."""
    header = [dataset] + [name for name, _, _ in PAPER_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best: dict[str, float] = {}
    for name, _, direction in PAPER_COLUMNS:
        values = table[_with_unit(name)].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        if len(finite) > 1:
            best[name] = finite.max() if direction > 0 else finite.min()
    for _, row in table.iterrows():
        cells = [str(row["experiment"])]
        for name, _, _ in PAPER_COLUMNS:
            value = float(row[_with_unit(name)])
            text = "" if not np.isfinite(value) else (
                f"{value:.3f}" if name.startswith("F") or value < 1 else f"{value:.2f}")
            if name in best and np.isfinite(value) and value == best[name]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    counts = ", ".join(f"{r['experiment']}: {int(r['num_evaluated'])} evaluated / "
                       f"{int(r['num_failed'])} failed" for _, r in table.iterrows()
                       if np.isfinite(r["num_evaluated"]))
    lines += ["", "CD in cm^2 (median over the test set), F-scores at 1/5 mm (hand) and 5/10 mm "
              "(object), Eh = mean hand joint error (cm), Eo = mean object centre error (cm).",
              f"Samples: {counts}."]
    return "\n".join(lines) + "\n"


def bar_chart(table: pd.DataFrame, dataset: str, path: str | Path) -> None:
    """One panel per paper metric, one bar per experiment."""
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    colours = plt.cm.tab10(np.arange(len(table)) % 10)
    for ax, (name, _, direction) in zip(axes.ravel(), PAPER_COLUMNS, strict=True):
        values = table[_with_unit(name)].to_numpy(dtype=np.float64)
        ax.bar(np.arange(len(table)), np.nan_to_num(values), color=colours)
        ax.set_xticks(np.arange(len(table)), table["experiment"], rotation=30, ha="right")
        unit = f" ({UNITS[name]})" if name in UNITS else ""
        ax.set_title(f"{name}{unit}, {'higher' if direction > 0 else 'lower'} is better",
                     fontsize=9)
        for i, v in enumerate(values):
            if np.isfinite(v):
                ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{dataset}: experiments side by side")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
