"""MediaPipe's native notes stay off the user's terminal; errors written there do not."""

import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parents[2] / "samples" / "person.png"


def stderr_of(code: str) -> str:
    """What a fresh Python process running `code` writes to file descriptor 2."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_blazepose_leaves_no_native_notes_on_stderr() -> None:
    """A photo through BlazePose in image and video mode, twice each: MediaPipe's first call
    writes 'W0000 ... Using NORM_RECT without IMAGE_DIMENSIONS' there unless caught."""
    err = stderr_of(f"""
import numpy as np
from PIL import Image
from ikol_backend.frontends.blazepose import BlazePose
rgb = np.asarray(Image.open({str(SAMPLE)!r}).convert("RGB"))
for video in (False, True):
    with BlazePose(video=video) as pose:
        assert pose.detect(rgb) is not None and pose.detect(rgb) is not None
""")
    assert err == ""


def test_errors_written_natively_meanwhile_are_passed_on() -> None:
    err = stderr_of("""
import os
from ikol_backend.frontends.blazepose import _native_notes_dropped
with _native_notes_dropped():
    os.write(2, b"W0000 00:00:1.0 1 a.cc:1] a note\\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(2, b"E0000 00:00:1.0 1 b.cc:2] a real error\\nsomething else\\n")
""")
    assert err == "E0000 00:00:1.0 1 b.cc:2] a real error\nsomething else\n"
