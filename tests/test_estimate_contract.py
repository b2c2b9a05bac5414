"""The add-on's side of the backend contract, checked against the backend itself: the
command line the add-on builds parses to what it means, and the add-on reads an image folder
into the same frames as the backend."""

from pathlib import Path

from ikol_backend import options as backend_options
from ikol_backend.cli import build_parser
from ikol_backend.readers.image_files import IMAGE_SUFFIXES, list_images
from ikol_backend.readers.video import VIDEO_SUFFIXES
from ikol_blender import footage
from ikol_blender.options import DEVICES, FILLS, FRONT_ENDS, EstimateOptions, estimate_command


def test_estimate_command_means_the_options(tmp_path: Path):
    options = EstimateOptions(front_end="ikol", start=3, stop=90, stride=2, smooth=0.4, fov=62.5,
                              device="cpu", smpl=tmp_path / "SMPL_NEUTRAL.npz",
                              checkpoint=tmp_path / "ikol.pth", person=1, fill="hold",
                              flip_test=True, half=True)
    command = estimate_command("python", [tmp_path / "a.png", tmp_path / "b.png"],
                               tmp_path / "motion.npz", options)
    assert command[:3] == ["python", "-m", "ikol_backend"]
    args = build_parser().parse_args(command[3:])
    assert args.inputs == [tmp_path / "a.png", tmp_path / "b.png"]
    assert args.output == tmp_path / "motion.npz" and args.events
    assert (args.front_end, args.start, args.stop, args.stride) == ("ikol", 3, 90, 2)
    assert (args.smooth, args.fov, args.device) == (0.4, 62.5, "cpu")
    assert (args.smpl, args.checkpoint) == (options.smpl, options.checkpoint)
    assert (args.person, args.fill, args.flip_test, args.half) == (1, "hold", True, True)


def test_default_options_leave_the_backend_defaults(tmp_path: Path):
    command = estimate_command("python", [tmp_path], tmp_path / "m.npz")
    given = build_parser().parse_args(command[3:])
    default = build_parser().parse_args(["estimate", str(tmp_path), "-o", str(tmp_path / "m.npz"),
                                         "--events"])
    assert vars(given) == vars(default)


def test_the_choices_are_the_backends():
    for add_on, backend in ((FRONT_ENDS, backend_options.FRONT_ENDS),
                            (DEVICES, backend_options.DEVICES), (FILLS, backend_options.FILL_MODES)):
        assert sorted(value for value, _label, _description in add_on) == sorted(backend)


def test_the_add_on_lists_an_image_folder_as_the_backend_does(tmp_path: Path):
    assert footage.IMAGE_SUFFIXES == IMAGE_SUFFIXES and footage.VIDEO_SUFFIXES == VIDEO_SUFFIXES
    names = ["Frame10.PNG", "frame2.jpg", "frame1.png", "frame02b.tif", ".hidden.png",
             "notes.txt", "clip.mp4", "x9y10.webp", "x9y9.bmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"not decoded here")
    (tmp_path / "sub.png").mkdir()
    assert footage.folder_images(tmp_path) == list_images(tmp_path)
    assert [p.name for p in footage.folder_images(tmp_path)] == [
        "frame1.png", "frame2.jpg", "frame02b.tif", "Frame10.PNG", "x9y9.bmp", "x9y10.webp"]


def test_network_options_reach_the_backend_only_with_the_ikol_front_end(tmp_path: Path):
    """A checkpoint in the preferences, or the network's panel options left on, must not turn a
    default-front-end run into a usage error: the backend refuses them without --front-end ikol."""
    options = EstimateOptions(front_end="default", checkpoint=tmp_path / "ikol.pth",
                              flip_test=True, half=True)
    args = build_parser().parse_args(estimate_command("python", [tmp_path], tmp_path / "m.npz", options)[3:])
    assert args.checkpoint is None and not args.flip_test and not args.half
