"""Tile transposes of the CPU attention kernels as vector IR: ``_transpose`` copies an (nr, nc) block,
scaled, into its transpose, in W x W blocks (W = 64 bytes of the dtype: 16 float32, 8 float64) of W vector
loads, log2(W) rounds of two-input shuffles and W vector stores; rows or columns left over go element by
element. Numba's element loops for these copies (q into qT, oT out to the output rows, K and V into the
backward's kT, vT and dkT, dvT back) ran scalar, about 1.5 cycles per element: at B12 H4 L64 E32 a fifth of
the forward. Correct on any CPU (AVX2 splits the 64-byte vectors in two)."""
from numba import njit, types
from numba.extending import intrinsic


def _emit_tr_block(builder, fargs, ft, W):
    """The body of the block transpose: dst[c d_ld + r] = src[r s_ld + c] * scale for r, c < W."""
    from llvmlite import ir

    ps, s_ld, pd, d_ld, scale = fargs
    vt = ir.VectorType(ft, W)
    vptr = vt.as_pointer()
    i32 = ir.IntType(32)
    v = [builder.load(builder.bitcast(builder.gep(ps, [builder.mul(s_ld, ir.Constant(s_ld.type, r))]), vptr),
                      align=1) for r in range(W)]
    b = W // 2
    while b:  # swap the off-diagonal b x b blocks of every 2b x 2b block
        lo = ir.Constant(ir.VectorType(i32, W), [j if j & b == 0 else W + j - b for j in range(W)])
        hi = ir.Constant(ir.VectorType(i32, W), [j + b if j & b == 0 else W + j for j in range(W)])
        for i in range(W):
            if i & b == 0:
                v[i], v[i + b] = (builder.shuffle_vector(v[i], v[i + b], lo),
                                  builder.shuffle_vector(v[i], v[i + b], hi))
        b //= 2
    undef = ir.Constant(vt, ir.Undefined)
    sv = builder.shuffle_vector(builder.insert_element(undef, scale, ir.Constant(i32, 0)), undef,
                                ir.Constant(ir.VectorType(i32, W), [0] * W))
    for c in range(W):
        p = builder.bitcast(builder.gep(pd, [builder.mul(d_ld, ir.Constant(d_ld.type, c))]), vptr)
        builder.store(builder.fmul(v[c], sv), p, align=1)
    builder.ret_void()


@intrinsic
def _tr_block(typingctx, src, s_off, s_ld, dst, d_off, d_ld, scale):
    """dst[d_off + c d_ld + r] = src[s_off + r s_ld + c] * scale for r, c < W (flat offsets into C-contiguous
    arrays of one float dtype)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype
            and src.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(src, s_off, s_ld, dst, d_off, d_ld, scale)

    def codegen(context, builder, sig, args):
        from llvmlite import ir

        tys = sig.args
        ft = context.get_value_type(tys[0].dtype)
        W = 512 // tys[0].dtype.bitwidth
        i64 = ir.IntType(64)
        src, s_off, s_ld, dst, d_off, d_ld, scale = [
            context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, tys)]
        scale = context.cast(builder, scale, tys[6], tys[0].dtype)
        ps = builder.gep(context.make_array(tys[0])(context, builder, src).data, [s_off])
        pd = builder.gep(context.make_array(tys[3])(context, builder, dst).data, [d_off])
        # the shuffles live in one small function per module, never inlined: LLVM then optimises them once,
        # not again at every call site of every kernel that inlines _transpose (cold compile)
        fnty = ir.FunctionType(ir.VoidType(), [ft.as_pointer(), i64, ft.as_pointer(), i64, ft])
        fn = builder.module.globals.get(f"tinyattn_tr_block_{W}")
        if fn is None:
            fn = ir.Function(builder.module, fnty, name=f"tinyattn_tr_block_{W}")
            fn.linkage = "linkonce_odr"
            fn.attributes.add("noinline")
            _emit_tr_block(ir.IRBuilder(fn.append_basic_block()), fn.args, ft, W)
        builder.call(fn, [ps, s_ld, pd, d_ld, scale])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def _transpose(src, s_off, s_ld, dst, d_off, d_ld, nr, nc, scale):
    """dst[d_off + c d_ld + r] = src[s_off + r s_ld + c] * scale for r < nr, c < nc: src and dst flat
    offsets into C-contiguous float arrays of one dtype (q, k, v's flat views, the local tiles, the outputs)."""
    W = 64 // src.itemsize
    rb = nr // W * W
    cb = nc // W * W
    for r in range(0, rb, W):
        for c in range(0, cb, W):
            _tr_block(src, s_off + r * s_ld + c, s_ld, dst, d_off + c * d_ld + r, d_ld, scale)
        for c in range(cb, nc):
            for rr in range(r, r + W):
                dst[d_off + c * d_ld + rr] = src[s_off + rr * s_ld + c] * scale
    for r in range(rb, nr):
        for c in range(nc):
            dst[d_off + c * d_ld + r] = src[s_off + r * s_ld + c] * scale
