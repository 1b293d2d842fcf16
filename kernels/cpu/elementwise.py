"""Elementwise sums on the CPU for large arrays, which NumPy runs on one thread.

    add(a, b, out, nth)    out[i] = a[i] + b[i]    a, b, out 1-D, C-contiguous, one dtype (out is a, or overlaps
                                                   neither a nor b)

A transformer's residual connections (x + attn(ln(x))) and the backward's gradient sums (the residual
stream's two gradients) are such sums of whole activations. Run in parallel they also leave each half of
the result in the cache of the thread that the next kernel's rows split gives it (every parallel loop
here splits its range statically, thread t taking the t-th equal share), where NumPy's serial sum leaves
all of it with the calling thread: a layer norm after a parallel sum ran 1.3x faster (docs/benchmarks.md). The
backend takes this path from policy.PARALLEL_SUM elements on.

Loop nest: prange over nth equal chunks (thread t takes chunk t); in each, over the chunk's own slices,
for i: out[i] = a[i] + b[i], or a[i] += b[i] when out is a (the in-place sum, add_).

Each chunk's loop runs over slices of the chunk (the loop counts from 0 to its length) in a helper inlined
into the kernel (njit inline="always": no dispatcher of its own to compile; the kernel compiles in ~0.6 s of
CPU time, against ~0.37 s before and ~0.9 s with two compiled helpers): written in the prange body over
global indices, the loop stayed scalar, and the kernel ran at
0.17-0.7x of NumPy on one thread (768 x 128 float32: 59 vs 10 us; issue 22 goal 4). The in-place sum has
its own loop: through the out-of-place one with out = a, LLVM's run-time overlap check sends the loop to its
scalar version (98,304 elements on 2 threads: 14.2 us, against 5.2 for the in-place loop).
"""
from numba import njit, prange


@njit(inline="always")
def share(n, parts, t):
    """(lo, hi): part t of n elements cut into `parts` runs of equal length (the last shorter or empty), thread
    t's share of a static split. Inlined into each kernel's IR: a change here does not reach the on-disk cache
    of the kernels in other files that call it (pointwise.py, optim.py); clear their __pycache__."""
    size = (n + parts - 1) // parts
    lo = t * size
    return lo, min(n, lo + size)


@njit(inline="always")
def _add_span(a, b, out, lo, hi):
    """out[lo:hi] = a[lo:hi] + b[lo:hi] (out not overlapping a or b)."""
    aa = a[lo:hi]
    bb = b[lo:hi]
    oo = out[lo:hi]
    for i in range(hi - lo):
        oo[i] = aa[i] + bb[i]


@njit(inline="always")
def _add_span_inplace(a, b, lo, hi):
    """a[lo:hi] += b[lo:hi]."""
    aa = a[lo:hi]
    bb = b[lo:hi]
    for i in range(hi - lo):
        aa[i] += bb[i]


@njit(parallel=True, cache=True)
def add(a, b, out, nth):
    inplace = out.ctypes.data == a.ctypes.data
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        if inplace:
            _add_span_inplace(out, b, lo, hi)
        else:
            _add_span(a, b, out, lo, hi)
