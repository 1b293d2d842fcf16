"""float32 exp over a tile row, as 16-lane vector IR (``_exp_fwd`` for the forward's transposed score tile,
``_exp_bwd`` for a row of the backward's); float64 (and any other case) runs vexp's scalar loops."""
from numba import types
from numba.extending import intrinsic, overload

from ..vexp import vexp as _exp
from .tiles import BLOCK_K, BLOCK_Q

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


def _exp_fwd(sT, r0, r1, c, l, c0, w):
    """sT[j, c0:c0 + w] = exp(sT[j, c0:c0 + w] - c[c0:c0 + w]); l[c0:c0 + w] += sT[j, c0:c0 + w]   for
    r0 <= j < r1 (rows of BLOCK_Q; w a multiple of 16 for float32; Numba only)."""
    raise NotImplementedError


def _exp_bwd(s, i, lse, lo, w):
    """s[i, :w] = exp(s[i, :w] - lse.flat[lo])   (the first w of a row of BLOCK_K: w a multiple of 16 for
    float32; Numba only)."""
    raise NotImplementedError


@overload(_exp_fwd)
def _exp_fwd_impl(sT, r0, r1, c, l, c0, w):
    if sT.dtype == types.float32 and BLOCK_Q % _EXP_N == 0:
        def impl(sT, r0, r1, c, l, c0, w):
            for j in range(r0, r1):
                _exp_row_c(w // _EXP_N, sT, j * BLOCK_Q + c0, c, c0, l, c0)
        return impl

    def impl(sT, r0, r1, c, l, c0, w):
        for j in range(r0, r1):
            for i in range(c0, c0 + w):
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




@intrinsic
def _max_rows_ir(typingctx, n, x, x_off, ld, nrows, m, m_off):
    """m[m_off + t] = max(m[m_off + t], x[x_off + r * ld + t]) for r < nrows, t < n * W (W = 64 bytes of
    x's dtype), as vector IR: Numba's own loops over one NR-wide column block of a tile measured scalar.
    max as Numba's builtin: the new value only where it compares greater (a NaN score never wins)."""
    if not (isinstance(x, types.Array) and isinstance(m, types.Array) and x.dtype == m.dtype
            and x.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(n, x, x_off, ld, nrows, m, m_off)

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        from llvmlite import ir

        i64 = ir.IntType(64)
        ft = context.get_value_type(sig.args[1].dtype)
        W = 64 // sig.args[1].dtype.bitwidth * 8
        vt = ir.VectorType(ft, W)
        vptr = vt.as_pointer()
        tys = sig.args
        n, x, x_off, ld, nrows, m, m_off = [
            context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, tys)]
        px = builder.gep(context.make_array(tys[1])(context, builder, x).data, [x_off])
        pm = builder.gep(context.make_array(tys[5])(context, builder, m).data, [m_off])
        with cgutils.for_range(builder, n) as vloop:
            off = builder.mul(vloop.index, ir.Constant(i64, W))
            mp = builder.bitcast(builder.gep(pm, [off]), vptr)
            acc = cgutils.alloca_once(builder, vt)
            builder.store(builder.load(mp, align=1), acc)
            with cgutils.for_range(builder, nrows) as rloop:
                xp = builder.bitcast(builder.gep(px, [builder.add(builder.mul(rloop.index, ld), off)]), vptr)
                xv = builder.load(xp, align=1)
                mv = builder.load(acc)
                builder.store(builder.select(builder.fcmp_ordered(">", xv, mv), xv, mv), acc)
            builder.store(builder.load(acc), mp, align=1)
        return context.get_dummy_value()

    return sig, codegen


def _max_rows(sT, r0, r1, m, c0, w):
    """m[c0:c0 + w] = max(m[c0:c0 + w], sT[j, c0:c0 + w]) for r0 <= j < r1 (rows of BLOCK_Q; w a multiple
    of 64 bytes of the dtype; Numba only)."""
    raise NotImplementedError


@overload(_max_rows)
def _max_rows_impl(sT, r0, r1, m, c0, w):
    if sT.dtype in (types.float32, types.float64) and BLOCK_Q % (64 // sT.dtype.bitwidth * 8) == 0:
        W = 64 // sT.dtype.bitwidth * 8

        def impl(sT, r0, r1, m, c0, w):
            _max_rows_ir(w // W, sT, r0 * BLOCK_Q + c0, BLOCK_Q, r1 - r0, m, c0)
        return impl

    def impl(sT, r0, r1, m, c0, w):
        for j in range(r0, r1):
            for i in range(c0, c0 + w):
                m[i] = max(m[i], sT[j, i])
    return impl
