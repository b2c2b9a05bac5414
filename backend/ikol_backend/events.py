"""What the backend tells its caller: JSON lines on stdout (--events) or, for people, plain text
and a progress bar on stderr.

Event kinds and their fields are documented in docs/protocol.md.
"""

import json
import sys
from typing import Any, TextIO

BAR_WIDTH = 30


class Events:
    """Reports start, progress, warnings, the result and errors."""

    def __init__(self, json_lines: bool, stream: TextIO | None = None):
        self.json_lines = json_lines
        self.stream = stream  # for people; None: sys.stderr at the time of writing
        self.out: TextIO | None = None  # for JSON lines; None: sys.stdout at the time of writing
        self._bar_shown = False  # a progress bar is on the terminal's last line
        self._last_tenth = -1

    def emit(self, event: str, **fields: Any) -> None:
        if self.json_lines:
            print(json.dumps({"event": event, **fields}), file=self.out, flush=True)
            return
        stream = self.stream or sys.stderr
        if event in ("progress", "batch_progress"):
            self._progress(stream, fields)
            return
        text = _human(event, fields)
        if text:
            if self._bar_shown:
                stream.write("\n")
                self._bar_shown = False
            print(text, file=stream, flush=True)

    def _progress(self, stream: TextIO, fields: dict[str, Any]) -> None:
        """A bar redrawn in place on a terminal; elsewhere a line at every tenth."""
        rate = fields["frames_per_s"]
        if "inputs" in fields:  # a batch: the bar counts inputs
            done, total = fields["inputs_done"], fields["inputs"]
            counts = (f"{done}/{total} inputs, {fields['frames_done']}/{fields['frames_total']} "
                      f"frames")
        else:
            done, total = fields["done"], fields["total"]
            counts = f"{done}/{total} frames"
        fraction = done / total if total else 0.0
        filled = round(BAR_WIDTH * fraction)
        bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {counts}, {rate:.1f} frames/s"
        if stream.isatty():
            stream.write("\r" + bar)
            stream.flush()
            self._bar_shown = True
            return
        tenth = int(10 * fraction)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            print(bar, file=stream, flush=True)


def _human(event: str, fields: dict[str, Any]) -> str:
    if event == "start":
        return f"ikol-backend: {fields['frames']} frame(s), front end {fields['front_end']}, device {fields['device']}"
    if event == "warning":
        about = f"{fields['input']}: " if "input" in fields else ""
        return f"warning: {about}{fields['message']}"
    if event in _BATCH:
        return _BATCH[event](fields)
    if event == "result" and "inputs" in fields["summary"]:
        summary = fields["summary"]
        return (f"Batch: {summary['done']} done, {summary['failed']} failed, "
                f"{summary['skipped']} skipped of {summary['inputs']} input(s), "
                f"{summary['frames']} frame(s) in {summary['seconds']:.1f} s. "
                f"Manifest: {fields['path']}")
    if event == "result":
        summary = fields["summary"]
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in summary["seconds"].items())
        if "made" in summary:  # ikol-backend prepare
            return (f"Made {fields['path']}. Time: {stages}." if summary["made"]
                    else f"Ready (made earlier): {fields['path']}")
        if "frames" not in summary:  # not a motion file (ikol-backend body)
            return f"Wrote {fields['path']}. Time: {stages}."
        if "people" in summary:  # --people all: a folder of motion files
            files = ", ".join(f"{p['file']} ({p['valid_frames']}/{summary['frames']} frames)"
                              for p in summary["people"])
            return f"Wrote {len(summary['people'])} people to {fields['path']}: {files}. Time: {stages}."
        return (
            f"Wrote {fields['path']}: {summary['valid_frames']}/{summary['frames']} frame(s) "
            f"with a person. Time: {stages}."
        )
    if event == "people":
        return fields["message"]
    if event == "error":
        return f"error: {fields['message']}"
    return ""


def _input_end(fields: dict[str, Any]) -> str:
    status, name = fields["status"], fields["input"]
    if status == "failed":
        return f"failed: {name}: {fields['error']['message']}"
    if status == "skipped":
        return f"skipped: {name} ({fields['output']} is up to date)"
    return f"done: {name} -> {fields['output']}, {fields['frames']} frame(s), {fields['seconds']:.1f} s"


_BATCH = {  # a batch's own events (docs/protocol.md), for people
    "batch_start": lambda f: (f"ikol-backend batch: {f['inputs']} input(s), {f['skipped']} up "
                              f"to date, {f['pending']} to do on {f['workers']} {f['runner']} "
                              f"worker(s); settings {f['settings']}"),
    "input_start": lambda f: "",
    "input_end": _input_end,
}
