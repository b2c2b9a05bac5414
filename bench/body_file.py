"""How long `ikol-backend body` takes to make the open body's file, as the add-on runs it.

    .venv/bin/python bench/body_file.py [--repeats 3] [--cold] [--json OUT]

Times the whole command (a fresh Python process: start-up, torch, the anny data, the fit, the
T-pose, the shape keys, writing) for a few shapes, median of --repeats runs each, and the file's
size. --cold also times `ikol-backend prepare` into an empty cache folder once: what the first
run on a computer pays (anny builds its model from its target files; nothing is downloaded).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    "average (betas 0)": [0.0] * 10,
    "tall, long legs": [2.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0, 0],
    "short, wide hips": [-2.0, 0, 0, 0, 0, -1.0, 2.0, 0, 0, 0],
}


def run(command: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a first-ever prepare")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    python = sys.executable
    results: dict = {"cpu_count": os.cpu_count(), "repeats": args.repeats, "shapes": {}}
    run([python, "-m", "ikol_backend", "prepare"])  # made, so the runs below time the body alone
    with tempfile.TemporaryDirectory(prefix="bench-body-") as folder:
        out = Path(folder) / "body.npz"
        for name, betas in SHAPES.items():
            command = [python, "-m", "ikol_backend", "body", "-o", str(out), "--betas",
                       *(f"{b:.6f}" for b in betas)]
            times = [run(command) for _ in range(args.repeats)]
            results["shapes"][name] = {"median_s": round(statistics.median(times), 2),
                                       "runs_s": [round(t, 2) for t in times]}
            print(f"{name:20s} median {statistics.median(times):.2f} s "
                  f"({', '.join(f'{t:.2f}' for t in times)})")
        results["file_bytes"] = out.stat().st_size
        print(f"body file: {out.stat().st_size / 1e6:.1f} MB")
        if args.cold:
            env = {**os.environ, "IKOL_CACHE_DIR": str(Path(folder) / "cache")}
            env.pop("ANNY_CACHE_DIR", None)
            seconds = run([python, "-m", "ikol_backend", "prepare"], env)
            results["cold_prepare_s"] = round(seconds, 1)
            print(f"first prepare (empty cache): {seconds:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
