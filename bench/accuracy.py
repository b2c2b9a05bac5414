"""Accuracy of `ikol-backend estimate` on renders whose true joints are known, beside
BlazePose's own landmarks in the same run.

The renders: `anny` bodies posed, framed and rendered with Blender (Cycles on the CPU) by
tests/tools/anny_scene.py: STILLS stills (random plausible poses, headings, cameras, lenses,
image sizes, body shapes, clothes) and the clips in CLIPS (walking, turning on the spot,
moving the arms; MJPG video). They are made once and kept outside git in
${IKOL_BENCH_CACHE:-~/.cache/ikol-for-blender}/accuracy/v<SET_VERSION>/, with a manifest so
that an interrupted render resumes; `--rebuild` renders the selected items again. Rendering
uses anny, which the project's environment has (requirements.txt).

Measured on the 12 limb joints (shoulders, elbows, wrists, hips, knees, ankles), for each
variant of the project's settings (`--variant NAME="ESTIMATE ARGS"`) and for BlazePose
alone (static mode for stills, video mode for clips), per set (stills, each clip, all
clips): PA-MPJPE, root-relative MPJPE in the camera frame, 2D error as % of the image
height and, for clips, the acceleration error. Definitions: docs/accuracy.md.

    .venv/bin/python bench/accuracy.py                      # everything (renders if missing)
    .venv/bin/python bench/accuracy.py --stills 10 --clips 1
    .venv/bin/python bench/accuracy.py --variant raw="--smooth 0" --variant smooth="--smooth 0.5"
    .venv/bin/python bench/accuracy.py --images samples/person.png   # explicit inputs, no renders
    .venv/bin/python bench/accuracy.py --render-only         # just fill the cache

In variant arguments `{focal}` stands for each input's true focal length in pixels
(e.g. `--variant known_focal="--focal {focal}"`).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tests" / "tools"

SET_VERSION = "1"  # part of the cache folder: change it when the renders change
STILLS = 100
CLIPS = ("walk", "turn", "arms")
SEED = 0
SAMPLES = 16  # Cycles samples per pixel, with OpenImageDenoise
VIDEO_FOURCC, VIDEO_SUFFIX = "MJPG", ".avi"  # OpenCV's MJPG: about 45 dB PSNR on these renders

# The 12 limb joints: SMPL index, BlazePose landmark, name (the person's own left/right).
LIMBS = (
    (16, 11, "left_shoulder"), (17, 12, "right_shoulder"), (18, 13, "left_elbow"),
    (19, 14, "right_elbow"), (20, 15, "left_wrist"), (21, 16, "right_wrist"),
    (1, 23, "left_hip"), (2, 24, "right_hip"), (4, 25, "left_knee"), (5, 26, "right_knee"),
    (7, 27, "left_ankle"), (8, 28, "right_ankle"),
)
SMPL_LIMBS = [smpl for smpl, _, _ in LIMBS]
BLAZEPOSE_LIMBS = [mark for _, mark, _ in LIMBS]
LIMB_NAMES = [name for _, _, name in LIMBS]
HIPS = (LIMB_NAMES.index("left_hip"), LIMB_NAMES.index("right_hip"))
MODEL_TO_CAMERA = np.array([1.0, -1.0, -1.0])  # the motion file's scene frame -> OpenCV
BLAZEPOSE = "BlazePose"


def default_cache() -> Path:
    base = os.environ.get("IKOL_BENCH_CACHE") or Path.home() / ".cache" / "ikol-for-blender"
    return Path(base) / "accuracy" / f"v{SET_VERSION}"


# --------------------------------------------------------------------------------------
# metrics (joints as (..., J, 3) arrays in metres, pixels as (..., J, 2))


def similarity_transform(source: np.ndarray, target: np.ndarray):
    """(scale, R, t) minimising |scale R source_i + t - target_i|^2 over the points (P, 3)
    (Umeyama's closed form, a proper rotation)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s0, t0 = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t0.T @ s0)
    d = np.ones(3)
    if np.linalg.det(u @ vt) < 0:
        d[-1] = -1.0
    rotation = (u * d) @ vt
    variance = (s0 ** 2).sum()
    scale = float((sigma * d).sum() / variance) if variance > 0 else 1.0
    return scale, rotation, mu_t - scale * rotation @ mu_s


def aligned(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`source` (P, 3) after the similarity transform that best fits it to `target`."""
    scale, rotation, shift = similarity_transform(source, target)
    return scale * source @ rotation.T + shift


def pa_mpjpe(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(N,) mean joint distance per frame after a per-frame similarity (Procrustes) fit."""
    return np.array([np.linalg.norm(aligned(p, t) - t, axis=-1).mean()
                     for p, t in zip(pred, true)])


def hip_centred(joints: np.ndarray, hips=HIPS) -> np.ndarray:
    return joints - joints[..., list(hips), :].mean(axis=-2, keepdims=True)


def root_relative_mpjpe(pred: np.ndarray, true: np.ndarray, hips=HIPS) -> np.ndarray:
    """(N,) mean joint distance per frame with both hip midpoints at the origin; no rotation
    or scale fitted."""
    return np.linalg.norm(hip_centred(pred, hips) - hip_centred(true, hips), axis=-1).mean(-1)


def error_2d_percent(pred_px: np.ndarray, true_px: np.ndarray, heights) -> np.ndarray:
    """(N,) mean pixel distance per frame as % of that frame's image height."""
    heights = np.broadcast_to(np.asarray(heights, float), pred_px.shape[:1])
    return np.linalg.norm(pred_px - true_px, axis=-1).mean(-1) / heights * 100.0


def accel_errors(pred: np.ndarray, true: np.ndarray, valid=None) -> np.ndarray:
    """Per (frame triple, joint) distances between predicted and true second differences
    x[t-1] - 2 x[t] + x[t+1] of a clip (T, J, 3), after ONE similarity fit of all the valid
    frames' joints together; only triples of three valid frames count."""
    valid = np.ones(len(pred), bool) if valid is None else np.asarray(valid, bool)
    if valid.sum() < 3:
        return np.zeros(0)
    scale, rotation, shift = similarity_transform(pred[valid].reshape(-1, 3),
                                                  true[valid].reshape(-1, 3))
    moved = scale * pred @ rotation.T + shift
    triple = valid[:-2] & valid[1:-1] & valid[2:]

    def second(x):
        return x[:-2] - 2 * x[1:-1] + x[2:]

    return np.linalg.norm(second(moved) - second(true), axis=-1)[triple].ravel()


def project(points_cam: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """OpenCV camera-frame points (..., 3) to pixels (..., 2)."""
    z = points_cam[..., 2]
    return np.stack([fx * points_cam[..., 0] / z + cx, fy * points_cam[..., 1] / z + cy], -1)


def intrinsics_of(values) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) from a 3x3 camera matrix or the four numbers."""
    k = np.asarray(values, float)
    if k.shape == (3, 3):
        return k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if k.shape == (4,):
        return tuple(k)
    raise ValueError(f"camera_intrinsics of shape {k.shape}: expected (3, 3) or (4,)")


# --------------------------------------------------------------------------------------
# inputs and their truth


@dataclasses.dataclass
class Item:
    """One input (a still or a clip) and the truth of each of its frames."""

    name: str
    kind: str  # "still" or "clip"
    media: Path
    joints_cam: np.ndarray  # (N, 12, 3) metres, OpenCV camera frame
    joints_2d: np.ndarray  # (N, 12, 2) pixels
    focal: float  # true fx, pixels
    height: int  # image height, pixels
    pose_kind: str | None = None  # the set's pose kind (anny_scene.POSE_KINDS), if known

    @property
    def view(self) -> str:
        """How the body faces the camera in the first frame, from the true hips."""
        return view_of(self.joints_cam[0])

    @property
    def frames(self) -> int:
        return len(self.joints_cam)


def load_item(media: Path, truth: Path | None = None, name: str | None = None) -> Item:
    """An input and its truth JSON (anny_scene's layout: one frame at the top level, or a
    `frames` list for a clip); the JSON defaults to the media's name with `.json`."""
    media = Path(media)
    meta = json.loads(Path(truth or media.with_suffix(".json")).read_text())
    records = meta["frames"] if "frames" in meta else [meta]
    cam = np.array([[r["joints_cam"][n] for n in LIMB_NAMES] for r in records], float)
    uv = np.array([[r["joints_2d"][n] for n in LIMB_NAMES] for r in records], float)
    kind = "clip" if "frames" in meta else "still"
    return Item(name or media.stem, kind, media, cam, uv, float(meta["camera"]["fx"]),
                int(meta["camera"]["height"]), meta.get("accuracy_set", {}).get("kind"))


VIEWS = (("front", 30.0), ("three-quarter", 75.0), ("side", 180.0))


def heading_deg(joints_cam: np.ndarray) -> float:
    """The body's turn from facing the camera, degrees (+ = toward its left), from the line
    between its hips (12 limb joints, camera frame)."""
    across = joints_cam[HIPS[0]] - joints_cam[HIPS[1]]  # right hip -> left hip
    return float(np.degrees(np.arctan2(across[2], across[0])))


def view_of(joints_cam: np.ndarray) -> str:
    turn = abs(heading_deg(joints_cam))
    return next(name for name, limit in VIEWS if turn <= limit)


# --------------------------------------------------------------------------------------
# the rendered set, cached outside git


def still_name(index: int) -> str:
    return f"still_{index:03d}"


def item_paths(cache: Path, name: str) -> tuple[Path, Path]:
    """(media, truth JSON) of a cached item."""
    if name.startswith("still_"):
        return cache / "stills" / f"{name}.png", cache / "stills" / f"{name}.json"
    return cache / "clips" / f"{name}{VIDEO_SUFFIX}", cache / "clips" / f"{name}.json"


def read_manifest(cache: Path) -> dict:
    path = cache / "manifest.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"set_version": SET_VERSION, "seed": SEED, "samples": SAMPLES, "items": {}}


def write_json(path: Path, data: dict) -> None:
    """Written to a temporary name beside `path`, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def wanted(stills: int, clips: int) -> list[str]:
    return [still_name(i) for i in range(stills)] + list(CLIPS[:clips])


def missing(cache: Path, names: list[str]) -> list[str]:
    done = read_manifest(cache)["items"]
    return [n for n in names if n not in done or not all(p.exists() for p in item_paths(cache, n))]


def render_set(cache: Path, names: list[str], threads: int, rebuild: bool) -> None:
    """Render the named items that are not in the manifest (all of them with `rebuild`),
    recording each in the manifest as soon as it is complete. Needs anny and bpy."""
    import fcntl

    sys.path.insert(0, str(TOOLS))
    import anny_scene  # noqa: PLC0415  (imports anny when rendering)

    cache.mkdir(parents=True, exist_ok=True)
    lock = open(cache / ".render.lock", "w")  # held until this process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"[accuracy] another process is rendering into {cache}; waiting for it",
              file=sys.stderr, flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    manifest = read_manifest(cache)
    todo = names if rebuild else missing(cache, names)
    if rebuild:
        for name in todo:
            manifest["items"].pop(name, None)
        write_json(cache / "manifest.json", manifest)
    began = time.time()
    for count, name in enumerate(todo, 1):
        t0 = time.time()
        if name.startswith("still_"):
            frames = _render_still(anny_scene, cache, name, threads)
        else:
            frames = _render_clip(anny_scene, cache, name, threads, fresh=rebuild)
        seconds = time.time() - t0
        manifest = read_manifest(cache)
        manifest["items"][name] = {"frames": frames, "render_s": round(seconds, 1)}
        write_json(cache / "manifest.json", manifest)
        print(f"[accuracy] {name}: {frames} frame(s) in {seconds:.1f} s ({count}/{len(todo)}, "
              f"{time.time() - began:.0f} s so far)", file=sys.stderr, flush=True)


def _render_still(anny_scene, cache: Path, name: str, threads: int) -> int:
    index = int(name.split("_")[1])
    png, truth = item_paths(cache, name)
    body, pose, camera, colours, offset, info = anny_scene.random_still(index, SEED)
    meta = anny_scene.render_frames(body, [pose], [png], camera=camera, samples=SAMPLES,
                                    seed=index, offset=offset, threads=threads, colours=colours)
    meta.update(meta.pop("frames")[0])
    meta["accuracy_set"] = {"set_version": SET_VERSION, "seed": SEED, "index": index, **info}
    write_json(truth, meta)
    return 1


def _render_clip(anny_scene, cache: Path, name: str, threads: int, fresh: bool) -> int:
    import cv2
    from PIL import Image

    sys.path.insert(0, str(TOOLS))
    from sample_clip import write_frames

    video, truth = item_paths(cache, name)
    folder = cache / "clips" / name
    body, poses, camera, colours, offset, info = anny_scene.clip_setup(name)
    paths = [folder / f"frame_{k:03d}.png" for k in range(len(poses))]

    def complete(index: int) -> bool:  # a frame rendered before an interruption
        if fresh or not paths[index].exists():
            return False
        try:
            with Image.open(paths[index]) as im:
                im.load()
            return True
        except OSError:
            return False

    meta = anny_scene.render_frames(body, poses, paths, camera=camera, samples=SAMPLES,
                                    seed=SEED, offset=offset, threads=threads, colours=colours,
                                    skip=complete)
    partial = video.with_name(f".{video.stem}.{os.getpid()}.partial{VIDEO_SUFFIX}")
    write_frames(partial, (cv2.imread(str(p)) for p in paths), fps=info["fps"],
                 fourcc=VIDEO_FOURCC)
    capture = cv2.VideoCapture(str(partial))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if count != len(paths):
        raise RuntimeError(f"{partial}: OpenCV reads {count} frames back, not {len(paths)}")
    os.replace(partial, video)
    meta["video"] = video.name
    meta["accuracy_set"] = {"set_version": SET_VERSION, "seed": SEED, "clip": name, **info}
    write_json(truth, meta)
    return len(paths)


def ensure_rendered(cache: Path, names: list[str], threads: int, rebuild: bool) -> float:
    """Render what is missing in a child process (Blender and MediaPipe stay apart); returns
    the seconds it took (0 when all was cached)."""
    if not rebuild and not missing(cache, names):
        return 0.0
    stills = sum(n.startswith("still_") for n in names)
    clips = len(names) - stills
    began = time.time()
    command = [sys.executable, str(Path(__file__).resolve()), "--render-only",
               "--stills", str(stills), "--clips", str(clips), "--cache", str(cache),
               "--threads", str(threads)] + (["--rebuild"] if rebuild else [])
    done = subprocess.run(command)
    if done.returncode != 0:
        raise SystemExit(f"rendering failed (exit {done.returncode}); see its messages above")
    return time.time() - began


# --------------------------------------------------------------------------------------
# the methods


@dataclasses.dataclass
class Prediction:
    """One method's joints for one item (frames without the person: valid False)."""

    joints_cam: np.ndarray  # (N, 12, 3); BlazePose: hip-centred (its world landmarks)
    joints_2d: np.ndarray  # (N, 12, 2)
    valid: np.ndarray  # (N,) bool
    seconds: float
    error: str | None = None  # why there is no output at all, if so


def _quiet_events():
    from ikol_backend.events import Events

    class Quiet(Events):
        """Events that write nowhere and keep the warnings and the result."""

        def __init__(self):
            super().__init__(json_lines=False, stream=io.StringIO())
            self.warnings, self.result = [], None

        def emit(self, event, **fields):
            if event == "warning":
                self.warnings.append(fields)
            elif event == "result":
                self.result = fields

    return Quiet()


def run_estimate(item: Item, variant_args: list[str], work: Path) -> Prediction:
    """`ikol-backend estimate` in this process, its arguments built as the command line
    builds them; joints read back from the motion file."""
    from ikol_backend.cli import build_parser
    from ikol_backend.errors import BackendError

    out = work / f"{item.name}.npz"
    extra = [a.replace("{focal}", f"{item.focal:.6g}") for a in variant_args]
    args = build_parser().parse_args(["estimate", str(item.media), "-o", str(out), *extra])
    empty = Prediction(np.full(item.joints_cam.shape, np.nan), np.full(item.joints_2d.shape, np.nan),
                       np.zeros(item.frames, bool), 0.0)
    began = time.perf_counter()
    try:
        args.run(args, _quiet_events())
    except BackendError as exc:
        empty.seconds = time.perf_counter() - began
        if exc.code != "no_person":
            empty.error = f"{exc.code}: {exc.message}"
        return empty
    except Exception as exc:  # noqa: BLE001  (reported, and the run goes on)
        traceback.print_exc()
        empty.seconds = time.perf_counter() - began
        empty.error = f"{type(exc).__name__}: {exc}"
        return empty
    seconds = time.perf_counter() - began
    with np.load(out, allow_pickle=False) as motion:
        joints = motion["joints"][:, SMPL_LIMBS].astype(float) * MODEL_TO_CAMERA
        fx, fy, cx, cy = intrinsics_of(motion["camera_intrinsics"])
        valid = motion["valid"].astype(bool)
        rows = motion["frame_index"] if "frame_index" in motion else np.arange(len(joints))
    pred = dataclasses.replace(empty, seconds=seconds)
    pred.joints_cam[rows] = joints
    pred.joints_2d[rows] = project(joints, fx, fy, cx, cy)
    pred.valid[rows] = valid
    return pred


def run_blazepose(item: Item, detector) -> Prediction:
    """BlazePose on the frames the project sees: decoded by its readers, downscaled as
    estimate does; image landmarks scaled back to the full frame."""
    from ikol_backend.readers import downscaled, open_source

    pred = Prediction(np.full(item.joints_cam.shape, np.nan), np.full(item.joints_2d.shape, np.nan),
                      np.zeros(item.frames, bool), 0.0)
    began = time.perf_counter()
    for frame in open_source([item.media]):
        small, scale = downscaled(frame.rgb)
        marks = detector.detect(small)
        row = frame.index
        if marks is None or row >= item.frames:
            continue
        pred.joints_cam[row] = marks.world[BLAZEPOSE_LIMBS]
        pred.joints_2d[row] = marks.image[BLAZEPOSE_LIMBS] / scale
        pred.valid[row] = True
    pred.seconds = time.perf_counter() - began
    return pred


def check_frame_count(item: Item) -> None:
    from ikol_backend.readers import open_source

    source = open_source([item.media])
    count = source.frame_count if source.fps is not None else len(source.paths)
    if count != item.frames:
        raise SystemExit(f"{item.media}: {count} frame(s), but its truth has {item.frames}")


# --------------------------------------------------------------------------------------
# measuring and reporting


def measure(items: list[Item], preds: dict[str, Prediction], clip_set: bool) -> dict:
    """Per-frame errors of one method over a set of items, pooled, and their summary."""
    pa, rr, px, acc_cam, acc_hip = [], [], [], [], []
    frames = found = 0
    errors = []
    for item in items:
        p = preds[item.name]
        frames += item.frames
        found += int(p.valid.sum())
        if p.error:
            errors.append(f"{item.name}: {p.error}")
        v = p.valid
        if v.any():
            pa.append(pa_mpjpe(p.joints_cam[v], item.joints_cam[v]))
            rr.append(root_relative_mpjpe(p.joints_cam[v], item.joints_cam[v]))
            px.append(error_2d_percent(p.joints_2d[v], item.joints_2d[v], item.height))
        if clip_set:
            acc_cam.append(accel_errors(p.joints_cam, item.joints_cam, v))
            acc_hip.append(accel_errors(hip_centred(p.joints_cam), hip_centred(item.joints_cam), v))

    def summary(parts, factor):
        values = np.concatenate(parts) * factor if parts else np.zeros(0)
        if not len(values):
            return None
        return {"mean": float(values.mean()), "median": float(np.median(values))}

    result = {
        "frames": frames, "found": found, "errors": errors,
        "pa_mpjpe_mm": summary(pa, 1000.0),
        "root_relative_mpjpe_mm": summary(rr, 1000.0),
        "error_2d_percent_height": summary(px, 1.0),
        "seconds": float(sum(preds[i.name].seconds for i in items)),
        "missing": [i.name if i.kind == "still" else
                    f"{i.name}[{','.join(map(str, np.flatnonzero(~preds[i.name].valid)))}]"
                    for i in items if not preds[i.name].valid.all()],
    }
    if clip_set:
        result["accel_mm_per_frame2"] = summary(acc_cam, 1000.0)
        result["accel_hip_centred_mm_per_frame2"] = summary(acc_hip, 1000.0)
    return result


def beats_in_2d(items: list[Item], ours: dict[str, Prediction], theirs: dict[str, Prediction]):
    """(frames where ours has the smaller 2D error, frames where both found the person)."""
    wins = total = 0
    for item in items:
        a, b = ours[item.name], theirs[item.name]
        both = a.valid & b.valid
        if both.any():
            ea = error_2d_percent(a.joints_2d[both], item.joints_2d[both], item.height)
            eb = error_2d_percent(b.joints_2d[both], item.joints_2d[both], item.height)
            wins += int((ea < eb).sum())
            total += int(both.sum())
    return wins, total


ROWS = (
    ("pa_mpjpe_mm", "PA-MPJPE, mm"),
    ("root_relative_mpjpe_mm", "root-relative MPJPE (camera frame), mm"),
    ("error_2d_percent_height", "2D error, % of image height"),
    ("accel_mm_per_frame2", "accel error (camera frame), mm/frame²"),
    ("accel_hip_centred_mm_per_frame2", "accel error (hip-centred), mm/frame²"),
)


def _fmt(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def set_table(title: str, results: dict, variants: list[str], wins: dict) -> list[str]:
    """A Markdown table of one set: every variant, BlazePose, and each variant / BlazePose."""
    blaze = results[BLAZEPOSE]
    head = ["measure: mean (median)", *variants, BLAZEPOSE, *[f"{v} / {BLAZEPOSE}" for v in variants]]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for key, label in ROWS:
        if key not in blaze:
            continue
        cells = []
        for method in [*variants, BLAZEPOSE]:
            s = results[method][key]
            cells.append("—" if s is None else f"{_fmt(s['mean'], 2 if 'percent' in key else 1)} "
                                               f"({_fmt(s['median'], 2 if 'percent' in key else 1)})")
        for v in variants:
            a, b = results[v][key], blaze[key]
            cells.append("—" if a is None or b is None or b["mean"] == 0
                         else f"{a['mean'] / b['mean']:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    found = [f"{results[m]['found']}/{results[m]['frames']}" for m in [*variants, BLAZEPOSE]]
    lines.append("| frames with the person found | " + " | ".join(found) + " |"
                 + " |" * len(variants))
    better = [f"{100 * w / t:.0f} % of {t}" if t else "—" for w, t in (wins[v] for v in variants)]
    lines.append("| 2D error below BlazePose's (frames) | " + " | ".join(better) + " | |"
                 + " |" * len(variants))
    per_frame = [f"{results[m]['seconds'] / max(results[m]['frames'], 1):.3f}"
                 for m in [*variants, BLAZEPOSE]]
    lines.append("| seconds per frame | " + " | ".join(per_frame) + " |" + " |" * len(variants))
    lines.append("")
    for method in [*variants, BLAZEPOSE]:
        if results[method]["missing"]:
            lines.append(f"- {method} found no person in (left out of its means): "
                         + ", ".join(results[method]["missing"]))
        for error in results[method]["errors"]:
            lines.append(f"- {method} failed: {error}")
    return lines


def breakdown_table(title: str, groups: dict, preds: dict) -> list[str]:
    """Medians per group of stills: PA-MPJPE and 2D error of every method, and how many
    stills each found the person in."""
    methods = list(preds)
    head = (["group", "stills"] + [f"PA-MPJPE mm: {m}" for m in methods]
            + [f"2D %: {m}" for m in methods] + [f"found: {m}" for m in methods])
    lines = [f"### {title} (medians)", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for label, items in groups.items():
        results = {m: measure(items, preds[m], False) for m in methods}
        cells = [label, str(len(items))]
        for key, digits in (("pa_mpjpe_mm", 1), ("error_2d_percent_height", 2)):
            for m in methods:
                s = results[m][key]
                cells.append("—" if s is None else f"{s['median']:.{digits}f}")
        cells += [str(results[m]["found"]) for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpus": os.cpu_count(), "usable_cpus": usable, "cpu": model or platform.processor(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "python": platform.python_version(), "platform": platform.platform()}


# --------------------------------------------------------------------------------------
# command line


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, args = text.partition("=")
    name = name.strip()
    if not sep or not name or name == BLAZEPOSE:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=\"ESTIMATE ARGS\"")
    return name, shlex.split(args)


def parse_arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--variant", action="append", type=parse_variant, default=[],
                   help='NAME="ESTIMATE ARGS" (repeatable; default: default="")')
    p.add_argument("--stills", type=int, default=STILLS, help=f"first N stills (default {STILLS})")
    p.add_argument("--clips", type=int, default=len(CLIPS),
                   help=f"first N clips of {', '.join(CLIPS)} (default all)")
    p.add_argument("--images", nargs="+", type=Path, default=[],
                   help="explicit stills (truth: the same name with .json) instead of the set")
    p.add_argument("--videos", nargs="+", type=Path, default=[],
                   help="explicit clips (truth: the same name with .json) instead of the set")
    p.add_argument("--json", type=Path, help="write all numbers (and per-frame errors) here")
    p.add_argument("--cache", type=Path, default=None, help="the set's folder (default: "
                   "$IKOL_BENCH_CACHE or ~/.cache/ikol-for-blender, then accuracy/v"
                   f"{SET_VERSION})")
    p.add_argument("--rebuild", action="store_true", help="render the selected items again")
    p.add_argument("--render-only", action="store_true", help="render what is missing, then stop")
    p.add_argument("--threads", type=int, default=2, help="Cycles threads (default 2)")
    p.add_argument("--keep", type=Path, help="keep the motion files in this folder")
    args = p.parse_args(argv)
    if args.stills < 0 or args.clips < 0 or args.clips > len(CLIPS):
        p.error(f"--stills must be >= 0 and --clips between 0 and {len(CLIPS)}")
    names = [n for n, _ in args.variant]
    if len(set(names)) != len(names):
        p.error("variant names must differ")
    args.variant = args.variant or [("default", [])]
    args.cache = args.cache or default_cache()
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    explicit = bool(args.images or args.videos)
    render_s = 0.0
    if args.render_only:
        if explicit:
            raise SystemExit("--render-only renders the set; it takes no --images/--videos")
        names = wanted(args.stills, args.clips)
        began = time.time()
        render_set(args.cache, names, args.threads, args.rebuild)
        print(f"[accuracy] the set is in {args.cache} ({time.time() - began:.0f} s)",
              file=sys.stderr)
        return 0
    if explicit:
        for path in args.images + args.videos:
            for needed in (path, path.with_suffix(".json")):
                if not needed.is_file():
                    raise SystemExit(f"not found: {needed} (each input needs its truth beside "
                                     "it, named like it with .json)")
        stills = [load_item(p) for p in args.images]
        clips = [load_item(p) for p in args.videos]
    else:
        names = wanted(args.stills, args.clips)
        render_s = ensure_rendered(args.cache, names, args.threads, args.rebuild)
        items = [load_item(*item_paths(args.cache, n), name=n) for n in names]
        stills = [i for i in items if i.kind == "still"]
        clips = [i for i in items if i.kind == "clip"]
    for item in stills + clips:
        check_frame_count(item)
    return benchmark(args, stills, clips, render_s)


def benchmark(args, stills: list[Item], clips: list[Item], render_s: float) -> int:
    import ikol_backend.estimate  # noqa: F401  (torch and MediaPipe load here, not in a timing)
    from ikol_backend.frontends.blazepose import BlazePose

    began = time.time()
    variants = [name for name, _ in args.variant]
    preds: dict[str, dict[str, Prediction]] = {m: {} for m in [*variants, BLAZEPOSE]}
    with tempfile.TemporaryDirectory(prefix="ikol-accuracy-") as tmp:
        # one untimed call first: lazy imports and first-use costs stay out of the timings
        run_estimate((stills + clips)[0], args.variant[0][1], Path(tmp))
        for name, extra in args.variant:
            work = (args.keep / name) if args.keep else Path(tmp) / name
            work.mkdir(parents=True, exist_ok=True)
            for count, item in enumerate(stills + clips, 1):
                preds[name][item.name] = run_estimate(item, extra, work)
                print(f"[accuracy] {name}: {item.name} ({count}/{len(stills) + len(clips)})",
                      file=sys.stderr, flush=True)
    with BlazePose() as detector:
        for item in stills:
            preds[BLAZEPOSE][item.name] = run_blazepose(item, detector)
    for item in clips:
        with BlazePose(video=True) as follower:
            preds[BLAZEPOSE][item.name] = run_blazepose(item, follower)
    bench_s = time.time() - began

    sets = []
    if stills:
        sets.append((f"stills ({len(stills)} image{'s' * (len(stills) != 1)})", stills, False))
    for item in clips:
        sets.append((f"clip {item.name} ({item.frames} frames)", [item], True))
    if len(clips) > 1:
        sets.append((f"all clips ({sum(i.frames for i in clips)} frames)", clips, True))

    info = machine()
    lines = [f"Machine: {info['cpus']} CPUs ({info['usable_cpus']} usable), {info['cpu']}; "
             f"torch threads {info['torch_threads']}; CUDA {'yes' if info['cuda'] else 'no'}.",
             "Variants: " + "; ".join(f"{n} = `{shlex.join(a) or '(no extra args)'}`"
                                      for n, a in args.variant) + ".",
             f"Benchmark {bench_s:.0f} s" + (f", rendering {render_s:.0f} s" if render_s else "")
             + ". Joints: 12 limb joints. Means (medians) over the frames where the method "
             "found the person.", ""]
    report = {"machine": info, "variants": {n: a for n, a in args.variant},
              "seconds": {"benchmark": bench_s, "render": render_s}, "sets": {}, "items": {}}
    for title, items, clip_set in sets:
        results = {m: measure(items, preds[m], clip_set) for m in preds}
        wins = {v: beats_in_2d(items, preds[v], preds[BLAZEPOSE]) for v in variants}
        lines += set_table(title, results, variants, wins) + [""]
        report["sets"][title] = {"results": results, "beats_blazepose_2d":
                                 {v: {"frames": w, "of": t} for v, (w, t) in wins.items()}}
    if stills and any(i.pose_kind for i in stills):
        kinds = {}
        for item in stills:
            kinds.setdefault(item.pose_kind or "?", []).append(item)
        lines += breakdown_table("stills by pose kind", kinds, preds) + [""]
    if stills:
        views = {}
        for name, _ in VIEWS:
            views[name] = [i for i in stills if i.view == name]
        lines += breakdown_table("stills by view (true heading from the hips: front <= 30°, "
                                 "three-quarter <= 75°, side beyond)",
                                 {k: v for k, v in views.items() if v}, preds) + [""]
    for item in stills + clips:
        report["items"][item.name] = {m: _per_frame(item, preds[m][item.name]) for m in preds}
        report["items"][item.name].update(pose_kind=item.pose_kind, view=item.view,
                                          heading_deg=round(heading_deg(item.joints_cam[0]), 1))
    print("\n".join(lines))
    if args.json:
        write_json(args.json, report)
    failed = any(p.error for per in preds.values() for p in per.values())
    return 1 if failed else 0


def _per_frame(item: Item, pred: Prediction) -> dict:
    """Per-frame errors (None where the person was not found) for the JSON report."""
    out = {"valid": pred.valid.tolist(), "seconds": pred.seconds, "error": pred.error}
    v = pred.valid

    def spread(values, factor):
        full = [None] * item.frames
        for row, value in zip(np.flatnonzero(v), values):
            full[row] = round(float(value) * factor, 3)
        return full

    if v.any():
        out["pa_mpjpe_mm"] = spread(pa_mpjpe(pred.joints_cam[v], item.joints_cam[v]), 1000)
        out["root_relative_mpjpe_mm"] = spread(
            root_relative_mpjpe(pred.joints_cam[v], item.joints_cam[v]), 1000)
        out["error_2d_percent_height"] = spread(
            error_2d_percent(pred.joints_2d[v], item.joints_2d[v], item.height), 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
