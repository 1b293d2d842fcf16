"""Packing for the matmul kernels: copying an operand into the layout a micro-kernel streams.

    _pack(...)          rows of A or B, each contiguous along k, zero rows to a multiple of the tile
                        (the portable kernel `_gemm`, and `_small`'s k-major copy of B)
    _pack_b_panel(...)  one NR-column micro-panel of B, k-major, per k-slice (the outer-product kernel
                        `_gemm_outer`), with the register transposes of microkernel.py
"""
from numba import njit

from ..microkernel import copy_b_w32, copy_b_w64, transpose_w32, transpose_w64


@njit(cache=True)
def _pack(src, off, rs, ks, rows, kc, dst, rows_pad):
    """dst[r*kc + k] = src[off + r*rs + k*ks] for r < rows, k < kc; zero for rows <= r < rows_pad.

    Loop nest: if the source is contiguous along k (ks == 1), rows outer and k inner (both streams
    contiguous). Otherwise (a transposed source) it is a tiled transpose: 32 x 32 tiles of (r, k),
    r then k inside a tile, so the writes are contiguous runs and the 32 source lines stay in L1.
    """
    if ks == 1:
        for r in range(rows):
            s = off + r * rs
            d = r * kc
            for k in range(kc):
                dst[d + k] = src[s + k]
    else:
        for r0 in range(0, rows, 32):
            r1 = min(r0 + 32, rows)
            for k0 in range(0, kc, 32):
                k1 = min(k0 + 32, kc)
                for r in range(r0, r1):
                    s = off + r * rs
                    d = r * kc
                    for k in range(k0, k1):
                        dst[d + k] = src[s + k * ks]
    z = dst.dtype.type(0)
    for r in range(rows, rows_pad):
        for k in range(kc):
            dst[r * kc + k] = z


@njit(cache=True)
def _pack_b_panel(bf, off, rs, ks, N, K, KC, NR, q, dst, d0, Np, dq, wide):
    """Pack micro-panel q (columns q*NR ..) of B for every k-slice, as panel dq of a slice of Np columns:
    dst[d0 + k0*Np + dq*NR*kc + k*NR + c] = B[q*NR + c, k0 + k] = bf[off + (q*NR + c)*rs + (k0 + k)*ks]
    for columns q*NR + c < N. The columns past N are left unspecified: the micro-kernel computes them in lanes
    of their own and never stores them (its column mask), so a full-width copy may fill them with whatever
    follows the row in memory.

    Loop nest: for each k-slice: if B is contiguous along j (rs == 1): fixed-width row copies (vector moves:
    NR values from each row start, while that stays inside bf; a run-time width stays scalar), scalar rows
    for the rest; else (contiguous along k, a transpose): blocks of V = NR/2 columns x V k transposed in
    registers (microkernel.transpose_*: a scalar transposing copy took ~0.6 ns per element), the remainder
    c outer, k inner, so the reads are the contiguous stream.
    """
    j0 = q * NR
    nc = min(NR, N - j0)
    for k0 in range(0, K, KC):
        kc = min(KC, K - k0)
        base = d0 + k0 * Np + dq * NR * kc
        if rs == 1:
            s0 = off + j0 + k0 * ks
            room = bf.size - NR - s0          # rows k whose NR values from s0 + k*ks lie inside bf: k*ks <= room
            kw = kc if nc == NR else (0 if room < 0 else min(kc, room // max(ks, 1) + 1))
            if wide:
                copy_b_w64(kw, bf, s0, ks, dst, base)
            else:
                copy_b_w32(kw, bf, s0, ks, dst, base)
            for k in range(kw, kc):           # (the last rows of bf, when the panel is partial)
                s = s0 + k * ks
                d = base + k * NR
                for c in range(nc):
                    dst[d + c] = bf[s + c]
        else:
            kv = 0
            V = NR // 2
            if ks == 1 and nc >= V:           # W in x @ W^T: V x V blocks transposed in registers
                kv = kc - kc % V
                for kb in range(0, kv, V):
                    for c0 in range(0, nc - nc % V, V):
                        if wide:
                            transpose_w64(bf, off + (j0 + c0) * rs + k0 + kb, rs, dst, base + kb * NR + c0, NR)
                        else:
                            transpose_w32(bf, off + (j0 + c0) * rs + k0 + kb, rs, dst, base + kb * NR + c0, NR)
            cv = nc - nc % V if kv else 0     # columns the blocks covered for k < kv
            for c in range(nc):               # the rest (any strides, the last k and columns): one by one
                s = off + (j0 + c) * rs + k0 * ks
                for k in range(kv if c < cv else 0, kc):
                    dst[base + k * NR + c] = bf[s + k * ks]
