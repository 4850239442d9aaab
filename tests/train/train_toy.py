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
