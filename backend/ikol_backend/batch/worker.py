"""The work of a batch worker: torch and the models loaded once, then one input after another.

A worker runs `estimate`'s pipeline (`estimate.estimate_motion`) and hands back the motion
file's arrays; it writes nothing: the batch's coordinator writes every motion file, so a worker
that dies leaves no partial file and workers on other machines need not reach the output folder.

Messages a worker sends for a job (plain dicts, the same locally and on Ray):
- `{"kind": "start", "job", "frames"}`: the input opened, `frames` to read (0 when unknown);
- `{"kind": "progress", "job", "done", "total"}`: frames read so far (at most every
  PROGRESS_EVERY_S seconds, and the last);
- `{"kind": "warning", "job", "code", "message"[, "frame"]}`: `estimate`'s warnings;
- `{"kind": "end", "job", "outcome"}`: an Outcome, done or failed.
Before any job a worker says `{"kind": "ready", "worker", "version"}`, or
`{"kind": "refused", "code", "message"}` when the options cannot work at all (the same for
every input: a bad option, no CUDA for --device cuda, an unusable checkpoint or SMPL file).

`main()` (run as `python -m ikol_backend.batch.serve`) is a local worker process
(`batch.local`): pickled messages over its standard input and output (see `pipe`), signals left
to the coordinator.
"""

import argparse
import dataclasses
import os
import queue
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BackendError
from ..events import Events

PROGRESS_EVERY_S = 0.25
Report = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class Job:
    """One attempt at one input: `key` names the input in the batch, `path` is what
    `estimate` is given (absolute), `attempt` counts from 1."""

    key: int
    path: str
    attempt: int = 1


@dataclasses.dataclass
class Outcome:
    """How a job ended: `people` (each person's motion file arrays: one with --people one) when
    done; `code` and `message` when it failed."""

    done: bool
    people: list[dict[str, Any]] | None = None
    frames: int | None = None
    valid_frames: int | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    code: str | None = None
    message: str | None = None


def label() -> str:
    """How a worker is named in events and the manifest: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerCore:
    """torch, BlazePose and (for --front-end ikol) the network, loaded once for `options`,
    the values of the estimate options (names as `options.add_estimate_options` gives them).

    `threads`: torch's CPU threads (None: torch's default). Raises BackendError when the
    options cannot work for any input.
    """

    def __init__(self, option_values: dict[str, Any], threads: int | None = None):
        import numpy as np
        import torch

        from ..options import estimate_options
        from ..estimate import check_options, load_network
        from ..frontends.blazepose import BlazePose

        if threads:
            torch.set_num_threads(threads)
        self.options = estimate_options(argparse.Namespace(**option_values))
        device = check_options(self.options)
        self.network = load_network(self.options, device) if self.options.front_end == "ikol" else None
        with BlazePose() as warm:  # MediaPipe's runtime starts here, not in the first job
            warm.detect(np.zeros((64, 64, 3), np.uint8))

    def run(self, job: Job, report: Report) -> Outcome:
        """`estimate`'s motion for the job's input; never raises but for KeyboardInterrupt."""
        from ..estimate import estimate_motion

        try:
            estimated = estimate_motion([Path(job.path)], _Relay(job.key, report), self.options,
                                        self.network)
        except BackendError as exc:
            return Outcome(False, code=exc.code, message=exc.message)
        except Exception as exc:  # a bug: the trace to this worker's stderr
            traceback.print_exc()
            return Outcome(False, code="internal", message=f"{type(exc).__name__}: {exc}")
        return Outcome(True, people=[person.arrays for person in estimated.people],
                       frames=estimated.frames,
                       valid_frames=max(person.valid_frames for person in estimated.people),
                       seconds=estimated.seconds)


class _Relay(Events):
    """`estimate`'s events for one job, turned into worker messages."""

    def __init__(self, key: int, report: Report):
        super().__init__(json_lines=False)
        self.key = key
        self.report = report
        self.last_progress = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        if event == "start":
            self.report({"kind": "start", "job": self.key, "frames": fields["frames"]})
        elif event == "progress":
            now = time.monotonic()
            if now - self.last_progress >= PROGRESS_EVERY_S or fields["done"] >= fields["total"]:
                self.last_progress = now
                self.report({"kind": "progress", "job": self.key, "done": fields["done"],
                             "total": fields["total"]})
        elif event == "warning":
            self.report({"kind": "warning", "job": self.key, **fields})


def start(option_values: dict[str, Any], threads: int | None) -> tuple[WorkerCore | None, dict[str, Any]]:
    """A WorkerCore and the `ready` message, or None and the `refused` message."""
    try:
        core = WorkerCore(option_values, threads)
    except BackendError as exc:
        return None, {"kind": "refused", "code": exc.code, "message": exc.message}
    return core, {"kind": "ready", "worker": label(), "version": __version__}


class RayWorker:
    """A batch worker as a Ray actor (`batch.cluster` wraps it with `ray.remote`, with two
    threads: `run` works while `poll` hands out the job's messages so far)."""

    def __init__(self, option_values: dict[str, Any]):
        self.core, self.hello = start(option_values, None)  # Ray sets the threads per CPU asked
        self.messages: queue.SimpleQueue = queue.SimpleQueue()

    def ready(self) -> dict[str, Any]:
        return self.hello

    def run(self, job: Job) -> list[dict[str, Any]]:
        """The job; its messages not yet polled, the `end` message last."""
        assert self.core is not None, "a refused worker is given no jobs"
        outcome = self.core.run(job, self.messages.put)
        return [*self._drain(), {"kind": "end", "job": job.key, "outcome": outcome}]

    def poll(self, wait_s: float) -> list[dict[str, Any]]:
        """The messages of the running job so far, waiting up to `wait_s` for the first."""
        try:
            first = self.messages.get(timeout=wait_s)
        except queue.Empty:
            return []
        return [first, *self._drain()]

    def _drain(self) -> list[dict[str, Any]]:
        taken = []
        while True:
            try:
                taken.append(self.messages.get_nowait())
            except queue.Empty:
                return taken


def main() -> None:
    """A local worker process: setup, then jobs, from the coordinator on standard input."""
    from . import pipe

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; SIGTERM ends us
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed to stdout (native libraries) goes to stderr
    requests = sys.stdin.buffer
    setup = pipe.receive(requests)
    if setup is None:
        return
    core, hello = start(setup["options"], setup["threads"])
    pipe.send(replies, hello)
    if core is None:
        return
    while (job := pipe.receive(requests)) is not None:
        outcome = core.run(job, lambda message: pipe.send(replies, message))
        pipe.send(replies, {"kind": "end", "job": job.key, "outcome": outcome})
