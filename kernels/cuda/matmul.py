"""Batched matrix products on a CUDA device: shared-memory tiles and a register-blocked thread tile.

Three public kernels with the meanings of kernels/cpu/matmul.py, each returning a new (B, M, N) device
array of the inputs' dtype:

    matmul_nn(a, b)  a (Ba, M, K), b (Bb, K, N)   out[p] = a[p]   @ b[p]
    matmul_nt(a, b)  a (Ba, M, K), b (Bb, N, K)   out[p] = a[p]   @ b[p].T    (dA = dC · Bᵀ)
    matmul_tn(a, b)  a (Ba, K, M), b (Bb, K, N)   out[p] = a[p].T @ b[p]      (dB = Aᵀ · dC)

Inputs are numba device arrays (host numpy arrays are copied to the device). Batch broadcast: each
operand's batch is 1 or B = max(Ba, Bb); out[p] reads a[p if Ba > 1 else 0] and b[p if Bb > 1 else 0].

Sizes: a block has T x T threads (`tile`=T, default TILE) and each thread computes R x R outputs
(`regs`=R, default REGS), so a block owns a BT x BT output tile, BT = T*R (64 by default), and walks k
in slices of T. Launch: a (ceil(N / BT), ceil(M / BT), min(B, 65535)) grid of (T, T) blocks (CUDA caps a
grid's z at 65535, so blocks loop over the batch in strides of the grid). Thread (tx, ty) owns the
outputs (row0 + ty + T*u, col0 + tx + T*w) for u, w < R: interleaved, so that a warp's stores are
contiguous along a row and its shared-memory reads hit distinct banks. Loop nest of one block:

    acc[u, w] = 0                                   # R x R, in registers (local array, constant indices)
    for k0 in range(0, K, T):
        As[k, i] = A[p][row0 + i, k0 + k]           # (T, BT) shared, zero outside the matrix
        Bs[k, j] = B[p][k0 + k, col0 + j]           # (T, BT) shared, zero outside the matrix
        syncthreads()
        for k in range(T):
            a_u = As[k, ty + T*u];  b_w = Bs[k, tx + T*w]      # R + R shared loads ...
            acc[u, w] += a_u * b_w                             # ... for R*R multiply-adds
        syncthreads()
    out[p, row0 + ty + T*u, col0 + tx + T*w] = acc[u, w]

Each of the T*T threads loads R elements of each tile; consecutive threads take consecutive elements
along the operand's contiguous axis (k for a and for b of matmul_nt, i for a of matmul_tn, j for b of
matmul_nn), so global reads coalesce whatever the transposition. Register blocking is what makes this
faster than one output per thread: every shared-memory value read feeds R multiply-adds instead of one.
Accumulation is in the inputs' dtype. Kernels are compiled per (dtype, transposition, T, R) by
`_kernel`, since shared and local arrays need their dtype and size at compile time.
"""
import functools

import numba
import numpy as np
from numba import cuda

from .device import as_device

# TILE: threads per block edge (TILE * TILE threads), and the k-slice; REGS: outputs per thread along each edge:
# a block computes a (TILE*REGS)^2 output tile (policy.py)
from .policy import REGS, TILE
MAX_GRID_Z = 65535  # CUDA's limit on gridDim.z; larger batches loop


@functools.lru_cache(maxsize=None)
def _kernel(dtype, trans_a, trans_b, T, R):
    """The kernel for one dtype, transposition and size; trans_a: a is (Ba, K, M); trans_b: b is (Bb, N, K)."""
    nbt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    BT = T * R           # the block's output tile edge; shared and local shapes are compile-time constants
    NT = T * T           # threads per block

    @cuda.jit
    def gemm(a, b, out, K):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        t = ty * T + tx
        row0 = cuda.blockIdx.y * BT
        col0 = cuda.blockIdx.x * BT
        M = out.shape[1]
        N = out.shape[2]
        As = cuda.shared.array((T, BT), nbt)   # As[k, i]
        Bs = cuda.shared.array((T, BT), nbt)   # Bs[k, j]
        acc = cuda.local.array((R, R), nbt)
        a_reg = cuda.local.array(R, nbt)
        b_reg = cuda.local.array(R, nbt)
        for p in range(cuda.blockIdx.z, out.shape[0], cuda.gridDim.z):  # batches past the grid's 65535
            pa = p if a.shape[0] > 1 else 0
            pb = p if b.shape[0] > 1 else 0
            for u in range(R):
                for w in range(R):
                    acc[u, w] = zero
            for k0 in range(0, K, T):
                for r in range(R):                    # R elements of each tile per thread, coalesced
                    e = t + r * NT
                    if trans_a:                       # a (Ba, K, M): consecutive e walk i
                        kk = e // BT
                        ii = e - kk * BT
                        i = row0 + ii
                        k = k0 + kk
                        As[kk, ii] = a[pa, k, i] if (i < M and k < K) else zero
                    else:                             # a (Ba, M, K): consecutive e walk k
                        ii = e // T
                        kk = e - ii * T
                        i = row0 + ii
                        k = k0 + kk
                        As[kk, ii] = a[pa, i, k] if (i < M and k < K) else zero
                    if trans_b:                       # b (Bb, N, K): consecutive e walk k
                        jj = e // T
                        kk = e - jj * T
                        j = col0 + jj
                        k = k0 + kk
                        Bs[kk, jj] = b[pb, j, k] if (j < N and k < K) else zero
                    else:                             # b (Bb, K, N): consecutive e walk j
                        kk = e // BT
                        jj = e - kk * BT
                        j = col0 + jj
                        k = k0 + kk
                        Bs[kk, jj] = b[pb, k, j] if (j < N and k < K) else zero
                cuda.syncthreads()
                for kk in range(T):
                    for u in range(R):
                        a_reg[u] = As[kk, ty + T * u]
                    for w in range(R):
                        b_reg[w] = Bs[kk, tx + T * w]
                    for u in range(R):
                        for w in range(R):
                            acc[u, w] += a_reg[u] * b_reg[w]
                cuda.syncthreads()
            for u in range(R):
                i = row0 + ty + T * u
                if i < M:
                    for w in range(R):
                        j = col0 + tx + T * w
                        if j < N:
                            out[p, i, j] = acc[u, w]

    return gemm


def _launch(name, a, b, trans_a, trans_b, tile, regs):
    a = as_device(a)
    b = as_device(b)
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"{name}: expected 3-D operands, got {a.shape} and {b.shape}")
    dt = np.dtype(a.dtype)
    if dt not in (np.float32, np.float64) or np.dtype(b.dtype) != dt:
        raise TypeError(f"{name}: operands must both be float32 or both float64, got {a.dtype} and {b.dtype}")
    Ba, M, K = (a.shape[0], a.shape[2], a.shape[1]) if trans_a else a.shape
    Bb, N, Kb = b.shape if trans_b else (b.shape[0], b.shape[2], b.shape[1])
    if K != Kb:
        raise ValueError(f"{name}: {a.shape} x {b.shape}: inner dimensions {K} and {Kb} differ")
    if Ba != Bb and 1 not in (Ba, Bb):
        raise ValueError(f"{name}: {a.shape} x {b.shape}: batch sizes {Ba} and {Bb} do not broadcast")
    B = max(Ba, Bb)
    out = cuda.device_array((B, M, N), dtype=dt)
    if B == 0 or M == 0 or N == 0:
        return out
    edge = tile * regs
    grid = ((N + edge - 1) // edge, (M + edge - 1) // edge, min(B, MAX_GRID_Z))
    _kernel(dt, trans_a, trans_b, tile, regs)[grid, (tile, tile)](a, b, out, K)
    return out


def matmul_nn(a, b, tile=TILE, regs=REGS):
    """out[p] = a[p] @ b[p]: a (Ba, M, K), b (Bb, K, N) -> (max(Ba, Bb), M, N) device array."""
    return _launch("matmul_nn", a, b, False, False, tile, regs)


def matmul_nt(a, b, tile=TILE, regs=REGS):
    """out[p] = a[p] @ b[p].T: a (Ba, M, K), b (Bb, N, K) -> (max(Ba, Bb), M, N) device array."""
    return _launch("matmul_nt", a, b, False, True, tile, regs)


def matmul_tn(a, b, tile=TILE, regs=REGS):
    """out[p] = a[p].T @ b[p]: a (Ba, K, M), b (Bb, K, N) -> (max(Ba, Bb), M, N) device array."""
    return _launch("matmul_tn", a, b, True, False, tile, regs)
