#!/usr/bin/env bash
# The checks that need a GPU, as one script for a machine with CUDA (see README, "Measured").
# Runs in the repository root after `./dev setup`; every step has its own time limit and the
# whole script stays within about 8 minutes. Prints the GPU's name first.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
echo "== CUDA tests"
timeout 240 "$py" -m pytest -q -rs -p no:cacheprovider \
  tests/backend/test_ikol_layer.py::test_cuda tests/backend/test_network.py::test_cuda_float32_and_half_agree_with_the_cpu \
  tests/backend/test_image_fit.py::test_cuda_gives_the_cpu_result
echo "== bench-ik --device cuda"
timeout 120 .venv/bin/ikol-backend bench-ik --device cuda --methods gn_closed_form analytic_swing_twist \
  --batches 1 1024 16384 --noise-mm 20 --repeats 5
echo "== bench/network.py --device cuda"
timeout 120 "$py" bench/network.py --device cuda --batches 1 8 64 --precisions float32 half --runs 5
echo "== the pipeline on a clip, --device cuda"
clip=$("$py" -c 'import sys; sys.path.insert(0, "bench"); from clips import walk_clip; print(walk_clip((1280, 720), 300))')
for device in cpu cuda; do
  timeout 120 .venv/bin/ikol-backend estimate "$clip" -o "/tmp/gpu_checks_$device.npz" --device "$device"
done
