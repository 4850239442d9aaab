"""Atomic writes: every stage writes to a temporary name next to the target, then renames.

A killed job therefore never leaves a half-written file under the final name, which is what lets
Snakemake (and our own resume logic) trust any file that exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix (so libraries that infer a format from the suffix,
    like ``np.savez`` or ``trimesh.export``, behave). On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists() and not tmp_path.is_dir():
            # mkstemp creates 0600 files; give the result the usual permissions (umask applies).
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _to_builtin(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Atomically write ``obj`` as JSON (numpy arrays and scalars become lists and numbers)."""
    write_text(path, json.dumps(obj, indent=indent, default=_to_builtin, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete it and rerun its stage") from err


def write_yaml(path: str | Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(json.loads(json.dumps(obj, default=_to_builtin)),
                                    sort_keys=False))


def save_npz(path: str | Path, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Atomically save arrays to an ``.npz`` file."""
    with atomic_path(path) as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
