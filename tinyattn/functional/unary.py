"""Elementwise math functions of one tensor, PyTorch's names: sin, cos, tan, log1p, expm1, log2, log10,
exp2, rsqrt, reciprocal, square, sign, floor/ceil/round/trunc/frac, sinh/cosh, atan, erf, and the
activations silu, leaky_relu, elu, softplus, hardtanh, relu6, mish, logsigmoid.

Each Function's docstring gives y = f(x) and the derivative its backward applies. Integer and bool
inputs of the float-valued functions become float32 first (torch.sin(int tensor) is float32), with no
gradient; sign/square/floor/... keep integer dtypes as PyTorch does.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import backend_of
from .checks import check_tensor, on_host
from .elementwise import Exp, Log, Minimum, Sigmoid, Tanh, saved_constant, where, zeros_graph
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "absolute", "Acos", "acos", "Acosh", "acosh", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctanh", "Asin",
    "asin", "Asinh", "asinh", "Atan", "atan", "Atanh", "atanh", "ceil", "Cos", "cos", "Cosh", "cosh", "deg2rad", "Elu",
    "elu", "Erf", "erf", "Exp2", "exp2", "Expm1", "expm1", "fix", "float_input", "floor", "Frac", "frac", "Hardtanh",
    "hardtanh", "leaky_relu", "LeakyRelu", "Log10", "log10", "Log1p", "log1p", "Log2", "log2", "Logit", "logit",
    "LogSigmoid", "logsigmoid", "Mish", "mish", "Piecewise", "positive", "rad2deg", "Reciprocal", "reciprocal", "relu6",
    "round", "Rsqrt", "rsqrt", "sgn", "sign", "signbit", "Silu", "silu", "Sin", "sin", "Sinh", "sinh", "Softplus",
    "softplus", "Square", "square", "Tan", "tan", "trunc", "Xlogy", "xlogy",
]


def float_input(op, x):
    """x, or x as float32 when it holds integers or bools (PyTorch's promotion for float-valued ops)."""
    check_tensor(op, "input", x)
    if x._array.dtype.kind != "f":
        return x._wrap(x._array.astype(np.float32))
    return x


class _Saved(Function):
    """Base: forward computes f(x) with the input saved; backward is dy * f'(x)."""

    @staticmethod
    def f(x):
        raise NotImplementedError

    @staticmethod
    def df(x):
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, x):
        ctx.save_for_backward(x)
        return cls.f(x)

    @classmethod
    def backward(cls, ctx, dy):
        (x,) = ctx.saved
        return dy * cls.df(x)

    @staticmethod
    def df_graph(x):
        """df with tensor ops on the input tensor x (recorded, for create_graph=True)."""
        raise NotImplementedError

    @classmethod
    def differentiable_backward(cls, ctx, inputs, dy):
        return dy * cls.df_graph(inputs[0])


class Sin(_Saved):
    """y = sin x.  dx = dy cos x."""
    f, df = staticmethod(np.sin), staticmethod(np.cos)

    @staticmethod
    def df_graph(x):
        return Cos.apply(x)


class Cos(_Saved):
    """y = cos x.  dx = -dy sin x."""
    f = staticmethod(np.cos)

    @staticmethod
    def df(x):
        return -np.sin(x)

    @staticmethod
    def df_graph(x):
        return -Sin.apply(x)


@on_host
class Tan(Function):
    """y = tan x.  dx = dy (1 + y²)."""

    @staticmethod
    def forward(ctx, x):
        y = np.tan(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * (1 + y * y)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        y = Tan.apply(inputs[0])
        return dy * (y * y + 1)


@on_host
class Sinh(_Saved):
    """y = sinh x.  dx = dy cosh x."""
    f, df = staticmethod(np.sinh), staticmethod(np.cosh)

    @staticmethod
    def df_graph(x):
        return Cosh.apply(x)


@on_host
class Cosh(_Saved):
    """y = cosh x.  dx = dy sinh x."""
    f, df = staticmethod(np.cosh), staticmethod(np.sinh)

    @staticmethod
    def df_graph(x):
        return Sinh.apply(x)


@on_host
class Atan(_Saved):
    """y = atan x.  dx = dy / (1 + x²)."""
    f = staticmethod(np.arctan)

    @staticmethod
    def df(x):
        return 1 / (1 + x * x)

    @staticmethod
    def df_graph(x):
        return Reciprocal.apply(x * x + 1)


@on_host
class Asin(_Saved):
    """y = asin x.  dx = dy / √(1 - x²)."""
    f = staticmethod(np.arcsin)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 / np.sqrt(1 - x * x)

    @staticmethod
    def df_graph(x):
        return Rsqrt.apply(1 - x * x)


@on_host
class Acos(_Saved):
    """y = acos x.  dx = -dy / √(1 - x²)."""
    f = staticmethod(np.arccos)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -1 / np.sqrt(1 - x * x)

    @staticmethod
    def df_graph(x):
        return -Rsqrt.apply(1 - x * x)


@on_host
class Log1p(_Saved):
    """y = ln(1 + x).  dx = dy / (1 + x)."""
    f = staticmethod(np.log1p)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore"):
            return 1 / (1 + x)

    @staticmethod
    def df_graph(x):
        return Reciprocal.apply(x + 1)


@on_host
class Log2(_Saved):
    """y = log₂ x.  dx = dy / (x ln 2)."""
    f = staticmethod(np.log2)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore"):
            return 1 / (x * x.dtype.type(math.log(2)))

    @staticmethod
    def df_graph(x):
        return Reciprocal.apply(x * math.log(2))


@on_host
class Log10(_Saved):
    """y = log₁₀ x.  dx = dy / (x ln 10)."""
    f = staticmethod(np.log10)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore"):
            return 1 / (x * x.dtype.type(math.log(10)))

    @staticmethod
    def df_graph(x):
        return Reciprocal.apply(x * math.log(10))


@on_host
class Expm1(Function):
    """y = e^x - 1.  dx = dy (y + 1)."""

    @staticmethod
    def forward(ctx, x):
        y = np.expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * (y + 1)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy * (Expm1.apply(inputs[0]) + 1)


@on_host
class Exp2(Function):
    """y = 2^x.  dx = dy y ln 2."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp2(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * y * y.dtype.type(math.log(2))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy * Exp2.apply(inputs[0]) * math.log(2)


class Rsqrt(Function):
    """y = 1/√x.  dx = -dy y³ / 2."""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(divide="ignore", invalid="ignore"):
            y = 1 / np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * (-0.5 * y * y * y).astype(y.dtype)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        y = Rsqrt.apply(inputs[0])
        return dy * (y * y * y * -0.5)


class Reciprocal(Function):
    """y = 1/x.  dx = -dy y²."""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(divide="ignore"):
            y = 1 / x
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return -dy * y * y

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        y = Reciprocal.apply(inputs[0])
        return -dy * y * y


@on_host
class Square(_Saved):
    """y = x².  dx = 2 dy x."""
    f = staticmethod(np.square)

    @staticmethod
    def df(x):
        return 2 * x

    @staticmethod
    def df_graph(x):
        return x * 2


@on_host
class Erf(_Saved):
    """y = erf x.  dx = dy 2/√π e^(-x²)."""

    @staticmethod
    def f(x):
        from ..kernels.cpu.special import erf  # compiled on first use

        return erf(x)

    @staticmethod
    def df(x):
        return x.dtype.type(2 / math.sqrt(math.pi)) * np.exp(-x * x)

    @staticmethod
    def df_graph(x):
        return Exp.apply(-(x * x)) * (2 / math.sqrt(math.pi))


@on_host
class Piecewise(Function):
    """y = f(x) for a piecewise-constant f (sign, floor, ceil, round, trunc): dx = 0, as PyTorch defines it."""

    @staticmethod
    def forward(ctx, x, f):
        return f(x)

    @staticmethod
    def backward(ctx, dy):
        return np.zeros_like(dy), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return zeros_graph(dy), None


@on_host
class Frac(Function):
    """y = x - trunc(x).  dx = dy."""

    @staticmethod
    def forward(ctx, x):
        return x - np.trunc(x)

    @staticmethod
    def backward(ctx, dy):
        return dy

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy


# ---- activations -------------------------------------------------------------------------------


class Silu(Function):
    """y = x σ(x).  dx = dy σ(x) (1 + x (1 - σ(x))).
    One pass each way (the backend's silu: on the CPU kernels/cpu/sigmoid.py); only x is saved, σ is
    recomputed in the backward."""

    fresh_grads = True  # the backward returns a new array

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend_of(x).silu(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return backend_of(dy).silu_backward(x, dy)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        x = inputs[0]
        s = Sigmoid.apply(x)
        return dy * s * (1 + x * (1 - s))


class LeakyRelu(Function):
    """y = x for x > 0, slope·x otherwise.  dx = dy for x > 0, slope·dy otherwise."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return np.where(x > 0, x, x * x.dtype.type(slope))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return np.where(x > 0, dy, dy * dy.dtype.type(ctx.slope)), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (x,) = ctx.saved
        return where(saved_constant(dy, x > 0), dy, dy * ctx.slope), None


@on_host
class Elu(Function):
    """y = x for x > 0, alpha (e^x - 1) otherwise.  dx = dy for x > 0, dy alpha e^x otherwise."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return np.where(x > 0, dy, dy * dy.dtype.type(ctx.alpha) * np.exp(np.minimum(x, 0))), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (x,) = ctx.saved
        negative = dy * ctx.alpha * Exp.apply(Minimum.apply(inputs[0], np.zeros((), x.dtype)))
        return where(saved_constant(dy, x > 0), dy, negative), None


@on_host
class Softplus(Function):
    """y = log(1 + e^(βx)) / β, and y = x where βx > threshold (PyTorch's linear region).
    dx = dy σ(βx), and dy in the linear region."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        bx = x * x.dtype.type(beta)
        soft = np.logaddexp(0, bx) / x.dtype.type(beta)
        return np.where(bx > threshold, x, soft).astype(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        bx = x * x.dtype.type(ctx.beta)
        s = 0.5 * (1 + np.tanh(0.5 * bx))
        return np.where(bx > ctx.threshold, dy, dy * s), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (x,) = ctx.saved
        linear = saved_constant(dy, x * x.dtype.type(ctx.beta) > ctx.threshold)
        return where(linear, dy, dy * Sigmoid.apply(inputs[0] * ctx.beta)), None, None


@on_host
class Hardtanh(Function):
    """y = clamp(x, lo, hi).  dx = dy strictly inside (lo, hi), 0 outside (PyTorch's hardtanh)."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(x, x.dtype.type(lo), x.dtype.type(hi))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        inside = (x > ctx.lo) & (x < ctx.hi)
        return np.where(inside, dy, np.zeros((), dy.dtype)), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (x,) = ctx.saved
        return where(saved_constant(dy, (x > ctx.lo) & (x < ctx.hi)), dy, 0.0), None, None


@on_host
class LogSigmoid(Function):
    """y = log σ(x) = -softplus(-x).  dx = dy (1 - σ(x))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return -np.logaddexp(0, -x).astype(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return dy * (0.5 * (1 - np.tanh(0.5 * x)))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy * Sigmoid.apply(-inputs[0])  # 1 - σ(x) = σ(-x)


@on_host
class Mish(Function):
    """y = x tanh(softplus(x)).  dx = dy (t + x σ(x) (1 - t²)), t = tanh(softplus(x))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * np.tanh(np.logaddexp(0, x)).astype(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        t = np.tanh(np.logaddexp(0, x)).astype(x.dtype)
        s = 0.5 * (1 + np.tanh(0.5 * x))
        return dy * (t + x * s * (1 - t * t))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """t from softplus with PyTorch's threshold 20 (the forward's logaddexp differs by < 1e-8 beyond it)."""
        x = inputs[0]
        t = Tanh.apply(Softplus.apply(x, 1.0, 20.0))
        return dy * (t + x * Sigmoid.apply(x) * (1 - t * t))


# ---- public functions ------------------------------------------------------------------------------


def _float_op(function: Any, name: str) -> Callable[[Tensor], Tensor]:
    def op(input):
        return function.apply(float_input(name, input))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = function.__doc__
    return op


sin = _float_op(Sin, "sin")
cos = _float_op(Cos, "cos")
tan = _float_op(Tan, "tan")
sinh = _float_op(Sinh, "sinh")
cosh = _float_op(Cosh, "cosh")
atan = _float_op(Atan, "atan")
asin = _float_op(Asin, "asin")
acos = _float_op(Acos, "acos")
log1p = _float_op(Log1p, "log1p")
log2 = _float_op(Log2, "log2")
log10 = _float_op(Log10, "log10")
expm1 = _float_op(Expm1, "expm1")
exp2 = _float_op(Exp2, "exp2")
rsqrt = _float_op(Rsqrt, "rsqrt")
reciprocal = _float_op(Reciprocal, "reciprocal")
erf = _float_op(Erf, "erf")
logsigmoid = _float_op(LogSigmoid, "logsigmoid")
mish = _float_op(Mish, "mish")


def square(input):
    """x², keeping an integer dtype (int64 stays int64, bool becomes int64, as in PyTorch)."""
    check_tensor("square", "input", input)
    if input._array.dtype.kind != "f":
        a = input._array.astype(np.int64) if input._array.dtype == np.bool_ else input._array
        return input._wrap(a * a)
    return Square.apply(input)


def _piecewise(f: Any, name: str, keep_int: bool = True) -> Callable[[Tensor], Tensor]:
    def op(input):
        check_tensor(name, "input", input)
        if input._array.dtype.kind != "f":
            if input._array.dtype == np.bool_ and name == "sign":
                return input._wrap(input._array.copy())
            return input._wrap(f(input._array) if name == "sign" else input._array.copy())
        return Piecewise.apply(input, f)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{name}(x) elementwise; its gradient is zero everywhere (PyTorch's convention)."
    return op


sign = _piecewise(np.sign, "sign")
floor = _piecewise(np.floor, "floor")
ceil = _piecewise(np.ceil, "ceil")
trunc = _piecewise(np.trunc, "trunc")
fix = trunc


def round(input, *, decimals=0):
    """Round half to even (PyTorch's and NumPy's rule); `decimals` rounds to that many decimal places."""
    check_tensor("round", "input", input)
    if not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"round: decimals must be an int, got {decimals!r}")
    if input._array.dtype.kind != "f":
        return input._wrap(input._array.copy())
    return Piecewise.apply(input, lambda a: np.round(a, int(decimals)))


def frac(input):
    check_tensor("frac", "input", input)
    if input._array.dtype.kind != "f":
        raise TypeError(f"frac: expected a floating-point tensor, got dtype {input.dtype}")
    return Frac.apply(input)


def signbit(input):
    check_tensor("signbit", "input", input)
    return input._wrap(np.signbit(input._array))


def _float_only(op, x):
    check_tensor(op, "input", x)
    if x._array.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype} (shape {tuple(x.shape)})")


def leaky_relu(input, negative_slope=0.01, inplace=False):
    _float_only("leaky_relu", input)
    return _maybe_inplace("leaky_relu", input, lambda t: LeakyRelu.apply(t, float(negative_slope)), inplace)


def elu(input, alpha=1.0, inplace=False):
    _float_only("elu", input)
    return _maybe_inplace("elu", input, lambda t: Elu.apply(t, float(alpha)), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    _float_only("softplus", input)
    if beta == 0:
        raise ValueError("softplus: beta must be nonzero")
    return Softplus.apply(input, float(beta), float(threshold))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    _float_only("hardtanh", input)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} cannot be greater than max_val {max_val}")
    return _maybe_inplace("hardtanh", input, lambda t: Hardtanh.apply(t, float(min_val), float(max_val)), inplace)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def _maybe_inplace(op, x, compute, inplace):
    """compute(x), or with inplace=True x changed to it in place by inplace.py's rules (version bump, the
    leaf error; the op saves a copy of the old values, so its backward stays right)."""
    if not inplace:
        return compute(x)
    from .inplace import apply_inplace

    return apply_inplace(f"{op}(inplace=True)", x, compute)


def silu(input, inplace=False):
    """x · sigmoid(x) (swish)."""
    _float_only("silu", input)
    return _maybe_inplace("silu", input, Silu.apply, inplace)


# ---- more of PyTorch's unary names ----------------------------------------------------------------------


@on_host
class Asinh(_Saved):
    """y = asinh x.  dx = dy / √(x² + 1)."""
    f = staticmethod(np.arcsinh)

    @staticmethod
    def df(x):
        return 1 / np.sqrt(x * x + 1)

    @staticmethod
    def df_graph(x):
        return Rsqrt.apply(x * x + 1)


@on_host
class Acosh(_Saved):
    """y = acosh x.  dx = dy / √(x² - 1)."""
    f = staticmethod(np.arccosh)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 / np.sqrt(x * x - 1)

    @staticmethod
    def df_graph(x):
        return Rsqrt.apply(x * x - 1)


@on_host
class Atanh(_Saved):
    """y = atanh x.  dx = dy / (1 - x²)."""
    f = staticmethod(np.arctanh)

    @staticmethod
    def df(x):
        with np.errstate(divide="ignore"):
            return 1 / (1 - x * x)

    @staticmethod
    def df_graph(x):
        return Reciprocal.apply(1 - x * x)


@on_host
class Logit(Function):
    """y = ln(z / (1 - z)), z = clamp(x, eps, 1 - eps) when eps is given.  dx = dy / (z (1 - z)), 0 where
    the clamp cut x (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, x, eps):
        z = x if eps is None else np.clip(x, eps, 1 - eps)
        ctx.save_for_backward(x)
        ctx.eps = eps
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(z / (1 - z))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        eps = ctx.eps
        with np.errstate(divide="ignore", invalid="ignore"):
            g = dy / (x * (1 - x))
        if eps is not None:
            g = np.where((x < eps) | (x > 1 - eps), np.zeros((), dy.dtype), g)
        return g, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (x,) = ctx.saved
        xt, eps = inputs[0], ctx.eps
        g = dy / (xt * (1 - xt))
        if eps is not None:
            g = where(saved_constant(dy, (x < eps) | (x > 1 - eps)), 0.0, g)
        return g, None


arcsinh = asinh = _float_op(Asinh, "asinh")
arccosh = acosh = _float_op(Acosh, "acosh")
arctanh = atanh = _float_op(Atanh, "atanh")
arcsin, arccos, arctan = asin, acos, atan
absolute = None  # set below (functional.elementwise.abs)


def logit(input, eps=None):
    return Logit.apply(float_input("logit", input), None if eps is None else float(eps))


def sgn(input):
    """sign(x) for real tensors."""
    return sign(input)


def positive(input):
    """input itself (PyTorch's unary +)."""
    check_tensor("positive", "input", input)
    if input._array.dtype == np.bool_:
        raise TypeError("positive: the `+` operator, on a bool tensor is not supported")
    return input


def deg2rad(input):
    from .elementwise import mul

    return mul(float_input("deg2rad", input), math.pi / 180)


def rad2deg(input):
    from .elementwise import mul

    return mul(float_input("rad2deg", input), 180 / math.pi)


@on_host
class Xlogy(Function):
    """y = a · ln b, and 0 where a = 0 (unless b is nan).
    da = dy · ln b (0 where a = 0 and b <= 0), db = dy · a / b: PyTorch's rule."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.shapes = (np.shape(a), np.shape(b))
        with np.errstate(divide="ignore", invalid="ignore"):
            y = a * np.log(b)
        return np.where((a == 0) & ~np.isnan(b), np.zeros((), y.dtype), y)

    @staticmethod
    def backward(ctx, dy):
        from .checks import sum_to_shape

        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        zero = np.zeros((), dy.dtype)
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                da = sum_to_shape(np.where((a == 0) & (b <= 0), zero, dy * np.log(b)), ctx.shapes[0])
            if need_b:
                db = sum_to_shape(dy * a / b, ctx.shapes[1])  # 0/0 = nan at a = b = 0, as PyTorch
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        from .checks import sum_to_shape_graph
        from .elementwise import graph_operand

        a, b = ctx.saved
        av, bv = graph_operand(inputs[0], a, dy), graph_operand(inputs[1], b, dy)
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if inputs[0] is not None:
                da = sum_to_shape_graph(where(saved_constant(dy, (a == 0) & (b <= 0)), 0.0, dy * Log.apply(bv)),
                                        ctx.shapes[0])
            if inputs[1] is not None:
                db = sum_to_shape_graph(dy * av / bv, ctx.shapes[1])
        return da, db


def xlogy(input, other):
    """x · ln y, and 0 where x = 0 (unless y is nan)."""
    from .elementwise import array_of, float32_constant, operands

    a, b = operands("xlogy", input, other)
    if array_of(a).dtype.kind != "f":
        a, b = (float32_constant(t) for t in (a, b))
    return Xlogy.apply(a, b)


def _make_absolute():
    from .elementwise import abs as _abs

    return _abs


absolute = _make_absolute()
