"""softmax and log_softmax along any dim, each one fused Numba kernel forward and backward.

`softmax_composite` builds the same function from primitive ops; tests hold the two together.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import backend_of
from ..dtypes import as_dtype
from .checks import check_float, normalize_dims
from . import elementwise as ew, reduction as red
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import DType
    from ..tensor import Tensor

__all__ = [
    "log_softmax", "LogSoftmax", "Softmax", "softmax", "softmax_composite",
]


class Softmax(Function):
    """y = softmax(x) along `dim`: y_i = e^(x_i - m) / Σ_j e^(x_j - m), m = max_j x_j.

    Backward: dx = y * (dy - Σ_j dy_j y_j), the sum along `dim`.
    """

    fresh_grads = True  # the backward kernel's dx is a new array (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, x, dim):
        y = backend_of(x).softmax(x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return backend_of(dy).softmax_backward(y, dy, ctx.dim), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = y ∘ (dy - Σ_j dy_j y_j) with recorded ops, y recomputed from x by this op (so it is differentiated
        too)."""
        y = Softmax.apply(inputs[0], ctx.dim)
        return y * (dy - (dy * y).sum(ctx.dim, keepdim=True)), None


class LogSoftmax(Function):
    """y = log softmax(x) = x - m - log Σ_j e^(x_j - m) along `dim`.

    Backward: dx = dy - e^y Σ_j dy_j  (e^y is the softmax).
    """

    fresh_grads = True

    @staticmethod
    def forward(ctx, x, dim):
        y = backend_of(x).log_softmax(x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return backend_of(dy).log_softmax_backward(y, dy, ctx.dim), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy - softmax(x) Σ_j dy_j with recorded ops (softmax(x) = e^y, from x by Softmax)."""
        return dy - Softmax.apply(inputs[0], ctx.dim) * dy.sum(ctx.dim, keepdim=True), None


def _dim(op, x, dim):
    check_float(op, x._array)
    if dim is None:
        raise TypeError(f"{op}: pass dim explicitly (PyTorch's implicit dim is deprecated)")
    if x.ndim == 0:
        raise ValueError(f"{op}: expected at least 1 dimension, got a scalar")
    return normalize_dims(op, dim, x.ndim)[0]


def softmax(x: Tensor, dim: int, dtype: DType = None) -> Tensor:
    """softmax along dim; with dtype, x is cast to it first (PyTorch's dtype=)."""
    x = _cast_first(x, dtype, "softmax")
    return Softmax.apply(x, _dim("softmax", x, dim))


def log_softmax(x: Tensor, dim: int, dtype: DType = None) -> Tensor:
    """log_softmax along dim; with dtype, x is cast to it first (PyTorch's dtype=)."""
    x = _cast_first(x, dtype, "log_softmax")
    return LogSoftmax.apply(x, _dim("log_softmax", x, dim))


def _cast_first(x, dtype, op):
    return x if dtype is None else ew.cast(x, as_dtype(dtype, op))


def softmax_composite(x, dim):
    """The same softmax from primitive ops (amax, sub, exp, sum, div): the reference path."""
    shifted = ew.sub(x, red.amax(x, dim, keepdim=True).detach())
    e = ew.exp(shifted)
    return ew.div(e, red.sum(e, dim, keepdim=True))
