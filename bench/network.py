"""Benchmark of the IKOL24 network: frames per second by batch size and precision.

Runs the front end's network path (`frontends/ikol_net.run_network`: normalising uint8 crops,
the network, soft-argmax, and with --flip-test the mirrored crops too) on random crops with
random weights, and prints a Markdown table of the median over --runs timed runs after
--warmup untimed ones. Half precision (CUDA autocast) runs on CUDA only. From the repository
root, for example:
    .venv/bin/python bench/network.py --device cpu --batches 1 16 --runs 3
    .venv/bin/python bench/network.py --device cuda --batches 1 16 64 --precisions float32 half
"""

import argparse
import statistics
import time

import torch

from ikol_backend.frontends.ikol_net import CROP_SIZE, run_network
from ikol_backend.network.ikol24 import IKOL24


def time_batch(network: IKOL24, batch: int, half: bool, flip_test: bool, runs: int, warmup: int) -> float:
    """Median seconds for one batch of random crops through the network."""
    device = next(network.parameters()).device
    crops = torch.randint(0, 256, (batch, CROP_SIZE, CROP_SIZE, 3), dtype=torch.uint8, device=device)
    seconds = []
    for run in range(warmup + runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run_network(network, crops, half, flip_test)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if run >= warmup:
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--precisions", nargs="+", choices=("float32", "half"),
                        default=["float32", "half"])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before them")
    parser.add_argument("--flip-test", action="store_true", help="also run the mirrored crops")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    torch.manual_seed(0)
    network = IKOL24().eval().to(device)
    print(f"IKOL24 on {name}, torch {torch.__version__}, flip test {'on' if args.flip_test else 'off'}, "
          f"median of {args.runs} runs after {args.warmup} warm-up runs\n")
    print("| precision | batch | ms per batch | frames/s |")
    print("|---|---|---|---|")
    for precision in args.precisions:
        if precision == "half" and device.type != "cuda":
            print("| half | - | - | CUDA only |")
            continue
        for batch in args.batches:
            seconds = time_batch(network, batch, precision == "half", args.flip_test, args.runs, args.warmup)
            print(f"| {precision} | {batch} | {1000 * seconds:.1f} | {batch / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
