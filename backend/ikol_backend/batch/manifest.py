"""OUTDIR/manifest.jsonl: one JSON line per input and attempt, appended as the batch goes.

Fields of a line (docs/batch.md): `input` (absolute path), `output` (the motion file's name in
OUTDIR), `status` (`done`, `failed` or `skipped`), `attempt` (from 1), `frames` and
`valid_frames` (null when unknown), `seconds` (the attempt's wall time), `settings` (the
settings hash), `worker` (which worker ran it, null when none did), `time` (UTC, when the
line was written); a failed line adds `error` (`code`, `message`) and `retry` (true when
the input is tried again).

The settings hash covers everything that changes a motion file: the estimate options (paths
absolute; for an SMPL file or a checkpoint also its size and modification time), the output
format, the motion file's format version and the backend's version. A re-run skips an input
whose motion file exists and whose latest `done` or `skipped` line has the same hash.

One batch at a time may use an output folder: the manifest is locked (flock) while it runs.
"""

import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BackendError
from ..writers.motion import FORMAT_VERSION

MANIFEST_NAME = "manifest.jsonl"
HASH_DIGITS = 16
DONE, FAILED, SKIPPED = "done", "failed", "skipped"


def settings_hash(option_values: dict[str, Any], output_suffix: str) -> str:
    """The hash of the settings: estimate options, output format, format and backend version."""
    settings = {
        "options": {name: _identity(value) for name, value in sorted(option_values.items())},
        "output": output_suffix,
        "format_version": FORMAT_VERSION,
        "backend": __version__,
    }
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]


def _identity(value: Any) -> Any:
    """A JSON value for an option; a file path also gives the file's size and change time, so
    a different file at the same path counts as different settings."""
    if isinstance(value, Path):
        try:
            stat = value.stat()
        except OSError:
            return [str(value)]
        return [str(value), stat.st_size, stat.st_mtime_ns]
    return value


@dataclasses.dataclass(frozen=True)
class Record:
    """One manifest line."""

    input: str
    output: str
    status: str
    attempt: int
    settings: str
    frames: int | None = None
    valid_frames: int | None = None
    seconds: float = 0.0
    worker: str | None = None
    error: dict[str, str] | None = None
    retry: bool = False

    def line(self) -> dict[str, Any]:
        """The JSON object written (and sent as the `input_end` event)."""
        fields = dataclasses.asdict(self)
        fields["seconds"] = round(self.seconds, 3)
        if self.error is None:
            del fields["error"], fields["retry"]
        fields["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return fields


class Manifest:
    """The open manifest of one output folder: earlier lines read, new ones appended whole."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST_NAME
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise BackendError("output_unwritable",
                               f"Cannot write the manifest {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            raise BackendError("output_busy", f"Another batch is writing to {folder} "
                                              f"(its manifest is locked).") from exc
        self._finished = self._read_finished()

    def _read_finished(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(input, output) -> its latest `done` or `skipped` line. A line that does not parse
        (cut short by a crash) is passed over."""
        finished: dict[tuple[str, str], dict[str, Any]] = {}
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for text in handle:
                try:
                    line = json.loads(text)
                    if line["status"] in (DONE, SKIPPED):
                        finished[(line["input"], line["output"])] = line
                except (ValueError, KeyError, TypeError):
                    continue
        return finished

    def finished_with(self, input_path: str, output: str, settings: str) -> dict[str, Any] | None:
        """The line of an earlier run that made this input's output with these settings."""
        line = self._finished.get((input_path, output))
        return line if line is not None and line.get("settings") == settings else None

    def append(self, record: Record) -> dict[str, Any]:
        """Write `record` as one line (a single write, flushed to disk); returns its fields."""
        fields = record.line()
        data = (json.dumps(fields) + "\n").encode()
        written = os.write(self._fd, data)
        if written != len(data):
            raise BackendError("output_unwritable", f"Could not write all of a line to {self.path}")
        os.fsync(self._fd)
        return fields

    def close(self) -> None:
        os.close(self._fd)  # releases the lock
