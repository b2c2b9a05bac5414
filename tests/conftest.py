import sys
from pathlib import Path

# The add-on is a plain folder in the repository (Blender installs it as an extension); make it
# importable as the package `ikol_blender` in tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
