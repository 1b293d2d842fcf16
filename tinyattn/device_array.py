"""DeviceArray: an n-d array in GPU memory that speaks the part of numpy's API tinyattn's ops use.

tinyattn's ops are written against numpy: `a * b`, `x.sum(axis=1, keepdims=True)`, `np.exp(x)`,
`np.where(c, a, b)`, `x[:, None]`, `x.reshape(...)`. A DeviceArray answers all of those on the GPU, the
way CuPy arrays do: operators and methods directly, and numpy's functions through numpy's dispatch
protocols (`__array_ufunc__`, NEP 13, and `__array_function__`, NEP 18), so `np.exp(device_array)`
runs the CUDA kernel and returns a DeviceArray. An op therefore runs unchanged on either device.

Storage: `buf`, a flat numba device array, seen through `shape`, `steps` (one stride per axis, in
elements, not bytes) and `offset` (in elements). Transposes, broadcasts, `x[None]` and basic slices are
new views of the same buffer; every computation writes a new C-contiguous buffer through the kernels
in tinyattn.kernels.cuda (elementwise, reduce, indexing).

Nothing is ever copied to the host behind your back: `np.asarray(device_array)` raises, and the only
ways to the host are `.get()`, `.item()` and `bool()`/`float()` of a one-element array. Python
numbers and 0-d host arrays mix with DeviceArrays (they become cached one-element device constants, and
follow numpy's result-type rules); an n-d host array does not, with an error naming both devices.
"""
import builtins
import math
from types import SimpleNamespace

import numpy as np

__all__ = [
    "arange", "asarray", "DeviceArray", "empty", "full", "ones", "where", "zeros",
]

_k = None


def _kern():
    """The CUDA kernel modules, imported on first use (importing them imports numba.cuda)."""
    global _k
    if _k is None:
        from numba import cuda

        from tinyattn.kernels.cuda import elementwise, indexing, reduce

        _k = SimpleNamespace(cuda=cuda, ew=elementwise, red=reduce, idx=indexing)
    return _k


def _c_steps(shape):
    steps, step = [], 1
    for n in reversed(shape):
        steps.append(step)
        step *= n
    return tuple(reversed(steps))


def _prod(shape):
    return math.prod(shape)


class DeviceArray:
    """An n-d array in GPU memory (see the module docstring)."""

    __slots__ = ("buf", "shape", "steps", "offset")
    __array_priority__ = 1000  # numpy's binary operators defer to ours

    def __init__(self, buf, shape, steps=None, offset=0):
        self.buf = buf
        self.shape = tuple(int(n) for n in shape)
        self.steps = _c_steps(self.shape) if steps is None else tuple(int(s) for s in steps)
        self.offset = int(offset)

    # ---- attributes -------------------------------------------------------------------------------
    @property
    def dtype(self):
        return np.dtype(self.buf.dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return _prod(self.shape)

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def T(self):
        return self.transpose()

    @property
    def is_contiguous(self):
        """C-contiguous: the steps of a fresh array of this shape (size-1 axes may have any step)."""
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.steps, _c_steps(self.shape)))

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # ---- to the host, explicitly ----------------------------------------------------------------------
    def get(self):
        """A host (numpy) copy."""
        flat = self.ascontiguous()
        if flat.size == 0:
            return np.empty(self.shape, self.dtype)
        return flat.buf[flat.offset : flat.offset + flat.size].copy_to_host().reshape(self.shape)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item: only one-element arrays convert to a Python scalar, got shape {self.shape}")
        return self.get().item()

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a cuda array with {self.size} elements is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError(f"only integer arrays can be used as an index, got dtype {self.dtype}")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"a cuda array (shape {self.shape}, dtype {self.dtype}) cannot become a numpy array implicitly: "
            "copy it to the host with .get() (for a tensor: .cpu() or .numpy())"
        )

    def __repr__(self):
        return f"DeviceArray({np.array2string(self.get(), separator=', ')}, dtype={self.dtype}, device='cuda')"

    # ---- views ----------------------------------------------------------------------------------------
    def _view(self, shape, steps, offset=None):
        return DeviceArray(self.buf, shape, steps, self.offset if offset is None else offset)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = tuple(range(self.ndim))[::-1] if not axes or axes == (None,) else tuple(a % self.ndim for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {self.ndim} axes")
        return self._view([self.shape[a] for a in axes], [self.steps[a] for a in axes])

    def swapaxes(self, a, b):
        axes = list(range(self.ndim))
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(axes)

    def broadcast_to(self, shape):
        shape = tuple(int(n) for n in shape)
        if np.broadcast_shapes(self.shape, shape) != shape:
            raise ValueError(f"broadcast_to: cannot broadcast shape {self.shape} to {shape}")
        lead = len(shape) - self.ndim
        steps = [0] * lead + [0 if n == 1 else s for n, s in zip(self.shape, self.steps)]
        return self._view(shape, steps)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = _resolve_shape(self.shape, shape)
        base = self if self.is_contiguous else self.ascontiguous()
        return base._view(shape, _c_steps(shape))

    def ravel(self):
        return self.reshape(-1)

    def flatten(self):
        return self.reshape(-1).copy()  # always a copy, as in numpy

    def squeeze(self, axis=None):
        axes = _axes(axis, self.ndim) if axis is not None else tuple(d for d, n in enumerate(self.shape) if n == 1)
        if any(self.shape[d] != 1 for d in axes):
            raise ValueError(f"squeeze: cannot squeeze an axis of size other than 1 in shape {self.shape}")
        keep = [d for d in range(self.ndim) if d not in axes]
        return self._view([self.shape[d] for d in keep], [self.steps[d] for d in keep])

    # ---- copies ---------------------------------------------------------------------------------------
    def ascontiguous(self):
        return self if self.is_contiguous else self.copy()

    def copy(self):
        return self.astype(self.dtype)

    def __deepcopy__(self, memo):
        """copy.deepcopy (a module cloned on the GPU: TransformerEncoder's layers) copies on the device."""
        return self.copy()

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        out = empty(self.shape, dtype)
        _copy_into(out, self)
        return out

    def as_numba(self):
        """A numba device array of this shape (C-contiguous) for the kernels that take n-d arrays."""
        flat = self.ascontiguous()
        return flat.buf[flat.offset : flat.offset + flat.size].reshape(self.shape)

    # ---- indexing ------------------------------------------------------------------------------------
    def __getitem__(self, index):
        basic = _basic_index(self, index)
        if basic is not None:
            return basic
        pos, shape = _positions(self.shape, index)
        out = empty(shape, self.dtype)
        if out.size:
            _kern().idx.gather(out.buf, self.ascontiguous().as_numba().reshape(-1), pos.buf)
        return out

    def __setitem__(self, index, value):
        view = _basic_index(self, index)
        if view is None:
            raise NotImplementedError("cuda arrays: assignment through an integer-array index is not supported")
        _copy_into(view, value)

    def fill(self, value):
        _copy_into(self, value)

    # ---- arithmetic ---------------------------------------------------------------------------------
    def __neg__(self):
        return _unary("NEG", self)

    def __abs__(self):
        return _unary("ABS", self)

    def __invert__(self):
        if self.dtype != np.bool_:
            raise TypeError(f"~ is only supported for bool cuda arrays, got {self.dtype}")
        out = empty(self.shape, np.bool_)
        if out.size:
            _kern().ew.logical_not(out.buf, *_launch_args(self.shape, self))
        return out

    def __pos__(self):
        return self

    def __add__(self, other):
        return _binary("ADD", self, other)

    def __radd__(self, other):
        return _binary("ADD", other, self)

    def __sub__(self, other):
        return _binary("SUB", self, other)

    def __rsub__(self, other):
        return _binary("SUB", other, self)

    def __mul__(self, other):
        return _binary("MUL", self, other)

    def __rmul__(self, other):
        return _binary("MUL", other, self)

    def __truediv__(self, other):
        return _binary("DIV", self, other)

    def __rtruediv__(self, other):
        return _binary("DIV", other, self)

    def __pow__(self, other):
        return _binary("POW", self, other)

    def __rpow__(self, other):
        return _binary("POW", other, self)

    def __eq__(self, other):
        return _binary("EQ", self, other)

    def __ne__(self, other):
        return _binary("NE", self, other)

    def __lt__(self, other):
        return _binary("LT", self, other)

    def __le__(self, other):
        return _binary("LE", self, other)

    def __gt__(self, other):
        return _binary("GT", self, other)

    def __ge__(self, other):
        return _binary("GE", self, other)

    def __and__(self, other):
        return _binary("AND", self, other)

    __rand__ = __and__

    def __or__(self, other):
        return _binary("OR", self, other)

    __ror__ = __or__

    def __xor__(self, other):
        return _binary("XOR", self, other)

    __rxor__ = __xor__

    __hash__ = None

    def _inplace(self, op, other):
        result = _binary(op, self, other)
        if not np.can_cast(result.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"in-place {op.lower()}: cannot cast the {result.dtype} result to {self.dtype}")
        if result.shape != self.shape:
            raise ValueError(f"in-place {op.lower()}: result shape {result.shape} differs from {self.shape}")
        _copy_into(self, result)
        return self

    def __iadd__(self, other):
        return self._inplace("ADD", other)

    def __isub__(self, other):
        return self._inplace("SUB", other)

    def __imul__(self, other):
        return self._inplace("MUL", other)

    def __itruediv__(self, other):
        return self._inplace("DIV", other)

    # ---- reductions -------------------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, keepdims=False):
        out = _reduce(self, "SUM", axis, keepdims)
        return out if dtype is None else out.astype(dtype, copy=False)

    def mean(self, axis=None, keepdims=False):
        n = _prod(self.shape[d] for d in _axes(axis, self.ndim))
        total = _reduce(self if self.dtype.kind == "f" else self.astype(np.float64), "SUM", axis, keepdims)
        return total / total.dtype.type(n) if n else total * total.dtype.type(np.nan)

    def max(self, axis=None, keepdims=False):
        return _reduce(self, "MAX", axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _reduce(self, "MIN", axis, keepdims)

    def any(self, axis=None, keepdims=False):
        return _reduce(self if self.dtype == np.bool_ else self != 0, "ANY", axis, keepdims)

    def all(self, axis=None, keepdims=False):
        return _reduce(self if self.dtype == np.bool_ else self != 0, "ALL", axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        x = self.reshape(-1) if axis is None else self
        d = 0 if axis is None else axis % x.ndim
        if x.shape[d] == 0:
            raise ValueError("argmax: attempt to get the argmax of an empty sequence")
        rows = _moved_last(x, (d,))
        out = empty((rows.shape[0],), np.int64)
        _kern().red.argmax_rows(rows.as_numba(), out.buf)
        shape = [n for i, n in enumerate(x.shape) if i != d]
        out = out.reshape(shape)
        return out.reshape(x.shape[:d] + (1,) + x.shape[d + 1 :]) if keepdims and axis is not None else out

    # ---- numpy's protocols ------------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method == "at" and ufunc is np.add:
            target, index, values = (inputs + (None,))[:3]
            return _add_at(target, index, values)
        if method != "__call__" or kwargs:
            return NotImplemented
        name = _UFUNCS.get(ufunc.__name__)
        if name is None:
            raise TypeError(f"numpy.{ufunc.__name__} is not implemented for cuda arrays")
        result = _unary(name, *inputs) if ufunc.nin == 1 else _binary(name, *inputs)
        if out is not None:
            _copy_into(out[0], result)
            return out[0]
        return result

    def __array_function__(self, func, types, args, kwargs):
        impl = _FUNCTIONS.get(func)
        if impl is None:
            raise TypeError(f"numpy.{func.__name__} is not implemented for cuda arrays")
        return impl(*args, **kwargs)


# ---- allocation and conversion (the CUDA backend's `xp` namespace) -----------------------------------------
def empty(shape, dtype=np.float32):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    return DeviceArray(_kern().cuda.device_array(max(_prod(shape), 1), dtype=np.dtype(dtype)), shape)


def full(shape, fill_value, dtype=None):
    dtype = np.dtype(dtype) if dtype is not None else np.asarray(fill_value).dtype
    out = empty(shape, dtype)
    _copy_into(out, fill_value)
    return out


def zeros(shape, dtype=np.float32):
    return full(shape, 0, dtype)


def ones(shape, dtype=np.float32):
    return full(shape, 1, dtype)


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    n = max(0, math.ceil((stop - start) / step))
    dtype = np.dtype(dtype) if dtype is not None else np.arange(start, start + step, step).dtype
    out = empty((n,), dtype)
    if n:
        _kern().ew.arange(out.buf, dtype.type(start), dtype.type(step))
    return out


def asarray(data, dtype=None):
    """A DeviceArray: device arrays pass through (converted to dtype if given), host data is uploaded."""
    if isinstance(data, DeviceArray):
        return data if dtype is None else data.astype(dtype, copy=False)
    host = np.asarray(data, dtype=dtype, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    buf = _kern().cuda.to_device(host.reshape(-1) if host.size else np.empty(1, host.dtype))
    return DeviceArray(buf, host.shape)


# ---- helpers: kernels over views ---------------------------------------------------------------------------
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


def _as_device(x, dtype, op):
    if isinstance(x, DeviceArray):
        return x
    if _is_scalar(x):
        return _constant(x.item() if isinstance(x, (np.ndarray, np.generic)) else x, dtype)
    if isinstance(x, np.ndarray):
        raise ValueError(f"{op}: cannot combine a cuda array with a cpu (numpy) array of shape {x.shape}: "
                         "both operands must be on the same device")
    raise TypeError(f"{op}: unsupported operand of type {type(x).__name__} for a cuda array")


def _copy_into(dst, src):
    """dst[...] = src (broadcast, converted to dst's dtype), writing through dst's view.

    A source that shares dst's buffer is copied first (the kernel's threads would otherwise read
    elements that others have already overwritten); a broadcast view (a step of 0 on an axis longer
    than 1) cannot be written, as in numpy, where such views are read-only."""
    if dst.size and any(s == 0 and n > 1 for n, s in zip(dst.shape, dst.steps)):
        raise ValueError(f"assign: the destination (shape {dst.shape}) is a broadcast view, which is read-only")
    src = _as_device(src, dst.dtype, "assign")
    if src.buf is dst.buf and src.size > 1:
        src = src.copy()
    src = src.broadcast_to(dst.shape)
    if dst.size:
        _kern().ew.copy(dst.size, *_launch_args(dst.shape, dst, src))


def _launch_args(shape, *views):
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
_UFUNCS = {
    "negative": "NEG", "exp": "EXP", "log": "LOG", "sqrt": "SQRT", "tanh": "TANH", "absolute": "ABS",
    "sign": "SIGN", "sin": "SIN", "cos": "COS", "add": "ADD", "subtract": "SUB", "multiply": "MUL",
    "divide": "DIV", "true_divide": "DIV", "power": "POW", "maximum": "MAXIMUM", "minimum": "MINIMUM",
    "equal": "EQ", "not_equal": "NE", "less": "LT", "less_equal": "LE", "greater": "GT",
    "greater_equal": "GE", "logical_and": "AND", "logical_or": "OR", "logical_xor": "XOR",
    "bitwise_and": "AND", "bitwise_or": "OR", "bitwise_xor": "XOR", "logical_not": "NOT", "invert": "NOT",
    "isfinite": "ISFINITE",
}


def _unary(name, x):
    if not isinstance(x, DeviceArray):
        raise TypeError(f"{name.lower()}: expected a cuda array, got {type(x).__name__}")
    if name == "NOT":
        return ~x
    if name == "ISFINITE":
        out = empty(x.shape, np.bool_)
        if out.size:
            _kern().ew.isfinite(out.buf, *_launch_args(x.shape, x))
        return out
    dtype = x.dtype if x.dtype.kind == "f" or name in ("NEG", "ABS", "SIGN") else np.dtype(np.float64)
    out = empty(x.shape, dtype)
    if out.size:
        _kern().ew.unary(getattr(_kern().ew, name), out.buf, *_launch_args(x.shape, x))
    return out


def _binary(name, a, b):
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
    a, b = _as_device(a, dtype, op), _as_device(b, dtype, op)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: cuda arrays of shapes {a.shape} and {b.shape} do not broadcast") from None
    a, b = a.broadcast_to(shape), b.broadcast_to(shape)
    ew = _kern().ew
    if name in _COMPARE or name in _LOGICAL:
        out = empty(shape, np.bool_)
        kernel = ew.compare if name in _COMPARE else ew.logical
    else:
        out = empty(shape, dtype)
        kernel = ew.binary
    if out.size:
        kernel(getattr(ew, name), out.buf, *_launch_args(shape, a, b))
    return out


def where(condition, a, b):
    condition = _as_device(condition, np.dtype(np.bool_), "where")
    dtype = np.result_type(_dtype_of(a), _dtype_of(b))
    a, b = _as_device(a, dtype, "where"), _as_device(b, dtype, "where")
    shape = np.broadcast_shapes(condition.shape, a.shape, b.shape)
    out = empty(shape, dtype)
    if out.size:
        _kern().ew.where(out.buf, *_launch_args(shape, *(x.broadcast_to(shape) for x in (condition, a, b))))
    return out


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise np.exceptions.AxisError(f"axis {a} is out of bounds for an array of dimension {ndim}")
    return tuple(sorted(int(a) % builtins.max(ndim, 1) for a in axes)) if ndim else ()


def _moved_last(x, axes):
    """x with `axes` moved to the end and flattened: a C-contiguous (kept elements, reduced elements) array."""
    kept = [d for d in range(x.ndim) if d not in axes]
    moved = x.transpose(kept + list(axes)) if x.ndim else x
    return moved.reshape(_prod(x.shape[d] for d in kept), _prod(x.shape[d] for d in axes))


def _reduce(x, name, axis, keepdims):
    axes = _axes(axis, x.ndim)
    if name in ("MAX", "MIN") and _prod(x.shape[d] for d in axes) == 0:
        raise ValueError(f"{name.lower()}: zero-size reduction over axes {axes} of shape {x.shape}")
    if name == "SUM" and x.dtype.kind in "biu":
        dtype = np.dtype(np.int64)
    else:
        dtype = np.dtype(np.bool_) if name in ("ANY", "ALL") else x.dtype
    rows = _moved_last(x, axes)
    out = empty((rows.shape[0],), dtype)
    red = _kern().red
    red.reduce_rows(getattr(red, name), rows.as_numba(), out.buf)
    if keepdims:
        return out.reshape(tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
    return out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in axes))


def _resolve_shape(old, shape):
    shape = tuple(int(n) for n in shape)
    size = _prod(old)
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: can only infer one dimension, got {shape}")
    if -1 in shape:
        known = _prod(n for n in shape if n != -1)
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape an array of shape {old} into {shape}")
        shape = tuple(size // known if n == -1 else n for n in shape)
    if _prod(shape) != size:
        raise ValueError(f"reshape: cannot reshape an array of shape {old} into {shape}")
    return shape


# ---- indexing ---------------------------------------------------------------------------------------------
def _basic_index(x, index):
    """The view x[index] for ints, slices, None and Ellipsis; None when the index is advanced."""
    items = index if isinstance(index, tuple) else (index,)
    basic = (int, np.integer, slice)
    if not all((isinstance(i, basic) and not isinstance(i, (bool, np.bool_))) or i is None or i is Ellipsis
               for i in items):
        return None
    if items.count(Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis")
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if used > x.ndim:
        raise IndexError(f"too many indices for an array of shape {x.shape}")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1 :]
    else:
        items = items + (slice(None),) * (x.ndim - used)
    shape, steps, offset, d = [], [], x.offset, 0
    for item in items:
        if item is None:
            shape.append(1)
            steps.append(0)
            continue
        n, s = x.shape[d], x.steps[d]
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            shape.append(len(range(start, stop, step)))
            steps.append(s * step)
            offset += start * s
        else:
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of bounds for axis {d} with size {n}")
            offset += (int(item) % n) * s
        d += 1
    return x._view(shape, steps, offset)


def _positions(shape, index):
    """(flat positions in a C-contiguous array of `shape`, the result's shape) for an advanced index.

    One integer cuda array on the first axis (x[idx], the embedding lookup) is computed on the device;
    any other advanced index has its index arrays read on the host (indices, not activations), where
    numpy works out the positions, which are then uploaded.
    """
    items = index if isinstance(index, tuple) else (index,)
    if len(items) == 1 and isinstance(items[0], DeviceArray) and items[0].dtype.kind in "iu":
        idx = items[0]
        row = _prod(shape[1:])
        pos = idx.astype(np.int64).reshape(idx.shape + (1,) * (len(shape) - 1)) * row
        pos = pos + arange(row, dtype=np.int64).reshape(shape[1:])
        return pos, idx.shape + tuple(shape[1:])
    host = tuple(i.get() if isinstance(i, DeviceArray) else i for i in items)
    pos = np.arange(_prod(shape), dtype=np.int64).reshape(shape)[host if isinstance(index, tuple) else host[0]]
    return asarray(pos), pos.shape


def _add_at(target, index, values):
    """np.add.at(target, index, values): repeated positions add up (atomic adds)."""
    if not target.is_contiguous:
        raise NotImplementedError("np.add.at on a non-contiguous cuda array")
    basic = _basic_index(target, index)
    if basic is not None:
        _copy_into(basic, basic + values)
        return None
    pos, shape = _positions(target.shape, index)
    values = _as_device(values, target.dtype, "add.at").broadcast_to(shape).ascontiguous()
    if values.size:
        flat = target.buf[target.offset : target.offset + target.size]
        _kern().idx.scatter_add(flat, pos.ascontiguous().as_numba().reshape(-1), values.as_numba().reshape(-1))
    return None


# ---- numpy functions (dispatched through __array_function__) -----------------------------------------------
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
    steps = _c_steps(x.shape)
    pos = indices * steps[axis]
    for d in range(x.ndim):
        if d != axis:
            coord = arange(x.shape[d], dtype=np.int64).reshape((1,) * d + (-1,) + (1,) * (x.ndim - d - 1))
            pos = pos + coord * steps[d]
    out = empty(pos.shape, x.dtype)
    if out.size:
        _kern().idx.gather(out.buf, x.as_numba().reshape(-1), pos.ascontiguous().as_numba().reshape(-1))
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


_FUNCTIONS = {
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
