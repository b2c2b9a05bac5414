"""Long-lived local worker processes: `python -m ikol_backend.batch.serve`, one per worker.

Each worker is started without a shell, in a process group of its own (process_group: a
Ctrl-C at the terminal reaches only the coordinator, which ends the workers itself), with the same Python and
environment; with GPUs, each gets one (CUDA_VISIBLE_DEVICES), round robin. A thread per worker
reads its messages into one queue; a worker whose pipe closes has died, and the job it held is
reported `lost` so the runner can try it again on a fresh worker.
"""

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..process_group import group_options
from . import pipe
from .worker import Job

CLOSE_WAIT_S = 5.0  # a worker told to stop gets this long before it is killed


def cpu_count() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices a worker could be given, without loading torch: CUDA_VISIBLE_DEVICES
    when it is set, else the NVIDIA device files (/dev/nvidia0, ...)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [device.strip() for device in given.split(",") if device.strip()]
    return sorted((path.name[len("nvidia"):] for path in Path("/dev").glob("nvidia[0-9]*")), key=int)


class _Process:
    """One worker process and what it is doing."""

    def __init__(self, slot: int, command: list[str], env: dict[str, str], setup: dict[str, Any],
                 messages: queue.SimpleQueue):
        self.slot = slot
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=env, **group_options())
        self.label: str | None = None  # known once the worker is ready
        self.job: Job | None = None
        self.closing = False
        pipe.send(self.process.stdin, setup)
        threading.Thread(target=self._read, args=(messages,), daemon=True,
                         name=f"batch-worker-{slot}").start()

    def _read(self, messages: queue.SimpleQueue) -> None:
        try:
            while (message := pipe.receive(self.process.stdout)) is not None:
                messages.put((self, message))
        finally:  # the pipe closed, or a message did not read: the worker is gone for us
            if self.process.poll() is None:
                self.process.kill()
            messages.put((self, {"kind": "exit"}))

    def stop(self) -> None:
        """Ask the worker to end once its job is done (its standard input closes)."""
        self.closing = True
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def kill(self) -> None:
        self.closing = True
        if self.process.poll() is None:
            self.process.kill()


class LocalPool:
    """`size` local workers for the estimate option values `options`; torch gets `threads`
    CPU threads in each; `gpus`: device numbers handed out round robin (empty: none)."""

    runner = "local"

    def __init__(self, size: int, options: dict[str, Any], threads: int | None,
                 gpus: list[str] | None = None):
        self.size = size
        self._setup = {"options": options, "threads": threads}
        self._gpus = gpus or []
        self._messages: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[_Process] = []
        self._idle: list[_Process] = []

    def start(self) -> None:
        self._workers = [self._spawn(slot) for slot in range(self.size)]

    def _spawn(self, slot: int) -> _Process:
        env = dict(os.environ)
        if self._gpus:
            env["CUDA_VISIBLE_DEVICES"] = self._gpus[slot % len(self._gpus)]
        command = [sys.executable, "-m", "ikol_backend.batch.serve"]
        return _Process(slot, command, env, self._setup, self._messages)

    def idle(self) -> list[Any]:
        """Workers ready for a job."""
        return list(self._idle)

    def submit(self, worker: _Process, job: Job) -> None:
        self._idle.remove(worker)
        worker.job = job
        try:
            pipe.send(worker.process.stdin, job)
        except OSError:
            pass  # it has died: its reader reports that, and the job is lost

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message from any worker (None after `timeout` seconds without one), with
        its `worker` label; a worker that died holding a job gives `{"kind": "lost", "job",
        "worker", "message"}` and is replaced."""
        try:
            worker, message = self._messages.get(timeout=timeout)
        except queue.Empty:
            return None
        kind = message["kind"]
        if kind == "ready":
            worker.label = message["worker"]
            self._idle.append(worker)
        elif kind == "end":
            worker.job = None
            self._idle.append(worker)
        elif kind == "exit":
            return self._exited(worker)
        return {**message, "worker": worker.label}

    def _exited(self, worker: _Process) -> dict[str, Any] | None:
        code = worker.process.wait()
        if worker.closing:
            return None
        if worker in self._idle:
            self._idle.remove(worker)
        if worker.label is None:  # died while starting: it would again
            raise BackendError("internal", f"A batch worker process ended while starting (exit "
                                           f"code {code}); its messages are on stderr.")
        job, worker.job = worker.job, None
        self._workers[self._workers.index(worker)] = self._spawn(worker.slot)
        if job is None:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return {"kind": "lost", "job": job.key, "worker": worker.label,
                "message": f"The worker process {worker.label} died ({how})."}

    def close(self, interrupted: bool = False) -> None:
        """Stop every worker: idle ones end once told to; those still starting, busy ones
        (the runner has given up on their jobs) and, when `interrupted`, all of them are ended
        by SIGTERM at once (a worker writes no file)."""
        for worker in self._workers:
            if worker.job is None and worker.label is not None and not interrupted:
                worker.stop()
            else:
                worker.closing = True
                if worker.process.poll() is None:
                    worker.process.terminate()
        for worker in self._workers:
            try:
                worker.process.wait(timeout=CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.process.wait()
