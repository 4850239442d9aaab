"""Every registered model overfits one fixed batch on the CPU (100 Adam steps, 64-px images).

The SDF targets are half-spaces (``make_batch(planes=True)``) so that 100 steps suffice for
every model; the loss compared is the eval-mode (dropout off) SDF loss before and after training.
"""

from __future__ import annotations

import pytest
import torch
from modelkit import build_small, make_batch

from gsdf.models import MODELS

STEPS = 100


def _loss(model: torch.nn.Module, batch: dict, name: str) -> float:
    model.eval()
    with torch.no_grad():
        terms = model(batch, epoch=10_000)
    model.train()
    if name == "pose":
        return float(terms["joints"])
    return float(terms["hand_sdf"] + terms["obj_sdf"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_overfits_one_batch(name):
    model = build_small(name)
    batch = make_batch(b=2, n=64, frames=3 if name == "gsdf_video" else None, planes=True)
    before = _loss(model, batch, name)
    params = [p for p in model.parameters() if p.requires_grad]
    # fused Adam: ~7x faster than the default on one CPU thread
    opt = torch.optim.Adam(params, lr=3e-3 if name == "pose" else 1e-3, fused=True)
    model.train()
    for _ in range(STEPS):
        terms = model(batch, epoch=10_000)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    after = _loss(model, batch, name)
    print(f"{name}: loss {before:.5f} -> {after:.5f} ({before / after:.1f}x)")
    assert after * 5 <= before, f"{name}: loss fell only {before / after:.1f}x"
