"""Headless entry: photo in, .blend with an animated SMPL armature out.

    blender --background --python ikol_blender/cli.py -- --input PHOTO --output scene.blend
    python ikol_blender/cli.py --input PHOTO --output scene.blend   (a Python with the bpy module)
    python ikol_blender/cli.py --demo   (the bundled sample photo, writing out/)

Exits 0 on success and non-zero on failure, with the reason on stderr.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the add-on importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "ikol_blender"

from .backend_process import REPO_ROOT, BackendFailed, backend_python, estimate_command, run_backend
from .motion import MotionFileError, load_motion

SAMPLE_PHOTO = REPO_ROOT / "samples" / "person.png"
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
DEMO_OUT = Path("out")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ikol_blender/cli.py", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, nargs="+",
                        help="photo(s), an image folder or a video of a person")
    parser.add_argument("--output", type=Path, help=".blend file to write")
    parser.add_argument("--motion", type=Path, help="motion file to write (default: beside --output)")
    parser.add_argument("--render", type=Path, help="also write a PNG of the posed body over the photo")
    parser.add_argument("--fov", type=float, help="camera field of view across the long side, degrees")
    parser.add_argument("--no-body", action="store_true", help="armature only, no body mesh")
    parser.add_argument("--retarget", type=Path, metavar="BLEND",
                        help="also retarget the motion onto the armature in this .blend")
    parser.add_argument("--armature", help="that armature's object name (default: its only one)")
    parser.add_argument("--bone-map", default="auto",
                        help="auto, mixamo, rigify, unreal_ue4, unreal_ue5, smplx, smpl or a .json map")
    parser.add_argument("--in-place", action="store_true", help="retarget without root travel")
    parser.add_argument("--foot-lock", action="store_true", help="pin planted feet when retargeting")
    parser.add_argument("--export", type=Path,
                        help="write the retargeted animation as .fbx or .bvh (needs --retarget)")
    parser.add_argument("--demo", action="store_true",
                        help=f"run on the bundled sample photo, writing {DEMO_OUT}/")
    args = parser.parse_args(argv)
    if args.demo:
        args.input = args.input or [SAMPLE_PHOTO]
        args.output = args.output or DEMO_OUT / "scene.blend"
        args.render = args.render or DEMO_OUT / "render.png"
    if args.input is None or args.output is None:
        parser.error("--input and --output are required (or --demo)")
    args.motion = args.motion or args.output.with_suffix(".npz")
    if args.export is not None and (args.retarget is None
                                    or args.export.suffix.lower() not in (".fbx", ".bvh")):
        parser.error("--export needs --retarget and a .fbx or .bvh path")
    if args.render is not None and (len(args.input) != 1 or args.input[0].is_dir()
                                    or args.input[0].suffix.lower() in VIDEO_SUFFIXES):
        parser.error("--render needs a single photo as --input")
    return args


def script_args() -> list[str]:
    """Arguments meant for this script: those after `--` when Blender runs it."""
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ikol-") as work:
        staged = {"motion": Path(work) / "motion.npz", "blend": Path(work) / "scene.blend",
                  "render": Path(work) / "render.png"}
        if args.export is not None:
            staged["export"] = Path(work) / f"export{args.export.suffix.lower()}"
        try:
            summary, seconds = _run(args, staged)
        except (BackendFailed, MotionFileError, SceneError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        # Everything is made; only now do the outputs appear, each whole.
        _publish(staged["motion"], args.motion)
        _publish(staged["blend"], args.output)
        if args.render is not None:
            _publish(staged["render"], args.render)
        if args.export is not None:
            _publish(staged["export"], args.export)

    print(f"Person found in {summary['valid_frames']} of {summary['frames']} frame(s).")
    print(f"Motion: {args.motion}\nScene:  {args.output}")
    if args.render is not None:
        print(f"Render: {args.render}")
    stages = {f"backend {k}": v for k, v in summary["seconds"].items()} | seconds
    print("Time per stage:")
    for stage, value in stages.items():
        print(f"  {stage:<22} {value:7.2f} s")
    return 0


class SceneError(RuntimeError):
    """The scene cannot be made from this motion."""


def _run(args: argparse.Namespace, staged: dict[str, Path]) -> tuple[dict, dict[str, float]]:
    """Backend, scene, .blend and render, all written into the staging folder."""
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    command = estimate_command(backend_python(), args.input, staged["motion"], args.fov)
    result = run_backend(command, on_event=_print_progress)
    seconds["backend (total)"] = time.perf_counter() - tick

    import bpy  # only now: a backend failing fast needs no Blender

    from .scene.build import build_scene
    from .scene.render import render_over_photo

    tick = time.perf_counter()
    motion = load_motion(staged["motion"])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    built = build_scene(motion, name=args.input[0].stem, body=not args.no_body)
    seconds["scene"] = time.perf_counter() - tick

    if args.retarget is not None:
        from .retarget.bake import RetargetOptions, retarget
        from .retarget.bonemap import map_from_name
        from .retarget.io import append_armature, export_animation

        tick = time.perf_counter()
        try:
            target = append_armature(args.retarget, args.armature)
            retarget(built.armature, target, map_from_name(args.bone_map),
                     RetargetOptions(in_place=args.in_place, foot_lock=args.foot_lock))
            if args.export is not None:
                export_animation(target, staged["export"])
        except ValueError as exc:  # RetargetError, BoneMapError, a missing armature
            raise SceneError(f"retargeting failed: {exc}") from exc
        seconds["retarget"] = time.perf_counter() - tick

    if args.render is not None:
        if built.camera is None:
            raise SceneError("the motion file has no camera to render through")
        tick = time.perf_counter()
        render_over_photo(bpy.context.scene, built.camera, args.input[0], staged["render"], frame=1)
        seconds["render"] = time.perf_counter() - tick

    tick = time.perf_counter()
    bpy.ops.wm.save_as_mainfile(filepath=str(staged["blend"]))
    seconds["save .blend"] = time.perf_counter() - tick
    return result["summary"], seconds


def _publish(source: Path, target: Path) -> None:
    """Move a finished file into place: copied beside the target, then renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _print_progress(event: dict) -> None:
    if event["event"] == "progress":
        print(f"  frame {event['done']}/{event['total']}", file=sys.stderr)
    elif event["event"] == "warning":
        print(f"warning: {event['message']}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(script_args()))
