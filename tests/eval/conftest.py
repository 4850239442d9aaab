"""Fixtures of tests/eval: a tiny canonical test split with predictions, built on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from gsdf.geometry.mesh_io import save_mesh
from gsdf.paths import Layout


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


def write_split(results: Path, ids: list[str], dataset: str = "synth") -> Layout:
    layout = Layout(results)
    split = layout.split_dir(dataset=dataset, split="test")
    for k, sid in enumerate(ids):
        hand, obj, meta = gt_pair(k)
        save_mesh(split / "mesh_hand" / f"{sid}.ply", hand.vertices, hand.faces,
                  vertex_parts=np.zeros(len(hand.vertices), np.uint8))
        save_mesh(split / "mesh_obj" / f"{sid}.ply", obj.vertices, obj.faces)
        (split / "meta").mkdir(parents=True, exist_ok=True)
        (split / "meta" / f"{sid}.json").write_text(json.dumps(meta))
        (split / "rgb").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (256, 256), (30 * k, 100, 100)).save(split / "rgb" / f"{sid}.jpg")
    manifest = layout.dataset_shard(dataset=dataset, split="test", shard=0)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"ids": ids, "skipped": [], "config": {}}))
    return layout


def write_prediction(layout: Layout, exp: str, sid: str, k: int, offset=(0.0, 0.0, 0.0),
                     scale: float = 1.0, dataset: str = "synth") -> None:
    hand, obj, meta = gt_pair(k)
    for mesh, path in ((hand, layout.mesh_hand(exp=exp, dataset=dataset, id=sid)),
                       (obj, layout.mesh_obj(exp=exp, dataset=dataset, id=sid))):
        save_mesh(path, mesh.vertices * scale + offset, mesh.faces)
    pose = {"joints": meta["hand_joints_3d"], "obj_center": [0.04, 0.0, 0.51],
            "obj_corners": meta["obj_corners_3d"]}
    path = layout.pose_pred(exp=exp, dataset=dataset, id=sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pose))


@pytest.fixture
def make_split():
    """``make_split(results, ids) -> Layout``: writes a canonical test split."""
    return write_split


@pytest.fixture
def split_with_predictions(tmp_path):
    """4 samples: two good (one scaled and shifted), one without object mesh, one corrupt."""
    ids = ["000000_000", "000000_001", "000001_000", "000001_001"]
    layout = write_split(tmp_path / "results", ids)
    write_prediction(layout, "gsdf", ids[0], 0)
    write_prediction(layout, "gsdf", ids[1], 1, offset=(0.01, -0.005, 0.02), scale=1.1)
    write_prediction(layout, "gsdf", ids[2], 2)
    layout.mesh_obj(exp="gsdf", dataset="synth", id=ids[2]).unlink()
    write_prediction(layout, "gsdf", ids[3], 3)
    layout.mesh_hand(exp="gsdf", dataset="synth", id=ids[3]).write_bytes(b"ply\nformat garbage")
    recon = layout.recon_shard(exp="gsdf", dataset="synth", shard=0)
    recon.parent.mkdir(parents=True, exist_ok=True)
    recon.write_text(json.dumps({"done": ids[:2] + ids[3:], "no_surface": [
        {"id": ids[2], "fields": ["obj"]}]}))
    return layout, ids
