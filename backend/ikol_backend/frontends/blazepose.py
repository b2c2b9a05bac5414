"""MediaPipe BlazePose (the full model, shipped inside the mediapipe package; runs offline).

BlazePose runs through MediaPipe's Tasks pose landmarker, which finds several people at once
and marks each on their own crop (the person detector's box, then the landmark model inside
it). The Tasks landmarker reads a model bundle; the package ships the two models it holds
(`modules/pose_detection`, `modules/pose_landmark`) without the metadata the Tasks graph wants
(how input pixels are scaled), so the bundle is assembled in memory on first use, with that
metadata written by MediaPipe's own metadata writer: nothing is downloaded.
"""

import contextlib
import functools
import io
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_LANDMARKS = 33
MAX_PEOPLE = 6  # people one look at an image can report
# MediaPipe's native notes on file descriptor 2: absl's info and warning lines ("W0000 ...
# Feedback manager ...") and TensorFlow Lite's ("INFO: Created TensorFlow Lite XNNPACK ...").
NATIVE_NOTE = re.compile(rb"[IW]\d{4} |INFO: |WARNING: All log messages before absl::InitializeLog")


@dataclass(frozen=True)
class PoseLandmarks:
    """BlazePose output for one person in one frame.

    Attributes:
        world: (33, 3) metres, MediaPipe's world frame: origin between the hips, x to the
            image's right, y down, z away from the camera.
        image: (33, 2) pixel coordinates (x right, y down, origin at the top-left corner).
        visibility: (33,) in [0, 1].
    """

    world: np.ndarray
    image: np.ndarray
    visibility: np.ndarray

    def moved(self, dx: float, dy: float) -> "PoseLandmarks":
        """The same landmarks with the image points moved by (dx, dy) pixels."""
        return PoseLandmarks(self.world, self.image + (dx, dy), self.visibility)


class BlazePose:
    """BlazePose landmarker; use as a context manager.

    `detect_all(rgb)` gives everyone it sees in the image (up to `max_people`), most prominent
    first; `detect(rgb)` the most prominent person only. `video=True` follows people across
    consecutive frames of one clip (MediaPipe's video mode: each call is the next frame);
    otherwise every image is looked at afresh. `min_presence`: the landmark model's confidence
    that a person is in its crop, below which they are dropped (in video: no longer followed).
    No landmark smoothing (that is `--smooth`'s).
    """

    def __init__(self, video: bool = False, min_detection_confidence: float = 0.5,
                 max_people: int = MAX_PEOPLE, min_presence: float = 0.5):
        from mediapipe.tasks.python import BaseOptions, vision  # heavy import, kept local

        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=_model_bundle()), running_mode=mode,
            num_poses=max_people, min_pose_detection_confidence=min_detection_confidence,
            min_pose_presence_confidence=min_presence, min_tracking_confidence=min_presence)
        with _native_notes_dropped():
            self._landmarker = vision.PoseLandmarker.create_from_options(options)
        self._video = video
        self._frames = 0
        self._started = False  # the first call starts the graph, with notes of its own

    def __enter__(self) -> "BlazePose":
        return self

    def __exit__(self, *exc: object) -> None:
        self._landmarker.close()

    def detect(self, rgb: np.ndarray) -> PoseLandmarks | None:
        """(H, W, 3) uint8 RGB -> landmarks of the most prominent person, or None."""
        people = self.detect_all(rgb)
        return people[0] if people else None

    def detect_all(self, rgb: np.ndarray) -> list[PoseLandmarks]:
        """(H, W, 3) uint8 RGB -> landmarks of everyone seen, most prominent first."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with contextlib.nullcontext() if self._started else _native_notes_dropped():
            if self._video:  # timestamps only need to grow: one millisecond a frame
                result = self._landmarker.detect_for_video(image, self._frames)
                self._frames += 1
            else:
                result = self._landmarker.detect(image)
        self._started = True
        height, width = rgb.shape[:2]
        people = []
        for marks, world in zip(result.pose_landmarks, result.pose_world_landmarks):
            people.append(PoseLandmarks(
                world=np.array([(p.x, p.y, p.z) for p in world], dtype=np.float64),
                image=np.array([(p.x * width, p.y * height) for p in marks], dtype=np.float64),
                visibility=np.array([p.visibility for p in marks], dtype=np.float64)))
        return people


@functools.cache
def _model_bundle() -> bytes:
    """The Tasks model bundle (a zip of the detector and the landmark model) made from the
    models inside the mediapipe package, with the input scaling the Tasks graph reads from
    their metadata: the detector takes pixels in [-1, 1], the landmark model in [0, 1]."""
    import mediapipe
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

    modules = Path(mediapipe.__file__).parent / "modules"

    def described(model: Path, mean: float, std: float) -> bytes:
        buffer = bytearray(model.read_bytes())
        writer = (metadata_writer.MetadataWriter.create(buffer).add_general_info(model.stem)
                  .add_image_input([mean], [std]))
        for _ in writer_utils.get_output_tensor_types(buffer):
            writer.add_feature_output()
        return bytes(writer.populate()[0])

    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("pose_detector.tflite", described(
            modules / "pose_detection" / "pose_detection.tflite", 127.5, 127.5))
        archive.writestr("pose_landmarks_detector.tflite", described(
            modules / "pose_landmark" / "pose_landmark_full.tflite", 0.0, 255.0))
    return bundle.getvalue()


# Each landmark's index in the mirrored image: left and right swap, the nose stays.
MIRRORED = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9]
                    + [i + 1 if i % 2 else i - 1 for i in range(11, NUM_LANDMARKS)])
MIRROR_AGREEMENT = 0.1  # largest median landmark distance, as a share of the person's size


class MirroredPass:
    """A second BlazePose pass on the mirrored image, averaged with the first.

    The landmark model's errors on an image and on its mirror image are partly independent,
    so their mean is closer to the person (measured on the rendered set, docs/accuracy.md). The
    mirrored pass must find the same person: where no one's landmarks there agree with the
    first pass's within MIRROR_AGREEMENT of the person's size (another person, a miss), the
    first pass is kept. Use as a context manager.
    """

    def __init__(self):
        self._pose = BlazePose()

    def __enter__(self) -> "MirroredPass":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pose.__exit__(*exc)

    def averaged(self, rgb: np.ndarray, marks: PoseLandmarks) -> PoseLandmarks:
        """The landmarks `marks` found in `rgb` (H, W, 3), averaged with those of the same
        person in the mirrored image (of everyone seen there, the one closest to `marks`)."""
        size = np.ptp(marks.image, axis=0).max()
        best, best_distance = None, MIRROR_AGREEMENT * size
        for mirrored in self._pose.detect_all(np.ascontiguousarray(rgb[:, ::-1])):
            image = mirrored.image[MIRRORED]
            image[:, 0] = rgb.shape[1] - image[:, 0]
            distance = np.median(np.linalg.norm(image - marks.image, axis=1))
            if distance <= best_distance:
                best, best_distance = (mirrored, image), distance
        if best is None:
            return marks
        mirrored, image = best
        world = mirrored.world[MIRRORED] * np.array([-1.0, 1.0, 1.0])
        return PoseLandmarks((marks.world + world) / 2, (marks.image + image) / 2,
                             np.minimum(marks.visibility, mirrored.visibility[MIRRORED]))


@contextlib.contextmanager
def _native_notes_dropped() -> Iterator[None]:
    """Meanwhile, catch what is written to file descriptor 2 (MediaPipe's C++ code writes there
    directly), then pass it on without the lines that are NATIVE_NOTEs: errors stay visible."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True) if not NATIVE_NOTE.match(line)]
            if kept:
                os.write(2, b"".join(kept))
