"""Elementwise sums on the CPU for large arrays, which NumPy runs on one thread.

    add(a, b, out, nth)    out[i] = a[i] + b[i]    a, b, out 1-D, C-contiguous, one dtype (out may be a)

A transformer's residual connections (x + attn(ln(x))) and the backward's gradient sums (the residual
stream's two gradients) are such sums of whole activations. Run in parallel they also leave each half of
the result in the cache of the thread that the next kernel's rows split gives it (every parallel loop
here splits its range statically, thread t taking the t-th equal share), where NumPy's serial sum leaves
all of it with the calling thread: a layer norm after a parallel sum ran 1.3x faster (docs/benchmarks.md). The
backend takes this path from policy.PARALLEL_SUM elements on.

Loop nest: prange over nth equal chunks (thread t takes chunk t); in each, for i: out[i] = a[i] + b[i].
"""
from numba import njit, prange


@njit(parallel=True, cache=True)
def add(a, b, out, nth):
    n = out.size
    chunk = (n + nth - 1) // nth
    for t in prange(nth):
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            out[i] = a[i] + b[i]
