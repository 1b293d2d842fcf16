"""Tiny products (M*N*K <= policy.SMALL_WORK): a plain i-k-j loop per batch element, parallel over the batch."""
import numpy as np
from numba import njit, prange

from .pack import _pack


@njit(cache=True)
def _small(af, pa, a_rs, a_ks, bf, pb, b_rs, b_ks, K, out, Bkn):
    """Tiny-problem path for one batch element: out[i, :] = sum_k A[i, k] * B[:, k].

    Loop nest: pack Bkn[k, j] = B[j, k] (j contiguous), then for i: for k: out[i, :] += A[i, k] * Bkn[k, :],
    the j loop vectorised. No row blocking and no horizontal sums: for a few thousand multiply-adds
    (K of 16 or so) they would cost more than they save.
    """
    M, N = out.shape
    _pack(bf, pb, b_ks, b_rs, K, N, Bkn, K)      # Bkn[k*N + j] = bf[pb + k*b_ks + j*b_rs]
    z = out.dtype.type(0)
    for i in range(M):
        orow = out[i]
        for j in range(N):
            orow[j] = z
        ai = pa + i * a_rs
        for k in range(K):
            aik = af[ai + k * a_ks]
            brow = Bkn[k * N:(k + 1) * N]
            for j in range(N):
                orow[j] += aik * brow[j]


@njit(cache=True, parallel=True)
def _gemm_small(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K):
    """`_gemm` for tiny products (M·N·K <= SMALL_WORK, all sizes > 0): parallel over the batch only,
    the plain loop `_small` per product. A function of its own so that it compiles only when used:
    inside `_gemm` it was compiled, with a parallel loop of its own, at every cold start."""
    B = max(Ba, Bb)
    out = np.empty((B, M, N), dtype=af.dtype)
    for p in prange(B):
        pa = p * sa if Ba > 1 else 0
        pb = p * sb if Bb > 1 else 0
        Bkn = np.empty(K * N, dtype=af.dtype)
        _small(af, pa, a_rs, a_ks, bf, pb, b_rs, b_ks, K, out[p], Bkn)
    return out
