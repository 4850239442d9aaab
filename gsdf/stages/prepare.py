"""Stage ``prepare``: one shard of a real dataset (ObMan, DexYCB) -> the canonical layout.

One job per (dataset, split, shard). It writes every selected sample of its shard under the
split folder (``rgb/``, ``mask/``, ``mesh_hand/``, ``mesh_obj/``, ``meta/``, through
:func:`gsdf.data.canonical.write_sample`) and, last, the shard manifest -- the same format as
``synth``'s::

    {"ids": [...], "skipped": [{"id", "reason"}], "excluded": {reason: count},
     "config": {...}, "stats": {...}}

``skipped`` lists broken samples (unreadable files, bad annotation) with their reason;
``excluded`` counts the samples the dataset's selection rules leave out (DexYCB: no hand
annotation, test frames without contact, left-hand sequences). Neither stops the run.

Resuming: every file is written atomically and the annotation last, and the annotation carries
a fingerprint of the settings that determine a sample's content (dataset, raw root, ShapeNet
root, setup, MANO file, format version). A rerun of a shard (after a crash or a timeout) reuses
a sample whose ``meta/{id}.json`` has the current fingerprint and whose image and meshes exist,
and rewrites every other one. A config that changes a sample's content therefore rewrites it;
a new ``num_shards`` or split file only regroups samples.

Bad input of the whole download (missing root, ShapeNet model, calibration, MANO pickle) stops
the job before the first sample with :class:`gsdf.data.raw.RawDataError`, whose message names
the config key, the layout expected and the README section.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gsdf.data import canonical
from gsdf.data.raw import README_SECTION, Excluded, RawDataError, SampleError, layout_error
from gsdf.paths import SPLITS, SplitLayout
from gsdf.utils.io import write_text

DATASETS = ("obman", "dexycb")
# Bump when the conversion changes what a sample's files contain (invalidates resumed samples).
FORMAT_VERSION = 1
MANO_LAYOUT = "  hand.mano_root/MANO_RIGHT.pkl   (from mano_v1_2/models/ of the MANO download)"


@dataclass(frozen=True)
class Inputs:
    """What the job reads: shard ``shard`` of split ``split`` of the raw dataset named by
    ``params["dataset"]`` (its folders are config keys, not workflow files)."""

    split: str
    shard: int


@dataclass(frozen=True)
class Outputs:
    """The shard manifest; the samples are written in the split folder beside it."""

    manifest: Path
    split_dir: Path


def _dataset(params: Mapping[str, Any]) -> tuple[str, dict]:
    ds = dict(params.get("dataset") or {})
    name = ds.get("name")
    if name not in DATASETS:
        raise ValueError(f"prepare handles datasets {DATASETS}, got {name!r} "
                         "(the synthetic dataset is written by the synth stage)")
    return name, ds


def load_hand(params: Mapping[str, Any]):
    """The MANO right hand of ``hand.mano_root``; :class:`RawDataError` naming the key if absent
    or unreadable."""
    from gsdf.hand import load_mano
    from gsdf.hand.mano import MANO_CLOSED_FACES

    root = (params.get("hand") or {}).get("mano_root")
    if not root:
        raise layout_error("hand.mano_root", root, "not set (the real datasets are posed with "
                           "MANO)", MANO_LAYOUT)
    try:
        asset = load_mano(root, "right")
    except (FileNotFoundError, ValueError) as err:
        raise layout_error("hand.mano_root", str(root), str(err).split(". Download")[0],
                           MANO_LAYOUT) from err
    if asset.num_vertices == 778 and len(asset.faces_closed) != MANO_CLOSED_FACES:
        warnings.warn(f"{asset.source}: the closed MANO mesh has {len(asset.faces_closed)} "
                      f"faces, not the reference's {MANO_CLOSED_FACES}", stacklevel=2)
    return asset


def check(params: Mapping[str, Any], splits: tuple[str, ...] = SPLITS) -> None:
    """Cheap checks of the raw download before any job (the Snakefile calls this while it builds
    the DAG): roots set and laid out as expected, split files present, MANO pickle present.

    Raises:
        RawDataError: naming the config key, the expected layout and the README section.
    """
    from gsdf.data import dexycb, obman
    from gsdf.hand.mano import resolve_mano_path

    name, ds = _dataset(params)
    if name == "obman":
        layout = obman.LAYOUT
        if not ds.get("root"):
            raise layout_error("datasets.obman.root", ds.get("root"), "not set", layout)
        for split in splits:
            meta = obman.raw_meta_dir(ds["root"], split)
            if not meta.is_dir():
                raise layout_error("datasets.obman.root", ds["root"], f"no folder {meta}", layout)
        if not ds.get("shapenet_root"):
            raise layout_error("datasets.obman.shapenet_root", ds.get("shapenet_root"),
                               "not set", layout)
        if not Path(ds["shapenet_root"]).expanduser().is_dir():
            raise layout_error("datasets.obman.shapenet_root", ds["shapenet_root"],
                               "folder not found", layout)
        for split, path in (ds.get("split_files") or {}).items():
            if path is not None and split in splits and not Path(path).expanduser().is_file():
                raise layout_error(f"datasets.obman.split_files.{split}", path,
                                   "split file not found", layout)
    else:
        layout = dexycb.LAYOUT
        if not ds.get("root"):
            raise layout_error("datasets.dexycb.root", ds.get("root"), "not set", layout)
        for sub in ("", "calibration", "models"):
            if not (Path(ds["root"]).expanduser() / sub).is_dir():
                raise layout_error("datasets.dexycb.root", ds["root"],
                                   f"no folder {Path(ds['root']) / sub}", layout)
        if str(ds.get("split", "s0")) not in dexycb.SETUPS:
            raise layout_error("datasets.dexycb.split", ds.get("split"),
                               f"unknown setup; allowed: {sorted(dexycb.SETUPS)}", layout)
    root = (params.get("hand") or {}).get("mano_root")
    if not root:
        raise layout_error("hand.mano_root", root, "not set (the real datasets are posed with "
                           "MANO)", MANO_LAYOUT)
    try:
        resolve_mano_path(root, "right")
    except (FileNotFoundError, ValueError) as err:
        raise layout_error("hand.mano_root", str(root), str(err).split(". Download")[0],
                           MANO_LAYOUT) from err


def make_reader(params: Mapping[str, Any], split: str, asset=None):
    """The reader of ``params["dataset"]`` for ``split`` (checks the download's layout)."""
    name, ds = _dataset(params)
    asset = load_hand(params) if asset is None else asset
    if name == "obman":
        from gsdf.data.obman import ObManReader

        return ObManReader(ds, asset, split)
    from gsdf.data.dexycb import DexYCBReader

    return DexYCBReader(ds, asset, split)


def fingerprint(params: Mapping[str, Any], asset) -> str:
    """Hash of the settings that determine a sample's files (see the module docstring)."""
    name, ds = _dataset(params)
    keys = {"obman": ("root", "shapenet_root"), "dexycb": ("root", "split")}[name]
    content = {"version": FORMAT_VERSION, "dataset": name, "mano": str(asset.source),
               **{k: str(ds.get(k)) for k in keys}}
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _complete(layout: SplitLayout, sid: str, fp: str) -> bool:
    """A sample written by a previous run with the same fingerprint, every file present."""
    try:
        meta = json.loads(layout.meta(sid).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and meta.get("prepare_fingerprint") == fp
            and all(p.is_file() for p in (layout.rgb(sid), layout.mesh("hand", sid),
                                          layout.mesh("obj", sid))))


def run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any], *,
        progress: bool = True, threads: int = 1) -> dict:
    """Convert shard ``inputs.shard`` of ``inputs.split``; write the samples, then the manifest.

    Args:
        inputs: split and shard (0 <= shard < ``params["dataset"]["num_shards"]``).
        outputs: the manifest path and the split folder.
        params: ``{"dataset": {"name": "obman"|"dexycb", "root": ..., "num_shards": N, ...},
            "hand": {"mano_root": ...}}``.
        progress: show a tqdm bar (runtime only).
        threads: torch threads of the hand layer (runtime only; one per job by default, so
            that jobs side by side do not oversubscribe the cores).

    Returns:
        The manifest written.

    Raises:
        RawDataError: the download or the MANO pickle is missing or laid out differently.
    """

    if inputs.split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {inputs.split!r}")
    name, ds = _dataset(params)
    num_shards = int(ds.get("num_shards", 1))
    shard = int(inputs.shard)
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
    start = time.perf_counter()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        return _run(inputs, outputs, params, name, ds, num_shards, shard, start, progress)
    finally:
        torch.set_num_threads(torch_threads)


def _convert(reader: Any, layout: SplitLayout, sid: str, fp: str, excluded: dict[str, int],
             skipped: list[dict]) -> bool:
    """Read sample ``sid`` and write it in the canonical layout (True); a sample the selection
    rules exclude is counted in ``excluded``, a broken one appended to ``skipped`` with its
    reason (False)."""
    from tqdm import tqdm

    try:
        rec = reader.read(sid)
    except Excluded as ex:
        excluded[ex.reason] = excluded.get(ex.reason, 0) + 1
        return False
    except SampleError as err:
        skipped.append({"id": sid, "reason": str(err).replace("\n", " ")})
        tqdm.write(f"prepare: skipped {sid}: {err}")
        return False
    except (ValueError, OSError, KeyError, IndexError, TypeError) as err:
        # anything else a malformed sample makes a library raise: skipped, named, counted
        reason = f"{reader.source(sid)}: {type(err).__name__}: {err}".replace("\n", " ")
        skipped.append({"id": sid, "reason": reason})
        tqdm.write(f"prepare: skipped {sid}: {reason}")
        return False
    meta = dict(rec.meta, source=reader.source(sid), prepare_fingerprint=fp)
    canonical.write_sample(layout, sid, rgb=rec.rgb, hand_vertices=rec.hand_vertices,
                           hand_faces=rec.hand_faces, hand_parts=rec.hand_parts,
                           obj_vertices=rec.obj_vertices, obj_faces=rec.obj_faces,
                           meta=meta, mask=rec.mask)
    return True


def _run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any], name: str, ds: dict,
         num_shards: int, shard: int, start: float, progress: bool) -> dict:
    from tqdm import tqdm

    asset = load_hand(params)
    reader = make_reader(params, inputs.split, asset)
    ids = reader.sample_ids()[shard::num_shards]
    reader.check_shard(ids)
    fp = fingerprint(params, asset)
    layout = SplitLayout(outputs.split_dir)
    written: list[str] = []
    skipped: list[dict] = []
    excluded: dict[str, int] = {}
    reused = 0
    bar = tqdm(ids, desc=f"prepare {name} {inputs.split} shard {shard}", unit="sample",
               disable=not progress)
    for sid in bar:
        if _complete(layout, sid, fp):
            written.append(sid)
            reused += 1
        elif _convert(reader, layout, sid, fp, excluded, skipped):
            written.append(sid)
    missing = reader.missing_from_split_file() if hasattr(
        reader, "missing_from_split_file") else []
    seconds = time.perf_counter() - start
    record = {
        "ids": written,
        "skipped": skipped,
        "excluded": excluded,
        "config": {"dataset": ds, "hand": {"mano_root": (params.get("hand") or {}).get(
            "mano_root")}, "split": inputs.split, "shard": shard, "num_shards": num_shards,
            "fingerprint": fp},
        "stats": {"num_selected": len(ids), "num_samples": len(written), "num_reused": reused,
                  "num_skipped": len(skipped), "num_excluded": sum(excluded.values()),
                  "hand_vertices": asset.num_vertices, "hand_faces": len(asset.faces_closed),
                  "split_file_ids_without_meta": len(missing),
                  "missing_subjects": list(getattr(reader, "missing_subjects", [])),
                  "seconds": round(seconds, 3)},
    }
    write_text(outputs.manifest, json.dumps(record, indent=1) + "\n")
    return record


__all__ = ["DATASETS", "Inputs", "Outputs", "README_SECTION", "RawDataError", "check",
           "fingerprint", "load_hand", "make_reader", "run"]
