"""More ops that move elements without changing them, PyTorch's names: split, chunk, tensor_split, narrow,
flip, t, movedim/moveaxis, swapaxes/swapdims, roll, repeat, tile, repeat_interleave, unflatten, view_as,
reshape_as, diag, diagonal, diag_embed.

split/chunk/narrow/t/movedim/swapaxes/unflatten return views of the input (they share its memory and
its version counter), as in PyTorch; flip, roll, repeat, tile, repeat_interleave return copies.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Variable
from ..autograd.function import constant
from .checks import check_tensor, normalize_dims, on_host
from .shape import Permute, getitem, joined_view, reshape, view
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_to", "chunk", "column_stack", "diag", "diag_embed",
    "DiagEmbed", "DiagEmbedLast", "diagflat", "Diagonal", "diagonal", "dstack", "Flip", "flip", "fliplr", "flipud",
    "hstack", "inner", "kron", "moveaxis", "movedim", "narrow", "ravel", "Repeat", "repeat", "repeat_interleave",
    "reshape_as", "Roll", "roll", "rot90", "row_stack", "select", "Split", "split", "swapaxes", "swapdims", "t",
    "tensor_split", "tile", "trace", "unflatten", "Unfold", "unfold", "view_as", "vstack",
]


def _dim(op, x, dim):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    dims = normalize_dims(op, dim, x.ndim)
    if x.ndim == 0:
        raise ValueError(f"{op}: a 0-d tensor has no dim {dim} to work along")
    return dims[0]


def _zeros(like, shape):
    """Constant zeros of `shape` in tensor like's dtype, on its device (for differentiable backwards)."""
    from ..backend import backend_of

    return constant(like, backend_of(like._array).xp.zeros(tuple(shape), dtype=like._array.dtype))


def _scatter_graph(like, shape, values, index, accumulate):
    """Zeros of `shape` with tensor `values` written (or, accumulate, added) at zeros[index], recorded
    (indexing.IndexAccumulate, whose double backward reads zeros[index] back with GetItem)."""
    from .indexing import IndexAccumulate

    return IndexAccumulate.apply(_zeros(like, shape), values, index, accumulate)


class Split(Function):
    """(y_0, ..., y_{k-1}) = the slices of x along `dim` between `bounds` (views, no copy).

    dx = the gradients joined back along dim (a view when they already lie side by side in one buffer:
    shape.joined_view); a piece that no gradient reached gets zeros."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, dim, bounds):
        ctx.dim, ctx.shape = dim, x.shape
        ctx.sizes = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        lead = (slice(None),) * dim
        return tuple(x[lead + (slice(a, b),)] for a, b in zip(bounds[:-1], bounds[1:]))

    @staticmethod
    def backward(ctx, dys):
        joined = joined_view(dys, ctx.dim, ctx.sizes)
        if joined is not None:  # already side by side (a fused attention's dq, dk, dv): no copy
            return joined, None, None
        present = next(g for g in dys if g is not None)
        parts = []
        for g, n in zip(dys, ctx.sizes):
            if g is None:
                shape = list(ctx.shape)
                shape[ctx.dim] = n
                g = np.zeros_like(present, shape=tuple(shape))
            parts.append(g)
        return np.concatenate(parts, axis=ctx.dim), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dys):
        """The gradients joined back along dim (Cat), zeros for a piece that no gradient reached."""
        from .shape import Cat

        present = next(g for g in dys if g is not None)
        parts = []
        for g, n in zip(dys, ctx.sizes):
            if g is None:
                shape = list(ctx.shape)
                shape[ctx.dim] = n
                g = _zeros(present, shape)
            parts.append(g)
        return Cat.apply(ctx.dim, *parts), None, None


def _split_at(x, dim, sizes):
    bounds = [0]
    for n in sizes:
        bounds.append(bounds[-1] + n)
    return Split.apply(x, dim, bounds)


def split(tensor: Tensor, split_size_or_sections: int | Sequence[int] | None = None, dim: int = 0, *,
          split_size: int | Sequence[int] | None = None) -> tuple[Tensor, ...]:
    """Pieces of `tensor` along dim: of split_size each (the last one smaller when it does not divide),
    or of the listed sizes (which must add up to the dim's size). Views, as in PyTorch. (Tensor.split names
    its first argument split_size.)"""
    check_tensor("split", "tensor", tensor)
    if split_size is not None:
        if split_size_or_sections is not None:
            raise TypeError("split: pass split_size_or_sections or split_size, not both")
        split_size_or_sections = split_size
    if split_size_or_sections is None:
        raise TypeError("split: missing the required argument split_size_or_sections")
    d = _dim("split", tensor, dim)
    n = tensor.shape[d]
    s = split_size_or_sections
    if isinstance(s, Variable):
        s = s.tolist()
    if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
        s = int(s)
        if s < 0:
            raise ValueError(f"split: split_size must be non-negative, got {s}")
        if s == 0:
            if n != 0:
                raise ValueError(f"split: split_size 0 cannot split a dim of size {n} (only an empty dim)")
            return (getitem(tensor, (slice(None),) * d + (slice(0, 0),)),)
        sizes = [s] * (n // s) + ([n % s] if n % s else [])
        if not sizes:
            sizes = [0]
    elif isinstance(s, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in s):
            raise TypeError(f"split: split sizes must be ints, got {s!r}")
        sizes = [int(v) for v in s]
        if any(v < 0 for v in sizes) or sum(sizes) != n:
            raise ValueError(f"split: split sizes {sizes} must be non-negative and sum to the size {n} of dim {dim} "
                             f"(shape {tuple(tensor.shape)})")
    else:
        raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, got {s!r}")
    return _split_at(tensor, d, sizes)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """`chunks` pieces (or fewer) along dim, each of ceil(size / chunks) elements, the last one smaller:
    PyTorch's rule (chunk(6 elements, 4) gives 3 pieces of 2)."""
    check_tensor("chunk", "input", input)
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)):
        raise TypeError(f"chunk: chunks must be an int, got {chunks!r}")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be greater than 0, got {chunks}")
    d = _dim("chunk", input, dim)
    n = input.shape[d]
    size = max(1, -(-n // int(chunks))) if n else 0
    return split(input, size, d) if n else split(input, [0] * 1, d)


def tensor_split(input: Tensor, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """NumPy's array_split rule: k sections of sizes differing by at most one (the first ones larger), or
    pieces between the given indices."""
    check_tensor("tensor_split", "input", input)
    d = _dim("tensor_split", input, dim)
    n = input.shape[d]
    s = indices_or_sections
    if isinstance(s, Variable):
        s = s.tolist()
    if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
        if s <= 0:
            raise ValueError(f"tensor_split: number of sections must be greater than 0, got {s}")
        q, r = divmod(n, int(s))
        sizes = [q + 1] * r + [q] * (int(s) - r)
    else:
        cuts = [min(max(int(i) if i >= 0 else int(i) + n, 0), n) for i in s]
        bounds = [0] + cuts + [n]
        sizes = [max(b - a, 0) for a, b in zip(bounds[:-1], bounds[1:])]
        starts = bounds[:-1]
        return tuple(narrow(input, d, a, k) for a, k in zip(starts, sizes))
    return _split_at(input, d, sizes)


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """input[..., start:start+length, ...] along dim: a view."""
    check_tensor("narrow", "input", input)
    d = _dim("narrow", input, dim)
    n = input.shape[d]
    if isinstance(start, Variable):
        start = start.item()
    if not -n <= start <= n:
        raise IndexError(f"narrow: start {start} is out of range for dim {dim} of size {n}")
    start = start % n if start < 0 else start
    if length < 0 or start + length > n:
        raise ValueError(f"narrow: start ({start}) + length ({length}) exceeds the size {n} of dim {dim}")
    return getitem(input, (slice(None),) * d + (slice(start, start + length),))


@on_host
class Flip(Function):
    """y = x reversed along `dims` (a copy, as in PyTorch).  dx = dy reversed along the same dims."""

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return np.ascontiguousarray(np.flip(x, dims))

    @staticmethod
    def backward(ctx, dy):
        return np.flip(dy, ctx.dims), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return Flip.apply(dy, ctx.dims), None


def flip(input: Tensor, *dims: Any, **kwargs: Any) -> Tensor:
    """input reversed along dims (flip(x, 0, 1), flip(x, (0, 1)) or flip(x, dims=[0, 1])); a copy."""
    check_tensor("flip", "input", input)
    if "dims" in kwargs:
        if dims:
            raise TypeError("flip: pass dims positionally or as dims=, not both")
        dims = (kwargs.pop("dims"),)
    if kwargs:
        raise TypeError(f"flip: unexpected keyword arguments {sorted(kwargs)}")
    if len(dims) == 1 and isinstance(dims[0], int):
        dims = (dims[0],)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if not dims and input.ndim:
        raise TypeError("flip: missing the required argument dims")
    return Flip.apply(input, normalize_dims("flip", dims, input.ndim))


def fliplr(input: Tensor) -> Tensor:
    if input.ndim < 2:
        raise ValueError(f"fliplr: input must be >= 2-d, got shape {tuple(input.shape)}")
    return flip(input, 1)


def flipud(input: Tensor) -> Tensor:
    if input.ndim < 1:
        raise ValueError("flipud: input must be >= 1-d")
    return flip(input, 0)


def t(input: Tensor) -> Tensor:
    """The transpose of a 2-D tensor (a view); 0-d and 1-d tensors come back as they are."""
    check_tensor("t", "input", input)
    if input.ndim > 2:
        raise ValueError(f"t: expects a tensor with <= 2 dimensions, but got shape {tuple(input.shape)}; use "
                         ".transpose(dim0, dim1) or .mT")
    return Permute.apply(input, tuple(reversed(range(input.ndim))))


def movedim(input: Tensor, source: int | Sequence[int], destination: int | Sequence[int]) -> Tensor:
    """The axes `source` moved to positions `destination` (ints or sequences of ints), the others keeping
    their order: a view."""
    check_tensor("movedim", "input", input)
    src = (source,) if isinstance(source, (int, np.integer)) else tuple(source)
    dst = (destination,) if isinstance(destination, (int, np.integer)) else tuple(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim: source {source} and destination {destination} must have the same number of dims")
    n = input.ndim
    s = [normalize_dims("movedim", d, n)[0] if n else 0 for d in src]
    e = [normalize_dims("movedim", d, n)[0] if n else 0 for d in dst]
    if len(set(s)) != len(s) or len(set(e)) != len(e):
        raise ValueError(f"movedim: repeated dim in source {source} or destination {destination}")
    order = [None] * n
    for a, b in zip(s, e):
        order[b] = a
    rest = iter(d for d in range(n) if d not in s)
    order = tuple(next(rest) if o is None else o for o in order)
    return Permute.apply(input, order)


moveaxis = movedim


def swapaxes(input: Tensor, axis0: int, axis1: int) -> Tensor:
    from .shape import transpose

    return transpose(input, axis0, axis1)


swapdims = swapaxes


@on_host
class Roll(Function):
    """y = x rolled by `shifts` along `axes` (elements leaving one end come back at the other; a copy).
    dx = dy rolled back."""

    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return np.roll(x, shifts, axes)

    @staticmethod
    def backward(ctx, dy):
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return np.roll(dy, neg, ctx.axes), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return Roll.apply(dy, neg, ctx.axes), None, None


def roll(input: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    check_tensor("roll", "input", input)
    if dims is None:  # roll the flattened tensor, then restore the shape (PyTorch's rule)
        if not isinstance(shifts, (int, np.integer)):
            if len(shifts) != 1:
                raise ValueError(f"roll: with dims=None, shifts must be one int, got {shifts!r}")
            shifts = shifts[0]
        return reshape(Roll.apply(reshape(input, -1), int(shifts), 0), input.shape)
    sh = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    ds = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if len(sh) != len(ds):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    axes = tuple(normalize_dims("roll", d, input.ndim)[0] for d in ds)
    return Roll.apply(input, tuple(int(s) for s in sh), axes)


@on_host
class Repeat(Function):
    """y = x tiled `reps` times along each axis (x first gets leading size-1 axes up to len(reps)).
    dx = dy seen as (r_0, n_0, r_1, n_1, ...), summed over the r axes."""

    @staticmethod
    def forward(ctx, x, reps):
        ctx.reps = reps
        ctx.shape = (1,) * (len(reps) - x.ndim) + tuple(x.shape)
        ctx.orig = x.shape
        return np.tile(x.reshape(ctx.shape), reps)

    @staticmethod
    def backward(ctx, dy):
        split = []
        for r, n in zip(ctx.reps, ctx.shape):
            split += [r, n]
        dx = dy.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return dx.reshape(ctx.orig), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        split = []
        for r, n in zip(ctx.reps, ctx.shape):
            split += [r, n]
        dx = dy.reshape(tuple(split)).sum(dim=tuple(range(0, len(split), 2)))
        return dx.reshape(tuple(ctx.orig)), None


def repeat(input: Tensor, *sizes: Any) -> Tensor:
    """PyTorch's Tensor.repeat: the tensor tiled sizes[i] times along each axis (a copy)."""
    check_tensor("repeat", "input", input)
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"repeat: sizes must be ints, got {sizes!r}")
    if len(sizes) < input.ndim:
        raise ValueError(f"repeat: the number of repeat dims ({len(sizes)}) can not be smaller than the number of "
                         f"dims of the tensor ({input.ndim}, shape {tuple(input.shape)})")
    if any(s < 0 for s in sizes):
        raise ValueError(f"repeat: repeats must be non-negative, got {sizes}")
    return Repeat.apply(input, tuple(int(s) for s in sizes))


def tile(input: Tensor, dims: Sequence[int]) -> Tensor:
    """NumPy's tile: like repeat, with fewer reps than axes padded by leading ones."""
    check_tensor("tile", "input", input)
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    dims = (1,) * (input.ndim - len(dims)) + dims
    return repeat(input, dims)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (or slice along dim) repeated `repeats` times in place (an int, or a tensor of one count
    per element); dim=None works on the flattened tensor. repeat_interleave(counts) alone gives
    the indices 0, 0, 1, 2, 2, ... as PyTorch does."""
    from .indexing import index_select

    if repeats is None:  # torch.repeat_interleave(repeats): arange(len) repeated
        counts = input.numpy()
        if counts.ndim > 1 or counts.dtype.kind not in "iu":
            raise TypeError("repeat_interleave: repeats must be a 1-d integer tensor")
        from .checks import host_result

        return host_result(input, np.repeat(np.arange(counts.size, dtype=np.int64), counts))
    check_tensor("repeat_interleave", "input", input)
    x = reshape(input, -1) if dim is None else input
    d = 0 if dim is None else _dim("repeat_interleave", x, dim)
    n = x.shape[d] if x.ndim else 1
    if isinstance(repeats, Variable):
        r = np.asarray(repeats.numpy())
    else:
        r = np.asarray(repeats)
    if r.dtype.kind not in "iu":
        raise TypeError(f"repeat_interleave: repeats must be ints, got {repeats!r}")
    if r.ndim > 1 or (r.ndim == 1 and r.size not in (1, n)):
        raise ValueError(f"repeat_interleave: repeats must have the same size as input along dim ({n}), got "
                         f"shape {tuple(r.shape)}")
    if np.any(r < 0):
        raise ValueError("repeat_interleave: repeats can not be negative")
    index = np.repeat(np.arange(n, dtype=np.int64), r.reshape(-1) if r.ndim else int(r))
    if output_size is not None and output_size != index.size:
        raise ValueError(f"repeat_interleave: output_size {output_size} differs from the result's size {index.size}")
    if x.ndim == 0:
        x = reshape(x, 1)
    return index_select(x, d, x._wrap(index))


def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Dim `dim` split into `sizes` (one entry may be -1): a view."""
    check_tensor("unflatten", "input", input)
    d = _dim("unflatten", input, dim)
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise ValueError("unflatten: sizes must be non-empty")
    n = input.shape[d]
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1 or (sizes.count(-1) == 0 and known != n) or (sizes.count(-1) == 1 and
                                                                         (known == 0 or n % known)):
        raise ValueError(f"unflatten: sizes {sizes} don't multiply up to the size of dim {dim} ({n}) in the input "
                         f"of shape {tuple(input.shape)}")
    sizes = tuple(n // known if s == -1 else s for s in sizes)
    return reshape(input, input.shape[:d] + sizes + input.shape[d + 1:])


def view_as(input: Tensor, other: Tensor) -> Tensor:
    return view(input, tuple(other.shape))


def reshape_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, tuple(other.shape))


@on_host
class Diagonal(Function):
    """y = the diagonal of x's axes (d1, d2) with `offset`, as the last axis (a copy here).
    dx = zeros with dy written on that diagonal."""

    @staticmethod
    def forward(ctx, x, offset, d1, d2):
        ctx.shape, ctx.args = x.shape, (offset, d1, d2)
        return np.diagonal(x, offset, d1, d2).copy()

    @staticmethod
    def backward(ctx, dy):
        offset, d1, d2 = ctx.args
        dx = np.zeros_like(dy, shape=ctx.shape)
        view_ = np.diagonal(dx, offset, d1, d2)
        view_.setflags(write=True)
        view_[...] = dy
        return dx, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy written on the diagonal of zeros whose axes d1, d2 come last (IndexAccumulate at
        [..., rows, cols], read back by GetItem in the double backward), then permuted back."""
        offset, d1, d2 = ctx.args
        order = [a for a in range(len(ctx.shape)) if a not in (d1, d2)] + [d1, d2]
        n = dy.shape[-1]
        rows, cols = np.arange(n) + max(-offset, 0), np.arange(n) + max(offset, 0)
        dx = _scatter_graph(dy, [ctx.shape[a] for a in order], dy, (Ellipsis, rows, cols), False)
        return Permute.apply(dx, tuple(int(a) for a in np.argsort(order))), None, None, None


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    check_tensor("diagonal", "input", input)
    if input.ndim < 2:
        raise ValueError(f"diagonal: expected a tensor with >= 2 dims, got shape {tuple(input.shape)}")
    d1, d2 = (normalize_dims("diagonal", d, input.ndim)[0] for d in (dim1, dim2))
    if d1 == d2:
        raise ValueError(f"diagonal: dim1 and dim2 cannot be the same ({dim1}, {dim2})")
    return Diagonal.apply(input, int(offset), d1, d2)


@on_host
class DiagEmbed(Function):
    """y = a square matrix (size n + |offset|) with the 1-D x on its `offset` diagonal.  dx = dy's diagonal."""

    @staticmethod
    def forward(ctx, x, offset):
        ctx.offset = offset
        return np.diag(x, offset)

    @staticmethod
    def backward(ctx, dy):
        return np.diagonal(dy, ctx.offset).copy(), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return Diagonal.apply(dy, ctx.offset, 0, 1), None


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """1-D input: the square matrix with input on its `diagonal`; 2-D input: that diagonal, as a 1-D tensor."""
    check_tensor("diag", "input", input)
    if input.ndim == 1:
        return DiagEmbed.apply(input, int(diagonal))
    if input.ndim == 2:
        return Diagonal.apply(input, int(diagonal), 0, 1)
    raise ValueError(f"diag: expected a 1-d or 2-d tensor, got shape {tuple(input.shape)}")


# ---- joining helpers (cat/stack under NumPy's names) ------------------------------------------------


def atleast_1d(*tensors):
    out = tuple(reshape(t, 1) if t.ndim == 0 else t for t in _flat_args(tensors))
    return out[0] if len(out) == 1 else out


def atleast_2d(*tensors):
    out = tuple(reshape(t, (1,) * (2 - t.ndim) + tuple(t.shape)) if t.ndim < 2 else t for t in _flat_args(tensors))
    return out[0] if len(out) == 1 else out


def atleast_3d(*tensors):
    def up(t):
        if t.ndim == 0:
            return reshape(t, 1, 1, 1)
        if t.ndim == 1:
            return reshape(t, 1, t.shape[0], 1)
        if t.ndim == 2:
            return reshape(t, tuple(t.shape) + (1,))
        return t

    out = tuple(up(t) for t in _flat_args(tensors))
    return out[0] if len(out) == 1 else out


def _flat_args(tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for t in tensors:
        check_tensor("atleast", "tensors", t)
    return tensors


def hstack(tensors):
    """Joined along dim 1, or dim 0 for 1-D tensors (NumPy's hstack)."""
    from .shape import cat

    ts = [atleast_1d(t) for t in tensors]
    return cat(ts, 0 if ts and ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Joined along dim 0 after making every tensor at least 2-D (NumPy's vstack; row_stack)."""
    from .shape import cat

    return cat([atleast_2d(t) for t in tensors], 0)


row_stack = vstack


def dstack(tensors):
    from .shape import cat

    return cat([atleast_3d(t) for t in tensors], 2)


def column_stack(tensors):
    """1-D tensors become columns, then everything is joined along dim 1."""
    from .shape import cat

    return cat([reshape(t, -1, 1) if t.ndim <= 1 else t for t in tensors], 1)


def trace(input: Tensor) -> Tensor:
    """The sum of a 2-D tensor's main diagonal."""
    from .reduction import sum

    if input.ndim != 2:
        raise ValueError(f"trace: expected a matrix, got shape {tuple(input.shape)}")
    return sum(diagonal(input))


# ---- windows, selection, products of shapes ------------------------------------------------------------


@on_host
class Unfold(Function):
    """y = the windows of `size` elements, `step` apart, along dim (a new last axis of length size), read
    from x without a copy (a read-only view).  dx = zeros with each window's gradient added back."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, dim, size, step):
        ctx.shape, ctx.args = x.shape, (dim, size, step)
        windows = np.lib.stride_tricks.sliding_window_view(x, size, axis=dim)
        return windows[(slice(None),) * dim + (slice(None, None, step),)]

    @staticmethod
    def backward(ctx, dy):
        dim, size, step = ctx.args
        dx = np.zeros_like(dy, shape=ctx.shape)
        count = dy.shape[dim]
        lead = (slice(None),) * dim
        for k in range(size):  # window element k of window w sits at w * step + k along dim
            stop = k + (count - 1) * step + 1
            dx[lead + (slice(k, stop, step),)] += dy[..., k]
        return dx, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy's window axis moved next to dim, then added into zeros at the positions w·step + k
        (IndexAccumulate; its double backward reads them back with GetItem, which is unfold again)."""
        dim, size, step = ctx.args
        count = dy.shape[dim]
        positions = np.arange(count).reshape(count, 1) * step + np.arange(size).reshape(1, size)
        last = dy.ndim - 1
        g = Permute.apply(dy, tuple(range(dim + 1)) + (last,) + tuple(range(dim + 1, last)))
        dx = _scatter_graph(dy, ctx.shape, g, (slice(None),) * dim + (positions,), True)
        return dx, None, None, None


def unfold(input, dimension, size, step):
    """PyTorch's Tensor.unfold: every window of `size` elements along `dimension`, `step` apart."""
    check_tensor("unfold", "input", input)
    x = input if input.ndim else reshape(input, 1)
    d = _dim("unfold", x, dimension)
    if size < 0 or size > x.shape[d]:
        raise ValueError(f"unfold: size {size} must be between 0 and the size {x.shape[d]} of dim {dimension}")
    if step <= 0:
        raise ValueError(f"unfold: step must be > 0, got {step}")
    return Unfold.apply(x, d, int(size), int(step))


def broadcast_to(input: Tensor, size: Sequence[int]) -> Tensor:
    """input expanded to `size` (a view), NumPy's broadcasting rules."""
    from .shape import expand

    return expand(input, tuple(size))


def ravel(input: Tensor) -> Tensor:
    """The elements as a 1-D tensor (a view when the layout allows, else a copy)."""
    from .shape import contiguous

    return reshape(contiguous(input), -1)


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """input[..., index, ...] at `dim` (the dim removed): a view."""
    check_tensor("select", "input", input)
    d = _dim("select", input, dim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select: index {index} out of range for dim {dim} of size {n}")
    return getitem(input, (slice(None),) * d + (int(index),))


def rot90(input, k=1, dims=(0, 1)):
    """Rotated by 90° k times in the plane of `dims` (from the first towards the second), as a copy."""
    check_tensor("rot90", "input", input)
    if len(dims) != 2 or input.ndim < 2:
        raise ValueError(f"rot90: expected two dims and a tensor of >= 2 dims, got dims {dims} and shape "
                         f"{tuple(input.shape)}")
    a, b = (normalize_dims("rot90", d, input.ndim)[0] for d in dims)
    if a == b:
        raise ValueError(f"rot90: the dims must differ, got {dims}")
    from .shape import transpose

    k %= 4
    if k == 1:
        return transpose(flip(input, b), a, b)
    if k == 2:
        return flip(input, a, b)
    if k == 3:
        return flip(transpose(input, a, b), b)
    from .elementwise import mul

    return mul(input, 1)  # a copy, as PyTorch's rot90 with k = 0


@on_host
class DiagEmbedLast(Function):
    """y[..., i, i + offset] = x[..., i] in new (m, m) matrices, m = n + |offset| (zeros elsewhere).
    dx = dy read on that diagonal."""

    @staticmethod
    def forward(ctx, x, offset):
        n = x.shape[-1]
        m = n + abs(offset)
        rows = np.arange(n) + max(-offset, 0)
        ctx.places = (Ellipsis, rows, rows + offset)
        y = np.zeros_like(x, shape=x.shape[:-1] + (m, m))
        y[ctx.places] = x
        return y

    @staticmethod
    def backward(ctx, dy):
        return dy[ctx.places], None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        from .shape import GetItem

        return GetItem.apply(dy, ctx.places), None


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """The last dim of input placed on the `offset` diagonal of new square matrices at dims dim1, dim2."""
    check_tensor("diag_embed", "input", input)
    if input.ndim == 0:
        raise ValueError("diag_embed: expected a tensor with at least 1 dim")
    out = DiagEmbedLast.apply(input, int(offset))
    n = out.ndim
    d1, d2 = (normalize_dims("diag_embed", d, n)[0] for d in (dim1, dim2))
    if d1 == d2:
        raise ValueError(f"diag_embed: dim1 and dim2 cannot be the same ({dim1}, {dim2})")
    return movedim(out, (n - 2, n - 1), (d1, d2))


def diagflat(input, offset=0):
    """The flattened input on the `offset` diagonal of a square matrix."""
    return DiagEmbed.apply(reshape(input, -1), int(offset))


def inner(input: Tensor, other: Tensor) -> Tensor:
    """Σ over the last dims of input and other: the dot product for 1-D tensors, in general
    out[i..., j...] = Σ_k input[i..., k] · other[j..., k]."""
    from .einsum import einsum

    check_tensor("inner", "input", input)
    check_tensor("inner", "other", other)
    if input.ndim == 0 or other.ndim == 0:
        from .elementwise import mul

        return mul(input, other)
    if input.shape[-1] != other.shape[-1]:
        raise ValueError(f"inner: the last dims differ: {tuple(input.shape)} and {tuple(other.shape)}")
    letters = "abcdefghijklmnopqrstuvwxy"
    li, lo = letters[: input.ndim - 1], letters[input.ndim - 1: input.ndim - 1 + other.ndim - 1]
    return einsum(f"{li}z,{lo}z->{li}{lo}", input, other)


def kron(input: Tensor, other: Tensor) -> Tensor:
    """The Kronecker product: out[i·m + k, ...] = input[i, ...] · other[k, ...] (dims padded to match)."""
    from .elementwise import mul

    check_tensor("kron", "input", input)
    check_tensor("kron", "other", other)
    n = max(input.ndim, other.ndim)
    a = reshape(input, (1,) * (n - input.ndim) + tuple(input.shape))
    b = reshape(other, (1,) * (n - other.ndim) + tuple(other.shape))
    a_shape, b_shape = [], []
    for sa, sb in zip(a.shape, b.shape):
        a_shape += [sa, 1]
        b_shape += [1, sb]
    out = mul(reshape(a, tuple(a_shape)), reshape(b, tuple(b_shape)))
    return reshape(out, tuple(sa * sb for sa, sb in zip(a.shape, b.shape)))
