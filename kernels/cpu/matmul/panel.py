"""The micro-kernel driver of `_gemm_outer`: one row panel of A against a run of B micro-panels, one k-slice,
with the outer-product micro-kernels of microkernel.py (and the copies of A they need)."""
from numba import njit

from ..microkernel import copy_a_w32, copy_a_w64, ukernel_w32e, ukernel_w32te, ukernel_w64e, ukernel_w64te


@njit(cache=True)
def _panel(kind, MRk, mr, kc, more, af, aoff, a_rs, a_ks, ap, Bp, boff0, Nb, bf, bfoff, b_ks, pack_b, NR, N,
           of, cbase, jc, jend):
    """One row panel (mr <= MRk rows starting at A offset `aoff`, output offset `cbase`) of `_gemm_outer`
    over the micro-panels j in [jc, jend) of one k-slice of length kc, with micro-kernel `kind`
    (0: 12-row 64-byte, 1: 6-row 32-byte, 2 and 3: their 4- and 2-row tail shapes):

        for j in range(jc, jend, NR): out[rows, j:j+NR] (=, first slice | +=) ukernel(A panel, B panel j)

    A is read in place when it is contiguous along k and the panel is full; otherwise it is copied into
    `ap` (MRk values per k, zero rows past mr). B comes from the packed Bp (panel j at boff0 + j*kc, or
    its only panel at boff0 when B is read in place) or in place from bf (bfoff + j + k*b_ks).
    Edge tiles (mr < MRk rows, or columns past N) are stored straight into C under the micro-kernel's row
    and column masks (its edge arguments). Over a copied A panel the micro-kernel
    prefetches B's rows policy.B_PREFETCH_ROWS k steps ahead (microkernel.py; a weight gradient's x read in
    place); over a row-major A read in place it unrolls policy.UNROLL_STRIDED k steps. The micro-kernels are
    inlined here: Numba's cache of this file does not see microkernel.py change (edit this file with it).
    """
    if mr == MRk and a_ks == 1:                  # row-major A: read in place
        asrc = af
        ars = a_rs
        aks = a_ks
        ao = aoff
    else:
        if mr == MRk and a_rs == 1 and kind < 2:  # fixed-width copies (vector moves)
            if kind == 0:
                copy_a_w64(kc, af, aoff, a_ks, ap, 0)
            else:
                copy_a_w32(kc, af, aoff, a_ks, ap, 0)
        elif a_ks == 1:                           # the last rows of a row-major A: rows outer
            z = ap.dtype.type(0)
            for rr in range(mr):
                s = aoff + rr * a_rs
                for k in range(kc):
                    ap[k * MRk + rr] = af[s + k]
            for rr in range(mr, MRk):
                for k in range(kc):
                    ap[k * MRk + rr] = z
        else:
            z = ap.dtype.type(0)
            for k in range(kc):
                s = aoff + k * a_ks
                d = k * MRk
                for rr in range(mr):
                    ap[d + rr] = af[s + rr * a_rs]
                for rr in range(mr, MRk):
                    ap[d + rr] = z
        asrc = ap
        ars = 1
        aks = MRk
        ao = 0
    for j in range(jc, jend, NR):
        nr = min(NR, N - j)
        if pack_b or nr < NR:
            bsrc = Bp
            bo = boff0 + (j if pack_b else 0) * kc
            bks = NR
        else:
            bsrc = bf
            bo = bfoff + j
            bks = b_ks
        if kind == 0:
            ukernel_w64e(kc, asrc, ao, ars, aks, bsrc, bo, bks, of, cbase + j, N, more, mr, nr)
        elif kind == 1:
            ukernel_w32e(kc, asrc, ao, ars, aks, bsrc, bo, bks, of, cbase + j, N, more, mr, nr)
        elif kind == 2:
            ukernel_w64te(kc, asrc, ao, ars, aks, bsrc, bo, bks, of, cbase + j, N, more, mr, nr)
        else:
            ukernel_w32te(kc, asrc, ao, ars, aks, bsrc, bo, bks, of, cbase + j, N, more, mr, nr)
