"""Reductions over any set of axes, with keepdim: sum, mean, amax/amin, var.

max/min (with their (values, indices) form along one dim) live in selection.py.

Backward of a reduction over axes R broadcasts dy back over R: with keepdim=False the
reduced axes are first reinserted as size-1 axes.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..autograd import Function, Variable
from ..autograd.function import constant
from ..dtypes import as_dtype
from ..backend import device_of, move
from .checks import check_float, check_tensor, host_result, normalize_dims, numpy_keywords, on_host
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._typing import DType, Dim, Number
    from ..tensor import Tensor

__all__ = [
    "Amax", "amax", "Amin", "amin", "aminmax", "AminmaxResult", "count_nonzero", "cummax", "cummin", "Cumprod",
    "cumprod", "CumResult", "Cumsum", "cumsum", "kthvalue", "KthvalueResult", "LogCumSumExp", "logcumsumexp",
    "LogSumExp", "logsumexp", "Mean", "mean", "nanmean", "nanquantile", "nansum", "norm", "Prod", "prod", "quantile",
    "std", "std_mean", "Sum", "sum", "Var", "var", "var_mean", "vector_norm", "VectorNorm",
]


def _expand_back(dy, shape, dims, keepdim):
    if not keepdim:
        dy = np.expand_dims(dy, dims)
    return np.broadcast_to(dy, shape)


def _constant(like, array):
    """A host or device array as a constant tensor on the device of tensor `like` (on_host ops save host copies)."""
    return constant(like, move(array, device_of(like._array)))


def _expand_back_graph(dy, shape, dims, keepdim):
    """_expand_back with recorded ops."""
    if not keepdim:
        kept = list(shape)
        for d in dims:
            kept[d] = 1
        dy = dy.reshape(tuple(kept))
    return dy.expand(*shape)


class Sum(Function):
    """y = Σ_R x.  dx = dy broadcast over R."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        return np.sum(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        return _expand_back(dy, ctx.shape, ctx.dims, ctx.keepdim), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return _expand_back_graph(dy, ctx.shape, ctx.dims, ctx.keepdim), None, None


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

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return _expand_back_graph(dy * (1.0 / ctx.n), ctx.shape, ctx.dims, ctx.keepdim), None, None


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

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy broadcast back times the constant shares (piecewise linear: second derivative 0)."""
        x, y = ctx.saved
        winners = (x == y).astype(dy._array.dtype)
        share = winners / winners.sum(axis=ctx.dims, keepdims=True)
        return _expand_back_graph(dy, x.shape, ctx.dims, ctx.keepdim) * constant(dy, share), None, None


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

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy · 2 (x - x̄) / (n - correction), x - x̄ recomputed from the input tensor (it depends on x)."""
        x = inputs[0]
        centered = x - Mean.apply(x, ctx.dims, True)
        dy = _expand_back_graph(dy, tuple(x.shape), ctx.dims, ctx.keepdim)
        dtype = x._array.dtype.type
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.divide(dtype(2), dtype(ctx.denominator))
        return dy * centered * float(scale), None, None, None


def _dims(op, x, dim, axis):
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    return normalize_dims(op, dim, x.ndim)


def _with_dtype(op, x, dtype):
    """x converted to `dtype` first (PyTorch's dtype= on reductions), differentiably between floats."""
    if dtype is None:
        return x
    from .elementwise import cast

    return cast(x, as_dtype(dtype, op))


@numpy_keywords
def sum(x: Tensor, dim: Dim = None, keepdim: bool = False, *, dtype: DType = None, axis: Dim = None) -> Tensor:
    """Σ over dim (an int, a tuple of ints, or None for all); bool and integer tensors sum to int64."""
    x = _with_dtype("sum", x, dtype)
    if dtype is None and x._array.dtype.kind in "biu" and x._array.dtype != np.int64:
        return x._wrap(np.sum(x._array, axis=_dims("sum", x, dim, axis), keepdims=keepdim, dtype=np.int64))
    return Sum.apply(x, _dims("sum", x, dim, axis), keepdim)


@numpy_keywords
def mean(x: Tensor, dim: Dim = None, keepdim: bool = False, *, dtype: DType = None, axis: Dim = None) -> Tensor:
    x = _with_dtype("mean", x, dtype)
    check_float("mean", x._array)
    return Mean.apply(x, _dims("mean", x, dim, axis), keepdim)


@numpy_keywords
def amax(x: Tensor, dim: Dim = None, keepdim: bool = False, *, axis: Dim = None) -> Tensor:
    if x._array.size == 0:
        raise ValueError(f"amax: cannot reduce an empty tensor of shape {x.shape}")
    return Amax.apply(x, _dims("amax", x, dim, axis), keepdim)


@numpy_keywords
def amin(x: Tensor, dim: Dim = None, keepdim: bool = False, *, axis: Dim = None) -> Tensor:
    if x._array.size == 0:
        raise ValueError(f"amin: cannot reduce an empty tensor of shape {x.shape}")
    return Amin.apply(x, _dims("amin", x, dim, axis), keepdim)


@numpy_keywords
def var(x: Tensor, dim: Dim = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: Number | None = None, axis: Dim = None) -> Tensor:
    """Variance with Bessel's correction by default (correction=1), as in PyTorch; var(x, dim, unbiased,
    keepdim) positionally (PyTorch's older overload) and var(x, unbiased) too."""
    if isinstance(dim, bool):  # var(x, unbiased)
        dim, unbiased = None, dim
    check_float("var", x._array)
    correction = _correction("var", correction, unbiased)
    return Var.apply(x, _dims("var", x, dim, axis), keepdim, correction)


def _correction(op, correction, unbiased):
    if unbiased is not None:
        if correction is not None:
            raise TypeError(f"{op}: pass correction or unbiased, not both")
        return 1 if unbiased else 0
    return 1 if correction is None else correction


@numpy_keywords
def std(x: Tensor, dim: Dim = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: Number | None = None, axis: Dim = None) -> Tensor:
    """√var: the standard deviation, with Bessel's correction by default (correction=1), as in PyTorch.
    std(x, True) / std(x, dim, False, True) follow PyTorch's older positional (unbiased, keepdim) too."""
    if isinstance(dim, bool):  # std(x, unbiased) in PyTorch's older overload
        dim, unbiased = None, dim
    from .elementwise import sqrt

    return sqrt(var(x, dim, correction=_correction("std", correction, unbiased), keepdim=keepdim, axis=axis))


@numpy_keywords
def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over dim, as PyTorch's var_mean."""
    c = _correction("var_mean", correction, unbiased)
    return var(x, dim, correction=c, keepdim=keepdim), mean(x, dim, keepdim)


@numpy_keywords
def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over dim, as PyTorch's std_mean."""
    c = _correction("std_mean", correction, unbiased)
    return std(x, dim, correction=c, keepdim=keepdim), mean(x, dim, keepdim)


@on_host
class Prod(Function):
    """y = Π_R x.  dx_i = dy · Π_{j≠i} x_j, computed without dividing by x_i (exact with zeros):
    the product of the elements before i times the product of those after it, along the flattened R."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.save_for_backward(x)
        ctx.dims, ctx.keepdim = dims, keepdim
        return np.prod(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        dims = ctx.dims
        rest = [d for d in range(x.ndim) if d not in dims]
        moved = np.transpose(x, rest + list(dims))
        flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
        ones = np.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
        before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        after = np.flip(np.cumprod(np.concatenate([ones, np.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = (before * after).reshape(moved.shape)
        others = np.transpose(others, np.argsort(rest + list(dims)))
        return _expand_back(dy, x.shape, dims, ctx.keepdim) * others, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward's products before and after each element, with recorded ops (Permute, GetItem, Cat,
        Cumprod, Flip) on the input tensor."""
        from .shape import Cat, GetItem, Permute
        from .shape_ops import Flip

        x = inputs[0]
        dims = ctx.dims
        shape = tuple(x.shape)
        rest = [d for d in range(len(shape)) if d not in dims]
        order = tuple(rest + list(dims))
        moved = Permute.apply(x, order)
        flat = moved.reshape(tuple(moved.shape[: len(rest)]) + (-1,))
        last = flat.ndim - 1
        ones = _constant(x, np.ones(tuple(flat.shape[:-1]) + (1,), dtype=x._array.dtype))
        head = GetItem.apply(flat, (Ellipsis, slice(None, -1)))
        before = Cumprod.apply(Cat.apply(last, ones, head), last)
        tail = GetItem.apply(Flip.apply(flat, (last,)), (Ellipsis, slice(None, -1)))
        after = Flip.apply(Cumprod.apply(Cat.apply(last, ones, tail), last), (last,))
        others = (before * after).reshape(tuple(moved.shape))
        others = Permute.apply(others, tuple(int(a) for a in np.argsort(order)))
        return _expand_back_graph(dy, shape, dims, ctx.keepdim) * others, None, None


@numpy_keywords
def prod(x: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: DType = None) -> Tensor:
    """Π over one dim (or all elements when dim is None); bool and integer tensors multiply as int64."""
    check_tensor("prod", "input", x)
    x = _with_dtype("prod", x, dtype)
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"prod: dim must be an int, got {dim!r}")
    dims = normalize_dims("prod", dim, x.ndim)
    if x._array.dtype.kind != "f":
        return host_result(x, np.prod(x.numpy(), axis=dims, keepdims=keepdim, dtype=np.int64))
    return Prod.apply(x, dims, keepdim)


@on_host
class Cumsum(Function):
    """y_i = Σ_{j<=i} x_j along dim.  dx_i = Σ_{j>=i} dy_j: a reversed cumulative sum of dy."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return np.cumsum(x, axis=dim, dtype=x.dtype)

    @staticmethod
    def backward(ctx, dy):
        d = ctx.dim
        return np.flip(np.cumsum(np.flip(dy, d), axis=d), d), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        from .shape_ops import Flip

        d = (ctx.dim,)
        return Flip.apply(Cumsum.apply(Flip.apply(dy, d), ctx.dim), d), None


@on_host
class Cumprod(Function):
    """y_i = Π_{j<=i} x_j along dim.  dx_i = Σ_{k>=i} dy_k Π_{j<=k, j≠i} x_j (computed by
    products without division, one position at a time along dim: exact with zeros)."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.save_for_backward(x)
        ctx.dim = dim
        return np.cumprod(x, axis=dim, dtype=x.dtype)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        d = ctx.dim
        xm, gm = np.moveaxis(x, d, -1), np.moveaxis(dy, d, -1)
        n = xm.shape[-1]
        dx = np.empty_like(xm)
        for i in range(n):
            masked = xm.copy()
            masked[..., i] = 1
            partial = np.cumprod(masked, axis=-1)[..., i:]
            dx[..., i] = np.sum(gm[..., i:] * partial, axis=-1)
        return np.moveaxis(dx, -1, d), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward's loop with recorded ops on the input tensor: for each position i, x with x_i replaced
        by 1 (x times a constant mask plus a constant one-hot), its running products from i on, times dy."""
        from .shape import GetItem, Permute, Stack

        x = inputs[0]
        d = ctx.dim
        nd = x.ndim
        order = tuple(a for a in range(nd) if a != d) + (d,)
        xm, gm = Permute.apply(x, order), Permute.apply(dy, order)
        n = xm.shape[-1]
        last = nd - 1
        dtype = x._array.dtype
        columns = []
        for i in range(n):
            hole = np.ones(n, dtype=dtype)
            hole[i] = 0
            masked = xm * _constant(x, hole) + _constant(x, 1 - hole)
            partial = GetItem.apply(Cumprod.apply(masked, last), (Ellipsis, slice(i, None)))
            columns.append((GetItem.apply(gm, (Ellipsis, slice(i, None))) * partial).sum(dim=last))
        dx = Stack.apply(last, *columns)
        return Permute.apply(dx, tuple(int(a) for a in np.argsort(order))), None


def _cumulative(op, function, x, dim, dtype):
    check_tensor(op, "input", x)
    if dim is None:
        raise TypeError(f"{op}: missing the required argument dim")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    x = _with_dtype(op, x, dtype)
    dims = normalize_dims(op, dim, x.ndim)
    if x.ndim == 0:
        return x.clone() if dtype is None else x
    if x._array.dtype.kind != "f":
        ufunc = np.cumsum if function is Cumsum else np.cumprod
        return host_result(x, ufunc(x.numpy(), axis=dims[0], dtype=np.int64))
    return function.apply(x, dims[0])


def cumsum(x: Tensor, dim: int | None = None, *, dtype: DType = None) -> Tensor:
    """Running sums along dim (bool and integer tensors give int64, as in PyTorch)."""
    return _cumulative("cumsum", Cumsum, x, dim, dtype)


def cumprod(x: Tensor, dim: int | None = None, *, dtype: DType = None) -> Tensor:
    """Running products along dim."""
    return _cumulative("cumprod", Cumprod, x, dim, dtype)


class LogSumExp(Function):
    """y = m + ln Σ_R e^(x - m), m = max_R x (finite m only; all -inf gives -inf).  dx = dy · e^(x - y)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        m = np.max(x, axis=dims, keepdims=True)
        m = np.where(np.isfinite(m), m, np.zeros((), x.dtype))
        with np.errstate(divide="ignore"):
            y = m + np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True))
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y if keepdim else np.squeeze(y, axis=dims)

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved
        with np.errstate(invalid="ignore"):
            p = np.exp(x - y)
        return _expand_back(dy, x.shape, ctx.dims, ctx.keepdim) * p, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy · e^(x - y), y recomputed from the input tensor (LogSumExp with keepdim)."""
        x = inputs[0]
        p = (x - LogSumExp.apply(x, ctx.dims, True)).exp()
        return _expand_back_graph(dy, tuple(x.shape), ctx.dims, ctx.keepdim) * p, None, None


@numpy_keywords
def logsumexp(x: Tensor, dim: Dim, keepdim: bool = False) -> Tensor:
    """ln Σ e^x over dim, computed stably."""
    check_tensor("logsumexp", "input", x)
    if x._array.dtype.kind != "f":
        x = x._wrap(x._array.astype(np.float32))
    return LogSumExp.apply(x, normalize_dims("logsumexp", dim, x.ndim), keepdim)


class VectorNorm(Function):
    """y = (Σ_R |x|^p)^(1/p) (p = inf: max |x|; p = 0: the count of nonzeros).

    dx = dy · sign(x) |x|^(p-1) / y^(p-1) (0 where y = 0, PyTorch's subgradient); p = 2 is dy · x / y;
    p = inf shares dy evenly between the elements of largest |x|."""

    @staticmethod
    def forward(ctx, x, p, dims, keepdim):
        a = np.abs(x)
        if p == 2:
            y = np.sqrt(np.sum(x * x, axis=dims, keepdims=True))
        elif p == np.inf:
            y = np.max(a, axis=dims, keepdims=True) if a.size else np.zeros_like(a, shape=())
        elif p == -np.inf:
            y = np.min(a, axis=dims, keepdims=True)
        elif p == 0:
            y = np.sum(a != 0, axis=dims, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = np.sum(a, axis=dims, keepdims=True)
        else:
            with np.errstate(divide="ignore"):
                y = np.power(np.sum(np.power(a, p), axis=dims, keepdims=True), 1 / p).astype(x.dtype)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
        return y if keepdim else np.squeeze(y, axis=dims)

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved
        p = ctx.p
        g = np.expand_dims(dy, ctx.dims) if not ctx.keepdim else dy
        zero = np.zeros((), x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 0:
                dx = np.zeros_like(x)
            elif p == 1:
                dx = np.sign(x) * g
            elif p == 2:
                dx = np.where(y == 0, zero, x / y) * g
            elif np.isinf(p):
                hit = (np.abs(x) == y).astype(x.dtype)
                dx = np.sign(x) * hit / np.sum(hit, axis=ctx.dims, keepdims=True) * g
            else:
                a = np.abs(x)
                dx = np.where(y == 0, zero, np.sign(x) * np.power(a, p - 1) / np.power(y, p - 1)) * g
        return np.broadcast_to(dx, x.shape).astype(x.dtype), None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward's cases with recorded ops; where the norm depends on x (p = 2, other finite p) it is
        recomputed from the input tensor, |x| as x times its constant sign; y = 0 gives 0 as backward does.
        p = 0, 1, ±inf are piecewise: dy times constants."""
        xt = inputs[0]
        x, y = ctx.saved
        p = ctx.p
        dtype = x.dtype
        g = _expand_back_graph(dy, x.shape, ctx.dims, ctx.keepdim)
        sign = np.sign(x)
        if p == 0:
            return g * 0.0, None, None, None
        if p == 1:
            return g * constant(dy, sign), None, None, None
        if np.isinf(p):
            hit = (np.abs(x) == y).astype(dtype)
            return g * constant(dy, sign * hit / np.sum(hit, axis=ctx.dims, keepdims=True)), None, None, None
        nonzero = constant(dy, (y != 0).astype(dtype))
        safe_y = VectorNorm.apply(xt, p, ctx.dims, True) + constant(dy, (y == 0).astype(dtype))  # 1 where y = 0
        if p == 2:
            return xt / safe_y * nonzero * g, None, None, None
        a = xt * constant(dy, sign)
        return constant(dy, sign) * a ** (p - 1) / safe_y ** (p - 1) * nonzero * g, None, None, None


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """PyTorch's torch.linalg.vector_norm: (Σ |x|^ord)^(1/ord) over dim (all elements by default)."""
    check_tensor("vector_norm", "input", x)
    x = _with_dtype("vector_norm", x, dtype)
    if x._array.dtype.kind != "f":
        raise TypeError(f"vector_norm: expected a floating-point tensor, got dtype {x.dtype}")
    if isinstance(ord, Variable) or not isinstance(ord, (int, float, np.number)) or isinstance(ord, bool):
        raise TypeError(f"vector_norm: ord must be a number, got {ord!r}")
    if x._array.size == 0 and ord < 0:
        raise ValueError(f"vector_norm: cannot compute the {ord} norm of an empty tensor")
    return VectorNorm.apply(x, float(ord), normalize_dims("vector_norm", dim, x.ndim), keepdim)


def norm(x: Tensor, p: Any = "fro", dim: Dim = None, keepdim: bool = False, dtype: DType = None) -> Tensor:
    """PyTorch's torch.norm / Tensor.norm: a vector norm over dim ('fro' and None mean 2; a 2-element dim
    with 'fro' is the Frobenius norm of those matrices, the same number). 'nuc' is not supported."""
    if p is None or p == "fro":
        p = 2
    if isinstance(p, str):
        raise NotImplementedError(f"norm: p={p!r} is not supported (only numbers and 'fro')")
    return vector_norm(x, p, dim, keepdim, dtype=dtype)


@numpy_keywords
def count_nonzero(x, dim=None):
    check_tensor("count_nonzero", "input", x)
    return x._wrap(np.asarray(np.count_nonzero(x._array, axis=normalize_dims("count_nonzero", dim, x.ndim)),
                              dtype=np.int64))


# ---- more reductions (PyTorch's names) ---------------------------------------------------------------


AminmaxResult = namedtuple("aminmax", ["min", "max"])  # type: ignore[name-match]  # PyTorch's result names
KthvalueResult = namedtuple("kthvalue", ["values", "indices"])  # type: ignore[name-match]  # PyTorch's result names
CumResult = namedtuple("cummax", ["values", "indices"])  # type: ignore[name-match]  # PyTorch's result names


@numpy_keywords
def aminmax(input, *, dim=None, keepdim=False):
    """(amin, amax) over dim (all elements by default)."""
    return AminmaxResult(amin(input, dim, keepdim), amax(input, dim, keepdim))


@numpy_keywords
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """Σ treating NaN as 0 (the gradient at a NaN is 0)."""
    from .compare import isnan
    from .elementwise import masked_fill

    check_tensor("nansum", "input", input)
    x = input if input._array.dtype.kind != "f" else masked_fill(input, isnan(input), 0.0)
    return sum(x, dim, keepdim, dtype=dtype)


@numpy_keywords
def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean over the elements that are not NaN."""
    from .elementwise import div

    check_tensor("nanmean", "input", input)
    check_float("nanmean", input._array)
    count = sum(host_result(input, (~np.isnan(input.numpy())).astype(input._array.dtype)), dim, keepdim)
    return div(nansum(input, dim, keepdim, dtype=dtype), count)


@numpy_keywords
def kthvalue(input, k, dim=-1, keepdim=False):
    """(values, indices): the k-th smallest element along dim (k counts from 1); the gradient goes to it."""
    from .selection import Gather, sort_order

    check_tensor("kthvalue", "input", input)
    x = input if input.ndim else input.reshape(1)
    d = normalize_dims("kthvalue", dim, x.ndim)[0]
    n = x.shape[d]
    if not 1 <= k <= n:
        raise ValueError(f"kthvalue: k ({k}) must be between 1 and the size {n} of dim {dim}")
    index = np.take(sort_order(x._array, d, False), [k - 1], axis=d)
    values = Gather.apply(x, index, d, keepdim or input.ndim == 0)
    indices = x._wrap(index if keepdim else np.squeeze(index, axis=d))
    if input.ndim == 0:
        return KthvalueResult(values.reshape(()), indices.reshape(()))
    return KthvalueResult(values, indices)


def _cum_extreme(op, input, dim, largest):
    from .selection import Gather

    check_tensor(op, "input", input)
    x = input if input.ndim else input.reshape(1)
    d = normalize_dims(op, dim, x.ndim)[0]
    a = np.moveaxis(x.numpy(), d, -1)  # on the host
    n = a.shape[-1]
    idx = np.zeros(a.shape, dtype=np.int64)
    best = a[..., 0].copy()
    best_i = np.zeros(a.shape[:-1], dtype=np.int64)
    for i in range(n):  # PyTorch's rule: a later equal element takes over (>= / <=); NaN wins and stays
        v = a[..., i]
        take = (v >= best) if largest else (v <= best)
        take |= np.isnan(v) if a.dtype.kind == "f" else False
        take &= ~(np.isnan(best) & ~np.isnan(v)) if a.dtype.kind == "f" else True
        best = np.where(take, v, best)
        best_i = np.where(take, i, best_i)
        idx[..., i] = best_i
    index = np.ascontiguousarray(np.moveaxis(idx, -1, d))
    values = Gather.apply(x, move(index, device_of(x._array)), d, True)
    if input.ndim == 0:
        return CumResult(values.reshape(()), host_result(x, index.reshape(())))
    return CumResult(values, host_result(x, index))


def cummax(input, dim):
    """(values, indices): the running maximum along dim and where it was; the gradient goes to that element."""
    return _cum_extreme("cummax", input, dim, True)


def cummin(input, dim):
    return _cum_extreme("cummin", input, dim, False)


@on_host
class LogCumSumExp(Function):
    """y_i = ln Σ_{j<=i} e^(x_j) along dim (stably).  dx_j = Σ_{i>=j} dy_i e^(x_j - y_i)."""

    @staticmethod
    def forward(ctx, x, dim):
        y = np.logaddexp.accumulate(x, axis=dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved
        d = ctx.dim
        with np.errstate(over="ignore", invalid="ignore"):  # Σ_{i>=j} dy_i e^(-y_i), times e^(x_j), shifted
            shift = np.max(-y, axis=d, keepdims=True)
            shift = np.where(np.isfinite(shift), shift, 0)
            w = dy * np.exp(-y - shift)
            rev = np.flip(np.cumsum(np.flip(w, d), axis=d), d)
            return rev * np.exp(x + shift), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward's reversed cumulative sum with recorded ops, y recomputed from the input tensor; the shift
        is a constant (it cancels: any value gives the same derivative)."""
        from .shape_ops import Flip

        x = inputs[0]
        y = ctx.saved[1]
        d = ctx.dim
        with np.errstate(over="ignore", invalid="ignore"):
            shift = np.max(-y, axis=d, keepdims=True)
            shift = np.where(np.isfinite(shift), shift, 0).astype(y.dtype)
        w = dy * (_constant(dy, -shift) - LogCumSumExp.apply(x, d)).exp()
        rev = Flip.apply(Cumsum.apply(Flip.apply(w, (d,)), d), (d,))
        return rev * (x + _constant(dy, shift)).exp(), None


def logcumsumexp(input, dim):
    check_tensor("logcumsumexp", "input", input)
    check_float("logcumsumexp", input._array)
    x = input if input.ndim else input.reshape(1)
    out = LogCumSumExp.apply(x, normalize_dims("logcumsumexp", dim, x.ndim)[0])
    return out.reshape(()) if input.ndim == 0 else out


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles (q a number or a 1-D tensor in [0, 1]) along dim (of all elements by default),
    interpolating as NumPy/PyTorch do ('linear', 'lower', 'higher', 'midpoint', 'nearest'). Differentiable
    through the sorted values it reads."""
    from .elementwise import add, mul, sub
    from .selection import sort
    from .shape import reshape, unsqueeze

    check_tensor("quantile", "input", input)
    check_float("quantile", input._array)
    scalar_q = not isinstance(q, Variable)
    qs = np.atleast_1d(np.asarray(q.numpy() if isinstance(q, Variable) else q, dtype=np.float64))
    if qs.ndim > 1 or np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantile: q must be a scalar or 1-D tensor with values in [0, 1], got {q}")
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"quantile: unknown interpolation {interpolation!r}")
    x = reshape(input, -1) if dim is None else input
    d = 0 if dim is None else normalize_dims("quantile", dim, x.ndim)[0]
    n = x.shape[d]
    if n == 0:
        raise ValueError("quantile: input tensor must be non-empty")
    values = sort(x, d).values
    pos = qs * (n - 1)
    lo, hi = np.floor(pos).astype(np.int64), np.ceil(pos).astype(np.int64)
    frac = pos - lo
    if interpolation == "lower":
        hi, frac = lo, frac * 0
    elif interpolation == "higher":
        lo, frac = hi, frac * 0
    elif interpolation == "nearest":
        near = np.round(pos).astype(np.int64)  # half to even, as PyTorch
        lo = hi = near
        frac = frac * 0
    elif interpolation == "midpoint":
        frac = np.where(hi > lo, 0.5, 0.0)
    from .indexing import index_select

    a, b = index_select(values, d, x._wrap(lo)), index_select(values, d, x._wrap(hi))
    w = frac.astype(input._array.dtype).reshape((-1,) + (1,) * (x.ndim - d - 1))
    out = add(a, mul(sub(b, a), host_result(x, w)))  # (..., len(q) at d, ...)
    out = reshape(out, out.shape[:d] + (len(qs),) + out.shape[d + 1:])
    from .shape_ops import movedim

    out = movedim(out, d, 0)  # PyTorch puts the q axis first
    if keepdim:
        if dim is None:
            out = reshape(out, (len(qs),) + (1,) * input.ndim)
        else:
            out = unsqueeze(out, d + 1)
    return reshape(out, out.shape[1:]) if scalar_q else out


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    if np.isnan(input.numpy()).any():
        raise NotImplementedError("nanquantile: inputs with NaN are not supported; use quantile on the rest")
    return quantile(input, q, dim, keepdim, interpolation=interpolation)
