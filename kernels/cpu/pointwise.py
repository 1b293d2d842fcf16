"""Elementwise products on the CPU for large arrays, in one pass where NumPy makes several on one thread.

    mul(a, b, out, nth)               out = a · b
    mul_scalar(a, s, out, nth)        out = a · s          (s a scalar of a's dtype)
    add_scalar(a, s, out, nth)        out = a + s
    tanh_backward(y, dy, out, nth)    out = dy · (1 - y · y)          (Tanh's gradient from its output y)
    cube(x, out, nth)                 out = x · x · x                  (x ** 3, as PyTorch computes it)
    cube_backward(x, dy, out, nth)    out = dy · (3 · (x · x))         (the gradient of x ** 3)
    relu(x, out, nth)                 out = max(x, 0)                  (np.maximum(x, 0): NaN stays, -0 gives 0)
    relu_backward(y, dy, out, nth)    out = dy · (y > 0)               (a product, so an infinite dy gives NaN
                                                                        where y <= 0, as NumPy's expression)
    masked_fill(x, mask, value, out, nth)    out[r, j] = value if mask[r or 0, j] else x[r, j]
                                      (x, out (R, M); mask (R or 1, M) bool: an attention mask broadcast over
                                      the batch and heads; its backward is the same with value 0)

Arrays 1-D (masked_fill's 2-D), C-contiguous, of one float dtype, out new (overlapping no input). Each formula
is evaluated in the order and dtype of the NumPy expression the op would otherwise run (Tanh's backward is
`dy * (1 - y * y)`), without contraction, so the result is NumPy's bit for bit.

Why: hand-written layers apply such formulas to whole activations. minGPT's GELU, x/2 (1 + tanh(c (x +
0.044715 x³))), on its (64, 128, 768) MLP hidden took about 0.67 of a 1.5 s training step in NumPy: single-
threaded passes over 25 MB arrays, three for Tanh's backward and four for the cube's. ReLU, the default
activation of nn.TransformerEncoderLayer, took two passes for its backward.

Loop nest: prange over nth equal chunks (thread t takes chunk t, as elementwise.add); in each, over the
chunk's own slices, for i from 0 (over computed offsets Numba's negative-index handling keeps LLVM from
vectorising the loop).
"""
from numba import njit, prange

from .elementwise import share


@njit(parallel=True, cache=True)
def mul(a, b, out, nth):
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        aa, bb, oo = a[lo:hi], b[lo:hi], out[lo:hi]
        for i in range(oo.size):
            oo[i] = aa[i] * bb[i]
    return out


@njit(parallel=True, cache=True)
def mul_scalar(a, s, out, nth):
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        aa, oo = a[lo:hi], out[lo:hi]
        for i in range(oo.size):
            oo[i] = aa[i] * s
    return out


@njit(parallel=True, cache=True)
def add_scalar(a, s, out, nth):
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        aa, oo = a[lo:hi], out[lo:hi]
        for i in range(oo.size):
            oo[i] = aa[i] + s
    return out


@njit(parallel=True, cache=True)
def tanh_backward(y, dy, out, nth):
    one = y.dtype.type(1)
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        yy, gg, oo = y[lo:hi], dy[lo:hi], out[lo:hi]
        for i in range(oo.size):
            oo[i] = gg[i] * (one - yy[i] * yy[i])
    return out


@njit(parallel=True, cache=True)
def cube(x, out, nth):
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        xx, oo = x[lo:hi], out[lo:hi]
        for i in range(oo.size):
            v = xx[i]
            oo[i] = v * v * v
    return out


@njit(parallel=True, cache=True)
def cube_backward(x, dy, out, nth):
    three = x.dtype.type(3)
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        xx, gg, oo = x[lo:hi], dy[lo:hi], out[lo:hi]
        for i in range(oo.size):
            v = xx[i]
            oo[i] = gg[i] * (three * (v * v))
    return out


@njit(parallel=True, cache=True)
def relu(x, out, nth):
    zero = x.dtype.type(0)
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        xx, oo = x[lo:hi], out[lo:hi]
        for i in range(oo.size):
            v = xx[i]
            oo[i] = v if v > zero or v != v else zero
    return out


@njit(parallel=True, cache=True)
def relu_backward(y, dy, out, nth):
    zero, one = y.dtype.type(0), y.dtype.type(1)
    for t in prange(nth):
        lo, hi = share(out.size, nth, t)
        yy, gg, oo = y[lo:hi], dy[lo:hi], out[lo:hi]
        for i in range(oo.size):
            oo[i] = gg[i] * (one if yy[i] > zero else zero)
    return out


@njit(parallel=True, cache=True)
def masked_fill(x, mask, value, out, nth):
    R, M = x.shape
    shared = mask.shape[0] == 1
    for t in prange(nth):
        r0, r1 = share(R, nth, t)
        for r in range(r0, r1):
            xr, mr, orow = x[r], mask[0 if shared else r], out[r]
            for j in range(M):
                orow[j] = value if mr[j] else xr[j]
    return out
