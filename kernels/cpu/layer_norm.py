"""Layer normalisation over the last axis of a C-contiguous (R, N) array, forward and backward.

Per row r (rows in parallel; each row's reductions stay in its own iteration):
    μ = (1/N) Σ_c x[r, c],   σ² = (1/N) Σ_c (x[r, c] - μ)²,   rstd = 1/√(σ² + eps)
    x̂ = (x - μ) · rstd,      y = x̂ ∘ w + b
Backward, with g = dy ∘ w:
    dx = rstd · (g - mean_c(g) - x̂ ∘ mean_c(g ∘ x̂))
    dw = Σ_r dy ∘ x̂,   db = Σ_r dy
dw and db sum over rows, so they are accumulated per block of rows (one private partial
per parallel work item) and the partials are added afterwards: no two threads ever write
the same element. A block is ROWS_PER_ITEM rows, or R // 4 rows when that is fewer (a 32 x 1024 input
still makes 4 work items); it depends on R only, so the sums do not depend on the thread count.

The forward saves each row's μ and rstd (2R numbers), not x̂ (R x N): it writes one array instead of two,
and the backward recomputes x̂ = (x - μ) rstd from the input x it reads anyway in place of x̂.

Both kernels may reassociate and contract (fastmath "reassoc", "contract"; NaN and inf still propagate):
without reassociation each row sum is one sequential chain that LLVM cannot vectorise, and the row
loops ran at about half of PyTorch's speed (2048 x 128 float32, 1 thread: forward 0.33 -> 0.15 ms,
backward 0.34 -> 0.15 ms). The sums change only by rounding (the tests compare with numpy).
"""
import numpy as np
from numba import njit, prange

ROWS_PER_ITEM = 64
_FM = {"reassoc", "contract"}


# ---- one row, shared with the fused decode step (kernels/cpu/decode.py) ---------------------------------
# njit(inline="always"): inlined into the caller's Numba IR, so the row loops compile as if written in the
# caller (its fastmath flags and error model apply; the reductions vectorise under the caller's "reassoc").

@njit(inline="always")
def row_stats(z, eps):
    """(μ, rstd) of one row z (N,): μ = mean z, rstd = 1/√(σ² + eps), σ² the biased variance (two passes)."""
    T = z.dtype.type
    N = z.size
    s = T(0)
    for c in range(N):
        s += z[c]
    mu = s / T(N)
    v = T(0)
    for c in range(N):
        d = z[c] - mu
        v += d * d
    return mu, T(1) / np.sqrt(v / T(N) + T(eps))


@njit(inline="always")
def layer_norm_row(z, w, b, eps, out):
    """out = (z - μ) rstd ∘ w + b over one row z (N,) (out may be z)."""
    mu, inv = row_stats(z, eps)
    for c in range(z.size):
        out[c] = (z[c] - mu) * inv * w[c] + b[c]


@njit(parallel=True, cache=True, fastmath=_FM)
def layer_norm_forward(x, w, b, eps):
    """Returns (y, mean, rstd): y (R, N), and each row's μ (R,) and rstd (R,) for the backward."""
    R, N = x.shape
    y = np.empty_like(x)
    mean = np.empty(R, dtype=x.dtype)
    rstd = np.empty(R, dtype=x.dtype)
    for r in prange(R):
        xr = x[r]
        mu, inv = row_stats(xr, eps)
        mean[r] = mu
        rstd[r] = inv
        yr = y[r]
        for c in range(N):
            yr[c] = (xr[c] - mu) * inv * w[c] + b[c]
    return y, mean, rstd


@njit(parallel=True, cache=True, fastmath=_FM)
def layer_norm_backward(dy, x, mean, rstd, w):
    """Returns (dx, dw, db) from dy (R, N), the forward's input x (R, N), its μ and rstd (R,), and the weight
    w (N,); x̂ = (x - μ) rstd is recomputed row by row (the row is in L1 for both of its passes)."""
    R, N = dy.shape
    T = dy.dtype.type
    dx = np.empty_like(dy)
    per = min(ROWS_PER_ITEM, max(1, R // 4))  # at least 4 work items from 4 rows on (2 threads' worth, twice)
    items = (R + per - 1) // per
    dw_part = np.zeros((items, N), dtype=dy.dtype)
    db_part = np.zeros((items, N), dtype=dy.dtype)
    for it in prange(items):
        pw = dw_part[it]
        pb = db_part[it]
        for r in range(it * per, min(R, (it + 1) * per)):
            g_r = dy[r]
            x_r = x[r]
            mu = mean[r]
            inv = rstd[r]
            mean_g = T(0)
            mean_gh = T(0)
            for c in range(N):
                h = (x_r[c] - mu) * inv
                g = g_r[c] * w[c]
                mean_g += g
                mean_gh += g * h
                pw[c] += g_r[c] * h
                pb[c] += g_r[c]
            mean_g /= T(N)
            mean_gh /= T(N)
            dxr = dx[r]
            for c in range(N):
                dxr[c] = inv * (g_r[c] * w[c] - mean_g - (x_r[c] - mu) * inv * mean_gh)
    dw = np.zeros(N, dtype=dy.dtype)
    db = np.zeros(N, dtype=dy.dtype)
    for it in range(items):
        for c in range(N):
            dw[c] += dw_part[it, c]
            db[c] += db_part[it, c]
    return dx, dw, db
