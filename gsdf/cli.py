"""`gsdf <stage> ...`: one subcommand per workflow stage.

This module only parses arguments and calls the library; the work lives in the packages, so
that it can be imported and tested without Snakemake. Every subcommand takes ``--params``: the
resolved science config of that job as a JSON object (or ``@file``), which the Snakemake rule
passes so that a config change reruns exactly the affected jobs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

# (name, one-line help, add_arguments(parser), run(args)) per stage, in pipeline order.
Command = tuple[str, str, Callable[[argparse.ArgumentParser], None],
                Callable[[argparse.Namespace], int | None]]
COMMANDS: list[Command] = []


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated ``run(args)`` as subcommand ``name`` with arguments declared by
    ``add_arguments(parser)``. Example::

        def _synth_args(p):
            p.add_argument("--split", required=True)

        @command("synth", "generate the synthetic dataset", _synth_args)
        def synth(args):
            from gsdf.synth import run_shard
            run_shard(...)
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
    for name, help_text, add, run in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _params(p)
        add(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = args._run(args)
    return int(code or 0)


# ---------------------------------------------------------------------------------------------
# Stages. Keep each block small: parse, then call one library function. New stages append
# their block at the end of this file.
# ---------------------------------------------------------------------------------------------
