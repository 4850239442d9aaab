"""gsdf.train: training for the ``train_pose`` / ``train_sdf`` stages (docs/architecture.md).

* :func:`run_train`: what the stages call (build model + dataset from params, then fit);
* :func:`fit`: the DDP training loop (resumable, preemption-safe, NaN guard);
* :func:`load_trained_model`: re-exported from :mod:`gsdf.checkpoint` (the format's owner);
* :class:`TrainConfig`: the ``train:`` keys of an experiment.
"""

from gsdf.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    last_checkpoint_path,
    load_trained_model,
    read_checkpoint,
)
from gsdf.train.config import TrainConfig, TrainRuntime, train_config
from gsdf.train.distributed import DistEnv, cleanup_distributed, init_distributed
from gsdf.train.loop import NonFiniteLoss, Preempted, fit
from gsdf.train.resume import TrainOutputs
from gsdf.train.run import data_kind, run_train

__all__ = ["FORMAT_VERSION", "CheckpointError", "DistEnv", "NonFiniteLoss", "Preempted",
           "TrainConfig", "TrainOutputs", "TrainRuntime", "cleanup_distributed", "data_kind", "fit",
           "init_distributed", "last_checkpoint_path", "load_trained_model", "read_checkpoint",
           "run_train", "train_config"]
