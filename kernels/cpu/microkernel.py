"""The outer-product matmul micro-kernel, emitted as LLVM vector IR, and the host-feature choice.

    ukernel_w64 / ukernel_w32(kc, a, a_off, a_rs, a_ks, bp, b_off, c, c_off, ldc, accumulate)

computes one MR x NR tile of C from a k-slice of length kc:

    acc[r, j] = sum_{k < kc} A[r, k] * Bp[k, j]           r < MR, j < NR
    C[r, j]   = acc[r, j]            (accumulate false)    C[r, j] = c[c_off + r*ldc + j]
    C[r, j]  += acc[r, j]            (accumulate true)

    A[r, k]  = a[a_off + r*a_rs + k*a_ks]     any strides: a row-major block (a_ks = 1) is read in place,
                                              a packed or transposed one through a_rs = 1
    Bp[k, j] = bp[b_off + k*NR + j]           a packed micro-panel: NR contiguous values per k

Loop nest, as emitted: prefetch the C tile; for k < kc: load the NR values Bp[k, :] as NV = 2 vectors;
for r < MR: broadcast A[r, k] and do NV vector multiply-adds into the accumulators acc[r, :]. The MR*NV
accumulators are SSA values (loop phis), so LLVM keeps them in registers: no horizontal sums, and each
output is one sequential sum over k (no reassociation, so float64 stays as exact as a plain dot
product). The k loop is emitted twice: for a_rs == 1 (a packed or copied panel) the MR values of A[:, k]
are at constant offsets from one pointer; for a row-major A read in place, at multiples of a_rs (LLVM
would walk them with a chain of MR dependent adds per k step, 12 cycles, as long as the step's 24 FMAs take:
so when a_ks == 1 it keeps one pointer per group of 4 rows, advanced through an empty inline asm that LLVM
cannot see through, and unrolls UNROLL_STRIDED k steps at constant offsets, single steps for the rest).
The first loop also prefetches B's row B_PREFETCH_ROWS k steps ahead (policy.py): that loop serves a
copied A (dy^T in a weight gradient dy^T @ x), whose B is x read in place, rows in_features apart; the
hardware prefetchers do not follow rows 2 KiB apart across pages, so a cold x (a saved activation) was
waited for row by row.

Two shapes, one per register file (float32 / float64 lanes in brackets):
    ukernel_w64: 64-byte vectors (AVX-512, 32 registers):  MR = 12, NR = 2 x 16 (8)   24 accumulators
    ukernel_w32: 32-byte vectors (AVX2 + FMA, 16 registers): MR = 6, NR = 2 x 8 (4)   12 accumulators

Why emitted IR: Numba leaves LLVM's SLP vectoriser off (`numba.core.config.SLP_VECTORIZE`), so scalar
accumulators stay scalar, and turning it on is process-wide and not part of Numba's cache key. Vector
types in the IR need neither: every build, cached or not, is the vector one. `llvm.fmuladd` becomes an
FMA where the target has one and a multiply + add elsewhere, so the code is correct on any CPU; which
shape runs (or the portable dot-product kernel in matmul.py) is chosen from the host's features by
`host_kernel()`, since a 64-byte shape on a 32-byte machine would be split in two and spill.
"""
import os

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .policy import B_PREFETCH_ROWS, MICRO_ROWS_W32, MICRO_ROWS_W64, TAIL_ROWS_W32, TAIL_ROWS_W64, UNROLL_STRIDED

NV = 2     # vectors per micro-tile row (NR = NV * lanes)


def _int64_args(context, builder, sig, args):
    """An intrinsic's arguments with every integer widened to int64 (arrays and booleans as they are)."""
    return [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, sig.args)]


def _make_ukernel(MR, vbytes, edges=False):
    """An intrinsic for an MR x (NV * vbytes / itemsize) tile with vbytes-wide vectors (module doc).

    edges=True: two more arguments (mr, nr), and only C[r, j] for r < mr, j < nr is stored (or added to):
    the rows past mr are skipped and the columns past nr masked (llvm.masked.load / store: vmovups with a
    mask register on AVX-512, vmaskmovps on AVX2), so an edge tile of a product needs no scratch tile and
    no scalar copy of it. The k loop still computes the whole tile: A's rows past mr and B's columns past
    nr must be readable (a zero-padded copy or packed panel)."""

    def typer(kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accumulate, *edge):
        arrays = (a, bp, c)
        if not all(isinstance(x, types.Array) for x in arrays):
            return None
        if a.dtype not in (types.float32, types.float64) or not (a.dtype == bp.dtype == c.dtype):
            return None
        ints = (kc, a_off, a_rs, a_ks, b_off, b_ks, c_off, ldc) + tuple(edge)
        if not all(isinstance(x, types.Integer) for x in ints):
            return None
        sig = types.void(kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accumulate, *edge)

        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            tys = sig.args
            kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accf, *mr_nr = _int64_args(
                context, builder, sig, args)
            dt = context.get_data_type(tys[1].dtype)
            isz = context.get_abi_sizeof(dt)
            W = vbytes // isz                    # lanes per vector
            NR = NV * W
            vt = ir.VectorType(dt, W)
            vptr = vt.as_pointer()
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                "llvm.fmuladd.v%d%s" % (W, "f32" if isz == 4 else "f64"))
            pa = builder.gep(context.make_array(tys[1])(context, builder, a).data, [a_off])
            pb = builder.gep(context.make_array(tys[5])(context, builder, bp).data, [b_off])
            pc = builder.gep(context.make_array(tys[8])(context, builder, c).data, [c_off])
            zero = ir.Constant(vt, [ir.Constant(dt, 0.0)] * W)
            undef = ir.Constant(vt, ir.Undefined)
            splat = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)
            lane0 = ir.Constant(ir.IntType(32), 0)

            # prefetch the C tile (for writing) while the k loop runs: in a large product C lives
            # beyond L2, and its rows would otherwise be waited for at the end of every tile
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            prefetch = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
            for r in range(MR):
                crow = builder.gep(pc, [builder.mul(ldc, ir.Constant(i64, r))])
                for off in range(0, NR * isz, 64):
                    line = builder.gep(builder.bitcast(crow, i8p), [ir.Constant(i64, off)])
                    builder.call(prefetch, [line, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            pre = builder.block
            packed = builder.append_basic_block("ukernel.k.packed")
            strided = builder.append_basic_block("ukernel.k.strided")
            choose = builder.append_basic_block("ukernel.choose")
            done = builder.append_basic_block("ukernel.store")
            builder.cbranch(builder.icmp_signed(">", kc, ir.Constant(i64, 0)), choose, done)
            builder.position_at_end(choose)
            builder.cbranch(builder.icmp_signed("==", a_rs, ir.Constant(i64, 1)), packed, strided)

            def k_loop(block, a_addr, pf, incoming=None):
                """for k < kc: acc[r, v] = fmuladd(A[r, k], Bp[k, v*W:(v+1)*W], acc[r, v]) in `block`;
                a_addr(k) -> the MR addresses of A[:, k]; entered from `incoming` (block, k, accumulators),
                default `choose` with k = 0 and zeros. Returns (last block, final accumulators)."""
                builder.position_at_end(block)
                k = builder.phi(i64)
                acc = []
                for _ in range(MR * NV):
                    acc.append(builder.phi(vt))
                for blk, k_in, acc_in in incoming or [(choose, ir.Constant(i64, 0), [zero] * (MR * NV))]:
                    k.add_incoming(k_in, blk)
                    for ph, a_in in zip(acc, acc_in):
                        ph.add_incoming(a_in, blk)
                bk = builder.gep(pb, [builder.mul(k, b_ks)])
                bv = [builder.load(builder.bitcast(builder.gep(bk, [ir.Constant(i64, v * W)]), vptr), align=isz)
                      for v in range(NV)]
                if pf:     # prefetch B's row pf steps ahead (module doc: a B read in place from memory)
                    ahead = builder.bitcast(builder.gep(bk, [builder.mul(b_ks, ir.Constant(i64, pf))]), i8p)
                    for off in range(0, NR * isz, 64):
                        builder.call(prefetch, [builder.gep(ahead, [ir.Constant(i64, off)]), ir.Constant(i32, 0),
                                                ir.Constant(i32, 3), ir.Constant(i32, 1)])
                new = []
                for r, addr in enumerate(a_addr(k)):
                    s = builder.load(addr)
                    sv = builder.shuffle_vector(builder.insert_element(undef, s, lane0), undef, splat)
                    for v in range(NV):
                        new.append(builder.call(fma, [sv, bv[v], acc[r * NV + v]]))
                k1 = builder.add(k, ir.Constant(i64, 1))
                last = builder.block
                k.add_incoming(k1, last)
                for ph, nv in zip(acc, new):
                    ph.add_incoming(nv, last)
                builder.cbranch(builder.icmp_signed("<", k1, kc), block, done)
                return last, new

            # A rows adjacent (a packed or copied panel, a_rs == 1): the MR values of A[:, k] are at constant
            # offsets from one pointer. Otherwise (a row-major A read in place) at multiples of a_rs.
            def packed_addr(k):
                base = builder.gep(pa, [builder.mul(k, a_ks)])
                return [builder.gep(base, [ir.Constant(i64, r)]) for r in range(MR)]

            def strided_addr(k):
                base = builder.gep(pa, [builder.mul(k, a_ks)])
                return [builder.gep(base, [builder.mul(a_rs, ir.Constant(i64, r))]) for r in range(MR)]

            ends = [k_loop(packed, packed_addr, B_PREFETCH_ROWS)]
            # strided, a_ks == 1 and kc >= U: a main loop of U k steps with one pointer per group of 4 rows
            # (A[4g, k]), advanced by an increment LLVM cannot see through (an empty inline asm), so that it
            # does not walk all MR rows with one register (a chain of MR dependent adds per k step); then
            # single steps (`rest`) for the last kc % U steps, or for every step of any other layout
            U = UNROLL_STRIDED
            main = builder.append_basic_block("ukernel.k.strided.main")
            check = builder.append_basic_block("ukernel.k.strided.check")
            rest = builder.append_basic_block("ukernel.k.strided.rest")
            builder.position_at_end(strided)
            G = (MR + 3) // 4
            starts = [builder.gep(pa, [builder.mul(a_rs, ir.Constant(i64, 4 * g))]) for g in range(G)]
            rows3 = builder.mul(a_rs, ir.Constant(i64, 3))
            fast = builder.and_(builder.icmp_signed(">=", kc, ir.Constant(i64, U)),
                                builder.icmp_signed("==", a_ks, ir.Constant(i64, 1)))
            builder.cbranch(fast, main, check)
            builder.position_at_end(main)
            k = builder.phi(i64)
            k.add_incoming(ir.Constant(i64, 0), strided)
            acc = []
            for _ in range(MR * NV):
                ph = builder.phi(vt)
                ph.add_incoming(zero, strided)
                acc.append(ph)
            gp = []
            for g in range(G):
                ph = builder.phi(pa.type)
                ph.add_incoming(starts[g], strided)
                gp.append(ph)
            acc_phis = acc
            for u in range(U):
                bk = builder.gep(pb, [builder.mul(builder.add(k, ir.Constant(i64, u)), b_ks)])
                bv = [builder.load(builder.bitcast(builder.gep(bk, [ir.Constant(i64, v * W)]), vptr), align=isz)
                      for v in range(NV)]
                new = []
                for r in range(MR):
                    g, j = divmod(r, 4)
                    off = ir.Constant(i64, u) if j == 0 else builder.add(
                        rows3 if j == 3 else builder.mul(a_rs, ir.Constant(i64, j)), ir.Constant(i64, u))
                    s = builder.load(builder.gep(gp[g], [off]))
                    sv = builder.shuffle_vector(builder.insert_element(undef, s, lane0), undef, splat)
                    for v in range(NV):
                        new.append(builder.call(fma, [sv, bv[v], acc[r * NV + v]]))
                acc = new
            k1 = builder.add(k, ir.Constant(i64, U))
            step = builder.asm(ir.FunctionType(i64, [i64]), "", "=r,0", [ir.Constant(i64, U)], True)
            nxt = [builder.gep(ptr, [step]) for ptr in gp]
            m_last = builder.block
            k.add_incoming(k1, m_last)
            for ph, nv in zip(acc_phis, new):
                ph.add_incoming(nv, m_last)
            for ph, nv in zip(gp, nxt):
                ph.add_incoming(nv, m_last)
            builder.cbranch(builder.icmp_signed("<=", builder.add(k1, ir.Constant(i64, U)), kc), main, check)
            builder.position_at_end(check)
            kr = builder.phi(i64)
            kr.add_incoming(ir.Constant(i64, 0), strided)
            kr.add_incoming(k1, m_last)
            acc_r = []
            for t in range(MR * NV):
                ph = builder.phi(vt)
                ph.add_incoming(zero, strided)
                ph.add_incoming(new[t], m_last)
                acc_r.append(ph)
            builder.cbranch(builder.icmp_signed("<", kr, kc), rest, done)
            ends.append((check, acc_r))
            ends.append(k_loop(rest, strided_addr, 0, [(check, kr, acc_r)]))

            # C tile: store, or add to what is there
            builder.position_at_end(done)
            res = []
            for t in range(MR * NV):          # phis first: kc == 0 leaves zeros
                ph = builder.phi(vt)
                ph.add_incoming(zero, pre)
                for last, new in ends:
                    ph.add_incoming(new[t], last)
                res.append(ph)
            add = builder.icmp_unsigned("!=", accf, ir.Constant(accf.type, 0))
            if edges:                         # a whole tile: the plain stores below; an edge tile: masked
                mr, nr = mr_nr
                whole = builder.and_(builder.icmp_signed("==", mr, ir.Constant(i64, MR)),
                                     builder.icmp_signed("==", nr, ir.Constant(i64, NR)))
                plain = builder.append_basic_block("ukernel.store.whole")
                edge = builder.append_basic_block("ukernel.store.edge")
                end = builder.append_basic_block("ukernel.end")
                builder.cbranch(whole, plain, edge)
                builder.position_at_end(edge)
                mt = ir.VectorType(ir.IntType(1), W)
                fname = "v%d%s.p0" % (W, "f32" if isz == 4 else "f64")
                mload = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vt, [vptr, i32, mt, vt]), "llvm.masked.load." + fname)
                mstore = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), [vt, vptr, i32, mt]), "llvm.masked.store." + fname)
                nsplat = builder.insert_element(ir.Constant(ir.VectorType(i64, W), ir.Undefined), nr, lane0)
                nsplat = builder.shuffle_vector(nsplat, nsplat, ir.Constant(ir.VectorType(i32, W), [0] * W))
                masks = [builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, W), [v * W + j for j in range(W)]),
                                             nsplat) for v in range(NV)]
                for r in range(MR):           # rows r < mr, each under its column masks
                    row = builder.append_basic_block("ukernel.store.edge.row")
                    nxt = builder.append_basic_block("ukernel.store.edge.next")
                    builder.cbranch(builder.icmp_signed(">", mr, ir.Constant(i64, r)), row, nxt)
                    builder.position_at_end(row)
                    crow = builder.gep(pc, [builder.mul(ldc, ir.Constant(i64, r))])
                    for v in range(NV):
                        p = builder.bitcast(builder.gep(crow, [ir.Constant(i64, v * W)]), vptr)
                        old = builder.call(mload, [p, ir.Constant(i32, isz), masks[v], zero])
                        val = res[r * NV + v]
                        builder.call(mstore, [builder.select(add, builder.fadd(old, val), val), p,
                                              ir.Constant(i32, isz), masks[v]])
                    builder.branch(nxt)
                    builder.position_at_end(nxt)
                builder.branch(end)
                builder.position_at_end(plain)
            for r in range(MR):
                crow = builder.gep(pc, [builder.mul(ldc, ir.Constant(i64, r))])
                for v in range(NV):
                    p = builder.bitcast(builder.gep(crow, [ir.Constant(i64, v * W)]), vptr)
                    old = builder.load(p, align=isz)
                    val = res[r * NV + v]
                    builder.store(builder.select(add, builder.fadd(old, val), val), p, align=isz)
            if edges:
                builder.branch(end)
                builder.position_at_end(end)
            return context.get_dummy_value()

        return sig, codegen

    if edges:
        @intrinsic
        def ukernel_edges(typingctx, kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accumulate, mr, nr):
            return typer(kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accumulate, mr, nr)

        return ukernel_edges

    @intrinsic
    def ukernel(typingctx, kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accumulate):
        return typer(kc, a, a_off, a_rs, a_ks, bp, b_off, b_ks, c, c_off, ldc, accumulate)

    return ukernel


def _make_copy(MR, vbytes, for_b):
    """An intrinsic copy(n, src, s_off, s_stride, dst, d_off): for t < n, the E contiguous elements
    src[s_off + t*s_stride : +E] go to dst[d_off + t*E : +E], E = MR (an A micro-panel, for_b false) or
    NR = NV * vbytes / itemsize (a B micro-panel). E is a constant, so each row is one fixed-size
    memcpy that LLVM turns into a few vector moves (a loop over a run-time width stays scalar)."""

    @intrinsic
    def copy(typingctx, n, src, s_off, s_stride, dst, d_off):
        if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype):
            return None
        sig = types.void(n, src, s_off, s_stride, dst, d_off)

        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            tys = sig.args
            n, src, s_off, s_stride, dst, d_off = _int64_args(context, builder, sig, args)
            dt = context.get_data_type(tys[1].dtype)
            isz = context.get_abi_sizeof(dt)
            E = NV * vbytes // isz if for_b else MR
            ps = builder.gep(context.make_array(tys[1])(context, builder, src).data, [s_off])
            pd = builder.gep(context.make_array(tys[4])(context, builder, dst).data, [d_off])
            with cgutils.for_range(builder, n) as loop:
                t = loop.index
                a = builder.gep(ps, [builder.mul(t, s_stride)])
                b = builder.gep(pd, [builder.mul(t, ir.Constant(i64, E))])
                cgutils.raw_memcpy(builder, b, a, ir.Constant(i64, E), isz, align=1)
            return context.get_dummy_value()

        return sig, codegen

    return copy


def _make_transpose(vbytes):
    """An intrinsic transpose(src, s_off, s_rs, dst, d_off, d_rs) of a V x V block, V = vbytes / itemsize
    (a register's lanes): dst[d_off + j*d_rs + i] = src[s_off + i*s_rs + j] for i, j < V.

    Loads the V source rows as vectors, then log2(V) butterfly stages: stage h (V/2, ..., 2, 1) swaps bit h
    of the row index with bit h of the column index (rows i and i + h, i & h == 0, exchange their column
    blocks of width h through two two-source shuffles each, a vpermt2ps/pd apiece); after every stage
    row j holds column j. Stores the V rows as vectors. matmul packs x @ W^T's W with it: a scalar
    transposing copy wrote one element per cycle or so."""

    @intrinsic
    def transpose(typingctx, src, s_off, s_rs, dst, d_off, d_rs):
        if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype
                and src.dtype in (types.float32, types.float64)):
            return None
        sig = types.void(src, s_off, s_rs, dst, d_off, d_rs)

        def codegen(context, builder, sig, args):
            i32, i64 = ir.IntType(32), ir.IntType(64)
            tys = sig.args
            src, s_off, s_rs, dst, d_off, d_rs = _int64_args(context, builder, sig, args)
            dt = context.get_data_type(tys[0].dtype)
            isz = context.get_abi_sizeof(dt)
            V = vbytes // isz
            vptr = ir.VectorType(dt, V).as_pointer()
            ps = builder.gep(context.make_array(tys[0])(context, builder, src).data, [s_off])
            pd = builder.gep(context.make_array(tys[3])(context, builder, dst).data, [d_off])
            rows = [builder.load(builder.bitcast(builder.gep(ps, [builder.mul(ir.Constant(i64, r), s_rs)]), vptr),
                                 align=isz) for r in range(V)]
            h = V // 2
            while h:
                lo = ir.Constant(ir.VectorType(i32, V), [c if not c & h else V + c - h for c in range(V)])
                hi = ir.Constant(ir.VectorType(i32, V), [c + h if not c & h else V + c for c in range(V)])
                for i in range(V):
                    if not i & h:
                        rows[i], rows[i + h] = (builder.shuffle_vector(rows[i], rows[i + h], lo),
                                                builder.shuffle_vector(rows[i], rows[i + h], hi))
                h //= 2
            for j in range(V):
                builder.store(rows[j], builder.bitcast(builder.gep(pd, [builder.mul(ir.Constant(i64, j), d_rs)]),
                                                       vptr), align=isz)
            return context.get_dummy_value()

        return sig, codegen

    return transpose


# The shapes (rows of A per tile; vector bytes: 64 = AVX-512, 32 = AVX2; NR = NV * vector bytes / itemsize):
# policy.py, with the measurements that chose them.
ukernel_w64 = _make_ukernel(MICRO_ROWS_W64, 64)
ukernel_w32 = _make_ukernel(MICRO_ROWS_W32, 32)
ukernel_w64t = _make_ukernel(TAIL_ROWS_W64, 64)     # tail shapes for the last rows (M % MR), so that no row
ukernel_w32t = _make_ukernel(TAIL_ROWS_W32, 32)     # panel computes more than 3 (1) rows of zeros
# the same four with the edge arguments (mr, nr): matmul's tiles, edges included, store straight into C
ukernel_w64e = _make_ukernel(MICRO_ROWS_W64, 64, True)
ukernel_w32e = _make_ukernel(MICRO_ROWS_W32, 32, True)
ukernel_w64te = _make_ukernel(TAIL_ROWS_W64, 64, True)
ukernel_w32te = _make_ukernel(TAIL_ROWS_W32, 32, True)
copy_a_w64 = _make_copy(MICRO_ROWS_W64, 64, False)
copy_a_w32 = _make_copy(MICRO_ROWS_W32, 32, False)
copy_b_w64 = _make_copy(MICRO_ROWS_W64, 64, True)
copy_b_w32 = _make_copy(MICRO_ROWS_W32, 32, True)
transpose_w64 = _make_transpose(64)
transpose_w32 = _make_transpose(32)

KERNELS = ("avx512", "avx2", "portable")


def host_features():
    """The CPU features Numba compiles for: NUMBA_CPU_NAME / NUMBA_CPU_FEATURES when set (a portable
    cache built for 'generic' gets the portable kernel), else the host's."""
    from numba.core import config

    if config.CPU_NAME:
        spec = config.CPU_FEATURES or ""
        return {f[1:] for f in spec.split(",") if f.startswith("+")}
    try:
        import llvmlite.binding as llb

        return {name for name, on in llb.get_host_cpu_features().items() if on}
    except Exception:      # pragma: no cover - llvmlite without host feature queries
        return set()


def host_kernel():
    """'avx512', 'avx2' or 'portable': the fastest matmul kernel for the CPU Numba targets.

    TINYATTN_MATMUL_KERNEL=portable|avx2|avx512 overrides it (benchmarks, and a machine whose
    features are misreported); a shape the CPU lacks still computes the right result, slowly."""
    forced = os.environ.get("TINYATTN_MATMUL_KERNEL", "").strip().lower()
    if forced:
        if forced not in KERNELS:
            raise ValueError(f"TINYATTN_MATMUL_KERNEL={forced!r}: expected one of {', '.join(KERNELS)}")
        return forced
    feats = host_features()
    if {"avx512f", "fma"} <= feats:
        return "avx512"
    if {"avx2", "fma"} <= feats:
        return "avx2"
    return "portable"
