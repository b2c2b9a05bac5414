"""Signals at any moment of a run, start-up included (torch and MediaPipe loading): exit 130,
one `interrupted` error, no traceback, no output left behind."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"


@pytest.mark.parametrize("after_s", [0.4, 1.2])
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_exits_130_without_a_traceback(
        signal_number: int, after_s: float, tmp_path: Path):
    output = tmp_path / "out" / "m.npz"
    output.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "ikol_backend", "estimate", str(SAMPLE), "-o", str(output),
         "--events"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(after_s)
        assert process.poll() is None, "the backend ended before the signal"
        process.send_signal(signal_number)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    events = [json.loads(line) for line in stdout.splitlines()]
    assert process.returncode == 130, (process.returncode, stderr)
    assert events and events[-1] == {"event": "error", "code": "interrupted",
                                     "message": "Interrupted."}
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert list(output.parent.iterdir()) == []


def test_without_events_the_interruption_is_one_line_for_people(tmp_path: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "ikol_backend", "estimate", str(SAMPLE), "-o",
         str(tmp_path / "m.npz")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.6)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert (stdout, stderr) == ("", "error: Interrupted.\n")
