"""Checkpoint format: corrupt, foreign and incompatible checkpoints are refused."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from train_toy import ToyDataset, ToyModel, build_toy, toy_experiment

import gsdf.models
from gsdf.checkpoint import (
    capture_rng,
    check_compatible,
    load_weights,
    restore_rng,
    strip_module_prefix,
)
from gsdf.train import (
    CheckpointError,
    DistEnv,
    Preempted,
    TrainConfig,
    TrainOutputs,
    fit,
    load_trained_model,
    read_checkpoint,
)

CFG = TrainConfig(epochs=2, batch_size=4, lr=1e-2, lr_decay_epochs=(), num_points=32,
                  seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = TrainOutputs.in_dir(tmp_path_factory.mktemp("ckpt"))
    torch.manual_seed(0)
    fit(ToyModel(), ToyDataset(n=8), CFG, out, experiment=toy_experiment(width=16),
        env=DistEnv(), progress=False)
    return out


@pytest.fixture
def toy_registry(monkeypatch):
    monkeypatch.setattr(gsdf.models, "build_model", build_toy, raising=False)


def test_load_trained_model_round_trip(trained, toy_registry):
    model, exp = load_trained_model(trained.checkpoint, expect=toy_experiment(width=16))
    assert not model.training and exp["model"] == "toy"
    saved = read_checkpoint(trained.checkpoint)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_refused(trained, tmp_path, damage, toy_registry):
    data = trained.checkpoint.read_bytes()
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a torch file" * 9,
                     "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_trained_model(bad)


def test_foreign_and_old_format_refused(tmp_path):
    torch.save({"network": {}}, tmp_path / "ref.pth.tar")  # the reference's snapshot layout
    with pytest.raises(CheckpointError, match="not a gsdf training checkpoint"):
        read_checkpoint(tmp_path / "ref.pth.tar")
    with pytest.raises(FileNotFoundError, match="run its training rule"):
        read_checkpoint(tmp_path / "missing.pt")


def test_other_format_version_refused(trained, tmp_path):
    ckpt = read_checkpoint(trained.checkpoint)
    ckpt["format_version"] = 99
    torch.save(ckpt, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format_version 99"):
        read_checkpoint(tmp_path / "v99.pt")


def test_other_model_or_model_args_refused(trained, toy_registry):
    with pytest.raises(CheckpointError, match="holds a 'toy' model, expected 'gsdf'"):
        load_trained_model(trained.checkpoint, expect={"model": "gsdf", "model_args": {}})
    with pytest.raises(CheckpointError, match="width: checkpoint 16 vs config 32"):
        load_trained_model(trained.checkpoint, expect=toy_experiment(width=32))
    ckpt = read_checkpoint(trained.checkpoint)
    check_compatible(ckpt, "toy", {"width": 16})  # the right one passes


def test_mismatched_weights_refused_without_partial_load():
    small, big = ToyModel(width=8), ToyModel(width=16)
    before = {k: v.clone() for k, v in big.state_dict().items()}
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(big, small.state_dict())
    sd = dict(big.state_dict())
    sd.pop("dec.3.bias")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing dec\.3\.bias.*unexpected extra\.weight"):
        load_weights(big, sd)
    for k, v in big.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was modified by a refused load"


def test_unfinished_checkpoint_refused_for_reconstruction(tmp_path, toy_registry):
    out = TrainOutputs.in_dir(tmp_path)
    torch.manual_seed(0)
    with pytest.raises(Preempted):
        fit(ToyModel(signal_at_call=3), ToyDataset(n=8), CFG, out,
            experiment=toy_experiment(width=16), env=DistEnv(), progress=False)
    with pytest.raises(CheckpointError, match="unfinished run"):
        load_trained_model(out.last)


def test_corrupt_resume_checkpoint_is_reported(tmp_path):
    out = TrainOutputs.in_dir(tmp_path)
    out.last.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        fit(ToyModel(), ToyDataset(n=8), CFG, out, experiment=toy_experiment(width=16),
            env=DistEnv(), progress=False)


def test_strip_module_prefix():
    sd = {"module.a.weight": 1, "module._orig_mod.b": 2, "c": 3}
    assert strip_module_prefix(sd) == {"a.weight": 1, "b": 2, "c": 3}


def test_rng_round_trip_survives_weights_only_save(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    torch.save(capture_rng(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), torch.rand(3))
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (random.random(), np.random.normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
