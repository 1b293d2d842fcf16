"""Ops that pick elements by value: max/min with a dim, argmax/argmin, sort/argsort, topk, clamp.

max(dim), min(dim), sort and topk return (values, indices) namedtuples, as in PyTorch. Their
values are one Function, `Gather`: the input read at the chosen indices along a dim, whose
backward sends each gradient element back to the one element it was read from. So a tie in
`max(dim)` gives the whole gradient to the returned index (PyTorch's rule), while `amax`
(reduction.py) shares it evenly between ties. The indices never carry a gradient.

The orderings (argsort, hence sort and topk) are computed by numpy on the host; for a tensor on
the GPU that is one copy of the input down and one of the indices up. argmax/argmin and the
gathers run on the tensor's device.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..autograd import Function, Variable
from ..autograd.function import constant
from ..backend import backend_of, device_of, is_device_array, move
from .checks import check_broadcast, normalize_dims, sum_to_shape, sum_to_shape_graph, numpy_keywords
from .elementwise import cast_operand, array_of, maximum, minimum
from .reduction import amax, amin
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._typing import Operand
    from ..tensor import Tensor

__all__ = [
    "argmax", "argmin", "argsort", "Clamp", "clamp", "clip", "Gather", "max", "MaxDim", "MaxResult", "min", "MinDim",
    "MinResult", "Sort", "sort", "sort_order", "SortResult", "TopK", "topk", "TopKResult",
]

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])
SortResult = namedtuple("SortResult", ["values", "indices"])
TopKResult = namedtuple("TopKResult", ["values", "indices"])


class Gather(Function):
    """y = x read at `indices` along `dim` (numpy's take_along_axis):

        y[..., j, ...] = x[..., indices[..., j, ...], ...]      (indices has x's ndim)

    and, when keepdim is False, `dim` squeezed away (indices then has size 1 there).
    Backward: dx = zeros with dy added at the places read (a scatter-add; an index read twice
    collects both gradients). The subclasses only name the op in the graph.
    """

    @staticmethod
    def forward(ctx, x, indices, dim, keepdim):
        ctx.save_for_backward(indices)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        y = np.take_along_axis(x, indices, dim)
        return y if keepdim else np.squeeze(y, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        (indices,) = ctx.saved
        if not ctx.keepdim:
            dy = np.expand_dims(dy, ctx.dim)
        dx = np.zeros_like(dy, shape=ctx.shape)
        np.add.at(dx, _scatter_index(indices, ctx.dim), dy)
        return dx, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy scatter-added into zeros by indexing.ScatterAdd (whose double backward gathers dy again)."""
        from .indexing import ScatterAdd

        (indices,) = ctx.saved
        if not ctx.keepdim:
            dy = dy.unsqueeze(ctx.dim)
        zeros = constant(dy, backend_of(dy._array).xp.zeros(ctx.shape, dtype=dy._array.dtype))
        return ScatterAdd.apply(zeros, dy, indices, ctx.dim), None, None, None


class MaxDim(Gather):
    """max(x, dim).values: x at the index of the largest element along dim (Gather's backward)."""


class MinDim(Gather):
    """min(x, dim).values: x at the index of the smallest element along dim (Gather's backward)."""


class Sort(Gather):
    """sort(x, dim).values: x read in sorted order along dim (Gather's backward)."""


class TopK(Gather):
    """topk(x, k, dim).values: x at the k chosen indices along dim (Gather's backward)."""


class Clamp(Function):
    """y = min(max(x, lo), hi) elementwise (lo, hi: arrays or None), broadcast; y = hi where lo > hi.

    Backward (PyTorch's rule, the boundary included):
        dx  = dy where lo <= x <= hi
        dlo = dy where x < lo and lo < hi        (only where lo is the value taken)
        dhi = dy where x > hi or hi < lo
    with each gradient summed back to its input's shape.
    """

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x, lo, hi)
        y = x
        if lo is not None:
            y = np.maximum(y, lo)
        if hi is not None:
            y = np.minimum(y, hi)
        ctx.out_shape = y.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        x, lo, hi = ctx.saved
        need_x, need_lo, need_hi = ctx.needs_input_grad
        zero = np.zeros((), dtype=dy.dtype)
        keep = None
        if lo is not None:
            keep = x >= lo
        if hi is not None:
            keep = (x <= hi) if keep is None else keep & (x <= hi)
        dx = dlo = dhi = None
        if need_x:
            dx = sum_to_shape(np.where(keep, dy, zero), x.shape)
        if need_lo:
            takes_lo = (x < lo) if hi is None else (x < lo) & (lo < hi)
            dlo = sum_to_shape(np.where(takes_lo, dy, zero), lo.shape)
        if need_hi:
            takes_hi = (x > hi) if lo is None else (x > hi) | (hi < lo)
            dhi = sum_to_shape(np.where(takes_hi, dy, zero), hi.shape)
        return dx, dlo, dhi

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward's rule as dy times constant masks (clamp is piecewise linear: its second derivative is 0)."""
        x, lo, hi = ctx.saved
        tx, tlo, thi = inputs
        dtype = dy._array.dtype
        keep = None
        if lo is not None:
            keep = x >= lo
        if hi is not None:
            keep = (x <= hi) if keep is None else keep & (x <= hi)
        dx = dlo = dhi = None
        if tx is not None:
            dx = sum_to_shape_graph(dy * constant(dy, keep.astype(dtype)), x.shape)
        if tlo is not None:
            takes_lo = (x < lo) if hi is None else (x < lo) & (lo < hi)
            dlo = sum_to_shape_graph(dy * constant(dy, takes_lo.astype(dtype)), lo.shape)
        if thi is not None:
            takes_hi = (x > hi) if lo is None else (x > hi) | (hi < lo)
            dhi = sum_to_shape_graph(dy * constant(dy, takes_hi.astype(dtype)), hi.shape)
        return dx, dlo, dhi


# ---- helpers ------------------------------------------------------------------------


def _scatter_index(indices, dim):
    """The advanced index that addresses, in an array of indices' shape with `dim` replaced, the
    places that take_along_axis(x, indices, dim) read: aranges on every other axis."""
    index = []
    for d, n in enumerate(indices.shape):
        if d == dim:
            index.append(indices)
        else:
            shape = [1] * indices.ndim
            shape[d] = n
            index.append(np.arange(n).reshape(shape))
    return tuple(index)


def _check_tensor(op, x):
    if not isinstance(x, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")


def _one_dim(op, x, dim):
    """`dim` as a non-negative axis of x (an int; 0 or -1 for a 0-d tensor)."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    dims = normalize_dims(op, dim, x.ndim)
    return dims[0] if dims else 0


def _check_not_empty(op, x, dim):
    if x.ndim and x.shape[dim] == 0:
        raise ValueError(f"{op}: cannot reduce over dim {dim} of size 0 (input shape {tuple(x.shape)})")


def _arg_extreme(a, axis, largest):
    """argmax/argmin of array `a` along `axis` with keepdims (the first one of ties; NaN wins, as in
    numpy and PyTorch). DeviceArray has argmax only: argmin is the first element equal to the min
    (or NaN)."""
    if not is_device_array(a):
        return (np.argmax if largest else np.argmin)(a, axis=axis, keepdims=True).astype(np.int64)
    if largest:
        return np.argmax(a, axis=axis, keepdims=True)
    hit = (a == a.min(axis=axis, keepdims=True)) | (a != a)
    return np.argmax(hit.astype(np.int32), axis=axis, keepdims=True)


def sort_order(a, dim, descending):
    """Indices that sort array `a` along `dim` (stable: ties keep their order; NaN counts as the
    largest), as int64 on a's device. Descending order sorts the flipped axis ascending, so ties
    still come in their original order."""
    host = move(a, "cpu")
    if descending:
        flipped = np.argsort(np.flip(host, dim), axis=dim, kind="stable")
        order = host.shape[dim] - 1 - np.flip(flipped, dim)
    else:
        order = np.argsort(host, axis=dim, kind="stable")
    return move(np.ascontiguousarray(order, dtype=np.int64), device_of(a))


def _as_1d(x):
    """A 0-d tensor's data as shape (1,), so that dim 0 exists; others unchanged."""
    return x._array.reshape(1) if x.ndim == 0 else x._array


# ---- public functions ---------------------------------------------------------------


@numpy_keywords
def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The index of the largest element (the first of ties; NaN counts as the largest).

    dim=None: the index into the flattened tensor (keepdim keeps every axis, at size 1).
    """
    return _argext("argmax", x, dim, keepdim, largest=True)


@numpy_keywords
def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The index of the smallest element (the first of ties); see argmax."""
    return _argext("argmin", x, dim, keepdim, largest=False)


def _argext(op, x, dim, keepdim, largest):
    _check_tensor(op, x)
    if x.dtype == np.bool_:
        raise TypeError(f"{op}: bool tensors are not supported (shape {tuple(x.shape)}); convert with .long() first")
    if dim is None:
        if x.numel() == 0:
            raise ValueError(f"{op}: cannot take the {op} of an empty tensor (shape {tuple(x.shape)})")
        index = _arg_extreme(x._array.reshape(-1), 0, largest).reshape(())
        return x._wrap(index.reshape((1,) * x.ndim) if keepdim else index)
    d = _one_dim(op, x, dim)
    _check_not_empty(op, x, d)
    index = _arg_extreme(_as_1d(x), d, largest)
    if x.ndim == 0:
        return x._wrap(index.reshape(()))
    return x._wrap(index if keepdim else np.squeeze(index, axis=d))


@numpy_keywords
def max(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: int | None = None) -> Any:
    """PyTorch's max: with no dim, the largest element (ties share the gradient, as amax does);
    with an int dim, (values, indices), the gradient going to the returned index; with a tensor
    as the second argument, the elementwise maximum."""
    return _extreme("max", x, dim, keepdim, axis, largest=True)


@numpy_keywords
def min(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: int | None = None) -> Any:
    """PyTorch's min: the smallest element, (values, indices) along an int dim, or the elementwise
    minimum with a tensor; see max."""
    return _extreme("min", x, dim, keepdim, axis, largest=False)


def _extreme(op, x, dim, keepdim, axis, largest):
    _check_tensor(op, x)
    if isinstance(dim, Variable):
        return (maximum if largest else minimum)(x, dim)
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: pass dim or axis, not both")
        dim = axis
    reduce = amax if largest else amin
    if dim is None:
        return reduce(x)
    if not isinstance(dim, (int, np.integer)):
        return reduce(x, dim, keepdim)  # a tuple of dims: the values only, as amax/amin
    d = _one_dim(op, x, dim)
    _check_not_empty(op, x, d)
    data = _as_1d(x)
    index = _arg_extreme(data, d, largest)  # (..., 1, ...)
    if x.ndim == 0:
        return (MaxResult if largest else MinResult)(x.clone(), x._wrap(index.reshape(())))
    values = (MaxDim if largest else MinDim).apply(x, index, d, keepdim)
    indices = x._wrap((index if keepdim else np.squeeze(index, axis=d)).copy())  # not the array backward reads
    return (MaxResult if largest else MinResult)(values, indices)


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort x along dim (always a stable sort, which is one valid answer for
    stable=False too)."""
    _check_tensor("argsort", x)
    d = _one_dim("argsort", x, dim)
    index = sort_order(_as_1d(x), d, descending)
    return x._wrap(index.reshape(()) if x.ndim == 0 else index)


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """(values, indices): x sorted along dim, ascending unless descending=True. Stable: ties keep
    their order. NaN counts as the largest value. The values' gradient goes back through indices."""
    _check_tensor("sort", x)
    d = _one_dim("sort", x, dim)
    index = sort_order(_as_1d(x), d, descending)
    if x.ndim == 0:
        return SortResult(x.clone(), x._wrap(index.reshape(())))
    return SortResult(Sort.apply(x, index, d, True), x._wrap(index.copy()))  # not the array backward reads


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """(values, indices) of the k largest (largest=False: smallest) elements along dim, in order.

    The result is always sorted (which sorted=False allows). The values' gradient goes to the
    chosen indices.
    """
    _check_tensor("topk", x)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"topk: k must be an int, got {k!r}")
    d = _one_dim("topk", x, dim)
    n = 1 if x.ndim == 0 else x.shape[d]
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {n} (input shape {tuple(x.shape)})")
    data = _as_1d(x)
    index = sort_order(data, d, descending=largest)
    index = index[(slice(None),) * d + (slice(0, int(k)),)]
    if x.ndim == 0:
        if k == 0:
            raise ValueError("topk: k=0 on a 0-d tensor leaves nothing to return")
        return TopKResult(x.clone(), x._wrap(index.reshape(())))
    index = index.copy() if is_device_array(index) else np.ascontiguousarray(index)
    return TopKResult(TopK.apply(x, index, d, True), x._wrap(index.copy()))  # not the array backward reads


def clamp(x: Tensor, min: Operand | None = None, max: Operand | None = None) -> Tensor:
    """Every element limited to [min, max] (each a number, a tensor or None; at least one given).

    Where min > max the result is max, as in PyTorch. Tensor bounds broadcast with x and get
    gradients where they are the value taken; see Clamp.
    """
    _check_tensor("clamp", x)
    if min is None and max is None:
        raise ValueError(f"clamp: at least one of min and max must be given (input shape {tuple(x.shape)})")
    bounds = [b for b in (min, max) if b is not None]
    for b in bounds:
        if not (isinstance(b, (Variable, bool, int, float, np.number, np.ndarray)) or is_device_array(b)):
            raise TypeError(f"clamp: min and max must be numbers or tensors, got {type(b).__name__}")
        if isinstance(b, Variable) and device_of(b._array) != device_of(x._array):
            raise RuntimeError(f"clamp: expected all tensors on the same device, got {device_of(x._array)} "
                               f"and {device_of(b._array)}")
    if x.dtype == np.bool_ or any(getattr(array_of(b), "dtype", None) == np.bool_ for b in bounds):
        raise TypeError(f"clamp: bool tensors are not supported (input dtype {x.dtype})")
    dtype = _clamp_dtype(x, bounds)
    x = cast_operand(x, dtype)
    lo = None if min is None else _bound(cast_operand(min, dtype), x)
    hi = None if max is None else _bound(cast_operand(max, dtype), x)
    check_broadcast("clamp", x.shape, *(np.shape(array_of(b)) for b in (lo, hi) if b is not None))
    return Clamp.apply(x, lo, hi)


clip = clamp


def _bound(b, like):
    """A bound as a tensor or an array on the device of tensor `like`."""
    if isinstance(b, Variable) or device_of(b) == device_of(like._array):
        return b
    return move(b, device_of(like._array))


def _clamp_dtype(x, bounds):
    """PyTorch's promotion for clamp: the float tensors' dtype; else float32 if a bound is a Python
    (or numpy scalar) float; else the integer tensors' common dtype."""
    arrays = [b for b in bounds if isinstance(b, (Variable, np.ndarray)) or is_device_array(b)]
    tensors = [x.dtype] + [array_of(b).dtype for b in arrays]
    floats = [np.dtype(d) for d in tensors if np.dtype(d).kind == "f"]
    if floats:
        return np.result_type(*floats)
    if any(isinstance(b, (float, np.floating)) for b in bounds):
        return np.dtype(np.float32)
    return np.result_type(*tensors)
