"""Bitwise and logical ops, and the all/any reductions. None is differentiable (bool and integer
results); they return plain tensors that never require grad.

    bitwise_and/or/xor/not   & | ^ ~   bool or integer tensors (a float tensor is a TypeError, as in
                                       PyTorch); bool with bool stays bool, an integer makes it integer
    logical_and/or/xor/not             any dtype, nonzero is True; the result is bool
    all, any                           over any dims, with keepdim; the result is bool
"""
from __future__ import annotations

import builtins

import numpy as np

from ..autograd import Variable
from ..backend import is_device_array
from .checks import check_broadcast, normalize_dims, on_device_of, numpy_keywords
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Dim
    from ..tensor import Tensor

__all__ = [
    "all", "any", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "logical_and", "logical_not", "logical_or",
    "logical_xor",
]


def _is_array(x):
    return isinstance(x, (Variable, np.ndarray)) or is_device_array(x)


def _raw(x):
    return x._array if isinstance(x, Variable) else x


def _describe(x):
    return f"a tensor of dtype {_raw(x).dtype} (shape {tuple(np.shape(_raw(x)))})" if _is_array(x) else type(x).__name__


def _bitwise_operands(op, a, b):
    """The operands as arrays of one integer or bool dtype on the device of the tensor among them.

    PyTorch's promotion: two tensors take their common dtype; a Python int with a bool tensor makes
    int64, a Python int or bool with an integer tensor takes the tensor's dtype.
    """
    if not isinstance(a, Variable) and not isinstance(b, Variable):
        raise TypeError(f"{op}: expected at least one tensor, got {type(a).__name__} and {type(b).__name__}")
    for x in (a, b):
        if _is_array(x):
            if _raw(x).dtype.kind not in "biu":
                raise TypeError(f"{op}: only bool and integer tensors are supported, got {_describe(x)}; "
                                "for floats use logical_and/logical_or/logical_xor, or compare first")
        elif not isinstance(x, (bool, int, np.bool_, np.integer)):
            raise TypeError(f"{op}: only bool and integer operands are supported, got {_describe(x)}")
    arrays = [_raw(x).dtype for x in (a, b) if _is_array(x)]
    scalars = [x for x in (a, b) if not _is_array(x)]
    dtype = np.result_type(*arrays)
    if dtype == np.bool_ and builtins.any(not isinstance(s, (bool, np.bool_)) for s in scalars):
        dtype = np.dtype(np.int64)
    like = a if isinstance(a, Variable) else b
    out = []
    for x in (a, b):
        x = on_device_of(op, x, like._array) if _is_array(x) else np.asarray(x, dtype=dtype)
        out.append(x if x.dtype == dtype else x.astype(dtype))
    check_broadcast(op, np.shape(out[0]), np.shape(out[1]))
    return like, out


def _bitwise(ufunc, name):
    def op(a, b):
        like, (x, y) = _bitwise_operands(name, a, b)
        return like._wrap(ufunc(x, y))

    op.__name__ = name
    op.__doc__ = f"Elementwise {name} of bool or integer tensors (or Python bools/ints); not differentiable."
    return op


bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")


def bitwise_not(x: Tensor) -> Tensor:
    """~x: logical not of a bool tensor, the bitwise complement (-x - 1) of an integer one."""
    if not isinstance(x, Variable):
        raise TypeError(f"bitwise_not: expected a tensor, got {type(x).__name__}")
    if x.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: ~ is only implemented for bool and integer tensors, got {_describe(x)}; "
                        "for floats use logical_not, or compare first")
    return x._wrap(np.invert(x._array))


def _truth(op, x, like):
    """x as a bool array (nonzero is True) on the device of array `like`."""
    if not _is_array(x):
        if not isinstance(x, (bool, int, float, np.number, np.bool_)):
            raise TypeError(f"{op}: unsupported operand of type {type(x).__name__}")
        return np.asarray(bool(x))
    x = on_device_of(op, x, like)
    return x if x.dtype == np.bool_ else x != 0


def _logical(ufunc, name):
    def op(a, b):
        if not isinstance(a, Variable) and not isinstance(b, Variable):
            raise TypeError(f"{name}: expected at least one tensor, got {type(a).__name__} and {type(b).__name__}")
        like = a if isinstance(a, Variable) else b
        x, y = _truth(name, a, like._array), _truth(name, b, like._array)
        check_broadcast(name, np.shape(x), np.shape(y))
        return like._wrap(ufunc(x, y))

    op.__name__ = name
    op.__doc__ = f"Elementwise {name} of any tensors (nonzero is True); a bool tensor, not differentiable."
    return op


logical_and = _logical(np.logical_and, "logical_and")
logical_or = _logical(np.logical_or, "logical_or")
logical_xor = _logical(np.logical_xor, "logical_xor")


def logical_not(x: Tensor) -> Tensor:
    if not isinstance(x, Variable):
        raise TypeError(f"logical_not: expected a tensor, got {type(x).__name__}")
    t = _truth("logical_not", x, x._array)
    return x._wrap(~t)


def _reduce_bool(op, x, dim, keepdim):
    if not isinstance(x, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    dims = normalize_dims(op, dim, x.ndim)
    t = _truth(op, x, x._array)
    reduce = np.all if op == "all" else np.any
    return x._wrap(reduce(t, axis=dims, keepdims=keepdim))


@numpy_keywords
def all(x: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """True where every element along dim (an int, a tuple, or None for all) is nonzero."""
    return _reduce_bool("all", x, dim, keepdim)


@numpy_keywords
def any(x: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """True where some element along dim (an int, a tuple, or None for all) is nonzero."""
    return _reduce_bool("any", x, dim, keepdim)
