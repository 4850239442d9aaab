"""The micro pipeline on each real-dataset fixture (gsdf/testing/raw_datasets.py) to
``results/gsdf_{obman,dexycb}/metrics.csv``, with the command lines of docs/real_datasets.md
(nested ``--config`` values merged into config.yaml). gsdf only (its pose network included), to
keep them about two minutes each on 2 cores."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from gsdf.testing.raw_datasets import make_dexycb, make_mano, make_obman

REPO = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *config: str, until: str | None = None) -> None:
    cmd = ["snakemake", "--cores", "2", *(["--until", until] if until else []),
           "--config", "preset=micro", "experiments=[gsdf]", *config]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}")


def workdir(tmp: Path) -> Path:
    work = tmp / "work"
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, work / name)
    return work


def check_metrics(res: Path, dataset: str, num_test: int) -> None:
    metrics = pd.read_csv(res / f"gsdf_{dataset}" / "metrics.csv")
    row = metrics.iloc[0]
    assert int(row["num_samples"]) == num_test
    # every test sample is accounted for (a 1-epoch micro model may find no surface: that is
    # the model's quality, not the data's plumbing)
    assert int(row["num_evaluated"]) + int(row["num_failed"]) == num_test  # failed includes
    # the samples without surface


@pytest.mark.slow
def test_obman_micro_pipeline(tmp_path):
    mano = make_mano(tmp_path / "mano")
    make_obman(tmp_path / "obman", tmp_path / "ShapeNetCore.v2", mano, extra_train=4)
    work = workdir(tmp_path)
    config = ["dataset=obman", f"hand={{mano_root: {mano}}}",
              f"datasets={{obman: {{root: {tmp_path / 'obman'}, shapenet_root: "
              f"{tmp_path / 'ShapeNetCore.v2'}, split_files: {{train: null, test: "
              f"{tmp_path / 'obman' / 'test_6k.json'}}}, num_shards: 2}}}}"]
    snakemake(work, *config, until="prepare")
    res = work / "results"
    ids = sorted(i for k in range(2) for i in json.loads(
        (res / f"datasets/obman/train/shards/shard_{k:03d}.json").read_text())["ids"])
    assert len(ids) == 8 and "00000009" not in ids  # the broken sample is skipped
    snakemake(work, *config)
    check_metrics(res, "obman", 2)


@pytest.mark.slow
def test_dexycb_micro_pipeline(tmp_path):
    mano = make_mano(tmp_path / "mano")
    truth = make_dexycb(tmp_path / "dexycb", mano)
    work = workdir(tmp_path)
    config = ["dataset=dexycb", f"hand={{mano_root: {mano}}}",
              f"datasets={{dexycb: {{root: {tmp_path / 'dexycb'}, split: s0, num_shards: 2}}}}"]
    snakemake(work, *config, until="prepare")
    res = work / "results"
    ids = sorted(i for k in range(2) for i in json.loads(
        (res / f"datasets/dexycb/test/shards/shard_{k:03d}.json").read_text())["ids"])
    assert ids == truth["test"]
    snakemake(work, *config)
    check_metrics(res, "dexycb", len(truth["test"]))


def dry_run(work: Path, *config: str) -> subprocess.CompletedProcess:
    cmd = ["snakemake", "-n", "--cores", "2", "--until", "prepare", "--config", "preset=micro",
           *config]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)


def test_settings_are_checked_before_any_job(tmp_path):
    """`dataset=obman` without its root: the DAG build stops, naming the key and the docs;
    the nested --config of docs/real_datasets.md is merged into config.yaml (num_shards: 2 ->
    two prepare jobs per split)."""
    mano = make_mano(tmp_path / "mano")
    make_obman(tmp_path / "obman", tmp_path / "ShapeNetCore.v2", mano)
    work = workdir(tmp_path)
    proc = dry_run(work, "dataset=obman", f"hand={{mano_root: {mano}}}")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "datasets.obman.root" in out and "real_datasets.md" in out, out[-3000:]
    assert not (work / "results").exists()
    proc = dry_run(work, "dataset=obman", f"hand={{mano_root: {mano}}}",
                   f"datasets={{obman: {{root: {tmp_path / 'obman'}, shapenet_root: "
                   f"{tmp_path / 'ShapeNetCore.v2'}, split_files: {{train: "
                   f"{tmp_path / 'obman' / 'train_87k.json'}, test: null}}, num_shards: 2}}}}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = re.findall(r"wildcards: dataset=obman, split=(\w+), shard=(\d+)", proc.stdout)
    assert sorted(jobs) == [("test", "000"), ("test", "001"), ("train", "000"),
                            ("train", "001")]
    assert '"split_files":{"test":null,"train":"' in proc.stdout


def test_prepare_params_hold_only_what_changes_the_conversion():
    """recon_scale and aug do not rerun `prepare` (hours on the full datasets); roots, split
    files, the setup, shards and the MANO folder do."""
    import types

    from gsdf.config import load_config
    from gsdf.workflow import Pipeline

    def params(**dataset):
        cfg = load_config(overrides={"dataset": "synth", "hand": {"mano_root": "/m"},
                                     "datasets": {"dexycb": dataset}})
        return Pipeline(cfg).prepare_params(types.SimpleNamespace(dataset="dexycb"))

    base = params()
    assert params(recon_scale=5.0) == base
    assert params(aug={"trans_factor": 0.3}) == base
    for change in ({"root": "/d"}, {"split": "s1"}, {"num_shards": 3}):
        assert params(**change) != base, change
    assert json.loads(base)["hand"] == {"mano_root": "/m"}
