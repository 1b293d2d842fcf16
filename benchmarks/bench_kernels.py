"""Kernel benchmark: tinyattn's Numba matmul and softmax against NumPy (and PyTorch when installed).

    python benchmarks/bench_kernels.py [--threads N] [--rounds R]
                                       [--only models|square|softmax|matmul_paths|rows|model_products]
                                       [--kernel avx512|avx2|portable] [--clock wall|thread]

Compilation is excluded (every kernel is called once before timing). Prints the machine, then markdown
tables for docs/benchmarks.md:
- models: the matmuls of the two training benchmarks' Linear layers (forward x @ W^T, input gradient
  dy @ W, weight gradient dy^T @ x) and 1024^2, against numpy's BLAS at the same thread count, in
  interleaved rounds: each round takes the best of 3 calls of each, the ratio is the median over rounds (and,
  beside it, best time over best time);
- square: a few square and thin shapes (median of --repeats calls), with torch beside them;
- softmax: the fused kernel against the NumPy composite;
- matmul_paths (only with --only): the public operator (`@`, mm, bmm, einsum, F.linear) on transposed, sliced
  and batched views, forward and forward + backward, against NumPy and PyTorch in interleaved rounds;
- model_products (only with --only): the Linear products of the two gpt-style models (768 tokens: nanoGPT's
  batch 12 x T 64; 2048: bench_train.py --model gpt) as a training step issues them (x @ W^T + b through
  matmul_nt with the bias, dy @ W, dW = dy^T x with db fused), against PyTorch (addmm, mm, mm + sum), warm
  (same inputs call after call) and cold (a 32 MB read between calls evicts them from L2, as in a step), one
  call of each side per round, the order alternating: median times and the median of per-round ratios;
- rows (only with --only): the memory-bound row ops (softmax, log_softmax, layer_norm, gelu, relu, sigmoid,
  silu, cross_entropy, the residual add) through the public API at the model's and at large shapes, forward
  and forward + backward, against PyTorch in interleaved rounds, with the bandwidth each reaches.
--threads sets Numba's, numpy's BLAS (through threadpoolctl, or else OPENBLAS_NUM_THREADS before numpy loads,
unless already set) and torch's thread counts.
For a fair NumPy baseline run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (the script reports them
and the kernel OpenBLAS chose).
"""
import argparse
import os
import platform
import sys
import time


def _blas_threads_from_argv():
    """--threads N, read before numpy loads OpenBLAS: without threadpoolctl the only way to limit its threads
    (and so give the NumPy column under --clock thread the CPU time of all the threads that did the work)."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


_blas_threads = _blas_threads_from_argv()
if _blas_threads and "OPENBLAS_NUM_THREADS" not in os.environ:
    os.environ["OPENBLAS_NUM_THREADS"] = _blas_threads

try:  # before tinyattn and Numba: imported after them, both sides of a round ran 3-6x slower here (2 threads)
    import torch
except ImportError:          # optional column
    torch = None

import numba  # noqa: E402
import numpy as np  # noqa: E402

from tinyattn.kernels.cpu import matmul as mm  # noqa: E402
from tinyattn.kernels.cpu.matmul import matmul_nn  # noqa: E402
from tinyattn.kernels.cpu.softmax import softmax_forward  # noqa: E402

try:
    import threadpoolctl
except ImportError:          # optional: without it numpy's BLAS keeps its own thread count
    threadpoolctl = None


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
    ap.add_argument("--only", choices=("models", "square", "softmax", "matmul_paths", "rows", "model_products"),
                    default=None,
                    help="matmul_paths: the public matmul operator on strided, batched, einsum and F.linear "
                         "layouts, forward and backward, against NumPy and PyTorch (not in the default run)")
    ap.add_argument("--match", default=None, help="matmul_paths, rows: only the cases (ops) whose name contains this")
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
            print(f"(threadpoolctl not installed: numpy's BLAS threads set by OPENBLAS_NUM_THREADS="
                  f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} before numpy loaded)")
    if args.kernel:
        mm.KERNEL = args.kernel
    rng = np.random.default_rng(0)
    print(machine())
    print(f"- clock: {args.clock}")
    print()
    if args.only == "matmul_paths":
        return matmul_paths(rng, args)
    if args.only == "rows":
        return rows_table(rng, args)
    if args.only == "model_products":
        return model_products(rng, args)
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


# ---- matmul_paths: the public operator on strided / batched / einsum / linear-weight layouts --------------
# Each case builds its leaves three times over one set of values (tinyattn tensors, NumPy arrays, torch tensors)
# and takes the same views of them in the timed call. Forward: tinyattn's operator against NumPy's matmul on
# the same views (its BLAS) and PyTorch's operator. Forward + backward (upstream gradient g): tinyattn's
# autograd against PyTorch's, and against NumPy computing the same three products on the same views
# (kind "mm": C = a @ b, da = g b^T, db = a^T g; kind "mt": C = a b^T, da = g b, db = g^T a).


def _np3(kind, a, b, g=None):
    sw = np.swapaxes
    if g is None:
        return a @ b if kind == "mm" else a @ sw(b, -1, -2)
    if kind == "mm":
        return a @ b, g @ sw(b, -1, -2), sw(a, -1, -2) @ g
    db = sw(g, -1, -2) @ a
    return a @ sw(b, -1, -2), g @ b, db if db.ndim == b.ndim else db.sum(axis=0)


def _paths_cases(rng):
    import tinyattn as ta
    import tinyattn.nn.functional as F

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def tr(x, i, j):                               # x.transpose(i, j) in all three libraries
        return np.swapaxes(x, i, j) if isinstance(x, np.ndarray) else x.transpose(i, j)

    def heads(t, B, T, H, D, i):   # nanoGPT: c_attn(x).split(C, 2)[i].view(B, T, H, D).transpose(1, 2)
        C = H * D
        return tr(t[..., i * C:(i + 1) * C].reshape(B, T, H, D), 1, 2)

    mm = (lambda a, b: a @ b)
    cases = []                                     # (name, kind, multiply-adds, leaves, view, tinyattn op, torch op)
    cases.append(("dy.T @ x (512x2048)·(2048x128)", "mm", 512 * 2048 * 128, [arr(2048, 512), arr(2048, 128)],
                  lambda d, x: (d.T, x), mm, mm))
    cases.append(("dy.T @ x (384x2048)·(2048x128)", "mm", 384 * 2048 * 128, [arr(2048, 384), arr(2048, 128)],
                  lambda d, x: (d.T, x), mm, mm))
    cases.append(("x @ W.T (2048x128)·(128x384)", "mm", 2048 * 128 * 384, [arr(2048, 128), arr(384, 128)],
                  lambda x, w: (x, w.T), mm, mm))
    cases.append(("a.T @ b.T (1024x256)·(256x512)", "mm", 1024 * 256 * 512, [arr(256, 1024), arr(512, 256)],
                  lambda a, b: (a.T, b.T), mm, mm))
    cases.append(("x[:, ::2] @ W (1024x256)·(256x256)", "mm", 1024 * 256 * 256, [arr(1024, 512), arr(256, 256)],
                  lambda x, w: (x[:, ::2], w), mm, mm))
    for B, T, H, D in ((32, 16, 4, 16), (32, 64, 4, 32), (4, 512, 8, 64)):
        C = H * D
        cases.append((f"q @ k.transpose(-2, -1) B{B} H{H} T{T} D{D}, views", "mm", B * H * T * T * D,
                      [arr(B, T, 3 * C)],
                      lambda t, B=B, T=T, H=H, D=D: (heads(t, B, T, H, D, 0), tr(heads(t, B, T, H, D, 1), -2, -1)),
                      mm, mm))
        cases.append((f"att @ v B{B} H{H} T{T} D{D}, v a view", "mm", B * H * T * T * D,
                      [arr(B, H, T, T), arr(B, T, 3 * C)],
                      lambda a, t, B=B, T=T, H=H, D=D: (a, heads(t, B, T, H, D, 2)), mm, mm))
    B, T, H, D = 32, 64, 4, 32
    for eq, kind, leaves, view, macs in (
            ("bhtd,bhsd->bhts", "mt", [arr(B, T, 3 * H * D)],
             lambda t: (heads(t, B, T, H, D, 0), heads(t, B, T, H, D, 1)), B * H * T * T * D),
            ("bij,bjk->bik", "mm", [arr(128, 64, 32), arr(128, 32, 64)], None, 128 * 64 * 32 * 64),
            ("ij,kj->ik", "mt", [arr(1024, 256), arr(512, 256)], None, 1024 * 256 * 512),
            ("bti,oi->bto", "mt", [arr(32, 64, 128), arr(384, 128)], None, 32 * 64 * 128 * 384)):
        cases.append((f"einsum {eq} " + " ".join("x".join(map(str, x.shape)) for x in leaves), kind, macs, leaves,
                      view or (lambda a, b: (a, b)), lambda a, b, eq=eq: ta.einsum(eq, a, b),
                      lambda a, b, eq=eq: torch.einsum(eq, a, b)))
    cases.append(("F.linear(x, W.t()) 2048x128 -> 384, W (128, 384)", "mt", 2048 * 128 * 384,
                  [arr(2048, 128), arr(128, 384)], lambda x, w: (x, w.T), F.linear, torch.nn.functional.linear))
    cases.append(("F.linear(x.transpose(0, 1), W) (64,32,128) -> 384", "mt", 2048 * 128 * 384,
                  [arr(32, 64, 128), arr(384, 128)], lambda x, w: (tr(x, 0, 1), w), F.linear,
                  torch.nn.functional.linear))
    cases.append(("bmm(a, b.transpose(1, 2)) 128x(64x32)·(32x64)", "mm", 128 * 64 * 64 * 32,
                  [arr(128, 64, 32), arr(128, 64, 32)], lambda a, b: (a, tr(b, 1, 2)), ta.bmm, torch.bmm))
    cases.append(("mm(a.t(), b) (512x2048)·(2048x128)", "mm", 512 * 2048 * 128, [arr(2048, 512), arr(2048, 128)],
                  lambda a, b: (a.T, b), ta.mm, torch.mm))
    return cases


def interleaved_n(fns, rounds, budget=0.02):
    """interleaved() for several sides (side 0 is ours): per side per round the best of at least 3 (5 with SETTLE)
    calls, and of as many as fill about `budget` seconds (at most 200), the order rotating; returns (best time of
    each side, median over rounds of side's time / ours). Each side gets the same number of calls, sized from the
    slower side's best warm call: after SETTLE's sleep the first calls of a small op wait for the idle cores to wake
    (this KVM guest: tens to hundreds of us), so a best of 5 measured that wake-up rather than the op."""
    for f in fns:
        f()                                        # warm-up: compilation, first-touch allocation
    warm = max(best_time(f, 3) for f in fns)      # the slower side's warm call
    reps = max(5 if SETTLE else 3, min(200, int(budget / warm)))
    times = [[] for _ in fns]
    for r in range(rounds):
        for i in [(r + j) % len(fns) for j in range(len(fns))]:
            time.sleep(SETTLE)
            times[i].append(best_time(fns[i], reps))
    return [min(t) for t in times], [float(np.median(np.array(t) / np.array(times[0]))) for t in times]


def matmul_paths(rng, args):
    import tinyattn as ta
    if torch is None:
        print("(matmul_paths needs torch)")
        return
    torch.set_num_threads(numba.get_num_threads())
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| case | pass | tinyattn ms | numpy ms | torch ms | numpy/tinyattn (median) | torch/tinyattn (median) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, kind, macs, leaves, view, taf, tf in _paths_cases(rng):
        if args.match and args.match not in name:
            continue
        ta_in = [ta.from_numpy(x.copy()) for x in leaves]
        t_in = [torch.from_numpy(x.copy()) for x in leaves]
        ta_req = [ta.from_numpy(x.copy()).requires_grad_() for x in leaves]
        t_req = [torch.from_numpy(x.copy()).requires_grad_() for x in leaves]
        g = rng.standard_normal(tuple(tf(*view(*t_in)).shape)).astype(np.float32)
        tg, tag = torch.from_numpy(g), ta.from_numpy(g)

        def ta_fwd():
            with ta.no_grad():
                return taf(*view(*ta_in))

        def t_fwd():
            with torch.no_grad():
                return tf(*view(*t_in))

        def ta_bwd():
            for x in ta_req:
                x.grad = None
            taf(*view(*ta_req)).backward(tag)

        def t_bwd():
            for x in t_req:
                x.grad = None
            tf(*view(*t_req)).backward(tg)

        sides = {"fwd": [ta_fwd, lambda: _np3(kind, *view(*leaves)), t_fwd],
                 "fwd+bwd": [ta_bwd, lambda: _np3(kind, *view(*leaves), g), t_bwd]}
        for pas, fns in sides.items():
            best, ratios = interleaved_n(fns, args.rounds)
            print(f"| {name} | {pas} | {best[0] * 1e3:.3f} | {best[1] * 1e3:.3f} | {best[2] * 1e3:.3f} | "
                  f"{ratios[1]:.2f} | {ratios[2]:.2f} |", flush=True)
    print(f"\n- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


# ---- model_products: a training step's Linear products, warm and cold, against PyTorch ---------------------
# (in, out) features of the gpt-style models' Linear layers (d 128: qkv, attention out, MLP up, MLP down, head)
PRODUCT_LINEARS = [(128, 384), (128, 128), (128, 512), (512, 128), (128, 96)]


def model_products(rng, args):
    if torch is None:
        print("(model_products needs torch)")
        return
    torch.set_num_threads(numba.get_num_threads())
    flush = np.ones(8 << 20, np.float32)           # 32 MB: more than both cores' L2
    rounds = max(args.rounds, 15)
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {rounds} rounds; "
          f"clock {'thread CPU time' if CLOCK is time.thread_time else 'wall'}\n")
    print("| tokens | layer (in->out) | product | mode | tinyattn us | torch us | torch/tinyattn (median) |")
    print("|---:|---|---|---|---:|---:|---:|")
    ratios = {"warm": [], "cold": []}
    for M in (768, 2048):
        for fin, fout in PRODUCT_LINEARS:
            x = rng.standard_normal((1, M, fin)).astype(np.float32)
            w = rng.standard_normal((1, fout, fin)).astype(np.float32)
            b = rng.standard_normal(fout).astype(np.float32)
            dy = rng.standard_normal((1, M, fout)).astype(np.float32)
            tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x[0], w[0], b, dy[0]))
            cases = [
                ("x @ W^T + b", lambda: mm.matmul_nt(x, w, None, b), lambda: torch.addmm(tb, tx, tw.t())),
                ("dy @ W", lambda: mm.matmul_nn(dy, w), lambda: torch.mm(tdy, tw)),
                ("dy^T @ x, db", lambda: mm.matmul_tn(dy, x, None, True), lambda: (torch.mm(tdy.t(), tx), tdy.sum(0))),
            ]
            for prod, ours, theirs in cases:
                for mode in ("warm", "cold"):
                    ours(), theirs()
                    to, tt = [], []
                    for r in range(rounds):
                        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                            if mode == "cold":
                                flush.sum()
                            t0 = CLOCK()
                            (ours if side == 0 else theirs)()
                            (to if side == 0 else tt).append(CLOCK() - t0)
                    ratio = float(np.median(np.array(tt) / np.array(to)))
                    ratios[mode].append(ratio)
                    print(f"| {M} | {fin}->{fout} | {prod} | {mode} | {np.median(to) * 1e6:.1f} | "
                          f"{np.median(tt) * 1e6:.1f} | {ratio:.2f} |", flush=True)
    for mode, r in ratios.items():
        print(f"\n{mode}: geometric mean torch/tinyattn {float(np.exp(np.mean(np.log(r)))):.2f}, worst {min(r):.2f}, "
              f"{sum(v >= 1.0 for v in r)}/{len(r)} at >= 1.0")
    print(f"\n- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def rows_table(rng, args):
    """The memory-bound row ops through the public API, tinyattn against PyTorch (torch first in the process
    when installed: it is imported at the top). fwd: the op under no_grad; fwd+bwd: the op on a leaf that
    requires grad, then backward of a fixed upstream gradient (the loss: of 1). GB/s = the bytes the op must
    move (inputs read once, outputs written once: x and y forward, y (or x), dy and dx backward) / time."""
    import tinyattn as ta
    import tinyattn.nn.functional as F

    if torch is None:
        print("rows: needs torch")
        return
    import torch.nn.functional as TF

    torch.set_num_threads(numba.get_num_threads())
    f32 = np.float32
    gpt, big = (32 * 64, 128), (4096, 1024)
    cases = []  # (op, shape, (ours(x, extra), theirs(x, extra)), extra maker, forward bytes, backward bytes)

    def add(op, shape, ours, theirs, extra=None, fwd_b=None, bwd_b=None):
        n = 4 * int(np.prod(shape))
        cases.append((op, shape, ours, theirs, extra, fwd_b or 2 * n, bwd_b or 3 * n))

    for shape in (gpt, (32 * 4 * 64, 64), (4 * 8 * 256, 256), big):
        add("softmax", shape, lambda x, e: F.softmax(x, -1), lambda x, e: torch.softmax(x, -1))
        add("log_softmax", shape, lambda x, e: F.log_softmax(x, -1), lambda x, e: torch.log_softmax(x, -1))
    nano = (12 * 64, 128)  # nanoGPT's Shakespeare-char recipe on the CPU: batch 12, T 64, d 128
    for shape in (nano, gpt, big):
        d = shape[1]
        add("layer_norm", shape, lambda x, e: F.layer_norm(x, x.shape[-1:], e[0], e[1]),
            lambda x, e: TF.layer_norm(x, x.shape[-1:], e[0], e[1]),
            lambda d=d: [rng.standard_normal(d).astype(f32) for _ in range(2)])
    for shape in ((32 * 64, 512), big):
        add("gelu tanh", shape, lambda x, e: F.gelu(x, approximate="tanh"),
            lambda x, e: TF.gelu(x, approximate="tanh"), bwd_b=3 * 4 * int(np.prod(shape)))
    for shape in ((12 * 64, 512), (32 * 64, 512), (4096, 4096)):  # nanoGPT's and gpt's MLP hidden, a large one
        add("gelu", shape, lambda x, e: F.gelu(x), lambda x, e: TF.gelu(x))
    for shape in ((32 * 64, 512), big):  # a SwiGLU-style MLP hidden (SiLU), a gate (sigmoid), ReLU's MLP
        add("relu", shape, lambda x, e: F.relu(x), lambda x, e: TF.relu(x))
        add("sigmoid", shape, lambda x, e: ta.sigmoid(x), lambda x, e: torch.sigmoid(x))
        add("silu", shape, lambda x, e: F.silu(x), lambda x, e: TF.silu(x), bwd_b=3 * 4 * int(np.prod(shape)))
    for shape in ((12 * 64, 95), (32 * 64, 96), big):  # nanoGPT's logits, gpt's, a large vocabulary
        n = 4 * int(np.prod(shape))
        add("cross_entropy", shape, lambda x, e: F.cross_entropy(x, e[0]), lambda x, e: TF.cross_entropy(x, e[0]),
            lambda s=shape: [rng.integers(0, s[1], s[0])], fwd_b=n, bwd_b=2 * n)
    for shape in (nano, gpt, big):
        n = 4 * int(np.prod(shape))
        add("add (residual)", shape, lambda x, e: x + e[0], lambda x, e: x + e[0],
            lambda s=shape: [rng.standard_normal(s).astype(f32)], fwd_b=3 * n, bwd_b=2 * n)

    print("| op | shape | pass | tinyattn us | torch us | tinyattn/torch speed (median) | tinyattn GB/s | torch GB/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for op, shape, ours, theirs, extra, fwd_b, bwd_b in cases:
        if args.match and args.match not in op:  # --match: only the ops whose name contains it
            continue
        x = rng.standard_normal(shape).astype(f32)
        ex = extra() if extra else []
        e_ta = [ta.tensor(a) for a in ex]
        e_t = [torch.from_numpy(a) for a in ex]
        g = rng.standard_normal(shape).astype(f32)
        xt, xo = ta.tensor(x), torch.from_numpy(x)
        xt_g, xo_g = ta.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        gt, go = ta.tensor(g), torch.from_numpy(g)

        def fwd_ours():
            with ta.no_grad():
                ours(xt, e_ta)

        def fwd_theirs():
            with torch.no_grad():
                theirs(xo, e_t)

        def both_ours():
            y = ours(xt_g, e_ta)
            y.backward() if y.ndim == 0 else y.backward(gt)
            xt_g.grad = None

        def both_theirs():
            y = theirs(xo_g, e_t)
            y.backward() if y.ndim == 0 else y.backward(go)
            xo_g.grad = None

        for name, fns, nbytes in (("fwd", (fwd_ours, fwd_theirs), fwd_b), ("fwd+bwd", (both_ours, both_theirs),
                                                                            fwd_b + bwd_b)):
            best, ratio = interleaved_n(fns, args.rounds)
            print(f"| {op} | {shape[0]}x{shape[1]} | {name} | {best[0] * 1e6:.1f} | {best[1] * 1e6:.1f} | "
                  f"{ratio[1]:.2f} | {nbytes / best[0] / 1e9:.1f} | {nbytes / best[1] / 1e9:.1f} |", flush=True)


if __name__ == "__main__":
    main()
