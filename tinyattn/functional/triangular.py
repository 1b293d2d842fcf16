"""tril and triu: the lower or upper triangle of every matrix in a batch (the last two axes).

Element (i, j) is kept when j - i <= diagonal (tril) or j - i >= diagonal (triu); diagonal 0 is
the main diagonal, > 0 above it, < 0 below it. The mask is built from two aranges on the input's
device, so the op runs where the tensor lives.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Variable
from ..autograd.function import constant
from ..backend import backend_of
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "Tril", "tril", "Triu", "triu",
]


def _keep(x, diagonal, upper):
    """(rows, cols) bool mask of the kept elements, on x's device."""
    xp = backend_of(x).xp
    rows, cols = x.shape[-2:]
    offset = xp.arange(cols, dtype=np.int64).reshape(1, cols) - xp.arange(rows, dtype=np.int64).reshape(rows, 1)
    return offset >= diagonal if upper else offset <= diagonal


class Tril(Function):
    """y = x where j - i <= diagonal, else 0 (over the last two axes).  dx = dy masked the same way."""

    @staticmethod
    def forward(ctx, x, diagonal, upper):
        keep = _keep(x, diagonal, upper)
        ctx.save_for_backward(keep)
        return np.where(keep, x, np.zeros((), dtype=x.dtype))

    @staticmethod
    def backward(ctx, dy):
        (keep,) = ctx.saved
        return np.where(keep, dy, np.zeros((), dtype=dy.dtype)), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy times the constant mask (linear in dy)."""
        (keep,) = ctx.saved
        return dy * constant(dy, keep.astype(dy._array.dtype)), None, None


class Triu(Tril):
    """y = x where j - i >= diagonal, else 0 (over the last two axes).  dx = dy masked the same way."""


def _check(op, x, diagonal):
    if not isinstance(x, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{op}: the input must have at least 2 dimensions, got shape {tuple(x.shape)}")
    if isinstance(diagonal, (bool, np.bool_)) or not isinstance(diagonal, (int, np.integer)):
        raise TypeError(f"{op}: diagonal must be an int, got {diagonal!r}")
    return int(diagonal)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of x's last two axes (element (i, j) kept when j - i <= diagonal), 0 elsewhere."""
    return Tril.apply(x, _check("tril", x, diagonal), False)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of x's last two axes (element (i, j) kept when j - i >= diagonal), 0 elsewhere."""
    return Triu.apply(x, _check("triu", x, diagonal), True)
