"""How the workflow resolves its config, seen through dry runs of a copied workflow: presets sit
between config/config.yaml and the command line (with Snakemake's public configfile semantics,
no private API), and runtime settings stay out of the params that trigger reruns."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("dry")
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, work / name)
    return work


def dry_run(workdir: Path, *args: str) -> str:
    """Shell commands of a dry run (``-n -p``), as text."""
    cmd = ["snakemake", "-n", "-p", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def params_of(text: str, stage: str) -> list[str]:
    """The ``--params`` JSON of every ``gsdf {stage}`` command in a dry run."""
    return re.findall(rf"gsdf {stage} .*?--params '(\{{.*?\}})'", text)


def test_snakefile_uses_no_private_snakemake_api():
    text = (REPO / "workflow" / "Snakefile").read_text()
    assert "config_settings" not in text and "overwrite_config" not in text


def test_command_line_config_beats_the_preset_which_beats_config_yaml(workdir):
    micro = dry_run(workdir, "--config", "preset=micro")
    typed = dry_run(workdir, "--config", "preset=micro", "sample_sdf={points_per_mesh: 123}",
                    "evaluate={num_points: 77}")
    # config.yaml says 20000, the micro preset 2000, the command line 123
    assert {re.search(r'"points_per_mesh":(\d+)', p).group(1)
            for p in params_of(micro, "sample_sdf")} == {"2000"}
    assert {re.search(r'"points_per_mesh":(\d+)', p).group(1)
            for p in params_of(typed, "sample_sdf")} == {"123"}
    # a key the command line does not name keeps the preset's value (deep merge)
    assert {re.search(r'"near_fraction":([0-9.]+)', p).group(1)
            for p in params_of(typed, "sample_sdf")} == \
        {re.search(r'"near_fraction":([0-9.]+)', p).group(1)
         for p in params_of(micro, "sample_sdf")}
    assert all('"num_points":77' in p for p in params_of(typed, "evaluate"))


def test_runtime_settings_do_not_change_params(workdir):
    """The LMDB write batch and the decoder point batch are rule resources: the commands change,
    the --params strings (the rerun trigger) do not."""
    base = dry_run(workdir, "--config", "preset=micro")
    tuned = dry_run(workdir, "--config", "preset=micro", "--set-resources",
                    "pack:lmdb_batch=7", "reconstruct:point_batch=1024")
    assert "--batch 7" in tuned and "--batch 256" in base
    assert "--point-batch-size 1024" in tuned and "--point-batch-size 65536" in base
    for stage, key in (("pack", '"batch"'), ("reconstruct", "point_batch")):
        # the dry run's job order is not fixed: compare the commands as sets
        assert params_of(base, stage)
        assert sorted(params_of(base, stage)) == sorted(params_of(tuned, stage))
        assert all(key not in p for p in params_of(base, stage)), stage
