#!/usr/bin/env bash
# The CUDA figures the README quotes, in one run on a machine with a GPU and elasticnas
# installed (pip install -e .): the CUDA checks, the latency-table benchmark on CUDA (torch
# runtime, CUDA-event timing) and the sampling-strategy benchmark on CUDA with mixed precision.
# Each stage has its own time limit, so one slow stage does not lose the others' results.
#
#     bash experiments/run_on_gpu.sh [OUT_FOLDER]
#
# Results land in experiments/results/ (files ending _cuda, cuda_check.csv, and CUDA rows of
# latency_table.csv) and are copied to OUT_FOLDER when given.
set -u
out=${1:-}
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

stage() {  # stage SECONDS COMMAND...: run with a time limit, report how it ended
    local limit=$1; shift
    local started=$SECONDS
    timeout "$limit" "$@"
    echo "== stage [$*] ended with $? after $((SECONDS - started)) s"
}

stage 120 python3 experiments/check_cuda.py
stage 180 python3 experiments/bench_latency_table.py --device cuda --runtimes torch --cases tiny,ofa160 --subnets 30
stage 240 python3 experiments/bench_sampling_strategies.py --device cuda --configs mnist_sandwich,mnist_uniform_smallest \
    --epochs 8

if [ -n "$out" ]; then
    cp experiments/results/cuda_check.csv experiments/results/latency_table.csv \
       experiments/results/sampling_strategies_cuda.csv experiments/results/sampling_strategies_subnets_cuda.csv \
       "$out"/ 2>/dev/null
fi
