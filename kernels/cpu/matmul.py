"""Batched matrix products on the CPU: packing + a register-blocked micro-kernel, Numba-parallel.

Three public kernels, each returning a new (B, M, N) array of the inputs' dtype:

    matmul_nn(a, b)  a (Ba, M, K), b (Bb, K, N)   out[p] = a[p]   @ b[p]
    matmul_nt(a, b)  a (Ba, M, K), b (Bb, N, K)   out[p] = a[p]   @ b[p].T    (dA = dC · Bᵀ)
    matmul_tn(a, b)  a (Ba, K, M), b (Bb, K, N)   out[p] = a[p].T @ b[p]      (dB = Aᵀ · dC)

Inputs are C-contiguous. Batch broadcast: each operand's batch is 1 or B = max(Ba, Bb); an operand of
batch 1 has batch stride 0, so out[p] reads a[p * (Ba > 1)] and b[p * (Bb > 1)].

All three are one routine, `_gemm`, that sees both operands through strides:

    A[p][i, k] = a_flat[p*sa + i*a_rs + k*a_ks]      (i < M)
    B[p][j, k] = b_flat[p*sb + j*b_rs + k*b_ks]      (j < N)       out[p][i, j] = sum_k A[i, k] * B[j, k]

so "transposed" just means other strides. Packing copies A and B into buffers where every row (fixed i,
or fixed j) is contiguous along k, padded with zero rows to a multiple of the micro-tile. The micro-kernel
then computes an MR x NR tile of dot products over k: MR*NR scalar accumulators that LLVM vectorises along
k (8 float32 / 4 float64 lanes each, `reassoc` lets it split the sums), and a horizontal add at the end.
A dot-product micro-kernel (rather than the outer-product one BLAS uses) is what Numba reliably turns into
register-resident vector FMAs; see docs/benchmarks.md for the measurements behind the choice.

Blocking (Goto-style, adapted): the packed B (all of N, all of K) is shared read-only by every task;
each parallel task owns one batch p and one block of MC rows and, per KC-slice of k, packs its A block
(MC x KC, in L2), then sweeps the NR-row micro-panels of B (NR x KC, in L1) over its MR-row micro-panels.
Tasks write disjoint output rows, so the prange has no races; the k reduction stays inside one task.
"""
import numpy as np
from numba import njit, prange

MR = 3     # micro-tile rows (of A)        3 x 3 = 9 vector accumulators + 6 operand loads per step
NR = 3     # micro-tile columns (rows of the packed B)
KC = 512   # k-slice: a micro-panel of B is NR*KC elements (6 KiB float32), it stays in L1
MC = 96    # rows per task block, at most: MC*KC elements of packed A (192 KiB float32) stay in L2
MIN_TASKS = 16     # split rows finer than MC until there are this many tasks (thread balance)
SMALL_WORK = 1 << 15   # multiply-adds per batch element below which the plain loop wins

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


@njit(cache=True)
def _pack(src, off, rs, ks, rows, kc, dst, rows_pad):
    """dst[r*kc + k] = src[off + r*rs + k*ks] for r < rows, k < kc; zero for rows <= r < rows_pad.

    Loop nest: if the source is contiguous along k (ks == 1), rows outer and k inner (both streams
    contiguous). Otherwise (a transposed source) it is a tiled transpose: 32 x 32 tiles of (r, k),
    r then k inside a tile, so the writes are contiguous runs and the 32 source lines stay in L1.
    """
    if ks == 1:
        for r in range(rows):
            s = off + r * rs
            d = r * kc
            for k in range(kc):
                dst[d + k] = src[s + k]
    else:
        for r0 in range(0, rows, 32):
            r1 = min(r0 + 32, rows)
            for k0 in range(0, kc, 32):
                k1 = min(k0 + 32, kc)
                for r in range(r0, r1):
                    s = off + r * rs
                    d = r * kc
                    for k in range(k0, k1):
                        dst[d + k] = src[s + k * ks]
    z = dst.dtype.type(0)
    for r in range(rows, rows_pad):
        for k in range(kc):
            dst[r * kc + k] = z


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


def _estrides(x):
    """Strides of x in elements, as Python ints (typed int64, so one compiled `_gemm` serves all three)."""
    return tuple(s // x.itemsize for s in x.strides)


def _product(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K):
    """`_gemm_small` for tiny products, `_gemm` for the rest: each compiles only when first used."""
    if 0 < M * N * K <= SMALL_WORK:
        return _gemm_small(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    return _gemm(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)


# The three public functions are plain Python: they only compute strides and call the compiled
# `_gemm`, so compiling them as well would add seconds to a cold start and save nothing per call.


def matmul_nn(a, b):
    """out[p] = a[p] @ b[p]: a (Ba, M, K), b (Bb, K, N) -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, i, k] * b[p, k, j]. Loop nest: `_gemm` with A[i, k] = a[p, i, k]
    (row stride K, k stride 1) and B[j, k] = b[p, k, j] (row stride 1, k stride N): b is transposed
    while it is packed. a and b are C-contiguous.
    """
    Ba, M, K = a.shape
    Bb, _, N = b.shape
    sa, a_rs, a_ks = _estrides(a)
    sb, b_ks, b_rs = _estrides(b)
    return _product(a.ravel(), Ba, sa, a_rs, a_ks, b.ravel(), Bb, sb, b_rs, b_ks, M, N, K)


def matmul_nt(a, b):
    """out[p] = a[p] @ b[p].T: a (Ba, M, K), b (Bb, N, K) -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, i, k] * b[p, j, k]. Loop nest: `_gemm` with both operands
    contiguous along k (row stride K, k stride 1); packing is a plain copy.
    """
    Ba, M, K = a.shape
    Bb, N, _ = b.shape
    sa, a_rs, a_ks = _estrides(a)
    sb, b_rs, b_ks = _estrides(b)
    return _product(a.ravel(), Ba, sa, a_rs, a_ks, b.ravel(), Bb, sb, b_rs, b_ks, M, N, K)


def matmul_tn(a, b):
    """out[p] = a[p].T @ b[p]: a (Ba, K, M), b (Bb, K, N) -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, k, i] * b[p, k, j]. Loop nest: `_gemm` with A[i, k] = a[p, k, i]
    (row stride 1, k stride M) and B[j, k] = b[p, k, j] (row stride 1, k stride N): both operands are
    transposed while they are packed.
    """
    Ba, K, M = a.shape
    Bb, _, N = b.shape
    sa, a_ks, a_rs = _estrides(a)
    sb, b_ks, b_rs = _estrides(b)
    return _product(a.ravel(), Ba, sa, a_rs, a_ks, b.ravel(), Bb, sb, b_rs, b_ks, M, N, K)
