"""The coordinator of a batch: inputs to workers, motion files and manifest lines out.

Inputs whose motion file exists with the same settings hash are skipped. The rest are handed,
one at a time, to whichever worker is free. When a job ends, the coordinator writes its motion
file (atomically: `writers.motion.write_motion`) and then its manifest line, so a `done` line
always names a whole file. A motion file or manifest line that cannot be written ends the
batch (`output_unwritable`). A job whose worker died is tried again on another worker, up to
`retries` more times, each attempt its own manifest line. A failing input never stops the
others.

Events (docs/protocol.md): `batch_start`, `input_start`, `batch_progress`, `warning` (with the
`input` it is about), `input_end` (the manifest line), `result`.
"""

import collections
import dataclasses
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

from .. import __version__
from ..errors import BackendError
from ..events import Events
from ..writers.motion import write_motion, write_people
from .inputs import Input
from .manifest import DONE, FAILED, SKIPPED, Manifest, Record
from .worker import Job, Outcome

POLL_S = 0.2  # how long to wait for a worker's message before looking around again
PROGRESS_EVERY_S = 0.25  # batch_progress events at most this often
LOST = "worker_lost"  # the error code of an attempt whose worker died
Probe = Callable[[Path], None]  # opens an input as estimate would; raises its BackendError


class Pool(Protocol):
    """Workers, local (`local.LocalPool`) or on Ray (`cluster.RayPool`)."""

    runner: str
    size: int | None

    def start(self) -> None: ...
    def idle(self) -> list[Any]: ...
    def submit(self, worker: Any, job: Job) -> None: ...
    def next_message(self, timeout: float) -> dict[str, Any] | None: ...
    def close(self, interrupted: bool = False) -> None: ...


@dataclasses.dataclass
class _Attempt:
    """A job being worked on."""

    job: Job
    began: float
    worker: str | None = None
    frames_done: int = 0
    frames_total: int = 0


@dataclasses.dataclass
class Totals:
    """What the batch did: final status counts and frames estimated in this run."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0


class Runner:
    """One batch: `inputs` into `outdir`, recorded in `manifest` under the `settings` hash;
    a job whose worker dies gets up to `retries` more attempts."""

    def __init__(self, inputs: list[Input], outdir: Path, manifest: Manifest, settings: str,
                 retries: int, events: Events, everyone: bool = False):
        self.inputs = inputs
        self.everyone = everyone  # --people all: each output is a folder of person files
        self.outdir = outdir
        self.manifest = manifest
        self.settings = settings
        self.retries = retries
        self.events = events
        self.totals = Totals()
        self._running: dict[int, _Attempt] = {}
        self._last_progress = 0.0
        self._last_state: tuple[int, int, int] | None = None
        self._ready = False  # whether a worker has been ready
        self._began = time.perf_counter()

    def seconds(self) -> float:
        """Wall time since the runner was made."""
        return time.perf_counter() - self._began

    def pending(self) -> tuple[list[Job], list[Record]]:
        """The jobs to do, and the `skipped` lines of the inputs whose motion file is up to
        date (their frame counts from the earlier line)."""
        jobs, skipped = [], []
        for key, item in enumerate(self.inputs):
            earlier = self.manifest.finished_with(str(item.path), item.output, self.settings)
            output = self.outdir / item.output
            if earlier is not None and (output.is_dir() if self.everyone else output.is_file()):
                skipped.append(Record(str(item.path), item.output, SKIPPED, 1, self.settings,
                                      frames=earlier.get("frames"),
                                      valid_frames=earlier.get("valid_frames")))
            else:
                jobs.append(Job(key, str(item.path)))
        return jobs, skipped

    def run(self, jobs: list[Job], skipped: list[Record], pool: Pool | None, runner: str,
            probe: Probe | None = None) -> Totals:
        """Every job done or failed, the `skipped` inputs recorded; `pool` (None when there
        are no jobs) started already. While no worker is ready yet, `probe` opens the pending
        inputs here, one at a time: one it fails (estimate's own error) is recorded as failed
        without a worker. KeyboardInterrupt passes through (the caller closes the pool)."""
        self.events.emit("batch_start", inputs=len(self.inputs), pending=len(jobs),
                         skipped=len(skipped), workers=pool.size if pool else 0,
                         runner=runner, settings=self.settings, manifest=str(self.manifest.path))
        for record in skipped:
            self._record(record)
        todo = collections.deque(jobs)
        unprobed = collections.deque(jobs if probe is not None else [])
        while todo or self._running:
            for worker in pool.idle():
                if not todo:
                    break
                job = todo.popleft()
                pool.submit(worker, job)
                self._running[job.key] = _Attempt(job, time.perf_counter())
            if unprobed and not self._ready:
                job = unprobed.popleft()
                if job in todo and self._probe(job, probe):
                    todo.remove(job)
                message = pool.next_message(0.0)
            else:
                message = pool.next_message(POLL_S)
            if message is not None:
                retry = self._handle(message)
                if retry is not None:
                    todo.appendleft(retry)
            self._progress()
        self._progress(final=True)
        return self.totals

    def _probe(self, job: Job, probe: Probe) -> bool:
        """Whether the job's input failed to open here (then recorded as failed)."""
        began = time.perf_counter()
        try:
            probe(Path(job.path))
        except BackendError as exc:
            item = self.inputs[job.key]
            self._record(Record(job.path, item.output, FAILED, job.attempt, self.settings,
                                seconds=time.perf_counter() - began,
                                error={"code": exc.code, "message": exc.message}))
            return True
        return False

    def _handle(self, message: dict[str, Any]) -> Job | None:
        """Act on a worker's message; returns a job to try again, if any."""
        kind = message["kind"]
        if kind == "refused":
            raise BackendError(message["code"], message["message"])
        if kind == "ready":
            self._ready = True
            if message.get("version") != __version__:
                self.events.emit("warning", code="worker_version", message=(
                    f"Worker {message['worker']} runs ikol-backend {message.get('version')}, "
                    f"this one is {__version__}: results may differ."))
            return None
        item = self.inputs[message["job"]]
        if kind == "warning":  # also one that arrives after its job's end (Ray)
            fields = {key: value for key, value in message.items()
                      if key not in ("kind", "job", "worker")}
            self.events.emit("warning", input=str(item.path), **fields)
            return None
        attempt = self._running.get(message["job"])
        if attempt is None:  # a late message of a job that ended
            return None
        attempt.worker = message.get("worker") or attempt.worker
        if kind == "start":
            attempt.frames_total = message["frames"]
            self.events.emit("input_start", input=str(item.path), output=item.output,
                             attempt=attempt.job.attempt, worker=attempt.worker,
                             frames=message["frames"])
        elif kind == "progress":
            attempt.frames_done = message["done"]
            attempt.frames_total = max(attempt.frames_total, message["total"])
        elif kind == "end":
            del self._running[attempt.job.key]
            self._finish(attempt, item, message["outcome"])
        elif kind == "lost":
            del self._running[attempt.job.key]
            return self._lost(attempt, item, message["message"])
        return None

    def _finish(self, attempt: _Attempt, item: Input, outcome: Outcome) -> None:
        """Write the job's motion file and its manifest line. A motion file that cannot be
        written (a full disk, OUTDIR turned read-only) is recorded as failed and then ends the
        batch (its BackendError raised): the inputs left would be estimated for nothing."""
        unwritable = None
        if outcome.done:
            try:
                if self.everyone:
                    write_people(self.outdir / item.output, outcome.people)
                else:
                    write_motion(self.outdir / item.output, outcome.people[0])
            except BackendError as exc:
                unwritable = exc
                outcome = dataclasses.replace(outcome, done=False, code=exc.code, message=exc.message)
        record = Record(str(item.path), item.output, DONE if outcome.done else FAILED,
                        attempt.job.attempt, self.settings, frames=outcome.frames,
                        valid_frames=outcome.valid_frames,
                        seconds=time.perf_counter() - attempt.began, worker=attempt.worker,
                        error=None if outcome.done else {"code": outcome.code,
                                                         "message": outcome.message})
        if outcome.done:
            self.totals.frames += outcome.frames or 0
        self._record(record)
        if unwritable is not None:
            raise unwritable

    def _lost(self, attempt: _Attempt, item: Input, message: str) -> Job | None:
        again = attempt.job.attempt <= self.retries
        if again:
            message += f" Trying again (attempt {attempt.job.attempt + 1} of {self.retries + 1})."
        self._record(Record(str(item.path), item.output, FAILED, attempt.job.attempt,
                            self.settings, seconds=time.perf_counter() - attempt.began,
                            worker=attempt.worker, error={"code": LOST, "message": message},
                            retry=again))
        if again:
            return dataclasses.replace(attempt.job, attempt=attempt.job.attempt + 1)
        return None

    def _record(self, record: Record) -> None:
        """Append the manifest line, count it (retried attempts are not final), tell."""
        try:
            fields = self.manifest.append(record)
        except OSError as exc:  # a full disk, OUTDIR turned read-only
            raise BackendError("output_unwritable", f"Cannot write the manifest "
                                                    f"{self.manifest.path}: {exc.strerror}") from exc
        if not record.retry:
            setattr(self.totals, record.status, getattr(self.totals, record.status) + 1)
        self.events.emit("input_end", **fields)

    def _progress(self, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        running = self._running.values()
        state = (self.totals.done + self.totals.failed + self.totals.skipped,
                 self.totals.frames + sum(a.frames_done for a in running),
                 self.totals.frames + sum(a.frames_total for a in running))
        if state == self._last_state:
            return  # nothing new to tell
        self._last_state = state
        finished, frames_done, frames_total = state
        self.events.emit("batch_progress", inputs_done=finished, inputs=len(self.inputs),
                         frames_done=frames_done, frames_total=frames_total,
                         frames_per_s=round(frames_done / max(now - self._began, 1e-9), 2))
