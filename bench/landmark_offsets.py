"""Measure where the SMPL joints sit relative to BlazePose's landmarks: the offsets
`TORSO_OFFSETS` and `LIMB_OFFSETS` in `ikol_backend/frontends/blazepose_to_smpl.py`.

On calibration stills rendered like the accuracy set's but apart from it (`bench/accuracy.py`'s
generator, indices 100-179: other bodies, poses and cameras than the 100 measured stills),
BlazePose runs as `estimate` runs it (static mode, averaged with its mirrored pass). The
offsets are then the linear least-squares fit of

    true image joint - landmark = s * (offset in the body's directions)[x, y]

over the twelve limb joints of every still (s: `pixels_per_metre`; the directions:
`torso_directions` for shoulders and hips, `limb_direction` for the rest), each still's
residuals in units of its image height. Prints the fitted table (metres) and the landmarks'
2D error before and after, on the calibration stills and on the measured ones.

    .venv/bin/python bench/landmark_offsets.py            # renders what is missing first
    .venv/bin/python bench/landmark_offsets.py --first 100 --count 80

Rendering (anny and bpy, both in requirements.txt) takes about 30 s a still on 2 cores.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402  (the set's cache, renders and truth)

from ikol_backend.frontends.blazepose import BlazePose, MirroredPass, PoseLandmarks  # noqa: E402
from ikol_backend.frontends.blazepose_to_smpl import (  # noqa: E402
    LANDMARK_INDEX, LIMB_OFFSETS, TORSO_OFFSETS, joint_centres, limb_direction,
    pixels_per_metre, torso_directions,
)
from ikol_backend.readers import downscaled, open_source  # noqa: E402

SIDES = ("left", "right")
# The accuracy set's twelve limb joints, in its order (accuracy.LIMB_NAMES).
JOINTS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
LIMB_ORDER = [f"{side}_{joint}" for joint in JOINTS for side in SIDES]
PARAMETERS = [(j, k) for j in TORSO_OFFSETS for k in range(3)] + [(j, 0) for j in LIMB_OFFSETS]


def landmarks(media: Path, detector: BlazePose, mirror: MirroredPass) -> tuple[PoseLandmarks | None, int]:
    """BlazePose on one still as `estimate` sees it; (landmarks at full resolution, height)."""
    frame = next(iter(open_source([media])))
    small, scale = downscaled(frame.rgb)
    marks = detector.detect(small)
    if marks is not None:
        marks = mirror.averaged(small, marks)
    if marks is None:
        return None, frame.rgb.shape[0]
    return PoseLandmarks(marks.world, marks.image / scale, marks.visibility), frame.rgb.shape[0]


def design(marks: PoseLandmarks) -> np.ndarray:
    """(12, 2, P) pixels per metre of each parameter, for each limb joint's image position."""
    s = pixels_per_metre(marks.world, marks.image)
    left, up, forward = torso_directions(marks.world)
    rows = np.zeros((len(LIMB_ORDER), 2, len(PARAMETERS)))
    for row, name in enumerate(LIMB_ORDER):
        side, joint = name.split("_")
        outward = left if side == "left" else -left
        for col, (part, k) in enumerate(PARAMETERS):
            if part != joint:
                continue
            direction = (outward, up, forward)[k] if joint in TORSO_OFFSETS else limb_direction(
                marks.world, side, joint)
            rows[row, :, col] = s * direction[:2]
    return rows


def limb_landmarks(image: np.ndarray) -> np.ndarray:
    return image[[LANDMARK_INDEX[name] for name in LIMB_ORDER]]


def error_percent(image: np.ndarray, truth: np.ndarray, height: int) -> float:
    return float(np.linalg.norm(limb_landmarks(image) - truth, axis=1).mean() / height * 100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=int, default=100, help="first calibration still (default 100)")
    p.add_argument("--count", type=int, default=80, help="calibration stills (default 80)")
    p.add_argument("--measured", type=int, default=accuracy.STILLS,
                   help="also report on the first N measured stills (default all)")
    args = p.parse_args(argv)
    cache = accuracy.default_cache()
    calibration = [accuracy.still_name(i) for i in range(args.first, args.first + args.count)]
    measured = [accuracy.still_name(i) for i in range(args.measured)]
    if accuracy.missing(cache, calibration + measured):
        accuracy.render_set(cache, calibration + measured, threads=2, rebuild=False)

    def observe(names: list[str]) -> list[tuple[PoseLandmarks, np.ndarray, int]]:
        seen = []
        with BlazePose() as detector, MirroredPass() as mirror:
            for name in names:
                item = accuracy.load_item(*accuracy.item_paths(cache, name), name=name)
                marks, height = landmarks(item.media, detector, mirror)
                if marks is not None:
                    seen.append((marks, item.joints_2d[0], height))
        return seen

    train, test = observe(calibration), observe(measured)
    normal = np.zeros((len(PARAMETERS),) * 2)
    rhs = np.zeros(len(PARAMETERS))
    for marks, truth, height in train:
        a = design(marks).reshape(-1, len(PARAMETERS)) / height
        b = (truth - limb_landmarks(marks.image)).reshape(-1) / height
        normal += a.T @ a
        rhs += a.T @ b
    fitted = np.linalg.solve(normal, rhs)
    print(f"calibration stills {args.first}-{args.first + args.count - 1}: {len(train)} with the "
          f"person found; measured stills: {len(test)}\n")
    print("TORSO_OFFSETS (outward, up, forward), metres:")
    for joint in TORSO_OFFSETS:
        values = [fitted[PARAMETERS.index((joint, k))] for k in range(3)]
        print(f"    {joint!r}: ({values[0]:.3f}, {values[1]:.3f}, {values[2]:.3f}),")
    print("LIMB_OFFSETS (along the limb), metres:")
    for joint, (above, _) in LIMB_OFFSETS.items():
        print(f"    {joint!r}: ({above!r}, {fitted[PARAMETERS.index((joint, 0))]:.3f}),")
    print("\n| stills | landmarks, 2D % of height | moved to the joint centres (the module's offsets) |")
    print("|---|---:|---:|")
    for label, seen in (("calibration", train), ("measured", test)):
        before = np.mean([error_percent(m.image, t, h) for m, t, h in seen])
        after = np.mean([error_percent(joint_centres(m)[1], t, h) for m, t, h in seen])
        print(f"| {label} | {before:.3f} | {after:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
