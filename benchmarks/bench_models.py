"""Training-step time of every registered model on the CPU (forward + backward + fused Adam).

Usage::

    python benchmarks/bench_models.py --image-size 128 --batch 8 --points 1000 --threads 2
    python benchmarks/bench_models.py --image-size 96 --decoder-width 256 --models gf gsdf

Synthetic inputs (no dataset needed); gsdf models get a randomly initialised pose network.
Prints seconds per step and the epoch time for ``--train-images`` images.
"""

from __future__ import annotations

import argparse
import time

import torch

from gsdf.models import build_model, count_parameters


def synthetic_batch(b: int, n: int, size: int, frames: int | None) -> dict:
    f = 480.0 * size / 256
    cam = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]]).repeat(b, 1, 1)
    wrist = torch.tensor([0.0, 0.0, 0.5]).repeat(b, 1)
    joints = wrist[:, None] + 0.04 * torch.randn(b, 21, 3)
    rest = 0.04 * torch.randn(b, 8, 3)
    batch = {
        "image": torch.randn(b, 3, size, size), "cam_intr": cam, "hand_joints_3d": joints,
        "hand_center_3d": wrist, "obj_center_3d": wrist + 0.03, "obj_corners_3d": rest + 0.5,
        "obj_rest_corners_3d": rest, "recon_scale": torch.full((b,), 7.0),
        "points": 0.5 * torch.randn(b, n, 3), "sdf_hand": 0.05 * torch.randn(b, n).clamp(-1, 1),
        "sdf_obj": 0.05 * torch.randn(b, n).clamp(-1, 1),
        "hand_part": torch.randint(-1, 6, (b, n)),
    }
    if frames:
        batch = {k: torch.stack([v] * frames, 1) for k, v in batch.items()}
    return batch


def model_args(name: str, a: argparse.Namespace) -> dict:
    common = {"image_size": a.image_size}
    if name == "pose":
        return dict(common, heatmap_depth=a.heatmap_depth, neck_channels=a.neck_channels)
    args = dict(common, sdf_latent=a.sdf_latent, decoder={"dims": [a.decoder_width] * 4})
    if name != "gf":
        args.update(heatmap_depth=a.heatmap_depth, neck_channels=a.neck_channels)
    if name.startswith("gsdf"):
        args["pixel_channels"] = a.pixel_channels
    if name == "alignsdf":
        args["mano_ncomps"] = 45
    if name == "gsdf_video":
        args["transformer"] = {"dim": 128, "depth": 2, "heads": 4, "dim_head": 32}
    return args


def step(model: torch.nn.Module, batch: dict, opt: torch.optim.Optimizer) -> None:
    terms = model(batch, epoch=10_000)
    opt.zero_grad()
    terms["loss"].backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pose", "gf", "alignsdf", "gsdf"])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--decoder-width", type=int, default=512)
    p.add_argument("--sdf-latent", type=int, default=256)
    p.add_argument("--heatmap-depth", type=int, default=64)
    p.add_argument("--neck-channels", type=int, default=256)
    p.add_argument("--pixel-channels", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--train-images", type=int, default=240)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    pose_args = model_args("pose", a)
    for name in a.models:
        context = {}
        if name.startswith("gsdf"):
            pose = build_model("pose", pose_args)
            context = {"pose_state_dict": pose.state_dict(), "pose_model_args": pose_args}
        model = build_model(name, model_args(name, a), **context)
        frames = 3 if name == "gsdf_video" else None
        batch = synthetic_batch(a.batch, a.points, a.image_size, frames)
        opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-4,
                               fused=True)
        step(model, batch, opt)  # warm-up
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step(model, batch, opt)
        sec = (time.perf_counter() - t0) / a.steps
        epoch = sec * -(-a.train_images // a.batch)
        print(f"{name:11s} {count_parameters(model) / 1e6:6.2f} M params  {sec:6.3f} s/step  "
              f"{epoch:6.1f} s/epoch of {a.train_images} images "
              f"(image {a.image_size}, batch {a.batch}, points {a.points}, "
              f"decoder {a.decoder_width}, threads {a.threads})", flush=True)


if __name__ == "__main__":
    main()
