"""Clips per second of `ikol-backend batch` against a shell loop over `estimate` (docs/batch.md).

    .venv/bin/python bench/batch.py [--clips 16] [--frames 30] [--resolution 720p]
        [--runs loop workers=1 workers=2 ray=local] [--clips-dir DIR] [--json]

One run of each, in the order given, on the same --clips clips (copies of one synthetic walking
clip from bench/clips.py, --frames frames each at --resolution):
- `loop`: what a shell loop does, `for c in clips/*; do ikol-backend estimate $c -o out/...;
  done`: one `python -m ikol_backend estimate CLIP -o OUT --events` process after another (run
  from here without a shell). Each process's start-up, from its launch to its `start` event
  (Python, torch, MediaPipe, opening the clip), is measured too.
- `loop1`: the same loop with OMP_NUM_THREADS=1, so that each `estimate`'s torch uses one CPU
  thread, as batch workers do (on busy cores two threads cost seconds per clip in the fit).
- `workers=N`: `python -m ikol_backend batch CLIPS -o OUTDIR --workers N --events`.
- `ray=ADDRESS`: `... batch CLIPS -o OUTDIR --ray ADDRESS --events` (`local`: a private Ray
  started by the batch, its start-up and shut-down included).

Every run is timed from its launch to its exit (wall clock) and must leave --clips motion
files. The table gives clips/s, the time saved against the loop, and the start-up the batch
saves: the loop pays a process start-up per clip, a batch one per worker (in parallel), so
it saves (clips - 1) x the loop's median start-up. The check: the batch beats the loop by at
least that much.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clips import DEFAULT_CACHE, parse_resolution, walk_clip  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BACKEND_ENV = {**os.environ, "PYTHONPATH": str(ROOT / "backend")}


def backend(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ikol_backend", *map(str, args)]


def make_clips(folder: Path, count: int, size: tuple[int, int], frames: int, cache: Path) -> list[Path]:
    """`count` copies of the walking clip, clip01.mp4, ... in `folder`."""
    source = walk_clip(size, frames, cache)
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for k in range(1, count + 1):
        copy = folder / f"clip{k:02d}.mp4"
        shutil.copyfile(source, copy)
        copies.append(copy)
    return copies


def run_loop(name: str, clips: list[Path], outdir: Path) -> dict[str, Any]:
    """One `estimate` process per clip, one after another; wall time and start-ups."""
    env = {**BACKEND_ENV, "OMP_NUM_THREADS": "1"} if name == "loop1" else BACKEND_ENV
    outdir.mkdir()
    startups = []
    began = time.perf_counter()
    for clip in clips:
        launched = time.perf_counter()
        process = subprocess.Popen(backend("estimate", clip, "-o", outdir / f"{clip.stem}.npz",
                                           "--events"),
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   env=env)
        for line in process.stdout:
            if line.startswith("{") and json.loads(line)["event"] == "start":
                startups.append(time.perf_counter() - launched)
        if process.wait() != 0:
            raise RuntimeError(f"estimate failed on {clip} (exit {process.returncode})")
    wall = time.perf_counter() - began
    return {"run": name, "wall_s": wall, "startup_s": statistics.median(startups),
            "outputs": len(list(outdir.glob("*.npz")))}


def run_batch(name: str, clips_dir: Path, outdir: Path) -> dict[str, Any]:
    """`batch` over the folder of clips with the run's options; wall time and its summary."""
    option, _, value = name.partition("=")
    extra = ["--workers", value] if option == "workers" else ["--ray", value]
    began = time.perf_counter()
    process = subprocess.run(backend("batch", clips_dir, "-o", outdir, *extra, "--events"),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=BACKEND_ENV)
    wall = time.perf_counter() - began
    events = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0:
        raise RuntimeError(f"batch {name} failed (exit {process.returncode}): {events[-1:]}")
    start = next(e for e in events if e["event"] == "batch_start")
    return {"run": name, "wall_s": wall, "workers": start["workers"],
            "outputs": len(list(outdir.glob("*.npz")))}


def table(results: list[dict[str, Any]], clips: int) -> str:
    """The markdown table: clips/s, speed against each loop, and the check against the fairest
    loop (`loop1` when it ran, else `loop`): time saved against the start-ups saved."""
    loops = {r["run"]: r for r in results if r["run"].startswith("loop")}
    ref = loops.get("loop1") or loops.get("loop")
    header = ["run", "workers", "wall s", "clips/s", *(f"× {name}" for name in loops)]
    if ref is not None:
        header += [f"s saved vs {ref['run']}", "start-up saved s",
                   f"beats {ref['run']} by the start-up saved"]
    rows = ["| " + " | ".join(header) + " |",
            "| --- | " + " | ".join("---:" for _ in header[1:-1]) + (" | --- |" if ref else " | ---: |")]
    for result in results:
        wall = result["wall_s"]
        cells = [result["run"], str(result.get("workers", 1)), f"{wall:.1f}", f"{clips / wall:.3f}"]
        cells += [f"{loop['wall_s'] / wall:.2f}" for loop in loops.values()]
        if ref is not None and result["run"] in loops:
            cells += ["", "", ""]
        elif ref is not None:
            saved = ref["wall_s"] - wall
            startup_saved = (clips - 1) * ref["startup_s"]
            cells += [f"{saved:.1f}", f"{startup_saved:.1f}", "yes" if saved >= startup_saved else "no"]
        rows.append("| " + " | ".join(cells) + " |")
    for name, loop in loops.items():
        rows.append(f"\n{name}: median start-up {loop['startup_s']:.2f} s per estimate process "
                    f"(launch to its start event).")
    return "\n".join(rows)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()}, load average {load} before"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16, help="how many clips (default 16)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (default 30)")
    parser.add_argument("--resolution", default="720p", help="720p, 1080p or WxH (default 720p)")
    parser.add_argument("--runs", nargs="+",
                        default=["loop", "loop1", "workers=1", "workers=2", "ray=local"],
                        help="loop, loop1, workers=N, ray=ADDRESS (default: all of loop loop1 "
                             "workers=1 workers=2 ray=local)")
    parser.add_argument("--clips-dir", type=Path, default=DEFAULT_CACHE,
                        help="cache folder for the generated clip")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    for run in args.runs:
        option, _, value = run.partition("=")
        if run not in ("loop", "loop1") and not (option in ("workers", "ray") and value):
            parser.error(f"--runs: {run!r} is not loop, loop1, workers=N or ray=ADDRESS")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    size = parse_resolution(args.resolution)
    where = machine()
    print(f"Machine: {where}")
    print(f"{args.clips} clips of {args.frames} frames at {size[0]}x{size[1]}\n", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="ikol-bench-batch-") as work:
        clips_dir = Path(work) / "clips"
        clips = make_clips(clips_dir, args.clips, size, args.frames, args.clips_dir)
        for k, run in enumerate(args.runs):
            outdir = Path(work) / f"out{k}"
            result = (run_loop(run, clips, outdir) if run.startswith("loop")
                      else run_batch(run, clips_dir, outdir))
            if result["outputs"] != args.clips:
                raise RuntimeError(f"{run} left {result['outputs']} motion files, not {args.clips}")
            results.append(result)
            print(f"{run}: {result['wall_s']:.1f} s", file=sys.stderr, flush=True)
    print(table(results, args.clips))
    if args.json:
        print(json.dumps({"machine": where, "clips": args.clips, "frames": args.frames,
                          "resolution": list(size), "results": results}, indent=2))


if __name__ == "__main__":
    main()
