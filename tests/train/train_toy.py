"""A tiny model and in-memory dataset with the contracts of gsdf.models / gsdf.data, for the
training-loop tests (no packed data needed). Not a test module."""

from __future__ import annotations

import os
import signal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


class ToyDataset(Dataset):
    """``n`` dict samples: ``id``, ``image`` (3,16,16), ``points`` (P,3), ``sdf_hand`` (P,).

    ``__getitem__`` adds noise from numpy's *global* RNG, so the loop's per-sample reseeding is
    what makes the samples reproducible (the way an augmenting dataset behaves).
    """

    def __init__(self, n: int = 24, num_points: int = 32, seed: int = 0):
        g = np.random.default_rng(seed)
        self.images = g.normal(size=(n, 3, 16, 16)).astype(np.float32)
        self.points = g.uniform(-1, 1, size=(n, num_points, 3)).astype(np.float32)
        centre = self.images.mean(axis=(2, 3))[:, None, :] * 0.3  # (n,1,3)
        self.sdf = (np.linalg.norm(self.points - centre, axis=-1) - 0.5).astype(np.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        noise = np.random.normal(scale=0.01, size=self.points[i].shape).astype(np.float32)
        return {"id": f"{i:06d}_000", "image": torch.from_numpy(self.images[i]),
                "points": torch.from_numpy(self.points[i] + noise),
                "sdf_hand": torch.from_numpy(self.sdf[i])}


class ToyModel(nn.Module):
    """Conv + BatchNorm + dropout image encoder and a point MLP; ``model(batch, epoch)``.

    Args:
        width: hidden width.
        nan_at_call: return a NaN loss at this forward call (1-based), for the NaN test.
        signal_at_call: send SIGTERM to this process during this forward call.
    """

    def __init__(self, width: int = 16, nan_at_call: int | None = None,
                 signal_at_call: int | None = None):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1),
                                 nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dec = nn.Sequential(nn.Linear(width + 3, width), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(width, 1))
        self.calls = 0
        self.nan_at_call = nan_at_call
        self.signal_at_call = signal_at_call

    def forward(self, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.signal_at_call == self.calls:
            os.kill(os.getpid(), signal.SIGTERM)
        feat = self.enc(batch["image"])  # (B, W)
        pts = batch["points"]  # (B, N, 3)
        x = torch.cat([feat[:, None].expand(-1, pts.shape[1], -1), pts], dim=-1)
        pred = self.dec(x).squeeze(-1)  # (B, N)
        l1 = (pred - batch["sdf_hand"]).abs().mean()
        reg = 1e-3 * feat.pow(2).mean()
        if self.nan_at_call == self.calls:
            l1 = l1 * float("nan")
        return {"loss": l1 + reg, "sdf_hand": l1, "reg": reg}


def toy_experiment(**model_args) -> dict:
    return {"name": "toy", "model": "toy", "model_args": dict(model_args)}


def build_toy(name: str, model_args: dict, **context) -> ToyModel:
    """Stand-in for ``gsdf.models.build_model``."""
    if name != "toy":
        raise KeyError(name)
    return ToyModel(**{k: v for k, v in model_args.items() if k == "width"})


class ContractDataset(Dataset):
    """Random samples with every key of the training batch contract (docs/architecture.md),
    for running the real models without packed data. Deterministic per index.

    Args:
        n: samples.
        image_size: image side (pixels).
        num_points: SDF points per sample (first half hand set, second half object set).
        frames: 0 for single images, else a time axis of this length (video model).
    """

    def __init__(self, n: int = 8, image_size: int = 64, num_points: int = 64, frames: int = 0,
                 seed: int = 0):
        self.n, self.size, self.num_points, self.frames, self.seed = (
            n, image_size, num_points, frames, seed)

    def __len__(self) -> int:
        return self.n

    def _frame(self, g: np.random.Generator) -> dict:
        s = self.size
        f = 480.0 * s / 256
        wrist = np.array([0.0, 0.0, 0.5]) + g.normal(scale=0.02, size=3)
        joints = wrist + g.normal(scale=0.04, size=(21, 3))
        joints[0] = wrist
        obj_center = wrist + np.array([0.03, 0.02, 0.02]) + g.normal(scale=0.01, size=3)
        corners = obj_center + g.normal(scale=0.03, size=(8, 3))
        transform = np.eye(4)
        transform[:3, 3] = obj_center

        def t(x, dtype=torch.float32):
            return torch.as_tensor(np.asarray(x), dtype=dtype)

        return {
            "image": t(g.normal(size=(3, s, s))),
            "cam_intr": t([[f, 0, s / 2], [0, f, s / 2], [0, 0, 1]]),
            "hand_joints_3d": t(joints), "hand_center_3d": t(wrist),
            "hand_pose": t(g.normal(scale=0.2, size=48)), "hand_shape": t(g.normal(size=10)),
            "obj_center_3d": t(obj_center), "obj_corners_3d": t(corners),
            "obj_rest_corners_3d": t(corners - obj_center), "obj_transform": t(transform),
            "recon_scale": t(7.0),
        }

    def __getitem__(self, i: int) -> dict:
        g = np.random.default_rng([self.seed, i])
        if self.frames:
            frames = [self._frame(g) for _ in range(self.frames)]
            item = {k: torch.stack([fr[k] for fr in frames]) for k in frames[0]}
            item["recon_scale"] = frames[0]["recon_scale"]
        else:
            item = self._frame(g)
        n = self.num_points
        pts = g.uniform(-0.6, 0.6, size=(n, 3))
        item["points"] = torch.as_tensor(pts, dtype=torch.float32)
        item["sdf_hand"] = torch.as_tensor(np.clip(np.linalg.norm(pts, axis=1) - 0.3,
                                                   -0.05, 0.05), dtype=torch.float32)
        item["sdf_obj"] = torch.as_tensor(np.clip(np.linalg.norm(pts - 0.2, axis=1) - 0.2,
                                                  -0.05, 0.05), dtype=torch.float32)
        item["hand_part"] = torch.as_tensor(g.integers(0, 6, size=n), dtype=torch.int64)
        item["id"] = f"{i:06d}_000"
        return item
