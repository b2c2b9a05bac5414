"""Benchmark of the IK layer against its baselines (the table in docs/ik_layer.md).

The same code as `ikol-backend bench-ik`; run from the repository root, for example:
    .venv/bin/python bench/ik_layer.py                      # all rows, a Markdown table
    .venv/bin/python bench/ik_layer.py --batches 1024 --methods gn_closed_form gn_autograd
    .venv/bin/python bench/ik_layer.py --json --device cuda --max-slow-batch 16384
After the table it prints how gn_closed_form compares with the other methods run alongside it.
"""

import argparse

from ikol_backend.ik.benchmark import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    main(parser.parse_args())
