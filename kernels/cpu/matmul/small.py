"""Tiny products (M*N*K <= policy.SMALL_WORK): plain loops per batch element, parallel over the batch.

The sizes of a tiny product are too short for register tiles, so the loop is written for one long enough
axis, and LLVM vectorises it (512-bit vectors where the CPU has them); an operand not contiguous along that
axis is copied so first (`_pack`), into scratch memory of the batch element's own:

    j (N >= 16, or N the longest)   `_axpys`: out[i, :] = sum_k A[i, k] B[:, k]  (att @ v);
    k (else K >= M)                 `_dots`: out[i, j] = sum_k A[i, k] B[j, k], a reassociated sum
                                    (q @ k.transpose(-2, -1) of attention heads: M = N = the sequence length);
    i (M the longest)               `_axpys` on out.T = B @ A.T, stored transposed (a weight gradient's
                                    dyᵀ x at a few rows).

Each loop reads its rows through slices of the flat operands: indexed directly by computed offsets, Numba's
negative-index handling kept LLVM from vectorising them (192 products of 6 x 16 x 6: 113 -> 22 us).
"""
import numpy as np
from numba import njit, prange

from ..vexp import wide_vectors
from .pack import _pack


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dots(af, pa, a_rs, bf, pb, b_rs, K, out):
    """out[i, j] = sum_k af[pa + i*a_rs + k] * bf[pb + j*b_rs + k] (A and B contiguous along k)."""
    wide_vectors()
    M, N = out.shape
    for i in range(M):
        arow = af[pa + i * a_rs:pa + i * a_rs + K]
        orow = out[i]
        for j in range(N):
            brow = bf[pb + j * b_rs:pb + j * b_rs + K]
            s = out.dtype.type(0)
            for k in range(K):
                s += arow[k] * brow[k]
            orow[j] = s


@njit(cache=True)
def _axpys(af, pa, a_rs, a_ks, bf, pb, b_ks, K, out):
    """out[i, :] = sum_k af[pa + i*a_rs + k*a_ks] * bf[pb + k*b_ks + j] over j (B contiguous along j)."""
    wide_vectors()
    M, N = out.shape
    z = out.dtype.type(0)
    for i in range(M):
        orow = out[i]
        for j in range(N):
            orow[j] = z
        for k in range(K):
            aik = af[pa + i * a_rs + k * a_ks]
            brow = bf[pb + k * b_ks:pb + k * b_ks + N]
            for j in range(N):
                orow[j] += aik * brow[j]


@njit(cache=True)
def _small(af, pa, a_rs, a_ks, bf, pb, b_rs, b_ks, K, out, scratch):
    """One batch element, out = A @ B.T, vectorised along its longest usable axis (module docstring): j (N >= 16,
    or the longest), k (dot products), or i (out.T = B @ A.T, then stored transposed). An operand that is not
    contiguous along that axis is copied so first into `scratch` (at least K*(M + N) + M*N elements)."""
    M, N = out.shape
    if N >= 16 or (N >= K and N >= M):
        if b_rs == 1:
            _axpys(af, pa, a_rs, a_ks, bf, pb, b_ks, K, out)
        else:
            _pack(bf, pb, b_ks, b_rs, K, N, scratch, K)      # scratch[k*N + j] = B[j, k]
            _axpys(af, pa, a_rs, a_ks, scratch, 0, N, K, out)
    elif K >= M:
        if a_ks != 1:
            _pack(af, pa, a_rs, a_ks, M, K, scratch, M)      # scratch[i*K + k] = A[i, k]
        if b_ks != 1:
            _pack(bf, pb, b_rs, b_ks, N, K, scratch[M * K:], N)  # scratch[M*K + j*K + k] = B[j, k]
        if a_ks == 1 and b_ks == 1:  # (each case a call of its own: a read-only operand and the scratch array
            _dots(af, pa, a_rs, bf, pb, b_rs, K, out)   #  are different types to Numba)
        elif a_ks == 1:
            _dots(af, pa, a_rs, scratch, M * K, K, K, out)
        elif b_ks == 1:
            _dots(scratch, 0, K, bf, pb, b_rs, K, out)
        else:
            _dots(scratch, 0, K, scratch, M * K, K, K, out)
    else:
        outT = scratch[K * M:K * M + N * M].reshape(N, M)
        if a_rs == 1:
            _axpys(bf, pb, b_rs, b_ks, af, pa, a_ks, K, outT)   # outT[j, :] = sum_k B[j, k] A[:, k]
        else:
            _pack(af, pa, a_ks, a_rs, K, M, scratch, K)      # scratch[k*M + i] = A[i, k]
            _axpys(bf, pb, b_rs, b_ks, scratch, 0, M, K, outT)
        for i in range(M):
            for j in range(N):
                out[i, j] = outT[j, i]


@njit(cache=True, parallel=True)
def _gemm_small(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K):
    """`_gemm` for tiny products (M·N·K <= SMALL_WORK, all sizes > 0): parallel over the batch only,
    `_small` per product. A function of its own so that it compiles only when used:
    inside `_gemm` it was compiled, with a parallel loop of its own, at every cold start."""
    B = max(Ba, Bb)
    out = np.empty((B, M, N), dtype=af.dtype)
    for p in prange(B):
        pa = p * sa if Ba > 1 else 0
        pb = p * sb if Bb > 1 else 0
        scratch = np.empty(K * (M + N) + M * N, dtype=af.dtype)
        _small(af, pa, a_rs, a_ks, bf, pb, b_rs, b_ks, K, out[p], scratch)
    return out
