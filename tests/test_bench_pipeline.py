"""bench/pipeline.py runs end to end and prints its tables (no assertion on speed)."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from clips import walk_clip  # noqa: E402
from ikol_backend.network.checkpoint import load_checkpoint  # noqa: E402
from pipeline import (  # noqa: E402
    STAGES, Run, Tree, baseline_checkout, check_imports, git, memory_summary, memory_table,
    parse_arguments, random_checkpoint, resident_mib, speed_table)


def test_pipeline_bench_prints_the_stage_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pipeline.py"), "--resolution", "320x240",
         "--frames", "6", "--repeats", "1", "--memory-frames", "--clips", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout
    assert "| valid frames (fewest) | 6/6 |" in table  # the pose model found the person
    for stage in ("decode", "landmarks", "ik", "write"):
        assert f"| {stage} ms/frame | " in table
    assert "| frames/s, start to result | " in table
    assert "| peak RSS MiB | " in table
    assert "speed target (default front end, 720p) not checked" in table
    assert "Memory:" not in table  # --memory-frames with no lengths: no memory part


def test_memory_table_and_growth() -> None:
    trees = [Tree("current", "v2", ROOT), Tree("baseline", "v1", ROOT)]
    runs = [Run(tree.label, frames, frames - (tree.label == "baseline"), dict.fromkeys(STAGES, 0.1),
                startup_s=3.0, clip_s=frames / 20, wall_s=frames / 20 + 3.0,
                peak_rss_mib=peak + frames / 100, frames_rss_mib=peak - 100)
            for frames in (150, 600) for tree, peak in zip(trees, (500.2, 400.2))]
    table = memory_table(trees, runs)
    assert table[2] == "| 150 | 5.0 | 502 | 400 | 20.0 | 150/150 | 402 | 300 | 20.0 | 149/150 | 1.25 |"
    summary = memory_summary(trees, runs)
    # 10 MiB per 1000 frames; 506.2 MiB at 600 frames + 17.4 * 10 MiB -> 680 MiB at 18000
    assert summary[0].startswith("- current: peak RSS grows +10.0 MiB per 1000 frames; 680 MiB at 18000")
    assert summary[0].endswith("target < 2048 MiB: met")


def test_walk_clip_moves_the_person_and_is_cached(tmp_path: Path) -> None:
    path = walk_clip((320, 240), 40, tmp_path)
    capture = cv2.VideoCapture(str(path))
    frames = [capture.read()[1] for _ in range(40)]
    capture.release()
    assert frames[0].shape == (240, 320, 3)
    assert cv2.absdiff(frames[0], frames[39]).mean() > 5  # 1.3 s later the person is elsewhere
    stamp = path.stat().st_mtime_ns
    assert walk_clip((320, 240), 40, tmp_path) == path and path.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left


def test_speed_table_rows_for_the_stages_any_tree_reported() -> None:
    trees = [Tree("current", "v2", ROOT), Tree("baseline", "v1", ROOT)]
    stages = {"current": {"decode": 0.3, "network": 3.0, "ik": 0.6}, "baseline": {"decode": 0.6, "ik": 0.3}}
    runs = [Run(tree.label, 30, 30, stages[tree.label], startup_s=3.0, clip_s=2.0, wall_s=6.0,
                peak_rss_mib=500.0, frames_rss_mib=490.0) for tree in trees]
    table = speed_table(trees, runs)
    assert table[0] == "| measure (median) | current | baseline | current / baseline |"
    assert table[2] == "| valid frames (fewest) | 30/30 | 30/30 |  |"
    assert table[3:6] == ["| decode ms/frame | 10.00 | 20.00 | 0.50 |",
                          "| network ms/frame | 100.00 | 0.00 |  |",
                          "| ik ms/frame | 20.00 | 10.00 | 2.00 |"]
    assert "| frames/s, start to result | 15.00 | 15.00 | 1.00 |" in table


def test_resident_memory_of_a_process() -> None:
    assert 10 < resident_mib(os.getpid()) < 100_000
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert resident_mib(finished.pid) == 0.0


def test_baseline_checkout_is_imported_and_removed() -> None:
    with baseline_checkout("HEAD") as tree:
        assert (tree.backend / "ikol_backend" / "cli.py").is_file()
        assert tree.version.startswith("HEAD (")
        check_imports(tree)  # PYTHONPATH wins over the editable install of the current tree
        worktree = tree.backend.parent
    assert not worktree.exists()
    assert str(worktree) not in git("worktree", "list")
    with pytest.raises(RuntimeError, match="not a commit of this repository"):
        with baseline_checkout("no-such-ref-anywhere"):
            pass


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--resolution", "hd"], ["--front-end", "dummy"], ["--frames", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_arguments(argv)
        assert exit_info.value.code == 2
    assert "expected 720p, 1080p or WIDTHxHEIGHT" in capsys.readouterr().err


def test_random_checkpoint_loads_into_the_network(tmp_path: Path) -> None:
    path = random_checkpoint(tmp_path / "random.pth")
    assert load_checkpoint(path, "cpu").training is False
