"""GELU (tanh form, and the exact erf form below) on a CUDA device, forward and backward over a flat array; the
meaning and the formula of kernels/cpu/activations.py (its constants GELU_C, GELU_A):

    u = c (x + a x³),  c = √(2/π),  a = 0.044715
    y = x/2 · (1 + tanh u) = x · s,   s = σ(2u) = 1 / (1 + e^(-2u))
    dx = dy · [ s + 2 x s (1 - s) · c (1 + 3a x²) ]

The σ form keeps full relative precision in both tails; -2u is clamped to ±80 as on the CPU.

    gelu_forward(x)        x (n,)           -> y (n,)
    gelu_backward(x, dy)   x (n,), dy (n,)  -> dx (n,)   (s recomputed from x)

Inputs are 1-D numba device arrays (host arrays are copied), float32 or float64; results are new device
arrays in that dtype, and the arithmetic is done in that dtype (the constants are cast to it).

Launch: a grid-stride loop, `blocks` blocks of `block` threads (blocks defaults to enough for one element
per thread, capped at OP_MAX_BLOCKS); thread g handles i = g, g + stride, g + 2 stride, ... with stride =
blocks * block. No shared memory, so nothing to synchronise. Kernels are compiled per dtype by
`_kernels`, which bakes the constants in that dtype.
"""
import functools
import math

import numpy as np
from numba import cuda

from ..cpu.activations import GELU_A, GELU_C, INV_SQRT_2PI, SQRT_HALF
from .device import as_device

from .policy import OP_MAX_BLOCKS  # grid cap; the grid-stride loop covers the rest (policy.py)
from .policy import THREADS as BLOCK  # default threads per block (policy.py)


@functools.lru_cache(maxsize=None)
def _kernels(dtype):
    """(forward, backward) kernels for one dtype."""
    T = dtype.type
    one = T(1)
    two = T(2)
    m2c = T(-2 * GELU_C)
    a = T(GELU_A)
    c = T(GELU_C)
    a3 = T(3 * GELU_A)
    lo = T(-80)
    hi = T(80)

    @cuda.jit(device=True)
    def sig(v):
        """s = σ(2u) = 1 / (1 + e^(-2u)), -2u clamped to [-80, 80]."""
        z = m2c * v * (one + a * v * v)
        return one / (one + math.exp(min(max(z, lo), hi)))

    @cuda.jit
    def forward(x, y):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            v = x[i]
            y[i] = v * sig(v)

    @cuda.jit
    def backward(x, dy, dx):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            v = x[i]
            s = sig(v)
            du = c * (one + a3 * v * v)
            dx[i] = dy[i] * (s + two * v * s * (one - s) * du)

    return forward, backward


@functools.lru_cache(maxsize=None)
def _erf_kernels(dtype):
    """(forward, backward) kernels of the exact GELU for one dtype (kernels/cpu/activations.py's formulas:
    y = x Φ(x), dx = dy (Φ(x) + x φ(x)), computed in float64 and rounded to the dtype)."""

    @cuda.jit
    def forward(x, y):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            v = float(x[i])
            y[i] = 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))

    @cuda.jit
    def backward(x, dy, dx):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            v = float(x[i])
            cdf = 0.5 * (1.0 + math.erf(v * SQRT_HALF))
            pdf = math.exp(-0.5 * v * v) * INV_SQRT_2PI
            dx[i] = dy[i] * (cdf + v * pdf)

    return forward, backward


def _launch(name, arrays, which, block, blocks, kernels=_kernels):
    arrays = [as_device(a) for a in arrays]
    x = arrays[0]
    if any(a.ndim != 1 or a.shape != x.shape for a in arrays):
        raise ValueError(f"{name}: expected 1-D arrays of one shape, got {[a.shape for a in arrays]}")
    dt = np.dtype(x.dtype)
    if dt not in (np.float32, np.float64) or any(np.dtype(a.dtype) != dt for a in arrays):
        raise TypeError(f"{name}: inputs must all be float32 or all float64, got {[str(a.dtype) for a in arrays]}")
    out = cuda.device_array(x.shape, dtype=dt)
    n = x.shape[0]
    if n:
        if blocks is None:
            blocks = min(OP_MAX_BLOCKS, (n + block - 1) // block)
        kernels(dt)[which][blocks, block](*arrays, out)
    return out


def gelu_forward(x, block=BLOCK, blocks=None):
    """y = gelu(x) (tanh form) for a 1-D array.  Loop nest: for i in grid-stride(n): y[i] = x[i] s_i."""
    return _launch("gelu_forward", [x], 0, block, blocks)


def gelu_backward(x, dy, block=BLOCK, blocks=None):
    """dx = dy · gelu'(x) for 1-D arrays.  Loop nest: for i in grid-stride(n): dx[i] = dy[i] gelu'(x[i])."""
    return _launch("gelu_backward", [x, dy], 1, block, blocks)


def gelu_erf_forward(x, block=BLOCK, blocks=None):
    """y = x Φ(x) (exact GELU) for a 1-D array.  Loop nest: for i in grid-stride(n): y[i] = x[i] Φ(x[i])."""
    return _launch("gelu_erf_forward", [x], 0, block, blocks, _erf_kernels)


def gelu_erf_backward(x, dy, block=BLOCK, blocks=None):
    """dx = dy (Φ(x) + x φ(x)) for 1-D arrays.  Loop nest: for i in grid-stride(n): dx[i] = dy[i] gelu'(x[i])."""
    return _launch("gelu_erf_backward", [x, dy], 1, block, blocks, _erf_kernels)
