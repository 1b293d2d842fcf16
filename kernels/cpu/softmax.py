"""Row-wise softmax and log-softmax over the last axis of a C-contiguous (R, C) array, forward and backward.

Every kernel is one pass structure per row, rows in parallel (prange): rows are independent, each row's
reductions stay inside its own iteration, so there is no shared accumulator. Output dtype = input dtype;
the arithmetic is done in that dtype too (float32 stays float32, as in PyTorch).

A row that is all -inf has max = -inf, so x - max is NaN and the result is NaN, like PyTorch; nothing
is special-cased, nothing crashes.
"""
import numpy as np
from numba import njit, prange

from .vexp import fmax, vexp, wide_vectors

# Every loop below vectorises (vmaxps, the vexp polynomial and the sums in vector registers): the row maximum
# reduces with `fmax` (LLVM maxnum) under no-NaN flags (a compare-and-select chain stays scalar at ~2.6 cycles
# per element: most of the old forward's time), sums reassociate, and the exp stays exact to its ~1 ulp:
# reassociation is confined to `_acc` (an add that LLVM inlines with its own flags), so it never reaches vexp's
# Cody-Waite reduction. Each row makes the fewest passes its formula needs; a row of up to a few thousand
# elements stays in L1 between them, so memory sees one read of each input and one write.


@njit(cache=True, fastmath={"nnan", "nsz"})
def _row_max(v):
    """max_i v[i] for the shift of a softmax row. No-NaN flags: plain vmaxps, no NaN fix-ups (without them,
    maxnum's NaN handling made a row of 64 cost 34 ns, 5x the flagged loop). With a NaN in the row the
    result is some element or NaN, and either way the row comes out NaN through exp(NaN - m) or the sum,
    as in PyTorch (tested); the flags stay in this function (fast-math flags are per instruction)."""
    m = v[0]
    for i in range(1, v.size):
        m = fmax(m, v[i])
    return m


@njit(cache=True, fastmath={"reassoc"})
def _acc(s, e):
    """s + e, reassociable: a sum accumulated with it vectorises (partial sums; a few ulp, tested)."""
    return s + e


@njit(cache=True, fastmath={"reassoc"})
def _row_sum(v):
    """sum_i v[i], vectorised (reassoc)."""
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


@njit(cache=True, fastmath={"contract"}, error_model="numpy")  # FMA in the exp polynomial
def _exp_store_sum(xr, m, yr):
    """yr[:] = exp(xr - m); returns sum(yr). One pass."""
    s = xr.dtype.type(0)
    for c in range(xr.size):
        e = vexp(xr[c] - m)
        yr[c] = e
        s = _acc(s, e)
    return s


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _exp_sum(xr, m):
    """sum_c exp(xr[c] - m), nothing stored. One pass."""
    s = xr.dtype.type(0)
    for c in range(xr.size):
        s = _acc(s, vexp(xr[c] - m))
    return s


ROW_BLOCK = 32  # rows per parallel work item of the kernels that take the next row's max ahead


@njit(cache=True)
def _row_blocks(R):
    """How many parallel work items R rows split into: blocks of ROW_BLOCK rows, but at least 64 (or R) so that a
    few long rows still spread over many threads (numba.get_num_threads() here would keep Numba from caching the
    kernels). Block b holds rows b R // n .. (b + 1) R // n - 1."""
    return max((R + ROW_BLOCK - 1) // ROW_BLOCK, min(R, 64))


@njit(cache=True, parallel=True, error_model="numpy")
def softmax_forward(x):
    """y[r, c] = exp(x[r, c] - m_r) / s_r,  m_r = max_c x[r, c],  s_r = sum_c exp(x[r, c] - m_r).

    Loop nest (fused; a row stays in L1 across its sweeps):
        prange block of rows: for r in block: m_{r+1} = max_c x[r + 1, c] (the next row's, one step ahead);
                              y[r, :] = exp(x[r, :] - m_r), s = sum_c y[r, c];  y[r, :] *= 1/s
    The next row's max does not wait for this row's sum, so the CPU overlaps the two dependency chains (as in
    cross_entropy_forward): 8192 x 64 float32, 1 thread, 368 -> 278 us (PyTorch 333-343).
    """
    R, C = x.shape
    y = np.empty_like(x)
    if C == 0:
        return y
    n = _row_blocks(R)
    for b in prange(n):
        r0, r1 = b * R // n, (b + 1) * R // n
        m_next = _row_max(x[r0])
        for r in range(r0, r1):
            m = m_next
            if r + 1 < r1:
                m_next = _row_max(x[r + 1])
            yr = y[r]
            inv = x.dtype.type(1) / _exp_store_sum(x[r], m, yr)
            for c in range(C):
                yr[c] *= inv
    return y


@njit(cache=True, parallel=True, error_model="numpy")
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


@njit(cache=True, parallel=True, error_model="numpy")
def log_softmax_forward(x):
    """y[r, c] = (x[r, c] - m_r) - log(s_r),  m_r = max_c x[r, c],  s_r = sum_c exp(x[r, c] - m_r).

    Loop nest: prange block of rows: for r in block: m_{r+1} = max_c x[r + 1, c] (one step ahead, as in
               softmax_forward: 8192 x 64 float32, 1 thread, 425 -> 307-323 us); s = sum_c exp(x[r, c] - m_r)
               (nothing stored); for c: y[r, c] = (x[r, c] - m_r) - log s
    (subtracting m first: m + log s would round log s away when |m| is large in float32).
    """
    R, C = x.shape
    y = np.empty_like(x)
    if C == 0:
        return y
    n = _row_blocks(R)
    for b in prange(n):
        r0, r1 = b * R // n, (b + 1) * R // n
        m_next = _row_max(x[r0])
        for r in range(r0, r1):
            m = m_next
            if r + 1 < r1:
                m_next = _row_max(x[r + 1])
            xr = x[r]
            yr = y[r]
            ls = np.log(_exp_sum(xr, m))
            for c in range(C):
                yr[c] = (xr[c] - m) - ls
    return y


@njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")  # FMA in the exp polynomial
def log_softmax_backward(y, dy):
    """dx[r, c] = dy[r, c] - exp(y[r, c]) * g_r,  g_r = sum_c dy[r, c]   (y = log_softmax output).

    Loop nest: prange r:  g = sum_c dy[r, c];  for c: dx[r, c] = dy[r, c] - exp(y[r, c]) * g
    """
    R, C = y.shape
    dx = np.empty_like(y)
    for r in prange(R):
        wide_vectors()  # 512-bit vexp: 2048 x 96 f32 79 -> 62 us (1 thread); the forwards lost at short rows
        gr = dy[r]
        yr = y[r]
        g = _row_sum(gr)
        xr = dx[r]
        for c in range(C):
            xr[c] = gr[c] - vexp(yr[c]) * g
    return dx


# ---- cross-entropy over class-index targets, fused ------------------------------------------------------------
#     per row n (logits x_n, target t_n, label smoothing ε, C classes):
#         m_n = max_c x_n[c],  ls_n = log Σ_c exp(x_n[c] - m_n)        (log p_n[c] = (x_n[c] - m_n) - ls_n)
#         loss_n = (1 - ε)·((m_n - x_n[t_n]) + ls_n) + ε·((m_n - mean_c x_n[c]) + ls_n)
#         dx_n[c] = w_n·(exp((x_n[c] - m_n) - ls_n) - ε/C) - w_n·(1 - ε)·[c = t_n]
# The forward reads the logits once and writes two numbers per row (m, ls), not the (N, C) log-probabilities; the
# backward recomputes p from the logits and writes dx: one read and one write, where the log_softmax route wrote
# and read logp, gathered, and built d in NumPy passes.


@njit(cache=True, parallel=True, error_model="numpy")
def cross_entropy_forward(x, target, smoothing):
    """(loss (R,), m (R,), ls (R,)) of the formulas above for C-contiguous x (R, C), C >= 1, int64 targets in
    range (the caller checks).

    Loop nest: prange block of rows (_row_blocks): for r in block: m_{r+1} = max_c x[r + 1, c] (the next row's, one
    step ahead); s = Σ_c exp(x[r, c] - m_r) (nothing stored); [ε > 0: Σ_c x[r, c]]; loss[r] from m_r, log s,
    x[r, t_r]. The next row's max is independent of this row's exp sum, so the CPU overlaps the two: at
    768 x 64 float32 on 1 thread, 46 -> 27 ns per row against taking each row's max right before its sum.
    """
    R, C = x.shape
    T = x.dtype.type
    loss = np.empty(R, x.dtype)
    mx = np.empty(R, x.dtype)
    lse = np.empty(R, x.dtype)
    hit = T(1.0 - smoothing)
    eps = T(smoothing)
    n = _row_blocks(R)
    for b in prange(n):
        r0, r1 = b * R // n, (b + 1) * R // n
        m_next = _row_max(x[r0])
        for r in range(r0, r1):
            m = m_next
            if r + 1 < r1:
                m_next = _row_max(x[r + 1])
            xr = x[r]
            ls = np.log(_exp_sum(xr, m))
            nll = (m - xr[target[r]]) + ls
            if smoothing != 0.0:
                nll = hit * nll + eps * ((m - _row_sum(xr) / T(C)) + ls)
            loss[r] = nll
            mx[r] = m
            lse[r] = ls
    return loss, mx, lse


@njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy")  # FMA in the exp polynomial
def cross_entropy_backward(x, mx, lse, target, w, smoothing, dx):
    """dx (R, C) of the formula above, into dx (allocated by the caller with NumPy: huge pages for large arrays);
    w (R,) the gradient of each row's loss (0 for an ignored row).
    Loop nest: prange r: for c: dx[r, c] = w_r (exp((x[r, c] - m_r) - ls_r) - ε/C);  dx[r, t_r] -= w_r (1 - ε)."""
    R, C = x.shape
    T = x.dtype.type
    off = T(smoothing / C) if C else T(0)
    hit = T(1.0 - smoothing)
    for r in prange(R):
        wide_vectors()  # 512-bit vexp, as in log_softmax_backward
        xr = x[r]
        dr = dx[r]
        wr = w[r]
        m = mx[r]
        ls = lse[r]
        for c in range(C):
            dr[c] = wr * (vexp((xr[c] - m) - ls) - off)
        dr[target[r]] -= wr * hit
    return dx
