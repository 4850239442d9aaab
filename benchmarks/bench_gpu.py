"""GPU benchmark (issue #23): training and meshing speed at the paper's settings, side by side.

Prints, in one run:

* the measured matmul peak of the device per precision (fp32, tf32, bf16; random operands);
* training samples/s of pose, gf, alignsdf and gsdf at the paper's input size (256 px) and
  per-GPU batch (64, pose 32) per ``train.precision``, with the achieved fraction of the matmul
  peak of that precision (FLOPs of a step counted by ``FlopCounterMode``, over the median step
  time), the data-wait share (time blocked on the DataLoader over the step time), and the loss
  of the same short run in each precision (same initial weights and batches);
* ``reconstruct`` seconds per sample at 128^3, ``dense`` (the reference's two dense grids) vs
  ``coarse_to_fine`` (its bookkeeping on the device, ``coarse_to_fine``, and in numpy on the
  CPU as before, ``coarse_to_fine_numpy``), with the time in decoder queries and in marching
  cubes, the Chamfer agreement of the dense and coarse-to-fine meshes and whether the two
  bookkeeping backends gave identical mesh files;
* a PyTorch profiler table of gsdf's training step (top operators by device time).

A step is :meth:`gsdf.train.loop.Trainer.step` (what ``gsdf train`` runs), fed by the loop's own
DataLoader (``make_loader``: seeded sampler, pinned memory, workers from the job's CPUs).
With ``--data`` (a packed split) batches are real LMDB reads, JPEG decodes and augmentations,
the split repeated as often as the steps need; without it, in-memory random samples.

Meshing (``bench_gpu_meshing.py``) uses the real gsdf model (random weights, paper settings)
for every decoder query, so the query cost is the real one, while the field values come from
an analytic hand-object scene (``benchmarks/bench_reconstruct.py``'s, computed on the device)
so that the zero level set is realistic; the Chamfer agreement compares the modes on that
field.

Without a GPU it runs on the CPU (a dry run); ``GSDF_BENCH_TINY=1`` shrinks every size. Results
go to ``$OUT/bench_gpu.{json,md}`` and ``$OUT/profile_gsdf.txt`` when ``OUT`` is set.

Usage::

    python benchmarks/bench_gpu.py --data .gpucheck/results/synth/train \\
        --test-data .gpucheck/results/synth/test
    GSDF_BENCH_TINY=1 python benchmarks/bench_gpu.py --steps 2   # CPU dry run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from bench_gpu_meshing import bench_meshing, sync
from bench_train import FALLBACK, RandomContractDataset, build
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode

from gsdf.config import ConfigError, deep_merge, load_config, resolve_experiment
from gsdf.train import DistEnv, TrainOutputs, TrainRuntime
from gsdf.train.config import train_config
from gsdf.train.distributed import make_loader, seed_everything
from gsdf.train.loop import PreemptionFlag, Trainer, set_precision
from gsdf.train.run import dataset_options

TINY = os.environ.get("GSDF_BENCH_TINY", "") not in ("", "0")
MODELS = ("pose", "gf", "alignsdf", "gsdf")
PRECISIONS = ("fp32", "tf32", "bf16")
LATE_EPOCH = 10**6  # every loss term on (past sdf_add_epoch)


# ---------------------------------------------------------------------------------------------
# Device, peaks
# ---------------------------------------------------------------------------------------------


def device() -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(0)
        return torch.device("cuda", 0)
    return torch.device("cpu")


def matmul_peak(dev: torch.device, precision: str, n: int, reps: int = 10) -> float:
    """Mean TFLOP/s of ``reps`` ``n x n x n`` products on random operands (after 3 warm-ups)."""
    set_precision(precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    sync(dev)
    set_precision("fp32")
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


class Repeat(Dataset):
    """``dataset`` repeated to ``n`` items (index modulo its length)."""

    def __init__(self, dataset: Dataset, n: int):
        self.dataset, self.n = dataset, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]  # type: ignore[arg-type]


def paper_experiment(name: str) -> tuple[dict, dict]:
    """(resolved experiment, global train defaults) at the paper's settings: the ``paper``
    preset if there is one, else the experiment file without a preset's overrides."""
    try:
        config = load_config(overrides={"preset": "paper"})
    except ConfigError:
        config = dict(load_config(), experiment_overrides={})
    experiment = _no_pretrained(resolve_experiment(config, name))
    if TINY:
        tiny = deep_merge(FALLBACK[name], {"model_args": {"image_size": 128}})
        experiment = deep_merge(experiment, {**tiny, "train": {
            "batch_size": 4, "global_batch_size": None, "num_points": 128}})
    return experiment, dict(config.get("train") or {})


def _no_pretrained(args: Any) -> Any:
    """``backbone_weights: null`` everywhere (no download; the speed is the same)."""
    if isinstance(args, dict):
        return {k: None if k == "backbone_weights" else _no_pretrained(v)
                for k, v in args.items()}
    return args


def make_dataset(experiment: dict, cfg: Any, data: Path | None, need: int) -> Dataset:
    opts = dataset_options(experiment, cfg)
    if data is None:
        return RandomContractDataset(need, opts["image_size"], cfg.num_points)
    from gsdf.data import build_dataset

    return Repeat(build_dataset(data, **opts), need)


def count_flops(trainer: Trainer, batch: dict) -> float:
    """FLOPs of one forward + backward (the count does not depend on the precision)."""
    from gsdf.train.distributed import to_device

    batch = to_device(batch, trainer.env.device)
    with FlopCounterMode(display=False) as counter:
        trainer.net(batch, LATE_EPOCH)["loss"].backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def bench_training(name: str, precision: str, data: Path | None, steps: int, warmup: int,
                   dev: torch.device, runtime: TrainRuntime, flops: dict[str, float],
                   profile_to: Path | None = None) -> dict:
    """One model at one precision: ``warmup`` untimed then ``steps`` timed training steps."""
    experiment, defaults = paper_experiment(name)
    cfg = dataclasses.replace(train_config(experiment, defaults), precision=precision)
    # the reference's per-GPU batch: its global batch over its 4 GPUs
    batch_size = cfg.per_process_batch(4) if cfg.global_batch_size else cfg.batch_size
    cfg = dataclasses.replace(cfg, batch_size=batch_size, global_batch_size=None)
    seed_everything(0)
    model = build(name, experiment)
    dataset = make_dataset(experiment, cfg, data, (steps + warmup + 6) * batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, dataset, cfg, runtime, TrainOutputs.in_dir(tmp),
                          experiment=experiment, env=DistEnv(device=dev), dataset_info={},
                          context={}, progress=False)
    loader = make_loader(trainer.seeded, trainer.sampler, trainer.env, 0, batch_size,
                         trainer.num_workers)
    it = iter(loader)
    # Counted in every run (not cached) so that each precision's run consumes the same batches
    # and random numbers: the loss columns then compare the precisions on one trajectory.
    flops[name] = count_flops(trainer, next(it))
    set_precision(precision)
    flag = PreemptionFlag(enabled=False)
    waits, totals, losses = [], [], []
    for k in range(warmup + steps):
        if k == warmup:
            sync(dev)
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        values, _ = trainer.step(batch, LATE_EPOCH, flag)  # ends with one host sync
        t2 = time.perf_counter()
        losses.append(values["loss"])
        if k >= warmup:
            waits.append(t1 - t0)
            totals.append(t2 - t0)
    if profile_to is not None:
        profile_steps(trainer, it, flag, dev, profile_to)
    del it, loader
    step = float(np.mean(totals))
    compute = float(np.median(np.subtract(totals, waits)))
    return {"model": name, "precision": precision, "batch": batch_size,
            "image": dataset_options(experiment, cfg)["image_size"], "points": cfg.num_points,
            "workers": trainer.num_workers,
            "samples_per_s": batch_size / step, "step_ms": 1e3 * step,
            "data_wait_share": float(np.sum(waits) / np.sum(totals)),
            "gflop_per_sample": flops[name] / batch_size / 1e9,
            "tflops": flops[name] / compute / 1e12,
            "loss_first": losses[0], "loss_last": float(np.mean(losses[-3:])),
            "losses": losses}


def profile_steps(trainer: Trainer, it: Any, flag: PreemptionFlag, dev: torch.device,
                  path: Path, steps: int = 3) -> None:
    """PyTorch profiler over ``steps`` training steps: top operators by device time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.step(next(it), LATE_EPOCH, flag)
        sync(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=25)
    path.write_text(table)
    print("\n".join(table.splitlines()[:14]), flush=True)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def environment(dev: torch.device) -> dict:
    info = {"torch": torch.__version__, "device": str(dev), "cpus": os.cpu_count(),
            "python": sys.version.split()[0]}
    if dev.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(dev), cuda=torch.version.cuda,
                    capability=".".join(map(str, torch.cuda.get_device_capability(dev))))
    return info


def write_outputs(result: dict, table: pd.DataFrame, mesh: dict | None) -> str:
    lines = [f"GPU: {result['env'].get('gpu', 'none (CPU)')}, torch {result['env']['torch']}, "
             f"CUDA {result['env'].get('cuda')}, {result['env']['cpus']} CPUs", "",
             "matmul peak (TFLOP/s): " + ", ".join(f"{k} {v:.3g}" for k, v in
                                                   result["peaks"].items()), ""]
    cols = ["model", "precision", "batch", "image", "points", "workers", "samples_per_s",
            "step_ms", "data_wait_share", "gflop_per_sample", "tflops", "peak_fraction",
            "loss_first", "loss_last"]
    lines.append(table[[c for c in cols if c in table]].to_markdown(index=False,
                                                                    floatfmt=".3g"))
    if mesh:
        lines += ["", f"reconstruct at {mesh['resolution']}^3 (gsdf decoders, analytic field), "
                  f"{mesh['samples']} samples; Chamfer dense vs coarse-to-fine: mean "
                  f"{mesh['chamfer_mm_mean']:.4f} mm, max {mesh['chamfer_mm_max']:.4f} mm; "
                  "coarse-to-fine meshes identical with the bookkeeping on the device and in "
                  f"numpy: {mesh['identical_backends']}", "",
                  pd.DataFrame(mesh["modes"]).T.to_markdown(floatfmt=".3g")]
    text = "\n".join(lines)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "bench_gpu.md").write_text(text + "\n")
        (Path(out) / "bench_gpu.json").write_text(json.dumps(result, indent=1, default=str))
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--data", type=Path, default=None, help="packed train split")
    parser.add_argument("--test-data", type=Path, default=None, help="packed test split")
    parser.add_argument("--steps", type=int, default=2 if TINY else 15, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1 if TINY else 3, help="untimed steps")
    parser.add_argument("--mesh-samples", type=int, default=1 if TINY else 3)
    parser.add_argument("--resolution", type=int, default=32 if TINY else 128,
                        help="meshing grid nodes per axis (0: no meshing benchmark)")
    parser.add_argument("--extras", nargs="*", default=[], choices=["channels_last", "compile"],
                        help="also time gsdf bf16 with these runtime options")
    parser.add_argument("--budget-s", type=float, default=330.0,
                        help="skip the remaining optional parts past this many seconds")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    dev = device()
    cpus = len(os.sched_getaffinity(0))
    runtime = TrainRuntime(cpus=cpus, num_workers=0 if TINY else None)
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    n = 256 if TINY else 8192
    peaks = {p: matmul_peak(dev, p, n) for p in PRECISIONS}
    result: dict = {"env": environment(dev), "peaks": peaks, "training": [], "args": vars(args)}
    print(json.dumps(result["env"]), "\nmatmul peaks TFLOP/s:", peaks, flush=True)
    mesh = None
    if args.resolution > 0:
        mesh = bench_meshing(args.test_data, args.mesh_samples, dev, args.resolution,
                             *paper_experiment("gsdf"))
        result["meshing"] = mesh
        print(json.dumps(mesh), flush=True)
    flops: dict[str, float] = {}
    for name in args.models:
        for precision in args.precisions:
            profile = (out_dir / "profile_gsdf.txt" if out_dir and name == "gsdf"
                       and precision == args.precisions[-1] else None)
            row = bench_training(name, precision, args.data, args.steps, args.warmup, dev,
                                 runtime, flops, profile)
            row["peak_fraction"] = row["tflops"] / peaks[precision]
            result["training"].append(row)
            print(f"{name} {precision}: {row['samples_per_s']:.1f} samples/s, "
                  f"{row['tflops']:.1f} TFLOP/s ({100 * row['peak_fraction']:.1f}% of "
                  f"{precision} matmul), data wait {100 * row['data_wait_share']:.1f}%, "
                  f"loss {row['loss_first']:.4g} -> {row['loss_last']:.4g}", flush=True)
            write_outputs(result, pd.DataFrame(result["training"]), mesh)  # partial results
    for extra in args.extras:
        if time.perf_counter() - start > args.budget_s * (0.5 if extra == "compile" else 0.8):
            print(f"skipping {extra}: past the time budget", flush=True)
            continue
        rt = dataclasses.replace(runtime, **{extra: True})
        try:
            row = bench_training("gsdf", "bf16", args.data, args.steps, args.warmup + 2, dev,
                                 rt, flops)
        except Exception as err:  # an optional variant: report it, keep the other results
            print(f"gsdf bf16+{extra} failed: {type(err).__name__}: {err}", flush=True)
            continue
        row["precision"] = f"bf16+{extra}"
        row["peak_fraction"] = row["tflops"] / peaks["bf16"]
        result["training"].append(row)
        print(f"gsdf bf16+{extra}: {row['samples_per_s']:.1f} samples/s", flush=True)
    table = pd.DataFrame(result["training"])
    result["seconds"] = time.perf_counter() - start
    print("\n" + write_outputs(result, table, mesh), flush=True)


if __name__ == "__main__":
    main()
