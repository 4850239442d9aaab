"""Stage ``compare``: every experiment of ``config["experiments"]`` on a dataset side by side,
laid out like the paper's tables (:mod:`gsdf.eval.compare`): ``{dataset}_comparison.csv``,
``.md`` and a bar chart. ``snakemake --report report.html`` collects these and the renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gsdf.eval.compare import bar_chart, comparison_table, markdown_table
from gsdf.utils.io import atomic_path, write_text


@dataclass(frozen=True)
class Inputs:
    """Attributes:
        metrics: experiment name -> its ``metrics.csv``, in table order.
    """

    metrics: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Outputs:
    """``{dataset}_comparison.csv``, ``.md`` and ``.png``."""

    csv: Path
    md: Path
    plot: Path


def run(inputs: Inputs, outputs: Outputs, params: dict) -> pd.DataFrame:
    """Write the comparison table (CSV, markdown) and bar chart.

    Args:
        params: ``{"dataset": {"name": ...}}`` (the table's title).
    """
    dataset = str((params.get("dataset") or {}).get("name", "dataset"))
    table = comparison_table(inputs.metrics)
    with atomic_path(outputs.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_text(outputs.md, markdown_table(table, dataset))
    bar_chart(table, dataset, outputs.plot)
    return table
