#!/usr/bin/env bash
# The GPU rows of the README's performance table, on a machine with one CUDA GPU, bf16:
#   bash benchmarks/run_gpu.sh [OUT_DIR]        (PYTHON=... to pick the interpreter; default python3)
# Each script prints ratios measured side by side in one process; the logs land in OUT_DIR (default gpu_results).
set -euo pipefail
out=$(realpath -m "${1:-gpu_results}")  # before the cd: a relative OUT_DIR means the caller's folder
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
$py benchmarks/bench_se.py --device cuda --dtype bf16 --repeats 30 | tee "$out/bench_se.txt"
$py benchmarks/bench_train.py --device cuda --dtype bf16 --skip-data --repeats 30 | tee "$out/bench_train.txt"
$py benchmarks/bench_models.py --device cuda --dtype bf16 --batch-sizes 1 32 256 --train-batch 128 --repeats 15 \
    | tee "$out/bench_models.txt"
