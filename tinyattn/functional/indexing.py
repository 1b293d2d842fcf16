"""Ops that read or write elements at integer indices, PyTorch's names: gather, scatter (src or value,
reduce='add'/'multiply'), scatter_add, index_select, index_fill, index_add, index_copy, masked_select,
nonzero/argwhere, take, take_along_dim; and their in-place forms (scatter_, scatter_add_, index_fill_,
index_add_, index_copy_), which follow functional/inplace.py's rules.

Indices are int64 (any integer dtype is accepted) and range-checked before anything runs. PyTorch's
shape rules: for gather and scatter, index has the input's number of dims and is no larger than the input
(and than src, for scatter) in every dim but `dim`; the output of gather has index's shape.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Variable
from ..autograd.function import constant
from ..backend import device_of, move
from .checks import (
    on_host,
    check_broadcast, check_indices, check_tensor, host_result, normalize_dims, on_device_of, sum_to_shape,
    sum_to_shape_graph,
)
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .._typing import Number, Operand
    from ..tensor import Tensor

__all__ = [
    "argwhere", "Gather", "gather", "index_add", "index_copy", "index_fill", "index_put", "index_select",
    "IndexAccumulate", "IndexPut", "IndexSelect", "masked_scatter", "masked_select", "MaskedScatter", "MaskedSelect",
    "nonzero", "Scatter", "scatter", "scatter_add", "scatter_reduce", "ScatterAdd", "ScatterReduce", "take",
    "take_along_dim",
]


def _dim(op, x, dim):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    dims = normalize_dims(op, dim, x.ndim)
    return dims[0] if dims else 0


def _index(op, index, like, what="index"):
    """The index as an integer host array (a copy), or a TypeError naming op."""
    if isinstance(index, Variable):
        arr = move(index._array, "cpu").copy()  # indices are read on the host
    elif isinstance(index, (list, tuple, np.ndarray, int, np.integer)):
        arr = np.array(index)
    else:
        raise TypeError(f"{op}: {what} must be a tensor of integers, got {type(index).__name__}")
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{op}: {what} must be an integer (int64) tensor, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _axes_index(index, dim):
    """The advanced index tuple that addresses, in an array with index's shape in every dim but `dim`,
    the places index names along dim: aranges on the other axes."""
    out = []
    for d, n in enumerate(index.shape):
        if d == dim:
            out.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            out.append(np.arange(n).reshape(shape))
    return tuple(out)


def _check_index_shape(op, x, index, dim, src=None):
    if index.ndim != max(x.ndim, 1) and not (x.ndim == 0 and index.ndim <= 1):
        raise ValueError(f"{op}: index {tuple(index.shape)} must have as many dims as the input {tuple(x.shape)}")
    xs = x.shape if x.ndim else (1,)
    for d, n in enumerate(index.shape):
        if d != dim and n > xs[d]:
            raise ValueError(f"{op}: index of shape {tuple(index.shape)} is larger than the input of shape "
                             f"{tuple(x.shape)} in dim {d} (only dim {dim} may differ)")
        if src is not None and n > (src.shape if src.ndim else (1,))[d]:
            raise ValueError(f"{op}: index of shape {tuple(index.shape)} is larger than src of shape "
                             f"{tuple(src.shape)} in dim {d}")
    check_indices(op, index, xs[dim], "index")


def _corner(a, shape):
    """a[:shape[0], :shape[1], ...]: the leading block of `a` of `shape`."""
    return a[tuple(slice(0, n) for n in shape)]


def _const(like, array):
    """`array` (a mask, a scale, zeros: a value the double backward does not differentiate) as a constant
    tensor on the device of tensor `like`, in its dtype."""
    array = np.asarray(array, dtype=like._array.dtype) if isinstance(array, np.ndarray) else array
    return constant(like, move(array, device_of(like._array)))


def _zeros(like, shape):
    return _const(like, np.zeros(shape, dtype=like._array.dtype))


def _pad_graph(g, shape):
    """Tensor g placed at the leading corner of zeros of `shape` (recorded; g itself when it fills it)."""
    if tuple(g.shape) == tuple(shape):
        return g
    return IndexAccumulate.apply(_zeros(g, shape), g, tuple(slice(0, n) for n in g.shape), False)


@on_host
class Gather(Function):
    """y[i][j][k] = x[index[i][j][k]][j][k] along dim (dim 0 shown).  dx = zeros with dy added at the
    places read (np.add.at: an element read twice collects both gradients)."""

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.save_for_backward(index)
        ctx.shape, ctx.dim = x.shape, dim
        return x[_axes_index(index, dim)]

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        dx = np.zeros_like(dy, shape=ctx.shape)
        np.add.at(dx, _axes_index(index, ctx.dim), dy)
        return dx, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy scatter-added into zeros (ScatterAdd, whose double backward gathers again)."""
        (index,) = ctx.saved
        return ScatterAdd.apply(_zeros(dy, ctx.shape), dy, index, ctx.dim), None, None


def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    check_tensor("gather", "input", input)
    d = _dim("gather", input, dim)
    index = _index("gather", index, input)
    _check_index_shape("gather", input, index, d)
    if input.ndim == 0:
        return Gather.apply(input.reshape(1), index.reshape(-1), 0).reshape(index.shape)
    return Gather.apply(input, index, d)


def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """NumPy's take_along_axis: like gather, with indices broadcast against the input (dim=None: flattened)."""
    check_tensor("take_along_dim", "input", input)
    idx = _index("take_along_dim", indices, input, "indices")
    if dim is None:
        from .shape import reshape

        return gather(reshape(input, -1), 0, idx.reshape(-1))
    d = _dim("take_along_dim", input, dim)
    shape = list(check_broadcast("take_along_dim", tuple(s if i != d else 1 for i, s in enumerate(input.shape)),
                                 tuple(s if i != d else 1 for i, s in enumerate(idx.shape))))
    from .shape import expand

    xs = list(shape)
    xs[d] = input.shape[d]
    ishape = list(shape)
    ishape[d] = idx.shape[d]
    return gather(expand(input, tuple(xs)), d, np.broadcast_to(idx, ishape).copy())


@on_host
class Scatter(Function):
    """y = x with y[index[i][j]][j] = src[i][j] along dim (dim 0 shown; src read in index's shape).
    dx = dy with zeros at the written places; dsrc = dy read at those places (PyTorch's rule), zeros
    outside index's shape."""

    @staticmethod
    def forward(ctx, x, src, index, dim):
        ctx.save_for_backward(index)
        ctx.dim, ctx.src_shape = dim, np.shape(src)
        y = x.copy()
        places = _axes_index(index, dim)
        y[places] = _corner(src, index.shape) if np.ndim(src) else src
        return y

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        places = _axes_index(index, ctx.dim)
        need_x, need_src = ctx.needs_input_grad[:2]
        dx = dsrc = None
        if need_x:
            dx = dy.copy()
            dx[places] = 0
        if need_src:
            dsrc = np.zeros_like(dy, shape=ctx.src_shape)
            _corner(dsrc, index.shape)[...] = dy[places]
        return dx, dsrc, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy times a constant mask (0 at the written places); dsrc = Gather of dy, padded with zeros."""
        (index,) = ctx.saved
        x, src = inputs[:2]
        dx = dsrc = None
        if x is not None:
            keep = np.ones(dy.shape, dtype=dy._array.dtype)
            keep[_axes_index(index, ctx.dim)] = 0
            dx = dy * _const(dy, keep)
        if src is not None:
            dsrc = _pad_graph(Gather.apply(dy, index, ctx.dim), ctx.src_shape)
        return dx, dsrc, None, None


@on_host
class ScatterAdd(Function):
    """y = x with src added at index along dim (repeated places add up).  dx = dy; dsrc = dy read at the
    places (zeros outside index's shape)."""

    @staticmethod
    def forward(ctx, x, src, index, dim):
        ctx.save_for_backward(index)
        ctx.dim, ctx.src_shape = dim, np.shape(src)
        y = x.copy()
        np.add.at(y, _axes_index(index, dim), _corner(src, index.shape))
        return y

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        need_x, need_src = ctx.needs_input_grad[:2]
        dsrc = None
        if need_src:
            dsrc = np.zeros_like(dy, shape=ctx.src_shape)
            _corner(dsrc, index.shape)[...] = dy[_axes_index(index, ctx.dim)]
        return (dy if need_x else None), dsrc, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy; dsrc = Gather of dy, padded with zeros outside index's shape."""
        (index,) = ctx.saved
        x, src = inputs[:2]
        dsrc = None if src is None else _pad_graph(Gather.apply(dy, index, ctx.dim), ctx.src_shape)
        return (None if x is None else dy), dsrc, None, None


def _src(op, input, src):
    """src as a tensor of input's dtype (a number becomes a 0-d constant)."""
    if isinstance(src, Variable):
        if src.dtype != input.dtype:
            raise TypeError(f"{op}: expected src to have the input's dtype {input.dtype}, got {src.dtype}")
        return src
    if isinstance(src, (bool, int, float, np.number)):
        return host_result(input, np.asarray(src, dtype=input.dtype))
    raise TypeError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")


def scatter(input: Tensor, dim: int, index: Tensor, src: Tensor | None = None, *, value: Number | None = None,
            reduce: str | None = None) -> Tensor:
    """A copy of input with src's elements (or `value`) written at index along dim. reduce='add' or
    'multiply' combines with what is there instead (PyTorch's older scatter(..., reduce=))."""
    check_tensor("scatter", "input", input)
    if (src is None) == (value is None):
        if src is None:
            raise TypeError("scatter: expected src (a tensor) or value (a number)")
        raise TypeError("scatter: pass src or value, not both")
    src = _src("scatter", input, src if src is not None else value)
    d = _dim("scatter", input, dim)
    index = _index("scatter", index, input)
    _check_index_shape("scatter", input, index, d, src if src.ndim else None)
    if input.ndim == 0:
        raise ValueError("scatter: a 0-d input is not supported; reshape it to (1,)")
    if src.ndim == 0:
        from .shape import expand

        src = expand(src, tuple(index.shape))
    if reduce is None:
        return Scatter.apply(input, src, index, d)
    if reduce == "add":
        return ScatterAdd.apply(input, src, index, d)
    if reduce == "multiply":
        if input.requires_grad or src.requires_grad:
            raise NotImplementedError("scatter: reduce='multiply' has no gradient (as in PyTorch)")
        y = input._array.copy()
        np.multiply.at(y, _axes_index(index, d), _corner(src._array, index.shape))
        return input._wrap(y)
    raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    check_tensor("scatter_add", "input", input)
    src = _src("scatter_add", input, src)
    d = _dim("scatter_add", input, dim)
    index = _index("scatter_add", index, input)
    _check_index_shape("scatter_add", input, index, d, src)
    return ScatterAdd.apply(input, src, index, d)


@on_host
class IndexSelect(Function):
    """y = x's slices along dim at `index` (1-D).  dx = zeros with dy's slices added back (repeats add)."""

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.save_for_backward(index)
        ctx.shape, ctx.dim = x.shape, dim
        return np.take(x, index, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        dx = np.zeros_like(dy, shape=ctx.shape)
        np.add.at(dx, (slice(None),) * ctx.dim + (index,), dy)
        return dx, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy's slices added into zeros at index (IndexPut with add, whose double backward selects again)."""
        (index,) = ctx.saved
        return IndexPut.apply(_zeros(dy, ctx.shape), dy, index, ctx.dim, True), None, None


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    check_tensor("index_select", "input", input)
    d = _dim("index_select", input, dim)
    index = _index("index_select", index, input)
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 1-d (or 0-d), got shape {tuple(index.shape)}")
    x = input if input.ndim else input.reshape(1)
    check_indices("index_select", index, x.shape[d], "index")
    out = IndexSelect.apply(x, index.reshape(-1), d)
    return out.reshape(()) if input.ndim == 0 else out


@on_host
class IndexPut(Function):
    """y = x with the slices along dim at `index` replaced by src's slices (add=False) or with src's slices
    added to them (add=True).  dx = dy (zeros at the replaced slices); dsrc = dy's slices at index."""

    @staticmethod
    def forward(ctx, x, src, index, dim, add):
        ctx.save_for_backward(index)
        ctx.dim, ctx.add, ctx.src_shape = dim, add, np.shape(src)
        y = x.copy()
        where = (slice(None),) * dim + (index,)
        if add:
            np.add.at(y, where, src)
        else:
            y[where] = src
        return y

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        where = (slice(None),) * ctx.dim + (index,)
        need_x, need_src = ctx.needs_input_grad[:2]
        dx = dsrc = None
        if need_x:
            dx = dy
            if not ctx.add:
                dx = dy.copy()
                dx[where] = 0
        if need_src:
            dsrc = sum_to_shape(np.take(dy, index, axis=ctx.dim), ctx.src_shape)
        return dx, dsrc, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy (times a constant mask, 0 at the replaced slices, without add); dsrc = IndexSelect of dy."""
        (index,) = ctx.saved
        x, src = inputs[:2]
        dx = dsrc = None
        if x is not None:
            dx = dy
            if not ctx.add:
                keep = np.ones(dy.shape, dtype=dy._array.dtype)
                keep[(slice(None),) * ctx.dim + (index,)] = 0
                dx = dy * _const(dy, keep)
        if src is not None:
            dsrc = sum_to_shape_graph(IndexSelect.apply(dy, index, ctx.dim), ctx.src_shape)
        return dx, dsrc, None, None, None


def _index_put(op, input, dim, index, source, add, alpha=1):
    check_tensor(op, "input", input)
    d = _dim(op, input, dim)
    index = _index(op, index, input).reshape(-1)
    check_indices(op, index, input.shape[d] if input.ndim else 1, "index")
    if isinstance(source, Variable):
        want = list(input.shape)
        if want:
            want[d] = index.size
        if add and source.dtype != input.dtype:
            raise TypeError(f"{op}: source dtype {source.dtype} differs from the input's {input.dtype}")
        if tuple(source.shape) != tuple(want) and not (source.ndim == 0 and index.size == 1):
            if add or source.ndim != 0:
                raise ValueError(f"{op}: source of shape {tuple(source.shape)} does not match the input "
                                 f"{tuple(input.shape)} with dim {dim} of size {index.size}")
        if alpha != 1:
            from .elementwise import mul

            source = mul(source, alpha)
        if source.dtype != input.dtype:
            from .elementwise import cast

            source = cast(source, input.dtype)
    else:
        source = host_result(input, np.asarray(source, dtype=input.dtype))
    if input.ndim == 0:
        from .shape import reshape

        return reshape(IndexPut.apply(reshape(input, 1), reshape(source, 1), index, 0, add), ())
    return IndexPut.apply(input, source, index, d, add)


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Number = 1) -> Tensor:
    """A copy of input with alpha · source's slices added at index along dim (repeats add up)."""
    if not isinstance(source, Variable):
        raise TypeError(f"index_add: source must be a tensor, got {type(source).__name__}")
    return _index_put("index_add", input, dim, index, source, True, alpha)


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    if not isinstance(source, Variable):
        raise TypeError(f"index_copy: source must be a tensor, got {type(source).__name__}")
    return _index_put("index_copy", input, dim, index, source, False)


def index_fill(input: Tensor, dim: int, index: Tensor, value: Operand) -> Tensor:
    """A copy of input with the slices at index along dim set to value (a number or a 0-d tensor)."""
    if isinstance(value, Variable) and value.ndim != 0:
        raise ValueError(f"index_fill: value must be a number or a 0-d tensor, got shape {tuple(value.shape)}")
    if isinstance(value, Variable):
        from .shape import expand

        want = list(input.shape)
        d = _dim("index_fill", input, dim)
        idx = _index("index_fill", index, input).reshape(-1)
        if want:
            want[d] = idx.size
        value = expand(value if value.dtype == input.dtype else value.to(input.dtype), tuple(want))
        return _index_put("index_fill", input, dim, idx, value, False)
    return _index_put("index_fill", input, dim, index, value, False)


@on_host
class MaskedSelect(Function):
    """y = the elements of x where mask (both broadcast), as a 1-D tensor in row-major order.
    dx = zeros with dy written at the masked places, summed back to x's shape."""

    @staticmethod
    def forward(ctx, x, mask, shape):
        ctx.save_for_backward(mask)
        ctx.shape, ctx.full = x.shape, shape
        return np.broadcast_to(x, shape)[np.broadcast_to(mask, shape)]

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        dx = np.zeros_like(dy, shape=ctx.full)
        dx[np.broadcast_to(mask, ctx.full)] = dy
        return sum_to_shape(dx, ctx.shape), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy written at the masked places of zeros (MaskedScatter, whose double backward selects again),
        summed back to x's shape."""
        (mask,) = ctx.saved
        dx = MaskedScatter.apply(_zeros(dy, ctx.full), np.broadcast_to(mask, ctx.full), dy)
        return sum_to_shape_graph(dx, ctx.shape), None, None


def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    check_tensor("masked_select", "input", input)
    mask = on_device_of("masked_select", mask, input._array)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_select: mask must be a bool tensor, got dtype {mask.dtype}")
    shape = check_broadcast("masked_select", input.shape, mask.shape)
    return MaskedSelect.apply(input, mask, shape)


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """The indices of the nonzero elements: an (n, ndim) int64 tensor, or (as_tuple=True) one 1-D tensor
    per dim (a 0-d input counts as 1-d there, as in PyTorch)."""
    check_tensor("nonzero", "input", input)
    a = input.numpy()
    if as_tuple:
        return tuple(host_result(input, i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(a)))
    return host_result(input, np.argwhere(a).astype(np.int64))


def argwhere(input: Tensor) -> Tensor:
    return nonzero(input)


def take(input: Tensor, index: Tensor) -> Tensor:
    """input read as a 1-D tensor at index (any shape); the result has index's shape."""
    check_tensor("take", "input", input)
    from .shape import reshape

    idx = _index("take", index, input)
    n = input.numel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"take: index out of range for a tensor of {n} elements")
    return reshape(gather(reshape(input, -1), 0, (idx % max(n, 1)).reshape(-1)), idx.shape)


# ---- scatter_reduce, index_put, masked_scatter ---------------------------------------------------------


@on_host
class ScatterReduce(Function):
    """y = x with src's elements combined into the places index names along dim, by reduce:
    'sum', 'mean', 'amax', 'amin' (include_self: x's own value takes part; else only what is scattered,
    at the places that receive something).

    Backward: sum: dx = dy (0 at the receiving places without include_self), dsrc = dy read at the places;
    mean: both divided by the count at the place; amax/amin: dy shared evenly between the elements that
    equal the result (x's own included when it takes part)."""

    @staticmethod
    def forward(ctx, x, src, index, dim, reduce, include_self):
        places = _axes_index(index, dim)
        src = _corner(src, index.shape)
        received = np.zeros(x.shape, dtype=np.int64)
        np.add.at(received, places, 1)
        hit = received > 0
        if reduce in ("sum", "mean"):
            y = x.copy() if include_self else np.where(hit, 0, x).astype(x.dtype)
            np.add.at(y, places, src)
            count = received + (1 if include_self else 0)
            if reduce == "mean":
                y = np.where(count > 0, y / np.maximum(count, 1), y).astype(x.dtype)
        else:
            ufunc = np.maximum if reduce == "amax" else np.minimum
            start = x.copy()
            if not include_self:
                fill = -np.inf if reduce == "amax" else np.inf
                if x.dtype.kind != "f":
                    info = np.iinfo(x.dtype)
                    fill = info.min if reduce == "amax" else info.max
                start = np.where(hit, x.dtype.type(fill), x)
            y = start
            ufunc.at(y, places, src)
            count = None  # not used by amax/amin's backward
        ctx.save_for_backward(index, x, src, y)
        ctx.dim, ctx.reduce, ctx.include_self, ctx.hit, ctx.count = dim, reduce, include_self, hit, count
        return y

    @staticmethod
    def backward(ctx, dy):
        index, x, src, y = ctx.saved
        places = _axes_index(index, ctx.dim)
        need_x, need_src = ctx.needs_input_grad[:2]
        zero = np.zeros((), dy.dtype)
        if ctx.reduce in ("sum", "mean"):
            g = dy / np.maximum(ctx.count, 1) if ctx.reduce == "mean" else dy
            g = np.where(ctx.count > 0, g, dy)
            dx = g if ctx.include_self else np.where(ctx.hit, zero, dy)
            dsrc = g[places]
        else:
            self_wins = (x == y) & (ctx.include_self | ~ctx.hit)
            src_wins = src == y[places]
            winners = self_wins.astype(np.int64) * ctx.hit
            np.add.at(winners, places, src_wins.astype(np.int64))
            share = dy / np.maximum(winners, 1)
            dx = np.where(ctx.hit, np.where(self_wins, share, zero), dy)
            dsrc = np.where(src_wins, share[places], zero)
        return (dx.astype(dy.dtype) if need_x else None), (dsrc if need_src else None), None, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """backward's rule with dy times constant scales (the counts, the winners' shares) and Gather for dsrc;
        amax/amin are piecewise, their second derivative 0."""
        index, x_saved, src_saved, y = ctx.saved
        x, src = inputs[:2]
        places = _axes_index(index, ctx.dim)
        one = np.ones((), dtype=dy._array.dtype)
        zero = np.zeros((), dtype=dy._array.dtype)
        if ctx.reduce in ("sum", "mean"):
            scale = np.where(ctx.count > 0, one / np.maximum(ctx.count, 1), one) if ctx.reduce == "mean" else None
            g = dy if scale is None else dy * _const(dy, scale)
            dx = g if ctx.include_self else dy * _const(dy, np.where(ctx.hit, zero, one))
            dsrc = Gather.apply(g, index, ctx.dim)
        else:
            self_wins = (x_saved == y) & (ctx.include_self | ~ctx.hit)
            src_wins = src_saved == y[places]
            winners = self_wins.astype(np.int64) * ctx.hit
            np.add.at(winners, places, src_wins.astype(np.int64))
            share = one / np.maximum(winners, 1)
            dx = dy * _const(dy, np.where(ctx.hit, np.where(self_wins, share, zero), one))
            dsrc = Gather.apply(dy * _const(dy, share), index, ctx.dim) * _const(dy, np.where(src_wins, one, zero))
        return (None if x is None else dx), (None if src is None else dsrc), None, None, None, None


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """PyTorch's scatter_reduce: src combined into input at index along dim by 'sum', 'prod', 'mean',
    'amax' or 'amin' (differentiable except 'prod')."""
    check_tensor("scatter_reduce", "input", input)
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise ValueError(f"scatter_reduce: reduce must be one of 'sum', 'prod', 'mean', 'amax', 'amin', got {reduce!r}")
    src = _src("scatter_reduce", input, src)
    d = _dim("scatter_reduce", input, dim)
    index = _index("scatter_reduce", index, input)
    _check_index_shape("scatter_reduce", input, index, d, src)
    if reduce == "prod":
        if input.requires_grad or src.requires_grad:
            raise NotImplementedError("scatter_reduce: reduce='prod' has no gradient in tinyattn")
        y = input._array.copy()
        received = np.zeros(y.shape, dtype=bool)
        received[_axes_index(index, d)] = True
        if not include_self:
            y = np.where(received, 1, y).astype(y.dtype)
        np.multiply.at(y, _axes_index(index, d), _corner(src._array, index.shape))
        return input._wrap(y)
    if tuple(src.shape) != tuple(index.shape):  # only index's block of src takes part
        from .shape import getitem

        src = getitem(src, tuple(slice(0, n) for n in index.shape))
    return ScatterReduce.apply(input, src, index, d, reduce, include_self)


def index_put(input: Tensor, indices: Sequence[Tensor], values: Tensor, accumulate: bool = False) -> Tensor:
    """A copy of input with input[indices] = values (or += values, repeats adding up, with accumulate)."""
    from .shape import normalize_index

    check_tensor("index_put", "input", input)
    if not isinstance(indices, (tuple, list)):
        raise TypeError("index_put: indices must be a tuple of tensors")
    index = tuple(move(i, "cpu") for i in normalize_index(input, tuple(indices)))  # read on the host
    if not isinstance(values, Variable):
        values = host_result(input, np.asarray(values, dtype=input.dtype))
    if values.dtype != input.dtype:
        values = values.to(input.dtype)
    return IndexAccumulate.apply(input, values, index, bool(accumulate))


@on_host
class IndexAccumulate(Function):
    """y = x with values written at x[index] (accumulate: added there, repeated places adding up).
    dx = dy (zeros at the written places without accumulate); dvalues = dy[index] summed to values' shape."""

    @staticmethod
    def forward(ctx, x, values, index, accumulate):
        ctx.index, ctx.vshape, ctx.accumulate = index, values.shape, accumulate
        y = x.copy()
        if accumulate:
            np.add.at(y, index, values)
        else:
            y[index] = values
        return y

    @staticmethod
    def backward(ctx, dy):
        g = np.asarray(dy[ctx.index])  # an index of ints alone reads a numpy scalar, which on_host would not move
        lead = len(ctx.vshape) - g.ndim
        if lead > 0:
            g = g.reshape((1,) * lead + g.shape)
        dx = dy
        if not ctx.accumulate and ctx.needs_input_grad[0]:
            dx = dy.copy()
            dx[ctx.index] = 0
        return dx, sum_to_shape(g, ctx.vshape), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy (times a constant mask, 0 at the written places, without accumulate); dvalues = dy[index]
        (GetItem, whose double backward scatters back here), summed to values' shape."""
        from .shape import GetItem

        x, values = inputs[:2]
        dx = dvalues = None
        if x is not None:
            dx = dy
            if not ctx.accumulate:
                keep = np.ones(dy.shape, dtype=dy._array.dtype)
                keep[ctx.index] = 0
                dx = dy * _const(dy, keep)
        if values is not None:
            g = GetItem.apply(dy, ctx.index)
            lead = len(ctx.vshape) - g.ndim
            if lead > 0:
                g = g.reshape((1,) * lead + tuple(g.shape))
            dvalues = sum_to_shape_graph(g, ctx.vshape)
        return dx, dvalues, None, None


@on_host
class MaskedScatter(Function):
    """y = x with the places where mask is True filled, in row-major order, by source's first elements.
    dx = dy with zeros at those places; dsource = dy's masked elements at the front (zeros after)."""

    @staticmethod
    def forward(ctx, x, mask, source):
        mask = np.broadcast_to(mask, x.shape)
        k = int(mask.sum())
        ctx.save_for_backward(mask)
        ctx.k, ctx.src_shape = k, source.shape
        y = x.copy()
        y[mask] = source.reshape(-1)[:k]
        return y

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        dx = np.where(mask, np.zeros((), dy.dtype), dy)
        dsrc = np.zeros(int(np.prod(ctx.src_shape)), dtype=dy.dtype)
        dsrc[:ctx.k] = dy[mask]
        return dx, None, dsrc.reshape(ctx.src_shape)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy times a constant mask (0 at the filled places); dsource = MaskedSelect of dy, padded with
        zeros to source's size."""
        (mask,) = ctx.saved
        x, _, source = inputs
        dx = dsrc = None
        if x is not None:
            dx = dy * _const(dy, np.where(mask, 0, 1))
        if source is not None:
            picked = MaskedSelect.apply(dy, mask, tuple(dy.shape))
            dsrc = _pad_graph(picked, (int(np.prod(ctx.src_shape)),)).reshape(tuple(ctx.src_shape))
        return dx, None, dsrc


def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    check_tensor("masked_scatter", "input", input)
    check_tensor("masked_scatter", "source", source)
    mask = on_device_of("masked_scatter", mask, input._array)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_scatter: mask must be a bool tensor, got dtype {mask.dtype}")
    if check_broadcast("masked_scatter", input.shape, mask.shape) != tuple(input.shape):
        raise ValueError(f"masked_scatter: mask {tuple(mask.shape)} does not broadcast to the input "
                         f"{tuple(input.shape)}")
    k = int(np.broadcast_to(mask, input.shape).sum())
    if source.numel() < k:
        raise ValueError(f"masked_scatter: source has {source.numel()} elements, the mask selects {k}")
    if source.dtype != input.dtype:
        raise TypeError(f"masked_scatter: source dtype {source.dtype} differs from the input's {input.dtype}")
    return MaskedScatter.apply(input, mask, source)
