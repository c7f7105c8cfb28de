#!/usr/bin/env bash
# The one GPU check of the fused SE tail (senet.layers.se_triton), sized for ~10 minutes on one CUDA GPU, bf16:
#   bash benchmarks/run_gpu_triton.sh [OUT_DIR]   (PYTHON=... to pick the interpreter; default python3)
# 1. correctness: the fused kernels against the eager block on the GPU (values and every gradient);
# 2. the SE overhead (se_* vs the same net without SE, one process each, interleaved) with the eager tail and with
#    the fused tail (SENET_SE_KERNEL=triton): compare the two overhead ratios, not milliseconds across processes.
set -euo pipefail
out=$(realpath -m "${1:-gpu_results_triton}")
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$out/gpu.txt"
$py -m pytest -q -p no:cacheprovider tests/test_se_triton.py -k gpu 2>&1 | tee "$out/correctness.txt"
for kernel in eager triton; do
    SENET_SE_KERNEL=$kernel $py benchmarks/bench_train.py --device cuda --dtype bf16 --skip-data --repeats 20 \
        | tee "$out/bench_train_$kernel.txt"
    SENET_SE_KERNEL=$kernel $py benchmarks/bench_models.py --device cuda --dtype bf16 --batch-sizes 256 \
        --train-batch 128 --repeats 10 --skip-timm | tee "$out/bench_models_$kernel.txt"
done
