"""Fault injection on the micro preset: the one uninterrupted reference run.

The reference run (``reference`` fixture, one per session) is the micro pipeline in a temporary
copy of the workflow. While it runs, a second ``snakemake`` in the same folder must refuse to
start (two concurrent runs); its metrics are what every interrupted-then-rerun pipeline must
reproduce exactly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from faultkit import copy_workflow, read_metrics, snakemake, snakemake_cmd, stage_process, wait_for


@dataclass
class Reference:
    workdir: Path
    metrics: dict[str, pd.DataFrame]
    concurrent: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Reference:
    """The uninterrupted micro run; a second run started in the same folder while it works."""
    work = copy_workflow(tmp_path_factory.mktemp("faults_reference"))
    first = subprocess.Popen(snakemake_cmd(), cwd=work, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: stage_process(work, "train"), 600, "the first run's training")
        concurrent = snakemake(work, check=False, timeout=300)
        out, _ = first.communicate(timeout=1500)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out[-5000:]
    return Reference(work, read_metrics(work), concurrent)
