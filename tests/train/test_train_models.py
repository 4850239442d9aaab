"""The real models through the loop: pose -> frozen into gSDF -> finished checkpoints that
load_trained_model rebuilds exactly (the reconstruction stage's entry point)."""

from __future__ import annotations

import pytest
import torch
from train_toy import ContractDataset

pytest.importorskip("gsdf.models.registry")

from gsdf.models import build_model  # noqa: E402
from gsdf.train import (  # noqa: E402
    CheckpointError,
    DistEnv,
    TrainConfig,
    TrainOutputs,
    fit,
    load_trained_model,
    read_checkpoint,
)

SIZE = 64
DECODER = {"dims": [64, 64, 64, 64], "dropout_layers": [0, 1, 2, 3], "norm_layers": [0, 1, 2, 3],
           "latent_in": [2]}
POSE = {"image_size": SIZE, "neck_channels": 32, "heatmap_depth": 16}
ARGS = {
    "pose": POSE,
    "gf": {"image_size": SIZE, "sdf_latent": 16, "decoder": DECODER},
    "gsdf": {"image_size": SIZE, "sdf_latent": 16, "decoder": DECODER, "pixel_channels": 32,
             "neck_channels": 32, "heatmap_depth": 16, "hand_point_latent": 6,
             "obj_point_latent": 6, "pose": POSE},
}
CFG = TrainConfig(epochs=1, batch_size=2, lr=1e-3, lr_decay_epochs=(), num_points=64,
                  seed=0)


def _train(name: str, out_dir, **context):
    torch.manual_seed(0)
    model = build_model(name, ARGS[name], **context)
    exp = {"name": name, "model": name, "model_args": ARGS[name]}
    out = TrainOutputs.in_dir(out_dir)
    rows = fit(model, ContractDataset(n=4, image_size=SIZE, num_points=64), CFG, out,
               experiment=exp, env=DistEnv(), dataset_info={"name": "toy", "recon_scale": 7.0},
               context={k: str(v) for k, v in context.items()}, progress=False)
    return model, exp, out, rows


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sb = b.state_dict()
    for k, v in a.state_dict().items():
        assert torch.equal(v, sb[k]), k


@pytest.fixture(scope="module")
def pose_run(tmp_path_factory):
    return _train("pose", tmp_path_factory.mktemp("pose"))


def test_pose_then_gsdf_round_trip(pose_run, tmp_path):
    pose, pose_exp, pose_out, rows = pose_run
    assert rows[0]["steps"] == 2 and "loss" in rows[0]
    loaded, exp = load_trained_model(pose_out.checkpoint, expect=pose_exp)
    _same_weights(pose, loaded)
    assert exp["model"] == "pose" and exp["dataset"]["recon_scale"] == 7.0

    gsdf, gsdf_exp, out, _ = _train("gsdf", tmp_path, pose_checkpoint=pose_out.checkpoint)
    # the frozen pose network did not move during gSDF training
    frozen = {k.split(".", 1)[1]: v for k, v in gsdf.state_dict().items()
              if k.startswith("pose_net.")}
    assert frozen, "expected the pose network under 'pose_net.'"
    _same_weights(pose, _Wrap(frozen))
    assert read_checkpoint(out.checkpoint)["context"]["pose_checkpoint"]
    pose_out.checkpoint.rename(tmp_path / "moved.pt")  # the gsdf checkpoint is self-contained
    try:
        loaded, _ = load_trained_model(out.checkpoint, expect=gsdf_exp)
    finally:
        (tmp_path / "moved.pt").rename(pose_out.checkpoint)
    _same_weights(gsdf, loaded)
    batch = torch.utils.data.default_collate([ContractDataset(n=1, image_size=SIZE)[0]])
    gsdf.eval()
    with torch.no_grad():
        a = gsdf.query(gsdf.encode(batch), batch["points"], "hand")
        b = loaded.query(loaded.encode(batch), batch["points"], "hand")
    assert torch.equal(a, b)


def test_gf_checkpoint_refused_as_gsdf(tmp_path):
    _, _, out, _ = _train("gf", tmp_path)
    with pytest.raises(CheckpointError, match="holds a 'gf' model, expected 'gsdf'"):
        load_trained_model(out.checkpoint, expect={"model": "gsdf", "model_args": ARGS["gsdf"]})


class _Wrap(torch.nn.Module):
    """A module whose state_dict is the given dict (to compare a sub-state-dict)."""

    def __init__(self, sd):
        super().__init__()
        self._sd = sd

    def state_dict(self, *args, **kwargs):
        return self._sd
