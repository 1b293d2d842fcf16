"""The kernels over views: constants, dtype rules, copies, unary and binary ops (broadcast), where, reductions."""
import builtins

import numpy as np

__all__ = [
    "UFUNCS", "as_device", "binary_op", "copy_into", "launch_args", "moved_last", "normalize_axes", "reduce_op",
    "resolve_shape", "unary_op", "where",
]


_CONSTANTS = {}


def _constant(value, dtype):
    """A cached 0-d device array holding value (Python numbers are uploaded once, not per op)."""
    key = (dtype.str, repr(value))
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) > 4096:
            _CONSTANTS.clear()
        c = _CONSTANTS[key] = asarray(np.asarray(value, dtype=dtype))
    return c


def _is_scalar(x):
    return isinstance(x, (bool, int, float, np.generic)) or (isinstance(x, np.ndarray) and x.ndim == 0)


def _dtype_of(x):
    """What np.result_type should see: the dtype of an array, the value of a Python number (weak)."""
    if isinstance(x, (DeviceArray, np.ndarray, np.generic)):
        return x.dtype
    return x


def _fits(x, dtype):
    """Whether x (a Python int, or anything else) can become a constant of integer dtype."""
    if not isinstance(x, int) or isinstance(x, bool):
        return True
    info = np.iinfo(dtype)
    return info.min <= x <= info.max


def as_device(x, dtype, op):
    if isinstance(x, DeviceArray):
        return x
    if _is_scalar(x):
        return _constant(x.item() if isinstance(x, (np.ndarray, np.generic)) else x, dtype)
    if isinstance(x, np.ndarray):
        raise ValueError(f"{op}: cannot combine a cuda array with a cpu (numpy) array of shape {x.shape}: "
                         "both operands must be on the same device")
    raise TypeError(f"{op}: unsupported operand of type {type(x).__name__} for a cuda array")


def copy_into(dst, src):
    """dst[...] = src (broadcast, converted to dst's dtype), writing through dst's view.

    A source that shares dst's buffer is copied first (the kernel's threads would otherwise read
    elements that others have already overwritten); a broadcast view (a step of 0 on an axis longer
    than 1) cannot be written, as in numpy, where such views are read-only."""
    if dst.size and any(s == 0 and n > 1 for n, s in zip(dst.shape, dst.steps)):
        raise ValueError(f"assign: the destination (shape {dst.shape}) is a broadcast view, which is read-only")
    src = as_device(src, dst.dtype, "assign")
    if src.buf is dst.buf and src.size > 1:
        src = src.copy()
    src = src.broadcast_to(dst.shape)
    if dst.size:
        kern().ew.copy(dst.size, *launch_args(dst.shape, dst, src))


def launch_args(shape, *views):
    """The operands of an elementwise kernel over `shape`: each view as (buf, offset, steps), then the
    shape, with axes merged wherever every view allows it (size-1 axes dropped; axes d, d+1 joined when
    steps[d] == steps[d+1] * shape[d+1] in every view). The kernels do one division per axis per element
    to find an element, so a contiguous array becomes one axis. Row-major order is unchanged."""
    keep = [d for d, n in enumerate(shape) if n != 1] or [0] * bool(shape)
    dims = [shape[d] for d in keep] or [1]
    steps = [[v.steps[d] for d in keep] or [0] for v in views]
    d = len(dims) - 2
    while d >= 0:
        if all(st[d] == st[d + 1] * dims[d + 1] for st in steps):
            dims[d] *= dims.pop(d + 1)
            for st in steps:
                st[d] = st.pop(d + 1)
        d -= 1
    return [(v.buf, v.offset, tuple(st)) for v, st in zip(views, steps)] + [tuple(dims)]


_COMPARE = {"EQ", "NE", "LT", "LE", "GT", "GE"}
_LOGICAL = {"AND", "OR", "XOR"}
UFUNCS = {
    "negative": "NEG", "exp": "EXP", "log": "LOG", "sqrt": "SQRT", "tanh": "TANH", "absolute": "ABS",
    "sign": "SIGN", "sin": "SIN", "cos": "COS", "add": "ADD", "subtract": "SUB", "multiply": "MUL",
    "divide": "DIV", "true_divide": "DIV", "power": "POW", "maximum": "MAXIMUM", "minimum": "MINIMUM",
    "equal": "EQ", "not_equal": "NE", "less": "LT", "less_equal": "LE", "greater": "GT",
    "greater_equal": "GE", "logical_and": "AND", "logical_or": "OR", "logical_xor": "XOR",
    "bitwise_and": "AND", "bitwise_or": "OR", "bitwise_xor": "XOR", "logical_not": "NOT", "invert": "NOT",
    "isfinite": "ISFINITE",
}


def unary_op(name, x):
    if not isinstance(x, DeviceArray):
        raise TypeError(f"{name.lower()}: expected a cuda array, got {type(x).__name__}")
    if name == "NOT":
        return ~x
    if name == "ISFINITE":
        out = empty(x.shape, np.bool_)
        if out.size:
            kern().ew.isfinite(out.buf, *launch_args(x.shape, x))
        return out
    dtype = x.dtype if x.dtype.kind == "f" or name in ("NEG", "ABS", "SIGN") else np.dtype(np.float64)
    out = empty(x.shape, dtype)
    if out.size:
        kern().ew.unary(getattr(kern().ew, name), out.buf, *launch_args(x.shape, x))
    return out


def binary_op(name, a, b):
    op = name.lower()
    if name in _LOGICAL:
        for x in (a, b):
            if _dtype_of(x) not in (bool, np.bool_, np.dtype(np.bool_)) and not isinstance(x, bool):
                raise TypeError(f"{op}: bitwise ops on cuda arrays are implemented for bool arrays only, "
                                f"got {_dtype_of(x)!r}")
        dtype = np.dtype(np.bool_)
    else:
        dtype = np.result_type(_dtype_of(a), _dtype_of(b))
        if name in _COMPARE and dtype.kind in "iu" and not all(_fits(x, dtype) for x in (a, b)):
            dtype = np.dtype(np.int64)  # uint8_array == -100 is False, as in numpy, not an overflow
        if name == "DIV" and dtype.kind in "biu":
            dtype = np.dtype(np.float64)  # true division of integers, as in numpy
    a, b = as_device(a, dtype, op), as_device(b, dtype, op)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: cuda arrays of shapes {a.shape} and {b.shape} do not broadcast") from None
    a, b = a.broadcast_to(shape), b.broadcast_to(shape)
    ew = kern().ew
    if name in _COMPARE or name in _LOGICAL:
        out = empty(shape, np.bool_)
        kernel = ew.compare if name in _COMPARE else ew.logical
    else:
        out = empty(shape, dtype)
        kernel = ew.binary
    if out.size:
        kernel(getattr(ew, name), out.buf, *launch_args(shape, a, b))
    return out


def where(condition, a, b):
    condition = as_device(condition, np.dtype(np.bool_), "where")
    dtype = np.result_type(_dtype_of(a), _dtype_of(b))
    a, b = as_device(a, dtype, "where"), as_device(b, dtype, "where")
    shape = np.broadcast_shapes(condition.shape, a.shape, b.shape)
    out = empty(shape, dtype)
    if out.size:
        kern().ew.where(out.buf, *launch_args(shape, *(x.broadcast_to(shape) for x in (condition, a, b))))
    return out


def normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise np.exceptions.AxisError(f"axis {a} is out of bounds for an array of dimension {ndim}")
    return tuple(sorted(int(a) % builtins.max(ndim, 1) for a in axes)) if ndim else ()


def moved_last(x, axes):
    """x with `axes` moved to the end and flattened: a C-contiguous (kept elements, reduced elements) array."""
    kept = [d for d in range(x.ndim) if d not in axes]
    moved = x.transpose(kept + list(axes)) if x.ndim else x
    return moved.reshape(prod(x.shape[d] for d in kept), prod(x.shape[d] for d in axes))


def reduce_op(x, name, axis, keepdims):
    axes = normalize_axes(axis, x.ndim)
    if name in ("MAX", "MIN") and prod(x.shape[d] for d in axes) == 0:
        raise ValueError(f"{name.lower()}: zero-size reduction over axes {axes} of shape {x.shape}")
    if name == "SUM" and x.dtype.kind in "biu":
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(np.bool_) if name in ("ANY", "ALL") else x.dtype
    rows = moved_last(x, axes)
    out = empty((rows.shape[0],), dtype)
    red = kern().red
    red.reduce_rows(getattr(red, name), rows.as_numba(), out.buf)
    if keepdims:
        return out.reshape(tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
    return out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in axes))


def resolve_shape(old, shape):
    shape = tuple(int(n) for n in shape)
    size = prod(old)
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: can only infer one dimension, got {shape}")
    if -1 in shape:
        known = prod(n for n in shape if n != -1)
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape an array of shape {old} into {shape}")
        shape = tuple(size // known if n == -1 else n for n in shape)
    if prod(shape) != size:
        raise ValueError(f"reshape: cannot reshape an array of shape {old} into {shape}")
    return shape


# The package's modules refer to each other; each imports the others at its end, once its own names exist
# (numpy_api, which uses them at import time, is imported last: see __init__.py).
from .array import DeviceArray, kern, prod  # noqa: E402
from .creation import asarray, empty  # noqa: E402
