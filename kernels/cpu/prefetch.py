"""Software prefetch for the compiled kernels: `prefetch(a, i, write)` asks for the cache line holding a[i] (a 1-D
array) without waiting for it.

Why: a training step writes most of its outputs into memory that no core has touched for a while (the block
the allocator hands out was freed by an earlier step), and reads inputs that an earlier op left in another
cache or in memory. A kernel that touches rows scattered in memory, a few lines at a time between stretches of
arithmetic (attention's output tile: 64 rows of 128 bytes, 512 bytes apart), waits for each line in turn: the
hardware prefetchers follow long sequential streams, not that pattern. Asked for at the work item's start, the
rows it will write arrive while it computes. (Where a kernel reads or writes one sequential stream, as the row
kernels do, the hardware keeps up once warm and the hints only cost instructions: measured, docs/benchmarks.md.)

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
def prefetch(typingctx, a, i, write):
    """prefetch(a, i, write): hint that a[i] (a 1-D array; an index outside it: nothing) is about to be read
    (write False: into L2) or written (True: into L1, ready to be written). `write` a constant in the kernel
    (a literal) costs no test."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and isinstance(i, types.Integer)
            and isinstance(write, types.Boolean)):
        return None
    literal = getattr(write, "literal_value", None)

    def codegen(context, builder, signature, args):
        ary, index, flag = args
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

            def hint(rw):  # (rw and locality must be constants in the IR)
                builder.call(fn, [ptr, i32(rw), i32(3 if rw else 2), i32(1)])  # locality 3: L1, 2: L2; 1: data

            if literal is not None:
                hint(int(literal))
            else:
                flag = context.cast(builder, flag, signature.args[2], types.boolean)
                with builder.if_else(flag) as (then, otherwise):
                    with then:
                        hint(1)
                    with otherwise:
                        hint(0)
        return context.get_dummy_value()

    return types.none(a, i, write), codegen
