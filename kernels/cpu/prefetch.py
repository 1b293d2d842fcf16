"""Software prefetch for the compiled kernels: `prefetch_write(a, i)` asks for the cache line holding a[i] (a 1-D
array), ready to be written, without waiting for it.

Why: a training step writes most of its outputs into memory that no core has touched for a while (the block the
allocator hands out was freed by an earlier step). A kernel that writes rows scattered in memory, a few lines at a
time between stretches of arithmetic (attention's output tile: 64 rows of 128 bytes, 512 bytes apart), waits for
each line to come in first: the hardware prefetchers follow long sequential streams, not that pattern. Asked for at
the work item's start, the rows it will write arrive while it computes. (Hints for reading, and for kernels that
stream one sequential block, as the row kernels do, did not pay: docs/benchmarks.md, thirteenth session.)

A hint never faults and never changes a value (an index outside the array is skipped), so a kernel's results are
the same with or without it. The callers write their loops over rows out in place: a helper function would be
compiled once more for each caller's argument types (0.1-0.3 s of a cold start each), and inlining one through
Numba's IR cost about 0.08 s a call site.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch_write(typingctx, a, i):
    """prefetch_write(a, i): hint that a[i] (a 1-D array; an index outside it: nothing) is about to be written:
    its line comes into L1, ready to be written."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary, index = args
        aryty = signature.args[0]
        arr = context.make_array(aryty)(context, builder, ary)
        index = context.cast(builder, index, signature.args[1], types.intp)
        shape = cgutils.unpack_tuple(builder, arr.shape, 1)
        strides = cgutils.unpack_tuple(builder, arr.strides, 1)
        inside = builder.and_(builder.icmp_signed(">=", index, index.type(0)),
                              builder.icmp_signed("<", index, shape[0]))
        with builder.if_then(inside, likely=True):
            item = cgutils.get_item_pointer2(context, builder, arr.data, shape, strides, aryty.layout, [index])
            ptr = builder.bitcast(item, ir.IntType(8).as_pointer())
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0")
            builder.call(fn, [ptr, i32(1), i32(3), i32(1)])  # rw 1: for writing; locality 3: into L1; 1: data
        return context.get_dummy_value()

    return types.none(a, i), codegen
