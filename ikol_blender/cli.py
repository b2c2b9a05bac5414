"""Headless entry: photos or video in, .blend with an animated SMPL body out.

    blender --background --python ikol_blender/cli.py -- --input PHOTO --output scene.blend
    python ikol_blender/cli.py --input PHOTO --output scene.blend   (a Python with the bpy module)
    python ikol_blender/cli.py --demo   (the bundled sample photo, writing out/)
    python ikol_blender/cli.py --motion walk.npz --retarget rig.blend --output walk.blend

The same path as the Estimate Pose operator: the backend job (job.py), then the scene with the
matched camera and the footage behind it (scene/estimated.py); then, if asked, a render over
the footage and an FBX or BVH export through Blender's own exporters. Without --input, an
existing motion file (--motion) is loaded instead of estimating one (then retargeted with
--retarget). Outputs are checked before any work and appear all together, each whole, or not
at all (outputs.py).

Exit codes: 0 success; 1 failure (the reason on stderr: the backend's message, a scene, render
or export that cannot be made); 2 bad arguments (also outputs that cannot be written and
--retarget or --motion files that are missing or of the wrong kind, found before any work);
4 no person found in any frame (the backend's own code); 130 interrupted (SIGINT or SIGTERM:
the backend or the render is ended and every temporary file removed).
"""

import argparse
import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as a script: make the add-on importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "ikol_blender"

from .backend_process import REPO_ROOT, BackendFailed, backend_python
from .body_file import Body, BodyFileError, export_body, load_body
from .job import EstimateJob
from .motion import Motion, MotionFileError, load_motion
from .options import NETWORK_OPTIONS, add_arguments, flag, from_arguments
from .outputs import publish, unwritable_reason

SAMPLE_PHOTO = REPO_ROOT / "samples" / "person.png"
DEMO_OUT = Path("out")
EXPORT_SUFFIXES = (".fbx", ".bvh")
EXIT_FAILED, EXIT_USAGE, EXIT_NO_PERSON, EXIT_INTERRUPTED = 1, 2, 4, 130
PROGRESS_PER_S = 4.0  # most redraws a second of the frame progress on a terminal
# How .blend files start: plain, gzip-compressed (before 3.0) or zstd-compressed (3.0 on).
BLEND_MAGICS = (b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ikol_blender/cli.py", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, nargs="+",
                        help="photo(s), an image folder or a movie file of a person")
    parser.add_argument("--output", type=Path, help=".blend file to write")
    parser.add_argument("--motion", type=Path,
                        help="with --input: the motion file to write (default: beside --output); "
                             "without: an existing motion file to use instead of estimating")
    add_arguments(parser.add_argument_group("estimation"))
    scene = parser.add_argument_group("scene")
    scene.add_argument("--no-body", action="store_true", help="armature only, no body mesh")
    scene.add_argument("--capsules", action="store_true",
                       help="a capsule per bone instead of the open body (not with --smpl)")
    scene.add_argument("--shape-keys", action="store_true",
                       help="SMPL mesh with pose-corrective shape keys (needs --smpl)")
    scene.add_argument("--render", type=Path, help="write a PNG of the posed body over the footage")
    scene.add_argument("--render-frame", type=int,
                       help="the scene frame --render shows (default: the first)")
    scene.add_argument("--render-all", type=Path, metavar="FOLDER",
                       help="write every estimated frame (with --stride, every stride-th) over "
                            "the footage as FOLDER/NNNN.png, NNNN the scene frame")
    scene.add_argument("--samples", type=int, default=16,
                       help="Cycles samples per pixel of renders (default 16; 1 is a quick look)")
    scene.add_argument("--render-scale", type=int, default=100, metavar="PERCENT",
                       help="renders at this percentage of the footage's size (1-100, default 100)")
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
    args.motion_given = args.input is None and args.motion is not None
    if args.output is None or (args.input is None and args.motion is None):
        parser.error("--input (or an existing --motion file) and --output are required (or --demo)")
    if args.motion_given:
        problem = _missing_file(args.motion, "--motion")
        if problem is None and (args.render is not None or args.render_all is not None):
            problem = "--render and --render-all need --input (the footage to render over)"
        if problem is None and args.people == "all":
            problem = "--people all needs --input (a motion file holds one person)"
        if problem is not None:
            parser.error(problem)
    # --people all: the motion files go into a folder, person0.npz, person1.npz, ...
    args.motion = args.motion or (args.output.with_name(f"{args.output.stem}_people")
                                  if args.people == "all" else args.output.with_suffix(".npz"))
    if args.export is not None and args.export.suffix.lower() not in EXPORT_SUFFIXES:
        parser.error("--export needs a .fbx or .bvh path")
    if args.render_frame is not None and args.render is None:
        parser.error("--render-frame needs --render")
    if args.shape_keys and args.smpl is None:
        parser.error("--shape-keys needs --smpl")
    if args.capsules and args.smpl is not None:
        parser.error("--capsules is the body without an SMPL file: not with --smpl")
    if args.front_end != "ikol":
        for name in NETWORK_OPTIONS:
            if getattr(args, name):
                parser.error(f"{flag(name)} is an option of the IKOL network: use it with "
                             "--front-end ikol")
    if args.samples < 1:
        parser.error("--samples must be 1 or more")
    if not 1 <= args.render_scale <= 100:
        parser.error("--render-scale must be 1 to 100 (percent)")
    if args.retarget is not None:
        problem = _missing_file(args.retarget, "--retarget") or _not_a_blend(args.retarget)
        if problem is not None:
            parser.error(problem)
    problem = _output_problem(args)
    if problem is not None:
        parser.error(problem)
    return args


def _missing_file(path: Path, option: str) -> str | None:
    if not path.exists():
        return f"{option}: {path} does not exist"
    if not path.is_file():
        return f"{option}: {path} is not a file"
    return None


def _not_a_blend(path: Path) -> str | None:
    """Why `path` is not a .blend file Blender can open (by its first bytes), or None."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(8)
    except OSError as exc:
        return f"--retarget: cannot read {path}: {exc.strerror or exc}"
    if not start.startswith(BLEND_MAGICS):
        return f"--retarget: {path} is not a .blend file"
    return None


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    """The files the run is asked to write, by option."""
    files = {"--output": args.output, "--render": args.render, "--export": args.export}
    if not args.motion_given and args.people != "all":
        files["--motion"] = args.motion
    return {option: path for option, path in files.items() if path is not None}


def _output_problem(args: argparse.Namespace) -> str | None:
    """Why the outputs cannot be written as asked, or None: found before any work."""
    files = _outputs(args)
    seen: dict[Path, str] = {}
    for option, path in files.items():
        earlier = seen.setdefault(path.resolve(), option)
        if earlier != option:
            return f"{earlier} and {option} name the same file: {path}"
        reason = unwritable_reason(path)
        if reason is not None:
            return f"{option}: {reason}"
    folders = {"--render-all": args.render_all,
               "--motion": args.motion if args.people == "all" and not args.motion_given else None}
    for option, folder in folders.items():
        reason = None if folder is None else unwritable_reason(folder, folder=True)
        if reason is not None:
            return f"{option}: {reason}"
    return None


def script_args() -> list[str]:
    """Arguments meant for this script: those after `--` when Blender runs it."""
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


class SceneError(RuntimeError):
    """The scene, render or export cannot be made as asked."""


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(args)
    except KeyboardInterrupt:  # the backend is ended and the temporary files are gone
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM: unwind (ending the backend, removing temporary files) undisturbed."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ikol-") as work:
        staged = {"motion": Path(work) / "motion.npz", "blend": Path(work) / "scene.blend",
                  "render": Path(work) / "render.png", "render_all": Path(work) / "frames"}
        if args.export is not None:
            staged["export"] = Path(work) / f"export{args.export.suffix.lower()}"
        try:
            summary, seconds, device = _run(args, staged)
        except (BackendFailed, MotionFileError, BodyFileError, SceneError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            no_person = isinstance(exc, BackendFailed) and exc.code == "no_person"
            return EXIT_NO_PERSON if no_person else EXIT_FAILED
        # Everything is made; only now do the outputs appear, all together, each whole.
        pairs = [(staged["blend"], args.output)]
        if args.people == "all":
            pairs += [(person, args.motion / person.name)
                      for person in sorted(staged["motion"].iterdir())]
        elif not args.motion_given:
            pairs.append((staged["motion"], args.motion))
        if args.render is not None:
            pairs.append((staged["render"], args.render))
        if args.render_all is not None:
            pairs += [(frame, args.render_all / frame.name)
                      for frame in sorted(staged["render_all"].iterdir())]
        if args.export is not None:
            pairs.append((staged["export"], args.export))
        try:
            publish(pairs)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED

    if "people" in summary:
        print(f"{summary['people_found']} people found; motion for {len(summary['people'])}: "
              + ", ".join(f"{p['file']} ({p['valid_frames']}/{summary['frames']} frames)"
                          for p in summary["people"]) + ".")
    elif summary:
        print(f"Person found in {summary['valid_frames']} of {summary['frames']} frame(s) "
              f"({summary['people_found']} {'person' if summary['people_found'] == 1 else 'people'} "
              f"found; following person {args.person}).")
    if device:
        print(f"Device: {device}")
    print(f"Motion: {args.motion}\nScene:  {args.output}")
    for label, path in (("Render", args.render), ("Frames", args.render_all),
                        ("Export", args.export)):
        if path is not None:
            print(f"{label}: {path}")
    print("Time per stage:")
    stages = {f"backend {k}": v for k, v in summary.get("seconds", {}).items()} | seconds
    for stage, value in stages.items():
        print(f"  {stage:<22} {value:7.2f} s")
    return 0


def _run(args: argparse.Namespace,
         staged: dict[str, Path]) -> tuple[dict, dict[str, float], str]:
    """Backend (or the given motion file), scene, render, export and .blend, all written into
    the staging folder; the backend's summary ({} for a given motion file), seconds per stage
    and the device the backend ran on ("" for a given motion file)."""
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    if args.motion_given:
        motion, body, summary, device = load_motion(args.motion), None, {}, ""
        mesh = args.retarget is None and not args.no_body
        if motion.rest_joints is None or args.smpl is not None or (mesh and not args.capsules):
            body = _body_for(motion, args.smpl, staged["motion"].parent,
                             args.shape_keys and mesh, skeleton_only=not mesh or args.capsules)
        motions, bodies = [motion], [body]
        seconds["motion file"] = time.perf_counter() - tick
    else:
        motions, bodies, summary, device = _estimate(args, staged)
        seconds["backend (total)"] = time.perf_counter() - tick

    import bpy  # only now: a backend failing fast needs no Blender

    # From here on the work is Blender's, much of it in C, where Python's signal handler waits
    # (during a render, until it ends; then Cycles swallows its KeyboardInterrupt).
    with _ended_at_once(lambda: [staged["blend"].parent, Path(bpy.app.tempdir)]):
        seconds |= _scene(args, staged, motions, bodies)
    return summary, seconds, device


def _scene(args: argparse.Namespace, staged: dict[str, Path], motions: list[Motion],
           bodies: list[Body | None]) -> dict[str, float]:
    """Scene, render, export and .blend, written into the staging folder; seconds per stage."""
    import bpy

    from .footage import footage_of
    from .keyframes import keyed_frames
    from .retarget.bake import RetargetOptions
    from .retarget.bonemap import map_from_name
    from .retarget.io import append_armature, export_animation
    from .scene.estimated import SceneRequest, add_estimated
    from .scene.render import render_over_footage

    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0
    try:
        target = append_armature(args.retarget, args.armature) if args.retarget else None
        request = SceneRequest(
            name=(args.motion if args.motion_given else args.input[0]).stem,
            body_mesh=not args.no_body, camera=True,
            footage=None if args.motion_given else footage_of(args.input), target=target,
            bone_map=map_from_name(args.bone_map) if target else None,
            retarget=RetargetOptions(in_place=args.in_place, foot_lock=args.foot_lock))
        made = add_estimated(motions, request, bodies)
    except (ValueError, OSError) as exc:  # RetargetError, BoneMapError, a missing armature
        raise SceneError(f"the scene cannot be made: {exc}") from exc
    except RuntimeError as exc:  # Blender cannot read the --retarget file
        raise SceneError(f"--retarget: Blender cannot read {args.retarget}: {exc}") from exc
    for warning in made.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if made.retargeted is not None:
        print(f"Retargeted: {made.retargeted.describe()}")
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
            estimated = keyed_frames(made.built.armature)  # with --stride, not every frame
            frames += estimated
            outputs += [staged["render_all"] / f"{frame:04d}.png" for frame in estimated]
        width, height = (round(size * args.render_scale / 100) for size in
                         (scene.render.resolution_x, scene.render.resolution_y))
        print(f"Rendering {len(frames)} frame(s) at {width}x{height}, {args.samples} "
              "samples:", file=sys.stderr, flush=True)
        try:
            with _blender_output_hidden():
                render_over_footage(scene, made.built.camera, frames, outputs, args.samples,
                                    args.render_scale, _render_progress(len(frames)))
        except (ValueError, RuntimeError) as exc:  # RenderError, Blender's own
            raise SceneError(f"rendering failed: {exc}") from exc
        seconds["render"] = time.perf_counter() - tick

    if args.export is not None:
        tick = time.perf_counter()
        exported = target if target is not None else made.built.armature
        try:
            export_animation(exported, staged["export"])
        except (ValueError, RuntimeError) as exc:
            raise SceneError(f"the export failed: {exc}") from exc
        seconds["export"] = time.perf_counter() - tick

    tick = time.perf_counter()
    # Footage paths stay absolute: made relative to the staging folder, they would break.
    with _blender_output_hidden():  # "Saved as" would name the staged file
        bpy.ops.wm.save_as_mainfile(filepath=str(staged["blend"]), relative_remap=False)
    seconds["save .blend"] = time.perf_counter() - tick
    return seconds


def _render_progress(total: int) -> Callable[[int], None]:
    """What to tell after each rendered frame: how many, the time per frame and the time left."""
    began = time.perf_counter()

    def done(count: int) -> None:
        each = (time.perf_counter() - began) / count
        print(f"  rendered {count}/{total}: {each:.1f} s a frame, {each * (total - count):.0f} s "
              "left", file=sys.stderr, flush=True)

    return done


@contextlib.contextmanager
def _blender_output_hidden() -> Iterator[None]:
    """Blender's own lines on standard output (a render's status and "Saved: '...'" lines,
    naming staged files) go nowhere meanwhile."""
    sys.stdout.flush()
    kept = os.dup(1)
    try:
        with open(os.devnull, "wb") as nowhere:
            os.dup2(nowhere.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(kept, 1)
        os.close(kept)


@contextlib.contextmanager
def _ended_at_once(leftovers: Callable[[], list[Path]]) -> Iterator[None]:
    """Meanwhile SIGINT or SIGTERM end the process at once, even inside C code: a thread woken
    through the signal module's wake-up socket removes the folders `leftovers` gives then (the
    staging folder, Blender's session folder: it changes when settings are reset), says so and
    exits 130; the staged outputs are never published."""
    receiver, sender = socket.socketpair()
    sender.setblocking(False)
    previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
    finished = threading.Event()

    def watch() -> None:
        try:
            woken = receiver.recv(1)
        except OSError:  # the sender closed abruptly (Windows): no signal came
            return
        if woken and not finished.is_set():
            for folder in leftovers():
                shutil.rmtree(folder, ignore_errors=True)
            print("error: interrupted", file=sys.stderr, flush=True)
            os._exit(EXIT_INTERRUPTED)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        signal.set_wakeup_fd(previous)
        sender.close()  # the watcher's recv returns empty
        watcher.join()
        receiver.close()


def _estimate(args: argparse.Namespace,
              staged: dict[str, Path]) -> tuple[list[Motion], list[Body | None], dict, str]:
    """Run the backend job: each person's motion (also copied to the staging folder: the
    motion file, or with --people all a folder of them), each one's body (the open body or the
    SMPL mesh) when one is made, the backend's summary and the device it ran on."""
    job = EstimateJob(backend_python(), args.input, from_arguments(args),
                      mesh=not args.no_body and args.retarget is None,
                      pose_correctives=args.shape_keys, capsules=args.capsules)
    progress = FrameProgress(sys.stderr)
    try:
        while not job.step(timeout=0.1):
            progress.update(job.progress.done, job.progress.total, job.progress.frames_per_s)
        progress.end()
        for warning in job.progress.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        motions, bodies = job.motions(), job.bodies()
        if job.everyone:
            shutil.copytree(job.motion_path, staged["motion"])
        else:
            shutil.copyfile(job.motion_path, staged["motion"])
    finally:
        progress.end()
        job.cancel()  # ends the backend if still running (an error here); removes its folder
    return motions, bodies, job.summary, job.progress.device_name


class FrameProgress:
    """The backend's frame progress on `stream`: frames done of total, frames/s and time left.
    On a terminal one line redrawn in place, at most PROGRESS_PER_S times a second (and at the
    last frame); elsewhere a line whenever another tenth of the frames is done."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._terminal = stream.isatty()
        self._done = 0
        self._drawn_at = -math.inf  # time.monotonic() of the last redraw, seconds
        self._tenth = 0
        self._open = False  # a redrawn line is on the terminal, not yet ended
        self._width = 0  # characters of the longest line drawn

    def update(self, done: int, total: int, frames_per_s: float) -> None:
        """Tell `done` of `total` frames at the backend's rate; repeated counts are not told."""
        if done == self._done or total <= 0:
            return
        self._done = done
        left = f"{(total - done) / frames_per_s:.0f} s left" if frames_per_s > 0 else "time left unknown"
        text = f"  frame {done}/{total}: {frames_per_s:.1f} frames/s, {left}"
        if self._terminal:
            now = time.monotonic()
            if done < total and now - self._drawn_at < 1 / PROGRESS_PER_S:
                return
            self._drawn_at, self._width = now, max(self._width, len(text))
            self._stream.write("\r" + text.ljust(self._width))  # spaces over a longer earlier line
            self._stream.flush()
            self._open = True
        elif (tenth := 10 * done // total) != self._tenth:
            self._tenth = tenth
            print(text, file=self._stream, flush=True)

    def end(self) -> None:
        """End the redrawn line, so that what follows starts on its own."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False


def _body_for(motion: Motion, smpl: Path | None, folder: Path, pose_correctives: bool,
              skeleton_only: bool) -> Body:
    """The body for a given motion file from the backend: the SMPL mesh with an SMPL model
    file, else the open body, or (`skeleton_only`) the default skeleton's rest joints alone
    (for a file without its own, such as AMASS)."""
    return load_body(export_body(backend_python(), smpl, motion.mean_betas, folder,
                                 pose_correctives=pose_correctives,
                                 skeleton_only=skeleton_only and smpl is None))


if __name__ == "__main__":
    sys.exit(main(script_args()))
