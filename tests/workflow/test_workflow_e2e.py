"""The whole DAG on the micro preset in a temporary copy of the workflow, then caching checks.

This is the one end-to-end test (a few minutes on 2 cores): it runs every stage, checks the
outputs exist, that a second run has nothing to do, that editing one experiment reruns exactly
that experiment's jobs, and that changing the dataset size reruns everything downstream.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = ("gf", "alignsdf", "gsdf")


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["snakemake", "--cores", "2", *args, "--config", "preset=micro"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def scheduled_jobs(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a `snakemake -n` output lists."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m:
            continue
        wild = re.search(r"wildcards: (.*)", block)
        fields = dict(kv.split("=", 1) for kv in wild.group(1).split(", ")) if wild else {}
        jobs.append((m.group(1), fields))
    return jobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("e2e")
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, work / name)
    snakemake(work)
    return work


def test_every_stage_produces_its_outputs(workdir):
    res = workdir / "results"
    for exp in EXPERIMENTS:
        metrics = pd.read_csv(res / f"{exp}_synth" / "metrics.csv")
        assert int(metrics["num_samples"].iloc[0]) == 8
        assert (res / f"{exp}_synth" / "checkpoint.pt").exists()
        assert (res / f"{exp}_synth" / "learning_curves.png").exists()
        for render in ("best", "median", "worst", "gallery"):
            assert (res / f"{exp}_synth" / "renders" / f"{render}.png").stat().st_size > 0
    # the micro preset trains gsdf enough to mesh: the mesh metrics are computed (#25 item 11)
    gsdf = pd.read_csv(res / "gsdf_synth" / "metrics.csv").iloc[0]
    assert gsdf["num_evaluated"] > 0
    for metric in ("chamfer_hand_cm2", "chamfer_obj_cm2", "fscore_hand_5mm", "fscore_obj_10mm"):
        assert gsdf[f"{metric}_n"] > 0 and np.isfinite(gsdf[f"{metric}_median"]), metric
    assert 0 < gsdf["chamfer_hand_cm2_median"] < 100  # cm^2: a hand-sized mesh, not noise
    assert len(list((res / "gsdf_synth" / "meshes").glob("*_hand.ply"))) > 0
    assert (res / "synth" / "pose_pose" / "checkpoint.pt").exists()
    # the trainer keeps the final state resumable; the rule removes it once its command succeeded
    assert not list(res.rglob("checkpoint.last.pt"))
    comparison = pd.read_csv(res / "synth_comparison.csv")
    assert set(EXPERIMENTS) <= set(comparison.iloc[:, 0].astype(str))
    for name in ("synth_comparison.md", "synth_comparison.png",
                 "datasets/synth/contact_sheet.png", "synth/sdf/preview.png"):
        assert (res / name).stat().st_size > 0, name


def test_second_run_has_nothing_to_do(workdir):
    out = snakemake(workdir, "-n").stdout
    assert "Nothing to be done" in out, out[-2000:]


def test_runtime_settings_rerun_nothing(workdir):
    """A different LMDB write batch or decoder point batch (rule resources, e.g. from a
    profile's set-resources) leaves every finished job as it is."""
    out = snakemake(workdir, "-n", "--set-resources", "pack:lmdb_batch=7",
                    "reconstruct:point_batch=1024").stdout
    assert "Nothing to be done" in out, out[-2000:]


def test_experiment_edit_reruns_only_that_experiment(workdir):
    exp_file = workdir / "config" / "experiments" / "alignsdf.yaml"
    original = exp_file.read_text()
    try:
        cfg = yaml.safe_load(original)
        cfg.setdefault("model_args", {})["hand_sdf_weight"] = 0.7
        exp_file.write_text(yaml.safe_dump(cfg))
        jobs = scheduled_jobs(snakemake(workdir, "-n").stdout)
    finally:
        exp_file.write_text(original)
    rules = {rule for rule, _ in jobs}
    assert {"train_sdf", "reconstruct", "evaluate", "compare"} <= rules, jobs
    assert not rules & {"synth", "sample_sdf", "pack", "train_pose"}, jobs
    for rule, wildcards in jobs:
        if "exp" in wildcards:
            assert wildcards["exp"] == "alignsdf", (rule, wildcards)


def test_dataset_size_change_reruns_everything_downstream(workdir):
    preset = workdir / "config" / "presets" / "micro.yaml"
    original = preset.read_text()
    try:
        cfg = yaml.safe_load(original)
        cfg["synth"]["num_train_sequences"] += 1
        preset.write_text(yaml.safe_dump(cfg))
        jobs = scheduled_jobs(snakemake(workdir, "-n").stdout)
    finally:
        preset.write_text(original)
    rules = [rule for rule, _ in jobs]
    for rule in ("synth", "sample_sdf", "pack", "train_pose", "reconstruct", "evaluate"):
        assert rule in rules, (rule, rules)
    assert rules.count("train_sdf") == len(EXPERIMENTS)
