"""Floor division and remainder with Python's (and PyTorch's) rounding: a // b rounds toward -inf, and
a % b = a - (a // b)·b takes the sign of the divisor.

    5 // 3 = 1    -5 // 3 = -2    5 % -3 = -1    -5 % 3 = 1

numpy's floor_divide and remainder compute exactly these (floats too, through fmod, as PyTorch does).
On the GPU they are computed on the host: DeviceArray has no floor, so a tensor there costs a copy
of the operands down and of the result up.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Variable
from ..backend import is_device_array, move
from .checks import sum_to_shape, sum_to_shape_graph
from .elementwise import array_of, operands, saved_constant
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Operand
    from ..tensor import Tensor

__all__ = [
    "floor_divide", "FloorDivide", "Remainder", "remainder",
]


def _on_host(ufunc, a, b):
    """ufunc(a, b), on the host when an operand is on the GPU, the result back on that device."""
    device = "cuda" if is_device_array(a) or is_device_array(b) else "cpu"
    if device == "cpu":
        return ufunc(a, b)
    return move(np.asarray(ufunc(move(a, "cpu"), move(b, "cpu")), order="C"), device)


class FloorDivide(Function):
    """y = floor(a / b) elementwise (Python's //).

    Not differentiable, as in PyTorch: the quotient is a step function, and PyTorch raises when a
    gradient reaches it, so this backward raises too (the result still records the graph, as
    PyTorch's does).
    """

    @staticmethod
    def forward(ctx, a, b):
        return _on_host(np.floor_divide, a, b)

    @staticmethod
    def backward(ctx, dy):
        raise RuntimeError(
            "floor_divide: the derivative of a // b is not implemented (PyTorch does not implement it "
            "either: the quotient is piecewise constant); detach() the operands of // or use a / b"
        )

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return FloorDivide.backward(ctx, None)  # raises, as the plain backward does


class Remainder(Function):
    """y = a - floor(a / b) · b elementwise (Python's %: the sign of the divisor).

    da = dy,  db = -dy · floor(a / b)  (PyTorch's rule; each summed back to its input's shape).
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _on_host(np.remainder, a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        da = sum_to_shape(dy, np.shape(a)) if need_a else None
        db = None
        if need_b:
            with np.errstate(divide="ignore", invalid="ignore"):  # b = 0: -inf/nan, as in PyTorch
                db = sum_to_shape(-dy * _on_host(np.floor_divide, a, b), np.shape(b))
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = ctx.saved
        db = None
        if inputs[1] is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                quotient = saved_constant(dy, _on_host(np.floor_divide, a, b))  # piecewise constant
            db = sum_to_shape_graph(-dy * quotient, np.shape(b))
        return None if inputs[0] is None else sum_to_shape_graph(dy, np.shape(a)), db


def _integer_operands(op, a, b):
    a, b = operands(op, a, b)
    dtype = array_of(a if isinstance(a, Variable) else b).dtype
    if dtype == np.bool_:
        raise TypeError(f"{op}: not implemented for bool tensors (shapes {np.shape(array_of(a))} and "
                        f"{np.shape(array_of(b))}); convert them with .long() first")
    if dtype.kind in "iu":
        divisor = array_of(b)
        if bool((divisor == 0).any()):
            raise ZeroDivisionError(f"{op}: integer division by zero (divisor of shape {np.shape(divisor)})")
    return a, b


def floor_divide(a: Operand, b: Operand) -> Tensor:
    """a // b, rounding toward -inf (PyTorch's floor_divide; the same as div(a, b, rounding_mode='floor')).

    Integers stay integers (an integer divisor of 0 raises ZeroDivisionError); a float operand makes
    the result float, and x // 0.0 is ±inf or nan, as in PyTorch.
    """
    a, b = _integer_operands("floor_divide", a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return FloorDivide.apply(a, b)


def remainder(a: Operand, b: Operand) -> Tensor:
    """a % b with the sign of the divisor (PyTorch's remainder, Python's %); differentiable in both."""
    a, b = _integer_operands("remainder", a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Remainder.apply(a, b)
