"""Reductions over any set of axes, with keepdim: sum, mean, amax/amin, var.

max/min (with their (values, indices) form along one dim) live in selection.py.

Backward of a reduction over axes R broadcasts dy back over R: with keepdim=False the
reduced axes are first reinserted as size-1 axes.
"""
import math

import numpy as np

from ..autograd import Function
from .checks import check_float, normalize_dims


def _expand_back(dy, shape, dims, keepdim):
    if not keepdim:
        dy = np.expand_dims(dy, dims)
    return np.broadcast_to(dy, shape)


class Sum(Function):
    """y = Σ_R x.  dx = dy broadcast over R."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        return np.sum(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        return _expand_back(dy, ctx.shape, ctx.dims, ctx.keepdim), None, None


class Mean(Function):
    """y = (1/n) Σ_R x, n = the number of reduced elements.  dx = dy / n broadcast over R."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        ctx.n = math.prod(x.shape[d] for d in dims)
        return np.mean(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        return _expand_back(dy / ctx.n, ctx.shape, ctx.dims, ctx.keepdim), None, None


class Amax(Function):
    """y = max_R x.  dx = dy at the maximising elements, shared evenly between ties (as PyTorch's
    amax, and its max() with no dim)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        y = np.max(x, axis=dims, keepdims=True)
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y if keepdim else np.squeeze(y, axis=dims)

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved
        winners = (x == y).astype(dy.dtype)
        share = winners / winners.sum(axis=ctx.dims, keepdims=True)
        return _expand_back(dy, x.shape, ctx.dims, ctx.keepdim) * share, None, None


class Amin(Amax):
    """y = min_R x.  dx = dy at the minimising elements, shared evenly between ties (Amax's backward)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        y = np.min(x, axis=dims, keepdims=True)
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y if keepdim else np.squeeze(y, axis=dims)


class Var(Function):
    """y = Σ_R (x - x̄)² / (n - correction).  dx = dy · 2 (x - x̄) / (n - correction)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, correction):
        mean = np.mean(x, axis=dims, keepdims=True)
        centered = x - mean
        n = math.prod(x.shape[d] for d in dims)
        ctx.save_for_backward(centered)
        ctx.dims, ctx.keepdim, ctx.denominator = dims, keepdim, n - correction if n > correction else 0
        with np.errstate(divide="ignore", invalid="ignore"):  # n <= correction gives inf/nan, as in PyTorch
            return np.sum(centered * centered, axis=dims, keepdims=keepdim) / x.dtype.type(ctx.denominator)

    @staticmethod
    def backward(ctx, dy):
        (centered,) = ctx.saved
        dy = _expand_back(dy, centered.shape, ctx.dims, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):  # n <= correction: nan, as in PyTorch
            scale = np.divide(centered.dtype.type(2), centered.dtype.type(ctx.denominator))
            return dy * centered * scale, None, None, None


def _dims(op, x, dim, axis):
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    return normalize_dims(op, dim, x.ndim)


def sum(x, dim=None, keepdim=False, *, axis=None):
    return Sum.apply(x, _dims("sum", x, dim, axis), keepdim)


def mean(x, dim=None, keepdim=False, *, axis=None):
    check_float("mean", x._array)
    return Mean.apply(x, _dims("mean", x, dim, axis), keepdim)


def amax(x, dim=None, keepdim=False, *, axis=None):
    if x._array.size == 0:
        raise ValueError(f"amax: cannot reduce an empty tensor of shape {x.shape}")
    return Amax.apply(x, _dims("amax", x, dim, axis), keepdim)


def amin(x, dim=None, keepdim=False, *, axis=None):
    if x._array.size == 0:
        raise ValueError(f"amin: cannot reduce an empty tensor of shape {x.shape}")
    return Amin.apply(x, _dims("amin", x, dim, axis), keepdim)


def var(x, dim=None, *, correction=1, keepdim=False, unbiased=None, axis=None):
    """Variance with Bessel's correction by default (correction=1), as in PyTorch."""
    check_float("var", x._array)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var.apply(x, _dims("var", x, dim, axis), keepdim, correction)
