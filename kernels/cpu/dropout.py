"""Dropout with its mask drawn inside the kernel: a counter-based generator, fused with the scaling.

    dropout_forward(x, seed, threshold, scale, out, keep)   keep[i] = u(seed, i) >= threshold
                                                            out[i] = x[i] * scale if keep[i] else 0
    dropout_backward(dy, keep, scale, out)                  out[i] = dy[i] * scale if keep[i] else 0

x, dy, out: flat C-contiguous float arrays of one size; keep: bool of that size. u(seed, i) is 24 random bits
per element: the top bits of splitmix64 (Steele, Lea and Flood 2014: a Weyl sequence seed + (i + 1) * golden
ratio, then two xor-shift-multiply rounds) at element i. With threshold = round(p * 2^24) an element is kept
with probability 1 - p (p in steps of 2^-24) and scale = 1 / (1 - p). Element i's draw depends only on the seed
and i, so the loop runs in parallel chunks, vectorised, and a seed gives the same mask on any thread count.

Why here: drawing p's uniform floats with NumPy, comparing and scaling took four passes over the tensor (about
30 ms for a (64, 6, 128, 128) float32 attention map, as long as PyTorch's own dropout).
"""
import numpy as np
from numba import njit, prange

CHUNK = 1 << 14    # elements per parallel work item

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)


@njit(cache=True, parallel=True)
def dropout_forward(x, seed, threshold, scale, out, keep):
    """out = x ∘ m, m[i] = scale if u(seed, i) >= threshold else 0; keep[i] = (m[i] != 0). Module doc."""
    n = x.size
    s = np.uint64(seed)
    t = np.uint64(threshold)
    z0 = x.dtype.type(0)
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK               # the chunk through slices, its loop from 0: over computed offsets,
        hi = min(n, lo + CHUNK)      # Numba's negative-index handling kept the loop scalar (2.9x slower)
        xs, os, ks = x[lo:hi], out[lo:hi], keep[lo:hi]
        base = s + (np.uint64(lo) + np.uint64(1)) * _GOLDEN
        for i in range(xs.size):
            z = base + np.uint64(i) * _GOLDEN      # s + (lo + i + 1) φ, mod 2^64
            z = (z ^ (z >> _S30)) * _MIX1
            z = (z ^ (z >> _S27)) * _MIX2
            z = z ^ (z >> _S31)
            k = (z >> _S40) >= t
            ks[i] = k
            os[i] = xs[i] * scale if k else z0


@njit(cache=True, parallel=True)
def dropout_backward(dy, keep, scale, out):
    """out = dy ∘ m with the forward's mask: m[i] = scale where keep[i], else 0."""
    n = dy.size
    z0 = dy.dtype.type(0)
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        ds, ks, os = dy[lo:hi], keep[lo:hi], out[lo:hi]
        for i in range(ds.size):
            os[i] = ds[i] * scale if ks[i] else z0
