"""`ikol-backend estimate`: frames -> the person -> front end -> IK -> motion file.

Frames are streamed: only each frame's observations (a few dozen numbers) are kept. The person
is found and followed by `person.PersonTracker` (BlazePose). The front end then gives IK
inputs: the `default` one maps the person's landmarks to 29 SMPL points and the sides of the
hands, feet and head; `ikol` runs the IKOL network on a crop around the person (joints, twist,
leaf rotations, shape). Once all frames are in, frames without the person are filled (held or
interpolated, by option; they stay marked invalid), the observations are smoothed over time
(by option), one body shape is fitted, and the IKOL layer solves the frames in batches. Each
frame's root translation is then fitted through the camera.
"""

import dataclasses
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import roma
import torch

from .body.default_skeleton import default_skeleton
from .body.model import BodyModel
from .body.smpl_file import load_smpl
from .body.tree import NUM_JOINTS, NUM_POINTS
from .camera import DEFAULT_FOV_DEG, fit_translation, intrinsics
from .errors import BackendError
from .events import Events
from .frontends.blazepose import BlazePose, PoseLandmarks
from .frontends.blazepose_to_smpl import REST_SIDES, SIDE_JOINTS, SIDE_SEEN
from .frontends.ikol_net import IkolNetFrontEnd
from .ik.ikol_layer import ikol
from .ik.shape_fit import fit_betas
from .ik.side_twist import twist_towards_sides
from .observations import NetworkBatches, ObservationLog, Observations, landmark_row
from .person import PersonTracker
from .readers import FrameRange, downscaled, open_source
from .temporal import cutoff_for_strength, fill_missing, one_euro, same_hemisphere, unit
from .writers.motion import check_output, write_motion

STILL_FRAME_RATE = 30.0  # written for still images, which have no frame rate of their own
FRONT_ENDS = ("default", "ikol")
DEVICES = ("auto", "cpu", "cuda")
IK_BATCH = 1024  # frames per IK solve: bounds memory on long clips
# Crops per network batch: its 24 heatmaps of 64^3 take about 25 MB per crop in float32.
NETWORK_BATCH = {"cuda": 64, "cpu": 8}


@dataclasses.dataclass(frozen=True)
class EstimateOptions:
    """Everything `estimate` can be told besides its inputs and output (see docs/protocol.md).

    fov_deg / focal_px: the camera (degrees across the long side / pixels; focal wins).
    front_end: "default" (BlazePose) or "ikol" (the IKOL network, weights from `checkpoint`;
        `half`: float16 on CUDA; `flip_test`: also the mirrored crop).
    person: which person, 0 = the largest at the start, 1 = the next largest, ...
    fill: frames without the person: "none" (rest pose at the origin), "hold", "interpolate".
    smooth: 0 = raw, up to 1 = heavy One-Euro smoothing of the observations over time.
    smpl: an SMPL model file for the skeleton and shape space; None = the default skeleton.
    device: "auto" (CUDA when there is one), "cpu" or "cuda", for the network and the IK layer.
    """

    fov_deg: float = DEFAULT_FOV_DEG
    focal_px: float | None = None
    frame_range: FrameRange = FrameRange()
    front_end: str = "default"
    checkpoint: Path | None = None
    half: bool = False
    flip_test: bool = False
    person: int = 0
    fill: str = "interpolate"
    smooth: float = 0.0
    smpl: Path | None = None
    device: str = "auto"


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
    clock = _StageClock()
    with clock("decode"):
        source = open_source(inputs, options.frame_range)  # checks every input before models load
    network = None
    if options.front_end == "ikol":
        with clock("network"):
            network = IkolNetFrontEnd(options.checkpoint, device, half=options.half,
                                      flip_test=options.flip_test, reference_body=body,
                                      batch_size=NETWORK_BATCH[device.type])
    is_video = source.fps is not None
    total = source.frame_count or 0
    events.emit("start", frames=total, front_end=options.front_end, device=device.type)
    if source.fps_note:
        events.emit("warning", code="frame_rate", message=source.fps_note)

    camera = intrinsics(*source.frame_size, fov_deg=options.fov_deg, focal_px=options.focal_px)
    log = ObservationLog()
    batches = NetworkBatches(network, camera, log) if network is not None else None
    valid: list[bool] = []
    began = time.perf_counter()
    frames = iter(source)
    with BlazePose() as detector, (BlazePose(video=True) if is_video else nullcontext()) as follower:
        tracker = PersonTracker(detector, options.person, video=follower)
        while True:
            with clock("decode"):
                frame = next(frames, None)
            if frame is None:
                break
            with clock("landmarks"):
                small, scale = downscaled(frame.rgb)
                marks = tracker.track(small)
            valid.append(marks is not None)
            if marks is None:
                name = source.paths[0 if is_video else frame.index].name
                events.emit("warning", code="no_person", frame=frame.index,
                            message=f"No person found in frame {frame.index} ({name}).")
                log.add(frame.index, None)
            elif batches is None:
                with clock("landmarks"):
                    log.add(frame.index, landmark_row(_full_resolution(marks, scale)))
            else:
                with clock("network"):
                    batches.add(frame.index, frame.rgb, _full_resolution(marks, scale))
            done = len(valid)
            events.emit("progress", done=done, total=max(total, done),
                        frames_per_s=done / (time.perf_counter() - began))
    if batches is not None:
        with clock("network"):
            batches.run()

    if not any(valid):
        raise BackendError("no_person", _nobody_message(options.person, tracker.people_at_start))

    with clock("ik"):
        frame_rate = source.fps / options.frame_range.stride if is_video else STILL_FRAME_RATE
        seen = log.finish(valid)
        prepared = _prepared(seen, camera, frame_rate if is_video else None, options)
        solved = seen.valid if options.fill == "none" else np.ones_like(seen.valid)
        arrays = _solve(body, prepared, solved, camera, device)

    with clock("write"):
        write_motion(output, {
            **arrays,
            "gender": np.array(body.gender),
            "mocap_framerate": np.float64(frame_rate),
            "valid": seen.valid,
            "frame_index": seen.frame_index,
            "keypoints_2d": seen.keypoints_2d.astype(np.float32),
            "camera_intrinsics": camera.astype(np.float32),
            "image_size": np.array(source.frame_size, dtype=np.int32),
            "source": np.array(str(inputs[0]) if len(inputs) == 1 else str(Path(inputs[0]).parent)),
            "body_model": np.array(body.name),
            "front_end": np.array(options.front_end),
        })
    summary = {
        "frames": len(valid),
        "valid_frames": int(sum(valid)),
        "seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
    }
    events.emit("result", path=str(output), summary=summary)
    return summary


class _StageClock:
    """Seconds spent per stage (decode, landmarks, network, ik, write); `with clock(stage):`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def _full_resolution(marks: PoseLandmarks, scale: float) -> PoseLandmarks:
    """Landmarks found on a frame downscaled by `scale`, in the full frame's pixels."""
    return dataclasses.replace(marks, image=marks.image / scale)


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
    if options.front_end == "ikol" and options.checkpoint is None:
        raise BackendError("bad_option", "The ikol front end needs the network's weights: "
                                         "--checkpoint FILE.")


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


def _prepared(seen: Observations, camera: np.ndarray, frame_rate: float | None,
              options: EstimateOptions) -> Observations:
    """The observations with gaps filled, then smoothed over time (video only), rotations kept
    rotations: (cos, sin) pairs and quaternions are renormalised, quaternions first put in
    one hemisphere."""
    fill, valid = options.fill, seen.valid
    filled = {name: fill_missing(value, valid, fill) for name, value in seen.per_frame()
              if name not in ("leaf_quats", "betas")}
    if seen.leaf_quats is not None:
        filled["leaf_quats"] = fill_missing(same_hemisphere(seen.leaf_quats), valid, fill)
    if options.smooth > 0 and frame_rate is not None:
        restart = valid if fill == "none" else None
        cutoff = cutoff_for_strength(options.smooth)

        def smooth(values: np.ndarray) -> np.ndarray:
            return one_euro(values, frame_rate, cutoff, valid=restart)

        # 2D in focal-length units (about metres at 1 m), so one speed coefficient serves all.
        focal = camera[0, 0]
        filled["points"] = smooth(filled["points"])
        filled["keypoints_2d"][..., :2] = smooth(filled["keypoints_2d"][..., :2] / focal) * focal
        if "sides" in filled:
            filled["sides"][..., :3] = smooth(filled["sides"][..., :3])
        for name in ("twist", "leaf_quats"):
            if name in filled:
                filled[name] = smooth(filled[name])
    for name in ("twist", "leaf_quats"):
        if name in filled:
            filled[name] = unit(filled[name])
    return dataclasses.replace(seen, **filled)


def _solve(
    body: BodyModel, seen: Observations, solved: np.ndarray, camera: np.ndarray,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """Shape, poses, translation and posed joints for all frames (float32 arrays).

    The shape: the network's, averaged over the valid frames, on an SMPL-format body; else
    fitted to the bone lengths of the valid frames. Frames not `solved` keep the rest pose at
    the origin. With the default front end each batch is solved twice: twist-free, then with
    the hands', feet's and head's roll turned toward their seen sides (`ik.side_twist`).
    """
    body = body.to(device)

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=device)

    if seen.betas is not None and body.mesh is not None:
        betas = tensor(seen.betas[seen.valid].mean(axis=0, keepdims=True))
    else:
        betas = fit_betas(body, tensor(seen.points[seen.valid]), shared=True)[:1]
    rest = body.rest_points(betas)[0]
    frames = len(solved)
    poses = np.zeros((frames, NUM_JOINTS, 3))
    posed = np.broadcast_to(rest.double().cpu().numpy(), (frames, NUM_POINTS, 3)).copy()
    rows = np.flatnonzero(solved)
    for start in range(0, len(rows), IK_BATCH):
        batch = rows[start:start + IK_BATCH]
        targets, part_betas = tensor(seen.points[batch]), betas.expand(len(batch), -1)
        twist = None if seen.twist is None else tensor(seen.twist[batch])
        leaves = None if seen.leaf_quats is None else roma.unitquat_to_rotmat(tensor(seen.leaf_quats[batch]))
        result = ikol(body, targets, betas=part_betas, twist=twist, leaf_rotmats=leaves, init="analytic")
        if seen.sides is not None:
            side = tensor(seen.sides[batch])
            twist = twist_towards_sides(
                result.rotmats, rest.expand(len(batch), -1, -1), SIDE_JOINTS,
                torch.as_tensor(REST_SIDES), side[..., :3], side[..., 3] >= SIDE_SEEN)
            result = ikol(body, targets, betas=part_betas, twist=twist, init="analytic")
        poses[batch] = result.poses().double().cpu().numpy()
        posed[batch] = (result.points + rest[0]).double().cpu().numpy()
    trans = np.zeros((frames, 3))
    for i in rows:
        trans[i] = fit_translation(posed[i], seen.keypoints_2d[i, :, :2], seen.keypoints_2d[i, :, 2], camera)
    return {
        "poses": poses.reshape(frames, NUM_JOINTS * 3).astype(np.float32),
        "trans": trans.astype(np.float32),
        "betas": betas[0].cpu().numpy().astype(np.float32),
        "joints": (posed[:, :NUM_JOINTS] + trans[:, None]).astype(np.float32),
        "rest_joints": rest[:NUM_JOINTS].cpu().numpy().astype(np.float32),
    }
