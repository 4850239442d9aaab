"""The CUDA side of training: the one-process-per-GPU check (CPU tests, mocked device count)
and, marked ``gpu`` (skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them), training on
the GPU in every precision, the precision switches, pinned non-blocking batches, and the
decoder queries of meshing on the GPU against the CPU."""

from __future__ import annotations

import pytest
import torch
from train_toy import ContractDataset, ToyDataset, ToyModel, toy_experiment

from gsdf.config import ConfigError
from gsdf.train import (
    DistEnv,
    Preempted,
    TrainConfig,
    TrainOutputs,
    TrainRuntime,
    fit,
    read_checkpoint,
)
from gsdf.train.distributed import (
    SeededDataset,
    check_gpus,
    init_distributed,
    make_loader,
    make_sampler,
    to_device,
)
from gsdf.train.loop import autocast, set_precision

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def _cuda_count(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_more_processes_than_gpus_is_refused(monkeypatch):
    _cuda_count(monkeypatch, 2)
    with pytest.raises(ConfigError, match=r"4 training processes on this machine but 2 GPU.*"
                                          r"CUDA_VISIBLE_DEVICES=0,1.*nproc equal to"):
        check_gpus(4, 3, 3, {"CUDA_VISIBLE_DEVICES": "0,1"})


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    _cuda_count(monkeypatch, 0)
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        check_gpus(1, 0, 0, {})


def test_idle_gpus_are_reported(monkeypatch, capsys):
    _cuda_count(monkeypatch, 4)
    check_gpus(1, 0, 0, {})
    assert "3 GPU(s) stay idle" in capsys.readouterr().err


def _cfg(**kw) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 4, "lr": 1e-2, "lr_decay_epochs": (2,),
            "num_points": 32, "seed": 3}
    return TrainConfig(**{**base, **kw})


def _fit(tmp, cfg, runtime=None, **model_kw):
    env = init_distributed("cuda", environ={})
    torch.manual_seed(cfg.seed)
    model = ToyModel(**model_kw)
    rows = fit(model, ToyDataset(), cfg, TrainOutputs.in_dir(tmp), experiment=toy_experiment(),
               env=env, runtime=runtime or TrainRuntime(num_workers=2), progress=False)
    return model, rows


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_fit_on_cuda(tmp_path, precision):
    model, rows = _fit(tmp_path, _cfg(precision=precision))
    assert next(model.parameters()).device == torch.device("cuda", 0)
    assert rows[-1]["loss"] < rows[0]["loss"]
    ckpt = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["finished"] and ckpt["train"]["precision"] == precision
    assert "cuda" in ckpt["rng"]["per_rank"][0]
    assert all(v.device.type == "cpu" for v in ckpt["state_dict"].values())


@pytest.mark.gpu
@gpu
def test_resume_on_cuda_continues_the_run(tmp_path):
    cfg = _cfg()
    _, ref = _fit(tmp_path / "ref", cfg)
    with pytest.raises(Preempted):
        _fit(tmp_path / "run", cfg, signal_at_call=8)
    _, rows = _fit(tmp_path / "run", cfg, runtime=TrainRuntime(num_workers=0))
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 18
    # epoch 1 comes from the checkpoint's history; later epochs are not bit-identical on a GPU
    # (autotuned cuDNN kernels, atomics; Adam turns rounding-level gradients into full steps)
    terms = ("loss", "sdf_hand", "reg", "lr", "steps")
    assert {k: rows[0][k] for k in terms} == {k: ref[0][k] for k in terms}
    assert [r["steps"] for r in rows] == [6, 6, 6]
    assert rows[-1]["loss"] < rows[0]["loss"]


@pytest.mark.gpu
@gpu
def test_precision_switches_change_the_arithmetic():
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(1024, 1024, device="cuda", generator=g)
    b = torch.randn(1024, 1024, device="cuda", generator=g)
    ref = a.double() @ b.double()

    def rel(x):
        return float((x.double() - ref).norm() / ref.norm())

    try:
        set_precision("fp32")
        fp32 = rel(a @ b)
        set_precision("tf32")
        tf32 = rel(a @ b)
    finally:
        set_precision("fp32")
    assert fp32 < 1e-5 < tf32 < 5e-3  # TF32 keeps 10 mantissa bits
    with autocast("bf16", torch.device("cuda")):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cuda")):
        assert (a @ b).dtype == torch.float32


@pytest.mark.gpu
@gpu
def test_batches_are_pinned_and_land_on_the_gpu():
    env = DistEnv(device=torch.device("cuda", 0))
    seeded = SeededDataset(ToyDataset(), 0)
    sampler = make_sampler(seeded, env, 0, 4)
    batch = next(iter(make_loader(seeded, sampler, env, 0, 4, num_workers=1)))
    assert batch["image"].is_pinned() and batch["points"].is_pinned()
    moved = to_device(batch, env.device, channels_last=True)
    assert moved["image"].device == env.device
    assert moved["image"].is_contiguous(memory_format=torch.channels_last)
    assert moved["id"] == batch["id"] and isinstance(moved["id"][0], str)
    torch.testing.assert_close(moved["points"].cpu(), batch["points"])


@pytest.mark.gpu
@gpu
def test_decoder_queries_on_cuda_match_the_cpu():
    from gsdf.eval.reconstruct import decoder_field
    from gsdf.models import build_model

    args = {"image_size": 64, "sdf_latent": 16,
            "decoder": {"dims": [64, 64, 64, 64], "dropout_layers": [0, 1, 2, 3],
                        "norm_layers": [0, 1, 2, 3], "latent_in": [2]}}
    torch.manual_seed(0)
    model = build_model("gf", args).eval()
    item = ContractDataset(n=1, image_size=64)[0]
    points = torch.rand(70000, 3, generator=torch.Generator().manual_seed(1)).numpy() - 0.5
    values = {}
    set_precision("fp32")
    for dev in ("cpu", "cuda"):
        model.to(dev)
        batch = {k: v[None].to(dev) if isinstance(v, torch.Tensor) else [v]
                 for k, v in item.items()}
        with torch.inference_mode():
            state = model.encode(batch)
        # batches of 4096: several decoder calls per field call
        values[dev] = decoder_field(model, state, "hand", torch.device(dev), 4096)(points)
    assert values["cuda"].shape == (70000,) and values["cuda"].dtype.name == "float64"
    scale = max(float(abs(values["cpu"]).max()), 1e-6)
    assert abs(values["cuda"] - values["cpu"]).max() < 1e-4 * scale
