"""`ikol-backend estimate`: frames -> the people -> front end -> IK -> motion file(s).

Frames are streamed: only each frame's observations (a few dozen numbers) are kept. Everyone
is found and followed on their own track by `person.PeopleTracker` (BlazePose); `--person K`
makes motion of one of them (`person.choice.ranked_at_start`), `--people all` of everyone who
stays in view (`person.choice.everyone`), each person alone from here on. The front end then
gives IK inputs: the `default` one maps the person's landmarks to 29 SMPL points and the sides of the
hands, feet and head; `ikol` runs the IKOL network on a crop around the person (joints, twist,
leaf rotations, shape). Once all frames are in, frames without the person are filled (held or
interpolated, by option; they stay marked invalid), the observations are smoothed over time
(by option), one body shape is fitted, and the IKOL layer solves the frames in batches. Each
frame's root translation is then fitted through the camera.
"""

import dataclasses
import math
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
from .frontends.blazepose import MirroredPass, PoseLandmarks
from .frontends.blazepose_to_smpl import REST_SIDES, SIDE_JOINTS, SIDE_SEEN
from .frontends.ikol_net import IkolNetFrontEnd
from .ik.ikol_layer import SwingProblem, ikol
from .ik.image_fit import (FitWeights, ImageEvidence, ImageFitResult, fit_focal, fit_to_image,
                           smooth_weight, toward_rays)
from .ik.shape_fit import fit_betas, fit_betas_to_image
from .ik.side_twist import twist_towards_sides
from .observations import NetworkBatches, ObservationLog, Observations, landmark_row
from .options import DEVICES, FRONT_ENDS, PEOPLE, EstimateOptions
from .person import PeopleTracker, Track, stitched
from .person.choice import MIN_TRACK_S, START_S, everyone, frame_spans, ranked_at_start
from .readers import FrameRange, downscaled, open_source
from .temporal import cutoff_for_strength, fill_missing, one_euro, same_hemisphere, unit
from .writers.motion import check_output, check_people_output, write_motion, write_people

STILL_FRAME_RATE = 30.0  # written for still images, which have no frame rate of their own
IK_BATCH = 512  # frames per IK solve: bounds memory on long clips
IK_OVERLAP = 32  # frames of a clip fitted by two neighbouring IK batches, faded from one to the other
SHAPE_FRAMES = 128  # valid frames (evenly spread) the shape is fitted to in 2D and 3D
MIN_FOCAL_PX, MAX_FOCAL_PX = 1.0, 1e6  # --focal's range (NaN and infinity are outside)
MIN_FOV_DEG, MAX_FOV_DEG = 1.0, 179.0  # --fov's range
FOCAL_FRAMES = 256  # valid frames (evenly spread) the focal length is fitted to
FOCAL_PRIOR_SPREAD = 0.1  # relative spread of the focal length's prior (measured: docs/accuracy.md)
FOCAL_RANGE = 3.0  # the fitted focal length stays within this factor of the prior's
KEYPOINT_NOISE = 0.01  # 2D keypoint noise as a fraction of the image's long side
# Crops per network batch: its 24 heatmaps of 64^3 take about 25 MB per crop in float32.
NETWORK_BATCH = {"cuda": 64, "mps": 8, "cpu": 8}  # mps: not measured (no Mac here)


@dataclasses.dataclass
class Motion:
    """One person's motion: the motion file's arrays, the track it came from (its identity,
    numbered from 0 in order of appearance) and how many frames had them."""

    arrays: dict[str, np.ndarray]
    track: int
    valid_frames: int


@dataclasses.dataclass
class Estimated:
    """What `estimate_motion` found: one Motion per person asked for (`--person`: one;
    `--people all`: everyone, numbered by first appearance), how many people were seen in all,
    the frame count and the seconds spent per stage (decode, landmarks, network, ik; the
    writer adds write)."""

    people: list[Motion]
    people_found: int
    frames: int
    seconds: dict[str, float]

    def summary(self, files: list[str] | None = None) -> dict:
        """The `result` event's summary; `files`: the motion files written under `--people all`."""
        summary = {"frames": self.frames, "valid_frames": max(m.valid_frames for m in self.people),
                   "people_found": self.people_found,
                   "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}
        if files is None:
            summary["track"] = self.people[0].track
        else:
            summary["people"] = [{"file": name, "track": m.track, "valid_frames": m.valid_frames}
                                 for name, m in zip(files, self.people)]
        return summary


def estimate(
    inputs: Sequence[Path], output: Path, events: Events, options: EstimateOptions = EstimateOptions()
) -> dict:
    """Estimate SMPL motion from photos, an image folder or a video; write the motion file
    (`--people all`: the folder of one motion file per person).

    Returns the summary also sent with the `result` event.
    """
    check_options(options)
    everyone = options.people == "all"
    (check_people_output if everyone else check_output)(output)
    estimated = estimate_motion(inputs, events, options)
    began = time.perf_counter()
    files = None
    if everyone:
        files = write_people(output, [motion.arrays for motion in estimated.people])
    else:
        write_motion(output, estimated.people[0].arrays)
    estimated.seconds["write"] = time.perf_counter() - began
    summary = estimated.summary(files)
    events.emit("result", path=str(output), summary=summary)
    return summary


def check_options(options: EstimateOptions) -> torch.device:
    """The usage errors `estimate` reports before any work, and the torch device."""
    _check_options(options)
    return _device(options.device)


def estimate_motion(inputs: Sequence[Path], events: Events, options: EstimateOptions,
                    network: IkolNetFrontEnd | None = None) -> Estimated:
    """Everything `estimate` does but writing files: each wanted person's motion arrays.

    Emits `start`, `progress`, `people` and `warning` events (not `result`). `network`: an
    IKOL network front end already loaded for these options (a batch worker keeps one), else
    it is loaded here when `options.front_end` is "ikol". The caller has checked `options`
    (`check_options`).
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
    frame_rate = source.fps / options.stride if is_video else STILL_FRAME_RATE
    total = source.frame_count or 0
    events.emit("start", frames=total, front_end=options.front_end, device=device.type)
    if source.fps_note:
        events.emit("warning", code="frame_rate", message=source.fps_note)
    if network is not None and network.checkpoint_note:
        events.emit("warning", code="checkpoint_unused_keys", message=network.checkpoint_note)

    # The network places its joints through a camera before the focal length can be fitted.
    camera = intrinsics(*source.frame_size, fov_deg=options.fov_deg or DEFAULT_FOV_DEG,
                        focal_px=options.focal_px)
    people = _PeopleLog(network, camera, options, frame_rate)
    frame_index: list[int] = []
    began = time.perf_counter()
    frames = iter(source)
    # Photos get a second, mirrored look (MirroredPass); a clip gets its neighbouring frames
    # instead: there the mirrored pass halved the speed and changed no measure (docs/accuracy.md).
    with PeopleTracker(frame_rate) as tracker, (nullcontext() if is_video else MirroredPass()) as mirror:
        while True:
            with clock("decode"):
                frame = next(frames, None)
            if frame is None:
                break
            with clock("landmarks"):
                small, scale = downscaled(frame.rgb)
                seen = tracker.update(small)
                people.choose(tracker)
                for track, marks in seen.items():
                    if people.wanted(track) and mirror is not None:
                        seen[track] = mirror.averaged(small, marks)
            frame_index.append(frame.index)
            with clock("network" if network is not None else "landmarks"):
                people.add(frame.rgb, {track: _full_resolution(marks, scale)
                                       for track, marks in seen.items() if people.wanted(track)})
            done = len(frame_index)
            events.emit("progress", done=done, total=max(total, done),
                        frames_per_s=done / (time.perf_counter() - began))
    if source.damage_note:
        events.emit("warning", code="damaged_input", message=source.damage_note)
    if network is not None:
        with clock("network"):
            people.flush()

    tracks = stitched(tracker.tracks, frame_rate)
    chosen = _chosen(tracks, options, frame_rate, is_video, people.chosen)
    events.emit("people", found=len(tracks), tracks=[t.identity for t in chosen],
                people=options.people, person=options.person if options.people == "one" else None,
                message=_people_message(tracks, chosen, options))
    motions = []
    for number, track in enumerate(chosen):
        seen = people.observations(track, frame_index)
        missing = [int(frame_index[i]) for i in np.flatnonzero(~seen.valid)]
        if missing:
            who = f"Person {number}" if options.people == "all" else f"Person {options.person}"
            events.emit("warning", code="person_unseen", track=track.identity,
                        message=f"{who} was not seen in {len(missing)} of {len(frame_index)} "
                                f"frame(s) ({frame_spans(missing)}): {_FILLED[options.fill]}.")
        motions.append((track, seen))
    with clock("ik"):
        camera = _camera([seen for _, seen in motions], *source.frame_size, options)
        out = [Motion(_person_arrays(body, seen, camera, device, frame_rate if is_video else None,
                                     options, source, inputs), track.identity, int(seen.valid.sum()))
               for track, seen in motions]
    return Estimated(out, len(tracks), len(frame_index), dict(clock.seconds))


_FILLED = {"none": "those frames have the rest pose", "hold": "those frames hold the last pose",
           "interpolate": "those frames are interpolated"}


def _chosen(tracks: list[Track], options: EstimateOptions, frame_rate: float,
            is_video: bool, chosen_at_start: int | None) -> list[Track]:
    """The tracks to make motion of (`--people one`: the track that holds the one chosen when
    the start was over, if it was); BackendError `no_person` when there are none."""
    if options.people == "all":
        chosen = everyone(tracks, frame_rate, stills=not is_video)
        if not chosen:
            raise BackendError("no_person", "No person was found in the input." if not tracks
                               else f"No person stayed in view for {MIN_TRACK_S:g} s or more "
                                    f"({len(tracks)} seen only briefly).")
        return chosen
    if chosen_at_start is not None:
        return [next(t for t in tracks if chosen_at_start in t.parts)]
    ranked = ranked_at_start(tracks, frame_rate)
    if not ranked:
        raise BackendError("no_person", "No person was found in the input.")
    if options.person >= len(ranked):
        found = len(ranked)
        later = len(tracks) - found
        raise BackendError("no_person", (
            f"Person {options.person} was asked for (0 is the largest), but only {found} "
            f"{'person was' if found == 1 else 'people were'} found at the start"
            + (f" ({later} more came later: --people all makes motion of everyone)." if later else ".")))
    return [ranked[options.person]]


def _people_message(tracks: list[Track], chosen: list[Track], options: EstimateOptions) -> str:
    found = len(tracks)
    counted = f"{found} {'person' if found == 1 else 'people'} found"
    if options.people == "all":
        return f"{counted}; motion for {len(chosen)} of them (tracks {', '.join(str(t.identity) for t in chosen)})."
    return (f"{counted}; following person {options.person} (track {chosen[0].identity}, "
            f"{len(chosen[0].frames)} frame(s)).")


class _PeopleLog:
    """Each followed track's observations, frame by frame (None where they are not seen).

    Under `--people one`, every track is logged until the start is over (START_S after the
    first sighting); then the others of the start are dropped, and the chosen person's track
    and those that begin later (which may turn out to continue it: `person.stitched`) go on.
    """

    def __init__(self, network: IkolNetFrontEnd | None, camera: np.ndarray,
                 options: EstimateOptions, frame_rate: float):
        self.network, self.camera, self.options, self.frame_rate = network, camera, options, frame_rate
        self.logs: dict[int, ObservationLog] = {}
        self.batches: dict[int, NetworkBatches] = {}
        self.frames = 0
        self.chosen: int | None = None  # the track chosen once the start is over (--people one)
        self.dropped: set[int] = set()  # the start's other tracks, no longer logged

    def choose(self, tracker: PeopleTracker) -> None:
        """Under `--people one`, pick the person once the start is over; the others' logs go."""
        if self.options.people != "one" or self.chosen is not None or not tracker.tracks:
            return
        first = min(t.first_frame for t in tracker.tracks)
        if tracker.frame >= first + max(1, round(START_S * self.frame_rate)):
            ranked = ranked_at_start(tracker.tracks, self.frame_rate)
            if self.options.person < len(ranked):
                self.chosen = ranked[self.options.person].identity
                self.dropped = {t.identity for t in ranked if t.identity != self.chosen}
                self.logs = {k: log for k, log in self.logs.items() if k not in self.dropped}
                self.batches = {k: b for k, b in self.batches.items() if k not in self.dropped}

    def wanted(self, track: int) -> bool:
        return track not in self.dropped

    def add(self, rgb: np.ndarray, seen: dict[int, PoseLandmarks]) -> None:
        """One frame: the wanted people's landmarks in the full-resolution (H, W, 3) frame."""
        for track, marks in seen.items():
            if track not in self.logs:
                self.logs[track] = log = ObservationLog()
                for frame in range(self.frames):
                    log.add(frame, None)
                if self.network is not None:
                    self.batches[track] = NetworkBatches(self.network, self.camera, log)
        for track, log in self.logs.items():
            marks = seen.get(track)
            if marks is None:
                log.add(self.frames, None)
            elif self.network is None:
                log.add(self.frames, landmark_row(marks))
            else:
                self.batches[track].add(self.frames, rgb, marks)
        self.frames += 1

    def flush(self) -> None:
        for batches in self.batches.values():
            batches.run()

    def observations(self, track: Track, frame_index: list[int]) -> Observations:
        """The track's observations over all frames (a stitched track's parts never share a
        frame), with the frames' source indices."""
        log = ObservationLog()
        for frame in range(self.frames):
            log.add(frame, next((self.logs[part].rows[frame] for part in track.parts
                                 if part in self.logs and self.logs[part].rows[frame] is not None),
                                None))
        seen = log.finish([row is not None for row in log.rows])
        return dataclasses.replace(seen, frame_index=np.asarray(frame_index, dtype=np.int32))


def _person_arrays(body: BodyModel, seen: Observations, camera: np.ndarray, device: torch.device,
                   frame_rate: float | None, options: EstimateOptions, source,
                   inputs: Sequence[Path]) -> dict[str, np.ndarray]:
    """One person's motion file arrays: gaps filled, smoothed, shape and poses solved.
    `frame_rate`: the clip's (None for stills)."""
    prepared = _prepared(seen, frame_rate, options)
    solved = seen.valid if options.fill == "none" else np.ones_like(seen.valid)
    if options.front_end == "default":
        prepared = _seen_by_the_camera(prepared, camera)
    arrays = _solve(body, prepared, solved, camera, device, frame_rate, options.smooth)
    return {
        **arrays,
        "gender": np.array(body.gender),
        "mocap_framerate": np.float64(frame_rate or STILL_FRAME_RATE),
        "valid": seen.valid,
        "frame_index": seen.frame_index,
        "keypoints_2d": seen.keypoints_2d.astype(np.float32),
        "camera_intrinsics": camera.astype(np.float32),
        "image_size": np.array(source.frame_size, dtype=np.int32),
        "source": np.array(str(inputs[0]) if len(inputs) == 1 else str(Path(inputs[0]).parent)),
        "body_model": np.array(body.name),
        "front_end": np.array(options.front_end),
    }


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
    if options.people not in PEOPLE:
        raise BackendError("bad_option", f"--people must be one of {', '.join(PEOPLE)}, "
                                         f"not {options.people!r}")
    if options.front_end not in FRONT_ENDS:
        raise BackendError("bad_option", f"Unknown front end {options.front_end!r}; "
                                         f"choose from {', '.join(FRONT_ENDS)}.")
    if options.front_end == "ikol" and options.checkpoint is None:
        raise BackendError("bad_option", "The ikol front end needs the network's weights: "
                                         "--checkpoint FILE.")


def _device(name: str) -> torch.device:
    """The torch device for one of DEVICES: "auto" is CUDA, else Apple's GPU (MPS), else the
    CPU; a clear error when the GPU asked for is missing."""
    if name not in DEVICES:
        raise BackendError("bad_option", f"Unknown device {name!r}; choose from {', '.join(DEVICES)}.")
    present = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(),
               "cpu": True}
    if name == "auto":
        return torch.device(next(device for device, found in present.items() if found))
    if not present[name]:
        raise BackendError("bad_option", f"--device {name} was asked for, but torch sees no "
                                         f"{name.upper()} device here (run `ikol-backend doctor`).")
    return torch.device(name)


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
    `solved` keep the rest pose at the origin. Poses: `_fit_frames`, in batches of IK_BATCH;
    in a clip, neighbouring batches share IK_OVERLAP frames, which fade from the earlier
    batch's solution into the later one's (`_faded_in`), so the motion stays coupled in time
    across the batches.
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
    overlap = IK_OVERLAP if frame_rate is not None else 0
    for start in range(0, len(rows), IK_BATCH - overlap):
        batch = rows[start:start + IK_BATCH]
        fitted = _fit_frames(body, seen, batch, betas, camera, weights, temporal=frame_rate is not None)
        rotmats, points, place = (x.double().cpu() for x in (fitted.rotmats, fitted.points, fitted.position))
        if start > 0:
            shared = batch[:overlap]
            rotmats[:overlap], points[:overlap], place[:overlap] = _faded_in(
                (roma.rotvec_to_rotmat(torch.as_tensor(poses[shared])), torch.as_tensor(posed[shared]),
                 torch.as_tensor(position[shared])), (rotmats[:overlap], points[:overlap], place[:overlap]))
        poses[batch] = roma.rotmat_to_rotvec(rotmats).numpy()
        posed[batch] = points.numpy()
        position[batch] = place.numpy()
        if start + IK_BATCH >= len(rows):
            break
    trans = position - rest[0].double().cpu().numpy()
    return {
        "poses": poses.reshape(frames, NUM_JOINTS * 3).astype(np.float32),
        "trans": trans.astype(np.float32),
        "betas": betas[0].cpu().numpy().astype(np.float32),
        "joints": posed[:, :NUM_JOINTS].astype(np.float32),
        "rest_joints": rest[:NUM_JOINTS].cpu().numpy().astype(np.float32),
    }


def _faded_in(earlier: tuple[torch.Tensor, ...], later: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Frames fitted by two IK batches: (F, 24, 3, 3) local rotations, (F, 29, 3) posed points
    and (F, 3) positions (metres) of each, faded from `earlier` into `later` over the F frames
    with a raised-cosine weight (no kink at either end); rotations along the shortest arc."""
    (rot0, points0, place0), (rot1, points1, place1) = earlier, later
    count = len(rot0)
    fade = 0.5 - 0.5 * torch.cos(math.pi * torch.arange(1, count + 1, dtype=rot0.dtype) / (count + 1))
    turn = roma.rotmat_to_rotvec(rot0.transpose(-1, -2) @ rot1)
    rotmats = rot0 @ roma.rotvec_to_rotmat(fade[:, None, None] * turn)
    return (rotmats, torch.lerp(points0, points1, fade[:, None, None]),
            torch.lerp(place0, place1, fade[:, None]))


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


def _camera(people: list[Observations], width: int, height: int,
            options: EstimateOptions) -> np.ndarray:
    """The intrinsics: from --focal or --fov when given; else the focal length fitted to the
    people's valid frames' 3D targets and 2D keypoints (`ik.image_fit.fit_focal`; one camera
    for everyone), with a prior at DEFAULT_FOV_DEG."""
    if options.focal_px is not None or options.fov_deg is not None:
        return intrinsics(width, height, fov_deg=options.fov_deg or DEFAULT_FOV_DEG,
                          focal_px=options.focal_px)
    prior = intrinsics(width, height)
    share = max(1, FOCAL_FRAMES // len(people))
    picked = []
    for seen in people:
        rows = np.flatnonzero(seen.valid)
        rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), share)).astype(int)]
        picked.append((seen.points[rows], seen.keypoints_2d[rows]))
    points = torch.as_tensor(np.concatenate([p for p, _ in picked]), dtype=torch.float64)
    keypoints = np.concatenate([k for _, k in picked])
    evidence = ImageEvidence(torch.as_tensor(keypoints[..., :2]), torch.as_tensor(keypoints[..., 2]),
                             torch.as_tensor(prior))
    focal = fit_focal(points, evidence, prior[0, 0], FOCAL_PRIOR_SPREAD,
                      KEYPOINT_NOISE * max(width, height))
    focal = float(np.clip(focal, prior[0, 0] / FOCAL_RANGE, prior[0, 0] * FOCAL_RANGE))
    return intrinsics(width, height, focal_px=focal)
