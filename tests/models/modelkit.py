"""Helpers for the model tests: tiny synthetic batches and small model_args."""

from __future__ import annotations

import torch


def make_batch(b: int = 2, n: int = 64, size: int = 64, frames: int | None = None,
               seed: int = 0, planes: bool = False) -> dict:
    """A batch with the keys of docs/architecture.md ("Training batch").

    The hand SDF is a sphere of radius 0.3 (hand-frame units) at the wrist, the object a sphere
    of radius 0.2 at the object centre; points lie near both surfaces (first N/2 near the hand).
    With ``planes``, the shapes are half-spaces instead (SDF linear in the point).
    With ``frames``, every per-sample key gets a time axis after the batch axis.
    """
    g = torch.Generator().manual_seed(seed)
    f = 480.0 * size / 256
    cam = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]]).repeat(b, 1, 1)
    wrist = torch.tensor([0.0, 0.0, 0.5]) + 0.01 * torch.randn(b, 3, generator=g)
    joints = wrist[:, None] + 0.04 * torch.randn(b, 21, 3, generator=g)
    joints[:, 0] = wrist
    obj_center = wrist + torch.tensor([0.03, 0.02, 0.01])
    rest = 0.04 * torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)],
                               dtype=torch.float32).repeat(b, 1, 1)
    transform = torch.eye(4).repeat(b, 1, 1)
    transform[:, :3, 3] = obj_center
    scale = 3.5
    obj_hand = (obj_center - wrist) * scale  # (B, 3) hand frame
    dirs = torch.nn.functional.normalize(torch.randn(b, n, 3, generator=g), dim=-1)
    radius = 0.06 * torch.randn(b, n, 1, generator=g)
    points = torch.cat([dirs[:, : n // 2] * (0.3 + radius[:, : n // 2]),
                        obj_hand[:, None] + dirs[:, n // 2:] * (0.2 + radius[:, n // 2:])], 1)
    sdf_hand = points.norm(dim=-1) - 0.3
    sdf_obj = (points - obj_hand[:, None]).norm(dim=-1) - 0.2
    if planes:  # half-spaces through the wrist / the object centre: easy to fit
        sdf_hand = 0.3 * (points[..., 2] - points[..., 0])
        sdf_obj = 0.3 * (points - obj_hand[:, None])[..., 1]
    batch = {
        "id": [f"{i:06d}_000" for i in range(b)],
        "image": torch.randn(b, 3, size, size, generator=g),
        "cam_intr": cam,
        "hand_joints_3d": joints,
        "hand_center_3d": wrist,
        "hand_pose": torch.zeros(b, 48),
        "hand_shape": torch.zeros(b, 10),
        "obj_center_3d": obj_center,
        "obj_corners_3d": rest + obj_center[:, None],
        "obj_rest_corners_3d": rest,
        "obj_transform": transform,
        "recon_scale": torch.full((b,), 2 * scale),
        "points": points,
        "sdf_hand": sdf_hand.clamp(-0.05, 0.05),
        "sdf_obj": sdf_obj.clamp(-0.05, 0.05),
        "hand_part": torch.randint(0, 6, (b, n), generator=g),
    }
    if frames:
        for key, value in list(batch.items()):
            if isinstance(value, torch.Tensor):
                batch[key] = torch.stack([value] * frames, dim=1)
        batch["image"] = torch.randn(b, frames, 3, size, size, generator=g)
    return batch


def micro_model_args(name: str) -> dict:
    """``model_args`` of experiment ``name`` under the ``micro`` preset (64-px images, narrow
    decoders and heads): the small settings every model test starts from."""
    from gsdf.config import load_config, resolve_experiment

    return resolve_experiment(load_config(overrides={"preset": "micro"}), name)["model_args"]


def _small_args() -> dict[str, dict]:
    from gsdf.models import MODELS

    return {name: micro_model_args(name) for name in MODELS}


# small model_args of every registered model (one experiment file per model), from the micro
# preset
SMALL_ARGS = _small_args()
SMALL_POSE = SMALL_ARGS["pose"]


def build_small(name: str, **overrides) -> torch.nn.Module:
    """A registered model at test size (gsdf models get a random pose network)."""
    from gsdf.models import build_model

    args = dict(SMALL_ARGS[name], **overrides)
    if name in ("gsdf", "gsdf_video"):
        pose = build_model("pose", SMALL_POSE)
        return build_model(name, args, pose_state_dict=pose.state_dict(),
                           pose_model_args=SMALL_POSE)
    return build_model(name, args)


def save_finished(path, name: str, model_args: dict, state_dict: dict) -> None:
    """A finished checkpoint of model ``name`` in the training format (gsdf.checkpoint)."""
    from gsdf.checkpoint import FORMAT_VERSION, KIND, save_checkpoint

    save_checkpoint(path, {
        "format_version": FORMAT_VERSION, "kind": KIND, "model": name,
        "model_args": model_args, "experiment": {"name": name, "model": name},
        "state_dict": state_dict, "optimizer": {}, "scheduler": {}, "epoch": 1,
        "batch_in_epoch": 0, "step": 1, "rng": {}, "finished": True})
