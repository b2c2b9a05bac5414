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
from .body.kinematics import forward_kinematics
from .body.model import BodyModel
from .body.smpl_file import load_smpl
from .body.tree import NUM_JOINTS, NUM_POINTS
from .camera import DEFAULT_FOV_DEG, intrinsics, view_to_camera
from .errors import BackendError
from .events import Events
from .frontends.blazepose import BlazePose, MirroredPass, PoseLandmarks
from .frontends.blazepose_to_smpl import REST_SIDES, SIDE_JOINTS, SIDE_SEEN
from .frontends.ikol_net import IkolNetFrontEnd
from .ik.ikol_layer import SwingProblem, ikol
from .ik.image_fit import (FitWeights, ImageEvidence, ImageFitResult, fit_focal, fit_to_image,
                           smooth_weight, toward_rays)
from .ik.shape_fit import fit_betas, fit_betas_to_image
from .ik.side_twist import twist_towards_sides
from .observations import NetworkBatches, ObservationLog, Observations, landmark_row
from .options import DEVICES, FRONT_ENDS, EstimateOptions
from .person import PersonTracker
from .readers import FrameRange, downscaled, open_source
from .temporal import cutoff_for_strength, fill_missing, one_euro, same_hemisphere, unit
from .writers.motion import check_output, write_motion

STILL_FRAME_RATE = 30.0  # written for still images, which have no frame rate of their own
IK_BATCH = 512  # frames per IK solve: bounds memory on long clips
SHAPE_FRAMES = 128  # valid frames (evenly spread) the shape is fitted to in 2D and 3D
MIN_FOCAL_PX, MAX_FOCAL_PX = 1.0, 1e6  # --focal's range (NaN and infinity are outside)
MIN_FOV_DEG, MAX_FOV_DEG = 1.0, 179.0  # --fov's range
FOCAL_FRAMES = 256  # valid frames (evenly spread) the focal length is fitted to
FOCAL_PRIOR_SPREAD = 0.1  # relative spread of the focal length's prior (measured: docs/accuracy.md)
FOCAL_RANGE = 3.0  # the fitted focal length stays within this factor of the prior's
KEYPOINT_NOISE = 0.01  # 2D keypoint noise as a fraction of the image's long side
# Crops per network batch: its 24 heatmaps of 64^3 take about 25 MB per crop in float32.
NETWORK_BATCH = {"cuda": 64, "cpu": 8}


@dataclasses.dataclass
class Motion:
    """What `estimate_motion` found: the motion file's arrays, frame counts and the seconds
    spent per stage (decode, landmarks, network, ik; the writer adds write)."""

    arrays: dict[str, np.ndarray]
    frames: int
    valid_frames: int
    seconds: dict[str, float]

    def summary(self) -> dict:
        """The `result` event's summary."""
        return {"frames": self.frames, "valid_frames": self.valid_frames,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def estimate(
    inputs: Sequence[Path], output: Path, events: Events, options: EstimateOptions = EstimateOptions()
) -> dict:
    """Estimate SMPL motion from photos, an image folder or a video; write the motion file.

    Returns the summary also sent with the `result` event.
    """
    check_options(options)
    check_output(output)
    motion = estimate_motion(inputs, events, options)
    began = time.perf_counter()
    write_motion(output, motion.arrays)
    motion.seconds["write"] = time.perf_counter() - began
    summary = motion.summary()
    events.emit("result", path=str(output), summary=summary)
    return summary


def check_options(options: EstimateOptions) -> torch.device:
    """The usage errors `estimate` reports before any work, and the torch device."""
    _check_options(options)
    return _device(options.device)


def estimate_motion(inputs: Sequence[Path], events: Events, options: EstimateOptions,
                    network: IkolNetFrontEnd | None = None) -> Motion:
    """Everything `estimate` does but writing the file: the motion's arrays from the inputs.

    Emits `start`, `progress` and `warning` events (not `result`). `network`: an IKOL network
    front end already loaded for these options (a batch worker keeps one), else it is loaded
    here when `options.front_end` is "ikol". The caller has checked `options` (`check_options`).
    """
    device = _device(options.device)
    body = load_smpl(options.smpl) if options.smpl is not None else default_skeleton()
    clock = _StageClock()
    with clock("decode"):
        source = open_source(inputs, FrameRange(options.start, options.stop, options.stride))
    if options.front_end != "ikol":
        network = None
    elif network is None:
        with clock("network"):
            network = load_network(options, device, body)
    is_video = source.fps is not None
    total = source.frame_count or 0
    events.emit("start", frames=total, front_end=options.front_end, device=device.type)
    if source.fps_note:
        events.emit("warning", code="frame_rate", message=source.fps_note)
    if network is not None and network.checkpoint_note:
        events.emit("warning", code="checkpoint_unused_keys", message=network.checkpoint_note)

    # The network places its joints through a camera before the focal length can be fitted.
    camera = intrinsics(*source.frame_size, fov_deg=options.fov_deg or DEFAULT_FOV_DEG,
                        focal_px=options.focal_px)
    log = ObservationLog()
    batches = NetworkBatches(network, camera, log) if network is not None else None
    valid: list[bool] = []
    began = time.perf_counter()
    frames = iter(source)
    # Photos get a second, mirrored look (MirroredPass); a clip gets its neighbouring frames
    # instead: there the mirrored pass halved the speed and changed no measure (docs/accuracy.md).
    with BlazePose() as detector, (BlazePose(video=True) if is_video else nullcontext()) as follower, \
            (nullcontext() if is_video else MirroredPass()) as mirror:
        tracker = PersonTracker(detector, options.person, video=follower)
        while True:
            with clock("decode"):
                frame = next(frames, None)
            if frame is None:
                break
            with clock("landmarks"):
                small, scale = downscaled(frame.rgb)
                marks = tracker.track(small)
                if marks is not None and mirror is not None:
                    marks = mirror.averaged(small, marks)
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
    if source.damage_note:
        events.emit("warning", code="damaged_input", message=source.damage_note)
    if batches is not None:
        with clock("network"):
            batches.run()

    if not any(valid):
        raise BackendError("no_person", _nobody_message(options.person, tracker.people_at_start))

    with clock("ik"):
        frame_rate = source.fps / options.stride if is_video else STILL_FRAME_RATE
        seen = log.finish(valid)
        prepared = _prepared(seen, frame_rate if is_video else None, options)
        solved = seen.valid if options.fill == "none" else np.ones_like(seen.valid)
        camera = _camera(seen, *source.frame_size, options)
        if options.front_end == "default":
            prepared = _seen_by_the_camera(prepared, camera)
        arrays = _solve(body, prepared, solved, camera, device, frame_rate if is_video else None,
                        options.smooth)

    return Motion(
        arrays={
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
        },
        frames=len(valid), valid_frames=int(sum(valid)), seconds=dict(clock.seconds),
    )


def load_network(options: EstimateOptions, device: torch.device,
                 body: BodyModel | None = None) -> IkolNetFrontEnd:
    """The IKOL network front end for `options` (its checkpoint, precision, flip test)."""
    if body is None:
        body = load_smpl(options.smpl) if options.smpl is not None else default_skeleton()
    return IkolNetFrontEnd(options.checkpoint, device, half=options.half,
                           flip_test=options.flip_test, reference_body=body,
                           batch_size=NETWORK_BATCH[device.type])


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
    FrameRange(options.start, options.stop, options.stride)  # raises on a bad range
    if options.focal_px is not None and not MIN_FOCAL_PX <= options.focal_px <= MAX_FOCAL_PX:
        raise BackendError("bad_camera", f"--focal must be a number of pixels from {MIN_FOCAL_PX:g} "
                                         f"to {MAX_FOCAL_PX:,.0f}, not {options.focal_px:g}")
    if options.fov_deg is not None and not MIN_FOV_DEG <= options.fov_deg <= MAX_FOV_DEG:
        raise BackendError("bad_camera", f"--fov must be an angle from {MIN_FOV_DEG:g} to "
                                         f"{MAX_FOV_DEG:g} degrees, not {options.fov_deg:g}")
    if options.front_end != "ikol":
        for given, name in ((options.checkpoint is not None, "--checkpoint"),
                            (options.half, "--half"), (options.flip_test, "--flip-test")):
            if given:
                raise BackendError("bad_option", f"{name} is an option of the IKOL network: "
                                                 f"use it with --front-end ikol.")
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


def _prepared(seen: Observations, frame_rate: float | None, options: EstimateOptions) -> Observations:
    """The observations with gaps filled; in video, the rotations the fit takes as given (the
    network's twist and leaf rotations, the seen sides of hands, feet and head) smoothed over
    time by `--smooth` (positions are smoothed by the fit itself). Rotations stay rotations:
    (cos, sin) pairs and quaternions are renormalised, quaternions first put in one
    hemisphere."""
    fill, valid = options.fill, seen.valid
    filled = {name: fill_missing(value, valid, fill) for name, value in seen.per_frame()
              if name not in ("leaf_quats", "betas")}
    if seen.leaf_quats is not None:
        filled["leaf_quats"] = fill_missing(same_hemisphere(seen.leaf_quats), valid, fill)
    if options.smooth > 0 and frame_rate is not None:
        restart = valid if fill == "none" else None
        cutoff = cutoff_for_strength(options.smooth)
        if "sides" in filled:
            filled["sides"][..., :3] = one_euro(filled["sides"][..., :3], frame_rate, cutoff, valid=restart)
        for name in ("twist", "leaf_quats"):
            if name in filled:
                filled[name] = one_euro(filled[name], frame_rate, cutoff, valid=restart)
    for name in ("twist", "leaf_quats"):
        if name in filled:
            filled[name] = unit(filled[name])
    return dataclasses.replace(seen, **filled)


def _solve(
    body: BodyModel, seen: Observations, solved: np.ndarray, camera: np.ndarray,
    device: torch.device, frame_rate: float | None, smooth: float,
) -> dict[str, np.ndarray]:
    """Shape, poses, translation and posed joints for all frames (float32 arrays).

    The shape: the network's, averaged over the valid frames, on an SMPL-format body; else
    fitted first to the bone lengths of the valid frames, then, with those frames posed, to
    their 2D keypoints and 3D targets together (`shape_fit.fit_betas_to_image`). Frames not
    `solved` keep the rest pose at the origin. Poses: `_fit_frames`, in batches of IK_BATCH.
    """
    body = body.to(device)
    weights = FitWeights()
    if smooth > 0 and frame_rate is not None:
        weights = dataclasses.replace(
            weights, smooth=smooth_weight(cutoff_for_strength(smooth), frame_rate, weights))
    if seen.betas is not None and body.mesh is not None:
        betas = _tensor(seen.betas[seen.valid].mean(axis=0, keepdims=True), device)
    else:
        betas = fit_betas(body, _tensor(seen.points[seen.valid], device), shared=True)[:1]
        rows = np.flatnonzero(seen.valid)
        rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), SHAPE_FRAMES)).astype(int)]
        fitted = _fit_frames(body, seen, rows, betas, camera, FitWeights(), temporal=False)
        _, global_rotmats = forward_kinematics(fitted.rotmats, body.rest_points(betas.expand(len(rows), -1)))
        betas = fit_betas_to_image(
            body, global_rotmats, _tensor(seen.points[rows], device),
            _tensor(seen.keypoints_2d[rows, :, :2], device), _tensor(seen.keypoints_2d[rows, :, 2], device),
            _tensor(camera, device), image_weight=weights.image, points_weight=weights.points_3d,
        )[None]
    rest = body.rest_points(betas)[0]
    frames = len(solved)
    poses = np.zeros((frames, NUM_JOINTS, 3))
    posed = np.broadcast_to(rest.double().cpu().numpy(), (frames, NUM_POINTS, 3)).copy()
    position = np.broadcast_to(rest[0].double().cpu().numpy(), (frames, 3)).copy()
    rows = np.flatnonzero(solved)
    for start in range(0, len(rows), IK_BATCH):
        batch = rows[start:start + IK_BATCH]
        fitted = _fit_frames(body, seen, batch, betas, camera, weights, temporal=frame_rate is not None)
        poses[batch] = roma.rotmat_to_rotvec(fitted.rotmats).double().cpu().numpy()
        posed[batch] = fitted.points.double().cpu().numpy()
        position[batch] = fitted.position.double().cpu().numpy()
    trans = position - rest[0].double().cpu().numpy()
    return {
        "poses": poses.reshape(frames, NUM_JOINTS * 3).astype(np.float32),
        "trans": trans.astype(np.float32),
        "betas": betas[0].cpu().numpy().astype(np.float32),
        "joints": posed[:, :NUM_JOINTS].astype(np.float32),
        "rest_joints": rest[:NUM_JOINTS].cpu().numpy().astype(np.float32),
    }


def _seen_by_the_camera(seen: Observations, camera: np.ndarray) -> Observations:
    """BlazePose's world landmarks (the 3D targets and the sides) turned from its view straight
    at the person (the crop's) into the camera's view (`camera.view_to_camera`, at the pixel
    between the hips). Measured on the rendered set (docs/accuracy.md): root-relative MPJPE
    137.5 -> 136.0 mm on stills, 103.3 -> 100.8 mm on clips."""
    turn = view_to_camera(seen.keypoints_2d[:, [1, 2], :2].mean(axis=1), camera)
    turned = {"points": np.einsum("nij,npj->npi", turn, seen.points)}
    if seen.sides is not None:
        sides = seen.sides.copy()
        sides[..., :3] = np.einsum("nij,npj->npi", turn, sides[..., :3])
        turned["sides"] = sides
    return dataclasses.replace(seen, **turned)


def _tensor(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=device)


def _fit_frames(body: BodyModel, seen: Observations, rows: np.ndarray, betas: torch.Tensor,
                camera: np.ndarray, weights: FitWeights, temporal: bool) -> ImageFitResult:
    """Pose the frames `rows` (in time order) on the image.

    The IK layer's problem gets the front end's twist and leaf rotations; with the default
    front end, a 3D solve first finds the pose whose hands', feet's and head's roll then turn
    toward their seen sides (`ik.side_twist`). The image-aligned fit (`ik.image_fit`) follows,
    jointly over neighbouring frames when `temporal` (consecutive rows are linked).
    """
    device = betas.device
    targets, part_betas = _tensor(seen.points[rows], device), betas.expand(len(rows), -1)
    twist = None if seen.twist is None else _tensor(seen.twist[rows], device)
    leaves = None if seen.leaf_quats is None else roma.unitquat_to_rotmat(_tensor(seen.leaf_quats[rows], device))
    if seen.sides is not None:
        result = ikol(body, targets, betas=part_betas, init="analytic", iterations=0)
        side = _tensor(seen.sides[rows], device)
        twist = twist_towards_sides(
            result.rotmats, body.rest_points(part_betas), SIDE_JOINTS,
            torch.as_tensor(REST_SIDES), side[..., :3], side[..., 3] >= SIDE_SEEN)
    evidence = ImageEvidence(_tensor(seen.keypoints_2d[rows, :, :2], device),
                             _tensor(seen.keypoints_2d[rows, :, 2], device), _tensor(camera, device))
    linked = torch.as_tensor(np.diff(rows, prepend=-2) == 1, device=device) if temporal else None
    aimed = toward_rays(targets, evidence, weights, linked)
    problem = SwingProblem.build(body, aimed, part_betas, twist, leaves)
    return fit_to_image(problem, evidence, weights, linked=linked, targets=targets)


def _camera(seen: Observations, width: int, height: int, options: EstimateOptions) -> np.ndarray:
    """The intrinsics: from --focal or --fov when given; else the focal length fitted to the
    valid frames' 3D targets and 2D keypoints (`ik.image_fit.fit_focal`), with a prior at
    DEFAULT_FOV_DEG."""
    if options.focal_px is not None or options.fov_deg is not None:
        return intrinsics(width, height, fov_deg=options.fov_deg or DEFAULT_FOV_DEG,
                          focal_px=options.focal_px)
    prior = intrinsics(width, height)
    rows = np.flatnonzero(seen.valid)
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), FOCAL_FRAMES)).astype(int)]
    points = torch.as_tensor(seen.points[rows], dtype=torch.float64)
    evidence = ImageEvidence(torch.as_tensor(seen.keypoints_2d[rows, :, :2]),
                             torch.as_tensor(seen.keypoints_2d[rows, :, 2]), torch.as_tensor(prior))
    focal = fit_focal(points, evidence, prior[0, 0], FOCAL_PRIOR_SPREAD,
                      KEYPOINT_NOISE * max(width, height))
    focal = float(np.clip(focal, prior[0, 0] / FOCAL_RANGE, prior[0, 0] * FOCAL_RANGE))
    return intrinsics(width, height, focal_px=focal)
