"""End-to-end speed and memory of `ikol-backend estimate` on synthetic clips (docs/pipeline.md).

    .venv/bin/python bench/pipeline.py [--resolution 720p] [--frames 300] [--repeats 3] [--people N]
        [--memory-resolution 1080p] [--memory-frames 150 600 2400] [--long]
        [--baseline GIT_REF] [--front-end default|ikol] [--checkpoint FILE] [--clips DIR]
        [--json]

Every run is the real command line in its own process, `python -m ikol_backend estimate CLIP
-o OUT --events` (the Python running this script, PYTHONPATH set to the tree's backend/),
on a clip from bench/clips.py (real video decoding, real BlazePose, real IK, real writing).

Speed: --repeats runs on one clip. Per-stage seconds come from the `result` event's summary
(decode, landmarks, network for the ikol front end, ik, write), shown per frame; frames/s is given over the whole process
(wall clock, start-up included) and from the `start` event to the `result` event (the clip
alone). The target, 15 frames/s for the default front end at 720p, is checked on the latter.
Medians of the runs.

Memory: one run per clip length at --memory-resolution; the peak resident memory of the
backend process is the kernel's own count (`ru_maxrss` from os.wait4 on the child), and the
largest resident size read from /proc at its progress events shows the frame loop apart from
the solve at the end. The table shows whether memory stays flat as the clip grows, and the
10-minute clip (18,000 frames at 30 frames/s) measured with --long or else projected from the
longest clip and the fitted growth. Linux only (/proc, ru_maxrss in KiB, load average).

--front-end ikol runs the IKOL network with the weights of --checkpoint or, without it, random
weights (tests/tools/random_ikol.py): fine for timing, meaningless poses.

--baseline GIT_REF checks that commit out into a temporary git worktree (removed afterwards)
and runs every clip through its backend too, alternating with the current tree's runs, then
prints both and the ratio current / baseline.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clips import DEFAULT_CACHE, FPS, parse_resolution, walk_clip  # noqa: E402
from ikol_backend.options import FRONT_ENDS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("decode", "landmarks", "network", "ik", "write")  # network: the ikol front end only
TARGET_FRAMES_PER_S = 15.0  # default front end, 720p, 2 CPU cores
TARGET_SIZE = (1280, 720)
MEMORY_LIMIT_MIB = 2048.0  # a 10-minute 1080p clip
LONG_FRAMES = round(10 * 60 * FPS)


@dataclasses.dataclass(frozen=True)
class Tree:
    """A source tree whose backend is measured: the current one or a baseline checkout."""

    label: str  # "current" or "baseline"
    version: str  # what was checked out: `git describe` or the ref and its commit
    backend: Path  # the folder holding the ikol_backend package


@dataclasses.dataclass(frozen=True)
class Run:
    """One `estimate` process: its summary and what it took (seconds, MiB)."""

    tree: str
    frames: int
    valid_frames: int
    stage_s: dict[str, float]  # the stages the backend reported
    startup_s: float  # process launch to the `start` event
    clip_s: float  # `start` event to `result` event
    wall_s: float  # process launch to its exit
    peak_rss_mib: float  # the whole process (kernel's ru_maxrss)
    frames_rss_mib: float  # the largest resident size sampled at progress events (frame loop)


def run_estimate(tree: Tree, clip: Path, extra: list[str], workdir: Path) -> Run:
    """Run `python -m ikol_backend estimate` of `tree` on `clip` and measure it."""
    output = workdir / "motion.npz"
    command = [sys.executable, "-m", "ikol_backend", "estimate", str(clip), "-o", str(output),
               "--events", *extra]
    seen: dict[str, float] = {}
    result: dict[str, Any] = {}
    error: dict[str, Any] = {}
    frames_rss = 0.0
    with open(workdir / "stderr.txt", "w+") as stderr:
        launched = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env={**os.environ, "PYTHONPATH": str(tree.backend)})
        with process.stdout:
            for line in process.stdout:
                event = json.loads(line) if line.startswith("{") else {}
                kind = event.get("event")
                if kind == "progress":
                    frames_rss = max(frames_rss, resident_mib(process.pid))
                elif kind in ("start", "result"):
                    seen[kind] = time.perf_counter()
                    result = event.get("summary", {})
                elif kind == "error":
                    error = event
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - launched
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        if process.returncode != 0 or not result:
            raise RuntimeError(f"{tree.label}: estimate on {clip.name} exited {process.returncode}: "
                               f"{error or 'no result event'}\n{stderr.read()[-2000:]}")
    shutil.rmtree(output) if output.is_dir() else output.unlink()  # a folder: --people all
    return Run(
        tree=tree.label, frames=result["frames"], valid_frames=result["valid_frames"],
        stage_s=result["seconds"],
        startup_s=seen["start"] - launched, clip_s=seen["result"] - seen["start"], wall_s=wall,
        peak_rss_mib=usage.ru_maxrss / 1024, frames_rss_mib=frames_rss,  # Linux: KiB
    )


def resident_mib(pid: int) -> float:
    """The resident memory of a running process now (Linux /proc), in MiB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines()
                 if line.startswith("VmRSS:")), 0.0)


def random_checkpoint(path: Path) -> Path:
    """IKOL24 weights drawn at random, in the authors' layout, written to `path`: for timing."""
    sys.path.insert(0, str(ROOT))
    from tests.tools.random_ikol import write_random_checkpoint

    return write_random_checkpoint(path)


def check_imports(tree: Tree) -> None:
    """Make sure PYTHONPATH makes `tree`'s backend the one imported (not an installed copy)."""
    found = subprocess.run(
        [sys.executable, "-c", "import ikol_backend; print(ikol_backend.__file__)"],
        env={**os.environ, "PYTHONPATH": str(tree.backend)}, capture_output=True, text=True, check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.backend.resolve()):
        raise RuntimeError(f"{tree.label}: ikol_backend comes from {found}, not {tree.backend}")


def git(*args: str) -> str:
    """Output of a git command in this repository (raises with git's message on failure)."""
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def baseline_checkout(ref: str) -> Iterator[Tree]:
    """`ref` of this repository checked out into a temporary git worktree, removed afterwards."""
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except RuntimeError:
        raise RuntimeError(f"--baseline {ref}: not a commit of this repository") from None
    folder = Path(tempfile.mkdtemp(prefix="ikol-baseline-"))
    worktree = folder / "tree"
    git("worktree", "add", "--detach", "--quiet", str(worktree), commit)
    try:
        yield Tree("baseline", f"{ref} ({commit[:7]})", worktree / "backend")
    finally:
        git("worktree", "remove", "--force", str(worktree))
        folder.rmdir()


def measure(trees: list[Tree], clips: list[Path], repeats: int, extra: list[str],
            workdir: Path) -> list[Run]:
    """`repeats` runs per tree and clip, the trees taking turns so that load drifts hit both."""
    runs = []
    for repeat in range(repeats):
        for clip in clips:
            for tree in trees:
                run = run_estimate(tree, clip, extra, workdir)
                runs.append(run)
                progress(f"{clip.name} {tree.label} run {repeat + 1}/{repeats}: "
                         f"{run.frames / run.clip_s:.1f} frames/s, {run.peak_rss_mib:.0f} MiB")
    return runs


def reported_stages(runs: list[Run]) -> list[str]:
    """The stages any of `runs` reported: STAGES in pipeline order, then any others by name."""
    reported = {stage for r in runs for stage in r.stage_s}
    return [stage for stage in STAGES if stage in reported] + sorted(reported - set(STAGES))


def speed_measures(runs: list[Run], stages: list[str]) -> dict[str, float]:
    """Medians over `runs` (one tree): per-stage ms per frame, start-up, frames/s, peak RSS."""
    measures = {f"{stage} ms/frame": statistics.median(1000 * r.stage_s.get(stage, 0.0) / r.frames
                                                        for r in runs) for stage in stages}
    measures["start-up s (launch to start event)"] = statistics.median(r.startup_s for r in runs)
    measures["frames/s, start to result"] = statistics.median(r.frames / r.clip_s for r in runs)
    measures["frames/s, wall (whole process)"] = statistics.median(r.frames / r.wall_s for r in runs)
    measures["peak RSS MiB"] = statistics.median(r.peak_rss_mib for r in runs)
    return measures


def speed_table(trees: list[Tree], runs: list[Run]) -> list[str]:
    """Markdown: a row per measure, a column per tree, then current / baseline."""
    stages = reported_stages(runs)
    columns = [speed_measures([r for r in runs if r.tree == tree.label], stages) for tree in trees]
    valid = [f"{min(r.valid_frames for r in runs if r.tree == t.label)}/{runs[0].frames}"
             for t in trees]
    ratio_header = ["current / baseline"] if len(trees) > 1 else []
    header = ["measure (median)", *(t.label for t in trees), *ratio_header]
    lines = [row(header), row(["---"] + ["---:"] * (len(header) - 1))]
    lines.append(row(["valid frames (fewest)", *valid] + ([""] if len(trees) > 1 else [])))
    for name in columns[0]:
        values = [column[name] for column in columns]
        ratio = [f"{values[0] / values[1]:.2f}" if values[1] else ""] if len(trees) > 1 else []
        lines.append(row([name, *(f"{v:.2f}" for v in values), *ratio]))
    return lines


def memory_table(trees: list[Tree], runs: list[Run]) -> list[str]:
    """Markdown: a row per clip length, peak RSS and frames/s per tree, then the ratio."""
    header = ["frames", "clip s"]
    for tree in trees:
        header += [f"{tree.label} peak RSS MiB", f"{tree.label} RSS in frame loop MiB",
                   f"{tree.label} frames/s (start to result)",
                   f"{tree.label} valid"]
    if len(trees) > 1:
        header.append("peak RSS current / baseline")
    lines = [row(header), row(["---:"] * len(header))]
    for frames in sorted({r.frames for r in runs}):
        cells = [f"{frames}", f"{frames / FPS:.1f}"]
        peaks = []
        for tree in trees:
            run = next(r for r in runs if r.tree == tree.label and r.frames == frames)
            peaks.append(run.peak_rss_mib)
            cells += [f"{run.peak_rss_mib:.0f}", f"{run.frames_rss_mib:.0f}",
                      f"{run.frames / run.clip_s:.1f}",
                      f"{run.valid_frames}/{run.frames}"]
        if len(trees) > 1:
            cells.append(f"{peaks[0] / peaks[1]:.2f}")
        lines.append(row(cells))
    return lines


def memory_growth(runs: list[Run]) -> tuple[float, float]:
    """The least-squares slope of peak RSS over clip length in `runs` (one tree), in MiB per
    1000 frames, and the projection to LONG_FRAMES: the longest clip's peak plus that growth
    (when positive) over the frames still missing."""
    frames = [r.frames for r in runs]
    longest = max(runs, key=lambda r: r.frames)
    if len(set(frames)) < 2:
        return 0.0, longest.peak_rss_mib
    slope = statistics.linear_regression(frames, [r.peak_rss_mib for r in runs]).slope
    return 1000 * slope, longest.peak_rss_mib + max(slope, 0.0) * (LONG_FRAMES - longest.frames)


def memory_summary(trees: list[Tree], runs: list[Run]) -> list[str]:
    """Per tree: growth per 1000 frames and the 10-minute figure (measured or projected)."""
    lines = []
    for tree in trees:
        mine = [r for r in runs if r.tree == tree.label]
        slope, projected = memory_growth(mine)
        long = next((r for r in mine if r.frames >= LONG_FRAMES), None)
        at_long = long.peak_rss_mib if long else projected
        how = "measured" if long else "projected from the longest clip and the growth"
        verdict = "met" if at_long < MEMORY_LIMIT_MIB else "NOT met"
        lines.append(f"- {tree.label}: peak RSS grows {slope:+.1f} MiB per 1000 frames; "
                     f"{at_long:.0f} MiB at {LONG_FRAMES} frames ({how}); "
                     f"target < {MEMORY_LIMIT_MIB:.0f} MiB: {verdict}")
    return lines


def target_line(trees: list[Tree], runs: list[Run], size: tuple[int, int], front_end: str) -> str:
    """The speed target's verdict for the current tree, when the run is the target's case."""
    if front_end != "default" or size != TARGET_SIZE:
        return "- speed target (default front end, 720p) not checked: other settings"
    current = [r for r in runs if r.tree == trees[0].label]
    rate = speed_measures(current, [])["frames/s, start to result"]
    verdict = "met" if rate >= TARGET_FRAMES_PER_S else "NOT met"
    return (f"- speed target: default front end >= {TARGET_FRAMES_PER_S:g} frames/s at 720p "
            f"(start to result): {rate:.1f} frames/s, {verdict}")


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cpus": os.cpu_count(), "system": platform.platform(),
            "python": platform.python_version(), "load_average": os.getloadavg()}


def progress(message: str) -> None:
    print(f"pipeline: {message}", file=sys.stderr, flush=True)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", default="720p", help="speed clip: 720p, 1080p or WxH (default 720p)")
    parser.add_argument("--frames", type=int, default=300, help="speed clip length (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs per tree (median; default 3)")
    parser.add_argument("--memory-resolution", default="1080p", help="memory clips (default 1080p)")
    parser.add_argument("--memory-frames", type=int, nargs="*", default=[150, 600, 2400],
                        help="memory clip lengths (default 150 600 2400; none: no memory part)")
    parser.add_argument("--long", action="store_true",
                        help=f"also the 10-minute memory clip ({LONG_FRAMES} frames; slow)")
    parser.add_argument("--baseline", metavar="GIT_REF", help="also run this commit's backend, e.g. 5ceadc0")
    parser.add_argument("--front-end", default=FRONT_ENDS[0], choices=FRONT_ENDS)
    parser.add_argument("--checkpoint", type=Path,
                        help="IKOL network weights (--front-end ikol; default: random weights)")
    parser.add_argument("--clips", type=Path, default=DEFAULT_CACHE,
                        help=f"clip cache folder (default {DEFAULT_CACHE})")
    parser.add_argument("--people", type=int, default=1,
                        help="people walking in the speed clip (1-4, default 1); above 1 the "
                             "runs make everyone's motion (--people all)")
    parser.add_argument("--json", action="store_true", help="print the runs and the machine as JSON")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.repeats < 1 or any(n < 1 for n in args.memory_frames):
        parser.error("--frames, --repeats and --memory-frames must be at least 1")
    if not 1 <= args.people <= 4:
        parser.error("--people must be 1 to 4")
    if args.people > 1 and args.baseline:
        parser.error("--people above 1 runs --people all, which older backends lack: no --baseline")
    try:
        args.size = parse_resolution(args.resolution)
        args.memory_size = parse_resolution(args.memory_resolution)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    load_before = os.getloadavg()
    current = Tree("current", git("describe", "--always", "--dirty"), ROOT / "backend")
    with contextlib.ExitStack() as stack:
        trees = [current]
        if args.baseline:
            trees.append(stack.enter_context(baseline_checkout(args.baseline)))
        for tree in trees:
            check_imports(tree)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ikol-bench-")))
        extra = []  # the default front end is left implicit: older backends have no --front-end
        if args.front_end == "ikol":
            checkpoint = args.checkpoint or random_checkpoint(workdir / "random_ikol24.pth")
            extra = ["--front-end", "ikol", "--checkpoint", str(checkpoint)]
        speed_clip = walk_clip(args.size, args.frames, args.clips, args.people)
        crowd = ["--people", "all"] if args.people > 1 else []
        speed = measure(trees, [speed_clip], args.repeats, extra + crowd, workdir)
        lengths = sorted(set(args.memory_frames + ([LONG_FRAMES] if args.long else [])))
        memory_clips = [walk_clip(args.memory_size, n, args.clips) for n in lengths]
        memory = measure(trees, memory_clips, 1, extra, workdir)
    about = {**machine(), "load_average_before": load_before}
    if args.json:
        print(json.dumps({"machine": about, "front_end": args.front_end,
                          "trees": {tree.label: tree.version for tree in trees},
                          "speed": {"clip": speed_clip.name,
                                    "runs": [dataclasses.asdict(r) for r in speed]},
                          "memory": {"runs": [dataclasses.asdict(r) for r in memory]}}, indent=1))
        return 0
    width, height = args.size
    weights = " (random weights)" if args.front_end == "ikol" and not args.checkpoint else ""
    print(f"Machine: {about['cpu']}, {about['cpus']} CPUs, {about['system']}, "
          f"Python {about['python']}; load average {load_before[0]:.2f} before, "
          f"{about['load_average'][0]:.2f} after")
    print("Trees: " + "; ".join(f"{tree.label} = {tree.version}" for tree in trees))
    print(f"\nSpeed: {speed_clip.name} ({width}x{height}, {args.frames} frames), front end "
          f"{args.front_end}{weights}, median of {args.repeats}\n")
    print("\n".join(speed_table(trees, speed)))
    print()
    print(target_line(trees, speed, args.size, args.front_end))
    if any(r.valid_frames < r.frames for r in speed + memory):
        print("- WARNING: the person was missed in some frames (see valid)")
    if memory:
        width, height = args.memory_size
        print(f"\nMemory: peak resident memory of the backend process, {width}x{height}, one run each\n")
        print("\n".join(memory_table(trees, memory) + [""] + memory_summary(trees, memory)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as exc:  # a failed run or git command: its message says what
        sys.exit(f"pipeline: {exc}")
