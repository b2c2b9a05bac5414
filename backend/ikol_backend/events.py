"""What the backend tells its caller: JSON lines on stdout (--events) or plain text on stderr.

Event kinds and their fields are documented in docs/protocol.md.
"""

import json
import sys
from typing import Any


class Events:
    """Reports start, progress, warnings, the result and errors."""

    def __init__(self, json_lines: bool):
        self.json_lines = json_lines

    def emit(self, event: str, **fields: Any) -> None:
        if self.json_lines:
            print(json.dumps({"event": event, **fields}), flush=True)
            return
        text = _human(event, fields)
        if text:
            print(text, file=sys.stderr, flush=True)


def _human(event: str, fields: dict[str, Any]) -> str:
    if event == "start":
        return f"ikol-backend: {fields['frames']} frame(s), front end {fields['front_end']}, device {fields['device']}"
    if event == "progress":
        return f"  frame {fields['done']}/{fields['total']} ({fields['frames_per_s']:.1f} frames/s)"
    if event == "warning":
        return f"warning: {fields['message']}"
    if event == "result":
        summary = fields["summary"]
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in summary["seconds"].items())
        return (
            f"Wrote {fields['path']}: {summary['valid_frames']}/{summary['frames']} frame(s) "
            f"with a person. Time: {stages}."
        )
    if event == "error":
        return f"error: {fields['message']}"
    return ""
