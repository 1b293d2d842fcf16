"""Ops that move elements without changing them: reshape, transpose, permute, expand,
indexing, cat and stack. Each backward sends every gradient element back to where its
element came from (indexing scatter-adds, since an index may repeat).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..autograd import Function, Variable
from ..autograd.function import constant
from ..autograd.views import memory_owner
from ..backend import backend_of, move
from .checks import normalize_dims, sum_to_shape, sum_to_shape_graph
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .._typing import Dim
    from ..tensor import Tensor

__all__ = [
    "Cat", "cat", "Contiguous", "contiguous", "Expand", "expand", "flatten", "GetItem", "getitem", "normalize_index",
    "Permute", "permute", "Reshape", "reshape", "squeeze", "Stack", "stack", "transpose", "Unbind", "unbind",
    "unsqueeze", "view",
]


@functools.lru_cache(maxsize=64)
def _joined_layout(shape, strides, itemsize, dim, count, sizes, gaps):
    """joined_view's (shape, strides) for parts of one `shape` and `strides` (lengths `sizes` along `dim` when
    concatenated, None when stacked), each starting `gaps` bytes after the one before, or None when they are not
    side by side or the joined layout would reach an element twice."""
    if sizes is None:
        if len(set(gaps)) != 1:
            return None
        joined = shape[:dim] + (count,) + shape[dim:], strides[:dim] + (gaps[0],) + strides[dim:]
    else:
        if gaps != tuple(n * strides[dim] for n in sizes[:-1]):
            return None
        joined = shape[:dim] + (sum(sizes),) + shape[dim + 1:], strides
    reach = itemsize - 1  # every element at its own address: from the smallest stride up, each axis steps past
    for n, st in sorted(((n, abs(st)) for n, st in zip(*joined) if n > 1), key=lambda t: t[1]):  # the ones below
        if st <= reach:
            return None
        reach += (n - 1) * st
    return joined


def joined_view(parts, dim, sizes=None):
    """The parts joined along `dim` as a view instead of a copy, when they already lie side by side in one buffer:
    host arrays of one dtype, strides and memory owner, each starting where the one before ends along `dim` (a
    fused attention's dq, dk, dv for q, k, v = qkv.unbind(...), kernels/cpu/attention). `sizes` None: stacked (a
    new axis `dim`, the parts of one shape); else concatenated, with these lengths along `dim`. None when they
    do not (then join a copy); never a view across two allocations."""
    first = parts[0]
    owner = getattr(first, "base", None)
    if owner is None or len(parts) < 2 or any(
            type(g) is not np.ndarray or g.base is not owner or g.dtype != first.dtype or g.strides != first.strides
            or (sizes is None and g.shape != first.shape) for g in parts):
        return None
    if sizes is not None:
        rest = first.shape[:dim] + first.shape[dim + 1:]
        if any(g.shape[:dim] + g.shape[dim + 1:] != rest or g.shape[dim] != n for g, n in zip(parts, sizes)):
            return None
        sizes = tuple(sizes)
    starts = [g.ctypes.data for g in parts]
    gaps = tuple(b - a for a, b in zip(starts, starts[1:]))
    layout = _joined_layout(first.shape, first.strides, first.itemsize, dim, len(parts), sizes, gaps)
    return None if layout is None else np.lib.stride_tricks.as_strided(first, *layout)


class Reshape(Function):
    """y = x viewed with another shape (same elements in row-major order).  dx = dy reshaped back."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, dy):
        return dy.reshape(ctx.shape), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy.reshape(tuple(ctx.shape)), None


class Permute(Function):
    """y = x with its axes reordered: y.shape[i] = x.shape[dims[i]].  dx = dy permuted by the inverse."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, dims):
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d] = i
        ctx.inverse = tuple(inverse)
        return x.transpose(dims) if type(x) is np.ndarray else np.transpose(x, dims)

    @staticmethod
    def backward(ctx, dy):
        return np.transpose(dy, ctx.inverse), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy.permute(*ctx.inverse), None


class Expand(Function):
    """y = x broadcast to `shape` (a view, no copy).  dx = dy summed over the broadcast axes."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, dy):
        return sum_to_shape(dy, ctx.shape), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return sum_to_shape_graph(dy, ctx.shape), None


class GetItem(Function):
    """y = x[index].  dx = zeros with dy added at the indexed places (repeated indices add up)."""

    returns_view = True
    fresh_grads = True  # dx is new zeros written into (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        y = x[index]
        if isinstance(y, np.generic):  # every axis indexed by an int: a 0-d view instead of a scalar copy
            y = x[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
        return y

    @staticmethod
    def backward(ctx, dy):
        dx = backend_of(dy).xp.zeros(ctx.shape, dtype=dy.dtype)
        if _is_basic(ctx.index):
            dx[ctx.index] = dy  # a basic index never repeats an element
        else:
            np.add.at(dx, ctx.index, dy)
        return dx, None

    @staticmethod
    def accumulate_into(ctx, acc, dy):
        """acc[index] += dy (the walk's own host array: another slice of the same tensor reached it first)."""
        if _is_basic(ctx.index):
            acc[ctx.index] += dy
        else:
            np.add.at(acc, ctx.index, dy)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy written (a basic index) or scatter-added (an advanced one) into zeros of x's shape by
        IndexAccumulate, whose own double backward reads the places back with GetItem."""
        from .indexing import IndexAccumulate

        zeros = constant(dy, backend_of(dy._array).xp.zeros(ctx.shape, dtype=dy._array.dtype))
        index = ctx.index  # IndexAccumulate reads its index on the host
        index = tuple(move(i, "cpu") for i in index) if isinstance(index, tuple) else move(index, "cpu")
        return IndexAccumulate.apply(zeros, dy, index, not _is_basic(index)), None


class Contiguous(Function):
    """y = x laid out in row-major order (a copy).  dx = dy."""

    @staticmethod
    def forward(ctx, x):
        return x.ascontiguous() if hasattr(x, "ascontiguous") else np.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, dy):
        return dy

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy


class Unbind(Function):
    """(y_0, ..., y_{n-1}) = the slices of x along `dim` (views, no copy).

    dx = the gradients stacked back along `dim`; a slice that no gradient reached gets zeros. Gradients that
    already lie side by side in one buffer are returned as a view of it (joined_view). Otherwise,
    on the host dx is laid out in x's memory order (NumPy's order "K"): for
    q, k, v = qkv.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0) the stacked gradient is then a
    view of a (B, T, 3, H, D) buffer, and the permute and reshape back to qkv's shape are views too, where
    a row-major stack would need a second, transposing copy.
    """

    returns_view = True

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        ctx.strides = getattr(x, "strides", None)  # x's memory order, which backward reads (see _memory_order)
        if x.ndim == 1 and type(x) is np.ndarray:  # 0-d views (x[i, ...]), as PyTorch: tuple(x) gives copies
            return tuple(x[i, ...] for i in range(x.shape[0]))
        return tuple(x if dim == 0 and type(x) is np.ndarray else np.moveaxis(x, dim, 0))

    @staticmethod
    def _memory_order(strides):
        """x's axes from the largest stride to the smallest (its memory order), or None for a row-major x (or no
        strides); a stable sort: equal strides keep their axis order, as np.argsort(kind="stable") would."""
        if strides is None:
            return None
        order = tuple(sorted(range(len(strides)), key=lambda i: -abs(strides[i])))
        return None if order == tuple(range(len(strides))) else order

    @staticmethod
    def backward(ctx, dys):
        joined = joined_view(dys, ctx.dim)
        if joined is not None:  # already side by side (a fused attention's dq, dk, dv): no copy
            return joined, None
        present = next(g for g in dys if g is not None)
        parts = [np.zeros_like(present) if g is None else g for g in dys]
        order = Unbind._memory_order(ctx.strides)
        if order is None or not isinstance(present, np.ndarray):
            return np.stack(parts, axis=ctx.dim), None
        shape = present.shape[:ctx.dim] + (len(parts),) + present.shape[ctx.dim:]
        base = np.empty(tuple(shape[a] for a in order), dtype=np.result_type(*parts))
        dx = base.transpose(np.argsort(order))  # shape `shape`, strides in x's order
        np.stack(parts, axis=ctx.dim, out=dx)
        return dx, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dys):
        """The gradients stacked back along dim (Stack), zeros for a slice that no gradient reached."""
        present = next(g for g in dys if g is not None)
        zeros = None
        parts = []
        for g in dys:
            if g is None:
                if zeros is None:
                    zeros = constant(present, backend_of(present._array).xp.zeros(present.shape,
                                                                                   dtype=present._array.dtype))
                g = zeros
            parts.append(g)
        return Stack.apply(ctx.dim, *parts), None


class Cat(Function):
    """y = the inputs joined along `dim`.  Each input's gradient is its slice of dy."""

    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim = dim
        ctx.bounds = np.cumsum([x.shape[dim] for x in xs])[:-1]
        return np.concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        return (None, *np.split(dy, ctx.bounds, axis=ctx.dim))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy split back into the inputs' pieces along dim (shape_ops.Split)."""
        from .shape_ops import Split

        bounds = [0, *(int(b) for b in ctx.bounds), dy.shape[ctx.dim]]
        parts = Split.apply(dy, ctx.dim, bounds)
        return (None, *(None if x is None else p for x, p in zip(inputs[1:], parts)))


class Stack(Function):
    """y = the inputs stacked along a new axis `dim`.  Input i's gradient is dy[..., i, ...]."""

    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim = dim
        if dim == 0:  # host arrays of one shape and dtype (stack checked): np.array stacks them in one C call
            for x in xs:  # (np.memmap: from_numpy of a memmap's slice; both give a plain array)
                if type(x) is not np.ndarray and type(x) is not np.memmap:
                    break
            else:
                return np.array(xs)
        return np.stack(xs, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        return (None, *(np.take(dy, i, axis=ctx.dim) for i in range(dy.shape[ctx.dim])))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy's slices along dim (Unbind)."""
        parts = Unbind.apply(dy, ctx.dim)
        return (None, *(None if x is None else p for x, p in zip(inputs[1:], parts)))


# ---- public functions ---------------------------------------------------------------


def reshape(x: Tensor, *shape: Any) -> Tensor:
    shape = _shape_args("reshape", shape)
    current = x._array.shape
    target = _resolved_shape(current, shape)
    if target is None:  # anything unusual (a size mismatch, a negative size, a -1 with no elements): NumPy decides
        try:
            target = np.empty(current, dtype=np.bool_).reshape(shape).shape  # resolves -1, checks the size
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {shape}") from None
    if target == current:
        return x
    return Reshape.apply(x, target)


def _resolved_shape(current, shape):
    """`shape` (ints, at most one -1) with its -1 resolved, when it fits `current`'s element count and has
    elements; None otherwise (the caller then asks NumPy, which resolves or raises)."""
    size = math.prod(current)
    if len(shape) == 1 and shape[0] == -1:  # flatten: x.view(-1)
        return (size,) if size else None
    known, free = 1, -1
    for i, n in enumerate(shape):
        if n >= 0:
            known *= n
        elif n == -1 and free < 0:
            free = i
        else:
            return None
    if free < 0:
        return shape if known == size else None
    if known == 0 or size % known:
        return None
    return shape[:free] + (size // known,) + shape[free + 1:]


def contiguous(x: Tensor) -> Tensor:
    """x itself when its elements are laid out in row-major order, else a row-major copy (differentiable)."""
    data = x._array
    if data.is_contiguous if hasattr(data, "is_contiguous") else data.flags.c_contiguous:
        return x
    return Contiguous.apply(x)


def view(x: Tensor, *shape: Any) -> Tensor:
    """PyTorch's view: a reshape that shares x's memory. Where x's layout cannot be seen in the new
    shape without a copy (a transposed matrix flattened), it is an error, as in PyTorch, so that an
    in-place change of the result can never miss x; .reshape() copies there instead."""
    out = reshape(x, *shape)
    if out is x:
        return out
    data, source = out._array, x._array
    if type(data) is np.ndarray and type(source) is np.ndarray:  # a view of x's array, or of the array x views
        base = data.base
        if base is not None and (base is source or base is source.base):
            return out
    if data.size and memory_owner(data) is not memory_owner(source):
        raise RuntimeError(f"view: a tensor of shape {tuple(x.shape)} whose elements are not laid out in row-major "
                           f"order (a transpose or a strided slice) cannot be viewed as {tuple(out.shape)} without a "
                           "copy; use .reshape(...) (or .contiguous().view(...))")
    return out


def permute(x: Tensor, *dims: Any) -> Tensor:
    dims = _shape_args("permute", dims, what="dims")
    n = x.ndim
    axes = tuple([d + n if d < 0 else d for d in dims])  # (not `%`: 5 % 2 would pass for axis 1)
    if sorted(axes) != list(range(n)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {n} axes of shape {x.shape}")
    return Permute.apply(x, axes)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    n = x.ndim
    if type(dim0) is int and type(dim1) is int and -n <= dim0 < n and -n <= dim1 < n:  # the common call
        d0, d1 = dim0 % n, dim1 % n
    else:
        axes = [normalize_dims("transpose", d, n) for d in (dim0, dim1)]  # (raises for a dim out of range)
        if n == 0:  # a 0-d tensor takes dims 0 and -1, as in PyTorch: itself, as a view
            return Permute.apply(x, ())
        (d0,), (d1,) = axes
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, tuple(dims))


def expand(x: Tensor, *sizes: Any) -> Tensor:
    sizes = _shape_args("expand", sizes, what="sizes")
    if len(sizes) < x.ndim:
        raise ValueError(f"expand: cannot expand shape {x.shape} to {sizes}: too few sizes")
    lead = len(sizes) - x.ndim
    for i, s in enumerate(sizes):
        if s < -1:
            raise ValueError(f"expand: size {s} (position {i} of {sizes}) is negative; only -1 (keep the size) "
                             "is allowed")
        if s == -1 and i < lead:
            raise ValueError(f"expand: -1 is not allowed in a new leading dim (position {i} of {sizes}), "
                             f"expanding shape {x.shape}")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i, n in enumerate(x.shape):
        if n != 1 and shape[lead + i] != n:
            raise ValueError(f"expand: cannot expand shape {x.shape} to {sizes}: dim {i} has size {n}, not 1")
    return Expand.apply(x, shape)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    dim = dim % (x.ndim + 1) if -(x.ndim + 1) <= dim <= x.ndim else None  # type: ignore[assignment]
    if dim is None:
        raise ValueError(f"unsqueeze: dim is out of range for a tensor with {x.ndim} dimensions")
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x: Tensor, dim: Dim = None) -> Tensor:
    dims = normalize_dims("squeeze", dim, x.ndim)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    for d in (start_dim, end_dim):
        normalize_dims("flatten", d, x.ndim)  # range and type checks (a 0-d tensor takes 0 or -1)
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = (normalize_dims("flatten", d, x.ndim)[0] for d in (start_dim, end_dim))
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1 :])


def getitem(x, index):
    index = normalize_index(x, index)
    return GetItem.apply(x, index)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices of x along dim, as a tuple of tensors (PyTorch's unbind)."""
    ndim = x._array.ndim
    if ndim == 0:
        raise ValueError("unbind: cannot unbind a 0-d tensor")
    if type(dim) is int and -ndim <= dim < ndim:
        return Unbind.apply(x, dim % ndim)
    return Unbind.apply(x, normalize_dims("unbind", dim, ndim)[0])


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    _check_joinable("cat", tensors, dim, same_shape=False)
    d = normalize_dims("cat", dim, tensors[0].ndim)[0]
    return Cat.apply(d, *tensors)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    _check_joinable("stack", tensors, dim, same_shape=True)
    ndim = tensors[0].ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"stack: dim {dim} is out of range for {ndim} dimensions")
    return Stack.apply(dim % ndim, *tensors)


# ---- helpers ------------------------------------------------------------------------


def _shape_args(op, args, what="shape arguments"):
    """Accept both f(2, 3) and f((2, 3)), as PyTorch does; anything but ints is a TypeError naming `op`."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for a in args:  # the common case, plain ints (not bools), as they are
        if type(a) is not int:
            break
    else:
        return args
    if not all(isinstance(a, (int, np.integer)) for a in args):
        if all(isinstance(a, Variable) and a._array.dtype.kind in "iu" and a._array.size == 1 for a in args
               if not isinstance(a, (int, np.integer))) and not any(isinstance(a, bool) for a in args):
            return tuple(a.__index__() if isinstance(a, Variable) else int(a) for a in args)  # one-element int tensors
        raise TypeError(f"{op}: {what} must be ints, got {args}")
    return tuple(int(a) for a in args)


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def normalize_index(x, index):
    """Tensors inside the index become arrays; integer indices are range-checked up front."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for item in items:
        if isinstance(item, Variable):
            item = item._array.copy()  # a snapshot: backward reads the index after the user may have changed it
        elif isinstance(item, (list, np.ndarray)):
            item = np.array(item)
        if hasattr(item, "dtype") and item.dtype != np.bool_ and not np.issubdtype(item.dtype, np.integer):
            raise TypeError(f"getitem: index arrays must be integer or bool, got dtype {item.dtype}")
        out.append(item)
    index = tuple(out) if isinstance(index, tuple) else out[0]
    try:  # a trial run on a host array of the same shape (index arrays read on the host)
        host = tuple(move(i, "cpu") for i in out) if isinstance(index, tuple) else move(out[0], "cpu")
        np.empty(x.shape, dtype=np.bool_)[host]
    except IndexError as e:
        raise IndexError(f"getitem: invalid index for a tensor of shape {x.shape}: {e}") from None
    return index


def _check_joinable(op, tensors, dim, same_shape):
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    first = tensors[0]
    if not same_shape and isinstance(first, Variable) and first.ndim == 0:
        raise ValueError(f"{op}: zero-dimensional tensors cannot be concatenated; use stack")
    for t in tensors:
        if not isinstance(t, Variable):
            raise TypeError(f"{op}: expected tensors, got {type(t).__name__}")
        if t._array.dtype != first._array.dtype:
            raise TypeError(f"{op}: dtypes differ: {first.dtype} and {t.dtype}")
    shapes = [tuple(t._array.shape) for t in tensors]
    if same_shape:
        if len(set(shapes)) != 1:
            raise ValueError(f"{op}: all tensors must have the same shape, got {shapes}")
        return
    d = normalize_dims(op, dim, first.ndim)[0]
    for s in shapes:
        if len(s) != len(shapes[0]) or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != d):
            raise ValueError(f"{op}: shapes {shapes} differ outside dim {dim}")
