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
whose motion file exists and whose latest `done` or `skipped` line has the same hash. Only
well-formed lines count: a line cut short by a crash, or one whose values were edited into
something else (`"frames": "lots"`), is passed over, so its input is done again; the next line
written starts on a line of its own.

One batch at a time may use an output folder: the manifest is locked while it runs (flock;
on Windows a lock on its first byte). A manifest that is not a regular file (a symbolic link,
say) is refused, never followed.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import stat
import sys
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
        self._fd = _open_regular(self.path)
        try:
            _lock(self._fd)
        except OSError as exc:
            os.close(self._fd)
            raise BackendError("output_busy", f"Another batch is writing to {folder} "
                                              f"(its manifest is locked).") from exc
        text = _read_all(self._fd)
        self._prefix = b"" if not text or text.endswith(b"\n") else b"\n"  # ends a cut line
        self._finished = _finished(text)

    def finished_with(self, input_path: str, output: str, settings: str) -> dict[str, Any] | None:
        """The line of an earlier run that made this input's output with these settings."""
        line = self._finished.get((input_path, output))
        return line if line is not None and line["settings"] == settings else None

    def append(self, record: Record) -> dict[str, Any]:
        """Write `record` as one line (a single write, flushed to disk); returns its fields."""
        fields = record.line()
        data = self._prefix + (json.dumps(fields) + "\n").encode()
        written = os.write(self._fd, data)
        if written != len(data):
            raise BackendError("output_unwritable", f"Could not write all of a line to {self.path}")
        os.fsync(self._fd)
        self._prefix = b""
        return fields

    def close(self) -> None:
        """Release the lock and close the file."""
        if sys.platform == "win32":
            import msvcrt

            os.lseek(self._fd, 0, os.SEEK_SET)
            msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
        os.close(self._fd)  # releases a flock


def _open_regular(path: Path) -> int:
    """`path` opened to read and append (made when missing); BackendError when it cannot be, or
    is anything but a regular file (a symbolic link is not followed: O_NOFOLLOW where the
    platform has it, and the file checked before and after opening)."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise BackendError("output_unwritable", f"The manifest {path} is not a regular file "
                                                    f"(a link or a folder): move it away.")
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise BackendError("output_unwritable",
                           f"Cannot write the manifest {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BackendError("output_unwritable", f"The manifest {path} is not a regular file.")
    return fd


def _lock(fd: int) -> None:
    """Lock the open manifest until it is closed, without waiting; OSError when another
    process holds it."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_all(fd: int) -> bytes:
    """The whole file, read through `fd` (on Windows another handle could not read the byte
    this one locks)."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _finished(text: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    """(input, output) -> its latest well-formed `done` or `skipped` line."""
    finished: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in text.split(b"\n"):
        try:
            line = json.loads(raw)
        except ValueError:  # cut short, or not text
            continue
        if _well_formed(line) and line["status"] in (DONE, SKIPPED):
            finished[(line["input"], line["output"])] = line
    return finished


def _count(value: Any) -> bool:
    """A frame count: null or an integer from 0 (JSON true is not one)."""
    return value is None or (type(value) is int and value >= 0)


def _well_formed(line: Any) -> bool:
    """A line as this module writes it, in the fields a later run reads."""
    return (isinstance(line, dict)
            and all(isinstance(line.get(key), str) for key in ("input", "output", "status",
                                                                "settings"))
            and _count(line.get("frames")) and _count(line.get("valid_frames"))
            and (line.get("frames") is None or line.get("valid_frames") is None
                 or line["valid_frames"] <= line["frames"]))
