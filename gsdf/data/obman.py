"""ObMan (Hasson et al. 2019) -> the canonical layout.

The download (https://www.di.ens.fr/willow/research/obman/data/) holds ``{train,val,test}/`` with
``rgb/{id:08d}.jpg`` (the 256x256 images), ``segm/{id}.png`` and ``meta/{id}.pkl``; the objects
are ShapeNetCore.v2 models. Conventions followed (verified at the source):

* 3-D values of the meta (``coords_3d``, ``verts_3d``, ``affine_transform``) are in Blender's
  camera frame (y up, the visible half-space z < 0); the OpenCV frame is ``diag(1, -1, -1)``
  applied to them: hassony2/obman obman/obman.py lines 62-63 (``cam_extr``), 316-333
  (``get_joints3d`` / ``get_verts3d``); zerchen/gSDF preprocess/cocoify_obman.py lines 67, 97-98.
* No intrinsics in the meta: fx = fy = 480, cx = cy = 128 for the 256x256 images
  (obman/obman.py lines 59-60; gSDF datasets/obman/obman.py lines 78-81).
* ``affine_transform`` maps the ShapeNet model to Blender camera space *including* the object
  scale; the canonical ``obj_transform`` keeps the rotation of its polar decomposition and the
  translation, then the frame change (cocoify_obman.py lines 113-116). The object mesh is the
  model posed by the full affine transform (obman.py ``get_obj_verts_faces``, lines 352-377), so
  the model is never scaled a second time; rest corners are the box of
  ``inverse(obj_transform) @ mesh`` (cocoify_obman.py lines 32-56).
* ``obj_path`` / the ShapeNet template carry the authors' absolute prefix
  (``/sequoia/data2/dataset/shapenet/ShapeNetCore.v2``, obman.py lines 82 and 353-356): the model
  is re-rooted as ``{shapenet_root}/{class_id}/{sample_id}/models/model_normalized.obj``.
* The hand mesh is ``verts_3d`` with MANO's faces closed at the wrist (the reference's
  ``closed_fmano``, cocoify_obman.py line 28), part labels from MANO's skinning weights.
* ``hand_pose``: finger pose = ``pca_pose @ hands_components`` with no mean, global rotation the
  Procrustes fit of that hand to ``verts_3d`` (cocoify_obman.py lines 29 and 100-110,
  ``ManoLayer(..., use_pca=True, flat_hand_mean=True)``); ``hand_shape`` zeros (gSDF
  datasets/obman/obman.py line 87). ``hand_trans`` (ours) puts the wrist on ``coords_3d[0]``.
* Ids are the 8-digit file names; they have gaps and each split is numbered on its own. A split
  file (the reference's ``train_87k.json`` / ``test_6k.json``: a JSON list of 8-digit strings,
  gSDF datasets/obman/obman.py lines 30-32) restricts a split. ``video_id`` = the id as an
  integer (each sample is its own sequence, gSDF datasets/obman/obman.py line 70), frame 0.
* Segmentation: channel 0 of ``segm/{id}.png`` as OpenCV reads it, right hand = 22 or 24, object
  = 100 (obman.py ``get_segm`` from line 287 and ``_get_segm`` from line 478).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import scipy.linalg
import torch
import trimesh
from scipy.spatial.transform import Rotation

from gsdf.data.raw import (
    CROP_SIZE,
    Excluded,
    Record,
    SampleError,
    box_corners,
    check_finite,
    layout_error,
    load_object_mesh,
    pixel_box,
    read_image,
    transform_points,
)
from gsdf.hand import HandAsset, HandLayer, pca_to_axis_angle

# Blender camera -> OpenCV camera (obman/obman.py lines 62-63).
CAM_EXTR = np.diag([1.0, -1.0, -1.0])
# Intrinsics of the 256x256 images (obman/obman.py lines 59-60).
CAM_INTR = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])
# ShapeNet model of a sample (obman/obman.py line 82, without the authors' prefix).
SHAPENET_MODEL = "{class_id}/{sample_id}/models/model_normalized.obj"
# Segmentation values (obman/obman.py lines 478-487): right hand 22 / 24, object 100.
SEGM_RIGHT_HAND = (22, 24)
SEGM_OBJECT = 100
# Split folders of the download for our splits (the reference trains on train/, tests on test/).
SPLIT_FOLDERS = {"train": "train", "test": "test"}


def raw_meta_dir(root: str | Path, split: str) -> Path:
    """``{root}/{split}/meta``: the annotation pickles of a split of the ObMan download."""
    return Path(root).expanduser() / SPLIT_FOLDERS[split] / "meta"

LAYOUT = """  datasets.obman.root/            the ObMan download
    train/ rgb/00000000.jpg ... segm/00000000.png ... meta/00000000.pkl ...
    test/  (same)
  datasets.obman.shapenet_root/   ShapeNetCore.v2
    02876657/1a7ba1f4c892e2da30711cdbdbc73924/models/model_normalized.obj ...
  datasets.obman.split_files:     {train: train_87k.json, test: test_6k.json} (JSON lists of
                                  8-digit ids) or null for every sample of the split folder"""

# Keys of the released meta pickles that prepare reads.
META_KEYS = ("coords_3d", "verts_3d", "affine_transform", "pca_pose", "side")


def shapenet_relpath(meta: Mapping[str, Any]) -> str:
    """``{class_id}/{sample_id}/models/model_normalized.obj`` of a sample's object.

    From ``class_id`` / ``sample_id`` (the released loader's way, obman.py lines 153-154), else
    from the last folders of ``obj_path`` (whatever the authors' prefix).
    """
    cls, sid = meta.get("class_id"), meta.get("sample_id")
    if cls is not None and sid is not None:
        return SHAPENET_MODEL.format(class_id=str(cls), sample_id=str(sid))
    obj_path = meta.get("obj_path")
    if obj_path is None:
        raise SampleError("meta has neither class_id/sample_id nor obj_path")
    parts = PurePosixPath(str(obj_path).replace("\\", "/")).parts
    if "models" not in parts or parts.index("models") < 2:
        raise SampleError(f"meta obj_path {obj_path!r} is not .../CLASS/SAMPLE/models/FILE")
    i = len(parts) - 1 - parts[::-1].index("models")
    return SHAPENET_MODEL.format(class_id=parts[i - 2], sample_id=parts[i - 1])


def read_split_file(path: str | Path, key: str) -> list[str]:
    """The ids of a split file (JSON list of 8-digit id strings)."""
    path = Path(path)
    if not path.is_file():
        raise layout_error(key, str(path), "split file not found", LAYOUT)
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise layout_error(key, str(path), f"not a JSON file ({err})", LAYOUT) from err
    if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
        raise layout_error(key, str(path), "expected a JSON list of 8-digit id strings", LAYOUT)
    return sorted({f"{int(i):08d}" if str(i).isdigit() else str(i) for i in ids})


class ObManReader:
    """Reads one ObMan split into :class:`~gsdf.data.raw.Record` objects.

    Args:
        cfg: the ``datasets.obman`` section (``root``, ``shapenet_root``, ``split_files``).
        asset: the MANO right hand (``load_mano(hand.mano_root)``).
        split: ``train`` or ``test``.

    Raises:
        RawDataError: missing root, split folder, ShapeNet root or split file.
    """

    name = "obman"

    def __init__(self, cfg: Mapping[str, Any], asset: HandAsset, split: str):
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"split must be one of {sorted(SPLIT_FOLDERS)}, got {split!r}")
        self.cfg, self.asset, self.split = dict(cfg), asset, split
        root = cfg.get("root")
        if not root:
            raise layout_error("datasets.obman.root", root, "not set", LAYOUT)
        self.root = Path(root).expanduser()
        self.split_dir = self.root / SPLIT_FOLDERS[split]
        if not (self.split_dir / "meta").is_dir():
            raise layout_error("datasets.obman.root", str(root),
                               f"no folder {self.split_dir / 'meta'}", LAYOUT)
        shapenet = cfg.get("shapenet_root")
        if not shapenet:
            raise layout_error("datasets.obman.shapenet_root", shapenet, "not set", LAYOUT)
        self.shapenet_root = Path(shapenet).expanduser()
        if not self.shapenet_root.is_dir():
            raise layout_error("datasets.obman.shapenet_root", str(shapenet),
                               "folder not found", LAYOUT)
        split_file = (cfg.get("split_files") or {}).get(split)
        self.split_ids = (None if split_file is None else
                          set(read_split_file(split_file, f"datasets.obman.split_files.{split}")))
        self.layer = HandLayer(asset, flat_hand_mean=True).double()
        self.rest_wrist = asset.rest_joints()[0]
        self._meta_cache: dict[str, dict | SampleError] = {}

    # --- listing ----------------------------------------------------------------------------

    def sample_ids(self) -> list[str]:
        """Sorted ids of the split: the meta files present, restricted to the split file.

        Ids of the split file without a meta file are ignored here and reported by
        :meth:`missing_from_split_file`.
        """
        present = sorted(p.stem for p in (self.split_dir / "meta").glob("*.pkl"))
        if self.split_ids is None:
            return present
        return [i for i in present if i in self.split_ids]

    def missing_from_split_file(self) -> list[str]:
        """Ids the split file lists that have no meta file."""
        if self.split_ids is None:
            return []
        present = {p.stem for p in (self.split_dir / "meta").glob("*.pkl")}
        return sorted(self.split_ids - present)

    # --- checks before any sample -----------------------------------------------------------

    def check_shard(self, ids: Sequence[str]) -> None:
        """Stop before the first sample if a ShapeNet model of these samples is missing.

        Raises:
            RawDataError: naming ``datasets.obman.shapenet_root``, the missing models (first 5)
                and their count.
        """
        missing = []
        for sid in ids:
            meta = self._meta(sid)
            if isinstance(meta, SampleError):
                continue  # reported as a skipped sample
            try:
                rel = shapenet_relpath(meta)
            except SampleError as err:
                self._meta_cache[sid] = err
                continue
            if not (self.shapenet_root / rel).is_file():
                missing.append(rel)
        if missing:
            uniq = sorted(set(missing))
            raise layout_error(
                "datasets.obman.shapenet_root", str(self.shapenet_root),
                f"{len(uniq)} ShapeNet model(s) used by {len(missing)} sample(s) of this shard "
                f"are missing, e.g. {uniq[:5]}", LAYOUT)

    def _meta(self, sid: str) -> dict | SampleError:
        if sid not in self._meta_cache:
            path = self.split_dir / "meta" / f"{sid}.pkl"
            try:
                with open(path, "rb") as fh:
                    meta = pickle.load(fh, encoding="latin1")
                if not isinstance(meta, dict):
                    raise SampleError(f"{path}: expected a dict, got {type(meta).__name__}")
                lacking = [k for k in META_KEYS if k not in meta]
                if lacking:
                    raise SampleError(f"{path}: meta lacks key(s) {lacking}")
                self._meta_cache[sid] = meta
            except SampleError as err:
                self._meta_cache[sid] = err
            except Exception as err:  # unpickling raises many kinds of errors
                self._meta_cache[sid] = SampleError(
                    f"{path}: unreadable meta pickle ({type(err).__name__}: {err})")
        return self._meta_cache[sid]

    def source(self, sid: str) -> str:
        """The raw file a sample comes from (relative to the root)."""
        return f"{SPLIT_FOLDERS[self.split]}/meta/{sid}.pkl"

    # --- one sample -------------------------------------------------------------------------

    def read(self, sid: str) -> Record:
        """The canonical record of sample ``sid``.

        Raises:
            SampleError: unreadable files or a broken annotation.
            Excluded: a left hand.
        """
        meta = self._meta(sid)
        self._meta_cache.pop(sid, None)  # read once
        if isinstance(meta, SampleError):
            raise meta
        if str(meta["side"]) != "right":
            # the reference uses right hands only (gSDF datasets/obman/obman.py line 84)
            raise Excluded("left hand (right hands only)")
        nv = self.asset.num_vertices
        joints = check_finite("coords_3d", meta["coords_3d"], (21, 3)) @ CAM_EXTR.T
        verts = check_finite("verts_3d", meta["verts_3d"], (nv, 3)) @ CAM_EXTR.T
        affine = check_finite("affine_transform", meta["affine_transform"], (4, 4))
        pca = check_finite("pca_pose", meta["pca_pose"]).reshape(-1)
        if not 1 <= len(pca) <= 45:
            raise SampleError(f"annotation 'pca_pose' has {len(pca)} values, expected 1..45")
        if np.linalg.det(affine[:3, :3]) <= 0:
            raise SampleError("affine_transform is singular or mirrors the object")

        # object: the model posed by the full affine transform (scale included), OpenCV frame
        rel = shapenet_relpath(meta)
        model_v, model_f = load_object_mesh(self.shapenet_root / rel)
        obj_v = transform_points(affine, model_v) @ CAM_EXTR.T
        obj_tf = np.eye(4)
        obj_tf[:3, :3] = scipy.linalg.polar(affine[:3, :3])[0]
        obj_tf[:3, 3] = affine[:3, 3]
        obj_tf = np.diag([1.0, -1.0, -1.0, 1.0]) @ obj_tf
        rest = transform_points(np.linalg.inv(obj_tf), obj_v)
        rest_corners = box_corners(rest.min(0), rest.max(0))

        # hand pose: PCA finger pose (no mean), wrist rotation fitted by Procrustes
        finger = pca_to_axis_angle(self.asset, pca, flat_hand_mean=True)
        pose = np.concatenate([np.zeros(3), finger])
        with torch.no_grad():
            unrotated = self.layer(torch.from_numpy(pose)[None]).vertices[0].numpy()
        matrix, _, _ = trimesh.registration.procrustes(unrotated, verts, reflection=False,
                                                       scale=False)
        pose[:3] = Rotation.from_matrix(matrix[:3, :3]).as_rotvec()

        image = read_image(self.split_dir / "rgb" / f"{sid}.jpg")
        if image.shape[:2] != (CROP_SIZE, CROP_SIZE):
            image = cv2.resize(image, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
            # (the released images are 256x256; others are resized and the intrinsics kept)
        mask = self._mask(sid)
        rec_meta = {
            "cam_intr": CAM_INTR.copy(),
            "hand_joints_3d": joints,
            "hand_pose": pose,
            "hand_shape": np.zeros(10),
            "hand_trans": joints[0] - self.rest_wrist,
            "hand_side": "right",
            "obj_transform": obj_tf,
            "obj_center_3d": obj_tf[:3, 3].copy(),
            "obj_corners_3d": transform_points(obj_tf, rest_corners),
            "obj_rest_corners_3d": rest_corners,
            "video_id": int(sid) if sid.isdigit() else 0,
            "frame_idx": 0,
            "bbox": pixel_box(CAM_INTR, np.concatenate([verts, obj_v])),
            "obj_family": str(meta.get("class_id", rel.split("/")[0])),
        }
        return Record(id=sid, rgb=image, mask=mask, hand_vertices=verts,
                      hand_faces=self.asset.faces_closed, hand_parts=self.asset.vertex_parts,
                      obj_vertices=obj_v, obj_faces=model_f, meta=rec_meta)

    def _mask(self, sid: str) -> np.ndarray | None:
        """Canonical mask from ``segm/{id}.png`` (None if the file is absent)."""
        path = self.split_dir / "segm" / f"{sid}.png"
        if not path.is_file():
            return None
        segm = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if segm is None:
            raise SampleError(f"{path}: not a decodable image")
        chan = segm[:, :, 0]  # obman.py get_segm: img[:, :, 0] of cv2.imread(path, 1)
        mask = np.zeros(chan.shape, dtype=np.uint8)
        mask[np.isin(chan, SEGM_RIGHT_HAND)] = 1
        mask[chan == SEGM_OBJECT] = 2
        if mask.shape != (CROP_SIZE, CROP_SIZE):
            mask = cv2.resize(mask, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_NEAREST)
        return mask
