import argparse
import re
import subprocess

from gsdf.cli import build_parser

STAGES = ["synth", "sample_sdf", "pack", "train", "reconstruct", "evaluate", "compare"]


def test_help_lists_stages_in_pipeline_order():
    out = subprocess.run(["gsdf", "--help"], capture_output=True, text=True, check=True).stdout
    positions = [re.search(rf"\n    {s}\s", out).start() for s in STAGES]
    assert positions == sorted(positions), out


def test_every_stage_takes_params():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(STAGES) <= set(sub.choices)
    for stage in STAGES:
        options = {o for a in sub.choices[stage]._actions for o in a.option_strings}
        assert "--params" in options, stage
