"""The attention forward kernels (math and conventions: the package docstring).

``_forward``: the portable tiled loop nest (online softmax over key tiles); ``_forward_mk``: the same loop nest
with its two tile products register-blocked (tiles._mm); ``_forward_rows``: a few query rows (a key/value-cache
step), one work item per row.
``_query_tile`` / ``_query_tile_mk``: one work item (batch-head, query tile) of the first two, which are a
parallel loop calling them (_forward_mk says why).
"""
import numpy as np
from numba import njit, prange

from ..indirect import call_compiled, check_compiled
from ..prefetch import prefetch_write
from ..vexp import vexp as _exp
from .exp import _exp_fwd, _max_rows
from .mask import _bias_and_mask_t, _block_rows, _key_range
from .tiles import BLOCK_K, BLOCK_Q, _mm, _nr
from .transpose import _transpose


@njit(parallel=True, cache=True)
def _forward(q, k, v, dims, mask, scale, o, lse, item):
    """Loop nest (online softmax).  Work in the transposed layout -- keys down, the BLOCK_Q queries of the
    tile along the contiguous axis -- so that every inner loop has the compile-time trip count BLOCK_Q
    (LLVM unrolls it and keeps a row of the accumulator in registers) and the softmax statistics are
    elementwise over that axis.  Padding rows (i >= nq of the last tile) compute harmless finite values.

    for (p, qb) in prange(BH x ceil(L / BLOCK_Q)):              # independent query tiles
        qT = scale * Q[p, qb]^T                                 # (E, BQ) local, zero padded
        m = -inf, l = 0, oT = 0                                 # (BQ,), (BQ,), (Ev, BQ) locals
        for kb in key tiles not fully masked by causal/window (rows at positions i + offset):
            sT[j, :] = sum_e K[p, j, e] qT[e, :]  (+ bias, masked -> -inf)      # (BK, BQ)
            m' = max(m, max_j sT[j, :]);  c = m' or 0 where m' = -inf;  alpha = exp(m - c)
            sT[j, :] = exp(sT[j, :] - c);  l = alpha l + sum_j sT[j, :]
            oT[e, :] = alpha oT[e, :] + sum_j V[p, j, e] sT[j, :]
            m = m'
        O[p, qb] = (oT / l)^T;  lse = m + log(l)                 # l == 0 -> O = 0, lse = -inf
    """
    BH, L = dims[0], dims[1]
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    check_compiled(item, (np.int64(0), q, k, v, dims, mask, scale, o, lse))
    for i in prange(BH * nqb):
        call_compiled(item, (np.int64(i), q, k, v, dims, mask, scale, o, lse))  # item: _query_tile's address


@njit(cache=True)
def _query_tile(item, q, k, v, dims, mask, scale, o, lse):
    """One work item (batch-head, query tile) of _forward (see _query_tile_mk)."""
    qf, q_off, q_rs = q
    kf, k_off, k_rs = k
    vf, v_off, v_rs = v
    bias, has_bias, causal, window, offset = mask
    of, o_off, o_rs = o
    BH, L, S, E, Ev = dims
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    bh = item // nqb
    qo, ko, vo = q_off[bh], k_off[bh], v_off[bh]
    i0 = (item % nqb) * BLOCK_Q
    nq = min(BLOCK_Q, L - i0)
    qT = np.zeros((E, BLOCK_Q), of.dtype)
    sT = np.empty((BLOCK_K, BLOCK_Q), of.dtype)
    oT = np.zeros((Ev, BLOCK_Q), of.dtype)
    m = np.full(BLOCK_Q, -np.inf, of.dtype)
    mnew = np.empty(BLOCK_Q, of.dtype)
    c = np.empty(BLOCK_Q, of.dtype)
    alpha = np.empty(BLOCK_Q, of.dtype)
    l = np.zeros(BLOCK_Q, of.dtype)
    for i in range(nq):
        for e in range(E):
            qT[e, i] = qf[qo + (i0 + i) * q_rs + e] * scale
    jlo, jhi = _key_range(i0 + offset, i0 + nq + offset, S, causal, window)
    for kb in range(jlo // BLOCK_K, (jhi + BLOCK_K - 1) // BLOCK_K):
        j0 = kb * BLOCK_K
        nk = min(BLOCK_K, S - j0)
        # scores
        for j in range(nk):
            for i in range(BLOCK_Q):
                sT[j, i] = 0.0
            for e in range(E):
                a = kf[ko + (j0 + j) * k_rs + e]
                for i in range(BLOCK_Q):
                    sT[j, i] += a * qT[e, i]
        _bias_and_mask_t(sT, bias, has_bias, bh, i0, 0, nq, j0, 0, nk, causal, window, offset)
        # online softmax statistics
        for i in range(BLOCK_Q):
            mnew[i] = m[i]
        for j in range(nk):
            for i in range(BLOCK_Q):
                mnew[i] = max(mnew[i], sT[j, i])
        for i in range(BLOCK_Q):
            c[i] = mnew[i] if mnew[i] != -np.inf else 0.0
            alpha[i] = _exp(m[i] - c[i])
            l[i] *= alpha[i]
            m[i] = mnew[i]
        for j in range(nk):
            for i in range(BLOCK_Q):
                pji = _exp(sT[j, i] - c[i])
                sT[j, i] = pji
                l[i] += pji
        # output accumulator
        for e in range(Ev):
            for i in range(BLOCK_Q):
                oT[e, i] *= alpha[i]
            for j in range(nk):
                a = vf[vo + (j0 + j) * v_rs + e]
                for i in range(BLOCK_Q):
                    oT[e, i] += a * sT[j, i]
    for i in range(nq):
        if l[i] > 0.0:
            inv = 1.0 / l[i]
            for e in range(Ev):
                of[o_off[bh] + (i0 + i) * o_rs + e] = oT[e, i] * inv
            lse[bh, i0 + i] = m[i] + np.log(l[i])
        else:
            for e in range(Ev):
                of[o_off[bh] + (i0 + i) * o_rs + e] = 0.0
            lse[bh, i0 + i] = -np.inf


@njit(parallel=True, cache=True)
def _forward_rows(q, k, v, dims, mask, scale, o, lse):
    """The forward for a few query rows (L <= ROWS_MAX_L: a key/value-cache step, one new token), where a
    BLOCK_Q-wide tile would be almost all padding.  Same math and results as _forward.

    for (p, i) in prange(BH x L):                               # independent rows
        [jlo, jhi) = keys the query at position i + offset may see (exact for one row under causal/window)
        s_j = scale q_i . k_j (+ bias)    for j in [jlo, jhi)    # (S,) local
        m = max_j s_j;  w_j = exp(s_j - m);  l = sum_j w_j        (m = -inf: out 0, lse -inf)
        O_i = sum_j w_j V_j / l;  lse_i = m + log l

    (The row's scalars -- dot products, m, l -- accumulate in float64 for either dtype.)
    """
    qf, q_off, q_rs = q
    kf, k_off, k_rs = k
    vf, v_off, v_rs = v
    bias, has_bias, causal, window, offset = mask
    of, o_off, o_rs = o
    BH, L, S, E, Ev = dims
    for item in prange(BH * L):
        bh = item // L
        i = item % L
        qo, ko, vo = q_off[bh], k_off[bh], v_off[bh]
        jlo, jhi = _key_range(i + offset, i + offset + 1, S, causal, window)
        s = np.empty(jhi - jlo, of.dtype)
        acc = np.zeros(Ev, of.dtype)
        m = -np.inf
        for j in range(jlo, jhi):
            a = 0.0
            for e in range(E):
                a += qf[qo + i * q_rs + e] * kf[ko + j * k_rs + e]
            a *= scale
            if has_bias:
                a += bias[0, bh, i, j]
            s[j - jlo] = a
            m = max(m, a)
        if m == -np.inf:
            for e in range(Ev):
                of[o_off[bh] + i * o_rs + e] = 0.0
            lse[bh, i] = -np.inf
            continue
        l = 0.0
        for j in range(jlo, jhi):
            w = _exp(s[j - jlo] - m)
            l += w
            for e in range(Ev):
                acc[e] += w * vf[vo + j * v_rs + e]
        for e in range(Ev):
            of[o_off[bh] + i * o_rs + e] = acc[e] / l
        lse[bh, i] = m + np.log(l)


@njit(parallel=True, cache=True)
def _forward_mk(q, k, v, dims, mask, scale, o, lse, tag, item):
    """_forward with its two tile products register-blocked (_mm):
        sT (nk, wq)  = K[p, kb] (nk x E, in place)  @ qT (E x wq)
        oT (Ev, wq) += V[p, kb]^T (Ev x nk, in place) @ sT (nk x wq)
    Rows j >= nk of sT are never computed nor read; of the BQ query columns only the first wq = nq rounded
    up to the micro-tile width NR are (a short sequence, L = 32 < BQ = 64, does half the work), one NR-wide
    column block at a time, each over only the key rows its queries may see (causal at L = S = 64: 3/4 of
    the tile); q comes in and the output goes out through the block transposes of transpose.py.

    The parallel loop only calls _query_tile_mk, a plain function: Numba's parfor passes then see one call
    instead of the loop nest, and compile its helpers once instead of twice (cold compile 6.0-6.2 -> 4.9-5.3 s
    CPU, the same run time). Its index goes in as int64: the loop's own index is uint64 inside the parallel
    body, which would compile the item function a second time for that type."""
    BH, L = dims[0], dims[1]
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    check_compiled(item, (np.int64(0), q, k, v, dims, mask, scale, o, lse, tag))
    for i in prange(BH * nqb):
        call_compiled(item, (np.int64(i), q, k, v, dims, mask, scale, o, lse, tag))  # item: _query_tile_mk's


@njit(cache=True)
def _query_tile_mk(item, q, k, v, dims, mask, scale, o, lse, tag):
    """One work item (batch-head, query tile) of _forward_mk."""
    qf, q_off, q_rs = q
    kf, k_off, k_rs = k
    vf, v_off, v_rs = v
    bias, has_bias, causal, window, offset = mask
    of, o_off, o_rs = o
    BH, L, S, E, Ev = dims
    NR = _nr(tag, of)
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    bh = item // nqb
    qo, ko, vo = q_off[bh], k_off[bh], v_off[bh]
    i0 = (item % nqb) * BLOCK_Q
    nq = min(BLOCK_Q, L - i0)
    wq = min(BLOCK_Q, (nq + NR - 1) // NR * NR)  # query columns computed (the rest stay unused)
    qT = np.zeros((E, BLOCK_Q), of.dtype)
    sT = np.empty((BLOCK_K, BLOCK_Q), of.dtype)
    oT = np.zeros((Ev, BLOCK_Q), of.dtype)
    m = np.full(BLOCK_Q, -np.inf, of.dtype)
    mnew = np.empty(BLOCK_Q, of.dtype)
    c = np.empty(BLOCK_Q, of.dtype)
    alpha = np.empty(BLOCK_Q, of.dtype)
    l = np.zeros(BLOCK_Q, of.dtype)
    rows = np.empty((2, BLOCK_Q // NR), np.int64)  # each column block's key rows [r0, r1) of the tile
    for i in range(nq):  # the output rows this item writes last: asked for now, they arrive while it computes
        o = o_off[bh] + (i0 + i) * o_rs
        for e in range(0, Ev, 64 // of.itemsize):  # (a 64-byte line at a time)
            prefetch_write(of, o + e)
        prefetch_write(of, o + Ev - 1)
    _transpose(qf, qo + i0 * q_rs, q_rs, qT.reshape(-1), 0, BLOCK_Q, nq, E, scale)  # qT = scale Q[p, qb]^T
    jlo, jhi = _key_range(i0 + offset, i0 + nq + offset, S, causal, window)
    for kb in range(jlo // BLOCK_K, (jhi + BLOCK_K - 1) // BLOCK_K):
        j0 = kb * BLOCK_K
        nk = min(BLOCK_K, S - j0)
        # Column block by column block (NR queries): only the key rows [r0, r1) of the tile that one of its
        # queries may see (causal/window) are computed, masked, exponentiated and multiplied into oT; the
        # other rows of sT are never read for that block. Causal at L = S = 64: 3/4 of the full tile.
        for i in range(wq):
            mnew[i] = m[i]
        for cb in range(0, wq, NR):
            r0, r1 = _block_rows(i0 + cb + offset, min(nq, cb + NR) + i0 + offset, j0, nk, S, causal, window)
            rows[0, cb // NR], rows[1, cb // NR] = r0, r1
            if r1 > r0:
                _mm(tag, r1 - r0, NR, E, kf, ko + (j0 + r0) * k_rs, k_rs, 1, qT, cb, BLOCK_Q, sT, r0 * BLOCK_Q + cb,
                    BLOCK_Q, False)
                _bias_and_mask_t(sT, bias, has_bias, bh, i0, cb, min(nq, cb + NR), j0, r0, r1, causal, window,
                                 offset)
                _max_rows(sT, r0, r1, mnew, cb, NR)
        for i in range(wq):
            c[i] = mnew[i] if mnew[i] != -np.inf else 0.0
            alpha[i] = _exp(m[i] - c[i])
            l[i] *= alpha[i]
            m[i] = mnew[i]
        for e in range(Ev):
            for i in range(wq):
                oT[e, i] *= alpha[i]
        for cb in range(0, wq, NR):
            r0, r1 = rows[0, cb // NR], rows[1, cb // NR]
            if r1 > r0:
                _exp_fwd(sT, r0, r1, c, l, cb, NR)
                _mm(tag, Ev, NR, r1 - r0, vf, vo + (j0 + r0) * v_rs, 1, v_rs, sT, r0 * BLOCK_Q + cb, BLOCK_Q, oT, cb,
                    BLOCK_Q, True)
    # O[p, qb] = (oT / l)^T, transposed in blocks; lse = m + log l; a row with l = 0 (fully masked): 0, -inf
    for i in range(wq):
        c[i] = 1.0 / l[i] if l[i] > 0.0 else 0.0
    for e in range(Ev):
        for i in range(wq):
            oT[e, i] *= c[i]
    _transpose(oT.reshape(-1), 0, BLOCK_Q, of, o_off[bh] + i0 * o_rs, o_rs, Ev, nq, of.dtype.type(1))
    for i in range(nq):
        if l[i] > 0.0:
            lse[bh, i0 + i] = m[i] + np.log(l[i])
        else:
            for e in range(Ev):
                of[o_off[bh] + (i0 + i) * o_rs + e] = 0.0
            lse[bh, i0 + i] = -np.inf
