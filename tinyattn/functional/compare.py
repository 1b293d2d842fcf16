"""Tests of values, PyTorch's names: isnan, isinf, isposinf, isneginf, isfinite, isclose, allclose, equal,
and nan_to_num (differentiable: the gradient passes where the input was finite, 0 elsewhere)."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Variable
from .checks import check_broadcast, check_tensor, host_result, on_host
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .._typing import Operand
    from ..tensor import Tensor

__all__ = [
    "allclose", "equal", "isclose", "isfinite", "isinf", "isnan", "isneginf", "isposinf", "nan_to_num", "NanToNum",
]


def _unary_test(ufunc: Any, name: str) -> Callable[[Tensor], Tensor]:
    def op(input):
        check_tensor(name, "input", input)
        a = input._array
        if a.dtype.kind != "f":  # integers and bools are never nan or inf
            return host_result(input, np.full(a.shape, name == "isfinite", dtype=np.bool_))
        return host_result(input, ufunc(input.numpy()))

    op.__name__ = op.__qualname__ = name
    return op


isnan = _unary_test(np.isnan, "isnan")
isinf = _unary_test(np.isinf, "isinf")
isfinite = _unary_test(np.isfinite, "isfinite")
isposinf = _unary_test(np.isposinf, "isposinf")
isneginf = _unary_test(np.isneginf, "isneginf")


def _pair(op, input, other):
    check_tensor(op, "input", input)
    if not isinstance(other, Variable):
        raise TypeError(f"{op}: other must be a tensor, got {type(other).__name__}")
    a, b = input.numpy(), other.numpy()
    if (a.dtype.kind == "f") != (b.dtype.kind == "f") or (a.dtype != b.dtype and a.dtype.kind != "f"):
        if a.dtype != b.dtype:
            raise TypeError(f"{op}: input and other must have the same dtype, got {a.dtype} and {b.dtype}")
    check_broadcast(op, a.shape, b.shape)
    return a, b


def isclose(input: Tensor, other: Operand, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|input - other| <= atol + rtol |other| elementwise (broadcast), PyTorch's and NumPy's test."""
    a, b = _pair("isclose", input, other)
    if rtol < 0 or atol < 0:
        raise ValueError(f"isclose: rtol and atol must be non-negative, got rtol={rtol}, atol={atol}")
    return host_result(input, np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Tensor, other: Operand, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when every element is close (isclose); a Python bool."""
    return bool(isclose(input, other, rtol, atol, equal_nan)._array.all())


def equal(input: Tensor, other: Tensor) -> bool:
    """True when the two tensors have the same shape and the same elements (a Python bool)."""
    check_tensor("equal", "input", input)
    if not isinstance(other, Variable):
        raise TypeError(f"equal: other must be a tensor, got {type(other).__name__}")
    return tuple(input.shape) == tuple(other.shape) and bool(np.array_equal(input.numpy(), other.numpy()))


@on_host
class NanToNum(Function):
    """y = x with nan, +inf and -inf replaced.  dx = dy where x is finite, 0 where it was replaced."""

    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        ctx.save_for_backward(np.isfinite(x))
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, dy):
        (finite,) = ctx.saved
        return np.where(finite, dy, np.zeros((), dy.dtype)), None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        from .elementwise import where

        (finite,) = ctx.saved
        return where(finite, dy, 0.0), None, None, None


def nan_to_num(input: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """nan -> `nan`, +inf -> `posinf` (the dtype's largest value by default), -inf -> `neginf` (its lowest)."""
    check_tensor("nan_to_num", "input", input)
    if input._array.dtype.kind != "f":
        return input._wrap(input._array.copy())
    info = np.finfo(input._array.dtype)
    return NanToNum.apply(input, float(nan), float(info.max if posinf is None else posinf),
                          float(info.min if neginf is None else neginf))
