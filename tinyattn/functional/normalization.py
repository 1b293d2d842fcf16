"""layer_norm as one fused Function with a hand-derived backward."""
import numpy as np

from ..autograd import Function
from .checks import check_float


class LayerNorm(Function):
    """Normalise over the last D axes (n = their element count), then scale and shift.

        μ = (1/n) Σ x,   σ² = (1/n) Σ (x - μ)²,   r = 1/√(σ² + eps)
        x̂ = (x - μ) r,   y = x̂ ∘ w + b

    Backward, with g = dy ∘ w (the gradient reaching x̂):
        dx = r · (g - mean(g) - x̂ ∘ mean(g ∘ x̂))      (means over the normalised axes)
        dw = Σ_batch dy ∘ x̂,    db = Σ_batch dy
    """

    @staticmethod
    def forward(ctx, x, weight, bias, ndims, eps):
        axes = tuple(range(x.ndim - ndims, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        centered = x - mu
        var = (centered * centered).mean(axis=axes, keepdims=True)
        rstd = 1.0 / np.sqrt(var + eps)
        xhat = centered * rstd
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.axes = axes
        y = xhat * weight if weight is not None else xhat
        return y + bias if bias is not None else y

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, weight = ctx.saved
        axes = ctx.axes
        batch_axes = tuple(range(dy.ndim - len(axes)))
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dw = db = None
        if need_x:
            g = dy * weight if weight is not None else dy
            dx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
        if need_w:
            dw = (dy * xhat).sum(axis=batch_axes)
        if need_b:
            db = dy.sum(axis=batch_axes)
        return dx, dw, db, None, None


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(normalized_shape)
    if n == 0 or tuple(x.shape[x.ndim - n :]) != normalized_shape or x.ndim < n:
        raise ValueError(f"layer_norm: input shape {x.shape} does not end with normalized_shape {normalized_shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} shape {p.shape} differs from normalized_shape {normalized_shape}")
    check_float("layer_norm", x.data, *(p.data for p in (weight, bias) if p is not None))
    return LayerNorm.apply(x, weight, bias, n, eps)
