"""Fixtures of issue 4: a tiny dataset split in the canonical layout, written by the tests.

Hands are a box palm plus five capsule fingers (parts 0 palm, 1 thumb .. 5 pinky); objects are
spheres or boxes next to the palm; images are 256x256 JPEGs with a dot at every projected
joint; two sequences of three frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import trimesh

from gsdf.geometry.mesh_io import save_mesh

K = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])
FINGER_X = {1: -0.06, 2: -0.03, 3: -0.01, 4: 0.01, 5: 0.03}  # thumb .. pinky, metres
FINGER_LEN = 0.07


def toy_hand() -> tuple[trimesh.Trimesh, np.ndarray, np.ndarray]:
    """(mesh, vertex parts (V,), joints (21, 3)) of a hand in its own frame, metres.

    The wrist is at the origin, fingers point to -y (up in the image), palm normal -z.
    """
    palm = trimesh.creation.box(extents=(0.08, 0.08, 0.025))
    palm.apply_translation((0.0, -0.04, 0.0))
    meshes, parts = [palm], [np.zeros(len(palm.vertices), int)]
    joints = [np.zeros(3)]
    for label, x in FINGER_X.items():
        f = trimesh.creation.capsule(height=FINGER_LEN, radius=0.008, count=(8, 8))
        # capsule axis is z from 0 to height -> rotate to -y, start inside the palm top
        f.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
        f.apply_translation((x, -0.08 - FINGER_LEN / 2, 0.0))
        meshes.append(f)
        parts.append(np.full(len(f.vertices), label))
        for k in range(4):
            joints.append(np.array([x, -0.08 - FINGER_LEN * (k + 1) / 4, 0.0]))
    mesh = trimesh.util.concatenate(meshes)
    return mesh, np.concatenate(parts), np.array(joints)


def project(points: np.ndarray, cam_intr: np.ndarray = K) -> np.ndarray:
    uv = points @ cam_intr.T
    return uv[:, :2] / uv[:, 2:3]


def write_sample(split_dir: Path, sid: str, video_id: int, frame_idx: int, seed: int,
                 obj_kind: str = "sphere") -> None:
    """One sample of the canonical layout (docs/architecture.md)."""
    rng = np.random.default_rng(seed)
    hand, parts, joints = toy_hand()
    angle = rng.uniform(-0.3, 0.3)
    R = trimesh.transformations.rotation_matrix(angle, (0, 0, 1))[:3, :3]
    t = np.array([rng.uniform(-0.02, 0.02), 0.05, 0.45 + 0.01 * frame_idx])
    verts = hand.vertices @ R.T + t
    joints = joints @ R.T + t
    if obj_kind == "sphere":
        obj = trimesh.creation.icosphere(3, radius=0.03)
    else:
        obj = trimesh.creation.box(extents=(0.05, 0.04, 0.06))
    obj_T = np.eye(4)
    obj_T[:3, 3] = joints[9] + np.array([0.0, 0.02, -0.045])
    obj.apply_transform(obj_T)
    for sub in ("rgb", "mask", "mesh_hand", "mesh_obj", "meta"):
        (split_dir / sub).mkdir(parents=True, exist_ok=True)
    save_mesh(split_dir / "mesh_hand" / f"{sid}.ply", verts, hand.faces, vertex_parts=parts)
    save_mesh(split_dir / "mesh_obj" / f"{sid}.ply", obj.vertices, obj.faces)
    corners = trimesh.bounds.corners(obj.bounds)
    rest = corners - obj_T[:3, 3]
    image = np.full((256, 256, 3), 40, np.uint8)
    image[:, :, 0] = np.linspace(0, 200, 256).astype(np.uint8)[None, :]
    for u, v in project(joints):
        cv2.circle(image, (int(round(u)), int(round(v))), 3, (255, 255, 255), -1)
    cv2.imwrite(str(split_dir / "rgb" / f"{sid}.jpg"), image[:, :, ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(split_dir / "mask" / f"{sid}.png"), np.zeros((256, 256), np.uint8))
    uv = project(np.concatenate([joints, corners]))
    lo, hi = uv.min(0), uv.max(0)
    meta = {
        "cam_intr": K.tolist(), "hand_joints_3d": joints.tolist(),
        "hand_pose": rng.normal(0, 0.2, 48).tolist(), "hand_shape": rng.normal(0, 1, 10).tolist(),
        "hand_side": "right", "obj_transform": obj_T.tolist(),
        "obj_center_3d": obj_T[:3, 3].tolist(), "obj_corners_3d": corners.tolist(),
        "obj_rest_corners_3d": rest.tolist(), "video_id": video_id, "frame_idx": frame_idx,
        "bbox": [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])],
        "obj_family": obj_kind,
    }
    (split_dir / "meta" / f"{sid}.json").write_text(json.dumps(meta))


def write_split(split_dir: Path, videos: int = 2, frames: int = 3, shards: int = 2
                ) -> list[Path]:
    """A split of ``videos`` x ``frames`` samples in ``shards`` manifests; returns them."""
    ids = []
    for v in range(videos):
        for f in range(frames):
            sid = f"{v:06d}_{f:03d}"
            write_sample(split_dir, sid, v, f, seed=10 * v + f,
                         obj_kind="sphere" if v % 2 == 0 else "box")
            ids.append(sid)
    manifests = []
    for k in range(shards):
        path = split_dir / "shards" / f"shard_{k:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"ids": ids[k::shards], "skipped": [], "config": {}}))
        manifests.append(path)
    return manifests


SMALL_PARAMS = {"sample_sdf": {"points_per_mesh": 2000}, "pack": {},
                "dataset": {"name": "synth", "recon_scale": 7.0, "num_shards": 2}}


def sample_and_pack(root: Path, split: str = "train", dataset: str = "synth",
                    params: dict | None = None, **split_kwargs) -> Path:
    """A canonical split (:func:`write_split`) under ``root`` (a results folder), sampled and
    packed by the stages' ``run`` with the paths of ``gsdf.paths.Layout``; returns the packed
    split's folder."""
    from gsdf.paths import Layout
    from gsdf.stages import pack, sample_sdf

    params = SMALL_PARAMS if params is None else params
    layout = Layout(root)
    fields = {"dataset": dataset, "split": split}
    split_dir = layout.split_dir(**fields)
    manifests = write_split(split_dir, **split_kwargs)
    shards = []
    for k, manifest in enumerate(manifests):
        out = layout.sdf_shard(shard=k, **fields)
        sample_sdf.run(sample_sdf.Inputs(split_dir, manifest),
                       sample_sdf.Outputs(out, layout.sdf_skipped(shard=k, **fields)), params,
                       progress=False)
        shards.append(out)
    pack.run(pack.Inputs(split_dir, tuple(manifests), tuple(shards)),
             pack.Outputs(layout.annotations(**fields), layout.rgb_lmdb(**fields),
                          layout.sdf_hand_lmdb(**fields), layout.sdf_obj_lmdb(**fields),
                          layout.pack_skipped(**fields)),
             params, batch=2)
    return layout.packed_dir(**fields)
