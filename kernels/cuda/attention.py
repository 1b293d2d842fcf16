"""Fused scaled-dot-product attention on a CUDA device (no bias, no window): the meaning of
kernels/cpu/attention.py with has_bias=False, window=-1. Never an L x S matrix in global memory.

Per batch-head p (the leading axis of every array):

    S = scale * Q K^T                 # (L, S), one score at a time, never stored
    S_ij = -inf where causal and j > i  (top-left aligned, PyTorch's is_causal)
    P = softmax(S, dim=-1);  O = P V;  lse_i = log sum_j exp(S_ij)

Backward, P recomputed as P_ij = exp(S_ij - lse_i):

    D_i = rowsum(dO_i * O_i);  dP = dO V^T;  dS = P * (dP - D)
    dQ = scale * dS K;  dK = scale * dS^T Q;  dV = P^T dO

Conventions: q (BH, L, E), k (BH, S, E), v (BH, S, Ev), all float32 or all float64 (numba device arrays;
host arrays are copied); results are device arrays in that dtype, lse (BH, L) included, and arithmetic
is done in that dtype. A fully masked row (S = 0) gets output 0 and lse = -inf, and contributes 0 to
every gradient.

Launches (ROWS threads per block, one thread per row, no shared memory, no syncthreads):
* forward: grid (ceil(L / ROWS), BH); the block is one (batch-head, query tile), thread i one query row.
  Online softmax over key tiles of BLOCK_K keys, the output row accumulated in place in `out`:

      m = -inf, l = 0, O_i = 0
      for each key tile j0 (keys j < S, and j <= i if causal):
          mt = max(m, max_j s_ij);  c = mt (0 if mt = -inf);  alpha = exp(m - c)
          l = alpha l + sum_j exp(s_ij - c);  O_i = alpha O_i + sum_j exp(s_ij - c) V_j;  m = mt
      O_i /= l;  lse_i = m + log l              (l = 0: O_i = 0, lse_i = -inf)

  (s_ij = scale q_i . k_j is computed twice per tile, once for the tile max, once for the update.)
* backward, three kernels, each thread writing only its own rows, so nothing races:
      delta:  thread (p, i):  D_i = dO_i . O_i
      dq:     thread (p, i):  dQ_i = scale sum_j dS_ij K_j             over keys j visible to i
      dkdv:   thread (p, j):  dV_j = sum_i P_ij dO_i;  dK_j = scale sum_i dS_ij Q_i   over queries that see j

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
    def score(q, k, p, i, j, scale):
        s = zero
        for e in range(q.shape[2]):
            s += q[p, i, e] * k[p, j, e]
        return s * scale

    @cuda.jit
    def forward(q, k, v, causal, scale, out, lse):
        i = cuda.blockIdx.x * rows + cuda.threadIdx.x
        p = cuda.blockIdx.y
        L = q.shape[1]
        if i >= L:
            return
        S = k.shape[1]
        Ev = v.shape[2]
        jhi = min(S, i + 1) if causal else S
        for e in range(Ev):
            out[p, i, e] = zero
        m = neg_inf
        l = zero
        for j0 in range(0, jhi, block_k):
            j1 = min(j0 + block_k, jhi)
            mt = m
            for j in range(j0, j1):
                s = score(q, k, p, i, j, scale)
                if s > mt:
                    mt = s
            c = mt if mt != neg_inf else zero
            alpha = math.exp(m - c)
            l *= alpha
            for e in range(Ev):
                out[p, i, e] *= alpha
            for j in range(j0, j1):
                pij = math.exp(score(q, k, p, i, j, scale) - c)
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
    def dq_kernel(q, k, v, causal, scale, lse, d, dout, dq):
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
        jhi = min(k.shape[1], i + 1) if causal else k.shape[1]
        for j in range(jhi):
            pij = math.exp(score(q, k, p, i, j, scale) - li)
            dp = zero
            for e in range(Ev):
                dp += dout[p, i, e] * v[p, j, e]
            ds = scale * pij * (dp - d[p, i])
            for e in range(E):
                dq[p, i, e] += ds * k[p, j, e]

    @cuda.jit
    def dkdv_kernel(q, k, v, causal, scale, lse, d, dout, dk, dv):
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
        ilo = j if causal else 0
        for i in range(ilo, q.shape[1]):
            li = lse[p, i]
            if li == neg_inf:
                continue
            pij = math.exp(score(q, k, p, i, j, scale) - li)
            dp = zero
            for e in range(Ev):
                dp += dout[p, i, e] * v[p, j, e]
                dv[p, j, e] += pij * dout[p, i, e]
            ds = scale * pij * (dp - d[p, i])
            for e in range(E):
                dk[p, j, e] += ds * q[p, i, e]

    return forward, delta, dq_kernel, dkdv_kernel


def _prepare(name, q, k, v):
    q, k, v = (as_device(a) for a in (q, k, v))
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError(f"{name}: expected 3-D q, k, v, got {q.shape}, {k.shape}, {v.shape}")
    dt = np.dtype(q.dtype)
    if dt not in (np.float32, np.float64) or np.dtype(k.dtype) != dt or np.dtype(v.dtype) != dt:
        raise TypeError(f"{name}: q, k, v must all be float32 or all float64, got {q.dtype}, {k.dtype}, {v.dtype}")
    BH, L, E = q.shape
    S = k.shape[1]
    if k.shape != (BH, S, E) or v.shape[:2] != (BH, S):
        raise ValueError(f"{name}: q {q.shape}, k {k.shape}, v {v.shape} do not fit (BH, L, E), (BH, S, E), (BH, S, Ev)")
    return q, k, v, dt


def attention_forward(q, k, v, causal, scale, rows=ROWS, block_k=BLOCK_K):
    """Fused attention forward: q (BH, L, E), k (BH, S, E), v (BH, S, Ev) -> (out (BH, L, Ev), lse (BH, L))."""
    q, k, v, dt = _prepare("attention_forward", q, k, v)
    BH, L, _ = q.shape
    out = cuda.device_array((BH, L, v.shape[2]), dtype=dt)
    lse = cuda.device_array((BH, L), dtype=dt)
    if BH and L:
        forward = _kernels(dt, rows, block_k)[0]
        forward[((L + rows - 1) // rows, BH), rows](q, k, v, bool(causal), dt.type(scale), out, lse)
    return out, lse


def attention_backward(q, k, v, causal, scale, out, lse, dout, rows=ROWS):
    """Fused attention backward from the forward's out and lse: returns (dq, dk, dv) device arrays."""
    q, k, v, dt = _prepare("attention_backward", q, k, v)
    out, lse, dout = (as_device(a) for a in (out, lse, dout))
    BH, L, E = q.shape
    S = k.shape[1]
    if out.shape != (BH, L, v.shape[2]) or dout.shape != out.shape or lse.shape != (BH, L):
        raise ValueError(f"attention_backward: out {out.shape}, lse {lse.shape}, dout {dout.shape} do not fit q {q.shape}, v {v.shape}")
    if any(np.dtype(a.dtype) != dt for a in (out, lse, dout)):
        raise TypeError(f"attention_backward: out, lse, dout must be {dt}")
    _, delta, dq_kernel, dkdv_kernel = _kernels(dt, rows, BLOCK_K)
    dq = cuda.device_array(q.shape, dtype=dt)
    dk = cuda.device_array(k.shape, dtype=dt)
    dv = cuda.device_array(v.shape, dtype=dt)
    causal = bool(causal)
    scale = dt.type(scale)
    if BH and L:
        d = cuda.device_array((BH, L), dtype=dt)
        grid = ((L + rows - 1) // rows, BH)
        delta[grid, rows](out, dout, d)
        dq_kernel[grid, rows](q, k, v, causal, scale, lse, d, dout, dq)
    if BH and S:
        if not L:
            d = cuda.device_array((BH, 0), dtype=dt)
        dkdv_kernel[((S + rows - 1) // rows, BH), rows](q, k, v, causal, scale, lse, d, dout, dk, dv)
    return dq, dk, dv
