"""GELU (tanh form), forward and backward, fused into one pass each over a flat array.

    u = c (x + a x³),  c = √(2/π),  a = 0.044715
    y = x/2 · (1 + tanh u) = x · s,   s = σ(2u) = 1 / (1 + e^(-2u))
    dx = dy · [ s + 2 x s (1 - s) · c (1 + 3a x²) ]       ((1 + tanh u)/2 = s, 1 - tanh² u = 4 s (1 - s))

The σ form keeps full relative precision in both tails (1 + tanh u cancels for u ≪ 0);
-2u is clamped to ±80, past which σ is 0 or 1 to working precision, and e^(-2u) is the
vectorisable `vexp`. NumPy needs about ten passes over memory for these formulas; each
kernel here makes one, in parallel over chunks of the array, in the array's dtype.
"""
import math

import numpy as np
from numba import njit, prange

from .vexp import vexp

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715
CHUNK = 4096  # elements per parallel work item


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_forward(x):
    """y = gelu(x) for a 1-D C-contiguous array.  Loop nest: prange chunk: for i in chunk: y[i] = x[i] s_i."""
    T = x.dtype.type
    y = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ys = y[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            v = xs[i]
            z = T(-2 * GELU_C) * v * (T(1) + T(GELU_A) * v * v)  # -2u
            s = T(1) / (T(1) + vexp(min(max(z, T(-80)), T(80))))
            ys[i] = v * s
    return y


@njit(parallel=True, cache=True, fastmath={"contract"})
def gelu_backward(x, dy):
    """dx = dy · gelu'(x) for 1-D C-contiguous arrays; s is recomputed from x (only x is saved)."""
    T = x.dtype.type
    dx = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        gs = dy[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ds = dx[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            v = xs[i]
            z = T(-2 * GELU_C) * v * (T(1) + T(GELU_A) * v * v)
            s = T(1) / (T(1) + vexp(min(max(z, T(-80)), T(80))))
            du = T(GELU_C) * (T(1) + T(3 * GELU_A) * v * v)
            ds[i] = gs[i] * (s + T(2) * v * s * (T(1) - s) * du)
    return dx


# ---- GELU, exact form ----------------------------------------------------------------------------------
#     y = x Φ(x),  Φ(x) = (1 + erf(x/√2)) / 2
#     dx = dy · (Φ(x) + x φ(x)),  φ(x) = e^(-x²/2) / √(2π)
# erf is libm's (math.erf), in float64 for every dtype, then rounded to the array's dtype.

SQRT_HALF = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(parallel=True, cache=True)
def gelu_erf_forward(x):
    """y = x Φ(x) for a 1-D C-contiguous array.  Loop nest: prange chunk: for i in chunk: y[i] = x[i] Φ(x[i])."""
    y = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            v = np.float64(x[i])
            y[i] = 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))
    return y


@njit(parallel=True, cache=True)
def gelu_erf_backward(x, dy):
    """dx = dy (Φ(x) + x φ(x)) for 1-D C-contiguous arrays (only x is saved)."""
    dx = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            v = np.float64(x[i])
            cdf = 0.5 * (1.0 + math.erf(v * SQRT_HALF))
            pdf = math.exp(-0.5 * v * v) * INV_SQRT_2PI
            dx[i] = dy[i] * (cdf + v * pdf)
    return dx
