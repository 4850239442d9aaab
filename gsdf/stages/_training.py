"""What the two training stages (``train_pose``, ``train_sdf``) share: their outputs and the
call into :func:`gsdf.train.run.run_train`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsdf.config import ConfigError


@dataclass(frozen=True)
class Outputs:
    """Attributes:
        checkpoint: the final ``checkpoint.pt`` (``checkpoint.last.pt`` beside it resumes).
        log_csv: ``train_log.csv``; curves: ``learning_curves.png``.
        config: the resolved ``config.yaml`` of the run, or None.
    """

    checkpoint: Path
    log_csv: Path
    curves: Path
    config: Path | None = None


def train(stage: str, packed_dir: Path, outputs: Outputs, params: Mapping[str, Any],
          pose_checkpoint: Path | None, want_pose: bool, **runtime: Any) -> list[dict]:
    """Check that ``params`` names a model of the stage's kind, then train it.

    Args:
        want_pose: True for ``train_pose`` (model ``pose``), False for ``train_sdf``.
        runtime: ``device``, ``threads``, ``progress``, ``runtime``, ``init_checkpoint`` ...
            (never in ``params``).
    Raises:
        ConfigError: ``params`` has no experiment, or one of the other stage's kind.
    """
    from gsdf.train import TrainOutputs, run_train

    experiment = params.get("experiment") or {}
    model = experiment.get("model")
    if model is None:
        raise ConfigError(f"{stage}: --params has no experiment.model")
    if (model == "pose") != want_pose:
        other = "train_sdf" if want_pose else "train_pose"
        raise ConfigError(f"{stage}: experiment {experiment.get('name')!r} has model {model!r}, "
                          f"which stage {other} trains")
    files = TrainOutputs(Path(outputs.checkpoint), Path(outputs.log_csv), Path(outputs.curves),
                         Path(outputs.config) if outputs.config else None)
    return run_train(params, packed_dir, files, pose_checkpoint=pose_checkpoint, **runtime)
