"""Frame readers: image files and folders, video containers, range and stride, orientation,
downscaling, streaming, and every bad input with its exact message."""

import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ikol_backend.errors import EXIT_BAD_INPUT, EXIT_USAGE, BackendError
from ikol_backend.readers import FrameRange, downscaled, open_source
from ikol_backend.readers import images, video
from ikol_backend.readers.images import check_exists, read_image
from ikol_backend.readers.video import frame_rate
from tests.tools.sample_clip import write_frames

WIDTH, HEIGHT = 64, 48
FPS = 25.0
FRAMES = 30
# Containers and codecs this OpenCV build writes (H.264 has no encoder here).
CONTAINERS = [("mp4", "mp4v"), ("mov", "mp4v"), ("avi", "MJPG"), ("mkv", "XVID"),
              ("webm", "VP80")]
IMAGES = (".bmp, .dib, .jpe, .jpeg, .jpg, .pbm, .pgm, .png, .pnm, .ppm, .ras, .sr, .tif, "
          ".tiff, .webp")
RED = (255, 0, 0)


def coded_frame(number: int) -> np.ndarray:
    """An RGB frame showing `number` (0-255) as eight black or white 16-pixel squares in the top
    32 rows (bit b at row b // 4, column b % 4), over a red band that checks the channel order."""
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(8):
        if number >> bit & 1:
            row, col = divmod(bit, 4)
            rgb[row * 16:(row + 1) * 16, col * 16:(col + 1) * 16] = 255
    rgb[32:] = RED
    return rgb


def frame_number(rgb: np.ndarray) -> int:
    """Read back the number of `coded_frame`, from the middle of each square."""
    return sum(1 << bit for bit in range(8)
               if rgb[bit // 4 * 16 + 4:bit // 4 * 16 + 12, bit % 4 * 16 + 4:bit % 4 * 16 + 12]
               .mean() > 128)


def write_video(path: Path, fourcc: str, count: int = FRAMES) -> Path:
    frames = (cv2.cvtColor(coded_frame(number), cv2.COLOR_RGB2BGR) for number in range(count))
    return write_frames(path, frames, FPS, fourcc, size=(WIDTH, HEIGHT))


def write_image(path: Path, number: int) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(coded_frame(number), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """One 30-frame clip per container, frame n showing the number n."""
    folder = tmp_path_factory.mktemp("clips")
    return {ext: write_video(folder / f"clip.{ext}", fourcc) for ext, fourcc in CONTAINERS}


def numbers(source) -> list[tuple[int, int]]:
    """(index, number shown) of each frame the source yields."""
    return [(frame.index, frame_number(frame.rgb)) for frame in source]


def check_error(call, code: str, message: str) -> None:
    with pytest.raises(BackendError) as caught:
        call()
    assert (caught.value.code, caught.value.message) == (code, message)


# --- images ---------------------------------------------------------------------------------

def test_folder_is_read_in_natural_order_and_ignores_other_files(tmp_path):
    for name, number in [("frame10.JPG", 10), ("frame2.png", 2), ("Frame1.bmp", 1)]:
        write_image(tmp_path / name, number)
    (tmp_path / "notes.txt").write_text("not an image")
    write_image(tmp_path / ".hidden.png", 99)  # e.g. macOS "._" resource files
    (tmp_path / "sub.png").mkdir()
    source = open_source([tmp_path])
    assert [path.name for path in source.paths] == ["Frame1.bmp", "frame2.png", "frame10.JPG"]
    assert numbers(source) == [(0, 1), (1, 2), (2, 10)]
    assert (source.frame_count, source.fps, source.fps_note) == (3, None, None)
    assert source.frame_size == (WIDTH, HEIGHT)


def test_image_list_keeps_its_order_and_applies_range_and_stride(tmp_path):
    paths = [write_image(tmp_path / f"{number}{ext}", number)
             for number, ext in zip([7, 3, 5, 1, 6, 2, 4], [".png", ".bmp", ".tif"] * 3)]
    source = open_source(paths, FrameRange(start=1, stop=6, stride=2))
    assert source.frame_count == 3
    frames = list(source)
    assert [(f.index, frame_number(f.rgb), f.timestamp) for f in frames] == [
        (1, 3, None), (3, 1, None), (5, 2, None)]
    assert tuple(frames[0].rgb[40, 10]) == RED and frames[0].rgb.dtype == np.uint8
    # Iterating again starts over (the first frame decoded up front is not reused twice).
    assert numbers(source) == [(1, 3), (3, 1), (5, 2)]


def test_exif_orientation_is_honoured(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = RED  # left half red, as stored
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: the stored image is turned 90° clockwise for display
    path = tmp_path / "photo.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)

    source = open_source([path])
    (frame,) = list(source)
    assert frame.rgb.shape == (40, 20, 3) and source.frame_size == (20, 40)
    assert frame.rgb[:18, :, 0].min() > 200 and frame.rgb[22:, :, 0].max() < 50  # red on top
    np.testing.assert_array_equal(read_image(path), frame.rgb)


def test_a_jpeg_cut_short_is_refused_as_damaged(tmp_path):
    whole = write_image(tmp_path / "whole.jpg", 5)
    data = whole.read_bytes()
    progressive = cv2.imencode(".jpg", coded_frame(6), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    for name, cut in (("cut.jpg", data[:len(data) * 19 // 20]),
                      ("cut_progressive.jpeg", progressive[:len(progressive) * 2 // 3]),
                      ("padded.jpg", data[:len(data) // 2] + bytes(len(data))),
                      ("no_end.jpg", data[:-2])):
        path = tmp_path / name
        path.write_bytes(cut)
        check_error(lambda: open_source([path]), "input_unreadable",
                    f"Image is damaged (cut short): {path}")
    # Data after the end-of-image marker (phones append videos and metadata) is fine.
    appended = tmp_path / "motion_photo.jpg"
    appended.write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    assert [frame_number(f.rgb) for f in open_source([appended])] == [5]


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header states width x height but whose pixel data is a few rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(bytes(1 + 3 * min(width, 1000)) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_an_image_too_large_to_decode_is_refused_from_its_header(tmp_path):
    for side, megapixels in ((100_000, 10_000), (30_000, 900)):
        path = header_only_png(tmp_path / f"huge{side}.png", side, side)
        check_error(lambda: open_source([path]), "input_unsupported",
                    f"Image is too large: {side}x{side} pixels ({megapixels} megapixels); images "
                    f"above 50 megapixels are read only as JPEG (decoded reduced). Scale it down "
                    f"or save it as JPEG: {path}")


def test_a_jpeg_above_the_pixel_budget_is_decoded_reduced(tmp_path, monkeypatch):
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.resize(cv2.cvtColor(coded_frame(9), cv2.COLOR_RGB2BGR), (300, 200),
                                       interpolation=cv2.INTER_NEAREST))
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 10_000)  # 300x200 / 4 fits, / 2 does not
    source = open_source([photo])
    assert source.frame_size == (75, 50)
    assert next(iter(source)).rgb.shape == (50, 75, 3)
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 900)  # 300x200 / 8 = 38x25 does not fit
    check_error(lambda: open_source([photo]), "input_unsupported",
                f"Image is too large: 300x200 pixels (0 megapixels); even decoded at 1/8 it is "
                f"above 0 megapixels. Scale it down: {photo}")


def test_a_huge_jpeg_takes_memory_for_the_reduced_image_only(tmp_path):
    height, width = 6000, 9000  # 54 megapixels: 155 MiB as colour, decoded at half size
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = np.linspace(0, 255, height).astype(np.uint8)[:, None, None]
    path = tmp_path / "huge.jpg"
    cv2.imwrite(str(path), image)
    del image
    probe = (
        "import resource, sys; from pathlib import Path\n"
        "from ikol_backend.readers.images import read_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "rgb = read_image(Path(sys.argv[1]))\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(rgb.shape[0], rgb.shape[1], grown // 1024)\n")
    result = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True,
                            text=True, timeout=120, check=True)
    rows, cols, grown_mib = map(int, result.stdout.split())
    assert (rows, cols) == (height // 2, width // 2)
    # The reduced image and its RGB copy: 2 x 39 MiB. Decoding it whole would take 309 MiB.
    assert grown_mib < 120, grown_mib


# --- video ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [ext for ext, _ in CONTAINERS])
def test_video_containers_yield_every_frame_in_order(clips, ext):
    source = open_source([clips[ext]])
    assert (source.frame_count, source.fps, source.fps_note) == (FRAMES, FPS, None)
    assert source.frame_size == (WIDTH, HEIGHT) and source.paths == [clips[ext]]
    frames = list(source)
    assert [(f.index, frame_number(f.rgb)) for f in frames] == [(n, n) for n in range(FRAMES)]
    assert [f.timestamp for f in frames] == [n / FPS for n in range(FRAMES)]
    assert all(tuple(f.rgb[40, 10]) == pytest.approx(RED, abs=8) for f in frames)


@pytest.mark.parametrize("ext", [ext for ext, _ in CONTAINERS])
@pytest.mark.parametrize("seek_min_gap", [video.SEEK_MIN_GAP, 2])  # grab() only; seeks
def test_video_range_and_stride(clips, ext, seek_min_gap, monkeypatch):
    monkeypatch.setattr(video, "SEEK_MIN_GAP", seek_min_gap)
    source = open_source([clips[ext]], FrameRange(start=5, stop=24, stride=4))
    assert source.frame_count == 5
    assert numbers(source) == [(n, n) for n in (5, 9, 13, 17, 21)]
    tail = open_source([clips[ext]], FrameRange(start=26, stride=3))
    assert tail.frame_count == 2 and numbers(tail) == [(26, 26), (29, 29)]


def test_video_orientation_from_the_container_is_applied(tmp_path):
    path = write_video(tmp_path / "phone.mp4", "mp4v", count=3)
    data = bytearray(path.read_bytes())
    # Put a 90° display matrix into the track header, as phones filming upright do:
    # 'tkhd' (version 0): flags 4, times and ids 20, reserved 8, layer..volume 8, then 3×3.
    matrix = data.index(b"tkhd") + 4 + 4 + 20 + 8 + 8
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(data)
    source = open_source([path])
    assert source.frame_size == (HEIGHT, WIDTH)
    frame = next(iter(source))
    # Turned clockwise: the red band at the bottom of the stored frame is now on the left.
    assert frame.rgb.shape == (WIDTH, HEIGHT, 3)
    assert frame.rgb[:, :12, 0].min() > 200 and frame.rgb[:, :12, 2].max() < 60


def test_video_is_streamed_not_held(tmp_path):
    width, height, count = 320, 240, 80
    path = tmp_path / "long.mp4"
    write_frames(path, (np.full((height, width, 3), number, np.uint8) for number in range(count)), FPS)
    frame_bytes = width * height * 3
    source = open_source([path])

    def peak(consume) -> int:
        tracemalloc.start()
        try:
            consume(iter(source))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(lambda frames: [None for _ in frames]) < 4 * frame_bytes
    assert peak(list) > count * frame_bytes  # the measure sees frames that are kept


def test_frame_rate_falls_back_with_a_reason():
    assert frame_rate(29.97) == (29.97, None)
    for reported, shown in [(0.0, "0"), (float("nan"), "nan"), (1000.0, "1000")]:
        assert frame_rate(reported) == (
            30.0, f"The video reports no usable frame rate ({shown}); assuming 30 frames/s.")


# --- downscaling ----------------------------------------------------------------------------

def test_large_frames_are_downscaled_with_an_exact_scale():
    full = np.zeros((2001, 3001, 3), np.uint8)
    full[600:900, 1000:1300] = 255  # a square centred at (1150, 750), corner coordinates
    small, scale = downscaled(full)
    assert scale == 1280 / 3001 and small.shape == (853, 1280, 3)
    weight = small[..., 0].astype(float)
    rows, cols = np.indices(weight.shape) + 0.5  # pixel centres in corner coordinates
    centre = np.array([(cols * weight).sum(), (rows * weight).sum()]) / weight.sum()
    np.testing.assert_allclose(centre / scale, (1150, 750), atol=0.05)


def test_small_frames_are_not_copied_and_the_limit_can_be_set():
    frame = np.zeros((480, 640, 3), np.uint8)
    same, scale = downscaled(frame)
    assert same is frame and scale == 1.0
    small, scale = downscaled(frame, max_side=320)
    assert small.shape == (240, 320, 3) and scale == 0.5


# --- bad input ------------------------------------------------------------------------------

def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere.mp4"
    check_error(lambda: open_source([missing]), "input_not_found", f"Input not found: {missing}")
    check_error(lambda: open_source([]), "input_not_found", "No input given.")


def test_file_that_is_neither_image_nor_video(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    check_error(lambda: open_source([notes]), "input_unsupported",
                f"Not an image or video file: {notes} (images: {IMAGES}; "
                "videos: .avi, .mkv, .mov, .mp4, .webm)")
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    check_error(lambda: open_source([fake]), "input_unreadable",
                f"Not an image file (or a damaged one): {fake}")


def test_folder_without_images(tmp_path):
    check_error(lambda: open_source([tmp_path]), "input_unsupported",
                f"No image files in folder: {tmp_path} (looked for {IMAGES})")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 10)
    check_error(lambda: open_source([tmp_path]), "input_unsupported",
                f"No image files in folder: {tmp_path} (looked for {IMAGES})")


def test_zero_length_files(tmp_path):
    for name in ["empty.mp4", "empty.jpg"]:
        (tmp_path / name).touch()
        check_error(lambda: open_source([tmp_path / name]), "input_unreadable",
                    f"Input is empty (0 bytes): {tmp_path / name}")
    write_image(tmp_path / "frame1.png", 1)
    check_error(lambda: open_source([tmp_path]), "input_unreadable",
                f"Input is empty (0 bytes): {tmp_path / 'empty.jpg'}")


def test_damaged_image_later_in_a_folder_fails_when_reached(tmp_path):
    write_image(tmp_path / "frame1.png", 1)
    (tmp_path / "frame2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    frames = iter(open_source([tmp_path]))
    assert frame_number(next(frames).rgb) == 1
    check_error(lambda: next(frames), "input_unreadable",
                f"Not an image file (or a damaged one): {tmp_path / 'frame2.png'}")


def test_truncated_and_corrupt_videos(clips, tmp_path):
    data = clips["mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) // 2])  # the index ('moov') is written last: lost
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    for path in [cut, garbage]:
        check_error(lambda: open_source([path]), "input_unreadable",
                    f"Cannot open video (damaged, truncated or not a video): {path}")


def cut_copy(path: Path, folder: Path, share: float) -> Path:
    """The first `share` of the file's bytes, as a file in `folder`: a download cut short."""
    data = path.read_bytes()
    cut = folder / f"cut{share:g}{path.suffix}"
    cut.write_bytes(data[:int(len(data) * share)])
    return cut


def test_a_cut_video_keeps_the_frames_before_the_damage_with_a_note(clips, tmp_path):
    cut = cut_copy(clips["avi"], tmp_path, 0.75)
    source = open_source([cut])
    assert source.frame_count == FRAMES  # from the header, which overstates a cut file
    held = numbers(source)
    kept = len(held)
    assert FRAMES / 2 <= kept < FRAMES and held == [(n, n) for n in range(kept)]
    assert source.damage_note == (
        f"Video is damaged: decoding stopped at frame {kept} of the {FRAMES} the container "
        f"lists; {FRAMES - kept} of the {FRAMES} selected frames (frame {kept} on) are lost: {cut}")
    strided = open_source([cut], FrameRange(stride=2))
    assert numbers(strided) == [(n, n) for n in range(0, kept, 2)]
    lost = len(range(kept + kept % 2, FRAMES, 2))
    assert strided.damage_note.endswith(
        f"; {lost} of the {FRAMES // 2} selected frames (frame {kept} on) are lost: {cut}")
    before = open_source([cut], FrameRange(stop=kept))
    assert len(numbers(before)) == kept and before.damage_note is None


def test_a_video_overwritten_in_the_middle_is_noted(clips, tmp_path):
    data = bytearray(clips["mp4"].read_bytes())
    hole = len(data) * 3 // 10
    data[hole:hole + len(data) // 20] = bytes(len(data) // 20)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    source = open_source([damaged])
    kept = [index for index, _ in numbers(source)]
    assert FRAMES / 2 <= len(kept) < FRAMES and kept == list(range(len(kept)))
    assert source.damage_note.startswith(
        f"Video is damaged: decoding stopped at frame {len(kept)} of the {FRAMES} the container "
        f"lists; {FRAMES - len(kept)} of the {FRAMES} selected frames")


def test_a_video_with_too_few_frames_left_is_refused(clips, tmp_path):
    cut = cut_copy(clips["mkv"], tmp_path, 2 / 3)
    frames = iter(open_source([cut]))
    held = []
    with pytest.raises(BackendError) as caught:
        for frame in frames:
            held.append((frame.index, frame_number(frame.rgb)))
    kept = len(held)
    assert 0 < kept < FRAMES / 2 and held == [(n, n) for n in range(kept)]
    assert (caught.value.code, caught.value.message) == ("input_unreadable", (
        f"Video is damaged: only {kept} of the {FRAMES} selected frames decode (decoding "
        f"stopped at frame {kept} of the {FRAMES} the container lists); at least 50% must. "
        f"To use the frames before the damage, stop at frame {kept} (--stop {kept}): {cut}"))
    check_error(lambda: list(open_source([cut], FrameRange(start=FRAMES - 1))),
                "input_unreadable",
                f"Video is damaged: only 0 of the 1 selected frames decode (decoding stopped at "
                f"frame {kept} of the {FRAMES} the container lists); at least 50% must: {cut}")
    assert len(numbers(open_source([cut], FrameRange(stop=kept)))) == kept


def test_video_without_frames(tmp_path):
    path = write_video(tmp_path / "none.avi", "MJPG", count=0)
    check_error(lambda: open_source([path]), "input_unreadable",
                f"Video has no frames that can be decoded: {path}")


def test_video_and_folder_must_be_given_alone(clips, tmp_path):
    photo = write_image(tmp_path / "photo.png", 1)
    check_error(lambda: open_source([photo, clips["mp4"]]), "input_unsupported",
                f"A video must be given alone, not with other inputs: {clips['mp4']}")
    check_error(lambda: open_source([tmp_path, photo]), "input_unsupported",
                f"A folder must be given alone, not with other inputs: {tmp_path}")


def test_bad_frame_ranges(clips, tmp_path):
    check_error(lambda: FrameRange(stride=0), "bad_frame_range",
                "Frame stride must be 1 or more, got 0.")
    check_error(lambda: FrameRange(start=-1), "bad_frame_range",
                "First frame must be 0 or more, got -1.")
    check_error(lambda: FrameRange(start=5, stop=5), "bad_frame_range",
                "Frame range is empty: stop (5) must be after start (5).")
    photo = write_image(tmp_path / "photo.png", 1)
    check_error(lambda: open_source([photo, photo], FrameRange(start=2)), "bad_frame_range",
                "Frame range starts at frame 2, but the input has 2 images")
    check_error(lambda: open_source([clips["avi"]], FrameRange(start=FRAMES)), "bad_frame_range",
                f"Frame range starts at frame {FRAMES}, but the video has {FRAMES} frames: "
                f"{clips['avi']}")


def test_new_error_codes_map_to_exit_codes():
    assert BackendError("input_unsupported", "").exit_code == EXIT_BAD_INPUT
    assert BackendError("bad_frame_range", "").exit_code == EXIT_USAGE


def test_single_image_helpers_keep_their_behaviour(tmp_path):
    missing = tmp_path / "missing.png"
    check_error(lambda: check_exists(missing), "input_not_found", f"Input not found: {missing}")
    check_error(lambda: check_exists(tmp_path), "input_unreadable",
                f"Input is not a file: {tmp_path}")
    assert frame_number(read_image(write_image(tmp_path / "photo.png", 7))) == 7
