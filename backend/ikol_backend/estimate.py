"""`ikol-backend estimate`: frames -> person landmarks -> SMPL targets -> IK -> motion file."""

import dataclasses
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import roma
import torch

from .body.default_skeleton import default_skeleton
from .body.kinematics import forward_kinematics
from .body.model import NUM_BETAS
from .body.tree import NUM_JOINTS
from .camera import fit_translation, intrinsics
from .errors import BackendError
from .events import Events
from .frontends.blazepose import BlazePose
from .frontends.blazepose_to_smpl import smpl_targets
from .ik.analytic import analytic_ik
from .readers import FrameRange, downscaled, open_source
from .writers.motion import write_motion

STILL_FRAME_RATE = 30.0  # written for still images, which have no frame rate of their own


def estimate(
    inputs: Sequence[Path], output: Path, events: Events, fov_deg: float,
    frame_range: FrameRange = FrameRange(),
) -> dict:
    """Estimate SMPL motion from photos, an image folder or a video; write the motion file.

    Returns the summary also sent with the `result` event.
    """
    seconds: dict[str, float] = defaultdict(float)
    tick = time.perf_counter()
    source = open_source(inputs, frame_range)  # checks every input before any model loads
    seconds["decode"] += time.perf_counter() - tick
    is_video = source.fps is not None
    frame_rate = source.fps / frame_range.stride if is_video else STILL_FRAME_RATE
    camera = intrinsics(*source.frame_size, fov_deg=fov_deg)
    body = default_skeleton()
    betas = torch.zeros(1, NUM_BETAS)
    rest = body.rest_points(betas)
    total = source.frame_count or 0
    events.emit("start", frames=total, front_end="default", device="cpu")
    if source.fps_note:
        events.emit("warning", code="frame_rate", message=source.fps_note)

    frames: list[dict[str, np.ndarray]] = []
    began = time.perf_counter()
    with BlazePose(video=is_video) as detector:
        tick = time.perf_counter()
        for frame in source:
            seconds["decode"] += time.perf_counter() - tick
            tick = time.perf_counter()
            small, scale = downscaled(frame.rgb)
            marks = detector.detect(small)
            seconds["landmarks"] += time.perf_counter() - tick
            if marks is None:
                name = source.paths[frame.index].name if not is_video else source.paths[0].name
                events.emit("warning", code="no_person", frame=frame.index,
                            message=f"No person found in frame {frame.index} ({name}).")
                frames.append(_invalid_frame(rest, frame.index))
            else:
                tick = time.perf_counter()
                marks = dataclasses.replace(marks, image=marks.image / scale)
                frames.append(_solve_frame(marks, rest, camera, frame.index))
                seconds["ik"] += time.perf_counter() - tick
            done = len(frames)
            events.emit("progress", done=done, total=max(total, done),
                        frames_per_s=done / (time.perf_counter() - began))
            tick = time.perf_counter()

    valid = np.array([f["valid"] for f in frames])
    if not valid.any():
        raise BackendError("no_person", "No person was found in the input.")

    tick = time.perf_counter()
    arrays = {key: np.stack([f[key] for f in frames]) for key in frames[0]}
    write_motion(output, {
        "poses": arrays["poses"].reshape(len(frames), NUM_JOINTS * 3).astype(np.float32),
        "trans": arrays["trans"].astype(np.float32),
        "betas": betas[0].numpy().astype(np.float32),
        "gender": np.array("neutral"),
        "mocap_framerate": np.float64(frame_rate),
        "joints": arrays["joints"].astype(np.float32),
        "rest_joints": rest[0, :NUM_JOINTS].numpy().astype(np.float32),
        "valid": valid,
        "frame_index": arrays["frame_index"].astype(np.int32),
        "keypoints_2d": arrays["keypoints_2d"].astype(np.float32),
        "camera_intrinsics": camera.astype(np.float32),
        "image_size": np.array(source.frame_size, dtype=np.int32),
        "source": np.array(str(inputs[0]) if len(inputs) == 1 else str(Path(inputs[0]).parent)),
        "body_model": np.array(body.name),
        "front_end": np.array("default"),
    })
    seconds["write"] += time.perf_counter() - tick
    summary = {
        "frames": len(frames),
        "valid_frames": int(valid.sum()),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    events.emit("result", path=str(output), summary=summary)
    return summary


def _solve_frame(
    marks, rest: torch.Tensor, camera: np.ndarray, index: int
) -> dict[str, np.ndarray]:
    points_3d, points_2d, confidence = smpl_targets(marks)
    target = torch.as_tensor(points_3d, dtype=rest.dtype).unsqueeze(0)
    rotmats = analytic_ik(rest, target)
    posed, _ = forward_kinematics(rotmats, rest)
    posed_np = posed[0].double().numpy()
    trans = fit_translation(posed_np, points_2d, confidence, camera)
    return {
        "frame_index": np.int32(index),
        "valid": np.bool_(True),
        "poses": roma.rotmat_to_rotvec(rotmats[0]).numpy(),
        "trans": trans,
        "joints": posed_np[:NUM_JOINTS] + trans,
        "keypoints_2d": np.concatenate([points_2d, confidence[:, None]], axis=1),
    }


def _invalid_frame(rest: torch.Tensor, index: int) -> dict[str, np.ndarray]:
    """A frame without the person: rest pose at the origin, marked invalid."""
    return {
        "frame_index": np.int32(index),
        "valid": np.bool_(False),
        "poses": np.zeros((NUM_JOINTS, 3)),
        "trans": np.zeros(3),
        "joints": rest[0, :NUM_JOINTS].double().numpy(),
        "keypoints_2d": np.zeros((rest.shape[1], 3)),
    }
