"""Few-row products (`_gemm_rows`, M <= policy.ROWS_MAX_NT / ROWS_MAX_NN): serial, no packing, no tiles."""
import numpy as np
from numba import njit

from .portable import _FM


# Products with at most ROWS_MAX_NT / ROWS_MAX_NN rows (M) take `_gemm_rows` (the backend chooses; generation's
# one-row Linears): policy.py.


@njit(cache=True, fastmath=_FM)
def _gemm_rows(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K):
    """Few-row products (M <= ROWS_MAX_NT / ROWS_MAX_NN: one new token's x @ W^T while generating), strides as
    for `_gemm`, on the calling thread: no parallel region to start, no packing, no tiles.

    Loop nest, per batch element p:
        B contiguous along k (b_ks == 1: x @ W^T):     for j: for i: out[i, j] = sum_k A[i, k] * B[j, k]
            (dot products, vectorised along k; B's row j is read once, the M rows of A stay in L1)
        otherwise (B contiguous along j: dy @ W, a^T @ b): for k: for i: out[i, :] += A[i, k] * B[:, k]
            (row updates, vectorised along j; B's row k is read once, the M output rows stay in L1)
    """
    B = max(Ba, Bb)
    out = np.zeros((B, M, N), dtype=af.dtype)
    for p in range(B):
        pa = p * sa if Ba > 1 else 0
        pb = p * sb if Bb > 1 else 0
        o = out[p]
        if b_ks == 1 and a_ks == 1:
            for j in range(N):
                brow = bf[pb + j * b_rs:pb + j * b_rs + K]
                for i in range(M):
                    arow = af[pa + i * a_rs:pa + i * a_rs + K]
                    s = af.dtype.type(0)
                    for k in range(K):
                        s += arow[k] * brow[k]
                    o[i, j] = s
        elif b_rs == 1:
            for k in range(K):
                brow = bf[pb + k * b_ks:pb + k * b_ks + N]
                for i in range(M):
                    aik = af[pa + i * a_rs + k * a_ks]
                    orow = o[i]
                    for j in range(N):
                        orow[j] += aik * brow[j]
        else:                                 # any other strides (not produced by the three entry points)
            for i in range(M):
                for j in range(N):
                    s = af.dtype.type(0)
                    for k in range(K):
                        s += af[pa + i * a_rs + k * a_ks] * bf[pb + j * b_rs + k * b_ks]
                    o[i, j] = s
    return out
