"""Kernel benchmark: tinyattn's Numba matmul and softmax against NumPy (and PyTorch when installed).

    python benchmarks/bench_kernels.py [--threads N] [--rounds R] [--only models|square|softmax]
                                       [--kernel avx512|avx2|portable] [--clock wall|thread]

Compilation is excluded (every kernel is called once before timing). Prints the machine, then markdown
tables for docs/benchmarks.md:
- models: the matmuls of the two training benchmarks' Linear layers (forward x @ W^T, input gradient
  dy @ W, weight gradient dy^T @ x) and 1024^2, against numpy's BLAS at the same thread count, in
  interleaved rounds: each round takes the best of 3 calls of each, the ratio is the median over rounds (and,
  beside it, best time over best time);
- square: a few square and thin shapes (median of --repeats calls), with torch beside them;
- softmax: the fused kernel against the NumPy composite.
--threads sets Numba's, numpy's BLAS (through threadpoolctl, when installed) and torch's thread counts.
For a fair NumPy baseline run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (the script reports them
and the kernel OpenBLAS chose).
"""
import argparse
import os
import platform
import time

import numba
import numpy as np

from tinyattn.kernels.cpu import matmul as mm
from tinyattn.kernels.cpu.matmul import matmul_nn
from tinyattn.kernels.cpu.softmax import softmax_forward

try:
    import threadpoolctl
except ImportError:          # optional: without it numpy's BLAS keeps its own thread count
    threadpoolctl = None

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
    arch = "unknown (install threadpoolctl to see it)"
    if threadpoolctl is not None:
        info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        arch = ", ".join(f"{i.get('internal_api')} {i.get('architecture')} kernel, {i.get('num_threads')} threads"
                         for i in info) or "none found"
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS", "OMP_", "MKL_", "NUMBA_")) or k == "BLIS_NUM_THREADS"}
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores, numba threads: {numba.get_num_threads()}",
        f"- numpy {np.__version__} (BLAS: {blas}), numba {numba.__version__}, "
        f"python {platform.python_version()}" + (f", torch {torch.__version__}" if torch else ", torch: not installed"),
        f"- numpy BLAS at run time: {arch}; tinyattn matmul kernel: {mm.KERNEL}",
        f"- env: {env if env else 'no OPENBLAS_/OMP_/MKL_/NUMBA_ variables set'}",
    ]
    return "\n".join(lines)


# (tokens M, in features, out features) of every Linear layer in benchmarks/bench_train.py whose sizes
# are in {64, ..., 512}: the reverse model (M = 32 x 32) and the gpt model (M = 32 x 64)
MODEL_LINEARS = [
    ("reverse qkv", 1024, 64, 192), ("reverse out", 1024, 64, 64), ("reverse ff1", 1024, 64, 256),
    ("reverse ff2", 1024, 256, 64),
    ("gpt qkv", 2048, 128, 384), ("gpt proj", 2048, 128, 128), ("gpt fc", 2048, 128, 512),
    ("gpt fc proj", 2048, 512, 128), ("gpt head", 2048, 128, 96),
]


CLOCK = time.perf_counter      # --clock thread: time.thread_time, this thread's CPU time


def best_time(fn, n=3):
    times = []
    for _ in range(n):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return min(times)


SETTLE = 0.0     # seconds between the two sides of a round (--threads > 1: 0.25, see interleaved)


def interleaved(ours, theirs, rounds):
    """Best-of-3 times of each, round by round (the order alternating); (best ours, best theirs, median of
    the per-round ratios theirs/ours, i.e. our speed relative to theirs).

    With several threads each side first waits SETTLE seconds: idle worker threads spin before they sleep
    (OpenBLAS's for about 2^28 cycles by default, OpenMP's briefly), and a side timed right after the other
    shares its cores with those spinning threads: every parallel call then waits for a scheduler tick
    (measured: best-of-3 times of both sides stuck at multiples of 4 ms)."""
    ours(), theirs()                      # warm-up: compilation, first-touch allocation
    to, tt, ratios = [], [], []

    def timed(fn):
        time.sleep(SETTLE)
        return best_time(fn, 5 if SETTLE else 3)

    for r in range(rounds):
        if r % 2:
            b = timed(theirs)
            a = timed(ours)
        else:
            a = timed(ours)
            b = timed(theirs)
        to.append(a)
        tt.append(b)
        ratios.append(b / a)
    return min(to), min(tt), float(np.median(ratios))


def model_shapes(rng, rounds, kernel):
    print("| layer | product | shape (M x K) @ (K x N) | tinyattn GFLOP/s | numpy GFLOP/s | tinyattn/numpy (median) "
          "| best/best | goal 0.85 |")
    print("|---|---|---|---:|---:|---:|---:|:---:|")
    ratios = []
    cases = []
    for name, M, fin, fout in MODEL_LINEARS:
        x = rng.standard_normal((1, M, fin)).astype(np.float32)
        w = rng.standard_normal((1, fout, fin)).astype(np.float32)
        dy = rng.standard_normal((1, M, fout)).astype(np.float32)
        x2, w2, dy2 = x[0], w[0], dy[0]
        cases += [
            (name, "x @ W^T", (M, fin, fout), lambda x=x, w=w: mm.matmul_nt(x, w, kernel),
             lambda x2=x2, w2=w2: x2 @ w2.T),
            (name, "dy @ W", (M, fout, fin), lambda dy=dy, w=w: mm.matmul_nn(dy, w, kernel),
             lambda dy2=dy2, w2=w2: dy2 @ w2),
            (name, "dy^T @ x", (fout, M, fin), lambda dy=dy, x=x: mm.matmul_tn(dy, x, kernel),
             lambda dy2=dy2, x2=x2: dy2.T @ x2),
        ]
    a = rng.standard_normal((1, 1024, 1024)).astype(np.float32)
    b = rng.standard_normal((1, 1024, 1024)).astype(np.float32)
    cases.append(("square", "a @ b", (1024, 1024, 1024), lambda: mm.matmul_nn(a, b, kernel), lambda: a[0] @ b[0]))
    for name, prod, (M, K, N), ours, theirs in cases:
        t_o, t_n, ratio = interleaved(ours, theirs, rounds)
        flop = 2.0 * M * N * K
        if name != "square":
            ratios.append(ratio)
        print(f"| {name} | {prod} | ({M}x{K})·({K}x{N}) | {flop / t_o / 1e9:.1f} | {flop / t_n / 1e9:.1f} | "
              f"{ratio:.2f} | {t_n / t_o:.2f} | {'met' if ratio >= 0.85 else 'not met'} |", flush=True)
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"\n{len(ratios)} model products: geometric mean {geo:.2f}, worst {min(ratios):.2f}, "
          f"{sum(r >= 0.85 for r in ratios)}/{len(ratios)} at >= 0.85\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per model shape")
    ap.add_argument("--threads", type=int, default=None, help="threads for tinyattn, numpy's BLAS and torch")
    ap.add_argument("--only", choices=("models", "square", "softmax"), default=None)
    ap.add_argument("--kernel", choices=("avx512", "avx2", "portable"), default=None,
                    help="tinyattn matmul kernel (default: the one chosen for this CPU)")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="thread: the calling thread's CPU time, robust to other processes on a busy machine "
                         "(with --threads 1 only: the work must run on this thread)")
    args = ap.parse_args()
    if args.clock == "thread":
        if args.threads != 1:
            ap.error("--clock thread needs --threads 1")
        global CLOCK
        CLOCK = time.thread_time
    if (args.threads or numba.get_num_threads()) > 1:
        global SETTLE
        SETTLE = 0.25
    if args.threads is not None:
        numba.set_num_threads(args.threads)
        if threadpoolctl is not None:
            threadpoolctl.threadpool_limits(args.threads, user_api="blas")
        else:
            print("(threadpoolctl not installed: numpy's BLAS threads are not limited; set OPENBLAS_NUM_THREADS)")
    if args.kernel:
        mm.KERNEL = args.kernel
    rng = np.random.default_rng(0)
    print(machine())
    print(f"- clock: {args.clock}")
    print()
    if args.only in (None, "models"):
        model_shapes(rng, args.rounds, args.kernel)
    if args.only not in (None, "square", "softmax"):
        return
    if args.only == "softmax":
        return softmax_table(rng, args)

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
    if args.only is None:
        softmax_table(rng, args)


def softmax_table(rng, args):
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
        torch.set_num_threads(numba.get_num_threads())
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
