"""Training speed of every model: samples/s, achieved GFLOP/s of a step next to the machine's
fp32 matmul GFLOP/s, and the share of step time spent waiting for data.

A step is what :func:`gsdf.train.fit` does: next batch from the loop's own DataLoader
(``SeededDataset`` + ``DistributedSampler`` + workers), forward, backward, Adam step. FLOPs of a
step (forward + backward) are counted with ``torch.utils.flop_counter.FlopCounterMode``; the
optimizer's element-wise work is not counted; GFLOP/s use the median compute time of the timed
steps (samples/s and step time the mean). The peak is the best of several square fp32
matmuls with the same thread count, measured just before and just after each model's steps.

Settings per model come from the resolved experiment (``config/experiments/{model}.yaml`` +
``--preset``); with ``--cpu-settings`` (or where an experiment file does not exist) the CPU
overrides of :data:`FALLBACK` are merged over it (the table says which): what a synthetic
2-core-CPU preset should give each model. Data: ``--data results/synth/train`` (a
packed split, real LMDB reads and augmentation); without it, in-memory random samples with the
batch contract's keys (then the data wait measures the loader machinery only).

Usage::

    python benchmarks/bench_train.py --threads 2 --steps 8 --cpu-settings
    python benchmarks/bench_train.py --models gf gsdf --data results/synth/train --csv out.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torch.utils.flop_counter import FlopCounterMode

from gsdf.config import ConfigError, deep_merge, load_config, resolve_experiment
from gsdf.train.config import train_config
from gsdf.train.distributed import (
    DistEnv,
    SeededDataset,
    make_loader,
    make_sampler,
    seed_everything,
    to_device,
)
from gsdf.train.loop import make_optimizer
from gsdf.train.run import data_kind, dataset_options

MODELS = ("pose", "gf", "alignsdf", "gsdf", "gsdf_video")

# CPU overrides (--cpu-settings, or when config/experiments/{model}.yaml is missing): what the
# default preset should give a 2-core CPU: 128 px images, 512 points, decoders of 4 x 256,
# 128-d image features.
_DECODER = {"dims": [256, 256, 256, 256]}
_POSE = {"image_size": 128, "neck_channels": 128, "heatmap_depth": 32}
_SDF = {"image_size": 128, "sdf_latent": 128, "decoder": _DECODER}
_HEATMAP = {"neck_channels": 128, "heatmap_depth": 32}
FALLBACK = {
    "pose": {"model": "pose", "model_args": _POSE},
    "gf": {"model": "gf", "model_args": _SDF},
    "alignsdf": {"model": "alignsdf", "model_args": {**_SDF, **_HEATMAP}},
    "gsdf": {"model": "gsdf", "model_args": {**_SDF, **_HEATMAP, "pixel_channels": 128,
                                             "pose": _POSE}},
    "gsdf_video": {"model": "gsdf_video", "model_args": {
        **_SDF, **_HEATMAP, "pixel_channels": 128, "pose": _POSE, "num_frames": 3}},
}
FALLBACK_TRAIN = {"batch_size": 8, "num_points": 512}
WORKERS = 1  # DataLoader workers (a runtime setting: --workers)


class RandomContractDataset(Dataset):
    """In-memory samples with the training batch contract's keys (docs/architecture.md)."""

    def __init__(self, n: int, image_size: int, num_points: int, frames: int = 0):
        self.n, self.s, self.p, self.frames = n, image_size, num_points, frames

    def __len__(self) -> int:
        return self.n

    def _frame(self, g: np.random.Generator) -> dict:
        s, f = self.s, 480.0 * self.s / 256
        wrist = np.array([0.0, 0.0, 0.5]) + g.normal(scale=0.02, size=3)
        joints = wrist + g.normal(scale=0.04, size=(21, 3))
        joints[0] = wrist
        centre = wrist + [0.03, 0.02, 0.02]
        corners = centre + g.normal(scale=0.03, size=(8, 3))
        tf = np.eye(4)
        tf[:3, 3] = centre
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        return {"image": t(g.normal(size=(3, s, s))),
                "cam_intr": t([[f, 0, s / 2], [0, f, s / 2], [0, 0, 1]]),
                "hand_joints_3d": t(joints), "hand_center_3d": t(wrist),
                "hand_pose": t(g.normal(scale=0.2, size=48)), "hand_shape": t(np.zeros(10)),
                "obj_center_3d": t(centre), "obj_corners_3d": t(corners),
                "obj_rest_corners_3d": t(corners - centre), "obj_transform": t(tf),
                "recon_scale": t(7.0)}

    def __getitem__(self, i: int) -> dict:
        g = np.random.default_rng(i)
        if self.frames:
            frames = [self._frame(g) for _ in range(self.frames)]
            item = {k: torch.stack([fr[k] for fr in frames]) for k in frames[0]}
            item["recon_scale"] = frames[0]["recon_scale"]
        else:
            item = self._frame(g)
        pts = g.uniform(-0.6, 0.6, size=(self.p, 3))
        item["points"] = torch.as_tensor(pts, dtype=torch.float32)
        item["sdf_hand"] = torch.as_tensor(np.clip(np.linalg.norm(pts, axis=1) - 0.3, -.05, .05),
                                           dtype=torch.float32)
        item["sdf_obj"] = torch.as_tensor(
            np.clip(np.linalg.norm(pts - 0.2, axis=1) - 0.2, -.05, .05), dtype=torch.float32)
        item["hand_part"] = torch.as_tensor(g.integers(0, 6, size=self.p))
        item["id"] = f"{i:06d}_000"
        return item


def matmul_gflops(n: int = 1024, reps: int = 8) -> float:
    """Best fp32 ``n x n`` matmul throughput (GFLOP/s) with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def experiment_for(name: str, config: dict, cpu: bool) -> tuple[dict, str]:
    """The resolved experiment of model ``name`` and where its settings came from."""
    try:
        exp, source = resolve_experiment(config, name), f"experiments/{name}.yaml"
    except ConfigError:
        exp, source, cpu = {"name": name, "model": name}, "", True
    if cpu:
        exp = deep_merge(exp, {**FALLBACK[name], "train": FALLBACK_TRAIN})
        source = (source + " + " if source else "") + "bench cpu settings"
    return exp, source


def build(name: str, experiment: dict):
    from gsdf.models import build_model

    args = experiment.get("model_args") or {}
    context = {}
    if name in ("gsdf", "gsdf_video"):  # a (random) pose network stands in for train_pose
        pose = build_model("pose", args.get("pose") or {})
        context = {"pose_state_dict": pose.state_dict(), "pose_model_args": args.get("pose")}
    return build_model(name, args, **context)


def bench_model(name: str, config: dict, data: Path | None, steps: int, warmup: int,
                cpu: bool = False) -> dict:
    experiment, source = experiment_for(name, config, cpu)
    cfg = train_config(experiment, config.get("train"))
    seed_everything(0)
    model = build(name, experiment)
    model.train()
    opts = dataset_options(experiment, cfg)
    if data is not None:
        from gsdf.data import build_dataset

        dataset = build_dataset(data, **opts)
    else:
        frames = opts["frames"] if opts["kind"] == "video" else 0
        need = (steps + warmup + 1) * cfg.batch_size
        dataset = RandomContractDataset(max(need, 4 * cfg.batch_size), opts["image_size"],
                                        cfg.num_points, frames)
    env = DistEnv()
    seeded = SeededDataset(dataset, cfg.seed)
    sampler = make_sampler(seeded, env, cfg.seed, cfg.batch_size)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg,
                               torch.device("cpu"))
    wait, compute = [], []
    flops = 0
    epoch = 0
    it = iter(make_loader(seeded, sampler, env, epoch, cfg.batch_size, WORKERS))
    for k in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            epoch += 1
            it = iter(make_loader(seeded, sampler, env, epoch, cfg.batch_size, WORKERS))
            batch = next(it)
        t1 = time.perf_counter()
        batch = to_device(batch, env.device)
        if k == warmup - 1 or (warmup == 0 and k == 0):
            with FlopCounterMode(display=False) as counter:
                loss = model(batch, 10**6)["loss"]  # late epoch: every loss term is on
                loss.backward()
            flops = counter.get_total_flops()
            optimizer.zero_grad(set_to_none=True)
            continue
        optimizer.zero_grad(set_to_none=True)
        model(batch, 10**6)["loss"].backward()
        optimizer.step()
        t2 = time.perf_counter()
        if k >= warmup:
            wait.append(t1 - t0)
            compute.append(t2 - t1)
    step = float(np.mean(wait) + np.mean(compute))
    return {"model": name, "settings": source, "kind": data_kind(name),
            "batch": cfg.batch_size, "image": opts["image_size"], "points": cfg.num_points,
            "workers": WORKERS, "samples_per_s": cfg.batch_size / step,
            "step_ms": 1e3 * step, "gflop_per_step": flops / 1e9,
            # The median step: on a shared 2-core machine a few steps are slowed by other
            # processes; the mean is kept in samples_per_s and step_ms.
            "gflops": flops / 1e9 / float(np.median(compute)),
            "data_wait_share": float(np.sum(wait) / (np.sum(wait) + np.sum(compute)))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--preset", default="default", help="config preset (config/presets/)")
    parser.add_argument("--data", type=Path, default=None,
                        help="packed train split (results/synth/train); default: in-memory")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (1 counts FLOPs)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--cpu-settings", action="store_true",
                        help="merge the 2-core CPU settings of FALLBACK over the experiments")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    parser.add_argument("--workers", type=int, default=WORKERS, help="DataLoader workers")
    args = parser.parse_args(argv)
    globals()["WORKERS"] = args.workers
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(overrides={"preset": args.preset})
    rows = []
    for name in args.models:
        # The peak is measured next to each model (this VM's throughput drifts by +-20%
        # over minutes): the best of the matmuls just before and just after its steps.
        before = matmul_gflops()
        row = bench_model(name, config, args.data, args.steps, max(args.warmup, 1),
                          args.cpu_settings)
        peak = max(before, matmul_gflops())
        row["matmul_gflops"] = peak
        row["share_of_matmul"] = row["gflops"] / peak
        rows.append(row)
        print(f"{name}: {row['samples_per_s']:.2f} samples/s, {row['gflops']:.1f} GFLOP/s "
              f"({100 * row['share_of_matmul']:.0f}% of matmul {peak:.1f}), data wait "
              f"{100 * row['data_wait_share']:.1f}%", flush=True)
    table = pd.DataFrame(rows)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul peak "
          f"measured beside each model, data: {args.data or 'in-memory random samples'}\n")
    print(table.to_markdown(index=False, floatfmt=".3g") if _has_tabulate()
          else table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
