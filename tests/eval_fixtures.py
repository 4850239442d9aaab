"""A tiny canonical test split with predictions, built on the fly (tests/eval and
tests/stages use it through their conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from gsdf.geometry.mesh_io import save_mesh
from gsdf.paths import Layout, PredictionLayout, SplitLayout


def gt_pair(k: int) -> tuple[trimesh.Trimesh, trimesh.Trimesh, dict]:
    """Ground truth of sample k: a finger-like capsule 'hand' touching a sphere 'object'."""
    hand = trimesh.creation.capsule(height=0.07, radius=0.012 + 0.002 * k, count=[16, 16])
    hand.apply_translation([0.0, 0.0, 0.5])
    obj = trimesh.creation.icosphere(3, radius=0.03)
    obj.apply_translation([0.04, 0.0, 0.5])
    joints = np.tile([0.0, 0.0, 0.5], (21, 1)) + np.linspace(0, 0.07, 21)[:, None] * [0, 0, 1]
    corners = obj.bounding_box.vertices
    meta = {"hand_joints_3d": joints.tolist(), "obj_center_3d": [0.04, 0.0, 0.5],
            "obj_corners_3d": corners.tolist(), "cam_intr": np.eye(3).tolist()}
    return hand, obj, meta


def gt_layout(layout: Layout, dataset: str = "synth") -> SplitLayout:
    """The test split of ``dataset`` under ``layout``."""
    return SplitLayout(layout.split_dir(dataset=dataset, split="test"))


def pred_layout(layout: Layout, exp: str, dataset: str = "synth") -> PredictionLayout:
    """The reconstructions of ``exp`` on ``dataset`` under ``layout``."""
    return PredictionLayout(layout.meshes_dir(exp=exp, dataset=dataset),
                            layout.poses_dir(exp=exp, dataset=dataset))


def write_split(results: Path, ids: list[str], dataset: str = "synth") -> Layout:
    layout = Layout(results)
    split = gt_layout(layout, dataset)
    for k, sid in enumerate(ids):
        hand, obj, meta = gt_pair(k)
        save_mesh(split.mesh("hand", sid), hand.vertices, hand.faces,
                  vertex_parts=np.zeros(len(hand.vertices), np.uint8))
        save_mesh(split.mesh("obj", sid), obj.vertices, obj.faces)
        split.meta(sid).parent.mkdir(parents=True, exist_ok=True)
        split.meta(sid).write_text(json.dumps(meta))
        split.rgb(sid).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (256, 256), (30 * k, 100, 100)).save(split.rgb(sid))
    manifest = layout.dataset_shard(dataset=dataset, split="test", shard=0)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"ids": ids, "skipped": [], "config": {}}))
    return layout


def write_prediction(layout: Layout, exp: str, sid: str, k: int, offset=(0.0, 0.0, 0.0),
                     scale: float = 1.0, dataset: str = "synth") -> None:
    hand, obj, meta = gt_pair(k)
    pred = pred_layout(layout, exp, dataset)
    for mesh, path in ((hand, pred.mesh("hand", sid)), (obj, pred.mesh("obj", sid))):
        save_mesh(path, mesh.vertices * scale + offset, mesh.faces)
    pose = {"joints": meta["hand_joints_3d"], "obj_center": [0.04, 0.0, 0.51],
            "obj_corners": meta["obj_corners_3d"]}
    path = pred.pose(sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pose))


def split_with_predictions(tmp_path: Path) -> tuple[Layout, list[str]]:
    """4 samples: two good (one scaled and shifted), one without object mesh, one corrupt."""
    ids = ["000000_000", "000000_001", "000001_000", "000001_001"]
    layout = write_split(tmp_path / "results", ids)
    write_prediction(layout, "gsdf", ids[0], 0)
    write_prediction(layout, "gsdf", ids[1], 1, offset=(0.01, -0.005, 0.02), scale=1.1)
    write_prediction(layout, "gsdf", ids[2], 2)
    pred = pred_layout(layout, "gsdf")
    pred.mesh("obj", ids[2]).unlink()
    write_prediction(layout, "gsdf", ids[3], 3)
    pred.mesh("hand", ids[3]).write_bytes(b"ply\nformat garbage")
    recon = layout.recon_shard(exp="gsdf", dataset="synth", shard=0)
    recon.parent.mkdir(parents=True, exist_ok=True)
    recon.write_text(json.dumps({"done": ids[:2] + ids[3:], "no_surface": [
        {"id": ids[2], "fields": ["obj"]}]}))
    return layout, ids
