#!/usr/bin/env bash
# The GPU check, in one run: the test suite with cuda as the default device, then the GPT
# train-step benchmark on cuda against PyTorch CUDA eager (small and medium), then the
# fused-op benchmark. Results go to $OUT (default: gpu_results/).
# Needs CuPy, PyTorch with CUDA, pytest and hypothesis; installs nothing from the network.
#   bash scripts/gpu_check.sh            # about 5 to 8 minutes on one H200
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_results}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy',
numpy.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee "$OUT/machine.txt"

# 1. tests: every device-aware test on the GPU (the cuda fixture fails, not skips, if the GPU
#    is missing); the data-parallel MPI tests stay on the CPU and are left out.
TINYGRAD_LM_DEVICE=cuda timeout 300 python3 -m pytest -q -x -p no:cacheprovider \
    --ignore=tests/test_distributed.py tests 2>&1 | tee "$OUT/tests.log" || status=1
TINYGRAD_LM_DEVICE=cuda timeout 60 python3 -m pytest -q -p no:cacheprovider \
    tests/test_distributed.py -k nccl 2>&1 | tee -a "$OUT/tests.log" || status=1

# 2. benchmarks against PyTorch CUDA eager, each library in its own worker process, taking turns
timeout 240 python3 -m benchmarks.bench_gpt --device cuda --config small medium \
    --json "$OUT/gpt_cuda.json" 2>&1 | tee "$OUT/bench_gpt.log" || status=1
timeout 240 python3 -m benchmarks.bench_fused --device cuda --json "$OUT/fused_cuda.json" \
    2>&1 | tee "$OUT/bench_fused.log" || status=1
exit $status
