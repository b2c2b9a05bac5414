"""`ikol-backend estimate`: frames -> the person -> SMPL targets -> IK -> motion file.

Frames are streamed: only each frame's targets (29 points) are kept. The person is found and
followed by `person.PersonTracker`. Once all frames are in, frames without the person are
filled (held or interpolated, by option; they stay marked invalid), the targets are smoothed
over time (by option), one body shape is fitted to the bone lengths of every frame, and the
IKOL layer solves the frames in batches (twist-free mode, leaf points as targets). Each
frame's root translation is then fitted through the camera.
"""

import dataclasses
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .body.default_skeleton import default_skeleton
from .body.model import BodyModel
from .body.smpl_file import load_smpl
from .body.tree import NUM_JOINTS, NUM_POINTS
from .camera import DEFAULT_FOV_DEG, fit_translation, intrinsics
from .errors import BackendError
from .events import Events
from .frontends.blazepose import BlazePose, PoseLandmarks
from .frontends.blazepose_to_smpl import REST_SIDES, SIDE_JOINTS, SIDE_SEEN, side_vectors, smpl_targets
from .ik.ikol_layer import ikol
from .ik.shape_fit import fit_betas
from .ik.side_twist import twist_towards_sides
from .person import PersonTracker
from .readers import FrameRange, downscaled, open_source
from .temporal import cutoff_for_strength, fill_missing, one_euro, unit
from .writers.motion import check_output, write_motion

STILL_FRAME_RATE = 30.0  # written for still images, which have no frame rate of their own
FRONT_ENDS = ("default",)
DEVICES = ("auto", "cpu", "cuda")
IK_BATCH = 4096  # frames per IK solve: bounds memory on long clips


@dataclasses.dataclass(frozen=True)
class EstimateOptions:
    """Everything `estimate` can be told besides its inputs and output (see docs/protocol.md).

    fov_deg / focal_px: the camera (degrees across the long side / pixels; focal wins).
    person: which person, 0 = the largest at the start, 1 = the next largest, ...
    fill: frames without the person: "none" (rest pose at the origin), "hold", "interpolate".
    smooth: 0 = raw, up to 1 = heavy One-Euro smoothing of the targets over time.
    smpl: an SMPL model file for the skeleton and shape space; None = the default skeleton.
    device: "auto" (CUDA when there is one), "cpu" or "cuda", for the IK layer.
    """

    fov_deg: float = DEFAULT_FOV_DEG
    focal_px: float | None = None
    frame_range: FrameRange = FrameRange()
    front_end: str = "default"
    person: int = 0
    fill: str = "interpolate"
    smooth: float = 0.0
    smpl: Path | None = None
    device: str = "auto"


@dataclasses.dataclass
class _Seen:
    """What the front end gave for the frames so far (the person's, where found)."""

    frame_index: list[int] = dataclasses.field(default_factory=list)
    valid: list[bool] = dataclasses.field(default_factory=list)
    points_3d: list[np.ndarray] = dataclasses.field(default_factory=list)  # (29, 3) model frame
    keypoints_2d: list[np.ndarray] = dataclasses.field(default_factory=list)  # (29, 3) px, px, conf
    sides: list[np.ndarray] = dataclasses.field(default_factory=list)  # (5, 4) unit side, conf

    def add(self, index: int, marks: PoseLandmarks | None) -> None:
        """One frame's landmarks (image landmarks in full-resolution pixels), or None."""
        self.frame_index.append(index)
        self.valid.append(marks is not None)
        if marks is None:
            points_3d, points_2d, confidence = (
                np.zeros((NUM_POINTS, 3)), np.zeros((NUM_POINTS, 2)), np.zeros(NUM_POINTS))
            sides, side_confidence = np.zeros((len(SIDE_JOINTS), 3)), np.zeros(len(SIDE_JOINTS))
        else:
            points_3d, points_2d, confidence = smpl_targets(marks)
            sides, side_confidence = side_vectors(marks)
        self.points_3d.append(points_3d)
        self.keypoints_2d.append(np.concatenate([points_2d, confidence[:, None]], axis=1))
        self.sides.append(np.concatenate([unit(sides), side_confidence[:, None]], axis=1))


def estimate(
    inputs: Sequence[Path], output: Path, events: Events, options: EstimateOptions = EstimateOptions()
) -> dict:
    """Estimate SMPL motion from photos, an image folder or a video; write the motion file.

    Returns the summary also sent with the `result` event.
    """
    _check_options(options)
    check_output(output)
    device = _device(options.device)
    body = load_smpl(options.smpl) if options.smpl is not None else default_skeleton()
    seconds: dict[str, float] = defaultdict(float)
    tick = time.perf_counter()
    source = open_source(inputs, options.frame_range)  # checks every input before models load
    seconds["decode"] += time.perf_counter() - tick
    is_video = source.fps is not None
    total = source.frame_count or 0
    events.emit("start", frames=total, front_end=options.front_end, device=device.type)
    if source.fps_note:
        events.emit("warning", code="frame_rate", message=source.fps_note)

    seen = _Seen()
    began = time.perf_counter()
    with BlazePose() as detector:
        tracker = PersonTracker(detector, options.person)
        tick = time.perf_counter()
        for frame in source:
            seconds["decode"] += time.perf_counter() - tick
            tick = time.perf_counter()
            small, scale = downscaled(frame.rgb)
            marks = tracker.track(small)
            if marks is None:
                name = source.paths[0 if is_video else frame.index].name
                events.emit("warning", code="no_person", frame=frame.index,
                            message=f"No person found in frame {frame.index} ({name}).")
                seen.add(frame.index, None)
            else:
                seen.add(frame.index, dataclasses.replace(marks, image=marks.image / scale))
            seconds["landmarks"] += time.perf_counter() - tick
            done = len(seen.valid)
            events.emit("progress", done=done, total=max(total, done),
                        frames_per_s=done / (time.perf_counter() - began))
            tick = time.perf_counter()

    valid = np.array(seen.valid)
    if not valid.any():
        raise BackendError("no_person", _nobody_message(options.person, tracker.people_at_start))

    tick = time.perf_counter()
    frame_rate = source.fps / options.frame_range.stride if is_video else STILL_FRAME_RATE
    camera = intrinsics(*source.frame_size, fov_deg=options.fov_deg, focal_px=options.focal_px)
    keypoints_2d = np.stack(seen.keypoints_2d)
    targets, seen_2d, sides = _prepared_targets(
        np.stack(seen.points_3d), keypoints_2d, np.stack(seen.sides), valid, camera,
        frame_rate if is_video else None, options)
    solved = valid if options.fill == "none" else np.ones_like(valid)
    arrays = _solve(body, targets, seen_2d, sides, valid, solved, camera, device)
    seconds["ik"] += time.perf_counter() - tick

    tick = time.perf_counter()
    write_motion(output, {
        **arrays,
        "gender": np.array(body.gender),
        "mocap_framerate": np.float64(frame_rate),
        "valid": valid,
        "frame_index": np.array(seen.frame_index, dtype=np.int32),
        "keypoints_2d": keypoints_2d.astype(np.float32),
        "camera_intrinsics": camera.astype(np.float32),
        "image_size": np.array(source.frame_size, dtype=np.int32),
        "source": np.array(str(inputs[0]) if len(inputs) == 1 else str(Path(inputs[0]).parent)),
        "body_model": np.array(body.name),
        "front_end": np.array(options.front_end),
    })
    seconds["write"] += time.perf_counter() - tick
    summary = {
        "frames": len(valid),
        "valid_frames": int(valid.sum()),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    events.emit("result", path=str(output), summary=summary)
    return summary


def _check_options(options: EstimateOptions) -> None:
    """Usage errors, before anything is read."""
    if options.focal_px is not None and options.focal_px <= 0:
        raise BackendError("bad_camera",
                           f"--focal must be a positive number of pixels, not {options.focal_px:g}")
    if not 0.0 <= options.smooth <= 1.0:
        raise BackendError("bad_option", f"--smooth must be between 0 and 1, not {options.smooth:g}")
    if options.person < 0:
        raise BackendError("bad_option", f"--person must be 0 or more, not {options.person}")
    if options.front_end not in FRONT_ENDS:
        raise BackendError("bad_option", f"Unknown front end {options.front_end!r}; "
                                         f"choose from {', '.join(FRONT_ENDS)}.")


def _device(name: str) -> torch.device:
    """The torch device for "auto", "cpu" or "cuda"; a clear error when CUDA is missing."""
    if name not in DEVICES:
        raise BackendError("bad_option", f"Unknown device {name!r}; choose from {', '.join(DEVICES)}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise BackendError("bad_option", "--device cuda was asked for, but torch sees no CUDA "
                                         "device here (run `ikol-backend doctor`).")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _nobody_message(person: int, people_at_start: int) -> str:
    if person == 0 or people_at_start == 0:
        return "No person was found in the input."
    return (f"Person {person} was asked for (0 is the largest), but only {people_at_start} "
            f"{'person was' if people_at_start == 1 else 'people were'} found.")


def _prepared_targets(
    points_3d: np.ndarray, keypoints_2d: np.ndarray, sides: np.ndarray, valid: np.ndarray,
    camera: np.ndarray, frame_rate: float | None, options: EstimateOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets for the IK and the translation fit: gaps filled, then smoothed over time.

    Returns (N, 29, 3) root-relative points (model frame, metres), (N, 29, 3) keypoints
    (x px, y px, confidence) and (N, 5, 4) side directions of SIDE_JOINTS with confidence.
    """
    relative = fill_missing(points_3d - points_3d[:, :1], valid, options.fill)
    seen_2d = fill_missing(keypoints_2d, valid, options.fill)
    sides = fill_missing(sides, valid, options.fill)
    if options.smooth > 0 and frame_rate is not None:
        smoothed = valid if options.fill == "none" else None
        cutoff = cutoff_for_strength(options.smooth)
        relative = one_euro(relative, frame_rate, cutoff, valid=smoothed)
        # 2D in focal-length units (about metres at 1 m), so one speed coefficient serves both.
        focal = camera[0, 0]
        seen_2d[..., :2] = one_euro(seen_2d[..., :2] / focal, frame_rate, cutoff, valid=smoothed) * focal
        sides[..., :3] = one_euro(sides[..., :3], frame_rate, cutoff, valid=smoothed)
    return relative, seen_2d, sides


def _solve(
    body: BodyModel, targets: np.ndarray, keypoints_2d: np.ndarray, sides: np.ndarray,
    valid: np.ndarray, solved: np.ndarray, camera: np.ndarray, device: torch.device,
) -> dict[str, np.ndarray]:
    """Shape, poses, translation and posed joints for all frames (float32 arrays).

    The shape is fitted to the `valid` frames; frames not `solved` keep the rest pose at the
    origin. Each batch is solved twice: twist-free, then with the hands', feet's and head's
    roll turned toward their seen sides (`ik.side_twist`).
    """
    body = body.to(device)
    seen = torch.as_tensor(targets[valid], dtype=torch.float32, device=device)
    betas = fit_betas(body, seen, shared=True)[:1]
    chosen = torch.as_tensor(targets[solved], dtype=torch.float32, device=device)
    rest = body.rest_points(betas)[0]
    frames = len(solved)
    poses = np.zeros((frames, NUM_JOINTS, 3))
    posed = np.broadcast_to(rest.double().cpu().numpy(), (frames, NUM_POINTS, 3)).copy()
    rows = np.flatnonzero(solved)
    for start in range(0, len(rows), IK_BATCH):
        batch = rows[start:start + IK_BATCH]
        part = chosen[start:start + IK_BATCH]
        part_betas = betas.expand(len(part), -1)
        twist_free = ikol(body, part, betas=part_betas, init="analytic")
        side = torch.as_tensor(sides[batch], dtype=torch.float32, device=device)
        twist = twist_towards_sides(
            twist_free.rotmats, rest.expand(len(part), -1, -1), SIDE_JOINTS,
            torch.as_tensor(REST_SIDES), side[..., :3], side[..., 3] >= SIDE_SEEN)
        result = ikol(body, part, betas=part_betas, twist=twist, init="analytic")
        poses[batch] = result.poses().double().cpu().numpy()
        posed[batch] = (result.points + rest[0]).double().cpu().numpy()
    trans = np.zeros((frames, 3))
    for i in rows:
        trans[i] = fit_translation(posed[i], keypoints_2d[i, :, :2], keypoints_2d[i, :, 2], camera)
    return {
        "poses": poses.reshape(frames, NUM_JOINTS * 3).astype(np.float32),
        "trans": trans.astype(np.float32),
        "betas": betas[0].cpu().numpy().astype(np.float32),
        "joints": (posed[:, :NUM_JOINTS] + trans[:, None]).astype(np.float32),
        "rest_joints": rest[:NUM_JOINTS].cpu().numpy().astype(np.float32),
    }
