#!/usr/bin/env bash
# The one GPU check of the fused SE tail (senet.layers.se_triton), sized for ~6-8 minutes on one CUDA GPU, bf16:
#   bash benchmarks/run_gpu_triton.sh [OUT_DIR]   (PYTHON=... to pick the interpreter; default python3)
# Works without installing the project (src/ goes on PYTHONPATH). Steps:
# 1. correctness: the fused kernels against the eager block on the GPU, values and every gradient (needs pytest);
# 2. the SE overhead (se_* vs the same net without SE, interleaved in one process) with the eager tail and with the
#    fused tail (SENET_SE_KERNEL=triton): compare the two overhead ratios, not milliseconds across processes.
set -euo pipefail
out=$(realpath -m "${1:-gpu_results_triton}")
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$out/gpu.txt"
if $py -c "import pytest" 2>/dev/null; then
    $py -m pytest -q -p no:cacheprovider tests/test_se_triton.py -k gpu 2>&1 | tee "$out/correctness.txt"
else
    echo "pytest is not installed: correctness check skipped" | tee "$out/correctness.txt"
fi
for kernel in eager triton; do
    SENET_SE_KERNEL=$kernel $py benchmarks/bench_train.py --device cuda --dtype bf16 --skip-data --repeats 10 2>&1 \
        | tee "$out/bench_train_$kernel.txt"
    SENET_SE_KERNEL=$kernel $py benchmarks/bench_models.py --device cuda --dtype bf16 --batch-sizes 256 \
        --train-batch 128 --repeats 5 --skip-timm 2>&1 | tee "$out/bench_models_$kernel.txt"
done
