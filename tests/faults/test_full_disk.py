"""A full filesystem during a run (#25 item 7): the job says where and how much, and nothing
partial is left under a final name. The results folder is put on a small tmpfs (root only;
skipped elsewhere, where tests/utils/test_io.py's simulated ENOSPC covers the logic)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from faultkit import copy_workflow, snakemake, temporaries
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_fails_the_job_with_a_clear_message_and_nothing_partial(small_fs, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    results = small_fs / "results"
    proc = snakemake(work, config=(f"results={results}",), check=False)
    assert proc.returncode != 0  # the checkpoints (over 100 MB) do not fit in 48 MB
    logs = "\n".join(p.read_text(errors="replace") for p in (results / "logs").rglob("*.log"))
    assert f"no space left on {small_fs}" in logs, logs[-3000:]
    assert "MB free, needs ~" in logs
    assert "iostream error" not in logs and "unexpected pos" not in logs
    # nothing partial under a final name: every file left reads back completely
    assert temporaries(results) == []
    assert not list(results.rglob("checkpoint.pt"))
    for path in results.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as z:
                [z[k] for k in z.files]
        elif path.suffix in (".jpg", ".png"):
            with Image.open(path) as img:
                img.load()
        elif path.name.endswith(".last.pt"):
            import torch

            torch.load(path, map_location="cpu", weights_only=True)
