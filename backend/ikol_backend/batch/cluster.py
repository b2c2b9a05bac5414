"""Batch workers as Ray actors, on an existing Ray cluster or a private single-machine Ray.

`--ray ADDRESS`: `auto` (the cluster this machine belongs to, or RAY_ADDRESS), `HOST:PORT`
(a head node's GCS address), `ray://HOST:PORT` (Ray Client) or `local`: a private Ray head
listening on 127.0.0.1 only, with a fresh token of Ray's token authentication, started and
ended by a keeper process of its own (`ray_head`): it ends exactly that head's processes
when the batch ends, however it ends (SIGKILL of the batch included). Each worker is an
actor (`worker.RayWorker`, two threads)
asking Ray for one CPU, and with `--device cuda` also `gpu_share` of a GPU; it loads torch and
the models once and takes one job after another. While a job runs, the coordinator keeps one
`poll` call open on its actor for the job's messages (plain actor calls: Ray Client has no
streaming generators); the job's result brings the rest, its `end` message last.

A worker that dies mid-job (its process killed, its node lost) shows as a Ray system error on
the job's result: the job is reported `lost`, the actor is replaced by a new one, and the
runner decides whether to try the job again. Ray's own retries are off (max_restarts=0,
max_task_retries=0), so every attempt is counted in the manifest.
"""

import collections
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..interrupts import end_on_signals
from ..process_group import KILL_WAIT_S, end_group, group_options
from .local import cpu_count
from .ray_head import HEAD_STOP_S, LOG_NAME, SINGLE_MACHINE
from .worker import Job, Outcome, RayWorker

POLL_WAIT_S = 0.5  # a poll call returns after this long when the job has nothing to say
INIT_WAIT_S = 60.0  # an interrupted batch waits this long for ray.init to end, to shut Ray down
HEAD_START_S = 120.0  # a private Ray head must be up within this long
KEEPER_STOP_S = HEAD_STOP_S + KILL_WAIT_S + 5.0  # its keeper must have ended it within this long


class _Slot:
    """One actor and what it is doing: its job, the job's result and the open poll call."""

    def __init__(self, actor: Any):
        self.actor = actor
        self.label: str | None = None
        self.job: Job | None = None


class RayPool:
    """Ray actors running the estimate option values `options`. `size`: how many (None:
    what the cluster holds: its CPUs, or with CUDA its GPUs over `gpu_share`, at most `most`)."""

    runner = "ray"

    def __init__(self, address: str, size: int | None, options: dict[str, Any], gpu_share: float,
                 most: int):
        self.address = address
        self.size = size
        self._options = options
        self._gpus = gpu_share if options.get("device") == "cuda" else 0.0
        self._most = most
        self._actor_class: Any = None
        self._slots: list[_Slot] = []
        self._calls: dict[Any, tuple[str, _Slot, Job | None]] = {}  # reference -> what it is
        self._idle: list[_Slot] = []
        self._buffer: collections.deque = collections.deque()
        self._ray: Any = None
        self._init_thread: threading.Thread | None = None
        self._private: PrivateRay | None = None

    def start(self) -> None:
        # Ray's C++ core would otherwise install a SIGTERM handler in this process that aborts
        # it (a core dump instead of a clean stop); Python's handler (interrupts) stays.
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        if self.address == "local":
            self._private = PrivateRay()  # before Ray loads: it reads its settings then
        try:
            import ray
        except ImportError as exc:
            raise BackendError("bad_option", "--ray needs Ray, an optional part of the backend: "
                                             "pip install 'ikol-backend[cluster]'.") from exc
        self._ray = ray
        if self._private is not None:
            self.address = self._private.start()
        self._connect()
        end_on_signals()  # Ray's core installed a SIGTERM handler of its own (it aborts)
        if self.size is None:
            self.size = self._fitting(ray.cluster_resources())
        self._actor_class = ray.remote(num_cpus=1, num_gpus=self._gpus, max_restarts=0,
                                       max_task_retries=0, max_concurrency=2)(RayWorker)
        for _ in range(self.size):
            self._spawn()

    def _connect(self) -> None:
        """ray.init, in a thread of its own: there Ray sets no SIGTERM handler of its own (in
        the main thread it would exit on SIGTERM midway, leaving a private Ray's processes
        behind), so a signal meanwhile interrupts the wait here and `close` shuts Ray down
        once it is up."""
        settings = {"address": self.address, "log_to_driver": False,
                    "logging_level": logging.WARNING}
        outcome: list[BaseException | None] = []

        def connect() -> None:
            try:
                self._ray.init(**settings)
                outcome.append(None)
            except BaseException as exc:  # handed to the main thread
                outcome.append(exc)

        logging.getLogger("ray._private.worker").addFilter(_NoSigtermNote())
        self._init_thread = threading.Thread(target=connect, name="ray-init", daemon=True)
        self._init_thread.start()
        while self._init_thread.is_alive():
            self._init_thread.join(timeout=0.2)
        error = outcome[0] if outcome else RuntimeError("ray.init ended without a word")
        if isinstance(error, (ConnectionError, RuntimeError, ValueError)):
            raise BackendError("cluster_unavailable",
                               f"Cannot reach the Ray cluster at {self.address}: {error}") from error
        if error is not None:
            raise error

    def _fitting(self, resources: dict[str, float]) -> int:
        cpus = int(resources.get("CPU", 0))
        if self._gpus:
            gpus = int(resources.get("GPU", 0) / self._gpus + 1e-9)
            if gpus == 0:
                raise BackendError("bad_option", "--device cuda was asked for, but the Ray "
                                                 "cluster has no GPU.")
            cpus = min(cpus, gpus)
        return max(1, min(cpus, self._most))

    def _spawn(self) -> None:
        slot = _Slot(self._actor_class.remote(self._options))
        self._slots.append(slot)
        self._calls[slot.actor.ready.remote()] = ("ready", slot, None)

    def idle(self) -> list[Any]:
        return list(self._idle)

    def submit(self, slot: _Slot, job: Job) -> None:
        self._idle.remove(slot)
        slot.job = job
        self._calls[slot.actor.run.remote(job)] = ("run", slot, job)
        self._poll(slot, job)

    def _poll(self, slot: _Slot, job: Job) -> None:
        self._calls[slot.actor.poll.remote(POLL_WAIT_S)] = ("poll", slot, job)

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """As LocalPool.next_message."""
        if not self._buffer and self._calls:
            ready, _ = self._ray.wait(list(self._calls), num_returns=1, timeout=timeout)
            for reference in ready:
                self._take(reference)
        return self._buffer.popleft() if self._buffer else None

    def _take(self, reference: Any) -> None:
        ray = self._ray
        kind, slot, job = self._calls.pop(reference)
        if kind == "ready":
            try:
                hello = ray.get(reference)
            except ray.exceptions.RayError as exc:
                raise BackendError("internal", f"A Ray batch worker died while starting: "
                                               f"{_first_line(exc)}") from exc
            if hello["kind"] == "ready":
                slot.label = hello["worker"]
                self._idle.append(slot)
            self._buffer.append(hello)
            return
        if kind == "poll":
            try:
                messages = ray.get(reference)
            except ray.exceptions.RayError:
                return  # the job's result tells what happened
            if slot.job is job:
                self._poll(slot, job)
            self._buffer.extend({**message, "worker": slot.label} for message in messages)
            return
        try:
            messages = ray.get(reference)
        except ray.exceptions.RayTaskError as exc:  # our code raised past its own handlers
            messages = [{"kind": "end", "job": job.key,
                         "outcome": Outcome(False, code="internal", message=_first_line(exc))}]
        except ray.exceptions.RayError as exc:  # the actor, its process or its node died
            self._buffer.append(self._lost(slot, job, exc))
            return
        slot.job = None
        self._idle.append(slot)
        self._buffer.extend({**message, "worker": slot.label} for message in messages)

    def _lost(self, slot: _Slot, job: Job, error: Exception) -> dict[str, Any]:
        slot.job = None
        self._slots.remove(slot)
        for reference in [ref for ref, (_, owner, _) in self._calls.items() if owner is slot]:
            del self._calls[reference]
        try:
            self._ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone
            pass
        self._spawn()
        return {"kind": "lost", "job": job.key, "worker": slot.label,
                "message": f"The Ray worker {slot.label} died: {_first_line(error)}"}

    def close(self, interrupted: bool = False) -> None:
        """End every actor and leave Ray (a private `local` Ray stops)."""
        ray = self._ray
        if ray is None:
            return
        if self._init_thread is not None and self._init_thread.is_alive():
            self._init_thread.join(timeout=INIT_WAIT_S)  # interrupted while connecting
        if ray.is_initialized():
            for slot in self._slots:
                try:
                    ray.kill(slot.actor, no_restart=True)
                except Exception:
                    pass
            ray.shutdown()
        if self._private is not None:
            self._private.stop()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _NoSigtermNote(logging.Filter):
    """Drops Ray's note that it set no SIGTERM handler outside the main thread (on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


class PrivateRay:
    """`--ray local`: a Ray head on 127.0.0.1 with this machine's CPUs, for this batch only,
    run by its keeper (`python -m ikol_backend.batch.ray_head`)."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.keeper: subprocess.Popen | None = None
        # Token authentication with a token of its own, for the head and for this driver; Ray's
        # single-machine mode, so that this driver too is on 127.0.0.1 (read as Ray loads).
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
                          **SINGLE_MACHINE)

    def start(self) -> str:
        """Start the head; its GCS address once Ray says it runs."""
        port, client_port = _free_port(), _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ikol-ray-"))  # short: Ray's sockets live here
        (self.folder / LOG_NAME).touch()
        self.keeper = subprocess.Popen(
            [sys.executable, "-m", "ikol_backend.batch.ray_head", str(self.folder), str(port),
             str(client_port), str(cpu_count())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **group_options())
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.append(self.keeper.stdout.readline()),
                                  daemon=True, name="ray-head")
        reader.start()
        began = time.monotonic()
        while reader.is_alive() and time.monotonic() - began < HEAD_START_S:
            reader.join(timeout=0.2)  # short waits: a signal meanwhile interrupts at once
        line = said[0].strip() if said else f"not up after {HEAD_START_S:.0f} s"
        if line != "started":
            raise BackendError("cluster_unavailable", f"A private Ray (--ray local) did not "
                                                      f"start: {line or 'its keeper ended'}")
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        """Have the keeper end the head (its standard input closes), and remove its folder."""
        if self.keeper is not None:
            try:
                self.keeper.stdin.close()
                self.keeper.wait(timeout=KEEPER_STOP_S)
            except (OSError, subprocess.TimeoutExpired):
                end_group(self.keeper, 0.0)
            self.keeper = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
