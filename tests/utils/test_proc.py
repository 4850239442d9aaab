"""Workers die with their launcher (#25 item 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

WORKER = """
import os, sys, time
from gsdf.utils import proc
how = proc.exit_with_parent() if sys.argv[1] == "watch" else None
print(os.getpid(), how, flush=True)
time.sleep(120)
"""

# A launcher that starts the worker in its own session, as torchrun does, then waits.
LAUNCHER = """
import subprocess, sys
w = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], start_new_session=True)
w.wait()
"""


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def start(mode: str) -> tuple[subprocess.Popen, int, str]:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, WORKER, mode],
                                stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    pid, how = launcher.stdout.readline().split()
    return launcher, int(pid), how


@pytest.mark.parametrize("mode", ["watch", "none"])
def test_worker_dies_when_its_launcher_is_killed(mode):
    launcher, worker, how = start(mode)
    try:
        assert psutil.pid_exists(worker)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        if mode == "watch":
            assert how == ("prctl" if sys.platform.startswith("linux") else "thread")
            assert gone_within(worker, 5.0), "the worker outlived its launcher"
        else:  # the control: without the watch, the worker survives (the defect)
            assert not gone_within(worker, 1.0)
    finally:
        if psutil.pid_exists(worker):
            os.kill(worker, signal.SIGKILL)


def test_thread_watch_works_where_prctl_is_missing(monkeypatch):
    code = ("import os, time\nfrom gsdf.utils import proc\n"
            "proc._prctl_pdeathsig = lambda sig: False\n"
            "print(os.getpid(), proc.exit_with_parent(interval=0.1), flush=True)\n"
            "time.sleep(120)\n")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, code, "x"],
                                stdout=subprocess.PIPE, text=True)
    pid, how = launcher.stdout.readline().split()
    worker = int(pid)
    try:
        assert how == "thread"
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert gone_within(worker, 5.0)
    finally:
        if psutil.pid_exists(worker):
            os.kill(worker, signal.SIGKILL)


def test_only_torchrun_workers_watch_their_parent(monkeypatch):
    from gsdf.utils import proc

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert proc.exit_with_launcher() is None


EARLY_WORKER = """
import os, sys, time
time.sleep(float(sys.argv[1]))  # still importing torch when the launcher is killed
from gsdf.utils import proc
print(os.getpid(), proc.exit_with_launcher(), flush=True)
time.sleep(120)
"""

TORCHRUN_LIKE = """
import os, subprocess, sys
env = dict(os.environ, TORCHELASTIC_RUN_ID="test")
w = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], start_new_session=True,
                     env=env, stdout=open(sys.argv[3], "w"))
print(w.pid, flush=True)
w.wait()
"""


def test_a_worker_whose_launcher_died_before_the_watch_exits(tmp_path):
    out = tmp_path / "worker.txt"
    # "torchrun" in the launcher's command line, as the real one has
    launcher = subprocess.Popen([sys.executable, "-c", TORCHRUN_LIKE, EARLY_WORKER, "1.5",
                                 str(out), "torchrun"], stdout=subprocess.PIPE, text=True)
    worker = int(launcher.stdout.readline())
    try:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert gone_within(worker, 10.0), "an early-orphaned worker kept running"
        assert out.read_text() == ""  # it died in exit_with_launcher, before printing
    finally:
        if psutil.pid_exists(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_torchrun_worker_with_a_live_launcher_runs_on(tmp_path):
    out = tmp_path / "worker.txt"
    launcher = subprocess.Popen([sys.executable, "-c", TORCHRUN_LIKE, EARLY_WORKER, "0",
                                 str(out), "torchrun"], stdout=subprocess.PIPE, text=True)
    worker = int(launcher.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while not out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.read_text().split()[1] == "prctl"
        assert not gone_within(worker, 1.0)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert gone_within(worker, 5.0)
    finally:
        if psutil.pid_exists(worker):
            os.kill(worker, signal.SIGKILL)
