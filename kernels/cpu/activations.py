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

from .vexp import _bits_as_float, _float_bits, recip_finite, vexp, wide_vectors

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715
CHUNK = 4096  # elements per parallel work item


# ---- the per-element formulas, shared with the fused decode step (kernels/cpu/decode.py) -------------------
# Overloads with inline="always": Numba inlines them into the caller's IR, so each loop compiles exactly as if
# the formula were written in it (the caller's fastmath and error model apply, LLVM vectorises the loop).
# gelu_erf (the exact form, through norm_cdf) is with the exact form's kernels below.

def gelu_tanh_sigma(v):
    """s = σ(2u) = (1 + tanh u)/2, u = c (v + a v³), in v's dtype: gelu(v) = v s (tanh form). Exactly 0 from
    -2u = 80 on (σ < 2e-35 there), so that gelu(v) is 0 for very negative v, as PyTorch's, not v·e^-80."""
    z = -2.0 * GELU_C * (v + GELU_A * v * v * v)
    return 0.0 if z >= 80.0 else 1.0 / (1.0 + math.exp(max(z, -80.0)))


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
    m2c, a, one, lim, zero = T(-2 * GELU_C), T(GELU_A), T(1), T(80), T(0)

    def impl(v):
        z = m2c * v * (one + a * v * v)  # -2u
        s = one / (one + vexp(min(max(z, -lim), lim)))
        return zero if z >= lim else s
    return impl


def gelu_tanh_grad(v):
    """gelu'(v), tanh form: s + 2 v s (1 - s) · c (1 + 3a v²), s = gelu_tanh_sigma(v). The backward kernel's
    factor, and the epilogue that multiplies a product's output by it (kernels/cpu/matmul/outer.py)."""
    s = gelu_tanh_sigma(v)
    return s + 2.0 * v * s * (1.0 - s) * GELU_C * (1.0 + 3.0 * GELU_A * v * v)


@overload(gelu_tanh_grad, inline="always")
def _gelu_tanh_grad_impl(v):
    T = _float_type(v)
    if T is None:
        return None
    c, a3, one, two = T(GELU_C), T(3 * GELU_A), T(1), T(2)

    def impl(v):
        s = gelu_tanh_sigma(v)
        du = c * (one + a3 * v * v)
        return s + two * v * s * (one - s) * du
    return impl


@overload(gelu_tanh, inline="always")
def _gelu_tanh_impl(v):
    T = _float_type(v)
    if T is None:
        return None
    if T is np.float32:  # σ through the reciprocal estimate and a Newton step (recip_finite): not in the backward,
        m2c, a, one, lim = T(-2 * GELU_C), T(GELU_A), T(1), T(80)  # whose 1 - σ must be exactly 0 for large v
        tiny, zero = T(2.0 ** -24), T(0)

        def impl32(v):
            z = m2c * v * (one + a * v * v)  # -2u
            e = vexp(min(max(z, -lim), lim))  # 1 + e^(±80) is finite
            s = recip_finite(one + e)
            s = one if e < tiny else s  # σ = 1 exactly where 1 + e rounds to 1: gelu(v) = v, as PyTorch's
            return v * (zero if z >= lim else s)  # and 0 from -2u = 80 on (gelu_tanh_sigma)
        return impl32

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
    dx = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        gs = dy[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ds = dx[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            ds[i] = gs[i] * gelu_tanh_grad(xs[i])
    return dx


# ---- GELU, exact form ----------------------------------------------------------------------------------
#     y = x Φ(x),  Φ(x) = (1 + erf(x/√2)) / 2 = erfc(-x/√2) / 2
#     dx = dy · (Φ(x) + x φ(x)),  φ(x) = e^(-x²/2) / √(2π)
# float64: libm's erf (math.erf), exact to float64 rounding. float32: branch-free, so that LLVM vectorises the loop
# (libm's erf is one call per element: 3.4 of 18 s of a nanoGPT run), and built around the one exponential the
# backward needs anyway:
#     E = e^(-x²/2),  t = 1 / (1 + |x|/(2√2)),  h = erfc(|x|/√2)/2 = t Q(t) E
#     Φ(x) = h for x < 0, 1 - h for x >= 0;   φ(x) = E / √(2π)
# Q, degree 8, is fitted (iteratively reweighted least squares towards the minimax, on relative error) to
# erfcx(z)/(2t) = e^(z²) erfc(z)/(2t), z = |x|/√2, over t in [0.17, 1] (z in [0, 9.8]; past it E is 0 in float32):
# its relative error there is 4.3e-8. In float32 the forward's error against float64 is ≤ 1.2e-6 relative for
# x > -3 and ≤ 1e-5 down to the underflow near x = -13 (PyTorch's float32 GELU: 2.3e-4, and 1.0 past x = -5.5);
# the backward computes one exponential where the earlier erfc form (Numerical Recipes' t e^(-z² + P(t))) took two.

SQRT_HALF = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_T_SCALE = 0.5 * SQRT_HALF  # t = 1 / (1 + z/2), z = |x|/√2
_EXP_P = (0.49999232, 0.16667114, 0.04189012, 0.00831253)  # e^r = 1 + r + r²(p2 + p3 r + p4 r² + p5 r³)
_Q = (0.14104347467201073, 0.14118303209067315, 0.12158526542975474, 0.10121217481503561, -0.013004312209575881,
      0.13858788832934438, -0.2432120379552171, 0.14210085165924594, -0.029496358123320264)


def norm_cdf(v):
    """Φ(v), the standard normal CDF, in v's dtype (see the note above)."""
    return 0.5 * (1.0 + math.erf(v * SQRT_HALF))


def norm_cdf_pdf(v):
    """(Φ(v), φ(v)) in v's dtype, sharing their exponential in float32 (see the note above)."""
    return norm_cdf(v), math.exp(-0.5 * v * v) * INV_SQRT_2PI


def _exp_neg_f32(x):
    """e^x for float32 x <= 0 (0 below -87; NaN in gives 0 out, the callers propagate NaN through x itself).
    x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2); n rounded by adding 1.5·2^23, whose low mantissa bits
    then hold n, shifted into 2^n's exponent (no floor and no float-to-int conversion); e^r = 1 + r + r² P(r),
    P of degree 3 fitted towards the minimax of the relative error (1.05e-7 over |r| <= ln2/2, about 2 ulp, inside
    the GELU budget below; vexp's degree-7 Taylor polynomial is exact to 1 ulp). Horner, not Estrin: the loop is
    bound by its instruction count, not by the chain."""
    return math.exp(x)


@overload(_exp_neg_f32)  # not inline="always": as a function of its own (LLVM inlines it) it compiles 4x faster
def _exp_neg_f32_impl(x):
    if x != types.float32:
        return None
    f = np.float32
    p2, p3, p4, p5 = (f(c) for c in _EXP_P)

    def impl(x):
        lo = f(-87.0)
        xc = max(x, lo)
        j = xc * f(1.4426950408889634) + f(12582912.0)  # 1.5·2^23: j - 1.5·2^23 = round(x / ln2) = n
        nf = j - f(12582912.0)
        r = (xc - nf * f(0.693359375)) - nf * f(-2.12194440e-4)
        p = p5
        p = p * r + p4
        p = p * r + p3
        p = p * r + p2
        p = p * r + f(1.0)
        p = p * r + f(1.0)
        two_n = _bits_as_float(np.int32((_float_bits(j) << 23) + (127 << 23)))  # j's low bits: n mod 2^9
        return p * two_n if x >= lo else f(0.0)
    return impl


def _half_erfc_f32(v):
    """(erfc(|v|/√2)/2, e^(-v²/2)) for float32 v (see the note above)."""
    return 0.5 * math.erfc(abs(v) * SQRT_HALF), math.exp(-0.5 * v * v)


@overload(_half_erfc_f32)  # likewise: Numba-IR inlining made the two kernels compile in 8.4-9.8 s, not 1.9 s
def _half_erfc_f32_impl(v):
    if v != types.float32:
        return None
    f = np.float32
    k = f(_T_SCALE)
    q0, q1, q2, q3, q4, q5, q6, q7, q8 = (f(c) for c in _Q)

    def impl(v):
        e = _exp_neg_f32(f(-0.5) * v * v)
        t = recip_finite(f(1.0) + k * min(abs(v), f(20.0)))  # clamped: finite (past 20, E is 0)
        q = q8
        q = q * t + q7
        q = q * t + q6
        q = q * t + q5
        q = q * t + q4
        q = q * t + q3
        q = q * t + q2
        q = q * t + q1
        q = q * t + q0
        return t * q * e, e
    return impl


@overload(norm_cdf, inline="always")  # inlined in Numba IR: the caller's error_model="numpy" then applies
def _norm_cdf_impl(v):
    if v == types.float64:
        def impl(v):
            return 0.5 * (1.0 + math.erf(v * SQRT_HALF))
        return impl
    if v == types.float32:
        def impl(v):
            h = _half_erfc_f32(v)[0]
            return h if v < np.float32(0.0) else np.float32(1.0) - h
        return impl
    return None


@overload(norm_cdf_pdf, inline="always")
def _norm_cdf_pdf_impl(v):
    if v == types.float64:
        def impl(v):
            return 0.5 * (1.0 + math.erf(v * SQRT_HALF)), vexp(-0.5 * v * v) * INV_SQRT_2PI
        return impl
    if v == types.float32:
        def impl(v):
            h, e = _half_erfc_f32(v)
            return (h if v < np.float32(0.0) else np.float32(1.0) - h), e * np.float32(INV_SQRT_2PI)
        return impl
    return None


def gelu_erf(v):
    """GELU's exact form of one element, v Φ(v)."""
    return v * norm_cdf(v)


def gelu_erf_grad(v):
    """gelu'(v), exact form: Φ(v) + v φ(v) (the backward kernel's factor, and the product epilogue's)."""
    cdf, pdf = norm_cdf_pdf(v)
    return cdf + v * pdf


@overload(gelu_erf_grad, inline="always")
def _gelu_erf_grad_impl(v):
    if _float_type(v) is None:
        return None

    def impl(v):
        cdf, pdf = norm_cdf_pdf(v)
        return cdf + v * pdf
    return impl


@overload(gelu_erf, inline="always")
def _gelu_erf_impl(v):
    if _float_type(v) is None:
        return None

    def impl(v):
        return v * norm_cdf(v)
    return impl


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def gelu_erf_forward(x, y):
    """y = x Φ(x) for 1-D C-contiguous arrays x and y (the caller allocates y with NumPy, whose large arrays get
    transparent huge pages: at 4096 x 4096 float32 an array allocated inside the kernel took 46 ms to fill against
    32 ms, page faults); returns y.  Loop nest: prange chunk: for i in chunk: y[i] = x[i] Φ(x[i])."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ys = y[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            ys[i] = gelu_erf(xs[i])
    return y


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def gelu_erf_backward(x, dy, dx):
    """dx = dy (Φ(x) + x φ(x)) for 1-D C-contiguous arrays (only x is saved; dx allocated by the caller, as in
    gelu_erf_forward); returns dx."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        xs = x[c * CHUNK : min(n, (c + 1) * CHUNK)]
        gs = dy[c * CHUNK : min(n, (c + 1) * CHUNK)]
        ds = dx[c * CHUNK : min(n, (c + 1) * CHUNK)]
        for i in range(xs.size):
            ds[i] = gs[i] * gelu_erf_grad(xs[i])
    return dx
