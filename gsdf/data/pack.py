"""Packing (stage ``pack``, the reference's "cocoify", run by :mod:`gsdf.stages.pack`): one split
of the canonical layout plus its SDF shards -> ``annotations.json`` (COCO style) and three LMDB
databases (:mod:`gsdf.data.lmdb_io`).

``annotations.json``::

    {"info": {"format": "gsdf-annotations-v1", "dataset": ..., "split": ..., "count": S,
              "recon_scale": ..., "image_size": [H, W], "skipped": [{"id", "reason"}], "config"},
     "images": [{"id": i, "sample_id": id, "file_name": "rgb/{id}.jpg", "width": W,
                 "height": H}, ...],
     "annotations": [{"id": i, "image_id": i, "category_id": 1, "sample_id": id,
                      <every key of the meta JSON: cam_intr, hand_joints_3d, hand_pose,
                       hand_shape, hand_side, obj_transform, obj_center_3d, obj_corners_3d,
                       obj_rest_corners_3d, video_id, frame_idx, bbox, obj_family>,
                      "sdf_hand_num": [pos, neg], "sdf_obj_num": [pos, neg]}, ...],
     "categories": [{"id": 1, "name": "hand_object"}]}

Samples appear in the order of the dataset shard manifests. A sample is packed when its meta
JSON is complete, its JPEG decodes and its SDF shard holds it; otherwise it is skipped and listed
(with the reason) in ``info.skipped`` and in ``skipped.csv`` beside ``annotations.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsdf.data.lmdb_io import (
    RGB_FORMAT,
    SDF_COLUMNS,
    SDF_FORMAT,
    PackError,
    read_meta_info,
    write_lmdb,
)
from gsdf.data.sdf_shard import load_shard
from gsdf.paths import SplitLayout
from gsdf.utils.io import read_json

log = logging.getLogger(__name__)

ANNOTATIONS_FORMAT = "gsdf-annotations-v1"
META_KEYS = ("cam_intr", "hand_joints_3d", "hand_pose", "hand_shape", "obj_transform",
             "obj_center_3d", "obj_corners_3d", "obj_rest_corners_3d", "video_id", "frame_idx",
             "bbox")
META_SHAPES = {"cam_intr": (3, 3), "hand_joints_3d": (21, 3), "hand_pose": (48,),
               "hand_shape": (10,), "obj_transform": (4, 4), "obj_center_3d": (3,),
               "obj_corners_3d": (8, 3), "obj_rest_corners_3d": (8, 3), "bbox": (4,)}


@dataclass
class PackConfig:
    """Config section ``pack`` (science: what is stored). The LMDB write batch is a runtime
    setting of the stage (``gsdf pack --batch``), not config.

    Attributes:
        image_encoding: ``jpeg`` (store the JPEG bytes as they are) or ``raw`` (decoded uint8
            RGB, ~4x larger, no decoding when reading).
    """

    image_encoding: str = "jpeg"

    def __post_init__(self):
        if self.image_encoding not in ("jpeg", "raw"):
            raise ValueError(f"pack.image_encoding must be jpeg or raw, got {self.image_encoding}")


def check_meta(meta: dict, where: str) -> None:
    """Raise ``ValueError`` naming the key if a meta JSON lacks a key or has a bad shape."""
    for key in META_KEYS:
        if key not in meta:
            raise ValueError(f"{where}: meta has no key {key!r}")
    for key, shape in META_SHAPES.items():
        arr = np.asarray(meta[key], dtype=np.float64)
        if arr.shape != shape:
            raise ValueError(f"{where}: meta key {key!r} has shape {arr.shape}, expected {shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{where}: meta key {key!r} has NaN or infinite values")


def read_manifests(manifests: Sequence[str | Path]) -> tuple[list[str], list[dict]]:
    """(ids in manifest order, samples the dataset stage skipped) of a split's shard manifests."""
    ids: list[str] = []
    skipped: list[dict] = []
    for m in manifests:
        man = read_json(m)
        ids += [str(i) for i in man.get("ids", [])]
        skipped += [{"id": s.get("id"), "reason": f"dataset stage: {s.get('reason')}"}
                    for s in man.get("skipped", [])]
    return ids, skipped


def decode_jpeg(data: bytes, where: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR image of JPEG ``data``. Raises ``ValueError`` naming ``where``."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{where}: not a decodable image")
    return img


@dataclass
class ImageRecord:
    """What packing keeps of one image: its sample id and size (H, W)."""

    id: str
    size: tuple[int, int]


def write_rgb_lmdb(path: str | Path, images: Iterable[tuple[str, Path]], total_bytes: int,
                   num: int, encoding: str, skipped: list[dict], batch: int = 256
                   ) -> tuple[list[ImageRecord], dict]:
    """Write ``rgb.lmdb`` from ``(sample id, JPEG path)`` pairs, reading each file once.

    A file that is missing or does not decode is left out and appended to ``skipped``.

    Args:
        total_bytes: upper bound of the bytes stored (sizes the map).
        num: number of pairs.
        encoding: ``jpeg`` (bytes as they are) or ``raw`` (decoded RGB, one size for all).
        batch: values per LMDB transaction (runtime).
    Returns:
        (the images written, in order; the meta_info written).
    Raises:
        PackError: ``raw`` encoding with images of several sizes.
    """
    records: list[ImageRecord] = []
    layout: dict = {"encoding": encoding, "dtype": "uint8", "channels": "RGB"}

    def items() -> Iterator[tuple[str, bytes]]:
        for sid, jpeg in images:
            try:
                data = Path(jpeg).read_bytes()
                img = decode_jpeg(data, jpeg)
            except (ValueError, OSError) as err:
                log.warning("skipping %s: %s", sid, err)
                skipped.append({"id": sid, "reason": str(err).replace("\n", " ")})
                continue
            size = (int(img.shape[0]), int(img.shape[1]))
            if encoding == "raw":
                if records and size != records[0].size:
                    raise PackError(f"{path}: image_encoding raw needs one image size, found "
                                    f"{records[0].size} and {size} ({jpeg})")
                data = np.ascontiguousarray(img[:, :, ::-1]).tobytes()
            records.append(ImageRecord(sid, size))
            yield sid, data
        sizes = {r.size for r in records}
        if len(sizes) == 1:  # meta_info is written after the items are consumed
            layout["shape"] = list(next(iter(sizes))) + [3]

    meta = write_lmdb(path, items(), total_bytes, num, {"format": RGB_FORMAT, "layout": layout},
                      batch)
    return records, meta


def write_sdf_lmdb(path: str | Path, which: str, sdf_shards: Sequence[str | Path],
                   keep: set[str], total_rows: int, recon_scale: float, batch: int = 256
                   ) -> dict[str, list[int]]:
    """Write ``sdf_{which}.lmdb`` (``which`` = hand | obj) from the SDF shards, streamed shard by
    shard, for the ids in ``keep``. Returns ``id -> [pos_num, neg_num]``.

    Raises:
        PackError: the keys written disagree with ``keep``.
    """
    pos_num: list[int] = []
    neg_num: list[int] = []
    counts: dict[str, list[int]] = {}

    def items() -> Iterator[tuple[str, bytes]]:
        for shard_path in sdf_shards:
            shard = load_shard(shard_path, sets=(which,))
            for i, sid in enumerate(shard.ids):
                if sid not in keep:
                    continue
                s = shard.get(i, which)
                rows = np.empty((len(s.data), len(SDF_COLUMNS)), dtype=np.float32)
                rows[:, :5] = s.data
                rows[:, 5] = s.part
                pos_num.append(s.num_pos)
                neg_num.append(len(s.data) - s.num_pos)
                counts[sid] = [pos_num[-1], neg_num[-1]]
                yield sid, rows.tobytes()

    layout = {"dtype": "float32", "columns": list(SDF_COLUMNS),
              "rows": "pos_num rows outside the mesh (sdf > 0), then neg_num rows inside",
              "frame": "hand frame: (p - wrist) * recon_scale / 2, distances scaled alike"}
    info = {"format": SDF_FORMAT, "layout": layout, "dim": len(SDF_COLUMNS),
            "recon_scale": recon_scale, "pos_num": pos_num, "neg_num": neg_num}
    # pos_num/neg_num are filled while the items are consumed, before meta is written;
    # they follow the LMDB's own key order (its "index").
    written = write_lmdb(path, items(), total_rows * 4 * len(SDF_COLUMNS), len(keep), info,
                         batch)
    if set(written["keys"]) != keep:
        raise PackError(f"{path}: keys disagree with the packed samples")
    return counts


def coco_annotations(layout: SplitLayout, records: Sequence[ImageRecord], metas: dict[str, dict],
                     sdf_num: dict[str, dict[str, list[int]]], info: dict) -> dict:
    """The ``annotations.json`` dict (format in the module docstring) of the packed samples."""
    images, anns = [], []
    for i, rec in enumerate(records):
        h, w = rec.size
        images.append({"id": i, "sample_id": rec.id, "file_name": layout.relative("rgb", rec.id),
                       "width": w, "height": h})
        ann = {"id": i, "image_id": i, "category_id": 1, "sample_id": rec.id}
        ann.update(metas[rec.id])
        ann["sdf_hand_num"] = sdf_num["hand"][rec.id]
        ann["sdf_obj_num"] = sdf_num["obj"][rec.id]
        anns.append(ann)
    return {"info": info, "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "hand_object"}]}


def load_annotations(packed_dir: str | Path) -> dict:
    """Read ``annotations.json`` of a packed split.

    Raises:
        FileNotFoundError: no packed split there (names the stage to run).
        PackError: unknown format or counts that disagree.
    """
    from gsdf.data.lmdb_io import ANNOTATIONS

    return read_annotations(Path(packed_dir) / ANNOTATIONS)


def read_annotations(path: str | Path) -> dict:
    """Read a packed split's ``annotations.json`` given its own path (:func:`load_annotations`
    given the split's folder).

    Raises:
        FileNotFoundError: no such file (names the stage to run).
        PackError: unknown format or counts that disagree.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the split is not packed; run "
                                "`snakemake ... {dataset}/{split}/annotations.json` (stage pack)")
    with open(path) as f:
        coco = json.load(f)
    if coco.get("info", {}).get("format") != ANNOTATIONS_FORMAT:
        raise PackError(f"{path}: not a {ANNOTATIONS_FORMAT} file; rerun the pack stage")
    if coco["info"]["count"] != len(coco["annotations"]) or \
            len(coco["images"]) != len(coco["annotations"]):
        raise PackError(f"{path}: info.count, images and annotations disagree")
    return coco


def check_database(packed_dir: str | Path, name: str, coco: dict) -> dict:
    """meta_info of database ``name`` (e.g. ``rgb.lmdb``), checked against the annotations.

    Raises:
        PackError: the database's keys or counts disagree with ``annotations.json``.
    """
    path = Path(packed_dir) / name
    meta = read_meta_info(path)
    ids = [a["sample_id"] for a in coco["annotations"]]
    if meta["count"] != len(ids) or set(meta["index"]) != set(ids):
        raise PackError(f"{path}: {meta['count']} entries but annotations.json has {len(ids)} "
                        "samples (or different ids); rerun the pack stage")
    if "pos_num" in meta:
        which = "sdf_hand_num" if "hand" in name else "sdf_obj_num"
        for a in coco["annotations"]:
            i = meta["index"][a["sample_id"]]
            if [meta["pos_num"][i], meta["neg_num"][i]] != list(a[which]):
                raise PackError(f"{path}: point counts of {a['sample_id']!r} disagree with "
                                "annotations.json; rerun the pack stage")
    return meta


__all__ = ["ANNOTATIONS_FORMAT", "ImageRecord", "PackConfig", "check_database", "check_meta",
           "coco_annotations", "decode_jpeg", "load_annotations", "read_manifests",
           "write_rgb_lmdb", "write_sdf_lmdb"]
