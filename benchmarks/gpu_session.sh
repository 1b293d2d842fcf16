#!/usr/bin/env bash
# One prepared run for a session that is lent a GPU (the device tool's machines have numba, numba-cuda,
# torch built for CUDA, pytest and hypothesis installed, and no network). From the repo root:
#
#     bash benchmarks/gpu_session.sh            # writes its logs under $OUT (or ./gpu-logs)
#
# 1. installs tinyattn in place without touching the network (the kernels/ -> tinyattn.kernels mapping
#    needs the install); 2. runs the CUDA tests on the real GPU (conftest.py sees nvidia-smi and leaves the
#    simulator off), the real-size ones included; 3. runs benchmarks/bench_cuda.py (--quick first, so a
#    short lease still gets a table, then the full sizes). Each step's output goes to its own log.
set -uo pipefail
logs="${OUT:-gpu-logs}"
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$logs/gpu.txt"
python3 -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | tail -3
export PYTHONUNBUFFERED=1
timeout 300 python3 -m pytest -q -rs tests/test_cuda_kernels.py tests/test_cuda_tensors.py 2>&1 | tee "$logs/gpu_tests.log"
timeout 150 python3 benchmarks/bench_cuda.py --quick 2>&1 | tee "$logs/bench_cuda_quick.md"
timeout 300 python3 benchmarks/bench_cuda.py 2>&1 | tee "$logs/bench_cuda.md"
