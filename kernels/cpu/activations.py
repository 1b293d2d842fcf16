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
from numba import njit, prange, types
from numba.extending import overload

from .vexp import vexp, wide_vectors

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715
CHUNK = 4096  # elements per parallel work item


# ---- the per-element formulas, shared with the fused decode step (kernels/cpu/decode.py) -------------------
# Overloads with inline="always": Numba inlines them into the caller's IR, so each loop compiles exactly as if
# the formula were written in it (the caller's fastmath and error model apply, LLVM vectorises the loop).
# gelu_erf (the exact form, through norm_cdf) is with the exact form's kernels below.

def gelu_tanh_sigma(v):
    """s = σ(2u) = (1 + tanh u)/2, u = c (v + a v³), in v's dtype: gelu(v) = v s (tanh form)."""
    u = GELU_C * (v + GELU_A * v * v * v)
    return 1.0 / (1.0 + math.exp(min(max(-2.0 * u, -80.0), 80.0)))


def gelu_tanh(v):
    """GELU's tanh form of one element, v σ(2u)."""
    return v * gelu_tanh_sigma(v)


def _float_type(v):
    return np.float32 if v == types.float32 else np.float64 if v == types.float64 else None


@overload(gelu_tanh_sigma, inline="always")
def _gelu_tanh_sigma_impl(v):
    T = _float_type(v)
    if T is None:
        return None
    m2c, a, one, lim = T(-2 * GELU_C), T(GELU_A), T(1), T(80)

    def impl(v):
        z = m2c * v * (one + a * v * v)  # -2u
        return one / (one + vexp(min(max(z, -lim), lim)))
    return impl


@overload(gelu_tanh, inline="always")
def _gelu_tanh_impl(v):
    if _float_type(v) is None:
        return None

    def impl(v):
        return v * gelu_tanh_sigma(v)
    return impl


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def gelu_forward(x):
    """y = gelu(x) for a 1-D C-contiguous array.  Loop nest: prange chunk: for i in chunk: y[i] = x[i] s_i."""
    y = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ys = y[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            ys[i] = gelu_tanh(xs[i])
    return y


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def gelu_backward(x, dy):
    """dx = dy · gelu'(x) for 1-D C-contiguous arrays; s is recomputed from x (only x is saved)."""
    T = x.dtype.type
    dx = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        gs = dy[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ds = dx[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            v = xs[i]
            s = gelu_tanh_sigma(v)
            du = T(GELU_C) * (T(1) + T(3 * GELU_A) * v * v)
            ds[i] = gs[i] * (s + T(2) * v * s * (T(1) - s) * du)
    return dx


# ---- GELU, exact form ----------------------------------------------------------------------------------
#     y = x Φ(x),  Φ(x) = (1 + erf(x/√2)) / 2 = erfc(-x/√2) / 2
#     dx = dy · (Φ(x) + x φ(x)),  φ(x) = e^(-x²/2) / √(2π)
# float64: libm's erf (math.erf), exact to float64 rounding. float32: erfc by the Chebyshev-fitted form of
# Numerical Recipes (§6.2: erfc(z) ≈ t e^(-z² + P(t)), t = 1/(1 + z/2), z >= 0, relative error < 1.2e-7
# everywhere, tails included), branch-free with `vexp`, so that LLVM vectorises the loop (libm's erf is one
# call per element: 3.4 of 18 s of a nanoGPT run); Φ(x) = erfc(|x|/√2)/2 for x < 0, 1 - that for x >= 0.

SQRT_HALF = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
         -0.82215223, 0.17087277)


def norm_cdf(v):
    """Φ(v), the standard normal CDF, in v's dtype (see the note above)."""
    return 0.5 * (1.0 + math.erf(v * SQRT_HALF))


@overload(norm_cdf, inline="always")  # inlined in Numba IR: the caller's error_model="numpy" then applies
def _norm_cdf_impl(v):
    if v == types.float64:
        def impl(v):
            return 0.5 * (1.0 + math.erf(v * SQRT_HALF))
        return impl
    if v == types.float32:
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = (np.float32(c) for c in _ERFC)

        def impl(v):
            z = abs(v) * np.float32(SQRT_HALF)
            t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.5) * z)
            p = c9
            p = p * t + c8
            p = p * t + c7
            p = p * t + c6
            p = p * t + c5
            p = p * t + c4
            p = p * t + c3
            p = p * t + c2
            p = p * t + c1
            p = p * t + c0
            half_erfc = np.float32(0.5) * t * vexp(p - z * z)
            return half_erfc if v < np.float32(0.0) else np.float32(1.0) - half_erfc
        return impl
    return None


def gelu_erf(v):
    """GELU's exact form of one element, v Φ(v)."""
    return v * norm_cdf(v)


@overload(gelu_erf, inline="always")
def _gelu_erf_impl(v):
    if _float_type(v) is None:
        return None

    def impl(v):
        return v * norm_cdf(v)
    return impl


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def gelu_erf_forward(x):
    """y = x Φ(x) for a 1-D C-contiguous array.  Loop nest: prange chunk: for i in chunk: y[i] = x[i] Φ(x[i])."""
    y = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ys = y[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            ys[i] = gelu_erf(xs[i])
    return y


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def gelu_erf_backward(x, dy):
    """dx = dy (Φ(x) + x φ(x)) for 1-D C-contiguous arrays (only x is saved)."""
    T = x.dtype.type
    dx = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        gs = dy[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ds = dx[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            v = xs[i]
            pdf = vexp(T(-0.5) * v * v) * T(INV_SQRT_2PI)
            ds[i] = gs[i] * (norm_cdf(v) + v * pdf)
    return dx
