"""Speed of the synthetic dataset generation (stage ``synth``), rendering and writing included.

Prints samples per second per core (CPU time of this single-threaded process) and the projected
time of 1,000 samples on 2 cores (issue 3 target: under 5 minutes). Usage::

    python benchmarks/bench_synth.py                 # 6 sequences of 8 frames, default config
    python benchmarks/bench_synth.py --sequences 12 --frames 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gsdf.hand import procedural_hand
from gsdf.synth.config import SynthConfig
from gsdf.synth.dataset import write_sample
from gsdf.synth.generate import SequenceGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supersample", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = SynthConfig(seed=args.seed, frames_per_sequence=(args.frames, args.frames),
                      supersample=args.supersample)
    gen = SequenceGenerator(cfg, procedural_hand(0))
    gen.sequence(10_000)  # warm-up (imports, caches)
    gen_cpu = write_cpu = 0.0
    attempts, n = [], 0
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for vid in range(args.sequences):
            c0 = time.process_time()
            samples = gen.sequence(vid)
            c1 = time.process_time()
            for s in samples:
                write_sample(Path(tmp), s, cfg.jpeg_quality)
            c2 = time.process_time()
            gen_cpu += c1 - c0
            write_cpu += c2 - c1
            attempts.append(samples[0].grasp["attempt"] + 1)
            n += len(samples)
    wall = time.perf_counter() - wall0
    cpu = gen_cpu + write_cpu
    rate = n / cpu
    print(f"samples: {n} ({args.sequences} sequences x {args.frames} frames), "
          f"supersample {args.supersample}, mean draws per sequence {np.mean(attempts):.2f}")
    print(f"CPU: {cpu:.1f} s ({gen_cpu / n * 1000:.0f} ms/sample grasp+render, "
          f"{write_cpu / n * 1000:.0f} ms/sample writing); wall {wall:.1f} s")
    print(f"samples/second/core: {rate:.2f}")
    print(f"projected 1,000 samples on 2 cores: {1000 / (2 * rate):.0f} s "
          f"(target < 300 s)")


if __name__ == "__main__":
    main()
