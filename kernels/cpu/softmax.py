"""Row-wise softmax and log-softmax over the last axis of a C-contiguous (R, C) array, forward and backward.

Every kernel is one pass structure per row, rows in parallel (prange): rows are independent, each row's
reductions stay inside its own iteration, so there is no shared accumulator. Output dtype = input dtype;
the arithmetic is done in that dtype too (float32 stays float32, as in PyTorch).

A row that is all -inf has max = -inf, so x - max is NaN and the result is NaN, like PyTorch; nothing
is special-cased, nothing crashes.
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

EXP_CHUNK = 256   # elements per pass of the vectorised exp (its scratch stays in L1)


def _exp_inplace(v):
    """v[:] = exp(v), a 1-D C-contiguous float array. Python reference; the compiled one is below."""
    v[:] = np.exp(v)


def _exp_constants(dtype):
    """(int type, mantissa bits, exponent bias, clamp low, clamp high, Taylor degree) for a float type.

    The clamps are where exp already under/overflows (it returns 0 or inf there); the degree makes the
    Taylor remainder of exp(f), |f| <= ln(2)/2, smaller than half an ulp.
    """
    if dtype == types.float32:
        return np.int32, 23, 127, -104.0, 89.0, 7
    return np.int64, 52, 1023, -746.0, 710.0, 13


@overload(_exp_inplace, jit_options={"cache": True})
def _exp_inplace_impl(v):
    """exp that LLVM can vectorise (libm's scalar exp call can't be): exp(z) = 2^n * exp(f).

    Per element: z clamped to [lo, hi] (NaN kept), n = round(z / ln 2), f = z - n ln 2 in two parts
    (Cody-Waite: n * LN2_HI is exact), exp(f) by Horner on its Taylor series, 2^n built from exponent
    bits. The bits are written into an int scratch array and read back through a float view of it
    (Numba has no scalar bitcast), EXP_CHUNK elements at a time; 2^n = 2^(n//2) * 2^(n - n//2) keeps
    both factors normal, so results down to the subnormals and up to inf come out right.
    """
    itype, mbits, bias, lo, hi, deg = _exp_constants(v.dtype)

    def impl(v):
        T = v.dtype.type
        ib1 = np.empty(EXP_CHUNK, dtype=itype)
        ib2 = np.empty(EXP_CHUNK, dtype=itype)
        s1 = ib1.view(v.dtype)
        s2 = ib2.view(v.dtype)
        n_all = v.size
        for c0 in range(0, n_all, EXP_CHUNK):
            w = v[c0:min(c0 + EXP_CHUNK, n_all)]     # indices from 0: no wraparound checks, vectorises
            for i in range(w.size):
                z = w[i]
                z = T(lo) if z < T(lo) else z
                z = T(hi) if z > T(hi) else z
                n = np.floor(z * T(1.4426950408889634) + T(0.5))
                f = (z - n * T(0.693359375)) - n * T(-2.121944400546905827679e-4)
                if deg == 7:   # Horner on sum_k f^k / k!, k <= 7 (float32)
                    p = T(1) + f * (T(1) + f * (T(1 / 2) + f * (T(1 / 6) + f * (T(1 / 24) + f * (
                        T(1 / 120) + f * (T(1 / 720) + f * T(1 / 5040)))))))
                else:          # k <= 13 (float64)
                    p = T(1 / 720) + f * (T(1 / 5040) + f * (T(1 / 40320) + f * (T(1 / 362880) + f * (
                        T(1 / 3628800) + f * (T(1 / 39916800) + f * (T(1 / 479001600) + f * T(1 / 6227020800)))))))
                    p = T(1) + f * (T(1) + f * (T(1 / 2) + f * (T(1 / 6) + f * (T(1 / 24) + f * (
                        T(1 / 120) + f * p)))))
                w[i] = p
                # int32 conversion (AVX2 has no vector float -> int64); NaN: any scale, p is NaN already
                k = np.int32(n) if n == n else np.int32(0)
                k1 = k >> np.int32(1)
                ib1[i] = (itype(k1) + itype(bias)) << itype(mbits)
                ib2[i] = (itype(k - k1) + itype(bias)) << itype(mbits)
            for i in range(w.size):
                w[i] = (w[i] * s1[i]) * s2[i]     # p * 2^k1 first: 2^k1 * 2^k2 alone may overflow
    return impl


@njit(cache=True)
def _row_max(v):
    """max_i v[i], NaNs skipped (a NaN still poisons the row later, through exp(NaN - m))."""
    m = v[0]
    for i in range(1, v.size):
        if v[i] > m:
            m = v[i]
    return m


@njit(cache=True, fastmath={"reassoc"})
def _row_sum(v):
    """sum_i v[i]; reassoc lets LLVM keep vector partial sums (a few ulp, tested against float64)."""
    s = v.dtype.type(0)
    for i in range(v.size):
        s += v[i]
    return s


@njit(cache=True, fastmath={"reassoc"})
def _row_dot(u, v):
    """sum_i u[i] * v[i], vectorised like `_row_sum`."""
    s = u.dtype.type(0)
    for i in range(u.size):
        s += u[i] * v[i]
    return s


@njit(cache=True, parallel=True, fastmath={"contract"})  # FMA in the exp polynomial
def softmax_forward(x):
    """y[r, c] = exp(x[r, c] - m_r) / s_r,  m_r = max_c x[r, c],  s_r = sum_c exp(x[r, c] - m_r).

    Loop nest (fused; a row stays in L1 across its sweeps):
        prange r:  m = max_c x[r, c];  y[r, :] = exp(x[r, :] - m);  s = sum_c y[r, c];  y[r, :] *= 1/s
    """
    R, C = x.shape
    y = np.empty_like(x)
    if C == 0:
        return y
    for r in prange(R):
        xr = x[r]
        yr = y[r]
        m = _row_max(xr)
        for c in range(C):
            yr[c] = xr[c] - m
        _exp_inplace(yr)
        inv = x.dtype.type(1) / _row_sum(yr)
        for c in range(C):
            yr[c] *= inv
    return y


@njit(cache=True, parallel=True)
def softmax_backward(y, dy):
    """dx[r, c] = y[r, c] * (dy[r, c] - d_r),  d_r = sum_c dy[r, c] * y[r, c]   (y = softmax output).

    Loop nest: prange r:  d = sum_c dy[r, c] * y[r, c];  for c: dx[r, c] = y[r, c] * (dy[r, c] - d)
    """
    R, C = y.shape
    dx = np.empty_like(y)
    for r in prange(R):
        yr = y[r]
        gr = dy[r]
        d = _row_dot(gr, yr)
        xr = dx[r]
        for c in range(C):
            xr[c] = yr[c] * (gr[c] - d)
    return dx


@njit(cache=True, parallel=True, fastmath={"contract"})  # FMA in the exp polynomial
def log_softmax_forward(x):
    """y[r, c] = (x[r, c] - m_r) - log(s_r),  m_r = max_c x[r, c],  s_r = sum_c exp(x[r, c] - m_r).

    Loop nest: prange r:  m = max_c x[r, c];  y[r, :] = exp(x[r, :] - m) (as scratch);  s = sum_c y[r, c];
               for c: y[r, c] = (x[r, c] - m) - log s
    (subtracting m first: m + log s would round log s away when |m| is large in float32).
    """
    R, C = x.shape
    y = np.empty_like(x)
    if C == 0:
        return y
    for r in prange(R):
        xr = x[r]
        yr = y[r]
        m = _row_max(xr)
        for c in range(C):
            yr[c] = xr[c] - m
        _exp_inplace(yr)
        ls = np.log(_row_sum(yr))
        for c in range(C):
            yr[c] = (xr[c] - m) - ls
    return y


@njit(cache=True, parallel=True, fastmath={"contract"})  # FMA in the exp polynomial
def log_softmax_backward(y, dy):
    """dx[r, c] = dy[r, c] - exp(y[r, c]) * g_r,  g_r = sum_c dy[r, c]   (y = log_softmax output).

    Loop nest: prange r:  g = sum_c dy[r, c];  dx[r, :] = exp(y[r, :]);  for c: dx[r, c] = dy[r, c] - dx[r, c] * g
    """
    R, C = y.shape
    dx = np.empty_like(y)
    for r in prange(R):
        gr = dy[r]
        g = _row_sum(gr)
        xr = dx[r]
        xr[:] = y[r]
        _exp_inplace(xr)
        for c in range(C):
            xr[c] = gr[c] - xr[c] * g
    return dx
