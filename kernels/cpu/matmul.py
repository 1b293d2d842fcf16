"""Batched matrix products on the CPU: packing + a register-blocked micro-kernel, Numba-parallel.

Three public kernels, each returning a new (B, M, N) array of the inputs' dtype:

    matmul_nn(a, b)  a (Ba, M, K), b (Bb, K, N)   out[p] = a[p]   @ b[p]
    matmul_nt(a, b)  a (Ba, M, K), b (Bb, N, K)   out[p] = a[p]   @ b[p].T    (dA = dC · Bᵀ)
    matmul_tn(a, b)  a (Ba, K, M), b (Bb, K, N)   out[p] = a[p].T @ b[p]      (dB = Aᵀ · dC)

Inputs are C-contiguous. Batch broadcast: each operand's batch is 1 or B = max(Ba, Bb); an operand of
batch 1 has batch stride 0, so out[p] reads a[p * (Ba > 1)] and b[p * (Bb > 1)].

All three are one routine that sees both operands through strides:

    A[p][i, k] = a_flat[p*sa + i*a_rs + k*a_ks]      (i < M)
    B[p][j, k] = b_flat[p*sb + j*b_rs + k*b_ks]      (j < N)       out[p][i, j] = sum_k A[i, k] * B[j, k]

so "transposed" just means other strides. Two implementations, chosen per host (`KERNEL`):

- `_gemm_outer` (CPUs with AVX-512 or AVX2 + FMA): BLAS-style outer-product micro-kernels emitted as
  LLVM vector IR (microkernel.py): a 12 x 2-vector tile (12 x 32 float32) of register accumulators on
  AVX-512, 6 x 2 vectors (6 x 16) on AVX2; per k, NR values of B are loaded as vectors and each of the
  MR values of A is broadcast into them, so no horizontal sums at all. B is packed once into k-major
  micro-panels when it is contiguous along k (x @ W^T) and read in place when it is contiguous along j
  (dy @ W, dy^T @ x); A is read in place when contiguous along k and copied one micro-panel at a time
  otherwise. See its docstring for the loop nest and docs/benchmarks.md for the measurements.
- `_gemm` (the portable path, any CPU; no explicit vectors): packing copies A and B into buffers where
  every row (fixed i, or fixed j) is contiguous along k, padded with zero rows to a multiple of the
  micro-tile. The micro-kernel then computes an MR x NR tile of dot products over k: MR*NR scalar
  accumulators that LLVM vectorises along k (8 float32 / 4 float64 lanes each, `reassoc` lets it split
  the sums), and a horizontal add at the end.

  Blocking (Goto-style, adapted): the packed B (all of N, all of K) is shared read-only by every task;
  each parallel task owns one batch p and one block of MC rows and, per KC-slice of k, packs its A block
  (MC x KC, in L2), then sweeps the NR-row micro-panels of B (NR x KC, in L1) over its MR-row
  micro-panels.

Tasks write disjoint output rows (and columns), so the prange has no races; the k reduction stays
inside one task, except in `_gemm_outer`'s k-split (a long reduction into a small output: a weight
gradient), where each task sums its share of k into a partial output of its own and the partials are
added after the parallel loop. Tiny products (`_gemm_small`) take a plain i-k-j loop.
"""
import numba
import numpy as np
from numba import njit, prange

from .microkernel import (copy_a_w32, copy_a_w64, copy_b_w32, copy_b_w64, host_kernel, transpose_w32, transpose_w64,
                          ukernel_w32, ukernel_w32t, ukernel_w64, ukernel_w64t)

# Blocking sizes and thresholds, with their units and measurements: policy.py
from .policy import (KC, MC, MICRO_ROWS_W32, MICRO_ROWS_W64, MIN_TASKS, MR, NR, OUTER_KC, OUTER_MAX_SPLIT_K,
                     OUTER_MIN_PANELS, OUTER_NC_BYTES, OUTER_SPLIT_K, ROWS_MAX_NN, ROWS_MAX_NT, SMALL_WORK,
                     TAIL_ROWS_W32, TAIL_ROWS_W64)

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


@njit(cache=True)
def _pack_b_panel(bf, off, rs, ks, N, K, KC, NR, q, dst, d0, Np, dq, wide):
    """Pack micro-panel q (columns q*NR ..) of B for every k-slice, as panel dq of a slice of Np columns:
    dst[d0 + k0*Np + dq*NR*kc + k*NR + c] = B[q*NR + c, k0 + k] = bf[off + (q*NR + c)*rs + (k0 + k)*ks],
    zero for columns q*NR + c >= N.

    Loop nest: for each k-slice: if B is contiguous along j (rs == 1): k outer, c inner (contiguous runs);
    else (contiguous along k, a transpose): blocks of V = NR/2 columns x V k transposed in registers
    (microkernel.transpose_*: a scalar transposing copy took ~0.6 ns per element), the remainder c outer,
    k inner, so the reads are the contiguous stream.
    """
    j0 = q * NR
    nc = min(NR, N - j0)
    z = dst.dtype.type(0)
    for k0 in range(0, K, KC):
        kc = min(KC, K - k0)
        base = d0 + k0 * Np + dq * NR * kc
        if rs == 1 and nc == NR:
            if wide:                          # fixed-width row copies: vector moves
                copy_b_w64(kc, bf, off + j0 + k0 * ks, ks, dst, base)
            else:
                copy_b_w32(kc, bf, off + j0 + k0 * ks, ks, dst, base)
        elif rs == 1:
            for k in range(kc):
                s = off + j0 + (k0 + k) * ks
                d = base + k * NR
                for c in range(nc):
                    dst[d + c] = bf[s + c]
                for c in range(nc, NR):
                    dst[d + c] = z
        else:
            kv = 0
            if ks == 1 and nc == NR:          # W in x @ W^T: V x V blocks transposed in registers
                V = NR // 2
                kv = kc - kc % V
                for kb in range(0, kv, V):
                    for c0 in range(0, NR, V):
                        if wide:
                            transpose_w64(bf, off + (j0 + c0) * rs + k0 + kb, rs, dst, base + kb * NR + c0, NR)
                        else:
                            transpose_w32(bf, off + (j0 + c0) * rs + k0 + kb, rs, dst, base + kb * NR + c0, NR)
            for c in range(nc):               # the rest (any strides, the last k and columns): one by one
                s = off + (j0 + c) * rs + k0 * ks
                for k in range(kv, kc):
                    dst[base + k * NR + c] = bf[s + k * ks]
            for c in range(nc, NR):
                for k in range(kv, kc):
                    dst[base + k * NR + c] = z


@njit(cache=True)
def _panel(kind, MRk, mr, kc, more, af, aoff, a_rs, a_ks, ap, Bp, boff0, Nb, bf, bfoff, b_ks, pack_b, NR, N,
           of, cbase, jc, jend, ct):
    """One row panel (mr <= MRk rows starting at A offset `aoff`, output offset `cbase`) of `_gemm_outer`
    over the micro-panels j in [jc, jend) of one k-slice of length kc, with micro-kernel `kind`
    (0: 12-row 64-byte, 1: 6-row 32-byte, 2 and 3: their 4- and 2-row tail shapes):

        for j in range(jc, jend, NR): out[rows, j:j+NR] (=, first slice | +=) ukernel(A panel, B panel j)

    A is read in place when it is contiguous along k and the panel is full; otherwise it is copied into
    `ap` (MRk values per k, zero rows past mr). B comes from the packed Bp (panel j at boff0 + j*kc, or
    its only panel at boff0 when B is read in place) or in place from bf (bfoff + j + k*b_ks).
    Edge tiles (mr < MRk or past N) go through the scratch tile `ct`.
    """
    if mr == MRk and a_ks == 1:                  # row-major A: read in place
        asrc = af
        ars = a_rs
        aks = a_ks
        ao = aoff
    else:
        if mr == MRk and a_rs == 1 and kind < 2:  # fixed-width copies (vector moves)
            if kind == 0:
                copy_a_w64(kc, af, aoff, a_ks, ap, 0)
            else:
                copy_a_w32(kc, af, aoff, a_ks, ap, 0)
        elif a_ks == 1:                           # the last rows of a row-major A: rows outer
            z = ap.dtype.type(0)
            for rr in range(mr):
                s = aoff + rr * a_rs
                for k in range(kc):
                    ap[k * MRk + rr] = af[s + k]
            for rr in range(mr, MRk):
                for k in range(kc):
                    ap[k * MRk + rr] = z
        else:
            z = ap.dtype.type(0)
            for k in range(kc):
                s = aoff + k * a_ks
                d = k * MRk
                for rr in range(mr):
                    ap[d + rr] = af[s + rr * a_rs]
                for rr in range(mr, MRk):
                    ap[d + rr] = z
        asrc = ap
        ars = 1
        aks = MRk
        ao = 0
    for j in range(jc, jend, NR):
        nr = min(NR, N - j)
        if pack_b or nr < NR:
            bsrc = Bp
            bo = boff0 + (j if pack_b else 0) * kc
            bks = NR
        else:
            bsrc = bf
            bo = bfoff + j
            bks = b_ks
        full = mr == MRk and nr == NR
        cdst = of if full else ct
        co = cbase + j if full else 0
        ldc = N if full else NR
        acc = more and full
        if kind == 0:
            ukernel_w64(kc, asrc, ao, ars, aks, bsrc, bo, bks, cdst, co, ldc, acc)
        elif kind == 1:
            ukernel_w32(kc, asrc, ao, ars, aks, bsrc, bo, bks, cdst, co, ldc, acc)
        elif kind == 2:
            ukernel_w64t(kc, asrc, ao, ars, aks, bsrc, bo, bks, cdst, co, ldc, acc)
        else:
            ukernel_w32t(kc, asrc, ao, ars, aks, bsrc, bo, bks, cdst, co, ldc, acc)
        if not full:
            for ii in range(mr):
                o = cbase + ii * N + j
                for jj in range(nr):
                    if more:
                        of[o + jj] += ct[ii * NR + jj]
                    else:
                        of[o + jj] = ct[ii * NR + jj]


@njit(cache=True)
def _add_bias(of, cbase, N, mr, bias, j0, j1):
    """of[cbase + r*N + j] += bias[j] for r < mr, j0 <= j < j1: a Linear's bias on the tile rows just written."""
    bs = bias[j0:j1]
    for r in range(mr):
        orow = of[cbase + r * N + j0:cbase + r * N + j1]
        for j in range(j1 - j0):  # slices: a run of non-negative indices, which vectorises
            orow[j] += bs[j]


@njit(cache=True)
def _a_sums(af, off, a_ks, n, kc, dst, d0):
    """dst[d0 + i] += sum_{k < kc} A[i, k] for i < n, A[i, k] = af[off + i + k*a_ks] (rows of A contiguous:
    dy^T in dy^T @ x). Loop nest: for k: dst[d0:d0+n] += af[row k] (vectorised along i)."""
    acc = dst[d0:d0 + n]
    for k in range(kc):
        row = af[off + k * a_ks:off + k * a_ks + n]
        for i in range(n):
            acc[i] += row[i]


@njit(cache=True, parallel=True)
def _gemm_outer(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, nth, bias, sums):
    """out[p][i, j] = sum_k A[p][i, k] * B[p][j, k] (+ bias[j]), strides as for `_gemm`, with the
    outer-product micro-kernels of microkernel.py: wide=True the 12 x 2-vector AVX-512 shape, False the
    6 x 2-vector AVX2 one (NR = 2 * vector bytes / itemsize columns); their 4- (2-) row shapes take the
    last rows. `nth`: the thread count the task grid is sized for. `bias`: N values added to every row
    (a Linear's b) or an empty array for none; each tile's rows get it right after their last k-slice,
    while they are still in L1 (a separate `y += b` pass costs a read and a write of all of C).
    `sums`: zeros (nth, B*M), or an empty array for none: then also sums[kb, p*M + i] += sum_k A[p][i, k]
    over k block kb's share of k (summed over kb by the caller: a Linear's bias gradient db = sum_k dy[k, :]
    alongside dW = dy^T x, read while the k-slice of dy is in cache from the micro-panel copies instead
    of in a separate pass over dy). Only for A with contiguous rows (a_rs == 1: dy^T).

    Loop nest:
        B contiguous along k (x @ W^T), or along j with rows >= 4 KiB apart (then every k step of an
            in-place panel would touch a new page): for (pb, NR-column micro-panel), on this thread:
            pack Bp[pb][k-slice][panel][k, 0:NR] (zero past N); otherwise (dy @ W, dy^T @ x): in place
        prange over tasks (p, row block, column block, k block):   # disjoint outputs: no races
            C = out if k block 0 else partial[k block - 1]
            for k0 in range(k_start, k_end, KC):              # the task's share of the reduction
                if sums and first column block: sums[k block, p, i0:i1] += sum over the slice of A[p][i, k]
                for jc in range(j0, j1, NC):                  # B block kc x NC (<= 1 MiB) stays in L2
                    for i in range(i0, i1, MR):               # A micro-panel: in place or copied (L1)
                        for j in range(jc, jc + NC, NR):      # B micro-panels streamed from L2
                            C[p, i:i+MR, j:j+NR] (=, first slice | +=) ukernel(A panel, B panel)
                        if last k-slice of k block 0: C[p, i:i+MR, jc:jc+NC] += bias
        if k blocks > 1: out += sum of the partials (on this thread)
    About one task per thread (the parallel loop splits its range statically). A long reduction into a
    small output (K >= OUTER_SPLIT_K slices and >= 2 max(M, N): a weight gradient dy^T x, K = tokens) is
    split along k into at most OUTER_MAX_SPLIT_K blocks (each task then reads its share of both operands,
    and no A micro-panel is copied twice); the rest of the thread count splits rows first (each task then
    streams only its own rows of A), and columns when there are too few rows. A row-major A is never
    packed: the micro-kernel
    broadcasts A[r, k] from a[a_off + r*a_rs + k] directly, so the transposing copy that packing it would
    need (M*K scalar stores per product) never happens; A contiguous along rows (dy^T) is copied one
    micro-panel (MR values per k, fixed-width vector moves) at a time, since read in place its k stride
    puts every k on a new cache line and a power-of-two stride maps them to a few L1 sets. Tiles past N
    or past M go through a scratch tile.
    """
    B = max(Ba, Bb)
    out = np.empty((B, M, N), dtype=af.dtype)
    has_bias = bias.size > 0
    has_sums = sums.size > 0
    if B == 0 or M == 0 or N == 0:
        return out
    if K == 0:                                # plain loops: an array expression here would be a parfor
        o2 = out.reshape(B * M, N)
        z = out.dtype.type(0)
        for i in range(B * M):
            for j in range(N):
                o2[i, j] = bias[j] if has_bias else z
        return out
    MR = MICRO_ROWS_W64 if wide else MICRO_ROWS_W32
    MT = TAIL_ROWS_W64 if wide else TAIL_ROWS_W32   # rows of the tail kernel for the last rows
    kind = 0 if wide else 1
    NR = 2 * (64 if wide else 32) // af.itemsize
    NC = (OUTER_NC_BYTES // (OUTER_KC * af.itemsize)) // NR * NR
    Np = (N + NR - 1) // NR * NR
    npan = Np // NR

    # ---- pack all of B once, shared read-only by every task
    # B contiguous along j (B[j, k] = b[k, j]: dy @ W, dy^T @ x) is read in place, its full micro-panels
    # at least; B contiguous along k (x @ W^T), or with rows a page apart, is packed into Bp here, once.
    pack_b = b_rs != 1 or b_ks * af.itemsize >= 4096   # in place only while rows share 4 KiB pages (TLB)
    Nb = Np if pack_b else NR                 # columns per k-slice in Bp
    Bp = np.empty(Bb * Nb * K, dtype=af.dtype)
    if pack_b:                                # on this thread: one parallel region per product, not two
        for t in range(Bb * npan):            # (each waits for its slowest thread: on a busy machine, a
            pb = t // npan                    # scheduler slice), and one prange fewer to compile cold
            q = t % npan
            _pack_b_panel(bf, pb * sb, b_rs, b_ks, N, K, OUTER_KC, NR, q, Bp, pb * Np * K, Np, q, wide)
    elif N % NR:                              # in place: only a last partial panel is packed
        for pb in range(Bb):
            _pack_b_panel(bf, pb * sb, b_rs, b_ks, N, K, OUTER_KC, NR, npan - 1, Bp, pb * NR * K, NR, 0, wide)

    # ---- task grid: (batch, row block, column block, k block), about one task per thread (the parallel
    # loop splits its range statically). A long reduction over a small output (a weight gradient dy^T x:
    # K = tokens >= 2 max(M, N)) is split along k into a few blocks: each task then reads only its share
    # of both operands (a row split reads all of x in every task), into its own partial C, and the
    # partials are added afterwards. What the k blocks leave of the thread count splits rows first (each
    # task then streams only its own A), and columns when there are too few rows.
    nrp = (M + MR - 1) // MR                  # row panels
    need = max(1, (nth + B - 1) // B)
    nrb = 1
    ncb = 1
    nkb = 1
    if need > 1 and K >= OUTER_SPLIT_K * OUTER_KC and K >= 2 * max(M, N):
        nkb = min(need, OUTER_MAX_SPLIT_K)
    rest = (need + nkb - 1) // nkb            # tasks per k block
    if rest > 1:
        if nrp >= rest * OUTER_MIN_PANELS:
            nrb = rest
        else:
            nrb = max(1, nrp // OUTER_MIN_PANELS)
            ncb = min(npan, (rest + nrb - 1) // nrb)
    rpt = (nrp + nrb - 1) // nrb              # row panels per task
    nrb = (nrp + rpt - 1) // rpt
    cpt = (npan + ncb - 1) // ncb             # column panels per task
    ncb = (npan + cpt - 1) // cpt
    kpt = ((K + nkb - 1) // nkb + OUTER_KC - 1) // OUTER_KC * OUTER_KC   # k per task: whole k-slices
    nkb = (K + kpt - 1) // kpt
    size = B * M * N
    partial = np.empty((nkb - 1) * size, dtype=af.dtype)   # k blocks 1.. write here, block 0 into out

    for tk in prange(B * nrb * ncb * nkb):
        kb = tk % nkb
        t = tk // nkb
        of = out.reshape(size) if kb == 0 else partial[(kb - 1) * size:kb * size]
        kstart = kb * kpt
        kend = min(K, kstart + kpt)
        p = t // (nrb * ncb)
        i0 = (t // ncb) % nrb * rpt * MR
        i1 = min(M, i0 + rpt * MR)
        j0 = t % ncb * cpt * NR
        j1 = min(Np, j0 + cpt * NR)
        pa = p * sa if Ba > 1 else 0
        pbb = (p if Bb > 1 else 0) * Nb * K
        pbf = p * sb if Bb > 1 else 0
        ct = np.empty(MR * NR, dtype=af.dtype)                 # scratch tile for edges
        ap = np.empty(MR * min(OUTER_KC, K), dtype=af.dtype)   # a copied A micro-panel
        for k0 in range(kstart, kend, OUTER_KC):
            kc = min(OUTER_KC, kend - k0)
            more = k0 > kstart
            if has_sums and j0 == 0:
                _a_sums(af, pa + i0 + k0 * a_ks, a_ks, i1 - i0, kc, sums[kb], p * M + i0)
            for jc in range(j0, j1, NC):
                jend = min(jc + NC, j1)
                for r in range(i0, i1, MR):
                    mr = min(MR, i1 - r)
                    aoff = pa + r * a_rs + k0 * a_ks
                    cbase = (p * M + r) * N
                    if mr == MR:
                        _panel(kind, MR, mr, kc, more, af, aoff, a_rs, a_ks, ap, Bp, pbb + k0 * Nb, Nb,
                               bf, pbf + k0 * b_ks, b_ks, pack_b, NR, N, of, cbase, jc, jend, ct)
                    else:                             # the last rows: panels of MT rows
                        for rt in range(0, mr, MT):
                            _panel(kind + 2, MT, min(MT, mr - rt), kc, more, af, aoff + rt * a_rs, a_rs, a_ks,
                                   ap, Bp, pbb + k0 * Nb, Nb, bf, pbf + k0 * b_ks, b_ks, pack_b, NR, N, of,
                                   cbase + rt * N, jc, jend, ct)
                    if has_bias and kb == 0 and k0 + kc == kend:
                        _add_bias(of, cbase, N, mr, bias, jc, min(jend, N))
    if nkb > 1:       # out += the other k blocks' partials, on this thread: (nkb - 1) M N adds (at most 3
        of = out.reshape(size)     # weights' worth) cost about what a second parallel region's start would,
        for kb in range(nkb - 1):  # and a busy machine can stall every region for a scheduler slice
            src = partial[kb * size:(kb + 1) * size]
            for i in range(size):
                of[i] += src[i]
    return out


# Products with at most ROWS_MAX_NT / ROWS_MAX_NN rows (M) take `_gemm_rows` (the backend chooses; generation's
# one-row Linears): policy.py.


@njit(cache=True, fastmath=_FM)
def _gemm_rows(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K):
    """Few-row products (M <= ROWS_MAX_NT / ROWS_MAX_NN: one new token's x @ W^T while generating), strides as for `_gemm`,
    on the calling thread: no parallel region to start, no packing, no tiles.

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


def _estrides(x):
    """Strides of x in elements, as Python ints (typed int64, so one compiled `_gemm` serves all three)."""
    return tuple(s // x.itemsize for s in x.strides)


# Which kernel large products use: 'avx512' / 'avx2' (`_gemm_outer`, vector micro-kernels) or 'portable'
# (`_gemm`, the dot-product kernel, no explicit vectors), chosen once from the features of the CPU that
# Numba compiles for (microkernel.host_kernel; TINYATTN_MATMUL_KERNEL overrides). Assign another name
# here to compare them: every call reads it.
KERNEL = host_kernel()


_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}
_NO_SUMS = {dt: np.empty((0, 0), dt) for dt in _NO_BIAS}


def _product(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, kernel=None, bias=None, a_sums=False):
    """`_gemm_rows` when kernel == 'rows' (the backend asks for it for few rows); else `_gemm_small`
    for tiny products, else `_gemm_outer` or `_gemm` by `kernel` (default KERNEL): each compiles only when
    first used. `bias` (N,) or None: added to every output row (inside `_gemm_outer`, after the others).
    a_sums (only with a_rs == 1): return (out, s) with s[p, i] = sum_k A[p][i, k], (max(Ba, Bb), M); None
    from the kernels that do not compute it (the caller sums)."""
    out = None
    if kernel == "rows":
        out = _gemm_rows(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    elif 0 < M * N * K <= SMALL_WORK:
        out = _gemm_small(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    elif (KERNEL if kernel is None else kernel) == "portable":
        out = _gemm(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    if out is None:
        b = _NO_BIAS[af.dtype] if bias is None else bias
        nth = numba.get_num_threads()
        fused = a_sums and M * N * K > 0      # (an empty product returns before its loops)
        sums = np.zeros((nth, max(Ba, Bb) * M), af.dtype) if fused else _NO_SUMS[af.dtype]
        out = _gemm_outer(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K,
                          (KERNEL if kernel is None else kernel) == "avx512", nth, b, sums)
        if not a_sums:
            return out
        return out, sums.sum(axis=0).reshape(-1, M) if fused else None
    if bias is not None:
        out += bias
    return (out, None) if a_sums else out


# The three public functions are plain Python: they only compute strides and call the compiled
# `_gemm`, so compiling them as well would add seconds to a cold start and save nothing per call.


def matmul_nn(a, b, kernel=None):
    """out[p] = a[p] @ b[p]: a (Ba, M, K), b (Bb, K, N) -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, i, k] * b[p, k, j]. Loop nest: `_gemm` with A[i, k] = a[p, i, k]
    (row stride K, k stride 1) and B[j, k] = b[p, k, j] (row stride 1, k stride N): b is transposed
    while it is packed. a and b are C-contiguous.
    """
    Ba, M, K = a.shape
    Bb, _, N = b.shape
    sa, a_rs, a_ks = _estrides(a)
    sb, b_ks, b_rs = _estrides(b)
    return _product(a.ravel(), Ba, sa, a_rs, a_ks, b.ravel(), Bb, sb, b_rs, b_ks, M, N, K, kernel)


def matmul_nt(a, b, kernel=None, bias=None):
    """out[p] = a[p] @ b[p].T (+ bias): a (Ba, M, K), b (Bb, N, K), bias None or C-contiguous (N,) of
    their dtype -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, i, k] * b[p, j, k] (+ bias[j]: a Linear's forward, x W^T + b).
    Loop nest: `_gemm` with both operands contiguous along k (row stride K, k stride 1); packing is a
    plain copy.
    """
    Ba, M, K = a.shape
    Bb, N, _ = b.shape
    sa, a_rs, a_ks = _estrides(a)
    sb, b_rs, b_ks = _estrides(b)
    return _product(a.ravel(), Ba, sa, a_rs, a_ks, b.ravel(), Bb, sb, b_rs, b_ks, M, N, K, kernel, bias)


def matmul_tn(a, b, kernel=None, a_sums=False):
    """out[p] = a[p].T @ b[p]: a (Ba, K, M), b (Bb, K, N) -> (max(Ba, Bb), M, N); with a_sums, also
    s[p] = a[p].sum(axis=0) (max(Ba, Bb), M): a Linear's dW = dy^T x and db = sum of dy in one pass over dy.

    Math: out[p, i, j] = sum_k a[p, k, i] * b[p, k, j]. Loop nest: `_gemm` with A[i, k] = a[p, k, i]
    (row stride 1, k stride M) and B[j, k] = b[p, k, j] (row stride 1, k stride N): both operands are
    transposed while they are packed.
    """
    Ba, K, M = a.shape
    Bb, _, N = b.shape
    sa, a_ks, a_rs = _estrides(a)
    sb, b_ks, b_rs = _estrides(b)
    out = _product(a.ravel(), Ba, sa, a_rs, a_ks, b.ravel(), Bb, sb, b_rs, b_ks, M, N, K, kernel, None, a_sums)
    if not a_sums:
        return out
    out, s = out
    if s is None:                             # a kernel without the fused sums
        s = np.broadcast_to(a.sum(axis=1), (max(Ba, Bb), M)).copy()
    return out, s
