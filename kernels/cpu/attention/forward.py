"""The attention forward kernels (math and conventions: the package docstring).

``_forward``: the portable tiled loop nest (online softmax over key tiles); ``_forward_mk``: the same loop nest
with its two tile products register-blocked (tiles._mm); ``_forward_rows``: a few query rows (a key/value-cache
step), one work item per row.
``_query_tile`` / ``_query_tile_mk``: one work item (batch-head, query tile) of the first two, which are a
parallel loop calling them (_forward_mk says why).
"""
import numpy as np
from numba import njit, prange

from ..vexp import vexp as _exp
from .exp import _exp_fwd
from .mask import _bias_and_mask_t, _key_range
from .tiles import BLOCK_K, BLOCK_Q, _mm, _nr


@njit(parallel=True, cache=True)
def _forward(q, k, v, dims, mask, scale, o, lse):
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
    for item in prange(BH * nqb):
        _query_tile(np.int64(item), q, k, v, dims, mask, scale, o, lse)  # int64: see _forward_mk


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
        _bias_and_mask_t(sT, bias, has_bias, bh, i0, nq, j0, nk, causal, window, offset)
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
def _forward_mk(q, k, v, dims, mask, scale, o, lse, tag):
    """_forward with its two tile products register-blocked (_mm):
        sT (nk, wq)  = K[p, kb] (nk x E, in place)  @ qT (E x wq)
        oT (Ev, wq) += V[p, kb]^T (Ev x nk, in place) @ sT (nk x wq)
    Rows j >= nk of sT are never computed nor read; of the BQ query columns only the first wq = nq rounded
    up to the micro-tile width NR are (a short sequence, L = 32 < BQ = 64, does half the work).

    The parallel loop only calls _query_tile_mk, a plain function: Numba's parfor passes then see one call
    instead of the loop nest, and compile its helpers once instead of twice (cold compile 6.0-6.2 -> 4.9-5.3 s
    CPU, the same run time). Its index goes in as int64: the loop's own index is uint64 inside the parallel
    body, which would compile the item function a second time for that type."""
    BH, L = dims[0], dims[1]
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    for item in prange(BH * nqb):
        _query_tile_mk(np.int64(item), q, k, v, dims, mask, scale, o, lse, tag)  # (the gufunc's index is uint64)


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
    for i in range(nq):
        for e in range(E):
            qT[e, i] = qf[qo + (i0 + i) * q_rs + e] * scale
    jlo, jhi = _key_range(i0 + offset, i0 + nq + offset, S, causal, window)
    for kb in range(jlo // BLOCK_K, (jhi + BLOCK_K - 1) // BLOCK_K):
        j0 = kb * BLOCK_K
        nk = min(BLOCK_K, S - j0)
        _mm(tag, nk, wq, E, kf, ko + j0 * k_rs, k_rs, 1, qT, 0, BLOCK_Q, sT, 0, BLOCK_Q, False)
        _bias_and_mask_t(sT, bias, has_bias, bh, i0, nq, j0, nk, causal, window, offset)
        for i in range(wq):
            mnew[i] = m[i]
        for j in range(nk):
            for i in range(wq):
                mnew[i] = max(mnew[i], sT[j, i])
        for i in range(wq):
            c[i] = mnew[i] if mnew[i] != -np.inf else 0.0
            alpha[i] = _exp(m[i] - c[i])
            l[i] *= alpha[i]
            m[i] = mnew[i]
        _exp_fwd(sT, nk, c, l, wq)
        for e in range(Ev):
            for i in range(wq):
                oT[e, i] *= alpha[i]
        _mm(tag, Ev, wq, nk, vf, vo + j0 * v_rs, 1, v_rs, sT, 0, BLOCK_Q, oT, 0, BLOCK_Q, True)
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
