"""Several people (issue 20): identity, coverage, 2D accuracy and speed of `ikol-backend
estimate` with `--person K` and `--people all`, on renders of two to four people whose joints
are known (tests/tools/people_scene.py: crossing, behind, group, closeup).

Every run is the real command line in its own process, `python -m ikol_backend estimate INPUT
-o OUT --events` (this Python, PYTHONPATH set to the tree's backend/), as bench/pipeline.py
runs it:
- `--person K` for every person K of the item: `-o OUT.npz`, one track;
- `--people all`: `-o FOLDER`, which the backend fills with person0.npz, person1.npz, ... (one
  track each). A backend without `--people` is reported as such and the bench goes on.
- with `--solo`, or when they are in the cache, each person rendered alone (same camera,
  poses and frames) under `--person 0`: the single-person reference of the 2D error.

Measures (2D: bench/accuracy.py's method, the 12 limb joints drawn through the file's camera,
pixels; only joints inside the image and not covered by another person in the truth):
- matched person, per valid frame of a track: the true person whose 2D limb joints are nearest
  (mean distance), or nobody when even they are farther than NOBODY times their height in
  the image; a track follows the person it matches in most of its valid frames.
- switches: changes of the matched person between consecutive valid frames of a track.
- on someone else: share of a track's valid frames matched to another person than the one it
  follows (the issue's check: at most 2 %).
- valid while hidden: frames in which the track following a person is valid while the truth
  says they are not visible (the issue: such frames are invalid, never someone else's).
- coverage: share of a true person's visible frames (people_scene's truth: at least half of
  them seen) in which a track following them is valid and matched to them (the issue's check:
  at least 90 %); `tracks` counts the tracks following the same person (more than one: the
  person was split).
- 2D error: mean distance, % of the image height, on the frames where the track is valid,
  matched to its person and that person is visible; `solo` the same on the person's solo
  render over the same frames and joints; ratio = error / solo (the issue's check: <= 1.3).
- found: how many people the backend says it found (its `people` event).
- frames/s: frames over the time from the backend's `start` event to its `result` event
  (whole process in brackets: start-up included); a second table gives each item's median
  over its `--person K` runs per tree, its `--people all` run and current / baseline.

    .venv/bin/python bench/people.py                              # all scenarios (renders once)
    .venv/bin/python bench/people.py crossing group --baseline main --json out.json
    .venv/bin/python bench/people.py --solo                       # also render the solo clips

`--baseline GIT_REF` checks that commit out into a temporary git worktree (as
bench/pipeline.py does) and runs its backend on the same inputs with `--person K` (and
`--people all` if it has it), so speed and identity are compared in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import people_scene  # noqa: E402  (numpy only at import)
from accuracy import MODEL_TO_CAMERA, SMPL_LIMBS, intrinsics_of, project  # noqa: E402
from pipeline import Tree, baseline_checkout, check_imports, git, machine  # noqa: E402

LIMBS = np.array(SMPL_LIMBS)  # the 12 limb joints: rows of joints_2d / the motion's joints
UNSUPPORTED: set[str] = set()  # trees whose backend has no --people
NOBODY = 0.5  # a track frame farther than this share of the nearest person's box height from
# them (mean limb joint distance) matches nobody


@dataclasses.dataclass
class Track:
    """One motion file read back: rows of the clip's frames it covers."""

    name: str  # the file's name (person0.npz, ...)
    frame_index: np.ndarray  # (M,) source frame of each row
    valid: np.ndarray  # (M,) bool
    limbs_2d: np.ndarray  # (M, 12, 2) pixels of the truth's image: limb joints drawn through
    # the file's camera


@dataclasses.dataclass
class Run:
    """One `estimate` process on one input."""

    tree: str  # "current" or "baseline"
    item: str
    mode: str  # "person K", "all" or "solo K"
    tracks: list[Track]
    exit_code: int
    error: str | None  # the error event's code and message, if any
    frames: int  # frames the backend reported (0 without a result)
    found: int | None  # people the backend says it found (its `people` event), if it says
    clip_s: float  # start event to result event (0 without them)
    wall_s: float  # process launch to exit

    @property
    def frames_per_s(self) -> float | None:
        return self.frames / self.clip_s if self.clip_s > 0 else None

    @property
    def wall_frames_per_s(self) -> float | None:
        return self.frames / self.wall_s if self.frames and self.wall_s > 0 else None


def read_track(path: Path, truth: people_scene.Truth) -> Track:
    """A motion file's valid rows and limb joints drawn through its camera, in the pixels of
    the truth's image (scaled if the backend worked on a smaller copy)."""
    with np.load(path, allow_pickle=False) as motion:
        joints = motion["joints"][:, LIMBS].astype(float) * MODEL_TO_CAMERA
        fx, fy, cx, cy = intrinsics_of(motion["camera_intrinsics"])
        valid = motion["valid"].astype(bool)
        rows = motion["frame_index"] if "frame_index" in motion else np.arange(len(joints))
        size = motion["image_size"] if "image_size" in motion else None
    uv = project(joints, fx, fy, cx, cy)
    if size is not None and int(size[0]) != truth.width:
        uv = uv * (truth.width / float(size[0]))
    return Track(path.name, np.asarray(rows, int), valid, uv)


def run_estimate(tree: Tree, truth: people_scene.Truth, item: str, mode: str, args: list[str],
                 output: Path, extra: list[str]) -> Run:
    """`python -m ikol_backend estimate` of `tree` on the item's media; reads back what it
    wrote at `output` (a file, or a folder of person*.npz for `--people all`)."""
    command = [sys.executable, "-m", "ikol_backend", "estimate", str(truth.media), "-o",
               str(output), "--events", *args, *extra]
    seen: dict[str, float] = {}
    result: dict = {}
    error = None
    found = None
    launched = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(tree.backend)})
    for line in process.stdout:
        event = json.loads(line) if line.startswith("{") else {}
        kind = event.get("event")
        if kind in ("start", "result"):
            seen[kind] = time.perf_counter()
            if kind == "result":
                result = event.get("summary", {}) or {}
        elif kind == "people":
            found = event.get("found")
        elif kind == "error":
            error = f"{event.get('code')}: {event.get('message')}"
    stderr = process.stderr.read()
    code = process.wait()
    wall = time.perf_counter() - launched
    if code != 0 and error is None:
        error = f"exit {code}: {stderr.strip().splitlines()[-1] if stderr.strip() else ''}"
    if output.is_dir():
        files = sorted(output.glob("person*.npz"), key=lambda p: int(p.stem[6:] or 0))
    else:
        files = [output] if output.exists() else []
    tracks = [read_track(f, truth) for f in files] if code == 0 else []
    frames = int(result.get("frames", 0)) or (truth.frames if tracks else 0)
    clip = seen["result"] - seen["start"] if {"start", "result"} <= set(seen) else 0.0
    if found is None:
        found = result.get("people_found")
    return Run(tree.label, item, mode, tracks, code, error, frames, found, clip, wall)


# --------------------------------------------------------------------------------------
# matching tracks to true people


def truth_limbs(truth: people_scene.Truth) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, 12, 2) true limb joints in pixels and (N, P, 12) whether each is measurable:
    inside the image and not covered by another person."""
    uv = truth.joints_2d[:, :, LIMBS]
    ok = truth.in_image[:, :, LIMBS] & ~truth.occluded[:, :, LIMBS]
    return uv, ok


def matches(track: Track, truth: people_scene.Truth) -> np.ndarray:
    """(N,) per source frame: the true person nearest to the track's limb joints (mean pixel
    distance over all 12), -1 where the track has no valid row, -2 where the nearest is
    farther than NOBODY times their box height."""
    out = np.full(truth.frames, -1)
    uv = truth.joints_2d[:, :, LIMBS]
    heights = truth.boxes[..., 3] - truth.boxes[..., 1]
    for row, frame in enumerate(track.frame_index):
        if not track.valid[row] or not 0 <= frame < truth.frames:
            continue
        distance = np.linalg.norm(uv[frame] - track.limbs_2d[row][None], axis=-1).mean(-1)
        nearest = int(np.argmin(distance))
        near = distance[nearest] <= NOBODY * np.nan_to_num(heights[frame, nearest], nan=0.0)
        out[frame] = nearest if near else -2
    return out


def followed(matched: np.ndarray) -> int:
    """The person a track matches in most of its valid frames (-1 when it has none)."""
    seen = matched[matched >= 0]
    return int(np.bincount(seen).argmax()) if len(seen) else -1


def switches(matched: np.ndarray) -> int:
    """Changes of the matched person between consecutive valid frames."""
    seen = matched[matched >= 0]
    return int((seen[1:] != seen[:-1]).sum())


def error_2d(track: Track, truth: people_scene.Truth, person: int, frames: np.ndarray,
             ) -> tuple[float, int]:
    """(summed per-frame mean pixel distance / image height * 100, frame count) of the
    track against `person` on `frames` (source frames; the measurable limb joints)."""
    uv, ok = truth_limbs(truth)
    rows = {int(f): r for r, f in enumerate(track.frame_index)}
    total, count = 0.0, 0
    for frame in frames:
        r = rows.get(int(frame))
        mask = ok[frame, person]
        if r is None or not track.valid[r] or not mask.any():
            continue
        d = np.linalg.norm(track.limbs_2d[r][mask] - uv[frame, person][mask], axis=-1)
        total += float(d.mean()) / truth.height * 100.0
        count += 1
    return total, count


@dataclasses.dataclass
class PersonRow:
    """The measures of one true person of one item under one run."""

    tree: str
    item: str
    mode: str
    person: int
    tracks: int  # tracks following this person
    switches: int | None
    on_other: float | None  # share of the following track's valid frames on someone else
    valid_hidden: int | None  # frames the following track is valid in while the person is not
    # visible
    coverage: float | None
    error_2d: float | None  # % of image height
    solo_2d: float | None
    frames_per_s: float | None
    wall_frames_per_s: float | None
    found: int | None = None
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.error_2d is None or not self.solo_2d:
            return None
        return self.error_2d / self.solo_2d


def frames_measured(track: Track, matched: np.ndarray, truth: people_scene.Truth,
                    person: int) -> np.ndarray:
    """Source frames where the track is valid, matched to `person`, who is visible."""
    return np.flatnonzero((matched == person) & truth.visible[:, person])


def measure_run(run: Run, truth: people_scene.Truth, solo: dict[int, Track],
                solo_truth: dict[int, people_scene.Truth], wanted: int | None) -> list[PersonRow]:
    """Rows per true person: for `--person K` runs the one person its track follows (or
    `wanted`, the K, when it found nobody); for `--people all` every true person."""
    per_track = [matches(t, truth) for t in run.tracks]
    follows = [followed(m) for m in per_track]
    people = range(truth.people) if run.mode == "all" else (
        [follows[0]] if run.tracks and follows[0] >= 0 else [wanted])
    rows = []
    for person in people:
        mine = [i for i, f in enumerate(follows) if f == person]
        base = dict(tree=run.tree, item=run.item, mode=run.mode, person=person,
                    tracks=len(mine), frames_per_s=run.frames_per_s,
                    wall_frames_per_s=run.wall_frames_per_s, found=run.found, error=run.error)
        if not mine:
            rows.append(PersonRow(**base, switches=None, on_other=None, valid_hidden=None,
                                  coverage=0.0 if truth.visible[:, person].any() else None,
                                  error_2d=None, solo_2d=None))
            continue
        # the track that follows this person longest stands for them
        best = max(mine, key=lambda i: int((per_track[i] == person).sum()))
        matched, track = per_track[best], run.tracks[best]
        valid = matched != -1
        on_other = float(((matched >= 0) & (matched != person))[valid].mean()) \
            if valid.any() else None
        visible = truth.visible[:, person]
        covered = np.zeros(truth.frames, bool)
        for i in mine:
            covered |= per_track[i] == person
        coverage = float((covered & visible).sum() / visible.sum()) if visible.any() else None
        hidden = int(((matched != -1) & ~visible).sum())
        frames = frames_measured(track, matched, truth, person)
        err, solo_err = _errors_with_solo(track, truth, person, frames, solo.get(person),
                                          solo_truth.get(person))
        rows.append(PersonRow(**base, switches=sum(switches(per_track[i]) for i in mine),
                              on_other=on_other, valid_hidden=hidden, coverage=coverage,
                              error_2d=err,
                              solo_2d=solo_err))
    return rows


def _errors_with_solo(track: Track, truth, person: int, frames: np.ndarray, solo: Track | None,
                      solo_truth) -> tuple[float | None, float | None]:
    """The track's 2D error on `frames` and, with a solo track, both errors on the frames the
    solo track is valid in too (the joints measurable in the scene with everyone)."""
    if solo is not None:
        solo_valid = {int(f) for f, v in zip(solo.frame_index, solo.valid) if v}
        frames = np.array([f for f in frames if int(f) in solo_valid], int)
    total, count = error_2d(track, truth, person, frames)
    if not count:
        return None, None
    if solo is None:
        return total / count, None
    # the solo render's truth has one person; measure the same joints as in the scene
    masked = dataclasses.replace(solo_truth, occluded=truth.occluded[:, [person]],
                                 in_image=truth.in_image[:, [person]])
    solo_total, solo_count = error_2d(solo, masked, 0, frames)
    return total / count, (solo_total / solo_count if solo_count else None)


# --------------------------------------------------------------------------------------
# the report


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def table(rows: list[PersonRow]) -> list[str]:
    """Markdown: a row per item, run and true person."""
    head = ["item", "tree", "run", "found", "person", "tracks", "switches", "on someone else %",
            "valid while hidden", "coverage %", "2D err % h", "solo 2D err % h", "ratio", "frames/s (wall)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 11) + "|"]
    for r in rows:
        speed = "—" if r.frames_per_s is None else (
            f"{r.frames_per_s:.1f} ({_num(r.wall_frames_per_s, 1)})")
        lines.append("| " + " | ".join([
            r.item, r.tree, r.mode, "—" if r.found is None else str(r.found), str(r.person),
            str(r.tracks),
            "—" if r.switches is None else str(r.switches), _pct(r.on_other),
            "—" if r.valid_hidden is None else str(r.valid_hidden),
            _pct(r.coverage), _num(r.error_2d), _num(r.solo_2d), _num(r.ratio), speed]) + " |")
    return lines


def speed_table(runs: list[Run], items: list[str], trees: list[str]) -> list[str]:
    """Markdown: per item, the median frames/s (start to result) of each tree's --person K
    runs and of its --people all run, then current / baseline of the --person K runs."""
    head = ["item"] + [f"{t}: {m}" for t in trees for m in ("--person K", "--people all")]
    if len(trees) > 1:
        head.append("--person K current / baseline")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name in items:
        cells, person_rates = [name], []
        for tree in trees:
            mine = [r for r in runs if r.tree == tree and r.item == name and r.frames_per_s]
            person = [r.frames_per_s for r in mine if r.mode.startswith("person ")]
            every = [r.frames_per_s for r in mine if r.mode == "all"]
            person_rates.append(float(np.median(person)) if person else None)
            cells += [_num(person_rates[-1], 1), _num(every[0] if every else None, 1)]
        if len(trees) > 1:
            a, b = person_rates[0], person_rates[1]
            cells.append(_num(a / b if a and b else None))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def track_notes(runs: list[Run], items: list[str], args) -> list[str]:
    """Per --people all run: how many files it wrote and how many of them follow nobody."""
    lines = []
    for r in runs:
        if r.mode != "all" or r.error:
            continue
        truth = people_scene.load_truth(people_scene.cached(r.item, args.cache).truth)
        ghosts = sum(followed(matches(t, truth)) < 0 for t in r.tracks)
        lines.append(f"- {r.tree} {r.item} --people all: {len(r.tracks)} file(s) for "
                     f"{truth.people} people; {ghosts} follow nobody")
    return lines


def failures(runs: list[Run]) -> list[str]:
    return [f"- {r.tree} {r.item} {r.mode}: {r.error}" for r in runs if r.error]


# --------------------------------------------------------------------------------------
# command line


def parse_arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("scenarios", nargs="*", default=list(people_scene.SCENARIOS),
                   help=f"which (default all): {', '.join(people_scene.SCENARIOS)}")
    p.add_argument("--baseline", metavar="GIT_REF", help="also run this commit's backend")
    p.add_argument("--solo", action="store_true",
                   help="render each person alone where missing (clips: slow) for the "
                        "single-person reference; without it cached solo renders are used")
    p.add_argument("--no-all", action="store_true", help="skip the --people all runs")
    p.add_argument("--extra", default="", help="more estimate arguments, e.g. \"--smooth 0\"")
    p.add_argument("--cache", type=Path, default=None,
                   help=f"renders (default {people_scene.default_cache()})")
    p.add_argument("--threads", type=int, default=1, help="Cycles threads when rendering")
    p.add_argument("--json", type=Path, help="also write the rows and runs here")
    p.add_argument("--keep", type=Path, help="keep the motion files in this folder")
    args = p.parse_args(argv)
    unknown = set(args.scenarios) - set(people_scene.SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    args.cache = args.cache or people_scene.default_cache()
    return args


def render(args) -> float:
    """Render what is missing in a child process (Blender stays out of this one); seconds."""
    names = [s.name for n in args.scenarios for s in people_scene.setups_named(n, args.solo)]
    if all(people_scene.cached(n, args.cache) for n in names):
        return 0.0
    began = time.time()
    command = [sys.executable, str(ROOT / "tests" / "tools" / "people_scene.py"),
               *args.scenarios, "--cache", str(args.cache), "--threads", str(args.threads)]
    if args.solo:
        command.append("--solo")
    if subprocess.run(command).returncode != 0:
        raise SystemExit("rendering failed; see its messages above")
    return time.time() - began


def progress(message: str) -> None:
    print(f"people: {message}", file=sys.stderr, flush=True)


def bench_tree(tree: Tree, items: list[str], args, work: Path, extra: list[str]) -> list[Run]:
    """Every run of one tree: --person K per person, then --people all (dropped, with a note,
    when the tree has no --people), then the solos."""
    runs = []
    for name in items:
        truth = people_scene.load_truth(people_scene.cached(name, args.cache).truth)
        folder = work / tree.label / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(truth.people):
            runs.append(run_estimate(tree, truth, name, f"person {k}", ["--person", str(k)],
                                     folder / f"person_{k}.npz", extra))
            progress(f"{tree.label} {name} --person {k}: {runs[-1].error or 'ok'}")
        if not args.no_all:
            out = folder / "all"
            run = run_estimate(tree, truth, name, "all", ["--people", "all"], out, extra)
            if run.exit_code == 2 and "--people" in (run.error or ""):  # argparse: no such option
                UNSUPPORTED.add(tree.label)
            else:
                runs.append(run)
            progress(f"{tree.label} {name} --people all: {run.error or 'ok'}")
        for k in range(truth.people if truth.people > 1 else 0):
            solo = people_scene.cached(f"{name}_solo{k}", args.cache)
            if solo is None:
                continue
            solo_truth = people_scene.load_truth(solo.truth)
            runs.append(run_estimate(tree, solo_truth, name, f"solo {k}", ["--person", "0"],
                                     folder / f"solo_{k}.npz", extra))
            progress(f"{tree.label} {name} solo {k}: {runs[-1].error or 'ok'}")
    return runs


def rows_of(runs: list[Run], items: list[str], args) -> list[PersonRow]:
    rows = []
    for name in items:
        truth = people_scene.load_truth(people_scene.cached(name, args.cache).truth)
        for tree in dict.fromkeys(r.tree for r in runs):
            mine = [r for r in runs if r.tree == tree and r.item == name]
            solo, solo_truth = {}, {}
            for r in mine:
                if r.mode.startswith("solo ") and r.tracks:
                    k = int(r.mode.split()[1])
                    solo[k] = r.tracks[0]
                    solo_truth[k] = people_scene.load_truth(
                        people_scene.cached(f"{name}_solo{k}", args.cache).truth)
            for r in mine:
                if r.mode.startswith("solo "):
                    continue
                wanted = int(r.mode.split()[1]) if r.mode.startswith("person ") else None
                rows += measure_run(r, truth, solo, solo_truth, wanted)
    return rows


def main(argv=None) -> int:
    args = parse_arguments(argv)
    render_s = render(args)
    items = [s.name for n in args.scenarios for s in people_scene.setups_named(n, False)]
    extra = shlex.split(args.extra)
    load_before = os.getloadavg()
    current = Tree("current", git("describe", "--always", "--dirty"), ROOT / "backend")
    with contextlib.ExitStack() as stack:
        trees = [current]
        if args.baseline:
            trees.append(stack.enter_context(baseline_checkout(args.baseline)))
        for tree in trees:
            check_imports(tree)
        work = args.keep or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="ikol-people-")))
        runs = []
        for name in items:  # the trees take turns, so that load drifts hit both
            for tree in trees:
                runs += bench_tree(tree, [name], args, work, extra)
    rows = rows_of(runs, items, args)
    about = {**machine(), "load_average_before": load_before}
    print(f"Machine: {about['cpu']}, {about['cpus']} CPUs, {about['system']}, Python "
          f"{about['python']}; load average {load_before[0]:.2f} before, "
          f"{about['load_average'][0]:.2f} after")
    print("Trees: " + "; ".join(f"{t.label} = {t.version}" for t in trees)
          + (f"; extra estimate arguments: {args.extra}" if args.extra else ""))
    print(f"Renders: {args.cache}" + (f" (rendered now in {render_s:.0f} s)" if render_s else ""))
    print()
    print("\n".join(table(rows)))
    print("\nSpeed, frames/s from the start event to the result event (median of the runs)\n")
    print("\n".join(speed_table(runs, items, [t.label for t in trees])))
    notes = track_notes(runs, items, args) + [
        f"- {label}: no --people option (its --people all runs left out)" for label in UNSUPPORTED]
    if notes:
        print()
        print("\n".join(notes))
    problems = failures(runs)
    if problems:
        print("\nRuns that failed (their people count as not found):")
        print("\n".join(problems))
    if args.json:
        report = {"machine": about, "trees": {t.label: t.version for t in trees},
                  "rows": [dict(dataclasses.asdict(r), ratio=r.ratio) for r in rows],
                  "runs": [{k: v for k, v in dataclasses.asdict(r).items() if k != "tracks"}
                           | {"tracks": [t.name for t in r.tracks]} for r in runs]}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
