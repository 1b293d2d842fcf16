"""Row-wise softmax and log-softmax over the last axis of a C-contiguous (R, C) array, forward and backward.

Every kernel is one pass structure per row, rows in parallel (prange): rows are independent, each row's
reductions stay inside its own iteration, so there is no shared accumulator. Output dtype = input dtype;
the arithmetic is done in that dtype too (float32 stays float32, as in PyTorch).

A row that is all -inf has max = -inf, so x - max is NaN and the result is NaN, like PyTorch; nothing
is special-cased, nothing crashes.
"""
import numpy as np
from numba import njit, prange

from .vexp import vexp


@njit(cache=True)
def _exp_inplace(v):
    """v[:] = exp(v) for a 1-D array, with the vectorisable `vexp` (arguments here are <= 0)."""
    for i in range(v.size):
        v[i] = vexp(v[i])


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


@njit(cache=True, fastmath={"contract"})  # FMA in the exp polynomial
def _shifted_exp(xr, yr):
    """yr[:] = exp(xr - m) with m = max(xr); returns (m, sum(yr)). The shared start of both forwards."""
    m = _row_max(xr)
    for c in range(xr.size):
        yr[c] = xr[c] - m
    _exp_inplace(yr)
    return m, _row_sum(yr)


@njit(cache=True, parallel=True)
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
        yr = y[r]
        _, s = _shifted_exp(x[r], yr)
        inv = x.dtype.type(1) / s
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


@njit(cache=True, parallel=True)
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
        m, s = _shifted_exp(xr, yr)
        ls = np.log(s)
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
