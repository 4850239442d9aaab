"""Stage ``pack`` (the reference's "cocoify"): one split of the canonical layout plus its SDF
shards -> ``annotations.json`` (COCO style) and three LMDB databases (:mod:`gsdf.data.lmdb_io`).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsdf.config import from_dict, to_dict
from gsdf.data.lmdb_io import (
    RGB_FORMAT,
    SDF_COLUMNS,
    SDF_FORMAT,
    PackError,
    read_meta_info,
    write_lmdb,
)
from gsdf.geometry.sdf import load_shard, write_skipped
from gsdf.utils.io import read_json, write_json

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
    """Config section ``pack``.

    Attributes:
        batch: values written per LMDB transaction.
        image_encoding: ``jpeg`` (store the JPEG bytes as they are) or ``raw`` (decoded uint8
            RGB, ~4x larger, no decoding when reading).
    """

    batch: int = 256
    image_encoding: str = "jpeg"

    def __post_init__(self):
        if self.image_encoding not in ("jpeg", "raw"):
            raise ValueError(f"pack.image_encoding must be jpeg or raw, got {self.image_encoding}")
        if self.batch < 1:
            raise ValueError(f"pack.batch must be >= 1, got {self.batch}")


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


def _read_image(path: Path) -> tuple[bytes, tuple[int, int]]:
    import cv2

    data = path.read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not a decodable image")
    return data, (int(img.shape[0]), int(img.shape[1]))


def pack_split(split_dir: str | Path, manifests: Sequence[str | Path],
               sdf_shards: Sequence[str | Path], annotations: str | Path, rgb_lmdb: str | Path,
               sdf_hand_lmdb: str | Path, sdf_obj_lmdb: str | Path, params: dict,
               progress: bool = True) -> dict:
    """Pack one split. Returns counts ``{"packed": S, "skipped": n}``.

    Args:
        split_dir: ``results/datasets/{dataset}/{split}`` (canonical layout).
        manifests: the split's dataset shard manifests (``shards/shard_{k}.json``).
        sdf_shards: the split's SDF shards (``sdf/{split}/shard_{k}.npz``).
        annotations, rgb_lmdb, sdf_hand_lmdb, sdf_obj_lmdb: outputs.
        params: job params (``pack`` and ``dataset`` sections).
    Raises:
        FileNotFoundError: the split folder is missing.
        PackError: the databases written disagree with the annotations (a bug).
    """
    import cv2
    from tqdm import tqdm

    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} not found; run synth/prepare first")
    cfg = from_dict(PackConfig, params.get("pack", {}), "pack")
    dataset = params.get("dataset", {})
    recon_scale = float(dataset.get("recon_scale", 7.0))

    ids: list[str] = []
    skipped: list[dict] = []
    for m in manifests:
        man = read_json(m)
        ids += [str(i) for i in man.get("ids", [])]
        skipped += [{"id": s.get("id"), "reason": f"dataset stage: {s.get('reason')}"}
                    for s in man.get("skipped", [])]
    # Which ids have SDF samples, and how many rows (only the small arrays are read here).
    sdf_rows: dict[str, tuple[int, int]] = {}
    for path in sdf_shards:
        with np.load(path, allow_pickle=False) as z:
            hoff, ooff = z["hand_offsets"], z["obj_offsets"]
            for i, sid in enumerate(z["ids"]):
                sdf_rows[str(sid)] = (int(hoff[i + 1] - hoff[i]), int(ooff[i + 1] - ooff[i]))

    records: list[tuple[str, dict, int, tuple[int, int]]] = []  # id, meta, jpeg bytes, (H, W)
    for sid in tqdm(ids, desc=f"pack {split_dir.name}: check", disable=not progress):
        try:
            if sid not in sdf_rows:
                raise ValueError("no SDF samples (skipped by sample_sdf, see its skipped csv)")
            meta_path = split_dir / "meta" / f"{sid}.json"
            meta = read_json(meta_path)
            check_meta(meta, str(meta_path))
            data, hw = _read_image(split_dir / "rgb" / f"{sid}.jpg")
            records.append((sid, meta, len(data), hw))
        except (ValueError, OSError) as err:
            log.warning("skipping %s: %s", sid, err)
            skipped.append({"id": sid, "reason": str(err).replace("\n", " ")})
    keep = {r[0] for r in records}

    # --- rgb.lmdb
    def rgb_items() -> Iterator[tuple[str, bytes]]:
        for sid, _, _, _ in tqdm(records, desc="pack rgb", disable=not progress):
            data = (split_dir / "rgb" / f"{sid}.jpg").read_bytes()
            if cfg.image_encoding == "raw":
                img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
                data = np.ascontiguousarray(img).tobytes()
            yield sid, data

    sizes = {r[3] for r in records}
    image_size = list(next(iter(sizes))) if len(sizes) == 1 else None
    if cfg.image_encoding == "raw" and image_size is None and records:
        raise PackError(f"{split_dir}: image_encoding raw needs one image size, found {sizes}")
    rgb_bytes = sum(r[2] if cfg.image_encoding == "jpeg" else r[3][0] * r[3][1] * 3
                    for r in records)
    layout = {"encoding": cfg.image_encoding, "dtype": "uint8", "channels": "RGB"}
    if image_size is not None:
        layout["shape"] = image_size + [3]
    rgb_meta = write_lmdb(rgb_lmdb, rgb_items(), rgb_bytes, len(records),
                          {"format": RGB_FORMAT, "layout": layout}, cfg.batch)

    # --- sdf_hand.lmdb / sdf_obj.lmdb, streamed shard by shard
    sdf_num: dict[str, dict[str, list[int]]] = {"hand": {}, "obj": {}}
    for which, out in (("hand", sdf_hand_lmdb), ("obj", sdf_obj_lmdb)):
        pos_num: list[int] = []
        neg_num: list[int] = []

        def sdf_items(which=which, pos_num=pos_num, neg_num=neg_num
                      ) -> Iterator[tuple[str, bytes]]:
            for path in tqdm(sdf_shards, desc=f"pack sdf_{which}", disable=not progress):
                shard = load_shard(path, sets=(which,))
                for i, sid in enumerate(shard.ids):
                    if sid not in keep:
                        continue
                    s = shard.get(i, which)
                    rows = np.empty((len(s.data), len(SDF_COLUMNS)), dtype=np.float32)
                    rows[:, :5] = s.data
                    rows[:, 5] = s.part
                    pos_num.append(s.num_pos)
                    neg_num.append(len(s.data) - s.num_pos)
                    sdf_num[which][sid] = [pos_num[-1], neg_num[-1]]
                    yield sid, rows.tobytes()

        total = sum(sdf_rows[sid][0 if which == "hand" else 1] for sid in keep) * 4 * 6
        layout = {"dtype": "float32", "columns": list(SDF_COLUMNS),
                  "rows": "pos_num rows outside the mesh (sdf > 0), then neg_num rows inside",
                  "frame": "hand frame: (p - wrist) * recon_scale / 2, distances scaled alike"}
        info = {"format": SDF_FORMAT, "layout": layout, "dim": len(SDF_COLUMNS),
                "recon_scale": recon_scale, "pos_num": pos_num, "neg_num": neg_num}
        # pos_num/neg_num are filled while the items are consumed, before meta is written;
        # they follow the LMDB's own key order (its "index").
        written = write_lmdb(out, sdf_items(), total, len(keep), info, cfg.batch)
        if set(written["keys"]) != keep:
            raise PackError(f"{out}: keys disagree with the packed samples")

    images, anns = [], []
    for i, (sid, meta, _, (h, w)) in enumerate(records):
        images.append({"id": i, "sample_id": sid, "file_name": f"rgb/{sid}.jpg",
                       "width": w, "height": h})
        ann = {"id": i, "image_id": i, "category_id": 1, "sample_id": sid}
        ann.update(meta)
        ann["sdf_hand_num"] = sdf_num["hand"][sid]
        ann["sdf_obj_num"] = sdf_num["obj"][sid]
        anns.append(ann)
    info = {"format": ANNOTATIONS_FORMAT, "dataset": dataset.get("name"),
            "split": split_dir.name, "count": len(records), "recon_scale": recon_scale,
            "image_size": image_size, "skipped": skipped,
            "config": {"pack": to_dict(cfg), "dataset": dataset}}
    coco = {"info": info, "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "hand_object"}]}
    write_skipped(Path(annotations).parent / "skipped.csv", skipped)
    write_json(annotations, coco, indent=None)
    if rgb_meta["count"] != len(records):
        raise PackError(f"{rgb_lmdb}: {rgb_meta['count']} images for {len(records)} samples")
    counts = {"packed": len(records), "skipped": len(skipped)}
    log.info("pack %s: %d samples packed, %d skipped", split_dir, counts["packed"],
             counts["skipped"])
    return counts


def load_annotations(packed_dir: str | Path) -> dict:
    """Read ``annotations.json`` of a packed split.

    Raises:
        FileNotFoundError: no packed split there (names the stage to run).
        PackError: unknown format or counts that disagree.
    """
    from gsdf.data.lmdb_io import ANNOTATIONS

    path = Path(packed_dir) / ANNOTATIONS
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


__all__ = ["ANNOTATIONS_FORMAT", "PackConfig", "check_database", "check_meta",
           "load_annotations", "pack_split"]
