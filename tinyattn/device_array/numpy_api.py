"""numpy's functions on DeviceArrays (np.stack, np.take, np.zeros_like, ...), dispatched through __array_function__."""
import numpy as np

from .array import c_steps, DeviceArray, kern
from .creation import arange, asarray, empty, full
from .ops import where

__all__ = ["FUNCTIONS"]


def _stack(arrays, axis=0):
    arrays = [asarray(a) for a in arrays]
    axis = axis % (arrays[0].ndim + 1)
    return _concatenate([a.reshape(a.shape[:axis] + (1,) + a.shape[axis:]) for a in arrays], axis)


def _concatenate(arrays, axis=0):
    arrays = [asarray(a) for a in arrays]
    axis = axis % arrays[0].ndim
    total = sum(a.shape[axis] for a in arrays)
    shape = arrays[0].shape[:axis] + (total,) + arrays[0].shape[axis + 1 :]
    out = empty(shape, np.result_type(*[a.dtype for a in arrays]))
    at = 0
    for a in arrays:
        index = (slice(None),) * axis + (slice(at, at + a.shape[axis]),)
        out[index] = a
        at += a.shape[axis]
    return out


def _split(x, indices, axis=0):
    if isinstance(indices, (int, np.integer)):  # a number of equal sections
        n = x.shape[axis]
        if n % indices:
            raise ValueError(f"split: an axis of {n} does not divide into {indices} equal sections")
        indices = range(n // indices, n, n // indices)
    bounds = [0] + [int(i) for i in indices] + [x.shape[axis]]
    return [x[(slice(None),) * (axis % x.ndim) + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _take(x, indices, axis=None):
    if axis is None:
        return _take(x.reshape(-1), indices, 0)
    axis %= x.ndim
    if isinstance(indices, (int, np.integer)):
        return x[(slice(None),) * axis + (int(indices),)]
    moved = _moveaxis(x, axis, 0) if axis else x
    out = moved[asarray(indices)]
    idx_ndim = out.ndim - moved.ndim + 1
    return out if not axis else _moveaxis(out, tuple(range(idx_ndim)), tuple(range(axis, axis + idx_ndim)))


def _take_along_axis(x, indices, axis):
    """out[..., i, ...] = x[..., indices[..., i, ...], ...] along `axis` (numpy's take_along_axis)."""
    axis %= x.ndim
    x = x.ascontiguous()
    indices = asarray(indices).astype(np.int64, copy=False)
    indices = where(indices < 0, indices + x.shape[axis], indices)  # negative indices count from the end
    steps = c_steps(x.shape)
    pos = indices * steps[axis]
    for d in range(x.ndim):
        if d != axis:
            coord = arange(x.shape[d], dtype=np.int64).reshape((1,) * d + (-1,) + (1,) * (x.ndim - d - 1))
            pos = pos + coord * steps[d]
    out = empty(pos.shape, x.dtype)
    if out.size:
        kern().idx.gather(out.buf, x.as_numba().reshape(-1), pos.ascontiguous().as_numba().reshape(-1))
    return out


def _moveaxis(x, source, destination):
    source = [s % x.ndim for s in np.atleast_1d(source)]
    destination = [d % x.ndim for d in np.atleast_1d(destination)]
    order = [d for d in range(x.ndim) if d not in source]
    for dst, src in sorted(zip(destination, source)):
        order.insert(dst, src)
    return x.transpose(order)


def _expand_dims(x, axis):
    """A view with new size-1 axes (never a copy, as in numpy)."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = x.ndim + len(axes)
    axes = sorted(a % ndim for a in axes)
    shape, steps = list(x.shape), list(x.steps)
    for a in axes:
        shape.insert(a, 1)
        steps.insert(a, 0)
    return x._view(shape, steps)


def _like(fill):
    def make(x, dtype=None, shape=None, **_):
        return full(x.shape if shape is None else shape, fill, x.dtype if dtype is None else dtype)

    return make


def _result_type(*args):
    return np.result_type(*[a.dtype if isinstance(a, DeviceArray) else a for a in args])


FUNCTIONS = {
    np.where: where,
    np.sum: lambda x, axis=None, dtype=None, keepdims=False, **_: x.sum(axis, dtype, keepdims),
    np.mean: lambda x, axis=None, keepdims=False, **_: x.mean(axis, keepdims),
    np.max: lambda x, axis=None, keepdims=False, **_: x.max(axis, keepdims),
    np.amax: lambda x, axis=None, keepdims=False, **_: x.max(axis, keepdims),
    np.min: lambda x, axis=None, keepdims=False, **_: x.min(axis, keepdims),
    np.amin: lambda x, axis=None, keepdims=False, **_: x.min(axis, keepdims),
    np.any: lambda x, axis=None, keepdims=False, **_: x.any(axis, keepdims),
    np.all: lambda x, axis=None, keepdims=False, **_: x.all(axis, keepdims),
    np.argmax: lambda x, axis=None, keepdims=False, **_: x.argmax(axis, keepdims),
    np.transpose: lambda x, axes=None: x.transpose(axes),
    np.swapaxes: lambda x, a, b: x.swapaxes(a, b),
    np.moveaxis: _moveaxis,
    np.broadcast_to: lambda x, shape, subok=False: asarray(x).broadcast_to(shape),
    np.expand_dims: _expand_dims,
    np.squeeze: lambda x, axis=None: x.squeeze(axis),
    np.reshape: lambda x, shape=None, order="C", **kw: x.reshape(shape if shape is not None else kw["newshape"]),
    np.ravel: lambda x, order="C": x.ravel(),
    np.zeros_like: _like(0),
    np.ones_like: _like(1),
    np.empty_like: lambda x, dtype=None, shape=None, **_: empty(x.shape if shape is None else shape, dtype or x.dtype),
    np.full_like: lambda x, fill_value, dtype=None, shape=None, **_: full(x.shape if shape is None else shape,
                                                                          fill_value, dtype or x.dtype),
    np.stack: _stack,
    np.concatenate: _concatenate,
    np.split: _split,
    np.take: _take,
    np.take_along_axis: _take_along_axis,
    np.copy: lambda x, **_: x.copy(),
    np.shape: lambda x: x.shape,
    np.ndim: lambda x: x.ndim,
    np.size: lambda x, axis=None: x.size if axis is None else x.shape[axis],
    np.result_type: _result_type,
    np.broadcast_arrays: lambda *xs: [asarray(x).broadcast_to(np.broadcast_shapes(*[np.shape(y) for y in xs]))
                                      for x in xs],
}
