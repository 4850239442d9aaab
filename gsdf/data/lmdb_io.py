"""The packed-split format (stage ``pack``): LMDB databases with a ``meta_info.json`` each.

A packed split is a folder (``results/{dataset}/{split}/``, see :mod:`gsdf.paths`) holding

* ``annotations.json``: COCO style (see :mod:`gsdf.data.pack`);
* ``rgb.lmdb``: value = the sample's JPEG file bytes, unchanged (lossless with respect to the
  canonical layout; decoding a 256x256 JPEG costs ~1 ms);
* ``sdf_hand.lmdb`` / ``sdf_obj.lmdb``: value = a C-ordered float32 array ``(n, 6)`` with columns
  ``x, y, z, sdf_hand, sdf_obj, part`` in the hand frame; the first ``pos_num`` rows are outside
  the set's mesh (sdf > 0), the next ``neg_num`` inside. ``part`` is the part label of the
  nearest hand face (0 palm .. 5 pinky), stored as a float.

Keys are the sample ids, UTF-8 encoded. Each ``*.lmdb`` folder has a ``meta_info.json``::

    {"format": "gsdf-rgb-v1" | "gsdf-sdf-v1", "count": S, "keys": [id, ...],
     "index": {id: i, ...},                     # O(1) key -> position in the lists below
     "layout": {...},                           # dtype, columns / encoding, image shape
     "pos_num": [...], "neg_num": [...]}       # (SDF databases only) per key

Readers open the environment ``readonly=True, lock=False`` lazily, once per process (a
DataLoader worker re-opens it after the fork), so any number of workers read concurrently.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lmdb
import numpy as np

from gsdf.utils.io import write_json

META_INFO = "meta_info.json"
ANNOTATIONS = "annotations.json"
RGB_LMDB = "rgb.lmdb"
SDF_HAND_LMDB = "sdf_hand.lmdb"
SDF_OBJ_LMDB = "sdf_obj.lmdb"
SDF_COLUMNS = ("x", "y", "z", "sdf_hand", "sdf_obj", "part")
RGB_FORMAT = "gsdf-rgb-v1"
SDF_FORMAT = "gsdf-sdf-v1"


class PackError(ValueError):
    """A packed database is missing, of an unknown format, or disagrees with its annotations."""


def map_size_for(total_value_bytes: int, num_keys: int) -> int:
    """LMDB map size for ``num_keys`` values totalling ``total_value_bytes``: B-tree pages
    (4 KiB) and overflow-page rounding grow the file, so take 1.5x + 4 KiB per key + 64 MiB."""
    return int(total_value_bytes * 1.5 + num_keys * 4096 + (64 << 20))


def write_lmdb(path: str | Path, items: Iterable[tuple[str, bytes]], total_bytes: int,
               num_keys: int, meta: Mapping[str, Any], batch: int = 256) -> dict:
    """Write an LMDB folder atomically (temporary folder, then rename) plus its meta_info.json.

    Args:
        path: the ``*.lmdb`` folder to create (replaced if it exists).
        items: (key, value bytes) pairs, in the order they get indices.
        total_bytes: sum of the value sizes (to size the map; an upper bound is fine).
        num_keys: number of items (to size the map).
        meta: extra meta_info entries (``format``, ``layout``, per-key lists ...).
        batch: values per write transaction.
    Returns:
        the meta_info written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    keys: list[str] = []
    env = lmdb.open(str(tmp), map_size=map_size_for(total_bytes, num_keys), subdir=True,
                    meminit=False, map_async=True)
    try:
        txn = env.begin(write=True)
        for key, value in items:
            if not txn.put(key.encode("utf-8"), value, overwrite=False):
                txn.abort()
                raise PackError(f"{path}: duplicate key {key!r}")
            keys.append(key)
            if len(keys) % batch == 0:
                txn.commit()
                txn = env.begin(write=True)
        txn.commit()
        env.sync()
    except BaseException:
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    env.close()
    info = dict(meta)
    info.update(count=len(keys), keys=keys, index={k: i for i, k in enumerate(keys)})
    write_json(tmp / META_INFO, info, indent=None)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return info


def read_meta_info(path: str | Path, expected_format: str | None = None) -> dict:
    """The ``meta_info.json`` of an LMDB folder, checked.

    Raises:
        PackError: missing folder/meta_info, unknown format, or counts that do not add up.
    """
    path = Path(path)
    meta_path = path / META_INFO
    if not meta_path.exists():
        raise PackError(f"{path}: no {META_INFO}; rerun the pack stage")
    if not (path / "data.mdb").is_file():
        raise PackError(f"{path}: no data.mdb; truncated, rerun pack (delete the folder, then "
                        f"rerun the workflow)")
    try:
        with open(meta_path) as f:
            info = json.load(f)
    except json.JSONDecodeError as err:
        raise PackError(f"{meta_path}: not valid JSON ({err}); truncated, rerun pack (delete "
                        f"the folder, then rerun the workflow)") from err
    if expected_format is not None and info.get("format") != expected_format:
        raise PackError(f"{path}: format {info.get('format')!r}, expected {expected_format!r}")
    if info.get("count") != len(info.get("keys", [])):
        raise PackError(f"{meta_path}: count {info.get('count')} != {len(info['keys'])} keys")
    return info


# One read-only environment per database path per process. py-lmdb refuses to open a path twice
# in one process, and a forked DataLoader worker inherits the parent's open environments: a
# worker closes its inherited copy (harmless with lock=False) and opens its own.
_ENVS: dict[str, tuple[int, lmdb.Environment]] = {}


def _open_env(path: Path) -> lmdb.Environment:
    key = str(Path(path).resolve())
    entry = _ENVS.get(key)
    if entry is not None and entry[0] == os.getpid():
        return entry[1]
    if entry is not None:  # inherited through fork
        entry[1].close()
    env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False, subdir=True,
                    max_readers=512)
    try:
        check_not_truncated(Path(key), env)
    except PackError:
        env.close()
        raise
    _ENVS[key] = (os.getpid(), env)
    return env


def check_not_truncated(path: Path, env: lmdb.Environment, count: int | None = None) -> None:
    """Refuse a database whose ``data.mdb`` is shorter than its own page count says.

    LMDB maps the file and trusts its meta page: reading a page past the end of a truncated file
    (a copy cut short, a full disk during a copy) kills the process with SIGBUS, no message.
    The meta page's last page number times the page size is the length the file must have.

    Args:
        path: the ``*.lmdb`` folder; env: its open environment; count: expected entries
            (``meta_info["count"]``), checked when given.
    Raises:
        PackError: "truncated, rerun pack" with the path.
    """
    data = path / "data.mdb"
    size = data.stat().st_size
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if size < needed:
        raise PackError(f"{path}: truncated ({data.name} is {size} bytes, its pages need "
                        f"{needed}); rerun pack (delete the folder, then rerun the workflow)")
    entries = env.stat()["entries"]
    if count is not None and entries != count:
        raise PackError(f"{path}: {entries} entries but {META_INFO} says {count}; truncated or "
                        f"mixed with another pack, rerun pack (delete the folder, then rerun)")


class LMDBReader:
    """Read-only access to one packed LMDB, opened lazily once per process.

    Safe to pass to DataLoader workers (forked or spawned): the reader holds no environment;
    each process opens its own on first use (``readonly=True, lock=False, readahead=False``).

    Args:
        path: the ``*.lmdb`` folder.
        expected_format: check ``meta_info["format"]``.
    """

    def __init__(self, path: str | Path, expected_format: str | None = None):
        self.path = Path(path)
        self.meta = read_meta_info(self.path, expected_format)
        self.index: dict[str, int] = self.meta["index"]
        # Check the database on open (size against its page count, entries against meta_info),
        # in the process that builds the reader, so a truncated copy fails here with its path
        # instead of a SIGBUS in a DataLoader worker or mid-reconstruction.
        check_not_truncated(self.path, self.env, self.meta["count"])

    @property
    def env(self) -> lmdb.Environment:
        """This process's environment of the database (opened on first use)."""
        return _open_env(self.path)

    def __len__(self) -> int:
        return self.meta["count"]

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get_bytes(self, key: str) -> bytes:
        """The raw value of ``key``. Raises ``KeyError`` if absent."""
        with self.env.begin(write=False, buffers=False) as txn:
            value = txn.get(key.encode("utf-8"))
        if value is None:
            raise KeyError(f"{self.path}: no key {key!r}")
        return value

    def close(self) -> None:
        """Close this process's environment of the database (other readers of the same path
        in this process reopen it on their next read)."""
        entry = _ENVS.pop(str(self.path.resolve()), None)
        if entry is not None and entry[0] == os.getpid():
            entry[1].close()


class RGBReader(LMDBReader):
    """``rgb.lmdb``: ``get(key)`` -> (H, W, 3) uint8 RGB image."""

    def __init__(self, path: str | Path):
        super().__init__(path, RGB_FORMAT)

    def get(self, key: str) -> np.ndarray:
        import cv2

        buf = np.frombuffer(self.get_bytes(key), dtype=np.uint8)
        layout = self.meta.get("layout", {})
        if layout.get("encoding") == "raw":
            return buf.reshape(layout["shape"]).copy()
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise PackError(f"{self.path}: value of {key!r} is not a decodable image")
        return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB


class SDFReader(LMDBReader):
    """``sdf_hand.lmdb`` / ``sdf_obj.lmdb``: ``get(key)`` -> (pos, neg), each (n, 6) float32."""

    def __init__(self, path: str | Path):
        super().__init__(path, SDF_FORMAT)
        if len(self.meta.get("pos_num", [])) != self.meta["count"] or \
                len(self.meta.get("neg_num", [])) != self.meta["count"]:
            raise PackError(f"{self.path}: pos_num/neg_num lengths disagree with count")

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.index[key]  # O(1), no list scan
        pos, neg = int(self.meta["pos_num"][i]), int(self.meta["neg_num"][i])
        arr = np.frombuffer(self.get_bytes(key), dtype=np.float32).reshape(-1, len(SDF_COLUMNS))
        if len(arr) != pos + neg:
            raise PackError(f"{self.path}: {key!r} has {len(arr)} rows, meta says {pos + neg}")
        return arr[:pos], arr[pos:]


__all__ = [
    "ANNOTATIONS", "LMDBReader", "META_INFO", "PackError", "RGBReader", "RGB_FORMAT", "RGB_LMDB",
    "SDFReader", "SDF_COLUMNS", "SDF_FORMAT", "SDF_HAND_LMDB", "SDF_OBJ_LMDB",
    "check_not_truncated", "map_size_for", "read_meta_info", "write_lmdb",
]
