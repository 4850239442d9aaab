"""`gsdf <stage> ...`: one subcommand per workflow stage, named as the stage.

The console script ``gsdf`` is :func:`main`. :mod:`gsdf.cli.base` holds the subcommand registry,
the parser and the error handling; the stages' arguments are declared, grouped as the pipeline,
in :mod:`gsdf.cli.data` (synth, prepare, sample_sdf, pack), :mod:`gsdf.cli.training`
(train_pose, train_sdf) and :mod:`gsdf.cli.evaluation` (reconstruct, evaluate, compare,
predict). Importing this package registers them all.
"""

from gsdf.cli import data, evaluation, training  # noqa: F401  (registers the subcommands)
from gsdf.cli.base import COMMANDS, PIPELINE_ORDER, build_parser, command, main

__all__ = ["COMMANDS", "PIPELINE_ORDER", "build_parser", "command", "main"]
