"""Atomic writes: every stage writes to a temporary name next to the target, then renames.

A killed job therefore never leaves a half-written file under the final name, which is what lets
Snakemake (and our own resume logic) trust any file that exists.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class DiskFullError(OSError):
    """A write ran out of space. ``errno`` is ``ENOSPC``; the message names the filesystem, the
    space left and roughly what the write needed. Nothing was left under the final name."""


# Below this much free space after a failed write, the failure is taken as a full disk even when
# the library that wrote reports something else (torch.save says "unexpected pos ..." or
# "basic_ios::clear: iostream error" when its writes fail for lack of space).
FULL_DISK_SLACK = 1 << 20


def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, device) of the filesystem holding ``path``."""
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    mount = path
    while not os.path.ismount(mount):
        mount = mount.parent
    device = "?"
    with contextlib.suppress(OSError):
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == str(mount):
                    device = f"{fields[0]}, {fields[2]}"
    return str(mount), device


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def is_disk_full(err: BaseException, where: str | Path, free: int | None = None) -> bool:
    """Whether ``err`` (raised while writing under ``where``) comes from a full filesystem:
    ``ENOSPC`` / ``EDQUOT``, or a library's own write error with (almost) no space left."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(err, Exception) or isinstance(err, DiskFullError):
        return False
    if "No space left" in str(err):
        return True
    if isinstance(err, RuntimeError | OSError):
        return (free_bytes(where) if free is None else free) < FULL_DISK_SLACK
    return False


def disk_full_error(path: str | Path, needed: int) -> DiskFullError:
    """The error to raise when writing ``path`` (about ``needed`` bytes) found the disk full."""
    mount, device = _mount_of(Path(path).parent)
    free = free_bytes(Path(path).parent)
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on {mount} ({device}), {free / 1e6:.1f} MB free, needs "
        f"~{max(needed, 1) / 1e6:.1f} MB to write {path}. Nothing partial was left under that "
        f"name (a previous version of it, if any, is untouched). Free some space or point "
        f"'results' at a larger filesystem, then rerun")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None,
                expected_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix (so libraries that infer a format from the suffix,
    like ``np.savez`` or ``trimesh.export``, behave) and carries the writer's pid
    (``.{stem}.{pid}.XXXXXXXX.tmp{suffix}``), so :func:`remove_stale_temporaries` can tell a
    killed job's leftovers from a running job's. On error the temporary file is removed and
    ``path`` is left as it was (a previous version stays); a full filesystem raises
    :class:`DiskFullError` saying where, how much is free and about how much was needed
    (``expected_bytes``, the size of the previous version or of the partial write, the largest).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{suffix}",
                                   dir=path.parent)
    except OSError as err:
        if is_disk_full(err, path.parent):
            raise disk_full_error(path, max(expected_bytes, _size(path))) from err
        raise
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
    except Exception as err:
        free = free_bytes(path.parent)  # before the partial file is removed
        if not is_disk_full(err, path.parent, free):
            raise
        needed = max(expected_bytes, _size(path), _size(tmp_path) if tmp_path.exists() else 0)
        _remove(tmp_path)
        raise disk_full_error(path, needed) from err
    finally:
        _remove(tmp_path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# Temporaries of gsdf's writers: atomic_path's ``.{stem}.{pid}.XXXXXXXX.tmp{suffix}`` (and the
# older ``.{stem}.XXXXXXXX.tmp{suffix}`` without a pid), write_lmdb's ``.{name}.tmp{pid}/``.
_TMP_WITH_PID = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.tmp[^/]*$")
_TMP_DIR_PID = re.compile(r"^\.(?P<base>.+)\.tmp(?P<pid>\d+)$")
_TMP_NO_PID = re.compile(r"^\.(?P<base>.+)\.[A-Za-z0-9_]{8}\.tmp[^/]*$")


def _parse_temporary(name: str) -> tuple[str, int | None] | None:
    """(base name, writer pid or None) of a temporary's file name; None if it is not one."""
    for pattern in (_TMP_WITH_PID, _TMP_DIR_PID, _TMP_NO_PID):
        m = pattern.match(name)
        if m:
            pid = m.groupdict().get("pid")
            return m.group("base"), int(pid) if pid else None
    return None


def _process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of running process ``pid``; None if there is none."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return 0.0


def _is_stale(path: Path, pid: int | None, job_start: float) -> bool:
    try:
        mtime = path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if pid is None:  # no writer recorded: stale if it predates this job
        return mtime < job_start
    if pid == os.getpid():
        return False
    started = _process_start(pid)
    # a dead writer, or a pid reused by a process started after the temporary was last written
    return started is None or started > mtime + 1.0


def remove_stale_temporaries(outputs: Iterable[str | Path],
                             job_start: float | None = None) -> list[Path]:
    """Remove what killed writers of ``outputs`` left behind; call it when a stage starts.

    For every output, the temporaries beside it (``.{stem}.*.tmp*`` of :func:`atomic_path`,
    ``.{name}.tmp{pid}/`` of ``write_lmdb``) and, for an output folder (``meshes/`` ...), the
    temporaries anywhere inside it. A temporary is removed only when it is stale: the process
    in its name is gone (or its pid now belongs to a younger process), or, for a temporary
    without a pid, it is older than this job. A running job's temporaries are never touched, so
    shards that write into one folder may start while others run.

    Args:
        outputs: the stage's output files and folders (existing or not).
        job_start: epoch seconds the job started (default: this process's start).
    Returns:
        The paths removed.
    """
    if job_start is None:
        job_start = _process_start(os.getpid()) or time.time()
    candidates: dict[Path, int | None] = {}
    for out in outputs:
        out = Path(out)
        names = {out.name, out.stem}
        if out.parent.is_dir():
            for entry in out.parent.iterdir():
                parsed = _parse_temporary(entry.name)
                # the output's own temporaries and its side files' (checkpoint.last.pt ...)
                if parsed and (parsed[0] in names or parsed[0].startswith(f"{out.stem}.")):
                    candidates[entry] = parsed[1]
        if out.is_dir() and not out.is_symlink():
            for dirpath, dirnames, filenames in os.walk(out):
                for name in dirnames + filenames:
                    parsed = _parse_temporary(name)
                    if parsed:
                        candidates[Path(dirpath) / name] = parsed[1]
    removed = []
    for path, pid in sorted(candidates.items()):
        if _is_stale(path, pid, job_start):
            _remove(path)
            removed.append(path)
    return removed


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
