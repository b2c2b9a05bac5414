"""IK benchmark: speed and accuracy of the IKOL layer and its baselines on synthetic poses.

Each case: random joint-limited poses (`bench_core.random_poses`) and random betas (standard normal) on a
body model, posed by forward kinematics into 29 root-relative target points, plus isotropic
Gaussian noise of the given standard deviation on every coordinate. The true twist angles and
leaf rotations are given to the methods that take them (as the network would).

Methods:
- gn_closed_form: the IKOL layer (`ikol`), closed-form Jacobian.
- gn_autograd: the same Gauss-Newton, the Jacobian from `torch.autograd.functional.jacobian`
  (vectorize=True) of the batch-summed points, as in the authors' code.
- analytic_swing_twist: the project's closed-form swing IK (`ik.analytic.analytic_ik`, no
  twist input: its rotation error includes the twist it cannot know).
- adam: SMPLify-style optimisation of the 24 axis-angle rotations (pelvis started from the
  same SVD fit, the rest from zero) with Adam on the squared point distances, until its mean
  distance to the targets is no larger than gn_closed_form's on the same case, or 500 steps.

Measures: poses/s = batch / median wall time of repeated runs (after one warm-up run);
mpjpe_mm = mean distance of the 24 posed joints to the true ones (pelvis at the origin);
rot_err_deg = mean geodesic angle between the 24 local rotations and the true ones.

This module holds the command line (`ikol-backend bench-ik`, also run by bench/ik_layer.py) and
the table; it imports torch only when the benchmark runs. Cases and runner: `bench_core`.
"""

import argparse
import json
import sys
from typing import Any

from ..errors import BackendError

METHODS = ("gn_closed_form", "gn_autograd", "analytic_swing_twist", "adam")
BATCHES = (1, 64, 1024, 16384)
NOISES_MM = (0.0, 20.0)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, then how the methods compare."""
    lines = ["| noise mm | batch | method | poses/s | MPJPE mm | rot. err. deg | settings |",
             "|---:|---:|---|---:|---:|---:|---|"]
    for row in rows:
        if row["poses_per_s"] is None:
            numbers = f"| {row.get('note', 'skipped')} | | "
        else:
            rate = row["poses_per_s"]
            rate = f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"
            numbers = f"| {rate} | {row['mpjpe_mm']:.2f} | {row['rot_err_deg']:.2f} "
        start = f"| {row['noise_mm']:g} | {row['batch']} | {row['method']} "
        lines.append(f"{start}{numbers}| {row['settings']} |")
    return "\n".join(lines + [""] + summarize(rows))


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    """Speed-up of gn_closed_form over gn_autograd and its MPJPE next to the other methods."""
    found = {(r["method"], r["batch"], r["noise_mm"]): r for r in rows if r["poses_per_s"]}
    lines = []
    for (method, batch, noise), row in sorted(found.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        if method != "gn_closed_form":
            continue
        parts = []
        auto = found.get(("gn_autograd", batch, noise))
        if auto:
            parts.append(f"{row['poses_per_s'] / auto['poses_per_s']:.1f}x the poses/s of gn_autograd "
                         f"(MPJPE {row['mpjpe_mm']:.3f} vs {auto['mpjpe_mm']:.3f} mm)")
        for other in ("analytic_swing_twist", "adam"):
            if (found_other := found.get((other, batch, noise))):
                parts.append(f"MPJPE {row['mpjpe_mm']:.2f} mm vs "
                             f"{found_other['mpjpe_mm']:.2f} mm for {other}")
        if parts:
            lines.append(f"- noise {noise:g} mm, batch {batch}: gn_closed_form " + "; ".join(parts))
    return lines


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `bench-ik` on the `ikol-backend` command line (run(args, events) protocol)."""
    parser = subparsers.add_parser("bench-ik", help="benchmark the IK layer against baselines")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...]} as JSON')
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--noise-mm", nargs="+", type=float, default=list(NOISES_MM),
                        help="standard deviation of the noise on each coordinate")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--max-slow-batch", type=int, default=1024,
                        help="skip gn_autograd and adam above this batch (default 1024)")
    parser.add_argument("--init", choices=("analytic", "zero"), default="analytic",
                        help="Gauss-Newton start: closed-form aim (default) or zero swing (paper)")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--damping", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--model", default=None,
                        help="SMPL-format model file (.npz/.pkl); default: the default skeleton")
    parser.set_defaults(run=lambda args, events: main(args))
    return parser


def main(args: argparse.Namespace) -> None:
    """Run the benchmark from parsed arguments and print the table or the JSON; BackendError
    (reported as an error event) when it cannot run as asked."""
    import torch

    from .bench_core import GNSettings, run_benchmark

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError("bad_option", "--device cuda was asked for, but torch sees no CUDA "
                                         "device here (run `ikol-backend doctor`).")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        from ..body.smpl_file import load_smpl

        body = load_smpl(args.model)
    else:
        from ..body.default_skeleton import default_skeleton

        body = default_skeleton()
    rows = run_benchmark(
        body, tuple(args.methods), tuple(args.batches), tuple(args.noise_mm), args.device,
        getattr(torch, args.dtype), args.repeats, args.max_slow_batch,
        GNSettings(args.init, args.iterations, args.damping),
        progress=lambda row: print(f"bench-ik: {row}", file=sys.stderr, flush=True),
    )
    print(json.dumps({"rows": rows}) if args.json else format_table(rows))
