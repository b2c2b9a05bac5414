"""Benchmark of the IK layer against its baselines (the table in docs/ik_layer.md).

`ikol-backend bench-ik` itself, with its options and its error reports; run from the repository
root, for example:
    .venv/bin/python bench/ik_layer.py                      # all rows, a Markdown table
    .venv/bin/python bench/ik_layer.py --batches 1024 --methods gn_closed_form gn_autograd
    .venv/bin/python bench/ik_layer.py --json --device cuda --max-slow-batch 16384
After the table it prints how gn_closed_form compares with the other methods run alongside it.
"""

import sys

from ikol_backend.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench-ik", *sys.argv[1:]]))
