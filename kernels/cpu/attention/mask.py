"""The masking rule of attention, computed in one place for every CPU kernel (the forward and backward
kernels here and the decode step, kernels/cpu/decode.py). Its reference definition, in NumPy, is
tinyattn.backend_contract.attention_allowed / attention_reference, which the tests hold these to.

Query row i sits at key position p = i + offset. Key j is masked for it when causal and j > p, or when
window >= 0 and |p - j| > window (window = -1: none); a -inf bias entry masks too. A row with every key
masked is "fully masked": output 0, lse = -inf, gradient 0 (the kernels' epilogues).
The helpers take positions, so offset only appears where a row index becomes a position.
"""
import numpy as np
from numba import njit


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
def _block_rows(p0, p1, j0, nk, S, causal, window):
    """Rows [r0, r1) of the key tile [j0, j0 + nk) that queries at positions [p0, p1) may see (_key_range
    clipped to the tile); r1 <= r0 when they see none of it."""
    jlo, jhi = _key_range(p0, p1, S, causal, window)
    r0 = max(jlo - j0, 0)
    return r0, max(r0, min(jhi - j0, nk))


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


@njit(cache=True, inline="always")
def _allowed_queries(j, causal, window):
    """Query positions [plo, phi) that may see key j under causal/window (bias not considered)."""
    plo = j if causal else -(1 << 62)
    phi = 1 << 62
    if window >= 0:
        plo = max(plo, j - window)
        phi = j + window + 1
    return plo, phi


@njit(cache=True, inline="always")
def _bias_and_mask_t(sT, bias, has_bias, bh, i0, c0, c1, j0, r0, r1, causal, window, offset):
    """The masking rule on a transposed score tile sT (keys j x queries i, the forward's): sT[j, i] +=
    bias[0, bh, i0 + i, j0 + j], then -inf where causal/window mask (query row i0 + i at position
    i0 + i + offset). Only rows r0 <= j < r1 and columns c0 <= i < c1 are touched. The queries that see a key
    are one interval of positions, so each row's masked columns are the runs before and after it (two fills,
    not a test per element)."""
    if has_bias:
        for j in range(r0, r1):
            for i in range(c0, c1):
                sT[j, i] += bias[0, bh, i0 + i, j0 + j]
    if _tile_needs_mask(i0 + c0 + offset, c1 - c0, j0 + r0, r1 - r0, causal, window):
        for j in range(r0, r1):
            plo, phi = _allowed_queries(j0 + j, causal, window)
            for i in range(c0, min(c1, max(c0, plo - i0 - offset))):
                sT[j, i] = -np.inf
            for i in range(max(c0, phi - i0 - offset), c1):
                sT[j, i] = -np.inf


@njit(cache=True, inline="always")
def _bias_and_mask(s, bias, has_bias, bh, i0, nq, j0, nk, causal, window, offset):
    """_bias_and_mask_t on a score tile s (queries i x keys j, the backward's)."""
    if has_bias:
        for i in range(nq):
            for j in range(nk):
                s[i, j] += bias[0, bh, i0 + i, j0 + j]
    if _tile_needs_mask(i0 + offset, nq, j0, nk, causal, window):
        for i in range(nq):
            for j in range(nk):
                if _masked(i0 + i + offset, j0 + j, causal, window):
                    s[i, j] = -np.inf
