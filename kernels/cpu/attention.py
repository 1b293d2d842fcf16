"""Fused scaled-dot-product attention on the CPU: tiled (FlashAttention style), never L x S in memory.

Per batch-head p (the batch dims of q, k, v flattened in C order: ``BH = B * H`` for (B, H, L, E) inputs):

    S = scale * Q K^T + bias          # (L, S) -- only ever one (BQ, BK) tile of it exists
    S_ij = -inf where masked          # causal: j > i;  window w >= 0: |i - j| > w;  bias == -inf
    P = softmax(S, dim=-1)            # row-wise
    O = P V                           # (L, Ev)
    lse_i = log(sum_j exp(S_ij))      # saved for backward (one number per query row)

Backward, with P recomputed tile by tile as P_ij = exp(S_ij - lse_i):

    dV  = P^T dO
    dP  = dO V^T
    D_i = rowsum(dO_i * O_i)          # = rowsum(dP_i * P_i)
    dS  = P * (dP - D)
    dQ  = scale * dS K
    dK  = scale * dS^T Q

Conventions
-----------
* ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)`` with the same batch dims, float32 or float64 (all
  the same dtype); every result is in that dtype, including ``lse (..., L)``.  Accumulation happens in that
  dtype too.  Results (lse, dq, dk, dv) are new C-contiguous arrays; so is out, except for
  ``(B, H, L, E)`` inputs (several heads): out (B, H, L, Ev) then lies in memory as (B, L, H, Ev), as
  PyTorch's CPU flash attention lays it out, so that joining the heads, ``y.transpose(1, 2).reshape(B, L,
  H*Ev)``, is a view instead of a copy. The kernels write it through ``of``/``o_off``/``o_rs``, as below.
* Strided inputs are read in place: the kernels see q (and k, v, dout, out) as a flat 1-D array ``qf``, an int64
  offset per batch-head ``q_off (BH,)`` and a row stride ``q_rs``, with Q[p, i, e] = qf[q_off[p] + i q_rs + e]
  (``_strided``).  That covers any view whose rows are contiguous and whose strides are non-negative --
  q, k, v = qkv.permute(2, 0, 3, 1, 4) of a fused projection, the transposed gradient arriving through
  y.transpose(1, 2), a sliced or broadcast batch -- without a copy; anything else is copied first.
* Backward work split: prange over (batch-head, group of key tiles); with fewer batch-heads than threads
  each head's key tiles are dealt round-robin to G = ceil(threads / BH) items, each with its own dq slab
  summed at the end -- extra memory (G - 1) x |dq|, no atomics, no races.
* ``bias`` is any 3-D float array that broadcasts to ``(BH, L, S)`` -- a zero-stride view from
  ``np.broadcast_to`` is fine and is never copied (unless its dtype differs from q's); ``-inf`` entries
  mask.  When ``has_bias`` is False it is a dummy and ignored.
* ``offset`` places query row i at key position ``i + offset``; causal and window are measured from there.
  ``causal`` keeps key j for query i only if ``j <= i + offset``: ``offset = 0`` is the top-left alignment
  (PyTorch's ``is_causal``, also for L != S), ``offset = S - L`` the bottom-right one (the last query sees
  every key: a query at cache position p sees keys <= p, what a key/value cache needs).  ``window >= 0``
  keeps key j only if ``|i + offset - j| <= window``; ``window = -1`` means none.  Both can be combined.
  Key tiles that causal/window mask entirely are skipped, never computed.
* A fully masked query row (every key masked) gets output row 0 and ``lse = -inf`` (the marker), and its
  gradients contribute exactly 0 to dq, dk and dv -- never NaN.

Tiling: ``BLOCK_Q`` query rows x ``BLOCK_K`` keys (64 x 64, measured best of 32/64/128 on a 2-core AVX2
box).  Every innermost loop is an axpy over a tile axis whose length is the compile-time constant
BLOCK_Q or BLOCK_K (partial tiles are zero padded): LLVM unrolls it, vectorises it and keeps the
accumulator row in registers, which measured ~3x faster than loops bounded by the runtime E or Ev.  The
forward therefore works on the transposed score tile S^T (keys x queries), the backward on S (queries x
keys) with the owned K/V tile transposed once.  Inner products are never horizontal reductions, so no
fastmath is needed; ``_exp`` is a branch-free exp that vectorises (np.exp is a libm call per element).
Local buffers are allocated once per prange work item.

On AVX-512 / AVX2 + FMA hosts (``KERNEL``, from microkernel.host_kernel; TINYATTN_MATMUL_KERNEL
overrides it) ``_forward_mk`` / ``_backward_mk`` run the same loop nests with every tile product (S, P V,
dP, dV, dK, dQ) as register tiles of the matmul outer-product micro-kernel: 12 (6) rows x 2 vectors of
accumulators, so one vector load of the B operand serves 12 (6) rows instead of one; their float32
exp passes are 16-lane vector IR (``_exp_row_c`` / ``_exp_row_s``, vexp's algorithm), since Numba's
own vectorisation of ``_exp`` stops at 8 lanes.  About 2.5x faster at B4 H8 L512 E64 (docs/benchmarks.md).
``_forward`` / ``_backward`` are the portable path.

The public functions are thin Python wrappers (they build the flat views and offset tables, normalise
dtypes/bias and pick the work split and the kernel) around the ``@njit(parallel=True, cache=True)`` kernels.
"""

import functools

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .microkernel import _make_ukernel, host_kernel, ukernel_w32, ukernel_w32t, ukernel_w64, ukernel_w64t
from .vexp import vexp as _exp

BLOCK_Q = 64  # query rows per tile
BLOCK_K = 64  # keys per tile
ROWS_MAX_L = 4  # forward with at most this many query rows: one work item per row (_forward_rows)


# ----------------------------------------------------------------------------------------------------------
# mask geometry
# ----------------------------------------------------------------------------------------------------------
# Query rows are placed at key positions i + offset (see the module docstring): the helpers below take
# those positions, so offset only appears where a row index becomes a position or back.
@njit(cache=True, inline="always")
def _key_range(p0, p1, S, causal, window):
    """Keys [jlo, jhi) that queries at positions [p0, p1) may see under causal/window (bias not
    considered); empty (jhi <= jlo) when they see none."""
    jlo = 0
    jhi = S
    if causal:
        jhi = min(jhi, p1)
    if window >= 0:
        jlo = max(jlo, p0 - window)
        jhi = min(jhi, p1 + window)
    return jlo, max(jlo, jhi)


@njit(cache=True, inline="always")
def _query_range(j0, j1, L, causal, window, offset):
    """Query rows [ilo, ihi) (row i at position i + offset) that may see keys [j0, j1) under causal/window."""
    ilo = 0
    ihi = L
    if causal:
        ilo = max(ilo, j0 - offset)
    if window >= 0:
        ilo = max(ilo, j0 - window - offset)
        ihi = min(ihi, j1 + window - offset)
    return ilo, ihi


@njit(cache=True, inline="always")
def _tile_needs_mask(p0, nq, j0, nk, causal, window):
    """True unless every (query position p, key j) of the tile is allowed by causal/window."""
    if causal and j0 + nk - 1 > p0:
        return True
    if window >= 0 and ((p0 + nq - 1) - j0 > window or (j0 + nk - 1) - p0 > window):
        return True
    return False


@njit(cache=True, inline="always")
def _masked(p, j, causal, window):
    """Key j masked for the query at position p."""
    return (causal and j > p) or (window >= 0 and abs(p - j) > window)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _row_dots(af, a_off, a_rs, bf, b_off, b_rs, n, d):
    """d[i] = sum_{e < n} A[i, e] B[i, e] for every row i < d.size (A[i, e] = af[a_off + i a_rs + e], B
    likewise): the backward's D_i = rowsum(dO_i * O_i).  fastmath reassociates the sum (vector partial sums,
    as numpy's einsum does; ~3x faster than the in-order chain), within the reference tests' tolerances."""
    z = d.dtype.type(0)
    for i in range(d.size):
        acc = z
        ao = a_off + i * a_rs
        bo = b_off + i * b_rs
        for e in range(n):
            acc += af[ao + e] * bf[bo + e]
        d[i] = acc


@njit(cache=True)
def _zero3(a, p, i0, n):
    """a[p, i0:i0 + n, :] = 0 (loops: a slice assignment inside a prange body becomes a nested parfor)."""
    z = a.dtype.type(0)
    for i in range(i0, i0 + n):
        for e in range(a.shape[2]):
            a[p, i, e] = z


# ----------------------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _forward(qf, q_off, q_rs, kf, k_off, k_rs, vf, v_off, v_rs, dims, bias, has_bias, causal, window, offset,
             scale, of, o_off, o_rs, lse):
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
    BH, L, S, E, Ev = dims
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    for item in prange(BH * nqb):
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
            if has_bias:
                for j in range(nk):
                    for i in range(nq):
                        sT[j, i] += bias[0, bh, i0 + i, j0 + j]
            if _tile_needs_mask(i0 + offset, nq, j0, nk, causal, window):
                for j in range(nk):
                    for i in range(nq):
                        if _masked(i0 + i + offset, j0 + j, causal, window):
                            sT[j, i] = -np.inf
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
def _forward_rows(qf, q_off, q_rs, kf, k_off, k_rs, vf, v_off, v_rs, dims, bias, has_bias, causal, window, offset,
                  scale, of, o_off, o_rs, lse):
    """The forward for a few query rows (L <= ROWS_MAX_L: a key/value-cache step, one new token), where a
    BLOCK_Q-wide tile would be almost all padding.  Same math and results as _forward.

    for (p, i) in prange(BH x L):                               # independent rows
        [jlo, jhi) = keys the query at position i + offset may see (exact for one row under causal/window)
        s_j = scale q_i . k_j (+ bias)    for j in [jlo, jhi)    # (S,) local
        m = max_j s_j;  w_j = exp(s_j - m);  l = sum_j w_j        (m = -inf: out 0, lse -inf)
        O_i = sum_j w_j V_j / l;  lse_i = m + log l

    (The row's scalars -- dot products, m, l -- accumulate in float64 for either dtype.)
    """
    BH, L, S, E, Ev = dims
    for item in prange(BH * L):
        bh = item // L
        i = item % L
        qo, ko, vo = q_off[bh], k_off[bh], v_off[bh]
        jlo, jhi = _key_range(i + offset, i + offset + 1, S, causal, window)
        s = np.empty(jhi - jlo, of.dtype)
        o = np.zeros(Ev, of.dtype)
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
                o[e] += w * vf[vo + j * v_rs + e]
        for e in range(Ev):
            of[o_off[bh] + i * o_rs + e] = o[e] / l
        lse[bh, i] = m + np.log(l)


# ----------------------------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _backward(qf, q_off, q_rs, kf, k_off, k_rs, vf, v_off, v_rs, dof, do_off, do_rs, dims, bias, has_bias, causal,
              window, offset, scale, of, o_off, o_rs, lse, dqp, dk, dv):
    """Loop nest (G = dqp.shape[0] groups of key tiles per batch-head, so BH * G work items).  Tiles are
    (query i, key j) with the keys along the contiguous axis, so inner loops have the compile-time trip
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
                dqp[g, p, qb] += dqT^T         (= on the item's first visit of query tile qb)
            dK[p, kb] = dkT^T;  dV[p, kb] = dvT^T
        dqp[g, p, qb] = 0 for the query tiles this item never visited

    Each key tile belongs to exactly one item and each item owns its own dq slab dqp[g], so nothing races;
    the caller sums dqp over g (G = 1 when there are enough batch-heads to keep every thread busy).  D is
    computed here, and every element of dqp, dk, dv written here (the caller allocates them with np.empty),
    inside the parallel loop: numpy's einsum and three np.zeros on the main thread, while the other threads
    wait, measured slower (~0.2 ms of a 2.8 ms backward at B32 H4 L64 E32, one thread).  Q, K, V, dO are
    read through their flat views, offsets and row strides (module docstring).
    """
    BH, L, S, E, Ev = dims
    G = dqp.shape[0]
    nkb = (S + BLOCK_K - 1) // BLOCK_K
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    for item in prange(BH * G):
        bh = item // G
        g = item % G
        qo, ko, vo, doo = q_off[bh], k_off[bh], v_off[bh], do_off[bh]
        kT = np.empty((E, BLOCK_K), of.dtype)
        vT = np.empty((Ev, BLOCK_K), of.dtype)
        s = np.empty((BLOCK_Q, BLOCK_K), of.dtype)
        dp = np.empty((BLOCK_Q, BLOCK_K), of.dtype)
        dsT = np.empty((BLOCK_K, BLOCK_Q), of.dtype)
        dkT = np.empty((E, BLOCK_K), of.dtype)
        dvT = np.empty((Ev, BLOCK_K), of.dtype)
        dqT = np.empty((E, BLOCK_Q), of.dtype)
        delta = np.empty(L, of.dtype)
        _row_dots(dof, doo, do_rs, of, o_off[bh], o_rs, Ev, delta)  # D_i for every row of this batch-head
        seen = np.zeros(nqb, np.bool_)  # query tiles whose rows of the dq slab this item has written
        for kb in range(g, nkb, G):
            j0 = kb * BLOCK_K
            nk = min(BLOCK_K, S - j0)
            ilo, ihi = _query_range(j0, j0 + nk, L, causal, window, offset)
            if ihi <= ilo:  # no query sees these keys: their gradients are 0
                _zero3(dk, bh, j0, nk)
                _zero3(dv, bh, j0, nk)
                continue
            kT[:, :] = 0.0
            vT[:, :] = 0.0
            for j in range(nk):
                for e in range(E):
                    kT[e, j] = kf[ko + (j0 + j) * k_rs + e]
                for e in range(Ev):
                    vT[e, j] = vf[vo + (j0 + j) * v_rs + e]
            dkT[:, :] = 0.0
            dvT[:, :] = 0.0
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
                if has_bias:
                    for i in range(nq):
                        for j in range(nk):
                            s[i, j] += bias[0, bh, i0 + i, j0 + j]
                if _tile_needs_mask(i0 + offset, nq, j0, nk, causal, window):
                    for i in range(nq):
                        for j in range(nk):
                            if _masked(i0 + i + offset, j0 + j, causal, window):
                                s[i, j] = -np.inf
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
                for i in range(nq):
                    for e in range(E):
                        x = dqT[e, i]
                        dqp[g, bh, i0 + i, e] = x + dqp[g, bh, i0 + i, e] if add else x
                seen[qb] = True
            for j in range(nk):
                for e in range(E):
                    dk[bh, j0 + j, e] = dkT[e, j]
                for e in range(Ev):
                    dv[bh, j0 + j, e] = dvT[e, j]
        for qb in range(nqb):  # query rows no key tile of this item reached: dq 0
            if not seen[qb]:
                _zero3(dqp[g], bh, qb * BLOCK_Q, min(BLOCK_Q, L - qb * BLOCK_Q))


@njit(parallel=True, cache=True)
def _sum_groups(dqp, dq):
    """dq = sum_g dqp[g]  (dqp (G, BH, L, E))."""
    G, BH, L, E = dqp.shape
    for r in prange(BH * L):
        p = r // L
        i = r % L
        for e in range(E):
            dq[p, i, e] = dqp[0, p, i, e]
        for g in range(1, G):
            for e in range(E):
                dq[p, i, e] += dqp[g, p, i, e]


# ----------------------------------------------------------------------------------------------------------
# float32 exp over a tile row, as 16-lane vector IR
# ----------------------------------------------------------------------------------------------------------
# Numba vectorises the scalar _exp loops with 8-lane (ymm) vectors only and the exp passes measured ~30 % of
# the register-blocked forward (0.5 ns per element); this emits vexp's float32 algorithm (same constants,
# same clamping, NaN kept) on <16 x float> vectors (zmm on AVX-512, two ymm on AVX2: correct on any CPU).
_EXP_N = 16


def _make_exp_row(vec_c):
    """An intrinsic exp_row(n, x, x_off, c, c_off, l, l_off): for the n * 16 floats from x[x_off]:
    x = exp(x - c), c = c[c_off + t] (vec_c) or the scalar c[c_off] (not vec_c); l[l_off + t] += x
    elementwise (vec_c only; l unused otherwise).  float32 arrays only."""

    @intrinsic
    def exp_row(typingctx, n, x, x_off, c, c_off, l, l_off):
        if not all(isinstance(a, types.Array) and a.dtype == types.float32 for a in (x, c, l)):
            return None
        sig = types.void(n, x, x_off, c, c_off, l, l_off)

        def codegen(context, builder, sig, args):
            from numba.core import cgutils
            from llvmlite import ir

            i64, i32 = ir.IntType(64), ir.IntType(32)
            f32 = ir.FloatType()
            W = _EXP_N
            vt = ir.VectorType(f32, W)
            vi = ir.VectorType(i32, W)
            vptr = vt.as_pointer()
            tys = sig.args
            n, x, x_off, c, c_off, l, l_off = [
                context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
                for v, t in zip(args, tys)]
            px = builder.gep(context.make_array(tys[1])(context, builder, x).data, [x_off])
            pc = builder.gep(context.make_array(tys[3])(context, builder, c).data, [c_off])
            pl = builder.gep(context.make_array(tys[5])(context, builder, l).data, [l_off])

            def splat(val):
                return ir.Constant(vt, [ir.Constant(f32, val)] * W)

            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                                                 "llvm.fmuladd.v16f32")
            floor = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]), "llvm.floor.v16f32")
            undef = ir.Constant(vt, ir.Undefined)
            if not vec_c:
                cs = builder.load(pc)
                cv_s = builder.shuffle_vector(builder.insert_element(undef, cs, ir.Constant(i32, 0)), undef,
                                              ir.Constant(vi, [0] * W))
            with cgutils.for_range(builder, n) as loop:
                off = builder.mul(loop.index, ir.Constant(i64, W))
                xp = builder.bitcast(builder.gep(px, [off]), vptr)
                xv = builder.load(xp, align=4)
                if vec_c:
                    cv = builder.load(builder.bitcast(builder.gep(pc, [off]), vptr), align=4)
                else:
                    cv = cv_s
                xv = builder.fsub(xv, cv)
                lo = splat(-87.0)
                xc = builder.select(builder.fcmp_ordered("<", xv, lo), lo, xv)
                nf = builder.call(floor, [builder.call(fma, [xc, splat(1.4426950408889634), splat(0.5)])])
                r = builder.fsub(builder.fsub(xc, builder.fmul(nf, splat(0.693359375))),
                                 builder.fmul(nf, splat(-2.12194440e-4)))
                p = splat(1.0 / 5040.0)
                for coef in (1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0):
                    p = builder.call(fma, [p, r, splat(coef)])
                ni = builder.fptosi(nf, vi)
                e = builder.shl(builder.add(ni, ir.Constant(vi, [127] * W)), ir.Constant(vi, [23] * W))
                res = builder.fmul(p, builder.bitcast(e, vt))
                nan_or_0 = builder.select(builder.fcmp_unordered("uno", xv, xv), xv, splat(0.0))
                res = builder.select(builder.fcmp_ordered(">=", xv, lo), res, nan_or_0)
                builder.store(res, xp, align=4)
                if vec_c:
                    lp = builder.bitcast(builder.gep(pl, [off]), vptr)
                    builder.store(builder.fadd(builder.load(lp, align=4), res), lp, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return exp_row


_exp_row_c = _make_exp_row(True)      # x = exp(x - c[:]); l += x
_exp_row_s = _make_exp_row(False)     # x = exp(x - c)


def _exp_fwd(sT, nk, c, l, w):
    """sT[j, :w] = exp(sT[j, :w] - c[:w]); l[:w] += sT[j, :w]   for j < nk (rows of BLOCK_Q, the first w
    columns: w a multiple of 16 for float32; Numba only)."""
    raise NotImplementedError


def _exp_bwd(s, i, lse, lo, w):
    """s[i, :w] = exp(s[i, :w] - lse.flat[lo])   (the first w of a row of BLOCK_K: w a multiple of 16 for
    float32; Numba only)."""
    raise NotImplementedError


@overload(_exp_fwd)
def _exp_fwd_impl(sT, nk, c, l, w):
    if sT.dtype == types.float32 and BLOCK_Q % _EXP_N == 0:
        def impl(sT, nk, c, l, w):
            for j in range(nk):
                _exp_row_c(w // _EXP_N, sT, j * BLOCK_Q, c, 0, l, 0)
        return impl

    def impl(sT, nk, c, l, w):
        for j in range(nk):
            for i in range(w):
                pji = _exp(sT[j, i] - c[i])
                sT[j, i] = pji
                l[i] += pji
    return impl


@overload(_exp_bwd)
def _exp_bwd_impl(s, i, lse, lo, w):
    if s.dtype == types.float32 and BLOCK_K % _EXP_N == 0:
        def impl(s, i, lse, lo, w):
            _exp_row_s(w // _EXP_N, s, i * BLOCK_K, lse, lo, s, 0)
        return impl

    def impl(s, i, lse, lo, w):
        li = lse[lo // lse.shape[1], lo % lse.shape[1]]
        for j in range(w):
            s[i, j] = _exp(s[i, j] - li)
    return impl


# ----------------------------------------------------------------------------------------------------------
# register-blocked versions (AVX-512 / AVX2 + FMA hosts): every tile product through microkernel.py
# ----------------------------------------------------------------------------------------------------------
# Same loop nests and math as _forward / _backward; only the tile products differ. Each product
#     C[r, j] (+)= sum_{t < kc} A[r, t] B[t, j]        r < M, j < N (N = BLOCK_Q or BLOCK_K)
# runs as MR x NR register tiles of the outer-product micro-kernel (12 x 2 vectors on AVX-512, 6 x 2 on
# AVX2): per t, NR values of B are loaded as vectors and MR values of A broadcast into them, so many
# query (or key) rows share each load -- the one-row axpy loops above reload their operand row for every
# row of the tile. A and B are read in place through strides (q, k, v, dout or the local tiles).
_uk1_w64 = _make_ukernel(1, 64)   # last rows of a product when M is not a multiple of the tail shape
_uk1_w32 = _make_ukernel(1, 32)
KERNEL = host_kernel()            # 'avx512' | 'avx2' -> the versions below; 'portable' -> the loops above


def _mm(tag, M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
    """C[r, j] = (or +=, acc) sum_{t < kc} A[r, t] B[t, j] for r < M, j < N (N a multiple of NR), with
    A[r, t] = a[a_off + r a_rs + t a_ks], B[t, j] = b[b_off + t b_ks + j], C[r, j] = c[c_off + r ldc + j]
    (flat offsets into C-contiguous arrays: the local tiles, or q, k, v, dout's flat views).  Rows in MR-row tiles, then tail tiles, then single rows.
    The micro-kernel shape is chosen at compile time from the type of ``tag`` (``_TAGS``: an empty int8
    array for AVX-512, int16 for AVX2), so a kernel compiles only the shape it runs.  Numba only."""
    raise NotImplementedError


_TAGS = {"avx512": np.zeros(0, np.int8), "avx2": np.zeros(0, np.int16)}


@njit(cache=True, inline="always")
def _nr(tag, x):
    """NR, the micro-tile width in elements of x's dtype, for the shape ``tag`` names (_mm)."""
    return 128 // (tag.itemsize * x.itemsize)


@njit(cache=True)
def _mm_w64(M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
    NR = 2 * 64 // c.itemsize
    r = 0
    while r < M:
        kind = 0 if M - r >= 12 else (1 if M - r >= 4 else 2)
        ao = a_off + r * a_rs
        for j in range(0, N, NR):
            co = c_off + r * ldc + j
            bo = b_off + j
            if kind == 0:
                ukernel_w64(kc, a, ao, a_rs, a_ks, b, bo, b_ks, c, co, ldc, acc)
            elif kind == 1:
                ukernel_w64t(kc, a, ao, a_rs, a_ks, b, bo, b_ks, c, co, ldc, acc)
            else:
                _uk1_w64(kc, a, ao, a_rs, a_ks, b, bo, b_ks, c, co, ldc, acc)
        r += 12 if kind == 0 else (4 if kind == 1 else 1)


@njit(cache=True)
def _mm_w32(M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
    NR = 2 * 32 // c.itemsize
    r = 0
    while r < M:
        kind = 0 if M - r >= 6 else (1 if M - r >= 2 else 2)
        ao = a_off + r * a_rs
        for j in range(0, N, NR):
            co = c_off + r * ldc + j
            bo = b_off + j
            if kind == 0:
                ukernel_w32(kc, a, ao, a_rs, a_ks, b, bo, b_ks, c, co, ldc, acc)
            elif kind == 1:
                ukernel_w32t(kc, a, ao, a_rs, a_ks, b, bo, b_ks, c, co, ldc, acc)
            else:
                _uk1_w32(kc, a, ao, a_rs, a_ks, b, bo, b_ks, c, co, ldc, acc)
        r += 6 if kind == 0 else (2 if kind == 1 else 1)


@overload(_mm)
def _mm_impl(tag, M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
    f = _mm_w64 if tag.dtype == types.int8 else _mm_w32

    def impl(tag, M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
        f(M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc)
    return impl


@njit(cache=True)
def _zero2(a):
    """a[:, :] = 0 for a 2-D array, as loops (a few tenths of a second less cold compile inside a prange body)."""
    z = a.dtype.type(0)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = z


@njit(parallel=True, cache=True)
def _forward_mk(qf, q_off, q_rs, kf, k_off, k_rs, vf, v_off, v_rs, dims, bias, has_bias, causal, window, offset,
                scale, of, o_off, o_rs, lse, tag):
    """_forward with its two tile products register-blocked (_mm):
        sT (nk, wq)  = K[p, kb] (nk x E, in place)  @ qT (E x wq)
        oT (Ev, wq) += V[p, kb]^T (Ev x nk, in place) @ sT (nk x wq)
    Rows j >= nk of sT are never computed nor read; of the BQ query columns only the first wq = nq rounded
    up to the micro-tile width NR are (a short sequence, L = 32 < BQ = 64, does half the work)."""
    BH, L, S, E, Ev = dims
    NR = _nr(tag, of)
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    for item in prange(BH * nqb):
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
            if has_bias:
                for j in range(nk):
                    for i in range(nq):
                        sT[j, i] += bias[0, bh, i0 + i, j0 + j]
            if _tile_needs_mask(i0 + offset, nq, j0, nk, causal, window):
                for j in range(nk):
                    for i in range(nq):
                        if _masked(i0 + i + offset, j0 + j, causal, window):
                            sT[j, i] = -np.inf
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


@njit(parallel=True, cache=True)
def _backward_mk(qf, q_off, q_rs, kf, k_off, k_rs, vf, v_off, v_rs, dof, do_off, do_rs, dims, bias, has_bias, causal,
                 window, offset, scale, of, o_off, o_rs, lse, dqp, dk, dv, tag):
    """_backward with its five tile products register-blocked (_mm); kT, vT zero padded to BLOCK_K keys:
        s (nq, BK)    = Q[p, qb] (nq x E, in place) @ kT (E x BK)        -> P (kT holds scale K^T)
        dvT (Ev, BK) += dO[p, qb]^T (Ev x nq, in place) @ P (nq x BK)
        dP (nq, BK)   = dO[p, qb] (nq x Ev, in place) @ vT (Ev x BK)     -> dS (in dp)
        dkT (E, BK)  += Q[p, qb]^T (E x nq, in place) @ dS (nq x BK)
        dQ[p, qb]    += dS (nq x nk) @ K[p, kb] (nk x E, in place)  into the dq slab, when E is a multiple
                        of NR; else dqT (E, BQ) = K[p, kb]^T @ dS^T, added to the slab transposed
    Rows i >= nq of s and dp are never computed nor read; of the BK key columns only the first wk = nk
    rounded up to the micro-tile width NR are (and of dqT's BQ columns the first nq rounded up)."""
    BH, L, S, E, Ev = dims
    G = dqp.shape[0]
    nkb = (S + BLOCK_K - 1) // BLOCK_K
    nqb = (L + BLOCK_Q - 1) // BLOCK_Q
    NR = _nr(tag, of)
    for item in prange(BH * G):
        bh = item // G
        g = item % G
        qo, ko, vo, doo = q_off[bh], k_off[bh], v_off[bh], do_off[bh]
        kT = np.empty((E, BLOCK_K), of.dtype)
        vT = np.empty((Ev, BLOCK_K), of.dtype)
        s = np.empty((BLOCK_Q, BLOCK_K), of.dtype)
        dp = np.empty((BLOCK_Q, BLOCK_K), of.dtype)
        dsT = np.empty((BLOCK_K, BLOCK_Q), of.dtype)
        dkT = np.empty((E, BLOCK_K), of.dtype)
        dvT = np.empty((Ev, BLOCK_K), of.dtype)
        dqT = np.empty((E, BLOCK_Q), of.dtype)
        delta = np.empty(L, of.dtype)
        _row_dots(dof, doo, do_rs, of, o_off[bh], o_rs, Ev, delta)  # D_i for every row of this batch-head
        seen = np.zeros(nqb, np.bool_)  # query tiles whose rows of the dq slab this item has written
        for kb in range(g, nkb, G):
            j0 = kb * BLOCK_K
            nk = min(BLOCK_K, S - j0)
            ilo, ihi = _query_range(j0, j0 + nk, L, causal, window, offset)
            if ihi <= ilo:  # no query sees these keys: their gradients are 0
                _zero3(dk, bh, j0, nk)
                _zero3(dv, bh, j0, nk)
                continue
            _zero2(kT)  # loops, not kT[:, :] = 0 (an array expression: a parfor inside the prange body)
            _zero2(vT)
            for j in range(nk):
                for e in range(E):
                    kT[e, j] = kf[ko + (j0 + j) * k_rs + e] * scale
                for e in range(Ev):
                    vT[e, j] = vf[vo + (j0 + j) * v_rs + e]
            _zero2(dkT)
            _zero2(dvT)
            for qb in range(ilo // BLOCK_Q, (ihi + BLOCK_Q - 1) // BLOCK_Q):
                i0 = qb * BLOCK_Q
                nq = min(BLOCK_Q, L - i0)
                wk = min(BLOCK_K, (nk + NR - 1) // NR * NR)  # key columns computed
                _mm(tag, nq, wk, E, qf, qo + i0 * q_rs, q_rs, 1, kT, 0, BLOCK_K, s, 0, BLOCK_K, False)
                if has_bias:
                    for i in range(nq):
                        for j in range(nk):
                            s[i, j] += bias[0, bh, i0 + i, j0 + j]
                if _tile_needs_mask(i0 + offset, nq, j0, nk, causal, window):
                    for i in range(nq):
                        for j in range(nk):
                            if _masked(i0 + i + offset, j0 + j, causal, window):
                                s[i, j] = -np.inf
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
                for i in range(nq):
                    di = delta[i0 + i]
                    for j in range(wk):
                        dp[i, j] = scale * s[i, j] * (dp[i, j] - di)
                # dK
                _mm(tag, E, wk, nq, qf, qo + i0 * q_rs, 1, q_rs, dp, 0, BLOCK_K, dkT, 0, BLOCK_K, True)
                # dQ
                if E % NR == 0:  # straight into the dq slab: dq[p, qb] += dS (nq x nk) @ K[p, kb] (nk x E)
                    _mm(tag, nq, E, nk, dp, 0, BLOCK_K, 1, kf, ko + j0 * k_rs, k_rs, dqp,
                        ((g * BH + bh) * L + i0) * E, E, seen[qb])  # the first key tile writes
                else:
                    wq = min(BLOCK_Q, (nq + NR - 1) // NR * NR)
                    for j in range(nk):
                        for i in range(nq):
                            dsT[j, i] = dp[i, j]
                        for i in range(nq, wq):
                            dsT[j, i] = 0.0
                    _mm(tag, E, wq, nk, kf, ko + j0 * k_rs, 1, k_rs, dsT, 0, BLOCK_Q, dqT, 0, BLOCK_Q, False)
                    add = seen[qb]  # (one loop with a select: two loops compiled measurably longer)
                    for i in range(nq):
                        for e in range(E):
                            x = dqT[e, i]
                            dqp[g, bh, i0 + i, e] = x + dqp[g, bh, i0 + i, e] if add else x
                seen[qb] = True
            for j in range(nk):
                for e in range(E):
                    dk[bh, j0 + j, e] = dkT[e, j]
                for e in range(Ev):
                    dv[bh, j0 + j, e] = dvT[e, j]
        for qb in range(nqb):  # query rows no key tile of this item reached: dq 0
            if not seen[qb]:
                _zero3(dqp[g], bh, qb * BLOCK_Q, min(BLOCK_Q, L - qb * BLOCK_Q))


# ----------------------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _offsets(shape, strides):
    """The offset table of a batch of shape ``shape`` with element strides ``strides``: off[p] = sum_d
    idx_d(p) strides[d] over the batch index idx(p) of flat (C-order) position p; int64, read-only."""
    off = np.zeros(1, np.int64)
    for n, st in zip(shape, strides):
        off = (off[:, None] + np.arange(n, dtype=np.int64) * st).reshape(-1)
    off.flags.writeable = False
    return off


def _strided(a, dt):
    """``(flat, off, rs)`` for an array ``a (..., n, E)`` seen as ``(P, n, E)`` (P = the product of its batch
    dims, flattened in C order): element ``[p, i, e]`` is ``flat[off[p] + i * rs + e]``.

    ``flat`` is a read-only 1-D view of a's memory from its first element to its last when every stride is
    non-negative and a row's E elements are adjacent (stride = itemsize): the q, k, v of a fused qkv
    projection, a transposed gradient, a sliced or broadcast batch are read in place, not copied.  Any other
    layout (a negative stride, a strided last axis) or dtype is copied to a C-contiguous array first, as
    before.  The strides of size-1 axes never matter (index 0).  Always the same types (a read-only float
    C array, a read-only int64 C array, an int), so each kernel compiles once per dtype whatever the layout.
    """
    it = np.dtype(dt).itemsize
    ok = a.dtype == dt and a.size > 0 and (a.shape[-1] == 1 or a.strides[-1] == it)
    st = [0 if n == 1 else s for n, s in zip(a.shape, a.strides)]
    if not (ok and all(s >= 0 and s % it == 0 for s in st)):
        a = np.ascontiguousarray(a, dtype=dt)
        st = [0 if n == 1 else s for n, s in zip(a.shape, a.strides)]
    el = [s // it for s in st]
    span = 1 + sum((n - 1) * s for n, s in zip(a.shape, el)) if a.size else 0
    flat = np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(it,), writeable=False)
    return flat, _offsets(a.shape[:-2], tuple(el[:-2])), el[-2]


def _batch(op, q, k, v):
    """Checks q (..., L, E), k (..., S, E), v (..., S, Ev): same batch dims and dtype, float32 or float64.
    Returns (batch, BH, L, S, E, Ev)."""
    dt = q.dtype
    assert dt in (np.float32, np.float64), (op, dt)
    assert k.dtype == dt and v.dtype == dt, (op, q.dtype, k.dtype, v.dtype)
    assert q.ndim >= 2 and k.ndim == q.ndim and v.ndim == q.ndim, (op, q.shape, k.shape, v.shape)
    batch = q.shape[:-2]
    L, E = q.shape[-2:]
    S, Ev = v.shape[-2:]
    assert k.shape == batch + (S, E) and v.shape[:-2] == batch, (op, q.shape, k.shape, v.shape)
    return batch, int(np.prod(batch, dtype=np.int64)), L, S, E, Ev


def _bias(bias, has_bias, dt, BH, L, S):
    """The kernels read bias[0, p, i, j] from a read-only (2, BH, L, S) view with a zero-stride leading axis:
    never a copy, and always Numba's non-contiguous 'A' layout, whether the caller's bias was contiguous or
    a broadcast view -- so each kernel compiles once per dtype, not once per bias layout."""
    if has_bias:
        assert bias.ndim == 3, bias.shape
        if bias.dtype != dt:
            bias = bias.astype(dt)
    else:
        bias = np.zeros((1, 1, 1), dt)
    return np.broadcast_to(bias[None], (2, BH, L, S))


def attention_forward(q, k, v, bias, has_bias, causal, window, scale, offset=0):
    """Fused attention forward. q (..., L, E), k (..., S, E), v (..., S, Ev) with the same batch dims (BH in
    all: their product); bias broadcastable to (BH, L, S); query row i sits at key position i + offset for
    causal/window (0: top-left, S - L: bottom-right).  q, k and v may be strided views (see ``_strided``:
    read in place when each row is contiguous, copied otherwise).

    Returns ``(out (..., L, Ev), lse (..., L))``, new arrays in q's dtype: lse C-contiguous, out too unless
    the batch is (B, H), see the module docstring.  ``lse_i = log sum_j exp(S_ij)``; a fully masked row has
    ``out_i = 0`` and ``lse_i = -inf``.  See the module docstring for the math, the masking rules and the
    loop nest (``_forward``).
    """
    batch, BH, L, S, E, Ev = _batch("attention_forward", q, k, v)
    dt = q.dtype
    if len(batch) == 2 and batch[1] > 1:       # (B, H, L, Ev) stored as (B, L, H, Ev): heads joined for free
        buf = np.empty((batch[0], L, batch[1], Ev), dt)
        out = buf.transpose(0, 2, 1, 3)
    else:
        buf = out = np.empty(batch + (L, Ev), dt)
    it = buf.itemsize
    o_off = _offsets(batch, tuple(s // it for s in out.strides[:-2]))
    lse = np.empty((BH, L), dt)
    args = (*_strided(q, dt), *_strided(k, dt), *_strided(v, dt), (BH, L, S, E, Ev),
            _bias(bias, has_bias, dt, BH, L, S), bool(has_bias), bool(causal), int(window), int(offset),
            dt.type(scale), buf.reshape(-1), o_off, out.strides[-2] // it, lse)
    if L <= ROWS_MAX_L:
        _forward_rows(*args)
    elif KERNEL == "portable":
        _forward(*args)
    else:
        _forward_mk(*args, _TAGS[KERNEL])
    return out, lse.reshape(batch + (L,))


def attention_backward(q, k, v, bias, has_bias, causal, window, scale, out, lse, dout, offset=0):
    """Fused attention backward from the forward's ``out (..., L, Ev)`` and ``lse (..., L)``, with ``dout``
    shaped like out (any strides, as q, k, v).  Returns ``(dq, dk, dv)``, new C-contiguous arrays shaped like
    q, k, v, in q's dtype.  P is recomputed tile by tile from q, k and lse; rows with ``lse = -inf`` (fully
    masked) contribute 0.  Loop nest in ``_backward``.
    """
    return _backward_impl(q, k, v, bias, has_bias, causal, window, scale, out, lse, dout, None, offset)


def _backward_impl(q, k, v, bias, has_bias, causal, window, scale, out, lse, dout, groups, offset=0):
    """attention_backward with the number G of key-tile groups per batch-head forced (tests) or chosen."""
    batch, BH, L, S, E, Ev = _batch("attention_backward", q, k, v)
    dt = q.dtype
    assert out.shape == dout.shape == batch + (L, Ev) and lse.shape == batch + (L,), (out.shape, lse.shape)
    # lse as the kernels read it: (BH, L), a read-only C array (no copy when it came from attention_forward),
    # so one signature whatever the caller's arrays; out through _strided, like dout
    lse = np.ascontiguousarray(lse, dtype=dt).reshape(BH, L)
    lse.flags.writeable = False
    # Split each batch-head's key tiles over G items when BH alone cannot keep the threads busy;
    # each extra group costs one (BH, L, E) dq slab (so at most ~num_threads x dq of extra memory).
    nkb = (S + BLOCK_K - 1) // BLOCK_K
    G = groups if groups is not None else max(1, min(nkb, -(-numba.get_num_threads() // BH)))
    # left uninitialised: the kernel writes every element (dq rows on the first key tile that reaches them,
    # zeros where none does), inside its parallel loop (np.zeros here: serial memsets, measured slower)
    dqp = np.empty((G, BH, L, E), dt)
    dk = np.empty((BH, S, E), dt)
    dv = np.empty((BH, S, Ev), dt)
    args = (*_strided(q, dt), *_strided(k, dt), *_strided(v, dt), *_strided(dout, dt), (BH, L, S, E, Ev),
            _bias(bias, has_bias, dt, BH, L, S), bool(has_bias), bool(causal), int(window), int(offset),
            dt.type(scale), *_strided(out, dt), lse, dqp, dk, dv)
    if KERNEL == "portable":
        _backward(*args)
    else:
        _backward_mk(*args, _TAGS[KERNEL])
    if G == 1:
        dq = dqp[0]
    else:
        dq = np.empty((BH, L, E), dt)
        _sum_groups(dqp, dq)
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
