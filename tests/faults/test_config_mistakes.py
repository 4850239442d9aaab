"""Config mistakes at every level fail `snakemake -n` with the message, before any job (#25
item 4): nothing is started, so no output a job was to replace is deleted."""

from __future__ import annotations

import pytest
import yaml
from faultkit import copy_workflow, snakemake

# One mistake per level (every variant of each level: tests/test_config_checks.py, in-process).
CASES = {
    "top-level key": (["epochs=3"], "unknown config key(s) ['epochs'] at the top level"),
    "override selector": (["experiment_overrides={gsfd: {train: {epochs: 2}}}"],
                          "experiment_overrides.gsfd: unknown selector (did you mean 'gsdf'?)"),
    "override model_args": (["experiment_overrides={gsdf: {model_args: {sdf_latnt: 8}}}"],
                            "unknown key(s) ['sdf_latnt'] in 'model_args'"),
    "sweep entry": (["sweeps={gsdf_lat8: {base: gsdf, model_args: {sdf_latent: 8}, trian: {}}}"],
                    "sweeps.gsdf_lat8: unknown key(s) ['trian']"),
    "MANO file": (["hand={asset: mano, mano_root: /nonexistent/mano}"],
                  "hand.mano_root = '/nonexistent/mano'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_config_mistake_fails_the_dry_run_with_its_message(case, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config, message = CASES[case]
    proc = snakemake(work, "-n", config=tuple(config), check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert message in out, out[-3000:]
    assert not (work / "results").exists()


def test_a_mistake_in_an_experiment_file_fails_the_dry_run(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    path = work / "config" / "experiments" / "alignsdf.yaml"
    exp = yaml.safe_load(path.read_text())
    exp.setdefault("model_args", {})["hand_sdf_wieght"] = 0.7
    path.write_text(yaml.safe_dump(exp))
    proc = snakemake(work, "-n", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "experiment 'alignsdf'" in out and "['hand_sdf_wieght']" in out, out[-3000:]


def test_a_real_dataset_without_its_root_names_the_config_key(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(work, "-n", "results/gsdf_obman/metrics.csv", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.obman.root" in out and "Real datasets" in out, out[-3000:]
