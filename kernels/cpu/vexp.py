"""A scalar exp (and max) that LLVM can vectorise, shared by the kernels that need them in a hot loop.

Inside Numba, np.exp compiles to one libm call per element, which blocks vectorisation
(llvmlite from PyPI has no SVML). `vexp` is branch-free arithmetic instead.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload


@intrinsic
def _bits_as_float(typingctx, n):
    """Reinterpret the bits of an int32 (int64) as a float32 (float64)."""
    if n == types.int32:
        ret, llty = types.float32, ir.FloatType()
    elif n == types.int64:
        ret, llty = types.float64, ir.DoubleType()
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llty)

    return ret(n), codegen


@intrinsic
def _float_bits(typingctx, x):
    """Reinterpret the bits of a float32 as an int32 (_bits_as_float's inverse)."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


def vexp(x):
    """exp(x) for x <= 80 (softmax and attention only need x <= 0), 0 below float32 -87 / float64 -708,
    NaN for NaN (so a NaN still poisons a softmax row, as in PyTorch).

    np.exp compiles to one libm call per element, which blocks vectorisation and was ~1/4 of the kernel
    time; this is branch-free so LLVM vectorises the loops around it.  x = n ln2 + r, |r| <= ln2 / 2
    (Cody-Waite split of ln2), exp(r) by its Taylor polynomial (degree 7 for float32, 13 for float64,
    truncation error < 1 ulp), 2^n built in the exponent bits.  Max relative error ~1 ulp (tested).
    """
    return np.exp(x)


@overload(vexp)
def _vexp_impl(x):
    if x == types.float32:
        def impl(x):
            lo = np.float32(-87.0)
            xc = max(x, lo)
            nf = np.floor(xc * np.float32(1.4426950408889634) + np.float32(0.5))
            r = (xc - nf * np.float32(0.693359375)) - nf * np.float32(-2.12194440e-4)
            p = np.float32(1.0 / 5040.0)
            p = p * r + np.float32(1.0 / 720.0)
            p = p * r + np.float32(1.0 / 120.0)
            p = p * r + np.float32(1.0 / 24.0)
            p = p * r + np.float32(1.0 / 6.0)
            p = p * r + np.float32(0.5)
            p = p * r + np.float32(1.0)
            p = p * r + np.float32(1.0)
            two_n = _bits_as_float(np.int32((np.int32(nf) + 127) << 23))
            return p * two_n if x >= lo else (np.float32(0.0) if x == x else x)
        return impl
    if x == types.float64:
        def impl(x):
            lo = -708.0
            xc = max(x, lo)
            nf = np.floor(xc * 1.4426950408889634 + 0.5)
            r = (xc - nf * 6.93147180369123816490e-01) - nf * 1.90821492927058770002e-10
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            two_n = _bits_as_float(np.int64((np.int64(nf) + 1023) << 52))
            return p * two_n if x >= lo else (0.0 if x == x else x)
        return impl
    return None


@intrinsic
def fmax(typingctx, a, b):
    """max(a, b) as LLVM's `maxnum` (IEEE maxNum): a NaN operand is skipped, the other returned. Unlike a
    compare-and-select (`a if a > b else b`, what Python's max compiles to), a loop reducing with it
    vectorises (vmaxps) without fast-math flags: a row maximum ran ~2.6 cycles per element as a scalar chain."""
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        lt = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [lt], ir.FunctionType(lt, [lt, lt]))
        return builder.call(fn, args)

    return a(a, b), codegen


@intrinsic
def recip_finite(typingctx, d):
    """1/d for a finite d (float32 or float64), as an `fdiv arcp ninf contract`: LLVM may then compute it as the
    CPU's reciprocal estimate and a Newton step (AVX-512 vrcp14ps + 2 FMAs: about 2^-28 relative, under float32's
    rounding) instead of a division, whose throughput held back the exact GELU's float32 loop. An infinite or NaN
    d gives an unspecified value: clamp it first."""
    if d not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        one = ir.Constant(args[0].type, 1.0)
        return builder.fdiv(one, args[0], flags=("arcp", "ninf", "contract"))

    return d(d), codegen


@intrinsic
def wide_vectors(typingctx):
    """Call it at the top of a loop body (inside the prange of a parallel kernel: that body is its own
    function) to let LLVM vectorise that function's loops with 512-bit registers where the CPU has them.
    LLVM's tuning for the AVX-512 Xeons prefers 256-bit vectors ("prefer-vector-width"); this sets the
    function's attribute to 512, which a CPU without AVX-512 ignores. The same arithmetic, twice the lanes:
    the results do not change except where a reassociated sum's order does (a few ulp)."""
    def codegen(context, builder, sig, args):
        # llvmlite's FunctionAttributes takes only its known keywords; a string attribute is added as it is
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@njit(parallel=True, cache=True)
def vexp_array(x, out):
    """out = vexp(x) elementwise over a 2-D array (for tests)."""
    for r in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[r, j] = vexp(x[r, j])
