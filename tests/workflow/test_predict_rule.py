"""Dry runs: the `predict` rule is scheduled for the gsdf experiments only when
predict.images is set, with the folder's photos as inputs and the gsdf predict command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _dry_run(tmp_path: Path, *config: str, experiments: str = "[gf,gsdf]",
             ok: bool = True) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--snakefile",
         str(REPO / "workflow" / "Snakefile"), "--directory", str(REPO), "--config",
         f"results={tmp_path / 'results'}", f"experiments={experiments}", *config],
        capture_output=True, text=True, timeout=300)
    assert (res.returncode == 0) == ok, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def test_predict_jobs_only_with_a_photo_folder(tmp_path):
    assert "rule predict:" not in _dry_run(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.png"):
        Image.new("RGB", (300, 300)).save(photos / name)
    (photos / "notes.txt").write_text("not a photo")
    text = _dry_run(tmp_path, f"predict={{images: {photos}}}")
    assert text.count("rule predict:") == 1
    out = tmp_path / "results" / "gsdf_synth" / "predict"
    assert f"gsdf predict {photos} --checkpoint {tmp_path}/results/gsdf_synth/checkpoint.pt" \
        f" --out {out}" in text
    block = text.split("rule predict:")[1].split("\n\n")[0]
    assert f"{photos}/a.jpg" in block and f"{photos}/b.png" in block
    assert "notes.txt" not in block and "gf_synth" not in block


def test_predicted_hand_frame_is_refused_up_front_for_models_without_pose(tmp_path):
    text = _dry_run(tmp_path, "reconstruct={hand_frame: predicted}", ok=False)
    assert "reconstruct.hand_frame: predicted" in text and "experiments ['gf']" in text
    text = _dry_run(tmp_path, "reconstruct={hand_frame: predicted}", experiments="[gsdf]")
    # the key merges into the preset's reconstruct section (its 64^3 grid stays)
    recon = [line for line in text.splitlines() if "gsdf reconstruct --" in line]
    assert recon and all('"hand_frame":"predicted"' in line and '"resolution":64' in line
                         for line in recon)
