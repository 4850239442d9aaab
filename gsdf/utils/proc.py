"""Process hygiene: workers that do not outlive the launcher that started them.

``torchrun`` starts its workers in their own session, so killing a Snakemake job's process group
(``kill -9``, a cancelled cluster job, a closed terminal) kills the launcher but not the workers:
they would go on training and writing checkpoints, racing the rerun. A worker calls
:func:`exit_with_launcher` first thing and dies with its parent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the Linux kernel to send ``sig`` to this process when its parent thread exits."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _watch_parent(parent: int, sig: int, interval: float) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os.kill(os.getpid(), sig)


def exit_with_parent(sig: int = signal.SIGKILL, interval: float = 1.0) -> str:
    """Make this process die (``sig``) as soon as its parent process dies.

    Linux: ``prctl(PR_SET_PDEATHSIG)``; elsewhere a daemon thread polls the parent pid every
    ``interval`` seconds. SIGKILL by default: a worker of a killed job must not save anything
    (atomic writes leave no partial file; the rerun resumes from the last checkpoint).

    Returns:
        ``"prctl"`` or ``"thread"``: how the parent is watched.
    """
    parent = os.getppid()
    how = "prctl" if sys.platform.startswith("linux") and _prctl_pdeathsig(sig) else "thread"
    if how == "thread":
        threading.Thread(target=_watch_parent, args=(parent, sig, interval), daemon=True,
                         name="exit-with-parent").start()
    if os.getppid() != parent:  # the parent died before the watch was in place
        os.kill(os.getpid(), sig)
    return how


def launched_by_torchrun() -> bool:
    """Whether this process is a worker started by ``torchrun`` (torch.distributed.elastic)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def _parent_is_launcher() -> bool:
    """Whether our parent is still the torchrun agent that started us (after it died we were
    handed to init or a subreaper, whose command line names no torchrun)."""
    import psutil

    try:
        cmd = " ".join(psutil.Process(os.getppid()).cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return "torchrun" in cmd or "torch.distributed.run" in cmd or "torch/distributed/run" in cmd


def exit_with_launcher() -> str | None:
    """:func:`exit_with_parent` for a ``torchrun`` worker; nothing for a process started
    directly (a shell's child must survive ``nohup`` and a closed terminal as usual).

    Call it first thing: a launcher killed before the watch is in place (a worker still
    importing torch) is caught by checking that the parent is still a torchrun process."""
    if not launched_by_torchrun():
        return None
    how = exit_with_parent()
    if not _parent_is_launcher():
        os.kill(os.getpid(), signal.SIGKILL)
    return how


__all__ = ["exit_with_launcher", "exit_with_parent", "launched_by_torchrun"]
