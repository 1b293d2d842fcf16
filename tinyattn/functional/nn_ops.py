"""torch.nn.functional's helpers that are not layers: pad, one_hot, normalize, cosine_similarity,
pairwise_distance."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..autograd import Function
from .checks import check_tensor, host_result, on_host
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .._typing import Number
    from ..tensor import Tensor

__all__ = [
    "cosine_similarity", "normalize", "one_hot", "Pad", "pad", "PadBackward", "pairwise_distance",
]


@on_host
class Pad(Function):
    """y = x padded by `widths` ((before, after) per axis, in axis order; negative widths crop).

    mode 'constant' fills with `value`; 'reflect' mirrors without the edge, 'replicate' repeats the edge,
    'circular' wraps around. dx = dy's inner block (constant), or dy with every padded element's gradient
    added back to the element it was copied from (the other modes)."""

    @staticmethod
    def forward(ctx, x, widths, mode, value):
        ctx.shape, ctx.widths, ctx.mode = x.shape, widths, mode
        crop = tuple(slice(max(-a, 0), n - max(-b, 0)) for (a, b), n in zip(widths, x.shape))
        xc = x[crop]
        ctx.crop, ctx.cropped = crop, xc.shape
        grow = [(max(a, 0), max(b, 0)) for a, b in widths]
        if mode == "constant":
            return np.pad(xc, grow, mode="constant", constant_values=value)
        numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
        return np.pad(xc, grow, mode=numpy_mode)

    @staticmethod
    def backward(ctx, dy):
        grow = [(max(a, 0), max(b, 0)) for a, b in ctx.widths]
        if ctx.mode == "constant":
            inner = dy[tuple(slice(a, a + n) for (a, _), n in zip(grow, ctx.cropped))]
        else:  # route each output element's gradient to its source element: pad an index array the same way
            numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[ctx.mode]
            n = int(np.prod(ctx.cropped))
            source = np.pad(np.arange(n).reshape(ctx.cropped), grow, mode=numpy_mode)
            inner = np.bincount(source.reshape(-1), weights=dy.reshape(-1), minlength=n)
            inner = inner.astype(dy.dtype).reshape(ctx.cropped)
        dx = np.zeros_like(dy, shape=ctx.shape)
        dx[ctx.crop] = inner
        return dx, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward as a recorded op, PadBackward (linear in dy), whose own derivative is this Pad again."""
        return PadBackward.apply(dy, ctx.shape, ctx.widths, ctx.mode, ctx.crop, ctx.cropped), None, None, None


@on_host
class PadBackward(Function):
    """Pad's backward as an op of its own, for create_graph=True: dx = Pᵀ dy, where Pad's forward is y = P x (a
    crop, then a constant fill or copies of x's elements: each y element is 0 or one x element). Pᵀ adds
    every element of dy back to the one it was copied from (Pad.backward computes it). Linear in dy, with
    adjoint P: its backward is Pad's forward with fill 0, its differentiable backward Pad itself."""

    @staticmethod
    def forward(ctx, dy, shape, widths, mode, crop, cropped):
        ctx.widths, ctx.mode = widths, mode
        pad_ctx = SimpleNamespace(shape=shape, widths=widths, mode=mode, crop=crop, cropped=cropped)
        return Pad.backward(pad_ctx, dy)[0]

    @staticmethod
    def backward(ctx, ddx):
        return Pad.forward(SimpleNamespace(), ddx, ctx.widths, ctx.mode, 0), None, None, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, ddx):
        return Pad.apply(ddx, ctx.widths, ctx.mode, 0), None, None, None, None, None


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Number | None = None) -> Tensor:
    """PyTorch's F.pad: `pad` lists (left, right) for the last dim, then (top, bottom) for the one before,
    and so on (last dim first). Modes: 'constant' (value, default 0), 'reflect', 'replicate', 'circular'."""
    check_tensor("pad", "input", input)
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2 * ndim ({2 * input.ndim}), got {len(pad)}")
    if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: padding must be ints, got {pad}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    for d, ((a, b), n) in enumerate(zip(widths, input.shape)):
        if n + a + b < 0 or (mode == "constant" and n + min(a, 0) + min(b, 0) < 0):
            raise ValueError(f"pad: the padded size of dim {d} would be negative (size {n}, pad ({a}, {b}))")
        if mode == "reflect" and (a >= n or b >= n) and (a or b):
            raise ValueError(f"pad: reflect padding ({a}, {b}) must be less than the size {n} of dim {d}")
        if mode in ("replicate", "circular", "reflect") and n == 0 and (a or b):
            raise ValueError(f"pad: {mode} padding of an empty dim {d}")
        if mode == "circular" and (a > n or b > n):
            raise ValueError(f"pad: circular padding ({a}, {b}) may be at most the size {n} of dim {d}")
    if mode != "constant":
        padded = len(pad) // 2
        if input.ndim not in (padded + 1, padded + 2):
            raise NotImplementedError(f"pad: {mode} padding of {padded} dims takes a {padded + 1}-D or "
                                      f"{padded + 2}-D input, got shape {tuple(input.shape)}")
    fill = 0 if value is None else value
    if input._array.dtype.kind != "f" and isinstance(fill, float) and not float(fill).is_integer():
        raise TypeError(f"pad: value {fill} does not fit the input's dtype {input.dtype}")
    return Pad.apply(input, tuple(widths), mode, fill)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """An int64 tensor of shape tensor.shape + (num_classes,), 1 at each class index (num_classes=-1: one
    more than the largest index)."""
    check_tensor("one_hot", "tensor", tensor)
    a = tensor.numpy()
    if a.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an integer (int64) tensor of class indices, got dtype {a.dtype}")
    if num_classes == -1:
        if a.size == 0:
            raise ValueError("one_hot: can not infer the total number of classes from an empty tensor")
        num_classes = int(a.max()) + 1
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got values from {a.min()} to {a.max()}")
    out = np.zeros(a.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, a[..., None].astype(np.int64), 1, axis=-1)
    return host_result(tensor, out)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(‖input‖_p along dim, eps), PyTorch's F.normalize."""
    from .elementwise import div
    from .reduction import vector_norm
    from .selection import clamp

    check_tensor("normalize", "input", input)
    return div(input, clamp(vector_norm(input, p, dim, keepdim=True), min=eps).expand_as(input))


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Σ x1 x2 / max(‖x1‖ ‖x2‖, eps) along dim (x1 and x2 broadcast)."""
    from .elementwise import div, mul, sqrt
    from .reduction import sum
    from .selection import clamp

    check_tensor("cosine_similarity", "x1", x1)
    check_tensor("cosine_similarity", "x2", x2)
    w12 = sum(mul(x1, x2), dim)
    n12 = sqrt(clamp(mul(sum(mul(x1, x1), dim), sum(mul(x2, x2), dim)), min=eps * eps))
    return div(w12, n12)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """‖x1 - x2 + eps‖_p along the last dim."""
    from .elementwise import add, sub
    from .reduction import vector_norm

    return vector_norm(add(sub(x1, x2), eps), p, -1, keepdim)
