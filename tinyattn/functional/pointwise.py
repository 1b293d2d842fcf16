"""More elementwise ops of two or three tensors, PyTorch's names: addcmul, addcdiv, lerp, atan2, hypot,
logaddexp, fmod, and diff, median (values with their indices along a dim); in-place forms addcmul_,
addcdiv_, lerp_, relu_, sigmoid_, tanh_ (functional/inplace.py's rules)."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..autograd import Function, Variable
from . import elementwise as ew
from .checks import check_tensor, normalize_dims, sum_to_shape, sum_to_shape_graph, on_host
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._typing import Number, Operand
    from ..tensor import Tensor

__all__ = [
    "addcdiv", "addcdiv_", "addcmul", "addcmul_", "arctan2", "Atan2", "atan2", "clamp_max", "clamp_min", "diff",
    "fill_diagonal_", "Fmod", "fmod", "hypot", "INPLACE_NAMES", "inplace_ops", "lerp", "lerp_", "LogAddExp",
    "logaddexp", "median", "MedianResult", "relu_", "sigmoid_", "tanh_",
]

MedianResult = namedtuple("MedianResult", ["values", "indices"])


def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Number = 1) -> Tensor:
    """input + value · tensor1 · tensor2 (broadcast)."""
    prod = ew.mul(tensor1, tensor2)
    return ew.add(input, prod if value == 1 else ew.mul(prod, value))


def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Number = 1) -> Tensor:
    """input + value · tensor1 / tensor2 (broadcast)."""
    quot = ew.div(tensor1, tensor2)
    return ew.add(input, quot if value == 1 else ew.mul(quot, value))


def lerp(input: Tensor, end: Tensor, weight: Operand) -> Tensor:
    """input + weight · (end - input); weight a number or a tensor (broadcast)."""
    check_tensor("lerp", "input", input)
    check_tensor("lerp", "end", end)
    if input.dtype != end.dtype:
        raise TypeError(f"lerp: expected end to have the input's dtype {input.dtype}, got {end.dtype}")
    return ew.add(input, ew.mul(weight, ew.sub(end, input)) if isinstance(weight, Variable)
                  else ew.mul(ew.sub(end, input), weight))


@on_host
class Atan2(Function):
    """y = atan2(a, b), the angle of the point (b, a).  da = dy · b / (a² + b²), db = -dy · a / (a² + b²)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.arctan2(a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = a * a + b * b
            da = sum_to_shape(dy * b / r2, ctx.shapes[0]) if need_a else None
            db = sum_to_shape(-dy * a / r2, ctx.shapes[1]) if need_b else None
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = ctx.saved
        av, bv = ew.graph_operand(inputs[0], a, dy), ew.graph_operand(inputs[1], b, dy)
        r2 = av * av + bv * bv
        return (None if inputs[0] is None else sum_to_shape_graph(dy * bv / r2, ctx.shapes[0]),
                None if inputs[1] is None else sum_to_shape_graph(-dy * av / r2, ctx.shapes[1]))


def atan2(input: Tensor, other: Tensor) -> Tensor:
    a, b = ew.operands("atan2", input, other)
    if ew.array_of(a).dtype.kind != "f":
        a, b = (ew.float32_constant(t) for t in (a, b))
    return Atan2.apply(a, b)


arctan2 = atan2


@on_host
class LogAddExp(Function):
    """y = ln(e^a + e^b), computed stably.  da = dy · e^(a - y), db = dy · e^(b - y)."""

    @staticmethod
    def forward(ctx, a, b):
        y = np.logaddexp(a, b)
        ctx.save_for_backward(a, b, y)
        ctx.shapes = (np.shape(a), np.shape(b))
        return y

    @staticmethod
    def backward(ctx, dy):
        a, b, y = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        with np.errstate(invalid="ignore"):
            da = sum_to_shape(dy * np.exp(a - y), ctx.shapes[0]) if need_a else None
            db = sum_to_shape(dy * np.exp(b - y), ctx.shapes[1]) if need_b else None
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b, _ = ctx.saved
        av, bv = ew.graph_operand(inputs[0], a, dy), ew.graph_operand(inputs[1], b, dy)
        y = LogAddExp.apply(av, bv)  # recomputed from the operands, so that it is differentiated
        return (None if inputs[0] is None else sum_to_shape_graph(dy * ew.Exp.apply(av - y), ctx.shapes[0]),
                None if inputs[1] is None else sum_to_shape_graph(dy * ew.Exp.apply(bv - y), ctx.shapes[1]))


def logaddexp(input: Tensor, other: Tensor) -> Tensor:
    a, b = ew.operands("logaddexp", input, other)
    if ew.array_of(a).dtype.kind != "f":
        a, b = (ew.float32_constant(t) for t in (a, b))
    return LogAddExp.apply(a, b)


def hypot(input: Tensor, other: Tensor) -> Tensor:
    """√(a² + b²)."""
    return ew.sqrt(ew.add(ew.mul(input, input), ew.mul(other, other)))


@on_host
class Fmod(Function):
    """y = a - trunc(a / b) · b (the sign of a, C's fmod).  da = dy, db = -dy · trunc(a / b)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.fmod(a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        da = sum_to_shape(dy, ctx.shapes[0]) if need_a else None
        with np.errstate(divide="ignore", invalid="ignore"):
            db = sum_to_shape(-dy * np.trunc(a / b), ctx.shapes[1]) if need_b else None
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = ctx.saved
        db = None
        if inputs[1] is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                quotient = ew.saved_constant(dy, np.trunc(a / b))  # piecewise constant
            db = sum_to_shape_graph(-dy * quotient, ctx.shapes[1])
        return None if inputs[0] is None else sum_to_shape_graph(dy, ctx.shapes[0]), db


def fmod(input: Tensor, other: Operand) -> Tensor:
    a, b = ew.operands("fmod", input, other)
    if ew.array_of(a).dtype.kind != "f":
        if np.any(np.asarray(ew.array_of(b)) == 0):
            raise ZeroDivisionError("fmod: integer division by zero")
        like = a if isinstance(a, Variable) else b
        return like._wrap(np.fmod(ew.array_of(a), ew.array_of(b)))
    return Fmod.apply(a, b)


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None,
         append: Tensor | None = None) -> Tensor:
    """The n-th forward difference along dim: out[i] = x[i+1] - x[i] (applied n times); prepend/append are
    joined to input along dim first. Bool tensors give x[i+1] != x[i]."""
    from .shape import cat, getitem

    check_tensor("diff", "input", input)
    if input.ndim == 0:
        raise ValueError("diff: expected at least a 1-dimensional tensor")
    d = normalize_dims("diff", dim, input.ndim)[0]
    parts = [p for p in (prepend, input, append) if p is not None]
    x = cat(parts, d) if len(parts) > 1 else input
    lead = (slice(None),) * d
    for _ in range(int(n)):
        if x.shape[d] == 0:
            break
        hi, lo = getitem(x, lead + (slice(1, None),)), getitem(x, lead + (slice(None, -1),))
        x = ew.ne(hi, lo) if x.dtype == np.bool_ else ew.sub(hi, lo)
    return x


def median(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """No dim: the lower median of all elements (a 0-d tensor). With dim: (values, indices), the lower
    median along dim and where it is; the gradient goes to that element (as max(dim))."""
    from .selection import Gather, sort_order

    check_tensor("median", "input", input)
    if dim is None:
        from .shape import reshape

        flat = reshape(input, -1)
        if flat.shape[0] == 0:
            return input._wrap(np.asarray(np.nan, dtype=input.dtype))
        values, _ = median(flat, 0)
        return values
    d = normalize_dims("median", dim, input.ndim)
    d = d[0] if d else 0
    x = input if input.ndim else input.reshape(1)
    n = x.shape[d]
    if n == 0:
        raise ValueError(f"median: cannot compute the median of an empty dim {dim} (shape {tuple(input.shape)})")
    order = sort_order(x._array, d, False)
    index = np.take(order, [(n - 1) // 2], axis=d)
    values = Gather.apply(x, index, d, keepdim or input.ndim == 0)
    indices = x._wrap(index if keepdim else np.squeeze(index, axis=d))
    if input.ndim == 0:
        return MedianResult(values.reshape(()), indices.reshape(()))
    return MedianResult(values, indices)


# ---- in place ------------------------------------------------------------------------------------


def _inplace(name, compute_name):
    def op(x, *args, **kwargs):
        from .inplace import apply_inplace
        import sys

        compute = getattr(sys.modules[__name__], compute_name, None) or getattr(ew, compute_name)
        operands = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Variable)]
        return apply_inplace(name, x, lambda t: compute(t, *args, **kwargs), operands)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"In place: x ← {compute_name}(x, ...)."
    return op


addcmul_ = _inplace("addcmul_", "addcmul")
addcdiv_ = _inplace("addcdiv_", "addcdiv")
lerp_ = _inplace("lerp_", "lerp")
relu_ = _inplace("relu_", "relu")
sigmoid_ = _inplace("sigmoid_", "sigmoid")
tanh_ = _inplace("tanh_", "tanh")


def _functional_inplace(name):
    """x.<name>_(...) = x ← functional.<name>(x, ...), in place (inplace.py's rules)."""
    def op(x, *args, **kwargs):
        from .. import functional
        from .inplace import apply_inplace

        compute = getattr(functional, name)
        operands = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Variable)]
        return apply_inplace(f"{name}_", x, lambda t: compute(t, *args, **kwargs), operands)

    op.__name__ = op.__qualname__ = f"{name}_"
    op.__doc__ = f"In place: x ← {name}(x, ...)."
    return op


INPLACE_NAMES = (
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log", "log1p", "log2",
    "log10", "exp2", "expm1", "rsqrt", "reciprocal", "square", "sign", "sgn", "floor", "ceil", "round", "trunc", "fix",
    "frac", "erf", "logit", "nan_to_num", "tril", "triu", "cumsum", "cumprod", "atan2", "hypot", "fmod", "xlogy",
    "deg2rad", "rad2deg", "absolute", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "arctan2",
    "exp", "sqrt", "abs",
)
inplace_ops = {f"{n}_": _functional_inplace(n) for n in INPLACE_NAMES}
inplace_ops["negative_"] = _functional_inplace("neg")
inplace_ops["clamp_min_"] = _functional_inplace("clamp_min")
inplace_ops["clamp_max_"] = _functional_inplace("clamp_max")


def clamp_min(input: Tensor, min: Operand) -> Tensor:
    from .selection import clamp

    return clamp(input, min=min)


def clamp_max(input: Tensor, max: Operand) -> Tensor:
    from .selection import clamp

    return clamp(input, max=max)


def fill_diagonal_(input: Tensor, fill_value: Number, wrap: bool = False) -> Tensor:
    """The main diagonal (all indices equal) set to fill_value in place; for a tall 2-D matrix wrap=True
    restarts the diagonal every (columns + 1) rows, as NumPy's fill_diagonal."""
    from .elementwise import masked_fill
    from .inplace import apply_inplace

    check_tensor("fill_diagonal_", "input", input)
    if input.ndim < 2:
        raise ValueError(f"fill_diagonal_: dimensions must be larger than 1, got shape {tuple(input.shape)}")
    if input.ndim > 2 and len(set(input.shape)) != 1:
        raise ValueError(f"fill_diagonal_: all dimensions of input must be of equal length, got {tuple(input.shape)}")
    mask = np.zeros(input.shape, dtype=bool)
    np.fill_diagonal(mask, True, wrap=wrap)
    return apply_inplace("fill_diagonal_", input, lambda t: masked_fill(t, t._wrap(mask), fill_value), (),
                  same_kind=False)
