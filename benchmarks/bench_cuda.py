"""GPU benchmark: tinyattn's numba.cuda kernels against PyTorch's (cuBLAS, cuDNN-free SDPA), on one GPU.

    python benchmarks/bench_cuda.py [--repeats 20] [--quick]
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --smoke    # the script itself, tiny, no GPU

Prints three Markdown tables for docs/benchmarks.md, each with the GPU's name:
- matmul float32, square sizes 1024 ... 8192: GFLOP/s of kernels/cuda/matmul.py:matmul_nn against
  torch.matmul with TF32 off (plain fp32 cuBLAS), and the ratio (goal: >= 0.5);
- softmax forward float32 over rows: GB/s (one read + one write of the array) of
  kernels/cuda/softmax.py:softmax_forward against torch.softmax (goal: >= 0.7);
- attention forward + backward float32, B=4, H=8, E=64: kernels/cuda/attention.py against
  torch.nn.functional.scaled_dot_product_attention, causal and not.

Each time is the median of --repeats calls, each from a synchronised device to a synchronised device
(launch overhead included), after two warm-up calls (compilation excluded). The reference needs PyTorch built
with CUDA; without it the tinyattn columns are still printed. Needs a real GPU: under Numba's simulator the
script refuses to run.
"""
import argparse
import math
import statistics
import time

import numpy as np
from numba import config, cuda


def _time(fn, repeats, sync):
    """Median milliseconds of fn() over `repeats` calls, each timed from a synchronised device to a
    synchronised device (so launch overhead counts, as it does for a user), after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32 cuBLAS, the fair reference
    torch.backends.cudnn.allow_tf32 = False
    return torch


def _cell(x, fmt="{:.1f}"):
    return "n/a" if x is None else fmt.format(x)


def bench_matmul(sizes, repeats, torch):
    from tinyattn.kernels.cuda import matmul

    print("\n| matmul f32 | tinyattn ms | tinyattn GFLOP/s | cuBLAS ms | cuBLAS GFLOP/s | tinyattn/cuBLAS |")
    print("|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for n in sizes:
        a = cuda.to_device(rng.standard_normal((1, n, n), dtype=np.float32))
        b = cuda.to_device(rng.standard_normal((1, n, n), dtype=np.float32))
        ours = _time(lambda: matmul.matmul_nn(a, b), repeats, cuda.synchronize)
        flops = 2.0 * n**3
        theirs = None
        if torch is not None:
            ta_, tb_ = torch.as_tensor(a, device="cuda")[0], torch.as_tensor(b, device="cuda")[0]
            theirs = _time(lambda: torch.matmul(ta_, tb_), repeats, torch.cuda.synchronize)
        rate = lambda ms: None if ms is None else flops / ms / 1e6
        ratio = None if theirs is None else theirs / ours
        print(f"| {n}³ | {ours:.3f} | {rate(ours):.0f} | {_cell(theirs, '{:.3f}')} | {_cell(rate(theirs), '{:.0f}')} "
              f"| {_cell(ratio, '{:.2f}')} |")


def bench_softmax(shapes, repeats, torch):
    from tinyattn.kernels.cuda import softmax

    print("\n| softmax fwd f32 | tinyattn ms | tinyattn GB/s | torch ms | torch GB/s | tinyattn/torch |")
    print("|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for rows, cols in shapes:
        x = cuda.to_device(rng.standard_normal((rows, cols), dtype=np.float32))
        ours = _time(lambda: softmax.softmax_forward(x), repeats, cuda.synchronize)
        gbytes = 2.0 * x.size * 4 / 1e9
        theirs = None
        if torch is not None:
            tx = torch.as_tensor(x, device="cuda")
            theirs = _time(lambda: torch.softmax(tx, dim=-1), repeats, torch.cuda.synchronize)
        bw = lambda ms: None if ms is None else gbytes / (ms / 1e3)
        ratio = None if theirs is None else theirs / ours
        print(f"| {rows}x{cols} | {ours:.3f} | {bw(ours):.0f} | {_cell(theirs, '{:.3f}')} "
              f"| {_cell(bw(theirs), '{:.0f}')} "
              f"| {_cell(ratio, '{:.2f}')} |")


def bench_attention(lengths, repeats, torch, B=4, H=8, E=64):
    from tinyattn.kernels.cuda import attention

    print(f"\n| attention fwd+bwd f32, B={B} H={H} E={E} | causal | tinyattn ms | torch SDPA ms "
          "| tinyattn/torch (time) |")
    print("|---:|:---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    scale = 1.0 / math.sqrt(E)
    for L in lengths:
        q, k, v, do = (cuda.to_device(rng.standard_normal((B * H, L, E), dtype=np.float32)) for _ in range(4))
        for causal in (False, True):
            def ours_step():
                out, lse = attention.attention_forward(q, k, v, causal, scale)
                attention.attention_backward(q, k, v, causal, scale, out, lse, do)

            ours = _time(ours_step, repeats, cuda.synchronize)
            theirs = None
            if torch is not None:
                tq, tk, tv = (torch.as_tensor(t, device="cuda").clone().requires_grad_() for t in (q, k, v))
                tdo = torch.as_tensor(do, device="cuda")

                def theirs_step():
                    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                    out.backward(tdo)

                theirs = _time(theirs_step, repeats, torch.cuda.synchronize)
            ratio = None if theirs is None else ours / theirs
            print(f"| L=S={L} | {'yes' if causal else 'no'} | {ours:.2f} | {_cell(theirs, '{:.2f}')} "
                  f"| {_cell(ratio, '{:.2f}')} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="smaller sizes (a first look, or a short device lease)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes under the simulator: checks the script, times nothing real")
    args = p.parse_args(argv)
    if args.smoke:
        bench_matmul((8,), 1, None)
        bench_softmax(((4, 8),), 1, None)
        bench_attention((4,), 1, None, B=1, H=1, E=4)
        return
    if config.ENABLE_CUDASIM or not cuda.is_available():
        raise SystemExit("bench_cuda: needs a real CUDA GPU "
                         "(the simulator is far too slow to time; --smoke checks the script)")
    torch = _torch()
    device = cuda.get_current_device()
    print(f"GPU: {device.name.decode() if isinstance(device.name, bytes) else device.name}, "
          f"compute capability {'.'.join(map(str, device.compute_capability))}")
    reference = f"torch {torch.__version__} (TF32 off)" if torch else "none (PyTorch with CUDA not installed)"
    print("reference: " + reference)
    sizes = (1024, 2048) if args.quick else (1024, 2048, 4096, 8192)
    bench_matmul(sizes, args.repeats, torch)
    bench_softmax(((4096, 1024), (8192, 4096)) if not args.quick else ((4096, 1024),), args.repeats, torch)
    bench_attention((512, 1024) if args.quick else (512, 1024, 2048, 4096), args.repeats, torch)


if __name__ == "__main__":
    main()
