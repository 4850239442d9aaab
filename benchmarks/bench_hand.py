"""Benchmark the hand layer on CPU: forward, inverse kinematics, and the FK -> IK -> FK error.

    python benchmarks/bench_hand.py [--batch 64] [--repeats 20] [--threads 1]

Prints the median wall time per call (milliseconds) for a batch of poses of the procedural hand
(and of MANO if --mano points at a folder holding MANO_RIGHT.pkl), and the round-trip joint error.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gsdf.hand import HandLayer, inverse_kinematics, load_mano, procedural_hand, random_pose


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def bench(name: str, asset, batch: int, repeats: int) -> None:
    layer = HandLayer(asset)
    pose = random_pose(asset, np.random.default_rng(0), batch)
    shape = torch.randn(batch, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = layer(pose, shape)
        fwd = _time(lambda: layer(pose, shape), repeats)
        ik = _time(lambda: inverse_kinematics(layer, target.joints, shape), repeats)
        _, out = inverse_kinematics(layer, target.joints, shape)
    err = (out.joints - target.joints).norm(dim=-1) * 1000.0  # mm
    verr = (out.vertices - target.vertices).norm(dim=-1) * 1000.0
    print(f"{name}: V={asset.num_vertices} batch={batch} threads={torch.get_num_threads()}")
    print(f"  forward            {fwd:8.2f} ms")
    print(f"  IK (incl. forward) {ik:8.2f} ms")
    print(f"  forward + IK       {fwd + ik:8.2f} ms")
    print(f"  FK->IK->FK joint error: mean {err.mean():.2e} mm, max {err.max():.2e} mm")
    print(f"  vertex error (twist lost by IK): mean {verr.mean():.3f} mm, max {verr.max():.3f} mm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mano", default=None, help="folder with MANO_RIGHT.pkl (optional)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    asset = procedural_hand(0)
    print(f"procedural_hand(0) built in {time.perf_counter() - t0:.2f} s")
    bench("procedural", asset, args.batch, args.repeats)
    if args.mano:
        bench("MANO", load_mano(args.mano), args.batch, args.repeats)


if __name__ == "__main__":
    main()
