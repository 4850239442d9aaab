"""gSDF video as the reference trains and tests it: the loss of every frame of the clip, any frame
reconstructed with its clip (``frame_pos``), initialised from a trained image gSDF."""

from __future__ import annotations

import pytest
import torch
from modelkit import build_small, make_batch

from gsdf.checkpoint import (
    FORMAT_VERSION,
    KIND,
    CheckpointError,
    save_checkpoint,
)
from gsdf.models.gsdf_video import frame_batch
from gsdf.train.run import init_from_checkpoint


def _clip_batch(seed: int = 0) -> dict:
    return make_batch(b=2, n=64, frames=3, seed=seed)


def test_loss_covers_every_frame():
    torch.manual_seed(0)
    model = build_small("gsdf_video").eval()  # no dropout: the loss is a function of the batch
    batch = _clip_batch()
    base = model(batch, epoch=0)
    for t in range(3):
        changed = dict(batch)
        sdf = batch["sdf_hand"].clone()
        sdf[:, t] = -sdf[:, t]  # other targets for frame t only
        changed["sdf_hand"] = sdf
        assert not torch.isclose(model(changed, epoch=0)["hand_sdf"], base["hand_sdf"])
    # and it is the mean of the per-frame losses, each frame encoded with the clip
    per_frame = []
    for t in range(3):
        pos = torch.full((2,), t, dtype=torch.int64)
        state = model.encode({**batch, "frame_pos": pos})
        per_frame.append(model.frame_losses(state, frame_batch(batch, pos), 0)["hand_sdf"])
    torch.testing.assert_close(base["hand_sdf"], sum(per_frame) / 3)


def test_frame_pos_selects_the_reconstructed_frame():
    model = build_small("gsdf_video", pose_source="ground_truth").eval()
    batch = _clip_batch()
    batch["hand_joints_3d"] = batch["hand_joints_3d"] + torch.arange(3.0)[None, :, None, None]
    for t in range(3):
        state = model.encode({**batch, "frame_pos": torch.tensor([t, t])})
        torch.testing.assert_close(state["joints"], batch["hand_joints_3d"][:, t])
    # per clip: frame 0 of the first, frame 2 of the second
    state = model.encode({**batch, "frame_pos": torch.tensor([0, 2])})
    torch.testing.assert_close(state["joints"][1], batch["hand_joints_3d"][1, 2])
    # without frame_pos: the middle frame
    torch.testing.assert_close(model.encode(batch)["joints"], batch["hand_joints_3d"][:, 1])


def _finished_checkpoint(path, model, name: str) -> None:
    save_checkpoint(path, {
        "format_version": FORMAT_VERSION, "kind": KIND, "model": name, "model_args": {},
        "experiment": {"name": name, "model": name}, "state_dict": model.state_dict(),
        "optimizer": {}, "scheduler": {}, "epoch": 1, "batch_in_epoch": 0, "step": 1,
        "rng": {}, "finished": True})


def test_video_model_starts_from_the_image_gsdf(tmp_path):
    torch.manual_seed(1)
    image_model = build_small("gsdf")
    torch.manual_seed(2)
    video = build_small("gsdf_video")
    path = tmp_path / "gsdf" / "checkpoint.pt"
    _finished_checkpoint(path, image_model, "gsdf")
    transformer_before = {k: v.clone() for k, v in video.transformer.state_dict().items()}
    untouched = init_from_checkpoint(video, path)
    assert untouched and all(k.startswith("transformer.") for k in untouched)
    own = video.state_dict()
    for key, value in image_model.state_dict().items():  # backbone, necks, decoders, pose net
        torch.testing.assert_close(own[key], value)
    for key, value in video.transformer.state_dict().items():
        torch.testing.assert_close(value, transformer_before[key])
    # a model that does not fit is refused, naming the tensors
    _finished_checkpoint(tmp_path / "gf.pt", build_small("gf"), "gf")
    with pytest.raises(CheckpointError, match="does not fit"):
        init_from_checkpoint(video, tmp_path / "gf.pt")
