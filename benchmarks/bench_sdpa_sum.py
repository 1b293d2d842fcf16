"""The public attention op end to end: F.scaled_dot_product_attention forward + backward at B4 H8 T512 D64
float32 with a broadcast upstream gradient (out.sum().backward()), tinyattn against PyTorch.

    python benchmarks/bench_sdpa_sum.py [ROUNDS]

bench_attention.py times the kernels with a random upstream gradient; this times what a user's code runs
(argument checks, the autograd graph, the gradient of sum(), leaf accumulation). Interleaved rounds, each
the best of 3 calls of either side (which side goes first alternates); the median of the per-round ratios of
tinyattn's time to PyTorch's. torch is imported first, both use 2 threads."""
import sys
import time

import torch  # first, before any Numba kernel runs
import numpy as np

import tinyattn as ta
import tinyattn.nn.functional as F

torch.set_num_threads(2)
B, H, T, D = 4, 8, 512, 64
ARRAYS = [np.random.default_rng(i).standard_normal((B, H, T, D)).astype(np.float32) for i in range(3)]


def ours(causal):
    q, k, v = (ta.tensor(a, requires_grad=True) for a in ARRAYS)
    F.scaled_dot_product_attention(q, k, v, is_causal=causal).sum().backward()


def theirs(causal):
    q, k, v = (torch.tensor(a, requires_grad=True) for a in ARRAYS)
    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal).sum().backward()


def best(fn, causal, n=3):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn(causal)
        times.append(time.perf_counter() - start)
    return min(times)


def main(rounds):
    for causal in (False, True):
        for fn in (ours, theirs, ours, theirs):  # warm-up: compilation, caches
            fn(causal)
        ratios, t_ours, t_theirs = [], [], []
        for r in range(rounds):
            if r % 2 == 0:
                a = best(ours, causal)
                b = best(theirs, causal)
            else:
                b = best(theirs, causal)
                a = best(ours, causal)
            t_ours.append(a)
            t_theirs.append(b)
            ratios.append(a / b)
        print(f"causal={causal}: tinyattn {1e3 * np.median(t_ours):.1f} ms, torch {1e3 * np.median(t_theirs):.1f} ms, "
              f"time ratio: median {np.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
