"""Batched matrix products on a CUDA device: shared-memory tiling, one thread per output element.

Three public kernels with the meanings of kernels/cpu/matmul.py, each returning a new (B, M, N) device
array of the inputs' dtype (`tile` = the tile edge, default TILE; the simulator tests use small ones):

    matmul_nn(a, b, tile=TILE)  a (Ba, M, K), b (Bb, K, N)   out[p] = a[p]   @ b[p]
    matmul_nt(a, b, tile=TILE)  a (Ba, M, K), b (Bb, N, K)   out[p] = a[p]   @ b[p].T    (dA = dC · Bᵀ)
    matmul_tn(a, b, tile=TILE)  a (Ba, K, M), b (Bb, K, N)   out[p] = a[p].T @ b[p]      (dB = Aᵀ · dC)

Inputs are numba device arrays (host numpy arrays are copied to the device). Batch broadcast: each
operand's batch is 1 or B = max(Ba, Bb); out[p] reads a[p if Ba > 1 else 0] and b[p if Bb > 1 else 0].

Launch: a (ceil(N / TILE), ceil(M / TILE), B) grid of (TILE, TILE) blocks; block (bx, by, p) owns the
output tile out[p, by*TILE : +TILE, bx*TILE : +TILE] and thread (tx, ty) its element (by*TILE + ty,
bx*TILE + tx). Loop nest of one block:

    acc = 0
    for k0 in range(0, K, TILE):
        As[i, k] = A[p][row0 + i, k0 + k]    # (TILE, TILE) shared, zero outside the matrix
        Bs[k, j] = B[p][k0 + k, col0 + j]    # (TILE, TILE) shared, zero outside the matrix
        syncthreads()
        acc += sum_k As[ty, k] * Bs[k, tx]
        syncthreads()
    out[p, row0 + ty, col0 + tx] = acc

Each thread loads one element of each tile; for a transposed operand it loads the transposed element,
so that threadIdx.x always walks the operand's contiguous axis (coalesced global reads). The shared
tiles have one padding column (TILE + 1) against bank conflicts on the transposed stores. Accumulation
is in the inputs' dtype. Kernels are compiled per (dtype, transposition) by `_kernel`, since a shared
array needs its dtype at compile time.
"""
import functools

import numba
import numpy as np
from numba import cuda

from .device import as_device

TILE = 16  # default output tile edge = threads per block edge (TILE * TILE threads per block)


@functools.lru_cache(maxsize=None)
def _kernel(dtype, trans_a, trans_b, TILE):
    """The tiled kernel for one dtype and tile edge; trans_a: a is (Ba, K, M); trans_b: b is (Bb, N, K)."""
    nbt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    padded = TILE + 1  # shared-array shapes must be compile-time constants; `TILE + 1` in the kernel is not

    @cuda.jit
    def gemm(a, b, out, K):
        # out (B, M, N); A[p][i, k] and B[p][k, j] read from a, b per the transpositions above
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        p = cuda.blockIdx.z
        row0 = cuda.blockIdx.y * TILE
        col0 = cuda.blockIdx.x * TILE
        pa = p if a.shape[0] > 1 else 0
        pb = p if b.shape[0] > 1 else 0
        M = out.shape[1]
        N = out.shape[2]
        As = cuda.shared.array((TILE, padded), nbt)   # As[i, k]
        Bs = cuda.shared.array((TILE, padded), nbt)   # Bs[k, j]
        acc = zero
        for k0 in range(0, K, TILE):
            if trans_a:      # a (Ba, K, M): tx walks i
                i = row0 + tx
                k = k0 + ty
                As[tx, ty] = a[pa, k, i] if (i < M and k < K) else zero
            else:            # a (Ba, M, K): tx walks k
                i = row0 + ty
                k = k0 + tx
                As[ty, tx] = a[pa, i, k] if (i < M and k < K) else zero
            if trans_b:      # b (Bb, N, K): tx walks k
                j = col0 + ty
                k = k0 + tx
                Bs[tx, ty] = b[pb, j, k] if (j < N and k < K) else zero
            else:            # b (Bb, K, N): tx walks j
                j = col0 + tx
                k = k0 + ty
                Bs[ty, tx] = b[pb, k, j] if (j < N and k < K) else zero
            cuda.syncthreads()
            for kk in range(TILE):
                acc += As[ty, kk] * Bs[kk, tx]
            cuda.syncthreads()
        r = row0 + ty
        c = col0 + tx
        if r < M and c < N:
            out[p, r, c] = acc

    return gemm


def _launch(name, a, b, trans_a, trans_b, tile):
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
    grid = ((N + tile - 1) // tile, (M + tile - 1) // tile, B)
    _kernel(dt, trans_a, trans_b, tile)[grid, (tile, tile)](a, b, out, K)
    return out


def matmul_nn(a, b, tile=TILE):
    """out[p] = a[p] @ b[p]: a (Ba, M, K), b (Bb, K, N) -> (max(Ba, Bb), M, N) device array."""
    return _launch("matmul_nn", a, b, False, False, tile)


def matmul_nt(a, b, tile=TILE):
    """out[p] = a[p] @ b[p].T: a (Ba, M, K), b (Bb, N, K) -> (max(Ba, Bb), M, N) device array."""
    return _launch("matmul_nt", a, b, False, True, tile)


def matmul_tn(a, b, tile=TILE):
    """out[p] = a[p].T @ b[p]: a (Ba, K, M), b (Bb, K, N) -> (max(Ba, Bb), M, N) device array."""
    return _launch("matmul_tn", a, b, True, False, tile)
