"""Kernel benchmark: tinyattn's Numba matmul and softmax against NumPy (and PyTorch when installed).

    python benchmarks/bench_kernels.py [--repeats N]

Compilation is excluded (every kernel is called once before timing); each number is the median of
N timed calls. Prints the machine, then a markdown table for docs/benchmarks.md.
For a fair NumPy baseline run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (the script reports them).
"""
import argparse
import os
import platform
import time

import numba
import numpy as np

from tinyattn.kernels.cpu.matmul import matmul_nn
from tinyattn.kernels.cpu.softmax import softmax_forward

try:
    import torch
except ImportError:          # optional column
    torch = None


def median_time(fn, repeats):
    fn()                                  # warm-up: compilation, first-touch allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or cpu
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        blas = f"{b.get('name')} {b.get('version')}"
    except Exception:
        pass
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS", "OMP_", "MKL_", "NUMBA_")) or k == "BLIS_NUM_THREADS"}
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores, numba threads: {numba.get_num_threads()}",
        f"- numpy {np.__version__} (BLAS: {blas}), numba {numba.__version__}, "
        f"python {platform.python_version()}" + (f", torch {torch.__version__}" if torch else ", torch: not installed"),
        f"- env: {env if env else 'no OPENBLAS_/OMP_/MKL_/NUMBA_ variables set'}",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(machine())
    print()

    head = "| op | shape | tinyattn ms | numpy ms | tinyattn GFLOP/s | numpy GFLOP/s | tinyattn/numpy |"
    sep = "|---|---|---:|---:|---:|---:|---:|"
    if torch is not None:
        head += " torch ms | torch GFLOP/s |"
        sep += "---:|---:|"
        torch.set_num_threads(numba.get_num_threads())
    print(head)
    print(sep)
    shapes = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (1024, 64, 256), (1024, 64, 64)]
    for M, K, N in shapes:
        a = rng.standard_normal((1, M, K)).astype(np.float32)
        b = rng.standard_normal((1, K, N)).astype(np.float32)
        a2, b2 = a[0], b[0]
        flop = 2.0 * M * N * K
        t_ta = median_time(lambda: matmul_nn(a, b), args.repeats)
        t_np = median_time(lambda: a2 @ b2, args.repeats)
        row = (f"| matmul f32 | ({M}x{K})·({K}x{N}) | {t_ta * 1e3:.3f} | {t_np * 1e3:.3f} | "
               f"{flop / t_ta / 1e9:.1f} | {flop / t_np / 1e9:.1f} | {t_np / t_ta:.2f} |")
        if torch is not None:
            ta_, tb_ = torch.from_numpy(a2), torch.from_numpy(b2)
            t_t = median_time(lambda: torch.matmul(ta_, tb_), args.repeats)
            row += f" {t_t * 1e3:.3f} | {flop / t_t / 1e9:.1f} |"
        print(row, flush=True)

    # batched small products, as in multi-head attention with short sequences
    a = rng.standard_normal((128, 32, 16)).astype(np.float32)
    b = rng.standard_normal((128, 16, 32)).astype(np.float32)
    flop = 2.0 * 128 * 32 * 32 * 16
    t_ta = median_time(lambda: matmul_nn(a, b), args.repeats)
    t_np = median_time(lambda: a @ b, args.repeats)
    row = (f"| matmul f32 | 128×(32x16)·(16x32) | {t_ta * 1e3:.3f} | {t_np * 1e3:.3f} | "
           f"{flop / t_ta / 1e9:.1f} | {flop / t_np / 1e9:.1f} | {t_np / t_ta:.2f} |")
    if torch is not None:
        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        t_t = median_time(lambda: torch.matmul(ta_, tb_), args.repeats)
        row += f" {t_t * 1e3:.3f} | {flop / t_t / 1e9:.1f} |"
    print(row, flush=True)
    print()

    # softmax: fused kernel vs the NumPy composite (max, subtract, exp, sum, divide)
    x = rng.standard_normal((4096, 1024)).astype(np.float32)

    def np_softmax():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    head = "| op | shape | tinyattn ms | numpy composite ms | speedup |"
    sep = "|---|---|---:|---:|---:|"
    if torch is not None:
        head += " torch.softmax ms |"
        sep += "---:|"
    print(head)
    print(sep)
    t_ta = median_time(lambda: softmax_forward(x), args.repeats)
    t_np = median_time(np_softmax, args.repeats)
    row = f"| softmax fwd f32 | 4096x1024 | {t_ta * 1e3:.3f} | {t_np * 1e3:.3f} | {t_np / t_ta:.2f}x |"
    if torch is not None:
        tx = torch.from_numpy(x)
        t_t = median_time(lambda: torch.softmax(tx, dim=-1), args.repeats)
        row += f" {t_t * 1e3:.3f} |"
    print(row)


if __name__ == "__main__":
    main()
