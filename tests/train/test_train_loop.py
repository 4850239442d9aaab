"""The training loop on a toy model: outputs, determinism, resume after SIGTERM, NaN guard."""

from __future__ import annotations

import csv

import pytest
import torch
from train_toy import ToyDataset, ToyModel, toy_experiment

from gsdf.config import ConfigError
from gsdf.train import (
    DistEnv,
    NonFiniteLoss,
    Preempted,
    TrainConfig,
    TrainOutputs,
    TrainRuntime,
    fit,
    read_checkpoint,
)

ENV = DistEnv()


def _cfg(**kw) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 4, "lr": 1e-2, "lr_decay_epochs": (2,),
            "lr_decay_factor": 0.5, "num_points": 32, "seed": 3}
    return TrainConfig(**{**base, **kw})


def _run(tmp, cfg, dataset=None, runtime=None, **model_kw):
    torch.manual_seed(cfg.seed)  # what run_train does before building the model
    model = ToyModel(**model_kw)
    out = TrainOutputs.in_dir(tmp)
    rows = fit(model, dataset or ToyDataset(), cfg, out, experiment=toy_experiment(),
               env=ENV, runtime=runtime or TrainRuntime(num_workers=0), progress=False)
    return model, rows, out


def _losses(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k in ("epoch", "loss", "sdf_hand", "reg", "lr")}
                for r in csv.DictReader(f)]


def test_outputs_and_schedule(tmp_path):
    cfg = _cfg()
    model, rows, out = _run(tmp_path, cfg)
    assert out.checkpoint.exists() and out.curves.exists() and out.config.exists()
    # the resumable checkpoint holds the final state (a hard link: no extra disk) until the
    # training rule's command has succeeded and removes it
    assert out.last.samefile(out.checkpoint)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert [r["lr"] for r in rows] == pytest.approx([1e-2, 1e-2, 5e-3])  # step decay at 2
    assert all(r["steps"] == 6 for r in rows)  # 24 samples / 4
    with open(out.log_csv) as f:
        header = next(csv.reader(f))
    for col in ("epoch", "loss", "sdf_hand", "reg", "lr", "samples_per_s", "data_wait_share"):
        assert col in header
    assert rows[-1]["loss"] < rows[0]["loss"]
    ckpt = read_checkpoint(out.checkpoint)
    assert ckpt["finished"] and ckpt["epoch"] == 3 and ckpt["step"] == 18
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert ckpt["experiment"]["model"] == "toy" and ckpt["train"]["epochs"] == 3


@pytest.mark.parametrize("num_workers", [0, 2])
def test_same_seed_same_loss_log(tmp_path, num_workers):
    cfg = _cfg(epochs=2)
    rt = TrainRuntime(num_workers=num_workers)
    m1, _, o1 = _run(tmp_path / "a", cfg, runtime=rt)
    m2, _, o2 = _run(tmp_path / "b", cfg, runtime=rt)
    assert _losses(o1.log_csv) == _losses(o2.log_csv)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # and a different seed gives a different run (the check can fail)
    m3, _, o3 = _run(tmp_path / "c", _cfg(epochs=2, seed=4), runtime=rt)
    assert _losses(o3.log_csv) != _losses(o1.log_csv)


@pytest.mark.parametrize(("num_workers", "signal_at"), [(0, 8), (0, 12), (2, 9)])
def test_resume_after_sigterm_matches_uninterrupted(tmp_path, num_workers, signal_at):
    cfg = _cfg()
    rt = TrainRuntime(num_workers=num_workers, checkpoint_every=2)
    ref, _, ref_out = _run(tmp_path / "ref", cfg, runtime=rt)

    with pytest.raises(Preempted, match="SIGTERM") as err:
        _run(tmp_path / "run", cfg, runtime=rt, signal_at_call=signal_at)
    out = TrainOutputs.in_dir(tmp_path / "run")
    assert err.value.path == out.last and out.last.exists()
    assert not out.checkpoint.exists(), "checkpoint.pt must only exist once training finished"
    partial = read_checkpoint(out.last)
    assert partial["step"] == signal_at and not partial["finished"]

    # rerun: a fresh process would build the model from the same seed, then resume
    resumed, _, _ = _run(tmp_path / "run", cfg, runtime=rt)
    assert out.checkpoint.exists() and read_checkpoint(out.last)["finished"]
    diff = max((a - b).abs().max().item() for a, b in
               zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True)
               if a.is_floating_point())
    assert diff < 1e-6
    assert _losses(out.log_csv) == _losses(ref_out.log_csv)
    assert read_checkpoint(out.checkpoint)["step"] == read_checkpoint(ref_out.checkpoint)["step"]


class _CountingDataset(ToyDataset):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def __getitem__(self, i):
        self.reads += 1
        return super().__getitem__(i)


def test_job_killed_after_training_finished_resumes_at_the_end(tmp_path):
    """A signal in the seconds between the final checkpoint and the job's exit fails the job,
    and Snakemake deletes checkpoint.pt; the retry must not train again."""
    cfg = _cfg()
    done, rows, out = _run(tmp_path, cfg)
    first = read_checkpoint(out.checkpoint)
    log = _losses(out.log_csv)
    for path in (out.checkpoint, out.log_csv, out.curves, out.config):
        path.unlink()  # what Snakemake does with the outputs of a failed job
    data = _CountingDataset()
    again, rows_again, _ = _run(tmp_path, cfg, dataset=data)
    assert data.reads == 0, "the retry trained again"
    second = read_checkpoint(out.checkpoint)
    assert second["finished"] and second["step"] == first["step"] == 18
    for k, v in first["state_dict"].items():
        assert torch.equal(v, second["state_dict"][k]), k
    assert [r["loss"] for r in rows_again] == [r["loss"] for r in rows]
    assert out.curves.exists() and out.config.exists()
    assert _losses(out.log_csv) == log
    assert out.last.samefile(out.checkpoint)


def test_changed_config_does_not_resume(tmp_path):
    cfg = _cfg()
    with pytest.raises(Preempted):
        _run(tmp_path, cfg, signal_at_call=3)
    rows = _run(tmp_path, _cfg(lr=5e-3))[1]
    assert len(rows) == 3 and rows[0]["steps"] == 6  # trained from scratch
    assert (tmp_path / "checkpoint.last.stale.pt").exists()


def test_changed_runtime_settings_resume(tmp_path):
    # Workers, checkpoint interval, SyncBN are runtime settings: a rerun with other values
    # continues checkpoint.last.pt at its step and ends as the uninterrupted run.
    cfg = _cfg()
    ref, _, ref_out = _run(tmp_path / "ref", cfg)
    with pytest.raises(Preempted):
        _run(tmp_path / "run", cfg, signal_at_call=8)
    other = TrainRuntime(num_workers=2, checkpoint_every=3, sync_bn=False)
    rows = _run(tmp_path / "run", cfg, runtime=other)[1]
    assert not (tmp_path / "run" / "checkpoint.last.stale.pt").exists()
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 18
    assert [r["steps"] for r in rows] == [6, 6, 6]  # epoch 2 resumed at batch 2 of 6
    assert _losses(tmp_path / "run" / "train_log.csv") == _losses(ref_out.log_csv)


@pytest.mark.parametrize(("world", "expect"), [(1, 8), (2, 4), (4, 2)])
def test_global_batch_splits_over_processes(world, expect):
    cfg = _cfg(global_batch_size=8, batch_size=3)
    assert cfg.per_process_batch(world) == expect
    assert _cfg(batch_size=3).per_process_batch(world) == 3  # no global batch: per process


def test_global_batch_not_divisible_is_refused():
    with pytest.raises(ConfigError, match="global_batch_size = 6 is not divisible by the 4"):
        _cfg(global_batch_size=6).per_process_batch(4)


def test_global_batch_sets_the_steps(tmp_path):
    rows = _run(tmp_path, _cfg(global_batch_size=8, batch_size=3, epochs=1))[1]
    assert rows[0]["steps"] == 3  # 24 samples / 8


def test_nan_loss_stops_with_details_and_keeps_last_good(tmp_path):
    cfg = _cfg()
    with pytest.raises(NonFiniteLoss) as err:
        _run(tmp_path, cfg, nan_at_call=9)  # epoch 2, batch 3
    msg = str(err.value)
    assert "step 9" in msg and "sdf_hand=nan" in msg and "loss=nan" in msg
    assert err.value.step == 9 and len(err.value.ids) == 4
    assert all(i in msg for i in err.value.ids)
    out = TrainOutputs.in_dir(tmp_path)
    assert not out.checkpoint.exists()
    good = read_checkpoint(out.last)  # written after epoch 1, untouched by the NaN
    assert good["epoch"] == 1 and good["step"] == 6
    assert all(torch.isfinite(v).all() for v in good["state_dict"].values()
               if v.is_floating_point())


def test_dataset_smaller_than_a_batch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fewer than one global batch"):
        _run(tmp_path, _cfg(batch_size=32))


class _FailingDataset(ToyDataset):
    def __getitem__(self, i: int) -> dict:
        if i == 5:
            raise TypeError("sample 5 is broken")
        return super().__getitem__(i)


def test_failing_sample_in_a_worker_ends_training_and_its_workers(tmp_path):
    # The worker's error reaches the caller, and no worker process is left behind (they kept
    # a torchrun job from exiting after the traceback).
    import multiprocessing

    before = set(multiprocessing.active_children())  # other tests' processes, if any
    with pytest.raises(TypeError, match="sample 5 is broken"):
        _run(tmp_path, _cfg(), dataset=_FailingDataset(), runtime=TrainRuntime(num_workers=2))
    assert set(multiprocessing.active_children()) - before == set()
