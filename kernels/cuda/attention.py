"""Fused scaled-dot-product attention on a CUDA device: the meaning of kernels/cpu/attention.py.
Never an L x S matrix in global memory.

Per batch-head p (the leading axis of every array):

    S = scale * Q K^T + bias          # (L, S), one score at a time, never stored
    S_ij = -inf where masked          # causal: j > i + offset;  window w >= 0: |i + offset - j| > w;
                                      # bias == -inf.  offset 0: top-left aligned (PyTorch's is_causal),
                                      # offset S - L: bottom-right (a key/value cache: the last query
                                      # sees every key)
    P = softmax(S, dim=-1);  O = P V;  lse_i = log sum_j exp(S_ij)

Backward, P recomputed as P_ij = exp(S_ij - lse_i):

    D_i = rowsum(dO_i * O_i);  dP = dO V^T;  dS = P * (dP - D)
    dQ = scale * dS K;  dK = scale * dS^T Q;  dV = P^T dO

Conventions: q (BH, L, E), k (BH, S, E), v (BH, S, Ev), all float32 or all float64 (numba device arrays;
host arrays are copied); results are device arrays in that dtype, lse (BH, L) included, and arithmetic
is done in that dtype. A fully masked row (every key masked, or S = 0) gets output 0 and lse = -inf, and
contributes 0 to every gradient.

bias (optional) is a device array (Bb, Lb, Sb) of the same dtype with Bb in {1, BH}, Lb in {1, L}, Sb in
{1, S}; a size-1 axis broadcasts (read at index 0), so a (1, 1, S) key-padding bias or a (1, L, S) mask is
never expanded. window = -1 means none; causal and window combine. Each thread walks only the keys
(queries, in dkdv) that causal/window leave it, [jlo(i), jhi(i)) (or [ilo(j), ihi(j))), so only a -inf
bias entry can still mask a score there.

Launches (ROWS threads per block, one thread per row, no shared memory, no syncthreads):
* forward: grid (ceil(L / ROWS), BH); the block is one (batch-head, query tile), thread i one query row.
  Online softmax over key tiles of BLOCK_K keys, the output row accumulated in place in `out`:

      m = -inf, l = 0, O_i = 0
      for each key tile j0 of [jlo(i), jhi(i)):
          mt = max(m, max_j s_ij);  c = mt (0 if mt = -inf);  alpha = exp(m - c)
          l = alpha l + sum_j exp(s_ij - c);  O_i = alpha O_i + sum_j exp(s_ij - c) V_j;  m = mt
      O_i /= l;  lse_i = m + log l              (l = 0: O_i = 0, lse_i = -inf)

  (s_ij = scale q_i . k_j + bias_ij is computed twice per tile, once for the tile max, once for the update.)
* backward, three kernels, each thread writing only its own rows, so nothing races:
      delta:  thread (p, i):  D_i = dO_i . O_i
      dq:     thread (p, i):  dQ_i = scale sum_j dS_ij K_j             over keys j in [jlo(i), jhi(i))
      dkdv:   thread (p, j):  dV_j = sum_i P_ij dO_i;  dK_j = scale sum_i dS_ij Q_i   over i in [ilo(j), ihi(j))

This is the first, plain version: K/V (and Q/dO) are read from global memory by every thread, not staged
through shared-memory tiles; it is written for correctness under the simulator first.
"""
import functools
import math

import numpy as np
from numba import cuda

from .device import as_device

ROWS = 32      # threads (query rows, or key rows in dkdv) per block
BLOCK_K = 16   # keys per online-softmax step in the forward


@functools.lru_cache(maxsize=None)
def _kernels(dtype, rows, block_k):
    """The forward and the three backward kernels for one dtype."""
    zero = dtype.type(0)
    neg_inf = dtype.type(-np.inf)

    @cuda.jit(device=True)
    def score(q, k, bias, has_bias, p, i, j, scale):
        """scale q_i . k_j (+ bias[p, i, j], size-1 bias axes broadcast)."""
        s = zero
        for e in range(q.shape[2]):
            s += q[p, i, e] * k[p, j, e]
        s *= scale
        if has_bias:
            pb = p if bias.shape[0] > 1 else 0
            ib = i if bias.shape[1] > 1 else 0
            jb = j if bias.shape[2] > 1 else 0
            s += bias[pb, ib, jb]
        return s

    @cuda.jit(device=True)
    def key_range(pos, S, causal, window):
        """Keys [jlo, jhi) that the query at key position pos (row i + offset) may see under
        causal/window (bias not considered); jhi <= jlo when none."""
        jlo = 0
        jhi = min(S, pos + 1) if causal else S
        if window >= 0:
            jlo = max(jlo, pos - window)
            jhi = min(jhi, pos + window + 1)
        return jlo, jhi

    @cuda.jit(device=True)
    def query_range(j, L, causal, window, offset):
        """Query rows [ilo, ihi) whose position i + offset may see key j under causal/window (bias not
        considered); ihi <= ilo when none. key_range and query_range are the masking rule on this device
        (its reference: tinyattn.backend_contract.attention_allowed)."""
        ilo = max(0, j - offset) if causal else 0
        ihi = L
        if window >= 0:
            ilo = max(ilo, j - window - offset)
            ihi = min(ihi, j + window + 1 - offset)
        return ilo, ihi

    @cuda.jit
    def forward(q, k, v, bias, has_bias, causal, window, offset, scale, out, lse):
        i = cuda.blockIdx.x * rows + cuda.threadIdx.x
        p = cuda.blockIdx.y
        L = q.shape[1]
        if i >= L:
            return
        Ev = v.shape[2]
        jlo, jhi = key_range(i + offset, k.shape[1], causal, window)
        for e in range(Ev):
            out[p, i, e] = zero
        m = neg_inf
        l = zero
        for j0 in range(jlo, jhi, block_k):
            j1 = min(j0 + block_k, jhi)
            mt = m
            for j in range(j0, j1):
                s = score(q, k, bias, has_bias, p, i, j, scale)
                if s > mt:
                    mt = s
            c = mt if mt != neg_inf else zero
            alpha = math.exp(m - c)
            l *= alpha
            for e in range(Ev):
                out[p, i, e] *= alpha
            for j in range(j0, j1):
                pij = math.exp(score(q, k, bias, has_bias, p, i, j, scale) - c)
                l += pij
                for e in range(Ev):
                    out[p, i, e] += pij * v[p, j, e]
            m = mt
        if l > zero:
            inv = dtype.type(1) / l
            for e in range(Ev):
                out[p, i, e] *= inv
            lse[p, i] = m + math.log(l)
        else:
            for e in range(Ev):
                out[p, i, e] = zero
            lse[p, i] = neg_inf

    @cuda.jit
    def delta(out, dout, d):
        i = cuda.blockIdx.x * rows + cuda.threadIdx.x
        p = cuda.blockIdx.y
        if i >= out.shape[1]:
            return
        t = zero
        for e in range(out.shape[2]):
            t += out[p, i, e] * dout[p, i, e]
        d[p, i] = t

    @cuda.jit
    def dq_kernel(q, k, v, bias, has_bias, causal, window, offset, scale, lse, d, dout, dq):
        i = cuda.blockIdx.x * rows + cuda.threadIdx.x
        p = cuda.blockIdx.y
        if i >= q.shape[1]:
            return
        E = q.shape[2]
        Ev = v.shape[2]
        for e in range(E):
            dq[p, i, e] = zero
        li = lse[p, i]
        if li == neg_inf:
            return
        jlo, jhi = key_range(i + offset, k.shape[1], causal, window)
        for j in range(jlo, jhi):
            pij = math.exp(score(q, k, bias, has_bias, p, i, j, scale) - li)
            dp = zero
            for e in range(Ev):
                dp += dout[p, i, e] * v[p, j, e]
            ds = scale * pij * (dp - d[p, i])
            for e in range(E):
                dq[p, i, e] += ds * k[p, j, e]

    @cuda.jit
    def dkdv_kernel(q, k, v, bias, has_bias, causal, window, offset, scale, lse, d, dout, dk, dv):
        j = cuda.blockIdx.x * rows + cuda.threadIdx.x
        p = cuda.blockIdx.y
        if j >= k.shape[1]:
            return
        E = q.shape[2]
        Ev = v.shape[2]
        for e in range(E):
            dk[p, j, e] = zero
        for e in range(Ev):
            dv[p, j, e] = zero
        ilo, ihi = query_range(j, q.shape[1], causal, window, offset)
        for i in range(ilo, ihi):
            li = lse[p, i]
            if li == neg_inf:
                continue
            pij = math.exp(score(q, k, bias, has_bias, p, i, j, scale) - li)
            dp = zero
            for e in range(Ev):
                dp += dout[p, i, e] * v[p, j, e]
                dv[p, j, e] += pij * dout[p, i, e]
            ds = scale * pij * (dp - d[p, i])
            for e in range(E):
                dk[p, j, e] += ds * q[p, i, e]

    return forward, delta, dq_kernel, dkdv_kernel


def _prepare(name, q, k, v, causal, scale, bias, window, offset=0):
    """Device q, k, v checked, and the kernels' masking arguments (bias, has_bias, causal, window, offset, scale):
    bias checked against (BH, L, S) with size-1 axes allowed (host arrays cast to q's dtype and copied;
    None becomes an unread (1, 1, 1) dummy)."""
    q, k, v = (as_device(a) for a in (q, k, v))
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError(f"{name}: expected 3-D q, k, v, got {q.shape}, {k.shape}, {v.shape}")
    dt = np.dtype(q.dtype)
    if dt not in (np.float32, np.float64) or np.dtype(k.dtype) != dt or np.dtype(v.dtype) != dt:
        raise TypeError(f"{name}: q, k, v must all be float32 or all float64, got {q.dtype}, {k.dtype}, {v.dtype}")
    BH, L, E = q.shape
    S = k.shape[1]
    if k.shape != (BH, S, E) or v.shape[:2] != (BH, S):
        raise ValueError(f"{name}: q {q.shape}, k {k.shape}, v {v.shape} do not fit "
                         "(BH, L, E), (BH, S, E), (BH, S, Ev)")
    has_bias = bias is not None
    if has_bias:
        bias = as_device(np.asarray(bias, dtype=dt) if isinstance(bias, np.ndarray) else bias)
        if bias.ndim != 3 or any(b not in (1, n) for b, n in zip(bias.shape, (BH, L, S))):
            raise ValueError(f"{name}: bias {bias.shape} does not fit (BH, L, S) = {(BH, L, S)} (each axis 1 or full)")
        if np.dtype(bias.dtype) != dt:
            raise TypeError(f"{name}: bias must be {dt}, got {bias.dtype}")
    else:
        bias = cuda.device_array((1, 1, 1), dtype=dt)
    return q, k, v, dt, (bias, has_bias, bool(causal), max(int(window), -1), int(offset), dt.type(scale))


def attention_forward(q, k, v, causal, scale, bias=None, window=-1, rows=ROWS, block_k=BLOCK_K, offset=0):
    """Fused attention forward: q (BH, L, E), k (BH, S, E), v (BH, S, Ev), optional bias (Bb, Lb, Sb)
    broadcasting to (BH, L, S), window (-1: none), query row i at key position i + offset (0: top-left,
    S - L: bottom-right) -> (out (BH, L, Ev), lse (BH, L))."""
    q, k, v, dt, mask = _prepare("attention_forward", q, k, v, causal, scale, bias, window, offset)
    BH, L, _ = q.shape
    out = cuda.device_array((BH, L, v.shape[2]), dtype=dt)
    lse = cuda.device_array((BH, L), dtype=dt)
    if BH and L:
        forward = _kernels(dt, rows, block_k)[0]
        forward[((L + rows - 1) // rows, BH), rows](q, k, v, *mask, out, lse)
    return out, lse


def attention_backward(q, k, v, causal, scale, out, lse, dout, bias=None, window=-1, rows=ROWS, offset=0):
    """Fused attention backward from the forward's out and lse (same bias, window and offset): returns
    (dq, dk, dv) device arrays."""
    q, k, v, dt, mask = _prepare("attention_backward", q, k, v, causal, scale, bias, window, offset)
    out, lse, dout = (as_device(a) for a in (out, lse, dout))
    BH, L, E = q.shape
    S = k.shape[1]
    if out.shape != (BH, L, v.shape[2]) or dout.shape != out.shape or lse.shape != (BH, L):
        raise ValueError(f"attention_backward: out {out.shape}, lse {lse.shape}, dout {dout.shape} do not fit "
                         f"q {q.shape}, v {v.shape}")
    if any(np.dtype(a.dtype) != dt for a in (out, lse, dout)):
        raise TypeError(f"attention_backward: out, lse, dout must be {dt}")
    _, delta, dq_kernel, dkdv_kernel = _kernels(dt, rows, BLOCK_K)
    dq = cuda.device_array(q.shape, dtype=dt)
    dk = cuda.device_array(k.shape, dtype=dt)
    dv = cuda.device_array(v.shape, dtype=dt)
    if BH and L:
        d = cuda.device_array((BH, L), dtype=dt)
        grid = ((L + rows - 1) // rows, BH)
        delta[grid, rows](out, dout, d)
        dq_kernel[grid, rows](q, k, v, *mask, lse, d, dout, dq)
    if BH and S:
        if not L:
            d = cuda.device_array((BH, 0), dtype=dt)
        dkdv_kernel[((S + rows - 1) // rows, BH), rows](q, k, v, *mask, lse, d, dout, dk, dv)
    return dq, dk, dv
