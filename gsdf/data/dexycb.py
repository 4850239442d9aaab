"""DexYCB (Chao et al. 2021) -> the canonical layout.

The download (https://dex-ycb.github.io) holds one folder per subject
(``20200709-subject-01/20200709_141754/836212060125/color_000000.jpg, labels_000000.npz``, a
``meta.yml`` per sequence), ``calibration/`` (camera intrinsics, MANO betas per subject) and
``models/`` (the YCB objects). Conventions followed (verified at the source):

* Subjects, camera serials, YCB classes and the s0-s3 setups are the toolkit's
  (NVlabs/dex-ycb-toolkit dex_ycb_toolkit/dex_ycb.py lines 11-57 and 127-186); a setup selects
  sequences by their *position in the sorted subject folder* (line 208), cameras by serial.
  Only ``train`` and ``test`` are read (the toolkit's ``val`` is unused, as in gSDF).
* Labels (``labels_{frame:06d}.npz``: ``pose_y`` (n, 3, 4), ``pose_m`` (1, 51), ``joint_3d``
  (1, 21, 3), ``joint_2d`` (1, 21, 2), ``seg``) are already in the OpenCV frame of their camera,
  metres. Intrinsics: ``calibration/intrinsics/{serial}_640x480.yml``, key ``color``
  (dex_ycb.py lines 193-197).
* ``pose_m[:48]`` are the global rotation and 45 PCA coefficients with the MANO mean pose added
  (manopth ``ManoLayer(flat_hand_mean=False, ncomps=45, use_pca=True)``,
  dex_ycb_toolkit/layers/mano_layer.py line 27; gSDF preprocess/cocoify_dexycb.py lines
  77-79), ``pose_m[48:51]`` the translation: the wrist is the rest-pose root ``J0(betas)`` plus
  that translation (the root rotates about ``J0``), not the translation alone. Betas: the
  subject's ``calibration/mano_{mano_calib}/mano.yml`` (dex_ycb.py lines 228-233). The canonical
  ``hand_pose`` is the resulting 48-d axis-angle pose (mean included), ``hand_trans`` the
  translation, ``hand_joints_3d`` the label's ``joint_3d`` (cocoify_dexycb.py lines 82-85).
* The grasped object is ``ycb_ids[ycb_grasp_ind]``; its rest frame is centred on the model's
  bounding-box centre, not the model origin: ``obj_transform = [R, R @ offset + t]``
  (cocoify_dexycb.py lines 87-100). The object mesh is the whole model posed by ``pose_y``.
* Right hand only; every 5th frame (cocoify_dexycb.py line 62); frames without a hand annotation
  (``joint_3d`` all -1) are dropped; a test frame is kept only where some object vertex is within
  5 mm of a hand vertex (cocoify_dexycb.py lines 124-127).
* Crop: the box of the 2-D joints and projected object corners, padded by 10 px, squared and
  enlarged 1.25 times (cocoify_dexycb.py lines 106-116, common/utils/img_utils.py lines
  102-117), warped to 256x256 (img_utils.py ``generate_patch_image``); ``cam_intr`` is updated
  so that projecting ``hand_joints_3d`` lands on the crop.
* Ids: ``{subject:02d}_{sequence}_{serial}_{frame:06d}`` (the reference's file name with a padded
  frame, cocoify_dexycb.py line 66); ``video_id`` numbers the camera sequence (subject, sequence,
  camera), ``frame_idx`` the frame. Paths are never parsed from fixed positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from scipy.spatial import cKDTree

from gsdf.data.raw import (
    CROP_SIZE,
    Excluded,
    Record,
    SampleError,
    box_corners,
    check_finite,
    crop_affine,
    crop_intrinsics,
    layout_error,
    load_object_mesh,
    pixel_box,
    project,
    read_image,
    square_box,
    transform_points,
    warp,
)
from gsdf.hand import HandAsset, HandLayer

# dex_ycb_toolkit/dex_ycb.py lines 11-22 (the released folder names, also in the toolkit's
# README "$DEX_YCB_DIR should be a folder with the following structure"), 24-33, 35-57.
SUBJECTS = tuple(f"{date}-subject-{i + 1:02d}" for i, date in enumerate(
    ("20200709", "20200813", "20200820", "20200903", "20200908", "20200918", "20200928",
     "20201002", "20201015", "20201022")))
# Names of the same subjects in earlier versions of the toolkit; accepted as well.
OLD_SUBJECTS = ("20200709-weiy", "20200813-ceppner", "20200820-amousavian", "20200903-ynarang",
                "20200908-yux", "20200918-ftozetoramos", "20200928-ahanda", "20201002-dieterf",
                "20201015-ychao", "20201022-lmanuelli")
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263", "932122060857",
           "932122060861", "932122061900", "932122062010")
YCB_CLASSES = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box",
    4: "005_tomato_soup_can", 5: "006_mustard_bottle", 6: "007_tuna_fish_can",
    7: "008_pudding_box", 8: "009_gelatin_box", 9: "010_potted_meat_can", 10: "011_banana",
    11: "019_pitcher_base", 12: "021_bleach_cleanser", 13: "024_bowl", 14: "025_mug",
    15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors", 18: "040_large_marker",
    19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}
_ALL10, _ALL8 = tuple(range(10)), tuple(range(8))


def _s0_train(i: int) -> bool:
    return i % 5 != 4


def _s0_test(i: int) -> bool:
    return i % 5 == 4


def _s3_train(i: int) -> bool:
    return i // 5 not in (3, 7, 11, 15, 19)


def _s3_test(i: int) -> bool:
    return i // 5 in (7, 11, 15)


def _every(i: int) -> bool:
    return True


# (subject indices, serial indices, sequence-position filter) per setup and split
# (dex_ycb_toolkit/dex_ycb.py lines 127-186).
SETUPS = {
    "s0": {"train": (_ALL10, _ALL8, _s0_train),
           "test": ((2, 3, 4, 5, 6, 7, 8, 9), _ALL8, _s0_test)},
    "s1": {"train": ((0, 1, 2, 3, 4, 5, 9), _ALL8, _every), "test": ((7, 8), _ALL8, _every)},
    "s2": {"train": (_ALL10, (0, 1, 2, 3, 4, 5), _every), "test": (_ALL10, (7,), _every)},
    "s3": {"train": (_ALL10, _ALL8, _s3_train), "test": (_ALL10, _ALL8, _s3_test)},
}
FRAME_STEP = 5          # every 5th frame (cocoify_dexycb.py line 62)
CONTACT_M = 0.005       # test frames: hand and object within 5 mm (cocoify_dexycb.py line 126)
SEG_HAND = 255          # the labels' hand segmentation value

LAYOUT = """  datasets.dexycb.root/
    20200709-subject-01/ ... 20201022-subject-10/  one folder per subject
      20200709_141754/meta.yml                      one folder per sequence (sorted = position)
      20200709_141754/836212060125/color_000000.jpg, labels_000000.npz ...
    calibration/intrinsics/836212060125_640x480.yml ...
    calibration/mano_{meta.yml mano_calib}/mano.yml (betas)
    models/006_mustard_bottle/textured_simple.obj ..."""


def _yaml(path: Path, key: str, root: Path) -> dict:
    if not path.is_file():
        raise layout_error(key, str(root), f"file {path} not found", LAYOUT)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise layout_error(key, str(root), f"{path} is not readable YAML ({err})",
                           LAYOUT) from err
    if not isinstance(data, dict):
        raise layout_error(key, str(root), f"{path}: expected a mapping", LAYOUT)
    return data


@dataclass(frozen=True)
class Candidate:
    """One frame of one camera that the setup, the side and the frame step select."""

    id: str
    subject: int
    sequence: str
    serial: str
    frame: int
    video_id: int
    seq_key: str
    left: bool = False


class DexYCBReader:
    """Reads one DexYCB split (setup ``datasets.dexycb.split``) into records.

    Args:
        cfg: the ``datasets.dexycb`` section (``root``, ``split``).
        asset: the MANO right hand.
        split: ``train`` or ``test``.

    Raises:
        RawDataError: missing root, calibration, model or sequence metadata.
    """

    name = "dexycb"

    def __init__(self, cfg: Mapping[str, Any], asset: HandAsset, split: str):
        setup = str(cfg.get("split", "s0"))
        if setup not in SETUPS:
            raise layout_error("datasets.dexycb.split", setup,
                               f"unknown setup; allowed: {sorted(SETUPS)}", LAYOUT)
        if split not in SETUPS[setup]:
            raise ValueError(f"split must be train or test, got {split!r}")
        root = cfg.get("root")
        if not root:
            raise layout_error("datasets.dexycb.root", root, "not set", LAYOUT)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise layout_error("datasets.dexycb.root", str(root), "folder not found", LAYOUT)
        for sub in ("calibration", "models"):
            if not (self.root / sub).is_dir():
                raise layout_error("datasets.dexycb.root", str(root), f"no folder {sub}/",
                                   LAYOUT)
        self.setup, self.split, self.asset = setup, split, asset
        self.layer = HandLayer(asset, use_pca=True, ncomps=45, flat_hand_mean=False).double()
        self.plain = HandLayer(asset).double()
        self._sequences: dict[str, dict] = {}
        self._intrinsics: dict[str, np.ndarray] = {}
        self._models: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.missing_subjects: list[str] = []
        self._subject_dirs: dict[int, Path] = {}
        self.candidates = self._list()

    # --- listing and checks -----------------------------------------------------------------

    def _list(self) -> list[Candidate]:
        subjects, serial_ind, keep = SETUPS[self.setup][self.split]
        key = "datasets.dexycb.root"
        out: list[Candidate] = []
        for s in subjects:
            subject_dir = self.root / SUBJECTS[s]
            if not subject_dir.is_dir() and (self.root / OLD_SUBJECTS[s]).is_dir():
                subject_dir = self.root / OLD_SUBJECTS[s]
            if not subject_dir.is_dir():
                self.missing_subjects.append(SUBJECTS[s])
                continue
            self._subject_dirs[s] = subject_dir
            # position in the sorted subject folder (dex_ycb.py line 208)
            sequences = sorted(p.name for p in subject_dir.iterdir() if p.is_dir())
            for pos, seq in enumerate(sequences):
                if not keep(pos):
                    continue
                meta = _yaml(subject_dir / seq / "meta.yml", key, self.root)
                try:
                    sides = list(meta["mano_sides"])
                    calib = str(meta["mano_calib"][0])
                    ycb_ids = [int(i) for i in meta["ycb_ids"]]
                    grasp = ycb_ids[int(meta["ycb_grasp_ind"])]
                    num_frames = int(meta["num_frames"])
                except (KeyError, IndexError, TypeError, ValueError) as err:
                    raise layout_error(key, str(self.root), f"{subject_dir / seq / 'meta.yml'}"
                                       f" lacks or has a bad key ({err})", LAYOUT) from err
                left = sides[0] != "right"
                seq_key = f"{subject_dir.name}/{seq}"
                if not left:
                    self._sequences[seq_key] = {"betas": self._betas(calib), "ycb_ids": ycb_ids,
                                                "grasp": grasp, "ycb_grasp_ind":
                                                int(meta["ycb_grasp_ind"])}
                    self._model_path(grasp)  # checks the model exists
                for c in serial_ind:
                    serial = SERIALS[c]
                    if not (subject_dir / seq / serial).is_dir():
                        continue
                    if not left:
                        self._intr(serial)
                    video_id = (s * 1000 + pos) * 10 + c
                    for f in range(0, num_frames, FRAME_STEP):
                        out.append(Candidate(
                            id=f"{s + 1:02d}_{seq}_{serial}_{f:06d}", subject=s, sequence=seq,
                            serial=serial, frame=f, video_id=video_id, seq_key=seq_key,
                            left=left))
        if not any(not c.left for c in out):
            raise layout_error(key, str(self.root),
                               f"no sequence of setup {self.setup} {self.split} found with a "
                               "right hand and a camera folder of the setup "
                               f"(subjects expected: {[SUBJECTS[s] for s in subjects]})", LAYOUT)
        return out

    def _betas(self, calib: str) -> np.ndarray:
        path = self.root / "calibration" / f"mano_{calib}" / "mano.yml"
        data = _yaml(path, "datasets.dexycb.root", self.root)
        betas = np.asarray(data.get("betas", []), dtype=np.float64)
        if betas.shape != (10,) or not np.isfinite(betas).all():
            raise layout_error("datasets.dexycb.root", str(self.root),
                               f"{path}: 'betas' must be 10 numbers", LAYOUT)
        return betas

    def _intr(self, serial: str) -> np.ndarray:
        if serial not in self._intrinsics:
            path = self.root / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
            data = _yaml(path, "datasets.dexycb.root", self.root)
            try:
                c = data["color"]
                K = np.array([[c["fx"], 0.0, c["ppx"]], [0.0, c["fy"], c["ppy"]],
                              [0.0, 0.0, 1.0]], dtype=np.float64)
            except (KeyError, TypeError) as err:
                raise layout_error("datasets.dexycb.root", str(self.root),
                                   f"{path}: expected color: {{fx, fy, ppx, ppy}} ({err})",
                                   LAYOUT) from err
            self._intrinsics[serial] = K
        return self._intrinsics[serial]

    def _model_path(self, ycb_id: int) -> Path:
        name = YCB_CLASSES.get(ycb_id)
        path = self.root / "models" / str(name) / "textured_simple.obj"
        if name is None or not path.is_file():
            raise layout_error("datasets.dexycb.root", str(self.root),
                               f"YCB model of object {ycb_id} ({name}) not found at {path}",
                               LAYOUT)
        return path

    def _model(self, ycb_id: int) -> tuple[np.ndarray, np.ndarray]:
        if ycb_id not in self._models:
            self._models[ycb_id] = load_object_mesh(self._model_path(ycb_id))
        return self._models[ycb_id]

    def sample_ids(self) -> list[str]:
        """Ids of every candidate frame (before the per-frame exclusions)."""
        return [c.id for c in self.candidates]

    def check_shard(self, ids) -> None:
        """Everything is checked when listing (calibration, models); nothing left to check."""

    def source(self, sid: str) -> str:
        c = self._by_id()[sid]
        return f"{c.seq_key}/{c.serial}/labels_{c.frame:06d}.npz"

    def _by_id(self) -> dict[str, Candidate]:
        if not hasattr(self, "_index"):
            self._index = {c.id: c for c in self.candidates}
        return self._index

    # --- one sample -------------------------------------------------------------------------

    def read(self, sid: str) -> Record:
        """The canonical record of frame ``sid``.

        Raises:
            Excluded: a left hand; no hand annotation; a test frame without contact.
            SampleError: unreadable image or labels, broken annotation.
        """
        c = self._by_id()[sid]
        if c.left:  # right hands only (cocoify_dexycb.py line 55)
            raise Excluded("left hand (right hands only)")
        seq = self._sequences[c.seq_key]
        folder = self._subject_dirs[c.subject] / c.sequence / c.serial
        label_path = folder / f"labels_{c.frame:06d}.npz"
        try:
            with np.load(label_path, allow_pickle=False) as z:
                label = {k: z[k] for k in ("pose_y", "pose_m", "joint_3d", "joint_2d", "seg")
                         if k in z}
        except Exception as err:  # missing, truncated or not an npz
            raise SampleError(f"{label_path}: unreadable labels ({type(err).__name__}: "
                              f"{err})") from err
        for k in ("pose_y", "pose_m", "joint_3d"):
            if k not in label:
                raise SampleError(f"{label_path}: labels lack key {k!r}")
        joints = np.asarray(label["joint_3d"], dtype=np.float64).reshape(-1, 3)
        if joints.shape != (21, 3) or np.all(joints == -1):
            raise Excluded("no hand annotation")
        joints = check_finite("joint_3d", joints, (21, 3))
        pose_m = check_finite("pose_m", label["pose_m"]).reshape(-1)
        if pose_m.shape != (51,):
            raise SampleError(f"{label_path}: pose_m has {pose_m.size} values, expected 51")
        pose_y = check_finite("pose_y", label["pose_y"])
        gi = seq["ycb_grasp_ind"]
        if pose_y.ndim != 3 or pose_y.shape[1:] != (3, 4) or len(pose_y) <= gi:
            raise SampleError(f"{label_path}: pose_y has shape {pose_y.shape}, expected "
                              f"({len(seq['ycb_ids'])}, 3, 4)")

        # hand: manopth with the mean pose added, the subject's betas, the label's translation
        betas = seq["betas"]
        with torch.no_grad():
            p = torch.from_numpy(pose_m[None, :48])
            full = self.layer.full_pose(p)[0].numpy()
            out = self.plain(torch.from_numpy(full)[None], torch.from_numpy(betas)[None],
                             torch.from_numpy(pose_m[None, 48:]))
        hand_v = out.vertices[0].numpy()

        # object: rest frame centred on the model's bounding-box centre
        model_v, model_f = self._model(seq["grasp"])
        R, t = pose_y[gi][:, :3], pose_y[gi][:, 3]
        offset = (model_v.min(0) + model_v.max(0)) / 2.0
        rest_corners = box_corners(model_v.min(0) - offset, model_v.max(0) - offset)
        obj_tf = np.eye(4)
        obj_tf[:3, :3], obj_tf[:3, 3] = R, R @ offset + t
        obj_v = model_v @ R.T + t
        corners = transform_points(obj_tf, rest_corners)

        if self.split == "test":
            dist, _ = cKDTree(hand_v).query(obj_v)
            if dist.min() > CONTACT_M:
                raise Excluded("test frame without hand-object contact (> 5 mm)")

        K = self._intr(c.serial)
        joints_2d = label.get("joint_2d")
        joints_2d = (project(K, joints) if joints_2d is None
                     else check_finite("joint_2d", joints_2d).reshape(21, 2))
        pts = np.concatenate([joints_2d, project(K, corners)])
        box = square_box(pts.min(0), pts.max(0))
        affine = crop_affine(box)
        K_crop = crop_intrinsics(K, affine)
        image = read_image(folder / f"color_{c.frame:06d}.jpg")
        rgb = warp(image, affine)
        mask = None
        if "seg" in label and np.asarray(label["seg"]).shape == image.shape[:2]:
            seg = np.asarray(label["seg"])
            m = np.zeros(seg.shape, dtype=np.uint8)
            m[seg == SEG_HAND] = 1
            m[seg == seq["grasp"]] = 2
            mask = warp(m, affine, nearest=True)
        meta = {
            "cam_intr": K_crop,
            "hand_joints_3d": joints,
            "hand_pose": full,
            "hand_shape": betas,
            "hand_trans": pose_m[48:],
            "hand_side": "right",
            "obj_transform": obj_tf,
            "obj_center_3d": obj_tf[:3, 3].copy(),
            "obj_corners_3d": corners,
            "obj_rest_corners_3d": rest_corners,
            "video_id": c.video_id,
            "frame_idx": c.frame,
            "bbox": pixel_box(K_crop, np.concatenate([hand_v, obj_v])),
            "obj_family": YCB_CLASSES[seq["grasp"]],
        }
        return Record(id=sid, rgb=rgb, mask=mask, hand_vertices=hand_v,
                      hand_faces=self.asset.faces_closed, hand_parts=self.asset.vertex_parts,
                      obj_vertices=obj_v, obj_faces=model_f, meta=meta)


__all__ = ["CROP_SIZE", "SETUPS", "SERIALS", "SUBJECTS", "YCB_CLASSES", "DexYCBReader"]
