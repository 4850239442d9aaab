"""``skipped.csv``: the samples a stage skipped and why (columns ``id, reason``).

``sample_sdf`` writes one per SDF shard, ``pack`` one per packed split.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from gsdf.utils.io import atomic_path


def write_skipped(path: str | Path, skipped: Sequence[dict]) -> None:
    """Atomically write ``skipped.csv`` (columns ``id, reason``)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "reason"])
        writer.writeheader()
        for row in skipped:
            writer.writerow({"id": row["id"], "reason": row["reason"]})


def read_skipped(path: str | Path) -> list[dict]:
    """Rows of a ``skipped.csv`` as dicts ``{"id", "reason"}``."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


__all__ = ["read_skipped", "write_skipped"]
