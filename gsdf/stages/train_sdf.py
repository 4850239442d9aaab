"""Stage ``train_sdf``: an SDF model (``gf``, ``alignsdf``, ``gsdf``, ``gsdf_video`` ...) on the
packed train split, under torchrun (DDP; gloo on CPU, nccl on GPU). gsdf-style experiments name
their pose network in ``pose_experiment``; its checkpoint is an input. A killed or preempted job
leaves ``checkpoint.last.pt`` and a rerun resumes from it. The loop: :mod:`gsdf.train`.
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
    """Attributes:
        packed_dir: the packed train split, ``results/{dataset}/train``.
        pose_checkpoint: the frozen pose network (gsdf-style models), or None.
        init_checkpoint: a finished checkpoint whose weights start this model (gsdf_video from
            gsdf, the experiment's ``init_experiment``), or None.
    """

    packed_dir: Path
    pose_checkpoint: Path | None = None
    init_checkpoint: Path | None = None


def run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any], **runtime: Any
        ) -> list[dict]:
    """Train the SDF experiment of ``params`` (``{"experiment", "dataset", "train"}``).

    ``runtime``: ``device``, ``threads``, ``progress``, ``runtime`` (a ``TrainRuntime``: workers,
    checkpoint interval, SyncBN ...; see :func:`gsdf.train.run.run_train`).
    Returns the per-epoch log rows.
    """
    return train("train_sdf", inputs.packed_dir, outputs, params, inputs.pose_checkpoint,
                 False, init_checkpoint=inputs.init_checkpoint, **runtime)
