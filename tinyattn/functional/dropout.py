"""dropout: zero each element with probability p in training, scale the rest by 1/(1-p)."""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Function, Variable
from ..backend import backend_of
from ..backend_contract import DROPOUT
from ..random import default_generator
from .checks import check_float, check_tensor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "Dropout", "dropout", "FusedDropout",
]


class Dropout(Function):
    """y = x ∘ m, m_i = 1/(1-p) with probability 1-p else 0 (drawn in the forward pass).

    dx = dy ∘ m (the same mask).
    """

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        return dy * mask, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy ∘ m with recorded ops: the mask is a constant of the forward, so the second derivative in x
        is 0 and the one in dy is m again."""
        (mask,) = ctx.saved
        return dy * mask, None


class FusedDropout(Function):
    """Dropout on a backend with the fused kernel (capability DROPOUT): y = x ∘ m, m_i = keep_i / (1-p), keep
    drawn inside the kernel from `seed` (kernels/cpu/dropout.py) and saved as one byte per element.

    dx = dy ∘ m (the same mask).
    """

    @staticmethod
    def forward(ctx, x, p, seed):
        y, keep = backend_of(x).dropout(x, p, seed)
        ctx.save_for_backward(keep)
        ctx.p = p
        return y

    @staticmethod
    def backward(ctx, dy):
        (keep,) = ctx.saved
        return backend_of(dy).dropout_backward(dy, keep, ctx.p), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy ∘ m with recorded ops (m a constant of the forward, as in `Dropout`)."""
        from ..autograd.function import constant

        (keep,) = ctx.saved
        return dy * constant(dy, (keep * (1.0 / (1.0 - ctx.p))).astype(dy._array.dtype)), None, None


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    check_tensor("dropout", "input", x)
    check_float("dropout", x._array)
    if isinstance(p, Variable) and p._array.size == 1:
        p = p.item()  # PyTorch takes a one-element tensor as p
    if not isinstance(p, numbers.Real):  # (bools pass, as in PyTorch: True is p = 1)
        raise TypeError(f"dropout: probability p must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    be = backend_of(x._array)
    if 0.0 < p < 1.0 and x._array.dtype in (np.float32, np.float64):
        # the mask is a function of one 64-bit seed from the generator (kernels/cpu/dropout.py): drawn inside
        # the kernel where the backend has it, else by the CPU kernel on the host and copied over (same seed,
        # same mask on every device)
        seed = int(default_generator().integers(0, 1 << 64, dtype=np.uint64))
        if be.supports(DROPOUT):
            return FusedDropout.apply(x, float(p), seed)
        mask, _ = backend_of(np.empty(0)).dropout(np.ones(x.shape, x._array.dtype), float(p), seed)   # (1 ∘ m)
        return Dropout.apply(x, be.asarray(mask))
    keep = default_generator().random(x.shape) >= p  # drawn on the host, then copied to x's device
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return Dropout.apply(x, backend_of(x._array).asarray((keep * scale).astype(x.dtype)))
