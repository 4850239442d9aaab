"""Helpers of the fault-injection suite: micro-preset runs in temporary folders, processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = ("gf", "alignsdf", "gsdf")
CONFIG = ("--config", "preset=micro")


def copy_workflow(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("workflow", "config", "envs"):
        shutil.copytree(REPO / name, dst / name)
    return dst


def snakemake_cmd(*args: str, config: tuple[str, ...] = ()) -> list[str]:
    """``snakemake`` on the micro preset; ``config``: more ``--config`` items (``key=value``)."""
    return ["snakemake", "--cores", "2", *args, *CONFIG, *config]


def snakemake(workdir: Path, *args: str, config: tuple[str, ...] = (), check: bool = True,
              timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_cmd(*args, config=config), cwd=workdir,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed in {workdir}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake in its own process group (as a terminal or a batch system starts it)."""
    return subprocess.Popen(snakemake_cmd(*args), cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def processes_in(workdir: Path) -> list[psutil.Process]:
    """Live processes (not zombies) whose working folder is ``workdir``."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        try:
            if proc.info["cwd"] == str(workdir) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stage_process(workdir: Path, stage: str) -> psutil.Process | None:
    """The process running ``gsdf <stage>`` in ``workdir`` (for ``train``: the torchrun worker
    of ``gsdf train_pose`` or ``gsdf train_sdf``, not the launcher)."""
    for proc in processes_in(workdir):
        try:
            cmd = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        words = [Path(c).name for c in cmd[:3]]
        names = {stage} if stage != "train" else {"train_pose", "train_sdf"}
        if "gsdf" in words and names & set(cmd[:4]) and not any("torchrun" in c for c in cmd[:2]):
            return proc
    return None


def kill_group(proc: subprocess.Popen) -> None:
    """``kill -9`` of the whole process group of a run started by :func:`start_snakemake`."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def read_metrics(workdir: Path) -> dict[str, pd.DataFrame]:
    return {exp: pd.read_csv(workdir / "results" / f"{exp}_synth" / "metrics.csv")
            for exp in EXPERIMENTS}


def temporaries(root: Path) -> list[Path]:
    """Files and folders named like a writer's temporary (``.{name}...tmp...``)."""
    return sorted(p for p in root.rglob(".*") if ".tmp" in p.name)


