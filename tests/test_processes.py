"""Ending a child process group in bounded time (ikol_blender/processes.py), as the backend
run's Cancel and the backend installer's Cancel both do: real processes that ignore SIGTERM."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ikol_blender import backend_env
from ikol_blender.backend_process import BackendRun
from ikol_blender.processes import GRACE_S, KILL_WAIT_S, end_process_group

# A process that ignores SIGTERM, starts a grandchild that ignores it too, says so, then sleeps.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(\"grandchild ready\", flush=True); "
    "time.sleep(120)'])\n"
    "print('ready', child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_for(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def both_ready(log: Path) -> bool:
    lines = log.read_text().splitlines()
    return "grandchild ready" in lines and any(line.startswith("ready") for line in lines)


def grandchild_of(log_text: str) -> int:
    return int(next(line for line in log_text.splitlines() if line.startswith("ready")).split()[1])


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path):
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: both_ready(log))
        grandchild = grandchild_of(log.read_text())
        start = time.monotonic()
        assert end_process_group(process, grace=0.3)
        took = time.monotonic() - start
        assert 0.3 <= took < 0.3 + KILL_WAIT_S, took
        assert process.returncode == -9
        wait_for(lambda: not alive(grandchild), timeout=KILL_WAIT_S)
    finally:
        process.kill()
    assert end_process_group(process)  # an ended process: nothing to do


def run_bounded(call, limit: float) -> float:
    """Run `call` in a thread; fail (instead of hanging the tests) when it takes over `limit` s."""
    start = time.monotonic()
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still waiting after {limit} s"
    return time.monotonic() - start


def test_installer_cancel_is_bounded_when_a_step_ignores_sigterm(tmp_path: Path):
    steps = backend_env.Steps([("Installing", [sys.executable, "-c", STUBBORN])],
                              tmp_path / "install.log")
    group = steps.run.pid
    try:
        wait_for(lambda: both_ready(steps.log_path))
        grandchild = grandchild_of(steps.log_path.read_text())
        took = run_bounded(steps.cancel, GRACE_S + KILL_WAIT_S + 2)
        assert took < GRACE_S + 2, took
        assert steps.done and steps.error.startswith("Installing failed (cancelled)")
        wait_for(lambda: not alive(grandchild), timeout=KILL_WAIT_S)
    finally:
        try:
            os.killpg(group, 9)
        except ProcessLookupError:
            pass


def test_backend_cancel_is_bounded_when_the_backend_ignores_sigterm(tmp_path: Path):
    run = BackendRun([sys.executable, "-c", STUBBORN])
    group = run.process.pid
    try:
        wait_for(lambda: run.process.returncode is None and any(
            alive(int(pid)) for pid in os.listdir("/proc") if pid.isdigit()
            and pid != str(group) and _group_of(int(pid)) == group))
        took = run_bounded(run.cancel, GRACE_S + KILL_WAIT_S + 2)
        assert took < GRACE_S + 2, took
        assert run.process.returncode == -9
        wait_for(lambda: not any(_group_of(int(pid)) == group
                                 for pid in os.listdir("/proc") if pid.isdigit()),
                 timeout=KILL_WAIT_S)
    finally:
        try:
            os.killpg(group, 9)
        except ProcessLookupError:
            pass


def _group_of(pid: int) -> int | None:
    """The process group of a live process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[2]) if fields[0] != "Z" else None
