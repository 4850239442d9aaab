"""Error of the root solver alone (gsdf/hand/root.py) on a canonical split's annotations.

The 2D joints are the annotated joints projected with the annotated camera and the depth
offsets the annotated ones (what a perfect pose network gives), optionally with Gaussian noise;
the remaining wrist error comes from the hand model's size (the monocular scale ambiguity) and
the noise. ``--method size`` is the alternative the solver does not use: the depth at which the
lifted skeleton has the model's total bone length, at fixed metric depth offsets. Run from the
folder holding ``results/``::

    python scripts/root_error.py results/datasets/synth/test --noise-px 0 2 --noise-m 0 0.01
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from gsdf.hand.root import (
    DEPTH_RANGE,
    RootSolveError,
    bone_lengths,
    lift,
    model_bone_lengths,
    project,
    root_from_2p5d,
)
from gsdf.models.hand_model import LayerHolder


def size_fit_root(uv: np.ndarray, dz: np.ndarray, k: np.ndarray, size: float) -> np.ndarray:
    """Wrist (3,) at the depth where the lifted skeleton's total bone length is ``size``."""
    def excess(z: float) -> float:
        return float(bone_lengths(lift(uv, dz, k, z)).sum()) - size

    grid = np.geomspace(*DEPTH_RANGE, 64)
    values = np.array([excess(z) for z in grid])
    start = int(np.argmin(values))
    above = np.flatnonzero(values[start:] > 0)
    if values[start] >= 0 or len(above) == 0:
        raise RootSolveError("no depth gives the model's size")
    i = start + int(above[0])
    return lift(uv, dz, k, brentq(excess, grid[i - 1], grid[i]))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("split_dirs", nargs="+", help="canonical split folders (holding meta/)")
    p.add_argument("--noise-px", type=float, nargs="+", default=[0.0],
                   help="standard deviations of the pixel noise on the 2D joints")
    p.add_argument("--noise-m", type=float, nargs="+", default=[0.0],
                   help="standard deviations of the noise on the depth offsets, metres")
    p.add_argument("--method", choices=["proportions", "size"], default="proportions")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    metas = [json.loads(f.read_text()) for d in args.split_dirs
             for f in sorted(Path(d, "meta").glob("*.json"))]
    bones = model_bone_lengths(LayerHolder(None).layer)
    print(f"{len(metas)} samples, hand model size {bones.sum():.3f} m, method {args.method}")
    for sigma_px in args.noise_px:
        for sigma_m in args.noise_m:
            rng = np.random.default_rng(args.seed)
            err, rel_depth, failed = [], [], 0
            for m in metas:
                joints, k = np.asarray(m["hand_joints_3d"]), np.asarray(m["cam_intr"])
                uv = project(joints, k) + rng.normal(0.0, sigma_px, (len(joints), 2))
                dz = joints[:, 2] + rng.normal(0.0, sigma_m, len(joints))
                try:
                    root = (root_from_2p5d(uv, dz, k, bones).root if args.method == "proportions"
                            else size_fit_root(uv, dz, k, float(bones.sum())))
                except RootSolveError:
                    failed += 1
                    continue
                err.append(np.linalg.norm(root - joints[0]) * 100)
                rel_depth.append(abs(root[2] - joints[0, 2]) / joints[0, 2] * 100)
            err = np.asarray(err)
            print(f"noise {sigma_px:g} px, {sigma_m * 100:g} cm: root error cm median "
                  f"{np.median(err):.2f} mean {err.mean():.2f} 90% {np.percentile(err, 90):.2f};"
                  f" depth error {np.median(rel_depth):.1f}% of the distance (median); "
                  f"{failed} unsolved")


if __name__ == "__main__":
    main()
