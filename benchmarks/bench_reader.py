"""Reader throughput: samples/s of the SDF training Dataset with 2 DataLoader workers, against
what training consumes (samples/s of a training step of a model on the same batches).

By default it builds a small packed split of toy hand-object samples in a temporary folder (the
full ``sample_sdf`` -> ``pack`` path, 20,000 points per mesh as the default config), or reads an
existing packed split with ``--packed results/synth/train``.

Run::

    python benchmarks/bench_reader.py                        # toy split, image 128, 2000 points
    python benchmarks/bench_reader.py --packed results/synth/train --image-size 256

Training consumption is measured with ``gsdf.models.build_model(--model)`` forward + backward on
the reader's batches (``gf``, the cheapest model, by default: the most demanding consumer);
if the model cannot be built it falls back to a torchvision ResNet-18 step.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import trimesh
from torch.utils.data import DataLoader

from gsdf.data import build_dataset, seed_worker
from gsdf.geometry.mesh_io import save_mesh
from gsdf.paths import SplitLayout
from gsdf.stages import pack, sample_sdf

K = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])


def write_toy_split(split_dir: Path, count: int, seed: int = 0) -> Path:
    """``count`` toy samples (capsule "hand" with parts, box or sphere object, noise JPEG) in
    the canonical layout; returns the one shard manifest."""
    rng = np.random.default_rng(seed)
    layout = SplitLayout(split_dir)
    for kind in ("rgb", "meta"):
        layout.folder(kind).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(count):
        sid = f"{i // 8:06d}_{i % 8:03d}"
        wrist = np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), 0.5])
        hand = trimesh.creation.capsule(height=0.1, radius=0.02, count=(24, 24))
        hand.apply_translation(wrist + (0, 0, 0.05))
        parts = np.clip((hand.vertices[:, 2] - wrist[2]) / 0.02, 0, 5).astype(int)
        obj = (trimesh.creation.icosphere(4, radius=0.03) if i % 2 else
               trimesh.creation.box(extents=(0.05, 0.04, 0.06)))
        obj.apply_translation(wrist + (0.05, 0, 0.05))
        save_mesh(layout.mesh("hand", sid), hand.vertices, hand.faces, vertex_parts=parts)
        save_mesh(layout.mesh("obj", sid), obj.vertices, obj.faces)
        image = cv2.GaussianBlur((rng.random((256, 256, 3)) * 255).astype(np.uint8), (5, 5), 0)
        cv2.imwrite(str(layout.rgb(sid)), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        joints = wrist + rng.normal(0, 0.03, (21, 3))
        joints[0] = wrist
        T = np.eye(4)
        T[:3, 3] = obj.centroid
        corners = trimesh.bounds.corners(obj.bounds)
        meta = {"cam_intr": K.tolist(), "hand_joints_3d": joints.tolist(),
                "hand_pose": [0.0] * 48, "hand_shape": [0.0] * 10, "hand_side": "right",
                "obj_transform": T.tolist(), "obj_center_3d": obj.centroid.tolist(),
                "obj_corners_3d": corners.tolist(),
                "obj_rest_corners_3d": (corners - obj.centroid).tolist(), "video_id": i // 8,
                "frame_idx": i % 8, "bbox": [64.0, 64.0, 128.0, 128.0], "obj_family": "toy"}
        layout.meta(sid).write_text(json.dumps(meta))
        ids.append(sid)
    manifest = layout.shard_manifest(0)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"ids": ids, "skipped": [], "config": {}}))
    return manifest


def build_toy_packed(root: Path, count: int, points_per_mesh: int) -> Path:
    split_dir = root / "datasets" / "toy" / "train"
    manifest = write_toy_split(split_dir, count)
    params = {"sample_sdf": {"points_per_mesh": points_per_mesh},
              "dataset": {"name": "toy", "recon_scale": 7.0}}
    shard = root / "toy" / "sdf" / "train" / "shard_000.npz"
    t = time.perf_counter()
    sample_sdf.run(sample_sdf.Inputs(split_dir, manifest),
                   sample_sdf.Outputs(shard, shard.with_suffix(".csv")), params)
    print(f"sample_sdf: {count} samples in {time.perf_counter() - t:.1f} s")
    packed = root / "toy" / "train"
    t = time.perf_counter()
    pack.run(pack.Inputs(split_dir, (manifest,), (shard,)),
             pack.Outputs(packed / "annotations.json", packed / "rgb.lmdb",
                          packed / "sdf_hand.lmdb", packed / "sdf_obj.lmdb",
                          packed / "skipped.csv"), params)
    print(f"pack: {count} samples in {time.perf_counter() - t:.1f} s")
    return packed


def reader_rate(ds, batch_size: int, workers: int, epochs: int) -> float:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        worker_init_fn=seed_worker, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    next(iter(loader))  # worker start-up is not reading
    n, t = 0, time.perf_counter()
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for batch in loader:
            n += len(batch["id"])
    return n / (time.perf_counter() - t)


def training_rate(batch: dict, model_name: str, image_size: int, steps: int) -> tuple[float, str]:
    """Samples/s of forward + backward + optimiser step on ``batch``."""
    try:
        from gsdf.models import build_model

        model = build_model(model_name, {"image_size": image_size})
        what = f"gsdf.models {model_name}"

        def step():
            return model(batch, 0)["loss"]
    except Exception as err:  # any failure to build: fall back, and say so
        import torchvision

        print(f"build_model({model_name!r}) failed ({type(err).__name__}: {err}); ResNet-18")
        model = torchvision.models.resnet18(num_classes=10)
        what = "torchvision resnet18"

        def step():
            return model(batch["image"]).square().mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    step().backward()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        step().backward()
        opt.step()
    return steps * len(batch["id"]) / (time.perf_counter() - t), what


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packed", help="existing packed split (else a toy one is built)")
    parser.add_argument("--count", type=int, default=48, help="toy samples")
    parser.add_argument("--points-per-mesh", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-points", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="gf")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        packed = Path(args.packed) if args.packed else build_toy_packed(
            Path(tmp), args.count, args.points_per_mesh)
        ds = build_dataset(packed, kind="sdf", train=True, image_size=args.image_size,
                           num_points=args.num_points)
        rate0 = reader_rate(ds, args.batch_size, 0, 1)
        rate = reader_rate(ds, args.batch_size, args.workers, args.epochs)
        batch = next(iter(DataLoader(ds, batch_size=args.batch_size)))
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        consumed, what = training_rate(batch, args.model, args.image_size, args.steps)
    print(f"\nreader, {len(ds)} samples, image {args.image_size}, {args.num_points} points:")
    print(f"  0 workers: {rate0:8.1f} samples/s")
    print(f"  {args.workers} workers: {rate:8.1f} samples/s")
    print(f"training step ({what}, batch {args.batch_size}): {consumed:8.1f} samples/s")
    print(f"reader / training = {rate / consumed:.1f}x (target >= 5x); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
