"""The micro pipeline on the synthetic dataset with ``hand.asset: mano`` (a fixture MANO pickle):
the synthetic hands, AlignSDF's MANO branch and gSDF's IK all use MANO, end to end."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from gsdf.testing.raw_datasets import make_mano

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_micro_pipeline_with_mano(tmp_path):
    mano = make_mano(tmp_path / "mano")
    work = tmp_path / "work"
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, work / name)
    cmd = ["snakemake", "--cores", "2", "--config", "preset=micro",
           "experiments=[alignsdf,gsdf]", f"hand={{asset: mano, mano_root: {mano}}}"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    res = work / "results"
    for exp in ("alignsdf", "gsdf"):
        # every stage ran (a 1-epoch micro model need not find a surface: no accuracy here)
        metrics = pd.read_csv(res / f"{exp}_synth" / "metrics.csv")
        assert int(metrics["num_samples"].iloc[0]) == 8
        ckpt = torch.load(res / f"{exp}_synth" / "checkpoint.pt", map_location="cpu",
                          weights_only=True)
        assert ckpt["experiment"]["hand"]["asset"] == "mano"  # trained with the MANO asset
