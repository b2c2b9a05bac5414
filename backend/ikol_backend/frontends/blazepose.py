"""MediaPipe BlazePose (the full model, shipped inside the mediapipe package; runs offline)."""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

NUM_LANDMARKS = 33


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


class BlazePose:
    """BlazePose landmarker; use as a context manager.

    `video=True` follows one person across consecutive frames of one clip (MediaPipe's video
    mode; its landmark smoothing stays off: smoothing is `--smooth`'s); otherwise every frame
    is detected afresh.
    """

    def __init__(self, video: bool = False, min_detection_confidence: float = 0.5):
        os.environ.setdefault("GLOG_minloglevel", "2")
        from mediapipe.python.solutions import pose  # heavy import, kept local

        # model_complexity=1 is the "full" landmark model, the one the wheel ships.
        with _native_stderr_silenced():
            self._pose = pose.Pose(
                static_image_mode=not video,
                model_complexity=1,
                smooth_landmarks=False,
                min_detection_confidence=min_detection_confidence,
            )
        self._warmed_up = False

    def __enter__(self) -> "BlazePose":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pose.close()

    def detect(self, rgb: np.ndarray) -> PoseLandmarks | None:
        """(H, W, 3) uint8 RGB -> landmarks of the most prominent person, or None."""
        if self._warmed_up:
            result = self._pose.process(rgb)
        else:  # the first call logs TensorFlow Lite start-up notes we do not want to show
            with _native_stderr_silenced():
                result = self._pose.process(rgb)
            self._warmed_up = True
        if result.pose_world_landmarks is None or result.pose_landmarks is None:
            return None
        height, width = rgb.shape[:2]
        world = np.array(
            [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float64
        )
        image_marks = result.pose_landmarks.landmark
        image = np.array([(p.x * width, p.y * height) for p in image_marks], dtype=np.float64)
        visibility = np.array([p.visibility for p in image_marks], dtype=np.float64)
        return PoseLandmarks(world, image, visibility)


# Each landmark's index in the mirrored image: left and right swap, the nose stays.
MIRRORED = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9]
                    + [i + 1 if i % 2 else i - 1 for i in range(11, NUM_LANDMARKS)])
MIRROR_AGREEMENT = 0.1  # largest median landmark distance, as a share of the person's size


class MirroredPass:
    """A second BlazePose pass on the mirrored image, averaged with the first.

    The landmark model's errors on an image and on its mirror image are partly independent,
    so their mean is closer to the person (measured on the rendered set, docs/accuracy.md). The
    mirrored pass must find the same person: where its landmarks disagree with the first pass
    by more than MIRROR_AGREEMENT of the person's size (another person, a miss), the first pass
    is kept. Use as a context manager.
    """

    def __init__(self):
        self._pose = BlazePose()

    def __enter__(self) -> "MirroredPass":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pose.__exit__(*exc)

    def averaged(self, rgb: np.ndarray, marks: PoseLandmarks) -> PoseLandmarks:
        """The landmarks `marks` found in `rgb` (H, W, 3), averaged with the mirrored pass's."""
        mirrored = self._pose.detect(np.ascontiguousarray(rgb[:, ::-1]))
        if mirrored is None:
            return marks
        image = mirrored.image[MIRRORED]
        image[:, 0] = rgb.shape[1] - image[:, 0]
        size = np.ptp(marks.image, axis=0).max()
        if np.median(np.linalg.norm(image - marks.image, axis=1)) > MIRROR_AGREEMENT * size:
            return marks
        world = mirrored.world[MIRRORED] * np.array([-1.0, 1.0, 1.0])
        return PoseLandmarks((marks.world + world) / 2, (marks.image + image) / 2,
                             np.minimum(marks.visibility, mirrored.visibility[MIRRORED]))


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null meanwhile: MediaPipe's C++ start-up chatter."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
