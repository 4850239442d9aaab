"""The micro pipeline under faults (#25): two runs at once, kill -9 during each stage then a
rerun.

All tests share the session's reference run (``conftest.reference``) and run in file order;
they live in one file so that ``pytest -n 2 --dist loadfile`` makes that run once. The last
tests change the reference folder (restoring what later tests need).
"""

from __future__ import annotations

import time

import pandas as pd
import psutil
import pytest
from faultkit import (
    copy_workflow,
    kill_group,
    processes_in,
    read_metrics,
    snakemake,
    stage_process,
    start_snakemake,
    temporaries,
    wait_for,
)

pytestmark = pytest.mark.slow

STAGES = ("synth", "sample_sdf", "pack", "train", "reconstruct", "evaluate")


def test_a_second_run_in_the_same_folder_refuses_and_the_first_is_unharmed(reference):
    second = reference.concurrent
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    for exp, metrics in reference.metrics.items():
        assert int(metrics["num_samples"].iloc[0]) == 8, exp
    assert temporaries(reference.workdir / "results") == []


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_during_every_stage_then_rerun_gives_the_uninterrupted_metrics(reference,
                                                                              tmp_path):
    work = copy_workflow(tmp_path / "run")
    killed = []
    for stage in STAGES:
        run = start_snakemake(work, "--rerun-incomplete")

        def running(stage=stage, run=run):
            if run.poll() is not None:
                return "finished"
            return stage_process(work, stage)

        proc = wait_for(running, 900, f"stage {stage}", interval=0.02)
        if proc == "finished":  # the stage went by between two looks: nothing to kill
            continue
        if stage == "train":
            time.sleep(8)  # into the training (an earlier kill is caught too, see test_proc)
        kill_group(run)
        killed.append(stage)
        # every process of the job dies with it, the torchrun worker included (it runs in its
        # own session, out of reach of the process-group kill)
        wait_for(lambda proc=proc: gone(proc.pid), 30, f"the killed {stage} process to exit")
        wait_for(lambda: not processes_in(work), 30, "every process of the killed run to exit")
        snakemake(work, "--unlock")
    assert "train" in killed, killed
    snakemake(work, "--rerun-incomplete")
    for exp, metrics in read_metrics(work).items():
        pd.testing.assert_frame_equal(metrics, reference.metrics[exp], check_exact=False,
                                      rtol=1e-9, obj=exp)
    # stages remove the stale temporaries of killed writers when they rerun
    assert temporaries(work / "results") == []
