"""Tiny raw downloads of ObMan and DexYCB in their released formats, posed by the fixture MANO.

Each builder writes the files the real download has (ObMan: ``{split}/rgb|segm|meta``, ShapeNet
OBJ models with several materials and a missing texture, open at the top; DexYCB: subject /
sequence / camera folders with ``meta.yml``, ``color_*.jpg``, ``labels_*.npz``, calibration YAML
files, YCB models whose origin is off the box centre) and returns the ground truth in the
OpenCV camera frame, computed here with numpy, for the tests to compare against.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from gsdf.hand import HandLayer, load_mano
from gsdf.testing.mano_fixture import fake_source, write_fake_mano

FLIP = np.diag([1.0, -1.0, -1.0])
OBMAN_K = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])


def make_mano(root: Path) -> Path:
    """``root/MANO_RIGHT.pkl`` (official format); returns ``root``. Like the real MANO, the
    template's wrist is not at the origin (MANO's rest root joint is about (0.096, 0.006,
    0.006) m), so code that confuses the translation with the wrist fails."""
    src = fake_source()
    src["v_template"] = src["v_template"] + np.array([0.096, 0.006, 0.006])
    write_fake_mano(Path(root) / "MANO_RIGHT.pkl", src)
    return Path(root)


def _rotation(rng: np.random.Generator, max_angle: float = np.pi) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Rotation.from_rotvec(axis * rng.uniform(0.2, max_angle)).as_matrix()


def _draw(shape: tuple[int, int], K: np.ndarray, parts, background: int = 90):
    """Render meshes as flat silhouettes (later parts on top): an RGB image and a label image.

    ``parts``: list of (vertices (V, 3) camera, faces (F, 3), rgb colour, label value)."""
    h, w = shape
    img = np.full((h, w, 3), background, np.uint8)
    lab = np.zeros((h, w), np.uint8)
    for verts, faces, colour, value in parts:
        uv = verts @ K.T
        uv = uv[:, :2] / uv[:, 2:3]
        polys = np.round(uv[faces] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
        cv2.fillPoly(img, list(polys), colour, lineType=cv2.LINE_8, shift=2)
        cv2.fillPoly(lab, list(polys), int(value), lineType=cv2.LINE_8, shift=2)
    return img, lab


def open_box(size=(1.0, 0.6, 0.8), origin=(0.0, 0.0, 0.0)):
    """A box without its top (+y) face (not watertight), corner at ``origin``, unit-ish size.
    Returns vertices (8, 3) and the faces of the 5 sides, split into two material groups."""
    sx, sy, sz = size
    v = np.array([[x, y, z] for x in (0, sx) for y in (0, sy) for z in (0, sz)], float)
    v += np.asarray(origin, float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = []
    for a, b, c, d in quads:
        tris += [(a, b, c), (a, c, d)]
    return v, np.array(tris)


def write_obj(path: Path, verts: np.ndarray, faces: np.ndarray, groups: int = 1,
              texture: str = "texture.png") -> None:
    """An OBJ with ``mtllib``, ``vt`` and ``groups`` ``usemtl`` groups (the MTL names a texture
    image that does not exist, as in many ShapeNet models)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mtl = path.with_suffix(".mtl")
    mtl.write_text("".join(f"newmtl material_{g}\nKd 0.6 0.5 0.4\nmap_Kd {texture}\n\n"
                           for g in range(groups)))
    lines = [f"mtllib {mtl.name}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += ["vt 0.0 0.0", "vt 1.0 0.0", "vt 1.0 1.0"]
    for g, chunk in enumerate(np.array_split(np.arange(len(faces)), groups)):
        lines += [f"g part_{g}", f"usemtl material_{g}"]
        lines += [f"f {a + 1}/1 {b + 1}/2 {c + 1}/3" for a, b, c in faces[chunk]]
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# ObMan
# ---------------------------------------------------------------------------------------------

SHAPENET_PREFIX = "/sequoia/data2/dataset/shapenet/ShapeNetCore.v2"


def make_obman(root: Path, shapenet: Path, mano_root: Path, seed: int = 0,
               extra_train: int = 0) -> dict:
    """An ObMan-style download. Returns ``{"train": {id: truth}, "test": {...},
    "split_files": {...}, "broken": [...], "models": {...}}`` with each truth holding the
    OpenCV-frame ``joints`` (21, 3), ``verts`` (V, 3), ``obj_verts`` (W, 3), ``R`` (3, 3), ``t``,
    ``scale``, ``pca`` (45,) and ``model`` (relative path).

    Ids have gaps and each split is numbered on its own; train ``00000009`` has a truncated
    meta pickle; split files keep train ids 0, 5, 7, 9 (not 2) and every test id.
    ``extra_train`` more train samples get ids 11, 12, ... (outside the split file).
    """
    rng = np.random.default_rng(seed)
    asset = load_mano(mano_root)
    layer = HandLayer(asset).double()
    comps = asset.hands_components
    models = {}
    for k, (cls, sid) in enumerate([("02876657", "1ae823260851f7d9ea600d1a6d9f6e07"),
                                    ("03797390", "b6f30c63c946c286cf6897d8875cfd5e")]):
        v, f = open_box(size=(0.9, 0.5 + 0.2 * k, 0.7), origin=(-0.45, -0.3, -0.35))
        rel = f"{cls}/{sid}/models/model_normalized.obj"
        write_obj(shapenet / rel, v, f, groups=2 + k)
        models[rel] = (cls, sid, v, f)
    rels = sorted(models)
    plan = {"train": ["00000000", "00000002", "00000005", "00000007"]
            + [f"{11 + i:08d}" for i in range(extra_train)],
            "test": ["00000000", "00000001"]}
    truth: dict = {"train": {}, "test": {}, "models": models}
    for split, ids in plan.items():
        for n, sid in enumerate(ids):
            pca = rng.normal(0, 0.6, 45)
            finger = pca @ comps  # flat_hand_mean: no mean pose
            R_h = _rotation(rng)
            pose = np.concatenate([np.zeros(3), finger])
            with torch.no_grad():
                out = layer(torch.from_numpy(pose)[None])
            v0 = out.vertices[0].numpy()
            j0 = out.joints[0].numpy()
            wrist = j0[0]
            centred = (v0 - wrist) @ R_h.T
            t_h = np.array([rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01), 0.75])
            t_h = t_h - centred.mean(0)  # the hand's centre near the optical axis, 75 cm away
            verts = centred + t_h
            joints = (j0 - wrist) @ R_h.T + t_h
            rel = rels[n % 2]
            cls, ssid, mv, mf = models[rel]
            R_o, scale = _rotation(rng), 0.12
            t_o = verts.mean(0) + np.array([0.0, 0.0, 0.05])
            obj_verts = scale * mv @ R_o.T + t_o
            # Blender frame (y up, z towards the viewer): diag(1, -1, -1) of the OpenCV values
            affine = np.eye(4)
            affine[:3, :3] = FLIP @ (scale * R_o)
            affine[:3, 3] = FLIP @ t_o
            uv = joints @ OBMAN_K.T
            meta = {
                "coords_2d": (uv[:, :2] / uv[:, 2:3]).astype(np.float32),
                "coords_3d": (joints @ FLIP.T).astype(np.float64),
                "verts_3d": (verts @ FLIP.T).astype(np.float64),
                "side": "right",
                "hand_pose": finger.astype(np.float32),
                "pca_pose": pca.astype(np.float32),
                "hand_depth_min": 0.5, "hand_depth_max": 0.6, "obj_depth_min": 0.5,
                "obj_depth_max": 0.6, "depth_min": 0.5, "depth_max": 0.6,
                "affine_transform": affine.astype(np.float32),
                "obj_scale": scale,
                "obj_path": f"{SHAPENET_PREFIX}/{rel}",
                "grasp_quality": 0.1, "grasp_epsilon": 0.05, "grasp_volume": 0.2,
                "sh_coeffs": rng.normal(size=9).astype(np.float32),
                "obj_texture": "/sequoia/data2/dataset/textures/x.jpg",
                "bg_path": "/sequoia/data2/dataset/lsun/x.jpg",
            }
            if n != 1:  # one sample only has obj_path (re-rooted from the authors' prefix)
                meta.update(class_id=cls, sample_id=ssid)
            split_dir = root / split
            for sub in ("rgb", "segm", "meta"):
                (split_dir / sub).mkdir(parents=True, exist_ok=True)
            with open(split_dir / "meta" / f"{sid}.pkl", "wb") as fh:
                pickle.dump(meta, fh, protocol=2)
            img, lab = _draw((256, 256), OBMAN_K,
                             [(obj_verts, mf, (40, 60, 200), 100),
                              (verts, asset.faces, (230, 180, 150), 22)])
            cv2.imwrite(str(split_dir / "rgb" / f"{sid}.jpg"), img[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            segm = np.zeros((256, 256, 3), np.uint8)
            segm[..., 0] = lab  # channel 0 as OpenCV reads it (obman.py get_segm)
            segm[..., 1] = np.where(lab == 22, 22, 0)
            cv2.imwrite(str(split_dir / "segm" / f"{sid}.png"), segm)
            truth[split][sid] = {"joints": joints, "verts": verts, "obj_verts": obj_verts,
                                 "R": R_o, "t": t_o, "scale": scale, "pca": pca,
                                 "finger": finger, "model": rel, "class_id": cls}
    # a broken sample: truncated pickle
    (root / "train" / "meta" / "00000009.pkl").write_bytes(b"\x80\x02}q\x00(X")
    cv2.imwrite(str(root / "train" / "rgb" / "00000009.jpg"), np.zeros((256, 256, 3), np.uint8))
    split_files = {"train": root / "train_87k.json", "test": root / "test_6k.json"}
    split_files["train"].write_text(json.dumps(["00000000", "00000005", "00000007",
                                                "00000009"]))
    split_files["test"].write_text(json.dumps(["00000000", "00000001"]))
    truth["split_files"] = split_files
    truth["broken"] = ["00000009"]
    return truth


# ---------------------------------------------------------------------------------------------
# DexYCB
# ---------------------------------------------------------------------------------------------

# the released folder names; subject 2 uses the name of earlier toolkit versions (also accepted)
DEX_SUBJECTS = {0: "20200709-subject-01", 2: "20200820-amousavian"}
DEX_SERIALS = ("836212060125", "839512060362")
DEX_MODELS = {4: "005_tomato_soup_can", 16: "036_wood_block"}


def _dex_intrinsics(serial: str) -> np.ndarray:
    f = 615.0 if serial == DEX_SERIALS[0] else 600.0
    return np.array([[f, 0.0, 322.0], [0.0, f + 1.0, 238.0], [0.0, 0.0, 1.0]])


def make_dexycb(root: Path, mano_root: Path, seed: int = 0) -> dict:
    """A DexYCB-style download (s0 positions: 0-3 train, 4 test for subject 2 / val for 0).

    Returns ``{"frames": {id: truth}, "train": [ids expected], "test": [ids expected],
    "excluded": {...}, "broken": [...]}``; each truth has ``joints`` (21, 3), ``verts``,
    ``obj_verts``, ``R``, ``t``, ``offset`` (model box centre), ``betas``, ``trans``, ``K``,
    ``image`` (480, 640, 3) and ``model_verts``.

    Layout: subject 0 sequence 0 has two cameras and 6 frames (0 and 5 selected; camera 1
    frame 5 has no hand annotation), sequence 1 is left-handed, sequence 3's label file is
    corrupt; subject 2 sequence 4 (test) has 11 frames: 0 and 10 in contact, 5 with the object
    10 cm away.
    """
    rng = np.random.default_rng(seed)
    asset = load_mano(mano_root)
    pca_layer = HandLayer(asset, use_pca=True, ncomps=45, flat_hand_mean=False).double()
    calib = root / "calibration"
    (calib / "intrinsics").mkdir(parents=True, exist_ok=True)
    for serial in DEX_SERIALS:
        K = _dex_intrinsics(serial)
        data = {"color": {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "ppx": float(K[0, 2]),
                          "ppy": float(K[1, 2])},
                "depth": {"fx": 380.0, "fy": 380.0, "ppx": 320.0, "ppy": 240.0}}
        (calib / "intrinsics" / f"{serial}_640x480.yml").write_text(yaml.safe_dump(data))
    betas = {}
    for s, name in DEX_SUBJECTS.items():
        b = rng.normal(0, 0.8, 10)
        betas[s] = b
        d = calib / f"mano_{name.replace('-', '_')}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "mano.yml").write_text(yaml.safe_dump({"betas": [float(x) for x in b]}))
    model_verts = {}
    for ycb, name in DEX_MODELS.items():
        # origin off the box centre: the model spans [0.01, 0.08] x [-0.02, 0.1] x [0.03, 0.09]
        v, f = open_box(size=(0.07, 0.12, 0.06), origin=(0.01, -0.02, 0.03))
        # close the box for YCB models (they are watertight scans)
        f = np.concatenate([f, [(2, 3, 7), (2, 7, 6)]])
        write_obj(root / "models" / name / "textured_simple.obj", v, f, groups=1,
                  texture="texture_map.png")
        model_verts[ycb] = (v, f)

    frames: dict = {}
    expected = {"train": [], "test": []}
    excluded = {"no_hand": [], "no_contact": [], "left": [], "val": []}
    broken = []
    for s, subject in DEX_SUBJECTS.items():
        for pos in range(5):
            seq = f"{subject[:8]}_{141754 + pos:06d}"
            seq_dir = root / subject / seq
            left = s == 0 and pos == 1
            test = s == 2 and pos == 4
            cams = DEX_SERIALS if (s == 0 and pos == 0) else DEX_SERIALS[:1]
            num_frames = 6 if (s == 0 and pos == 0) else (11 if test else 1)
            grasp_ind = pos % 2
            ycb_ids = [4, 16]
            meta = {"serials": list(cams), "num_frames": num_frames, "ycb_ids": ycb_ids,
                    "ycb_grasp_ind": grasp_ind, "mano_sides": ["left" if left else "right"],
                    "mano_calib": [subject.replace("-", "_")], "pcd_depth_min": 0.1}
            seq_dir.mkdir(parents=True, exist_ok=True)
            (seq_dir / "meta.yml").write_text(yaml.safe_dump(meta))
            grasp = ycb_ids[grasp_ind]
            mv, mf = model_verts[grasp]
            for c, serial in enumerate(cams):
                K = _dex_intrinsics(serial)
                cam_dir = seq_dir / serial
                cam_dir.mkdir(parents=True, exist_ok=True)
                for fr in range(num_frames):
                    sid = f"{s + 1:02d}_{seq}_{serial}_{fr:06d}"
                    pose_m = np.concatenate([_rot_vec(rng), rng.normal(0, 0.5, 45), [0, 0, 0]])
                    with torch.no_grad():
                        out = pca_layer(torch.from_numpy(pose_m[None, :48]),
                                        torch.from_numpy(betas[s])[None])
                    verts, joints = out.vertices[0].numpy(), out.joints[0].numpy()
                    # the translation that puts the hand's centre off the image centre, 62 cm
                    # away (the layer adds it to every vertex and joint)
                    trans = np.array([0.06 + 0.01 * c, -0.03, 0.62]) - verts.mean(0)
                    pose_m[48:] = trans
                    verts, joints = verts + trans, joints + trans
                    R = _rotation(rng)
                    anchor = verts[np.argmin(verts[:, 2])]  # hand vertex nearest the camera
                    far = test and fr == 5
                    # object vertex 0 placed 1 mm from the anchor (10 cm away when `far`)
                    t = anchor + np.array([0.0, 0.0, -0.001 - (0.1 if far else 0.0)]) - R @ mv[0]
                    others = np.stack([np.eye(3, 4)] * 2).astype(np.float64)
                    others[:, :, 3] = [0.3, 0.3, 1.5]
                    pose_y = others.copy()
                    pose_y[grasp_ind, :, :3], pose_y[grasp_ind, :, 3] = R, t
                    obj_verts = mv @ R.T + t
                    no_hand = s == 0 and pos == 0 and c == 1 and fr == 5
                    j3 = -np.ones((1, 21, 3)) if no_hand else joints[None]
                    uv = joints @ K.T
                    j2 = -np.ones((1, 21, 2)) if no_hand else (uv[:, :2] / uv[:, 2:3])[None]
                    img, lab = _draw((480, 640), K, [(obj_verts, mf, (40, 60, 200), grasp)]
                                     + ([] if no_hand else
                                        [(verts, asset.faces, (230, 180, 150), 255)]))
                    selected = fr % 5 == 0
                    label_path = cam_dir / f"labels_{fr:06d}.npz"
                    if selected or fr == 1:  # unselected frames: a few files suffice
                        cv2.imwrite(str(cam_dir / f"color_{fr:06d}.jpg"), img[..., ::-1],
                                    [cv2.IMWRITE_JPEG_QUALITY, 95])
                        np.savez(label_path, seg=lab, pose_y=pose_y.astype(np.float32),
                                 pose_m=pose_m[None].astype(np.float32),
                                 joint_3d=j3.astype(np.float32),
                                 joint_2d=j2.astype(np.float32))
                    if s == 0 and pos == 3:
                        label_path.write_bytes(b"PK\x03\x04 not really a zip")
                    if not selected:
                        continue
                    if left:
                        excluded["left"].append(sid)
                    elif s == 0 and pos == 4:
                        excluded["val"].append(sid)
                    elif no_hand:
                        excluded["no_hand"].append(sid)
                    elif far:
                        excluded["no_contact"].append(sid)
                    elif s == 0 and pos == 3:
                        broken.append(sid)
                    else:
                        expected["test" if test else "train"].append(sid)
                    frames[sid] = {"joints": joints, "verts": verts, "obj_verts": obj_verts,
                                   "R": R, "t": t, "offset": (mv.min(0) + mv.max(0)) / 2,
                                   "model_verts": mv, "betas": betas[s], "pose_m": pose_m,
                                   "K": K, "image": img, "label": lab, "grasp": grasp}
    return {"frames": frames, "train": sorted(expected["train"]),
            "test": sorted(expected["test"]), "excluded": excluded, "broken": broken}


def _rot_vec(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v) * rng.uniform(0.3, 2.5)
