"""Build the installable extension: dist/ikol_blender-<version>.zip.

    python build.py          write the zip
    python build.py --check  check the manifest and list what would go in, writing nothing

The zip holds the add-on package (ikol_blender/) at its root with blender_manifest.toml beside
it, the layout Blender's extension system installs.
"""

import argparse
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "ikol_blender"
MANIFEST = ROOT / "blender_manifest.toml"
REQUIRED = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
            "blender_version_min", "license")


def check_manifest() -> dict:
    manifest = tomllib.loads(MANIFEST.read_text())
    missing = [key for key in REQUIRED if key not in manifest]
    if missing:
        raise SystemExit(f"blender_manifest.toml lacks {', '.join(missing)}")
    if len(manifest["tagline"]) > 64:
        raise SystemExit("blender_manifest.toml: tagline is longer than 64 characters")
    if manifest["type"] != "add-on":
        raise SystemExit('blender_manifest.toml: type must be "add-on"')
    return manifest


def addon_files() -> list[Path]:
    return sorted(p for p in ADDON.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="validate only; write nothing")
    args = parser.parse_args()
    manifest = check_manifest()
    files = addon_files()
    if args.check:
        print(f"{manifest['id']} {manifest['version']}: manifest OK, {len(files)} files")
        return 0
    target = ROOT / "dist" / f"{manifest['id']}-{manifest['version']}.zip"
    target.parent.mkdir(exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(MANIFEST, MANIFEST.name)
        archive.write(ROOT / "LICENSE", "LICENSE")
        for path in files:
            archive.write(path, path.relative_to(ADDON).as_posix())
    partial.replace(target)
    print(f"wrote {target} ({target.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
