"""`gsdf train_sdf` under torchrun on a real packed split: SIGTERM mid-run, rerun, same result as an
uninterrupted run; and the Snakemake rules' wiring (pose checkpoint as gSDF's input)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sdf_fixtures import sample_and_pack

from gsdf.train import TrainOutputs, read_checkpoint, run_train

GF_ARGS = {"image_size": 64, "sdf_latent": 16,
           "decoder": {"dims": [64, 64, 64, 64], "dropout_layers": [0, 1, 2, 3],
                       "norm_layers": [0, 1, 2, 3], "latent_in": [2]}}
PARAMS = {
    "experiment": {"name": "gf", "model": "gf", "model_args": GF_ARGS,
                   "train": {"epochs": 4, "batch_size": 2, "lr": 1e-3, "lr_decay_epochs": [2],
                             "num_points": 64, "seed": 1}},
    "dataset": {"name": "synth", "recon_scale": 7.0},
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """A real packed split (6 samples) built by the data stages with their own test fixtures."""
    return sample_and_pack(tmp_path_factory.mktemp("packed"))


def _command(packed: Path, out: Path, *runtime: str) -> list[str]:
    return ["torchrun", "--standalone", "--nproc_per_node", "1", "--no-python", "gsdf",
            "train_sdf",
            "--data", str(packed), "--checkpoint", str(out / "checkpoint.pt"),
            "--log-csv", str(out / "train_log.csv"), "--curves", str(out / "learning_curves.png"),
            "--config-out", str(out / "config.yaml"), "--threads", "1",
            "--params", json.dumps(PARAMS), *runtime]


def test_sigterm_then_rerun_equals_uninterrupted(packed, tmp_path):
    ref = TrainOutputs.in_dir(tmp_path / "ref")
    torch.set_num_threads(1)
    run_train(PARAMS, packed, ref, device="cpu", progress=False)

    out = tmp_path / "run"
    last = out / "checkpoint.last.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_command(packed, out, "--num-workers", "1"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.exists(), proc.communicate()[0] if proc.poll() is not None else "timeout"
    proc.send_signal(signal.SIGTERM)  # to torchrun, which forwards it to the trainer
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, log
    assert "received SIGTERM" in log, log
    assert not (out / "checkpoint.pt").exists()
    partial = read_checkpoint(last)
    assert 0 < partial["step"] < 12 and not partial["finished"]

    # other runtime settings: still the same run, it resumes
    done = subprocess.run(_command(packed, out, "--num-workers", "0", "--checkpoint-every", "3",
                                   "--no-sync-bn"), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming from" in done.stderr
    a = read_checkpoint(ref.checkpoint)
    b = read_checkpoint(out / "checkpoint.pt")
    assert a["step"] == b["step"] == 12  # 6 samples / batch 2 x 4 epochs
    diff = max((a["state_dict"][k].double() - v.double()).abs().max().item()
               for k, v in b["state_dict"].items() if v.is_floating_point())
    assert diff < 1e-6
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    for name in ("train_log.csv", "learning_curves.png", "config.yaml"):
        assert (out / name).exists()
    # gsdf train_* keeps the final state resumable; the training rule removes it (below)
    assert read_checkpoint(last)["finished"] and last.samefile(out / "checkpoint.pt")


def test_rules_wire_the_pose_checkpoint(tmp_path):
    """Dry run: gsdf's train_sdf job needs its pose experiment's checkpoint; gf's does not."""
    repo = Path(__file__).parents[2]
    shutil.copytree(repo / "config" / "presets", tmp_path / "config" / "presets")
    shutil.copy(repo / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    exp_dir = tmp_path / "config" / "experiments"
    exp_dir.mkdir(parents=True)
    (exp_dir / "pose.yaml").write_text("model: pose\n")
    (exp_dir / "gsdf.yaml").write_text("model: gsdf\npose_experiment: pose\n")
    (exp_dir / "gf.yaml").write_text("model: gf\n")
    (exp_dir / "alignsdf.yaml").write_text("model: alignsdf\n")  # config.yaml's experiments
    packed = tmp_path / "results" / "synth" / "train"  # pretend `pack` ran
    for name in ("rgb.lmdb", "sdf_hand.lmdb", "sdf_obj.lmdb"):
        (packed / name).mkdir(parents=True)
    (packed / "annotations.json").write_text("{}")
    for target, expect_pose in (("gsdf", True), ("gf", False)):
        res = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "-p", "--snakefile",
             str(Path(__file__).parents[2] / "workflow" / "Snakefile"),
             "--directory", str(tmp_path), "--config", f"results={tmp_path / 'results'}",
             "--", f"{tmp_path}/results/{target}_synth/checkpoint.pt"],
            capture_output=True, text=True, timeout=300)
        text = res.stdout + res.stderr
        assert "rule train_sdf" in text, text
        assert ("rule train_pose" in text) == expect_pose, text
        pose_arg = f"--pose-checkpoint {tmp_path}/results/synth/pose_pose/checkpoint.pt"
        assert (pose_arg in text) == expect_pose, text
        assert "torchrun --standalone --nproc_per_node 1 --no-python gsdf train_sdf" in text
        assert ("--no-python gsdf train_pose" in text) == expect_pose, text
