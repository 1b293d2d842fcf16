"""How the CPU attention kernels see their arrays: flat read-only views with per-batch-head offset tables
(``_strided``), the shape checks (``_batch``) and the bias view (``_bias``). Plain Python, no kernels."""
import functools
import math

import numpy as np


@functools.lru_cache(maxsize=64)
def _offsets(shape, strides, start=0):
    """The offset table of a batch of shape ``shape`` with element strides ``strides``: off[p] = start + sum_d
    idx_d(p) strides[d] over the batch index idx(p) of flat (C-order) position p; int64, read-only."""
    off = np.full(1, start, np.int64)
    for n, st in zip(shape, strides):
        off = (off[:, None] + np.arange(n, dtype=np.int64) * st).reshape(-1)
    off.flags.writeable = False
    return off


def _c_strides(shape):
    """The element strides of a C-contiguous array of `shape`, 0 for axes of length 1 (never multiplied)."""
    el, size = [], 1
    for n in reversed(shape):
        el.insert(0, 0 if n == 1 else size)
        size *= n
    return el


_LAYOUTS = {}  # (shape, strides, dtype, dt) -> (read in place, span, offset table, row stride): _strided's plan


def _layout(a, dt):
    """_strided's plan for a's layout: (in_place, span, off, rs) -- computed once per shape, strides and dtype
    (a training loop passes the same layouts every step; the plan cost ~5 us per array and call)."""
    key = (a.shape, a.strides, a.dtype, dt)
    plan = _LAYOUTS.get(key)
    if plan is None:
        it = np.dtype(dt).itemsize
        ok = a.dtype == dt and a.size > 0 and (a.shape[-1] == 1 or a.strides[-1] == it)
        st = [0 if n == 1 else s for n, s in zip(a.shape, a.strides)]
        ok = ok and all(s >= 0 and s % it == 0 for s in st)
        # read in place, or copied to a C-contiguous array first: that layout's plan
        el = [s // it for s in st] if ok else _c_strides(a.shape)
        span = 1 + sum((n - 1) * s for n, s in zip(a.shape, el)) if a.size else 0
        plan = (ok, span, _offsets(a.shape[:-2], tuple(el[:-2])), el[-2])
        if len(_LAYOUTS) >= 256:
            _LAYOUTS.clear()
        _LAYOUTS[key] = plan
    return plan


def _strided(a, dt):
    """``(flat, off, rs)`` for an array ``a (..., n, E)`` seen as ``(P, n, E)`` (P = the product of its batch
    dims, flattened in C order): element ``[p, i, e]`` is ``flat[off[p] + i * rs + e]``.

    ``flat`` is a read-only 1-D view of a's memory from its first element to its last when every stride is
    non-negative and a row's E elements are adjacent (stride = itemsize): the q, k, v of a fused qkv
    projection, a transposed gradient, a sliced or broadcast batch are read in place, not copied.  Any other
    layout (a negative stride, a strided last axis) or dtype is copied to a C-contiguous array first, as
    before.  The strides of size-1 axes never matter (index 0).  Always the same types (a read-only float
    C array, a read-only int64 C array, an int), so each kernel compiles once per dtype whatever the layout.
    """
    ok, span, off, rs = _layout(a, dt)
    if not ok:
        a = np.ascontiguousarray(a, dtype=dt)
    if a.flags.c_contiguous and a.size == span:
        flat = a.reshape(-1)  # a new view object: making it read-only leaves a as it was
        flat.flags.writeable = False
    else:
        flat = np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(np.dtype(dt).itemsize,), writeable=False)
    return flat, off, rs


def _dense_order(shape, strides, itemsize):
    """The axes of a layout from the largest stride to the smallest (size-1 axes first) when it covers a block
    of memory exactly once with its last axis adjacent (a permutation of a C-contiguous array), else None."""
    if shape and shape[-1] != 1 and strides[-1] != itemsize:
        return None
    order = sorted(range(len(shape)), key=lambda a: (shape[a] != 1, -strides[a]))
    size = itemsize
    for a in reversed(order):
        if shape[a] != 1:
            if strides[a] != size:
                return None
            size *= shape[a]
    return order


@functools.lru_cache(maxsize=64)
def _sibling_plan(n, shape, strides, step, itemsize):
    """_gradients' plan for n siblings (shape, byte strides, each `step` bytes after the one before): (buffer
    shape, the axes that turn it into the (n, *shape) siblings, each sibling's offset table, row stride), or
    None when together they do not cover a block of memory exactly once."""
    order = _dense_order((n,) + shape, (step,) + strides, itemsize)
    if order is None:
        return None
    el = tuple(0 if m == 1 else st // itemsize for m, st in zip(shape, strides))
    offs = tuple(_offsets(shape[:-2], el[:-2], i * step // itemsize) for i in range(n))
    full = (n,) + shape
    return tuple(full[a] for a in order), tuple(int(a) for a in np.argsort(order)), offs, el[-2]


@functools.lru_cache(maxsize=64)
def _dense_plan(shape):
    """The offset table and row stride of a new C-contiguous array of `shape` (..., n, E)."""
    el = _c_strides(shape)
    return _offsets(shape[:-2], tuple(el[:-2])), el[-2]


def _dense_gradients(shapes, dt):
    """New C-contiguous arrays of `shapes` and the layouts (flat, off, rs) through which a kernel writes them."""
    arrays = tuple(np.empty(shape, dt) for shape in shapes)
    return arrays, tuple((a.reshape(-1),) + _dense_plan(a.shape) for a in arrays)


def _sibling_gradients(arrays, dt):
    """New arrays shaped like ``arrays`` and laid out like them, side by side in one buffer, with the layouts
    (flat, off, rs) through which a kernel writes them, when ``arrays`` are siblings: equal slices of one array
    (the same shape and strides, each starting a fixed distance after the one before, together covering a block
    of memory exactly once), such as q, k, v = qkv.unbind(...) or the equal split of a fused projection viewed
    as heads. Their gradients then form that array's gradient without a copy (shape.joined_view, in Unbind's
    and Split's backward). None otherwise."""
    a0 = arrays[0]
    base = getattr(a0, "base", None)
    if base is None or any(type(a) is not np.ndarray or a.base is not base or a.dtype != dt or a.shape != a0.shape
                           or a.strides != a0.strides for a in arrays):
        return None
    starts = [a.ctypes.data for a in arrays]
    step = starts[1] - starts[0]
    if step <= 0 or any(b - a != step for a, b in zip(starts, starts[1:])):
        return None
    plan = _sibling_plan(len(arrays), a0.shape, a0.strides, step, a0.itemsize)
    if plan is None:
        return None
    shape, back, offs, rs = plan
    buf = np.empty(shape, dt)
    flat = buf.reshape(-1)
    return tuple(buf.transpose(back)), tuple((flat, off, rs) for off in offs)


def _batch(op, q, k, v):
    """Checks q (..., L, E), k (..., S, E), v (..., S, Ev): same batch dims and dtype, float32 or float64.
    Returns (batch, BH, L, S, E, Ev)."""
    dt = q.dtype
    assert dt in (np.float32, np.float64), (op, dt)
    assert k.dtype == dt and v.dtype == dt, (op, q.dtype, k.dtype, v.dtype)
    assert q.ndim >= 2 and k.ndim == q.ndim and v.ndim == q.ndim, (op, q.shape, k.shape, v.shape)
    batch = q.shape[:-2]
    L, E = q.shape[-2:]
    S, Ev = v.shape[-2:]
    assert k.shape == batch + (S, E) and v.shape[:-2] == batch, (op, q.shape, k.shape, v.shape)
    return batch, math.prod(batch), L, S, E, Ev


def _bias(bias, has_bias, dt, BH, L, S):
    """The kernels read bias[0, p, i, j] from a read-only (2, BH, L, S) view with a zero-stride leading axis:
    never a copy, and always Numba's non-contiguous 'A' layout, whether the caller's bias was contiguous or
    a broadcast view -- so each kernel compiles once per dtype, not once per bias layout."""
    if not has_bias:
        return _no_bias(np.dtype(dt), BH, L, S)
    assert bias.ndim == 3, bias.shape
    if bias.dtype != dt:
        bias = bias.astype(dt)
    return np.broadcast_to(bias[None], (2, BH, L, S))


@functools.lru_cache(maxsize=64)
def _no_bias(dt, BH, L, S):
    """_bias's dummy when there is none (read-only, never read by the kernels): one per shape, not per call."""
    return np.broadcast_to(np.zeros((1, 1, 1, 1), dt), (2, BH, L, S))
