"""layer_norm as one fused Function with a hand-derived backward."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..autograd import Function
from ..backend import backend_of
from . import elementwise as ew, reduction as red
from .checks import check_float, check_tensor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Shape
    from ..tensor import Tensor

__all__ = [
    "layer_norm", "layer_norm_composite", "LayerNorm", "normalized_shape_arg",
]


class LayerNorm(Function):
    """Normalise over the last D axes (n = their element count), then scale and shift.

        μ = (1/n) Σ x,   σ² = (1/n) Σ (x - μ)²,   r = 1/√(σ² + eps)
        x̂ = (x - μ) r,   y = x̂ ∘ w + b

    Backward, with g = dy ∘ w (the gradient reaching x̂):
        dx = r · (g - mean(g) - x̂ ∘ mean(g ∘ x̂))      (means over the normalised axes)
        dw = Σ_batch dy ∘ x̂,    db = Σ_batch dy
    Both directions are one fused kernel over rows of n elements (kernels/cpu/layer_norm.py).
    """

    fresh_grads = True  # every gradient is a new array (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, x, weight, bias, ndims, eps):
        shape = x.shape
        normalized_shape = shape[len(shape) - ndims :]
        n = math.prod(normalized_shape)
        be = backend_of(x)
        w = _filled(be.xp, n, x.dtype, 1) if weight is None else weight.reshape(n)
        b = _filled(be.xp, n, x.dtype, 0) if bias is None else bias.reshape(n)
        y, mean, rstd = be.layer_norm(x.reshape(-1, n), w, b, eps)
        # The input's and the weight's own arrays (their versions are checked at backward time: changing the
        # input in place after this is an error, as in PyTorch); each row's μ and rstd are fresh arrays of
        # this op's alone, kept on ctx (saved_versions need not look for an owner).
        ctx.save_for_backward(x, weight)
        ctx.stats = (mean, rstd)
        ctx.shapes = (shape, normalized_shape)
        ctx.eps = eps
        return y.reshape(shape)

    @staticmethod
    def _saved_rows(ctx):
        """(x as (R, n), mean, rstd, w (n,)) from what forward kept."""
        x, weight = ctx.saved
        mean, rstd = ctx.stats
        R = mean.shape[0]
        n = x.size // R
        w = _filled(backend_of(x).xp, n, x.dtype, 1) if weight is None else weight.reshape(n)
        return x.reshape(R, n), mean, rstd, w

    @staticmethod
    def backward(ctx, dy):
        rows, mean, rstd, w = LayerNorm._saved_rows(ctx)
        x_shape, normalized_shape = ctx.shapes
        dx, dw, db = backend_of(dy).layer_norm_backward(dy.reshape(rows.shape), rows, mean, rstd, w)
        need_w, need_b = ctx.needs_input_grad[1:3]
        return (dx.reshape(x_shape), dw.reshape(normalized_shape) if need_w else None,
                db.reshape(normalized_shape) if need_b else None, None, None)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """The backward above written in tensor ops (the fused kernel's math, not a re-run of the composite),
        for create_graph=True: μ, σ² (sums), r = (σ² + ε)^(-1/2) and x̂ = (x - μ) r recomputed from the input
        tensor (with forward's ε), then dx = r (g - mean(g) - x̂ mean(g x̂)) with g = dy ∘ w,
        dw = Σ_batch dy ∘ x̂, db = Σ_batch dy. An input that needs no gradient is a constant (x̂ from the saved
        input, μ and rstd; w as saved)."""
        from ..autograd.function import constant

        x, weight, bias = inputs[:3]
        rows, mean, rstd, w_saved = LayerNorm._saved_rows(ctx)
        x_shape, normalized_shape = ctx.shapes
        x_shape, normalized_shape = tuple(x_shape), tuple(normalized_shape)
        nd, n = len(normalized_shape), math.prod(normalized_shape)
        dims = tuple(range(len(x_shape) - nd, len(x_shape)))
        batch_dims = tuple(range(len(x_shape) - nd))
        if x is not None:
            centered = x - x.sum(dims, keepdim=True) * (1.0 / n)
            r = ((centered * centered).sum(dims, keepdim=True) * (1.0 / n) + ctx.eps) ** -0.5
            xhat = centered * r
        else:
            per_row = (len(mean), 1)
            xhat = ((constant(dy, rows) - constant(dy, mean.reshape(per_row)))
                    * constant(dy, rstd.reshape(per_row))).reshape(x_shape)
        dx = dw = db = None
        if x is not None:
            g = dy * (weight if weight is not None else constant(dy, w_saved.reshape(normalized_shape)))
            mean_g, mean_gx = g.sum(dims, keepdim=True) * (1.0 / n), (g * xhat).sum(dims, keepdim=True) * (1.0 / n)
            dx = r * (g - mean_g - xhat * mean_gx)
        if weight is not None:
            dw = (dy * xhat).sum(batch_dims) if batch_dims else dy * xhat
        if bias is not None:
            db = dy.sum(batch_dims) if batch_dims else dy * 1.0
        return dx, dw, db, None, None


_FILLED: dict = {}  # (n, dtype, value) -> a host vector of n values: the weight or bias layer_norm was not given


def _filled(xp, n, dtype, value):
    """A vector of n `value`s standing for a missing weight (1) or bias (0). Host vectors are made once
    per (n, dtype) and shared by every call (only ever read: by the kernels, and by differentiable_backward
    as a constant); a device's are made per call."""
    if xp is not np:
        return (xp.ones if value else xp.zeros)((n,), dtype)
    key = (n, dtype, value)
    vec = _FILLED.get(key)
    if vec is None:
        vec = _FILLED[key] = np.full(n, value, dtype)
    return vec


def layer_norm_composite(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """The same layer norm from primitive ops (mean, sub, mul, sqrt, div): the reference path."""
    n = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    dims = tuple(range(x.ndim - n, x.ndim))
    centered = ew.sub(x, red.mean(x, dims, keepdim=True))
    variance = red.mean(ew.mul(centered, centered), dims, keepdim=True)
    y = ew.div(centered, ew.sqrt(ew.add(variance, eps)))
    if weight is not None:
        y = ew.mul(y, weight)
    return ew.add(y, bias) if bias is not None else y


def normalized_shape_arg(op, normalized_shape):
    """normalized_shape (an int or a sequence of ints, numpy ints included) as a tuple of ints."""
    if type(normalized_shape) is tuple and all(type(n) is int and n >= 0 for n in normalized_shape):
        return normalized_shape  # the common case (nn.LayerNorm's own tuple), checked without conversions
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) for n in shape):
        raise TypeError(f"{op}: normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}")
    if any(n < 0 for n in shape):
        raise ValueError(f"{op}: normalized_shape must not have negative sizes, got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def layer_norm(x: Tensor, normalized_shape: Shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """PyTorch's F.layer_norm: x, weight and bias share one float dtype; eps is a number >= 0."""
    check_tensor("layer_norm", "input", x)
    if weight is not None:
        check_tensor("layer_norm", "weight", weight)
    if bias is not None:
        check_tensor("layer_norm", "bias", bias)
    normalized_shape = normalized_shape_arg("layer_norm", normalized_shape)
    n = len(normalized_shape)  # type: ignore[arg-type]
    xa = x._array
    shape = xa.shape
    if n == 0 or len(shape) < n or tuple(shape[len(shape) - n :]) != normalized_shape:
        raise ValueError(f"layer_norm: input shape {x.shape} does not end with normalized_shape {normalized_shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p._array.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} shape {p.shape} differs from normalized_shape {normalized_shape}")
    wa = None if weight is None else weight._array
    ba = None if bias is None else bias._array
    check_float("layer_norm", xa, wa, ba)
    if (wa is not None and wa.dtype != xa.dtype) or (ba is not None and ba.dtype != xa.dtype):
        dtypes = [("input", x)] + [(name, p) for name, p in (("weight", weight), ("bias", bias)) if p is not None]
        listed = ", ".join(f"{name} {t.dtype}" for name, t in dtypes)
        raise TypeError(f"layer_norm: dtypes differ: {listed}; convert them to one dtype (as PyTorch asks)")
    if type(eps) is not float:
        if not isinstance(eps, numbers.Real) or isinstance(eps, (bool, np.bool_)):
            raise TypeError(f"layer_norm: eps must be a non-negative number, got {type(eps).__name__}")
        eps = float(eps)
    if not eps >= 0:
        raise ValueError(f"layer_norm: eps must be a non-negative number, got {eps!r}")
    if xa.size == 0:
        # nothing to normalise (no rows, or rows of 0 elements): an empty result, still in the graph
        y = ew.mul(x, 0.0)
        for p in (weight, bias):
            if p is not None:
                y = ew.add(y, ew.mul(p, 0.0))
        return y
    return LayerNorm.apply(x, weight, bias, n, eps)
