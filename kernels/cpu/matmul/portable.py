"""The portable matmul kernel `_gemm` (any CPU, no explicit vectors): packed A and B, a 3 x 3 tile of dot
products that LLVM vectorises along k (`_micro_3x3`). The loop nest and blocking: `_gemm`'s docstring and the
package docstring; the blocking sizes: policy.py."""
import numpy as np
from numba import njit, prange

from ..policy import KC, MC, MIN_TASKS, MR, NR
from .pack import _pack

# Only reassociation and FMA contraction: NaN/inf still propagate; tests hold results to numpy.
_FM = {"reassoc", "contract"}


@njit(cache=True, fastmath=_FM)
def _micro_3x3(kc, a0, a1, a2, b0, b1, b2):
    """The 3x3 dot-product tile: s_ij = sum_{k<kc} a_i[k] * b_j[k].

    Loop nest: for k: load a0..a2[k], b0..b2[k]; 9 multiply-adds into scalar accumulators.
    With reassoc LLVM vectorises the k loop, keeping each s_ij as a vector register.
    """
    z = a0.dtype.type(0)
    s00 = z; s01 = z; s02 = z
    s10 = z; s11 = z; s12 = z
    s20 = z; s21 = z; s22 = z
    for k in range(kc):
        x0 = a0[k]; x1 = a1[k]; x2 = a2[k]
        y0 = b0[k]; y1 = b1[k]; y2 = b2[k]
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2
    return (s00, s01, s02, s10, s11, s12, s20, s21, s22)


@njit(cache=True, parallel=True)
def _gemm(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K):
    """out[p][i, j] = sum_k A[p][i, k] * B[p][j, k] with A, B addressed through strides (module doc).

    Loop nest:
        pack B:  prange over (pb, 64-row chunk of N): Bp[pb][j, :] = B[pb][j, :]   (rows padded to NR)
        prange over (p, row block of <= MC rows):
            for k0 in range(0, K, KC):                       # k-slices, the reduction stays in-task
                pack A rows of this block, k in [k0, k0+KC)  # Ap[i, :], rows padded to MR
                for j in range(0, N, NR):                    # micro-panel of B, reused from L1
                    for i in range(0, rows, MR):             # micro-panel of A, streamed from L2
                        tile = micro(Ap[i:i+MR], Bp[j:j+NR])  # MR x NR dot products over the slice
                        out[p, i0+i.., j..] (=, first slice | +=, later slices) tile
    """
    B = max(Ba, Bb)
    out = np.empty((B, M, N), dtype=af.dtype)
    if B == 0 or M == 0 or N == 0:
        return out
    if K == 0:
        out[:] = 0
        return out

    # ---- pack all of B once: Bp[pb] is (Np, K), row j contiguous along k, zero rows past N.
    Np = (N + NR - 1) // NR * NR
    Bp = np.empty(Bb * Np * K, dtype=af.dtype)
    nchunk = (Np + 63) // 64
    for t in prange(Bb * nchunk):
        pb = t // nchunk
        j0 = (t % nchunk) * 64
        j1 = min(j0 + 64, Np)
        jv = max(0, min(j1, N) - j0)          # real (unpadded) rows in this chunk
        _pack(bf, pb * sb + j0 * b_rs, b_rs, b_ks, jv, K, Bp[(pb * Np + j0) * K:], j1 - j0)

    # ---- row blocks: enough of them to keep every thread busy, each at most MC rows, MR-aligned.
    nblk = (M + MC - 1) // MC
    if B * nblk < MIN_TASKS:                  # few tasks: split finer so the threads balance
        nblk = max(nblk, min((MIN_TASKS + B - 1) // B, (M + MR - 1) // MR))
    mc = (M + nblk - 1) // nblk
    mc = (mc + MR - 1) // MR * MR
    nblk = (M + mc - 1) // mc
    kcmax = min(KC, K)

    for t in prange(B * nblk):
        p = t // nblk
        i0 = (t % nblk) * mc
        rows = min(mc, M - i0)
        rows_pad = (rows + MR - 1) // MR * MR
        pa = p * sa if Ba > 1 else 0
        pbb = (p if Bb > 1 else 0) * Np * K
        Ap = np.empty(rows_pad * kcmax, dtype=af.dtype)
        for k0 in range(0, K, KC):
            kc = min(KC, K - k0)
            _pack(af, pa + i0 * a_rs + k0 * a_ks, a_rs, a_ks, rows, kc, Ap, rows_pad)
            for j in range(0, Np, NR):
                b0 = pbb + j * K + k0
                bv0 = Bp[b0:b0 + kc]
                bv1 = Bp[b0 + K:b0 + K + kc]
                bv2 = Bp[b0 + 2 * K:b0 + 2 * K + kc]
                for i in range(0, rows_pad, MR):
                    a0 = i * kc
                    s = _micro_3x3(kc, Ap[a0:a0 + kc], Ap[a0 + kc:a0 + 2 * kc],
                                   Ap[a0 + 2 * kc:a0 + 3 * kc], bv0, bv1, bv2)
                    r = i0 + i
                    if i + MR <= rows and j + NR <= N:
                        if k0 == 0:
                            out[p, r, j] = s[0]; out[p, r, j + 1] = s[1]; out[p, r, j + 2] = s[2]
                            out[p, r + 1, j] = s[3]; out[p, r + 1, j + 1] = s[4]; out[p, r + 1, j + 2] = s[5]
                            out[p, r + 2, j] = s[6]; out[p, r + 2, j + 1] = s[7]; out[p, r + 2, j + 2] = s[8]
                        else:
                            out[p, r, j] += s[0]; out[p, r, j + 1] += s[1]; out[p, r, j + 2] += s[2]
                            out[p, r + 1, j] += s[3]; out[p, r + 1, j + 1] += s[4]; out[p, r + 1, j + 2] += s[5]
                            out[p, r + 2, j] += s[6]; out[p, r + 2, j + 1] += s[7]; out[p, r + 2, j + 2] += s[8]
                    else:                     # edge tile: store only the rows/cols that exist
                        for ii in range(min(MR, rows - i)):
                            for jj in range(min(NR, N - j)):
                                if k0 == 0:
                                    out[p, r + ii, j + jj] = s[ii * NR + jj]
                                else:
                                    out[p, r + ii, j + jj] += s[ii * NR + jj]
    return out
