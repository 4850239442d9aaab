"""Stage ``train_pose``: gSDF's hand pose network (model ``pose``) on the packed train split,
under torchrun (DDP; gloo on CPU, nccl on GPU). A killed or preempted job leaves
``checkpoint.last.pt`` beside its outputs and a rerun resumes from it; ``checkpoint.pt`` exists
only once training finished. The loop: :mod:`gsdf.train`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsdf.stages._training import Outputs, train

__all__ = ["Inputs", "Outputs", "run"]


@dataclass(frozen=True)
class Inputs:
    """Attributes: packed_dir: the packed train split, ``results/{dataset}/train``."""

    packed_dir: Path


def run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any], **runtime: Any
        ) -> list[dict]:
    """Train the pose experiment of ``params`` (``{"experiment", "dataset", "train"}``).

    ``runtime``: ``device``, ``threads``, ``progress``, ``runtime`` (a ``TrainRuntime``: workers,
    checkpoint interval, SyncBN ...; see :func:`gsdf.train.run.run_train`).
    Returns the per-epoch log rows.
    """
    return train("train_pose", inputs.packed_dir, outputs, params, None, True, **runtime)
