"""Atomic operations on int64 array elements, for tasks of one parallel loop that hand work to each other:

    atomic_add(a, i, v) -> old     old = a[i]; a[i] = old + v, as one indivisible step (sequentially consistent)
    atomic_load(a, i)   -> a[i]    a read that sees every write made before another thread's atomic_add

Numba has atomics only on the GPU (numba.cuda.atomic); these emit LLVM's `atomicrmw add` and `load atomic`.
A thread that writes an array and then calls atomic_add makes those writes visible to any thread whose
atomic_load returns the added value: the matmul's k-split tasks (matmul/outer.py) count themselves done this way
before one of them reads the others' partial outputs.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _element_pointer(context, builder, aryty, ary, index):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [index], wraparound=False)


def _int64_array(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int64


@intrinsic
def atomic_add(typingctx, a, i, v):
    """old = a[i]; a[i] += v, atomically (a: 1-D int64 array, i and v integers); returns old."""
    if not (_int64_array(a) and isinstance(i, types.Integer) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ary, index, value = args
        index = context.cast(builder, index, sig.args[1], types.intp)
        value = context.cast(builder, value, sig.args[2], types.int64)
        ptr = _element_pointer(context, builder, sig.args[0], ary, index)
        return builder.atomic_rmw("add", ptr, value, "seq_cst")

    return types.int64(a, i, v), codegen


@intrinsic
def atomic_load(typingctx, a, i):
    """a[i], read atomically with acquire ordering (a: 1-D int64 array, i an integer)."""
    if not (_int64_array(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ary, index = args
        index = context.cast(builder, index, sig.args[1], types.intp)
        ptr = _element_pointer(context, builder, sig.args[0], ary, index)
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(a, i), codegen
