"""Reconstruction (stage ``reconstruct``, run by :mod:`gsdf.stages.reconstruct`): a trained
model -> meshes and poses of test samples.

Per test image (DESIGN.md section 10): encode once, query the hand and object decoders on the
grid (coarse-to-fine by default, see :mod:`gsdf.geometry.meshing`), marching cubes per field,
hand frame -> camera space (``p_cam = p_hand * 2 / recon_scale + wrist`` with the wrist the
model's state used, i.e. the annotated ``hand_center_3d`` at test time, as in the reference),
write ``meshes/{id}_hand.ply``, ``meshes/{id}_obj.ply`` and ``poses/{id}.json``. A field without
a zero crossing gets no mesh; the sample is listed under ``no_surface`` and the shard goes on.

With ``hand_frame: predicted`` the wrist is not the annotation but what the model's own pose
network and the root solver give (:mod:`gsdf.eval.hand_frame`, :mod:`gsdf.hand.root`); the
dataset's intrinsics are still used. ``poses/{id}.json`` then also holds ``root`` (the wrist
used, camera metres) and ``root_err_cm`` (its distance to the annotated wrist); a sample whose
root cannot be solved is listed under ``no_root`` with its reason.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gsdf.geometry.mesh_io import save_mesh
from gsdf.geometry.meshing import MeshingConfig, TorchField, hand_to_camera, mesh_fields
from gsdf.paths import MESH_PARTS, PredictionLayout
from gsdf.utils.io import write_json

log = logging.getLogger("gsdf.reconstruct")


@dataclasses.dataclass(frozen=True)
class ReconstructConfig:
    """Config section ``reconstruct`` (see ``gsdf/schemas/config.schema.yaml``). Points per
    decoder call and the precision are runtime settings of the stage, not config.

    Attributes:
        mode: ``coarse_to_fine`` (default) or ``dense`` (the reference's two dense passes).
        resolution: grid nodes per axis (the reference's ``mesh_resolution``: 128).
        fit_cube: second grid over the inside nodes' bounding cube (the reference).
        lipschitz: assumed Lipschitz constant of the learned fields (safety margin >= 1).
        coarse_stride: first coarse-to-fine block size, voxels (power of 2).
        refine: coarse-to-fine refinement rule, ``lipschitz`` (certified) or ``sign``
            (follow sign changes, for learned fields flat near zero; see
            :mod:`gsdf.geometry.coarse_to_fine`).
        hand_frame: origin of the hand frame, ``ground_truth`` (the annotated wrist, the
            reference's protocol) or ``predicted`` (from the model's pose network, no ground
            truth; gsdf / gsdf_video only).
    """

    mode: str = "coarse_to_fine"
    resolution: int = 128
    fit_cube: bool = True
    lipschitz: float = 1.4
    coarse_stride: int = 8
    refine: str = "lipschitz"
    hand_frame: str = "ground_truth"

    def __post_init__(self) -> None:
        from gsdf.eval.hand_frame import HAND_FRAMES

        if self.hand_frame not in HAND_FRAMES:
            raise ValueError(f"reconstruct.hand_frame must be one of {list(HAND_FRAMES)}, got "
                             f"{self.hand_frame!r}")

    def meshing(self, point_batch_size: int = 65536) -> MeshingConfig:
        """The meshing settings; ``point_batch_size`` (points per decoder call) is runtime."""
        return MeshingConfig(mode=self.mode, resolution=self.resolution, fit_cube=self.fit_cube,
                             lipschitz=self.lipschitz, coarse_stride=self.coarse_stride,
                             batch_size=point_batch_size, refine=self.refine)


def _first(x: Any) -> Any:
    """Batch element 0 of a tensor / array, as float64 numpy (``None`` stays ``None``)."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)[0]


def _collate(item: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """One dataset item -> a batch of one on ``device``."""
    batch: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, torch.Tensor):
            batch[key] = value.unsqueeze(0).to(device, non_blocking=True)
        elif isinstance(value, np.ndarray):
            batch[key] = torch.from_numpy(value).unsqueeze(0).to(device, non_blocking=True)
        else:
            batch[key] = [value]
    return batch


def _video_middle(x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
    """``hand_center_3d`` of a batch: (B, 3), or of (B, T, 3) the frame ``pos`` (B,) (the
    batch's ``frame_pos``, the frame the video model reconstructs), the middle one without."""
    if x.dim() != 3:
        return x
    if pos is None:
        return x[:, x.shape[1] // 2]
    return x[torch.arange(x.shape[0], device=x.device),
             torch.as_tensor(pos).reshape(-1).to(x.device).long()]


def _frame(state: Any, batch: Mapping[str, Any]) -> tuple[np.ndarray, float]:
    """(wrist (3,) camera metres, recon_scale) the model's hand frame was built with."""
    if isinstance(state, Mapping) and "wrist" in state and "scale" in state:
        return _first(state["wrist"]), float(_first(state["scale"]).reshape(-1)[0]) * 2.0
    scale = float(_first(batch["recon_scale"]).reshape(-1)[0])
    return _first(_video_middle(batch["hand_center_3d"], batch.get("frame_pos"))), scale


def _branches(model: Any) -> list[str]:
    """Fields the model predicts (a branch switched off has no decoder)."""
    out = []
    for branch in ("hand", "obj"):
        if getattr(model, f"{branch}_decoder", True) is not None:
            out.append(branch)
    return out


def decoder_field(model: Any, state: Any, branch: str, device: torch.device,
                  batch_size: int, precision: str = "fp32") -> TorchField:
    """One decoder as a meshing field, evaluated on ``device`` in batches.

    The coarse-to-fine bookkeeping queries it with float64 tensors already on ``device`` (no
    host round trip); numpy callers (dense mode) call it with (K, 3) float64 points, which move
    to the device once. Either way the points are rounded to float32 as the decoder's input, the
    decoder runs on chunks of ``batch_size`` points back to back without synchronising, and the
    values come back as float64.

    Args:
        model, state: the model and its ``encode`` output for one image.
        branch: ``hand`` or ``obj``.
        device: where the model lives.
        batch_size: points per decoder call (bounds the activations' memory).
        precision: ``fp32`` or ``bf16`` (autocast; values come back as float64 either way).

    Returns:
        a :class:`TorchField` on ``device``: ``query(points (K, 3) float64 tensor) -> (K,)
        float64 tensor``, or called with numpy ``(K, 3) -> (K,)`` float64.
    """
    def fn(points: torch.Tensor) -> torch.Tensor:
        pts = points.to(device, torch.float32)
        out = torch.empty(len(pts), dtype=torch.float32, device=device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=precision == "bf16"):
            for start in range(0, len(pts), batch_size):
                chunk = pts[None, start:start + batch_size]
                out[start:start + chunk.shape[1]] = model.query(state, chunk, branch)[0].float()
        return out.double()
    return TorchField(fn, device)


def reconstruct_sample(model: Any, batch: Mapping[str, Any], cfg: ReconstructConfig,
                       device: torch.device, precision: str = "fp32",
                       point_batch_size: int = 65536) -> dict[str, Any]:
    """Meshes (camera space, metres) and poses of one batch-of-one. ``precision`` and
    ``point_batch_size`` (points per decoder call) are runtime settings.

    Returns:
        ``{"meshes": {branch: (V, F) or None}, "pose": {...}, "num_queries": {...},
        "dense_queries": {...}}``.
    """
    device = torch.device(device)
    with torch.inference_mode():
        state = model.encode(batch)
        pose = model.predict_pose(state)
    fields = {b: decoder_field(model, state, b, device, point_batch_size, precision)
              for b in _branches(model)}
    # The meshing driver hands whole level sets of nodes to a field; the field batches them.
    meshing = cfg.meshing(max(point_batch_size, 1 << 22))
    result = mesh_fields(fields, meshing)
    wrist, recon_scale = _frame(state, batch)
    meshes = {}
    for branch, mesh in result.meshes.items():
        meshes[branch] = None if mesh is None else (
            hand_to_camera(mesh[0], wrist, recon_scale), mesh[1])
    pose_out = {key: (None if pose.get(key) is None else _first(pose[key]))
                for key in ("joints", "obj_center", "obj_corners", "ik_joints")
                if key in pose}
    return {"meshes": meshes, "pose": pose_out, "num_queries": result.num_queries,
            "dense_queries": result.dense_queries}


def remove_previous_outputs(out: PredictionLayout, ids: Sequence[str]) -> int:
    """Delete the meshes and poses an earlier run of this shard wrote for ``ids`` (and stale
    temporaries of killed writers), so a sample skipped now is never scored with an older
    model's prediction. Returns the number of files removed."""
    from gsdf.utils.io import remove_stale_temporaries

    removed = 0
    outputs = []
    for sid in ids:
        for path in (out.mesh("hand", sid), out.mesh("obj", sid), out.pose(sid)):
            outputs.append(path)
            if path.exists():
                path.unlink()
                removed += 1
    return removed + len(remove_stale_temporaries(outputs))


def _predicted_frame(model: Any, batch: dict[str, Any], bones: Any
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``batch`` with the hand frame from the model's pose network and the root solver, and the
    ``root`` / ``root_err_cm`` (to the annotated wrist) of the pose file. Raises
    ``RootSolveError``."""
    from gsdf.eval.hand_frame import with_predicted_frame

    gt_wrist = _first(_video_middle(batch["hand_center_3d"], batch.get("frame_pos")))
    batch, sols = with_predicted_frame(model, batch, bones)
    return batch, {"root": sols[0].root,
                   "root_err_cm": float(np.linalg.norm(sols[0].root - gt_wrist) * 100.0)}


def _write_sample(out: PredictionLayout, sid: str, result: dict[str, Any],
                  frame: dict[str, Any]) -> list[str]:
    """Write a sample's meshes and pose file; returns the fields without a zero crossing."""
    empty = []
    for branch in MESH_PARTS:
        path = out.mesh(branch, sid)
        mesh = result["meshes"].get(branch)
        if mesh is None:
            path.unlink(missing_ok=True)  # never leave a stale mesh of an earlier run
            if branch in result["meshes"]:
                empty.append(branch)
        else:
            save_mesh(path, mesh[0], mesh[1])
    write_json(out.pose(sid), {**result["pose"], **frame})
    return empty


def reconstruct_samples(model: Any, dataset: Any, ids: Sequence[str], out: PredictionLayout,
                        cfg: ReconstructConfig, device: torch.device | str = "cpu",
                        upstream: Mapping[str, str] | None = None,
                        point_batch_size: int = 65536) -> dict[str, Any]:
    """Reconstruct ``ids`` of ``dataset`` (items keyed by ``dataset.ids``) and write their meshes
    and poses where ``out`` says. The shard's earlier outputs are removed first
    (:func:`remove_previous_outputs`).

    Args:
        upstream: reasons of the ids an earlier stage skipped (the packed split's
            ``info.skipped``), reported for the ids missing from ``dataset``.
        point_batch_size: points per decoder call (runtime: memory only).

    Returns:
        the shard manifest: ``done`` (ids with every field meshed), ``no_surface``
        (``{"id", "fields"}`` for fields without a zero crossing), ``missing`` (ids not in the
        packed split) and ``skipped_upstream`` (``{"id", "reason"}`` of the same ids),
        ``no_root`` (``hand_frame: predicted`` only), per-sample ``stats`` (seconds, decoder
        queries) and totals.
    """
    from gsdf.eval.hand_frame import hand_bones, pose_network

    device = torch.device(device)
    predicted = cfg.hand_frame == "predicted"
    bones = None
    if predicted:
        pose_network(model)  # HandFrameError before any work for models without one
        bones = hand_bones(model)
    index = {sid: i for i, sid in enumerate(dataset.ids)}
    upstream = dict(upstream or {})
    manifest: dict[str, Any] = {"done": [], "no_surface": [], "missing": [],
                                "skipped_upstream": [], "stats": {}}
    if predicted:
        manifest["no_root"] = []
    remove_previous_outputs(out, ids)
    for sid in ids:
        if sid not in index:
            reason = upstream.get(sid, "not in the packed split")
            manifest["missing"].append(sid)
            manifest["skipped_upstream"].append({"id": sid, "reason": reason})
            log.warning("%s: not in the packed split (%s); skipped", sid, reason)
            continue
        _reconstruct_one(model, dataset[index[sid]], sid, out, cfg, device, bones,
                         point_batch_size, manifest)
    _add_totals(manifest, len(ids), predicted)
    return manifest


def _reconstruct_one(model: Any, item: Mapping[str, Any], sid: str, out: PredictionLayout,
                     cfg: ReconstructConfig, device: torch.device, bones: Any,
                     point_batch_size: int, manifest: dict[str, Any]) -> None:
    """Reconstruct one dataset ``item`` (id ``sid``), write its files, note it in ``manifest``
    (``done`` / ``no_surface`` / ``no_root``, ``stats``). ``bones``: the hand's bone lengths
    with ``hand_frame: predicted``, else None."""
    from gsdf.hand.root import RootSolveError

    start = time.perf_counter()
    batch = _collate(item, device)
    frame: dict[str, Any] = {}
    if bones is not None:
        try:
            batch, frame = _predicted_frame(model, batch, bones)
        except RootSolveError as err:
            manifest["no_root"].append({"id": sid, "reason": str(err)})
            log.warning("%s: root not solved (%s); skipped", sid, err)
            return  # its earlier outputs are gone (remove_previous_outputs)
    result = reconstruct_sample(model, batch, cfg, device, point_batch_size=point_batch_size)
    empty = _write_sample(out, sid, result, frame)
    if empty:
        manifest["no_surface"].append({"id": sid, "fields": empty})
        log.warning("%s: no zero crossing in the %s field(s); no mesh", sid, empty)
    else:
        manifest["done"].append(sid)
    manifest["stats"][sid] = {"seconds": round(time.perf_counter() - start, 3),
                              "queries": result["num_queries"],
                              **{k: v for k, v in frame.items() if k != "root"}}


def _add_totals(manifest: dict[str, Any], num_samples: int, predicted: bool) -> None:
    """Counts, total seconds and decoder queries (and the median root error) of a manifest."""
    stats = manifest["stats"].values()
    manifest["num_samples"] = num_samples
    manifest["num_no_surface"] = len(manifest["no_surface"])
    if predicted:
        errs = [s["root_err_cm"] for s in stats]
        manifest["root_err_cm_median"] = float(np.median(errs)) if errs else None
    manifest["total_queries"] = int(sum(sum(s["queries"].values()) for s in stats))
    manifest["total_seconds"] = round(float(sum(s["seconds"] for s in stats)), 3)
