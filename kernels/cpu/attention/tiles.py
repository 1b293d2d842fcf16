"""Tile sizes and the register-blocked tile products of the CPU attention kernels.

``BLOCK_Q`` query rows x ``BLOCK_K`` keys per tile (64 x 64, measured best of 32/64/128 on a 2-core AVX2 box);
``ROWS_MAX_L``: a forward with at most this many query rows takes one work item per row (forward._forward_rows).

On AVX-512 / AVX2 + FMA hosts (``KERNEL``, from microkernel.host_kernel; TINYATTN_MATMUL_KERNEL overrides it)
the ``_mk`` kernels run every tile product through ``_mm`` below; 'portable' runs the plain loops.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from ..microkernel import _make_ukernel, host_kernel, ukernel_w32, ukernel_w32t, ukernel_w64, ukernel_w64t
from ..policy import MICRO_ROWS_W32, MICRO_ROWS_W64, ROWS_MAX_L, TAIL_ROWS_W32, TAIL_ROWS_W64  # noqa: F401

BLOCK_Q = 64  # query rows per tile
BLOCK_K = 64  # keys per tile
# ROWS_MAX_L (forward with at most this many query rows: one work item per row, _forward_rows) and the
# micro-kernel shapes (MICRO_ROWS_*, TAIL_ROWS_*: rows per register tile) are kernels/cpu/policy.py's

# Same loop nests and math as _forward / _backward; only the tile products differ. Each product
#     C[r, j] (+)= sum_{t < kc} A[r, t] B[t, j]        r < M, j < N (N = BLOCK_Q or BLOCK_K)
# runs as MR x NR register tiles of the outer-product micro-kernel (12 x 2 vectors on AVX-512, 6 x 2 on
# AVX2): per t, NR values of B are loaded as vectors and MR values of A broadcast into them, so many
# query (or key) rows share each load -- the portable kernels' one-row axpy loops reload their operand row for every
# row of the tile. A and B are read in place through strides (q, k, v, dout or the local tiles).
_uk1_w64 = _make_ukernel(1, 64)   # last rows of a product when M is not a multiple of the tail shape
_uk1_w32 = _make_ukernel(1, 32)
KERNEL = host_kernel()            # 'avx512' | 'avx2' -> the _mk kernels; 'portable' -> _forward, _backward


def _mm(tag, M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
    """C[r, j] = (or +=, acc) sum_{t < kc} A[r, t] B[t, j] for r < M, j < N (N a multiple of NR), with
    A[r, t] = a[a_off + r a_rs + t a_ks], B[t, j] = b[b_off + t b_ks + j], C[r, j] = c[c_off + r ldc + j]
    (flat offsets into C-contiguous arrays: the local tiles, or q, k, v, dout's flat views).  Rows in MR-row
    tiles, then tail tiles, then single rows.
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
        kind = 0 if M - r >= MICRO_ROWS_W64 else (1 if M - r >= TAIL_ROWS_W64 else 2)
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
        r += MICRO_ROWS_W64 if kind == 0 else (TAIL_ROWS_W64 if kind == 1 else 1)


@njit(cache=True)
def _mm_w32(M, N, kc, a, a_off, a_rs, a_ks, b, b_off, b_ks, c, c_off, ldc, acc):
    NR = 2 * 32 // c.itemsize
    r = 0
    while r < M:
        kind = 0 if M - r >= MICRO_ROWS_W32 else (1 if M - r >= TAIL_ROWS_W32 else 2)
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
        r += MICRO_ROWS_W32 if kind == 0 else (TAIL_ROWS_W32 if kind == 1 else 1)


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


