"""Headless entry: photos or video in, .blend with an animated SMPL body out.

    blender --background --python ikol_blender/cli.py -- --input PHOTO --output scene.blend
    python ikol_blender/cli.py --input PHOTO --output scene.blend   (a Python with the bpy module)
    python ikol_blender/cli.py --demo   (the bundled sample photo, writing out/)

The same path as the Estimate Pose operator: the backend job (job.py), then the scene with the
matched camera and the footage behind it (scene/estimated.py); then, if asked, a render over
the footage and an FBX or BVH export through Blender's own exporters. Every output appears
whole or not at all. Exits 0 on success and 1 on failure, with the reason on stderr (2 for
bad arguments).
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

from .backend_process import REPO_ROOT, BackendFailed, EstimateOptions
from .body_file import BodyFileError
from .job import EstimateJob
from .motion import MotionFileError

SAMPLE_PHOTO = REPO_ROOT / "samples" / "person.png"
DEMO_OUT = Path("out")
EXPORT_SUFFIXES = (".fbx", ".bvh")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ikol_blender/cli.py", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, nargs="+",
                        help="photo(s), an image folder or a movie file of a person")
    parser.add_argument("--output", type=Path, help=".blend file to write")
    parser.add_argument("--motion", type=Path, help="motion file to write (default: beside --output)")
    estimate = parser.add_argument_group("estimation")
    estimate.add_argument("--front-end", choices=("default", "ikol"), default="default",
                          help="default: BlazePose; ikol: the IKOL network (needs --checkpoint)")
    estimate.add_argument("--start", type=int, default=0, help="first source frame (from 0)")
    estimate.add_argument("--stop", type=int, help="source frame to stop before (default: the end)")
    estimate.add_argument("--stride", type=int, default=1, help="use every Nth frame")
    estimate.add_argument("--smooth", type=float, default=0.0,
                          help="temporal smoothing, 0 (raw, default) to 1 (heavy)")
    estimate.add_argument("--fov", type=float, help="camera field of view across the long side, degrees")
    estimate.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    estimate.add_argument("--smpl", type=Path, help="SMPL model file (.npz or .pkl) for the body")
    estimate.add_argument("--checkpoint", type=Path, help="IKOL network weights (.pth)")
    estimate.add_argument("--flip-test", action="store_true",
                          help="IKOL network: also run the mirrored crop and average")
    estimate.add_argument("--half", action="store_true", help="IKOL network in float16 (CUDA)")
    estimate.add_argument("--person", type=int, default=0,
                          help="which person: 0 = the largest at the start (default), 1 = the next")
    estimate.add_argument("--fill", choices=("none", "hold", "interpolate"), default="interpolate",
                          help="frames without the person: rest pose, last pose, or interpolated")
    scene = parser.add_argument_group("scene")
    scene.add_argument("--no-body", action="store_true", help="armature only, no body mesh")
    scene.add_argument("--shape-keys", action="store_true",
                       help="SMPL mesh with pose-corrective shape keys (needs --smpl)")
    scene.add_argument("--render", type=Path, help="write a PNG of the posed body over the footage")
    scene.add_argument("--render-frame", type=int,
                       help="the scene frame --render shows (default: the first)")
    scene.add_argument("--render-all", type=Path, metavar="FOLDER",
                       help="write every frame of the range over the footage as FOLDER/NNNN.png")
    scene.add_argument("--samples", type=int, default=16,
                       help="Cycles samples per pixel of renders (default 16; 1 is a quick look)")
    retarget = parser.add_argument_group("retargeting and export")
    retarget.add_argument("--retarget", type=Path, metavar="BLEND",
                          help="also retarget the motion onto the armature in this .blend")
    retarget.add_argument("--armature", help="that armature's object name (default: its only one)")
    retarget.add_argument("--bone-map", default="auto",
                          help="auto, mixamo, rigify, unreal_ue4, unreal_ue5, smplx, smpl or a .json map")
    retarget.add_argument("--in-place", action="store_true", help="retarget without root travel")
    retarget.add_argument("--foot-lock", action="store_true", help="pin planted feet when retargeting")
    retarget.add_argument("--export", type=Path,
                          help="write the animation as .fbx or .bvh: the retargeted armature "
                               "with --retarget, else the SMPL armature")
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
    if args.export is not None and args.export.suffix.lower() not in EXPORT_SUFFIXES:
        parser.error("--export needs a .fbx or .bvh path")
    if args.render_frame is not None and args.render is None:
        parser.error("--render-frame needs --render")
    if args.shape_keys and args.smpl is None:
        parser.error("--shape-keys needs --smpl")
    if args.samples < 1:
        parser.error("--samples must be 1 or more")
    return args


def script_args() -> list[str]:
    """Arguments meant for this script: those after `--` when Blender runs it."""
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


class SceneError(RuntimeError):
    """The scene, render or export cannot be made as asked."""


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ikol-") as work:
        staged = {"motion": Path(work) / "motion.npz", "blend": Path(work) / "scene.blend",
                  "render": Path(work) / "render.png", "render_all": Path(work) / "frames"}
        if args.export is not None:
            staged["export"] = Path(work) / f"export{args.export.suffix.lower()}"
        try:
            summary, seconds = _run(args, staged)
        except (BackendFailed, MotionFileError, BodyFileError, SceneError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        # Everything is made; only now do the outputs appear, each whole.
        _publish(staged["motion"], args.motion)
        _publish(staged["blend"], args.output)
        if args.render is not None:
            _publish(staged["render"], args.render)
        if args.render_all is not None:
            for frame in sorted(staged["render_all"].iterdir()):
                _publish(frame, args.render_all / frame.name)
        if args.export is not None:
            _publish(staged["export"], args.export)

    print(f"Person found in {summary['valid_frames']} of {summary['frames']} frame(s).")
    print(f"Motion: {args.motion}\nScene:  {args.output}")
    for label, path in (("Render", args.render), ("Frames", args.render_all),
                        ("Export", args.export)):
        if path is not None:
            print(f"{label}: {path}")
    print("Time per stage:")
    stages = {f"backend {k}": v for k, v in summary["seconds"].items()} | seconds
    for stage, value in stages.items():
        print(f"  {stage:<22} {value:7.2f} s")
    return 0


def _run(args: argparse.Namespace, staged: dict[str, Path]) -> tuple[dict, dict[str, float]]:
    """Backend, scene, render, export and .blend, all written into the staging folder."""
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    options = EstimateOptions(front_end=args.front_end, start=args.start, stop=args.stop,
                              stride=args.stride, smooth=args.smooth, fov=args.fov,
                              device=args.device, smpl=args.smpl, checkpoint=args.checkpoint,
                              person=args.person, fill=args.fill, flip_test=args.flip_test,
                              half=args.half)
    job = EstimateJob(args.input, options, mesh=not args.no_body and args.retarget is None,
                      pose_correctives=args.shape_keys)
    try:
        shown = 0
        while not job.step(timeout=0.1):
            if job.progress.done != shown:
                shown = job.progress.done
                print(f"  frame {shown}/{job.progress.total}", file=sys.stderr)
        for warning in job.progress.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        motion, body = job.motion(), job.body()
        shutil.copyfile(job.motion_path, staged["motion"])
    finally:
        job.cancel()  # ends the backend if still running (an error here); removes its folder
    seconds["backend (total)"] = time.perf_counter() - tick

    import bpy  # only now: a backend failing fast needs no Blender

    from .footage import footage_of
    from .retarget.bake import RetargetOptions
    from .retarget.bonemap import map_from_name
    from .retarget.io import append_armature, export_animation
    from .scene.estimated import SceneRequest, add_estimated
    from .scene.render import render_over_footage

    tick = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    try:
        target = append_armature(args.retarget, args.armature) if args.retarget else None
        request = SceneRequest(
            name=args.input[0].stem, body_mesh=not args.no_body,
            camera=True, footage=footage_of(args.input), target=target,
            bone_map=map_from_name(args.bone_map) if target else None,
            retarget=RetargetOptions(in_place=args.in_place, foot_lock=args.foot_lock))
        made = add_estimated(motion, request, body)
    except ValueError as exc:  # RetargetError, BoneMapError, a missing armature
        raise SceneError(f"the scene cannot be made: {exc}") from exc
    for warning in made.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    seconds["scene"] = time.perf_counter() - tick

    scene = bpy.context.scene
    if args.render is not None or args.render_all is not None:
        if made.built.camera is None:
            raise SceneError("the motion file has no camera to render through")
        tick = time.perf_counter()
        frames, outputs = [], []
        if args.render is not None:
            frame = scene.frame_start if args.render_frame is None else args.render_frame
            if not scene.frame_start <= frame <= scene.frame_end:
                raise SceneError(f"--render-frame {frame} is outside the scene's frames "
                                 f"{scene.frame_start}-{scene.frame_end}")
            frames.append(frame)
            outputs.append(staged["render"])
        if args.render_all is not None:
            staged["render_all"].mkdir()
            every = range(scene.frame_start, scene.frame_end + 1)
            frames += every
            outputs += [staged["render_all"] / f"{frame:04d}.png" for frame in every]
        try:
            render_over_footage(scene, made.built.camera, frames, outputs, args.samples)
        except ValueError as exc:  # RenderError
            raise SceneError(f"rendering failed: {exc}") from exc
        seconds["render"] = time.perf_counter() - tick

    if args.export is not None:
        tick = time.perf_counter()
        exported = target if target is not None else made.built.armature
        export_animation(exported, staged["export"])
        seconds["export"] = time.perf_counter() - tick

    tick = time.perf_counter()
    # Footage paths stay absolute: made relative to the staging folder, they would break.
    bpy.ops.wm.save_as_mainfile(filepath=str(staged["blend"]), relative_remap=False)
    seconds["save .blend"] = time.perf_counter() - tick
    return job.summary, seconds


def _publish(source: Path, target: Path) -> None:
    """Move a finished file into place: copied beside the target, then renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


if __name__ == "__main__":
    sys.exit(main(script_args()))
