"""`ikol-backend estimate`: frames -> person landmarks -> SMPL targets -> IK -> motion file.

Frames are streamed: only each frame's targets (29 points) are kept. Once all are in, one body
shape is fitted to the bone lengths of every frame, and the IKOL layer solves all frames in one
batch (twist-free mode, leaf points as targets). Each frame's root translation is then fitted
through the camera.
"""

import dataclasses
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .body.default_skeleton import default_skeleton
from .body.tree import NUM_JOINTS, NUM_POINTS
from .camera import fit_translation, intrinsics
from .errors import BackendError
from .events import Events
from .frontends.blazepose import BlazePose
from .frontends.blazepose_to_smpl import smpl_targets
from .ik.ikol_layer import ikol
from .ik.shape_fit import fit_betas
from .readers import FrameRange, downscaled, open_source
from .writers.motion import write_motion

STILL_FRAME_RATE = 30.0  # written for still images, which have no frame rate of their own


@dataclasses.dataclass
class _Seen:
    """What the front end gave for the frames so far (the person's, where found)."""

    frame_index: list[int] = dataclasses.field(default_factory=list)
    valid: list[bool] = dataclasses.field(default_factory=list)
    points_3d: list[np.ndarray] = dataclasses.field(default_factory=list)  # (29, 3) model frame
    keypoints_2d: list[np.ndarray] = dataclasses.field(default_factory=list)  # (29, 3) px, px, conf

    def add(self, index: int, found: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
        self.frame_index.append(index)
        self.valid.append(found is not None)
        points_3d, points_2d, confidence = found or (
            np.zeros((NUM_POINTS, 3)), np.zeros((NUM_POINTS, 2)), np.zeros(NUM_POINTS))
        self.points_3d.append(points_3d)
        self.keypoints_2d.append(np.concatenate([points_2d, confidence[:, None]], axis=1))


def estimate(
    inputs: Sequence[Path], output: Path, events: Events, fov_deg: float,
    frame_range: FrameRange = FrameRange(), focal_px: float | None = None,
) -> dict:
    """Estimate SMPL motion from photos, an image folder or a video; write the motion file.

    Returns the summary also sent with the `result` event.
    """
    seconds: dict[str, float] = defaultdict(float)
    tick = time.perf_counter()
    source = open_source(inputs, frame_range)  # checks every input before any model loads
    seconds["decode"] += time.perf_counter() - tick
    is_video = source.fps is not None
    total = source.frame_count or 0
    events.emit("start", frames=total, front_end="default", device="cpu")
    if source.fps_note:
        events.emit("warning", code="frame_rate", message=source.fps_note)

    seen = _Seen()
    began = time.perf_counter()
    with BlazePose(video=is_video) as detector:
        tick = time.perf_counter()
        for frame in source:
            seconds["decode"] += time.perf_counter() - tick
            tick = time.perf_counter()
            small, scale = downscaled(frame.rgb)
            marks = detector.detect(small)
            if marks is None:
                name = source.paths[0 if is_video else frame.index].name
                events.emit("warning", code="no_person", frame=frame.index,
                            message=f"No person found in frame {frame.index} ({name}).")
                seen.add(frame.index, None)
            else:
                seen.add(frame.index, smpl_targets(dataclasses.replace(marks, image=marks.image / scale)))
            seconds["landmarks"] += time.perf_counter() - tick
            done = len(seen.valid)
            events.emit("progress", done=done, total=max(total, done),
                        frames_per_s=done / (time.perf_counter() - began))
            tick = time.perf_counter()

    valid = np.array(seen.valid)
    if not valid.any():
        raise BackendError("no_person", "No person was found in the input.")

    tick = time.perf_counter()
    camera = intrinsics(*source.frame_size, fov_deg=fov_deg, focal_px=focal_px)
    arrays = _solve(np.stack(seen.points_3d), np.stack(seen.keypoints_2d), valid, camera)
    seconds["ik"] += time.perf_counter() - tick

    tick = time.perf_counter()
    frame_rate = source.fps / frame_range.stride if is_video else STILL_FRAME_RATE
    write_motion(output, {
        **arrays,
        "gender": np.array("neutral"),
        "mocap_framerate": np.float64(frame_rate),
        "valid": valid,
        "frame_index": np.array(seen.frame_index, dtype=np.int32),
        "keypoints_2d": np.stack(seen.keypoints_2d).astype(np.float32),
        "camera_intrinsics": camera.astype(np.float32),
        "image_size": np.array(source.frame_size, dtype=np.int32),
        "source": np.array(str(inputs[0]) if len(inputs) == 1 else str(Path(inputs[0]).parent)),
        "body_model": np.array(default_skeleton().name),
        "front_end": np.array("default"),
    })
    seconds["write"] += time.perf_counter() - tick
    summary = {
        "frames": len(valid),
        "valid_frames": int(valid.sum()),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    events.emit("result", path=str(output), summary=summary)
    return summary


def _solve(
    points_3d: np.ndarray, keypoints_2d: np.ndarray, valid: np.ndarray, camera: np.ndarray
) -> dict[str, np.ndarray]:
    """Shape, poses, translation and posed joints for all frames (float32 arrays).

    Frames without the person keep the rest pose at the origin.
    """
    body = default_skeleton()
    targets = torch.as_tensor(points_3d[valid], dtype=torch.float32)
    betas = fit_betas(body, targets, shared=True)[:1]
    rest = body.rest_points(betas)[0]
    solved = ikol(body, targets, betas=betas.expand(len(targets), -1), init="analytic")
    frames = len(valid)
    poses = np.zeros((frames, NUM_JOINTS, 3))
    poses[valid] = solved.poses().double().numpy()
    posed = np.broadcast_to(rest.double().numpy(), (frames, NUM_POINTS, 3)).copy()
    posed[valid] = solved.points.double().numpy() + rest[0].double().numpy()
    trans = np.zeros((frames, 3))
    for i in np.flatnonzero(valid):
        trans[i] = fit_translation(posed[i], keypoints_2d[i, :, :2], keypoints_2d[i, :, 2], camera)
    return {
        "poses": poses.reshape(frames, NUM_JOINTS * 3).astype(np.float32),
        "trans": trans.astype(np.float32),
        "betas": betas[0].numpy().astype(np.float32),
        "joints": (posed[:, :NUM_JOINTS] + trans[:, None]).astype(np.float32),
        "rest_joints": rest[:NUM_JOINTS].numpy().astype(np.float32),
    }
