"""bench/batch.py runs end to end and prints its table (no assertion on speed)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from batch import parse_arguments, table  # noqa: E402


def test_batch_bench_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "batch.py"), "--clips", "2", "--frames", "2",
         "--resolution", "320x240", "--runs", "loop", "workers=1", "--clips-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 clips of 2 frames at 320x240" in done.stdout
    assert "| loop | 1 | " in done.stdout and "| workers=1 | 1 | " in done.stdout
    assert "median start-up" in done.stdout


def test_the_table_checks_the_saving_against_the_start_ups_saved() -> None:
    results = [{"run": "loop", "wall_s": 120.0, "startup_s": 4.0},
               {"run": "loop1", "wall_s": 100.0, "startup_s": 4.0},
               {"run": "workers=2", "wall_s": 30.0, "workers": 2},
               {"run": "ray=local", "wall_s": 50.0, "workers": 2}]
    rows = table(results, 16).splitlines()
    assert rows[0] == ("| run | workers | wall s | clips/s | × loop | × loop1 | s saved vs loop1 | "
                       "start-up saved s | beats loop1 by the start-up saved |")
    assert rows[2] == "| loop | 1 | 120.0 | 0.133 | 1.00 | 0.83 |  |  |  |"
    assert rows[4] == "| workers=2 | 2 | 30.0 | 0.533 | 4.00 | 3.33 | 70.0 | 60.0 | yes |"
    assert rows[5] == "| ray=local | 2 | 50.0 | 0.320 | 2.40 | 2.00 | 50.0 | 60.0 | no |"


def test_runs_are_checked() -> None:
    assert parse_arguments(["--runs", "loop", "loop1", "workers=3", "ray=auto"]).runs == [
        "loop", "loop1", "workers=3", "ray=auto"]
    with pytest.raises(SystemExit):
        parse_arguments(["--runs", "threads=2"])
