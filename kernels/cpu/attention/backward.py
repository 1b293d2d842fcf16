"""The attention backward kernels (math and conventions: the package docstring).

``_backward``: the portable loop nest; ``_backward_mk``: the same loop nest with its five tile products
register-blocked (tiles._mm). Both share one set-up (their local tiles and D, which query rows see a key
tile, loading and storing a key tile, zeroing the dq rows no key tile reached): the helpers below, inlined.
``_sum_groups`` adds the dq slabs of the key-tile groups.
``_key_tiles`` / ``_key_tiles_mk``: one work item (batch-head, group of key tiles) of the two loop nests, which are
a parallel loop calling them (forward._forward_mk says why).
"""
import numpy as np
from numba import njit, prange

from ..indirect import call_compiled, check_compiled
from ..vexp import vexp as _exp
from .exp import _exp_bwd
from .mask import _bias_and_mask, _query_range
from .tiles import BLOCK_K, BLOCK_Q, _mm, _nr, _zero2
from .transpose import _transpose


@njit(cache=True, fastmath={"reassoc", "contract"})
def _row_dots(af, a_off, a_rs, bf, b_off, b_rs, n, d):
    """d[i] = sum_{e < n} A[i, e] B[i, e] for every row i < d.size (A[i, e] = af[a_off + i a_rs + e], B
    likewise): the backward's D_i = rowsum(dO_i * O_i), or sum_j P_ij dP_ij over a lone key tile.  fastmath
    reassociates the sum (vector partial sums, as numpy's einsum does; ~3x faster than the in-order chain), within
    the reference tests' tolerances."""
    z = d.dtype.type(0)
    for i in range(d.size):
        acc = z
        ao = a_off + i * a_rs
        bo = b_off + i * b_rs
        for e in range(n):
            acc += af[ao + e] * bf[bo + e]
        d[i] = acc


@njit(cache=True)
def _zero_rows(f, off, rs, n, width):
    """f[off + i rs + e] = 0 for i < n, e < width: n rows of an output seen through its layout (loops: a slice
    assignment inside a prange body becomes a nested parfor)."""
    z = f.dtype.type(0)
    for i in range(n):
        o = off + i * rs
        for e in range(width):
            f[o + e] = z


# ----------------------------------------------------------------------------------------------------------
# the set-up both backward loop nests share (inlined: the same loops as written out in each)
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _item_locals(dims, nqb, dof, doo, do_rs, of, oo, o_rs, dots=True):
    """One work item's local tiles (kT, vT, s, dp, dsT, dkT, dvT, dqT), D_i = rowsum(dO_i * O_i) for every
    row of its batch-head (delta; dots=False: left for the caller), and `seen` (the query tiles whose rows of the
    dq slab it has written)."""
    BH, L, S, E, Ev = dims
    kT = np.empty((E, BLOCK_K), of.dtype)
    vT = np.empty((Ev, BLOCK_K), of.dtype)
    s = np.empty((BLOCK_Q, BLOCK_K), of.dtype)
    dp = np.empty((BLOCK_Q, BLOCK_K), of.dtype)
    dsT = np.empty((BLOCK_K, BLOCK_Q), of.dtype)
    dkT = np.empty((E, BLOCK_K), of.dtype)
    dvT = np.empty((Ev, BLOCK_K), of.dtype)
    dqT = np.empty((E, BLOCK_Q), of.dtype)
    delta = np.empty(L, of.dtype)
    if dots:
        _row_dots(dof, doo, do_rs, of, oo, o_rs, Ev, delta)
    seen = np.zeros(nqb, np.bool_)
    return kT, vT, s, dp, dsT, dkT, dvT, dqT, delta, seen


@njit(cache=True, inline="always")
def _key_tile_queries(dk, dv, bh, j0, nk, dims, causal, window, offset):
    """Query rows [ilo, ihi) that may see keys [j0, j0 + nk) (mask._query_range); when none does
    (ihi <= ilo), the keys' gradients are 0: dk, dv rows zeroed here."""
    BH, L, S, E, Ev = dims
    ilo, ihi = _query_range(j0, j0 + nk, L, causal, window, offset)
    if ihi <= ilo:
        dkf, dk_off, dk_rs = dk
        dvf, dv_off, dv_rs = dv
        _zero_rows(dkf, dk_off[bh] + j0 * dk_rs, dk_rs, nk, E)
        _zero_rows(dvf, dv_off[bh] + j0 * dv_rs, dv_rs, nk, Ev)
    return ilo, ihi


@njit(cache=True, inline="always")
def _load_key_tile(kT, vT, dkT, dvT, kf, ko, k_rs, vf, vo, v_rs, j0, nk, kscale):
    """kT = kscale K[p, kb]^T, vT = V[p, kb]^T (transpose._transpose), zero padded to BLOCK_K keys;
    dkT = dvT = 0. Loops (_zero2), not kT[:, :] = 0 (an array expression: a parfor inside the prange body)."""
    if nk < BLOCK_K:
        _zero2(kT)
        _zero2(vT)
    _transpose(kf, ko + j0 * k_rs, k_rs, kT.reshape(-1), 0, BLOCK_K, nk, kT.shape[0], kscale)
    _transpose(vf, vo + j0 * v_rs, v_rs, vT.reshape(-1), 0, BLOCK_K, nk, vT.shape[0], vT.dtype.type(1))
    _zero2(dkT)
    _zero2(dvT)


@njit(cache=True, inline="always")
def _store_key_tile(dk, dv, dkT, dvT, bh, j0, nk):
    """dK[p, kb] = dkT^T, dV[p, kb] = dvT^T (the first nk keys), through dk's and dv's layouts."""
    dkf, dk_off, dk_rs = dk
    dvf, dv_off, dv_rs = dv
    one = dkf.dtype.type(1)
    _transpose(dkT.reshape(-1), 0, BLOCK_K, dkf, dk_off[bh] + j0 * dk_rs, dk_rs, dkT.shape[0], nk, one)
    _transpose(dvT.reshape(-1), 0, BLOCK_K, dvf, dv_off[bh] + j0 * dv_rs, dv_rs, dvT.shape[0], nk, one)


@njit(cache=True, inline="always")
def _zero_unseen(dq, slab, seen, L, E):
    """dq slab rows of the query tiles no key tile of this item reached: 0."""
    dqf, dq_off, dq_rs = dq
    for qb in range(seen.size):
        if not seen[qb]:
            _zero_rows(dqf, dq_off[slab] + qb * BLOCK_Q * dq_rs, dq_rs, min(BLOCK_Q, L - qb * BLOCK_Q), E)


@njit(parallel=True, cache=True)
def _backward(q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv, item):
    """Loop nest (G = dq_off.size / BH groups of key tiles per batch-head, so BH * G work items).  Tiles
    are (query i, key j) with the keys along the contiguous axis, so inner loops have the compile-time trip
    count BLOCK_K; K and V of the owned key tile are transposed (zero padded) once.

    for (p, g) in prange(BH x G):
        D_i = sum_e dO[p, i, e] O[p, i, e]   for every row i     # (L,) local (_row_dots)
        for kb in range(g, n_key_tiles, G):                     # key tiles owned by this item
            if no query sees key tile kb (causal/window): dK[p, kb] = dV[p, kb] = 0; next kb
            kT, vT = K[p, kb]^T, V[p, kb]^T                     # (E, BK), (Ev, BK) locals
            dkT = dvT = 0                                       # (E, BK), (Ev, BK) locals
            for qb in query tiles not fully masked by causal/window:
                s[i, :] = scale * sum_e Q[p, i, e] kT[e, :]  (+ bias, masked -> -inf)   # (BQ, BK)
                P[i, :] = exp(s[i, :] - lse_i)       (0 when lse_i = -inf: fully masked row)
                dvT[e, :] += sum_i dO[p, i, e] P[i, :]
                dP[i, :] = sum_e dO[p, i, e] vT[e, :]
                dS[i, :] = scale * P[i, :] (dP[i, :] - D_i)
                dkT[e, :] += sum_i Q[p, i, e] dS[i, :]
                dqT[e, :] = sum_j kT[e, j] dS^T[j, :]                   # (E, BQ) local
                dQ[g][p, qb] += dqT^T          (= on the item's first visit of query tile qb)
            dK[p, kb] = dkT^T;  dV[p, kb] = dvT^T
        dQ[g][p, qb] = 0 for the query tiles this item never visited

    Each key tile belongs to exactly one item and each item owns its own dq slab dQ[g], so nothing races;
    the caller sums the slabs over g (G = 1 when there are enough batch-heads to keep every thread busy: the
    slab is then dq itself).  D is computed here, and every element of the slabs, dk and dv written here (the
    caller allocates them with np.empty), inside the parallel loop: numpy's einsum and three np.zeros on the
    main thread, while the other threads wait, measured slower (~0.2 ms of a 2.8 ms backward at B32 H4 L64
    E32, one thread).  Q, K, V, dO are read, and the slabs, dK and dV written, through flat views, offset
    tables and row strides (module docstring): dq = (dqf, dq_off, dq_rs) with dQ[g][p, i, e] =
    dqf[dq_off[g * BH + p] + i * dq_rs + e], dk and dv likewise per batch-head.
    """
    BH = dims[0]
    G = dq[1].size // BH
    check_compiled(item, (np.int64(0), q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv))
    for i in prange(BH * G):
        call_compiled(item, (np.int64(i), q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv))  # _key_tiles


@njit(cache=True)
def _key_tiles(item, q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv):
    """One work item (batch-head, group of key tiles) of _backward (see _key_tiles_mk)."""
    qf, q_off, q_rs = q
    kf, k_off, k_rs = k
    vf, v_off, v_rs = v
    dof, do_off, do_rs = do
    bias, has_bias, causal, window, offset = mask
    of, o_off, o_rs = o
    BH, L, S, E, Ev = dims
    dqf, dq_off, dq_rs = dq
    G = dq_off.size // BH
    nkb = (S + BLOCK_K - 1) // BLOCK_K
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    bh = item // G
    g = item % G
    qo, ko, vo, doo = q_off[bh], k_off[bh], v_off[bh], do_off[bh]
    kT, vT, s, dp, dsT, dkT, dvT, dqT, delta, seen = _item_locals(dims, nqb, dof, doo, do_rs, of, o_off[bh], o_rs)
    for kb in range(g, nkb, G):
        j0 = kb * BLOCK_K
        nk = min(BLOCK_K, S - j0)
        ilo, ihi = _key_tile_queries(dk, dv, bh, j0, nk, dims, causal, window, offset)
        if ihi <= ilo:  # no query sees these keys (their gradients were zeroed)
            continue
        _load_key_tile(kT, vT, dkT, dvT, kf, ko, k_rs, vf, vo, v_rs, j0, nk, of.dtype.type(1))
        for qb in range(ilo // BLOCK_Q, (ihi + BLOCK_Q - 1) // BLOCK_Q):
            i0 = qb * BLOCK_Q
            nq = min(BLOCK_Q, L - i0)
            # scores -> P (in s)
            for i in range(nq):
                for j in range(BLOCK_K):
                    s[i, j] = 0.0
                for e in range(E):
                    a = qf[qo + (i0 + i) * q_rs + e] * scale
                    for j in range(BLOCK_K):
                        s[i, j] += a * kT[e, j]
            _bias_and_mask(s, bias, has_bias, bh, i0, nq, j0, nk, causal, window, offset)
            for i in range(nq):
                li = lse[bh, i0 + i]
                if li == -np.inf:
                    for j in range(BLOCK_K):
                        s[i, j] = 0.0
                else:
                    for j in range(BLOCK_K):
                        s[i, j] = _exp(s[i, j] - li)
                    for j in range(nk, BLOCK_K):  # zero padding keys
                        s[i, j] = 0.0
            # dV
            for e in range(Ev):
                for i in range(nq):
                    a = dof[doo + (i0 + i) * do_rs + e]
                    for j in range(BLOCK_K):
                        dvT[e, j] += a * s[i, j]
            # dP -> dS (in dp, scale folded in)
            for i in range(nq):
                for j in range(BLOCK_K):
                    dp[i, j] = 0.0
                for e in range(Ev):
                    a = dof[doo + (i0 + i) * do_rs + e]
                    for j in range(BLOCK_K):
                        dp[i, j] += a * vT[e, j]
                di = delta[i0 + i]
                for j in range(BLOCK_K):
                    dp[i, j] = scale * s[i, j] * (dp[i, j] - di)
            # dK
            for e in range(E):
                for i in range(nq):
                    a = qf[qo + (i0 + i) * q_rs + e]
                    for j in range(BLOCK_K):
                        dkT[e, j] += a * dp[i, j]
            # dQ (through the transposed tile so the inner loop runs over BLOCK_Q queries)
            for j in range(nk):
                for i in range(nq):
                    dsT[j, i] = dp[i, j]
                for i in range(nq, BLOCK_Q):
                    dsT[j, i] = 0.0
            for e in range(E):
                for i in range(BLOCK_Q):
                    dqT[e, i] = 0.0
                for j in range(nk):
                    a = kT[e, j]
                    for i in range(BLOCK_Q):
                        dqT[e, i] += a * dsT[j, i]
            add = seen[qb]  # the first key tile of this query tile writes its dq rows, the others add
            qrow = dq_off[g * BH + bh] + i0 * dq_rs
            for i in range(nq):
                for e in range(E):
                    x = dqT[e, i]
                    dqf[qrow + i * dq_rs + e] = x + dqf[qrow + i * dq_rs + e] if add else x
            seen[qb] = True
        _store_key_tile(dk, dv, dkT, dvT, bh, j0, nk)
    _zero_unseen(dq, g * BH + bh, seen, L, E)  # query rows no key tile of this item reached: dq 0


@njit(parallel=True, cache=True)
def _sum_groups(dqp, dq):
    """dq = sum_g dqp[g]  (dqp (G, BH, L, E)), into dq's layout (dqf, dq_off, dq_rs)."""
    G, BH, L, E = dqp.shape
    dqf, dq_off, dq_rs = dq
    for r in prange(BH * L):
        p = r // L
        i = r % L
        o = dq_off[p] + i * dq_rs
        for e in range(E):
            dqf[o + e] = dqp[0, p, i, e]
        for g in range(1, G):
            for e in range(E):
                dqf[o + e] += dqp[g, p, i, e]


@njit(parallel=True, cache=True)
def _backward_mk(q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv, tag, item):
    """_backward with its five tile products register-blocked (_mm); kT, vT zero padded to BLOCK_K keys:
        s (nq, BK)    = Q[p, qb] (nq x E, in place) @ kT (E x BK)        -> P (kT holds scale K^T)
        dvT (Ev, BK) += dO[p, qb]^T (Ev x nq, in place) @ P (nq x BK)
        dP (nq, BK)   = dO[p, qb] (nq x Ev, in place) @ vT (Ev x BK)     -> dS (in dp)
        dkT (E, BK)  += Q[p, qb]^T (E x nq, in place) @ dS (nq x BK)
        dQ[p, qb]    += dS (nq x nk) @ K[p, kb] (nk x E, in place)  into the dq slab, when E is a multiple
                        of NR; else dqT (E, BQ) = K[p, kb]^T @ dS^T, added to the slab transposed
    Rows i >= nq of s and dp are never computed nor read; of the BK key columns only the first wk = nk
    rounded up to the micro-tile width NR are (and of dqT's BQ columns the first nq rounded up). With one key
    tile (S <= BLOCK_K) D_i = sum_j P_ij dP_ij, from the tile, and O is never read: in a training step O is out of
    cache by the backward (the gpt model's attention backward 1448 -> 1374 us in the step, T 64).

    The parallel loop only calls _key_tiles_mk, a plain function (forward._forward_mk says why; cold
    compile 9.1-9.7 -> 7.6-8.0 s CPU, the same run time)."""
    BH = dims[0]
    check_compiled(item, (np.int64(0), q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv, tag))
    for i in prange(BH * (dq[1].size // BH)):
        call_compiled(item, (np.int64(i), q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv, tag))  # _key_tiles_mk


@njit(cache=True)
def _key_tiles_mk(item, q, k, v, do, dims, mask, scale, o, lse, dq, dk, dv, tag):
    """One work item (batch-head, group of key tiles) of _backward_mk."""
    qf, q_off, q_rs = q
    kf, k_off, k_rs = k
    vf, v_off, v_rs = v
    dof, do_off, do_rs = do
    bias, has_bias, causal, window, offset = mask
    of, o_off, o_rs = o
    BH, L, S, E, Ev = dims
    dqf, dq_off, dq_rs = dq
    G = dq_off.size // BH
    nkb = (S + BLOCK_K - 1) // BLOCK_K
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    NR = _nr(tag, of)
    bh = item // G
    g = item % G
    qo, ko, vo, doo = q_off[bh], k_off[bh], v_off[bh], do_off[bh]
    # one key tile (S <= BLOCK_K): D_i = sum_j P_ij dP_ij from the tile itself, which equals rowsum(dO_i * O_i)
    # (O_i = sum_j P_ij V_j) without reading O, saved by the forward and long out of cache
    in_tile = nkb == 1
    kT, vT, s, dp, dsT, dkT, dvT, dqT, delta, seen = _item_locals(dims, nqb, dof, doo, do_rs, of, o_off[bh], o_rs,
                                                                  not in_tile)
    for kb in range(g, nkb, G):
        j0 = kb * BLOCK_K
        nk = min(BLOCK_K, S - j0)
        ilo, ihi = _key_tile_queries(dk, dv, bh, j0, nk, dims, causal, window, offset)
        if ihi <= ilo:  # no query sees these keys (their gradients were zeroed)
            continue
        _load_key_tile(kT, vT, dkT, dvT, kf, ko, k_rs, vf, vo, v_rs, j0, nk, scale)  # kT = scale K^T
        for qb in range(ilo // BLOCK_Q, (ihi + BLOCK_Q - 1) // BLOCK_Q):
            i0 = qb * BLOCK_Q
            nq = min(BLOCK_Q, L - i0)
            wk = min(BLOCK_K, (nk + NR - 1) // NR * NR)  # key columns computed
            _mm(tag, nq, wk, E, qf, qo + i0 * q_rs, q_rs, 1, kT, 0, BLOCK_K, s, 0, BLOCK_K, False)
            _bias_and_mask(s, bias, has_bias, bh, i0, nq, j0, nk, causal, window, offset)
            for i in range(nq):
                li = lse[bh, i0 + i]
                if li == -np.inf:
                    for j in range(wk):
                        s[i, j] = 0.0
                else:
                    _exp_bwd(s, i, lse, bh * L + i0 + i, wk)
                    for j in range(nk, wk):  # zero padding keys
                        s[i, j] = 0.0
            # dV
            _mm(tag, Ev, wk, nq, dof, doo + i0 * do_rs, 1, do_rs, s, 0, BLOCK_K, dvT, 0, BLOCK_K, True)
            # dP -> dS (in dp, scale folded in)
            _mm(tag, nq, wk, Ev, dof, doo + i0 * do_rs, do_rs, 1, vT, 0, BLOCK_K, dp, 0, BLOCK_K, False)
            if in_tile:  # (P and dP are 0 past nk: padding and masked keys; a vectorised sum: eight running sums
                # inlined here, in a kernel without fastmath, took longer than reading O)
                _row_dots(s.reshape(-1), 0, BLOCK_K, dp.reshape(-1), 0, BLOCK_K, wk, delta[i0:i0 + nq])
            for i in range(nq):
                di = delta[i0 + i]
                for j in range(wk):
                    dp[i, j] = scale * s[i, j] * (dp[i, j] - di)
            # dK
            _mm(tag, E, wk, nq, qf, qo + i0 * q_rs, 1, q_rs, dp, 0, BLOCK_K, dkT, 0, BLOCK_K, True)
            # dQ
            if E % NR == 0:  # straight into the dq slab: dq[p, qb] += dS (nq x nk) @ K[p, kb] (nk x E)
                _mm(tag, nq, E, nk, dp, 0, BLOCK_K, 1, kf, ko + j0 * k_rs, k_rs, dqf,
                    dq_off[g * BH + bh] + i0 * dq_rs, dq_rs, seen[qb])  # the first key tile writes
            else:
                wq = min(BLOCK_Q, (nq + NR - 1) // NR * NR)
                for j in range(nk):
                    for i in range(nq):
                        dsT[j, i] = dp[i, j]
                    for i in range(nq, wq):
                        dsT[j, i] = 0.0
                _mm(tag, E, wq, nk, kf, ko + j0 * k_rs, 1, k_rs, dsT, 0, BLOCK_Q, dqT, 0, BLOCK_Q, False)
                add = seen[qb]  # (one loop with a select: two loops compiled measurably longer)
                qrow = dq_off[g * BH + bh] + i0 * dq_rs
                for i in range(nq):
                    for e in range(E):
                        x = dqT[e, i]
                        dqf[qrow + i * dq_rs + e] = x + dqf[qrow + i * dq_rs + e] if add else x
            seen[qb] = True
        _store_key_tile(dk, dv, dkT, dvT, bh, j0, nk)
    _zero_unseen(dq, g * BH + bh, seen, L, E)  # query rows no key tile of this item reached: dq 0
