"""What the front ends saw, frame by frame, gathered for the IK stage.

Each frame gets one row per kind of observation; frames without the person get zeros and
`valid` False. The `ikol` network runs on batches of crops, so its rows are reserved when a
frame is read and written when its batch has run.

Frames: the SMPL model frame (Y up, Z towards the camera), metres; image pixels (origin top-left,
y down).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import roma
import torch

from .body.tree import NUM_JOINTS, NUM_POINTS
from .frontends.blazepose import PoseLandmarks
from .frontends.blazepose_to_smpl import side_vectors, smpl_targets
from .frontends.ikol_net import IkolNetFrontEnd, person_crop
from .person import landmarks_box
from .temporal import unit


@dataclass
class Observations:
    """All frames' observations as arrays (N frames).

    Attributes:
        frame_index: (N,) each frame's index in the source.
        valid: (N,) whether the person was seen.
        points: (N, P, 3) the IK targets relative to the pelvis: 29 points (default front end)
            or 24 joints (ikol).
        keypoints_2d: (N, 29, 3) x, y pixels and confidence of the 24 joints and 5 leaf points
            (the network gives no leaf points: confidence 0).
        sides: (N, 5, 4) unit side vectors of the hands, feet and head and their confidence
            (default front end), or None.
        twist: (N, 23, 2) (cos, sin) twist of joints 1-23 (ikol), or None.
        leaf_quats: (N, 5, 4) unit quaternions (x, y, z, w) of the leaf joints in the IK
            layer's order (ikol), or None.
        betas: (N, 10) SMPL shape per frame (ikol), or None.
    """

    frame_index: np.ndarray
    valid: np.ndarray
    points: np.ndarray
    keypoints_2d: np.ndarray
    sides: np.ndarray | None = None
    twist: np.ndarray | None = None
    leaf_quats: np.ndarray | None = None
    betas: np.ndarray | None = None

    def per_frame(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) of every per-frame observation there is, frame_index and valid aside."""
        for name in ("points", "keypoints_2d", "sides", "twist", "leaf_quats", "betas"):
            value = getattr(self, name)
            if value is not None:
                yield name, value


class ObservationLog:
    """Rows of observations in frame order; `finish()` stacks them into Observations."""

    def __init__(self) -> None:
        self.frame_index: list[int] = []
        self.rows: list[dict[str, np.ndarray] | None] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, frame_index: int, row: dict[str, np.ndarray] | None) -> int:
        """Append a frame (None: no person, or not known yet); returns its position."""
        self.frame_index.append(frame_index)
        self.rows.append(row)
        return len(self.rows) - 1

    def finish(self, valid: list[bool]) -> Observations:
        kinds = next((row for row in self.rows if row is not None), None)
        if kinds is None:
            raise ValueError("no frame has observations")
        stacked = {
            name: np.stack([row[name] if row is not None else np.zeros_like(example)
                            for row in self.rows])
            for name, example in kinds.items()
        }
        return Observations(np.array(self.frame_index, dtype=np.int32), np.array(valid), **stacked)


def landmark_row(marks: PoseLandmarks) -> dict[str, np.ndarray]:
    """The default front end's observations of one person (image landmarks in pixels)."""
    points_3d, points_2d, confidence = smpl_targets(marks)
    sides, side_confidence = side_vectors(marks)
    return {
        "points": points_3d - points_3d[:1],
        "keypoints_2d": np.concatenate([points_2d, confidence[:, None]], axis=1),
        "sides": np.concatenate([unit(sides), side_confidence[:, None]], axis=1),
    }


class NetworkBatches:
    """Person crops waiting for the IKOL network; each batch's rows go into the log."""

    def __init__(self, network: IkolNetFrontEnd, camera: np.ndarray, log: ObservationLog):
        self.network = network
        self.camera = camera
        self.log = log
        self.waiting: list[tuple[int, np.ndarray, np.ndarray]] = []  # position, crop, affine

    def add(self, frame_index: int, rgb: np.ndarray, marks: PoseLandmarks) -> None:
        """Queue the person's crop from the full-resolution frame (landmarks in its pixels)."""
        box = landmarks_box(marks)
        crop, crop_to_image = person_crop(rgb, (box.x0, box.y0, box.x1, box.y1))
        self.waiting.append((self.log.add(frame_index, None), crop, crop_to_image))
        if len(self.waiting) >= self.network.batch_size:
            self.run()

    def run(self) -> None:
        """Run the network on the waiting crops and fill in their rows."""
        if not self.waiting:
            return
        positions, crops, affines = zip(*self.waiting)
        self.waiting = []
        found = self.network.estimate(np.stack(crops), np.stack(affines), self.camera)
        quats = roma.rotmat_to_unitquat(torch.as_tensor(found.leaf_rotmats, dtype=torch.float64)).numpy()
        leaf_2d = np.zeros((len(positions), NUM_POINTS - NUM_JOINTS, 3))
        for i, position in enumerate(positions):
            seen_2d = np.concatenate([found.keypoints_2d[i], np.ones((NUM_JOINTS, 1))], axis=1)
            self.log.rows[position] = {
                "points": found.joints[i].astype(np.float64),
                "keypoints_2d": np.concatenate([seen_2d, leaf_2d[i]]),
                "twist": found.twist[i].astype(np.float64),
                "leaf_quats": quats[i],
                "betas": found.betas[i].astype(np.float64),
            }
