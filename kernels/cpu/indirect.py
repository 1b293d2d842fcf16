"""Calling a separately compiled work-item function from a parallel loop through its address.

Why: Numba copies the LLVM code of every function a kernel calls into the kernel's own module, and optimises
and emits machine code for all of it again there. A `prange` loop is compiled into four such modules (the
loop body as a gufunc, two wrappers around it, and the kernel itself), so a work-item function called from
the loop body is optimised and emitted four more times after its own compile. For the large item functions
(a GEMM task, an attention tile) that repeated work was most of the kernel's cold compile: 3-5 s each of the
first training step's compile time, on the critical path of a cold start.

Here the loop body calls the item function through a function pointer instead (`call_compiled`): the item
function is compiled once, on its own, and cached on disk like any kernel; the parallel kernel's modules hold
only the call. `item_function(dispatcher, args)` compiles the item function for the types of `args` (the
item index first) and returns the pair the kernel takes, (address, fingerprint).

Safety: a pointer carries no types, and a call with other argument types than the function was compiled for
would read its arguments wrongly. So the pair carries a fingerprint of the types the function was compiled
for, and `call_compiled` compares it with the fingerprint of the types it passes (fixed when the kernel is
compiled): a mismatch raises instead of calling. An exception inside a `prange` body is dropped by Numba's
worker threads, so a kernel also checks the handle with `check_compiled` before its loop, where the error
reaches the caller. `item_function` keys its memo on Numba's own type fingerprint of the arguments, the key
Numba's dispatcher uses to pick a compiled version.
"""
import zlib

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

try:  # Numba's C type fingerprint (what its dispatcher keys compiled versions on): ~0.3 us for a whole tuple
    from numba._dispatcher import compute_fingerprint as _fingerprint_of_values
except ImportError:  # pragma: no cover (moved in some Numba version: no memo, the types are found each call)
    _fingerprint_of_values = None


def type_fingerprint(argtypes):
    """A 31-bit number for a tuple of Numba types, the same in every process (CRC-32 of its text)."""
    return zlib.crc32(str(tuple(argtypes)).encode()) & 0x7FFFFFFF


def _handle_and_args(fn, args):
    """Whether (fn, args) type as (a pair of integers, a tuple)."""
    return (isinstance(fn, types.UniTuple) and fn.count == 2 and isinstance(fn.dtype, types.Integer)
            and isinstance(args, types.BaseTuple))


def _check_fingerprint(context, builder, handle, argtys):
    """Raise RuntimeError (return it to the caller) unless the handle's fingerprint is that of `argtys`."""
    fingerprint = builder.extract_value(handle, 1)
    expected = fingerprint.type(type_fingerprint(argtys))
    with cgutils.if_unlikely(builder, builder.icmp_signed("!=", fingerprint, expected)):
        context.call_conv.return_user_exc(
            builder, RuntimeError, ("call_compiled: the function was compiled for other argument types",))


@intrinsic
def check_compiled(typingctx, fn, args):
    """check_compiled((address, fingerprint), args): RuntimeError unless call_compiled(fn, args) would call the
    function (its fingerprint matches the types of `args`). A parallel loop calls this once before the loop: an
    exception raised inside a `prange` body is lost (Numba's worker threads drop it), so a mismatch there would
    only skip the call."""
    if not _handle_and_args(fn, args):
        return None

    def codegen(context, builder, signature, llargs):
        _check_fingerprint(context, builder, llargs[0], list(args.types))
        return context.get_dummy_value()

    return types.none(fn, args), codegen


@intrinsic
def call_compiled(typingctx, fn, args):
    """call_compiled((address, fingerprint), args): call the Numba-compiled function at `address` with the
    tuple `args` spread as its arguments, as Numba calls a function it compiled (exceptions propagate). The
    function must return nothing; `fingerprint` must be type_fingerprint of the types of `args`, else
    RuntimeError (a function compiled for other types is never called). Inside a `prange` body neither the
    RuntimeError nor the function's own exceptions reach the caller (Numba's parallel loops drop them): check the
    handle with check_compiled before the loop."""
    if not _handle_and_args(fn, args):
        return None
    argtys = list(args.types)

    def codegen(context, builder, signature, llargs):
        handle, values = llargs
        address = builder.extract_value(handle, 0)
        _check_fingerprint(context, builder, handle, argtys)
        fnty = context.call_conv.get_function_type(types.none, argtys)
        pointer = builder.inttoptr(address, fnty.as_pointer())
        spread = [builder.extract_value(values, i) for i in range(len(argtys))]
        status, _ = context.call_conv.call_function(builder, pointer, types.none, argtys, spread)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return types.none(fn, args), codegen


def values_fingerprint(values):
    """Numba's type fingerprint of a tuple of values (bytes: equal fingerprints, equal Numba types), or None when
    it cannot be had."""
    try:
        return _fingerprint_of_values(values)
    except (TypeError, ValueError):
        return None


_HANDLES = {}  # dispatcher -> {Numba's type fingerprint of the arguments: (address, fingerprint)}


def item_function(dispatcher, args):
    """(address, fingerprint) of `dispatcher` compiled for the types of `args` (compiling it on first use, or
    loading it from the on-disk cache), for a kernel to pass to call_compiled with arguments of those types.
    After the first call for some argument types, a lookup (~0.4 us)."""
    key = values_fingerprint(args)
    known = _HANDLES.get(dispatcher)
    if known is not None and key in known:
        return known[key]
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    compiled = dispatcher.overloads.get(sig)
    if compiled is None:
        dispatcher.compile(sig)
        compiled = dispatcher.overloads[sig]
    if compiled.signature.return_type != types.none:
        raise TypeError(f"item_function: {dispatcher.py_func.__name__} returns {compiled.signature.return_type}; "
                        "a work-item function returns nothing")
    address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
    handle = (int(address), type_fingerprint(sig))
    if key is not None:  # (None: no fingerprint for these values; the types are found again next time)
        _HANDLES.setdefault(dispatcher, {})[key] = handle
    return handle


ITEM_INDEX = np.int64(0)  # the item index's place in the arguments item_function types (an int64)
