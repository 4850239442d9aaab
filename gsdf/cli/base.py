"""The ``gsdf`` command itself: the subcommand registry (:func:`command`), the parser and
:func:`main`. The stages' arguments live in :mod:`gsdf.cli.data`, :mod:`gsdf.cli.training` and
:mod:`gsdf.cli.evaluation`.

The CLI only parses arguments into a stage's ``Inputs`` / ``Outputs`` and calls
``gsdf.stages.<stage>.run`` (the stage contract: :mod:`gsdf.stages`). Every subcommand takes
``--params``: the resolved science config of that job as a JSON object (or ``@file``), which the
Snakemake rule passes so that a config change reruns exactly the affected jobs; runtime settings
(threads, batch sizes, device, progress bars) are separate flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

# (name, one-line help, add_arguments(parser), run(args)) per stage, in pipeline order.
Command = tuple[str, str, Callable[[argparse.ArgumentParser], None],
                Callable[[argparse.Namespace], int | None]]
COMMANDS: list[Command] = []
# `gsdf --help` lists the stages in pipeline order.
PIPELINE_ORDER = ("synth", "prepare", "sample_sdf", "pack", "train_pose", "train_sdf",
                  "reconstruct", "evaluate", "compare", "predict")


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated ``run(args)`` as subcommand ``name`` with arguments declared by
    ``add_arguments(parser)``. Example::

        def _synth_args(p):
            p.add_argument("--split", required=True)

        @command("synth", "generate the synthetic dataset", _synth_args)
        def synth(args):
            from gsdf.stages import synth
            synth.run(synth.Inputs(...), synth.Outputs(...), params_of(args))
    """

    def wrap(run):
        COMMANDS.append((name, help, add_arguments, run))
        return run

    return wrap


def _params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="{}",
                        help="resolved config of this job: JSON object or @file.yaml")


def build_parser() -> argparse.ArgumentParser:
    from gsdf import __version__

    parser = argparse.ArgumentParser(
        prog="gsdf", description="gSDF / AlignSDF / Grasping Field pipeline stages. "
        "Normally called by Snakemake (see README); each stage can also be run by hand.")
    parser.add_argument("--version", action="version", version=f"gsdf {__version__}")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    order = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    for name, help_text, add, run in sorted(COMMANDS, key=lambda c: order.get(c[0], 99)):
        p = sub.add_parser(name, help=help_text, description=help_text)
        _params(p)
        add(p)
        p.set_defaults(_run=run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, config or files (the message says what to do), not a bug:
    the CLI prints them as one paragraph, without a traceback."""
    from gsdf.config import ConfigError
    from gsdf.data.lmdb_io import PackError
    from gsdf.utils.io import DiskFullError

    errors: list[type[BaseException]] = [ConfigError, FileNotFoundError, PackError,
                                         DiskFullError]
    for module, name in (("gsdf.checkpoint", "CheckpointError"),
                         ("gsdf.eval.evaluate", "EvaluationError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


# Path arguments that name a whole tree a stage reads (results root, a dataset split), not its
# own outputs: their temporaries are not looked for (a walk of 100k samples at every job
# start). A split folder synth writes is cleaned by the synth stage itself.
_TREE_ARGS = frozenset({"results", "data", "packed_dir", "split_dir", "dataset_dir",
                        "meshes_dir", "poses_dir"})


def _remove_stale_temporaries(args: argparse.Namespace) -> None:
    """At a stage's start, remove the temporaries that killed writers left beside the files the
    job names (only those whose writer process is gone, see
    :func:`gsdf.utils.io.remove_stale_temporaries`)."""
    import logging

    from gsdf.utils.io import remove_stale_temporaries

    paths: list[str] = []
    for dest, value in vars(args).items():
        if dest.startswith("_") or dest in _TREE_ARGS or dest == "params":
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str) and ("/" in item or "." in item):
                paths.append(item)
    removed = remove_stale_temporaries(paths)
    if removed:
        logging.getLogger("gsdf").warning("removed %d stale temporaries of killed jobs: %s",
                                          len(removed), ", ".join(map(str, removed[:5])))


def main(argv: list[str] | None = None) -> int:
    import logging
    import os
    import sys

    from gsdf.utils.proc import exit_with_launcher

    exit_with_launcher()  # a torchrun worker dies with its launcher, even one killed early
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        _remove_stale_temporaries(args)
        code = args._run(args)
    except Exception as err:
        if os.environ.get("GSDF_DEBUG") or not isinstance(err, _user_errors()):
            raise
        text = " ".join(str(err).split())  # one paragraph, however the library wrapped it
        print(f"gsdf {args.stage}: {text} (GSDF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return int(code or 0)


def params_of(args: argparse.Namespace) -> dict:
    """The job's ``--params`` (JSON object or ``@file``) as a dict."""
    from gsdf.config import parse_params

    return parse_params(args.params)


def paths_of(values) -> tuple[Path, ...]:
    """``values`` (strings) as a tuple of paths."""
    return tuple(Path(v) for v in values)
