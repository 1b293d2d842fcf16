"""DeviceArray: the array type, its views, operators and methods, and numpy's dispatch protocols."""
import math
from types import SimpleNamespace

import numpy as np

__all__ = ["DeviceArray", "c_steps", "kern", "prod"]


_k = None


def kern():
    """The CUDA kernel modules, imported on first use (importing them imports numba.cuda)."""
    global _k
    if _k is None:
        from numba import cuda

        from tinyattn.kernels.cuda import elementwise, indexing, reduce

        _k = SimpleNamespace(cuda=cuda, ew=elementwise, red=reduce, idx=indexing)
    return _k


def c_steps(shape):
    steps, step = [], 1
    for n in reversed(shape):
        steps.append(step)
        step *= n
    return tuple(reversed(steps))


def prod(shape):
    return math.prod(shape)


class DeviceArray:
    """An n-d array in GPU memory (see the module docstring)."""

    __slots__ = ("buf", "shape", "steps", "offset")
    __array_priority__ = 1000  # numpy's binary operators defer to ours

    def __init__(self, buf, shape, steps=None, offset=0):
        self.buf = buf
        self.shape = tuple(int(n) for n in shape)
        self.steps = c_steps(self.shape) if steps is None else tuple(int(s) for s in steps)
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
        return prod(self.shape)

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
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.steps, c_steps(self.shape)))

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
        shape = resolve_shape(self.shape, shape)
        base = self if self.is_contiguous else self.ascontiguous()
        return base._view(shape, c_steps(shape))

    def ravel(self):
        return self.reshape(-1)

    def flatten(self):
        return self.reshape(-1).copy()  # always a copy, as in numpy

    def squeeze(self, axis=None):
        axes = (normalize_axes(axis, self.ndim) if axis is not None
                else tuple(d for d, n in enumerate(self.shape) if n == 1))
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
        copy_into(out, self)
        return out

    def as_numba(self):
        """A numba device array of this shape (C-contiguous) for the kernels that take n-d arrays."""
        flat = self.ascontiguous()
        return flat.buf[flat.offset : flat.offset + flat.size].reshape(self.shape)

    # ---- indexing ------------------------------------------------------------------------------------
    def __getitem__(self, index):
        basic = basic_index(self, index)
        if basic is not None:
            return basic
        pos, shape = index_positions(self.shape, index)
        out = empty(shape, self.dtype)
        if out.size:
            kern().idx.gather(out.buf, self.ascontiguous().as_numba().reshape(-1), pos.buf)
        return out

    def __setitem__(self, index, value):
        view = basic_index(self, index)
        if view is None:
            raise NotImplementedError("cuda arrays: assignment through an integer-array index is not supported")
        copy_into(view, value)

    def fill(self, value):
        copy_into(self, value)

    # ---- arithmetic ---------------------------------------------------------------------------------
    def __neg__(self):
        return unary_op("NEG", self)

    def __abs__(self):
        return unary_op("ABS", self)

    def __invert__(self):
        if self.dtype != np.bool_:
            raise TypeError(f"~ is only supported for bool cuda arrays, got {self.dtype}")
        out = empty(self.shape, np.bool_)
        if out.size:
            kern().ew.logical_not(out.buf, *launch_args(self.shape, self))
        return out

    def __pos__(self):
        return self

    def __add__(self, other):
        return binary_op("ADD", self, other)

    def __radd__(self, other):
        return binary_op("ADD", other, self)

    def __sub__(self, other):
        return binary_op("SUB", self, other)

    def __rsub__(self, other):
        return binary_op("SUB", other, self)

    def __mul__(self, other):
        return binary_op("MUL", self, other)

    def __rmul__(self, other):
        return binary_op("MUL", other, self)

    def __truediv__(self, other):
        return binary_op("DIV", self, other)

    def __rtruediv__(self, other):
        return binary_op("DIV", other, self)

    def __pow__(self, other):
        return binary_op("POW", self, other)

    def __rpow__(self, other):
        return binary_op("POW", other, self)

    def __eq__(self, other):
        return binary_op("EQ", self, other)

    def __ne__(self, other):
        return binary_op("NE", self, other)

    def __lt__(self, other):
        return binary_op("LT", self, other)

    def __le__(self, other):
        return binary_op("LE", self, other)

    def __gt__(self, other):
        return binary_op("GT", self, other)

    def __ge__(self, other):
        return binary_op("GE", self, other)

    def __and__(self, other):
        return binary_op("AND", self, other)

    __rand__ = __and__

    def __or__(self, other):
        return binary_op("OR", self, other)

    __ror__ = __or__

    def __xor__(self, other):
        return binary_op("XOR", self, other)

    __rxor__ = __xor__

    __hash__ = None

    def _inplace(self, op, other):
        result = binary_op(op, self, other)
        if not np.can_cast(result.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"in-place {op.lower()}: cannot cast the {result.dtype} result to {self.dtype}")
        if result.shape != self.shape:
            raise ValueError(f"in-place {op.lower()}: result shape {result.shape} differs from {self.shape}")
        copy_into(self, result)
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
        out = reduce_op(self, "SUM", axis, keepdims)
        return out if dtype is None else out.astype(dtype, copy=False)

    def mean(self, axis=None, keepdims=False):
        n = prod(self.shape[d] for d in normalize_axes(axis, self.ndim))
        total = reduce_op(self if self.dtype.kind == "f" else self.astype(np.float64), "SUM", axis, keepdims)
        return total / total.dtype.type(n) if n else total * total.dtype.type(np.nan)

    def max(self, axis=None, keepdims=False):
        return reduce_op(self, "MAX", axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return reduce_op(self, "MIN", axis, keepdims)

    def any(self, axis=None, keepdims=False):
        return reduce_op(self if self.dtype == np.bool_ else self != 0, "ANY", axis, keepdims)

    def all(self, axis=None, keepdims=False):
        return reduce_op(self if self.dtype == np.bool_ else self != 0, "ALL", axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        x = self.reshape(-1) if axis is None else self
        d = 0 if axis is None else axis % x.ndim
        if x.shape[d] == 0:
            raise ValueError("argmax: attempt to get the argmax of an empty sequence")
        rows = moved_last(x, (d,))
        out = empty((rows.shape[0],), np.int64)
        kern().red.argmax_rows(rows.as_numba(), out.buf)
        shape = [n for i, n in enumerate(x.shape) if i != d]
        out = out.reshape(shape)
        return out.reshape(x.shape[:d] + (1,) + x.shape[d + 1 :]) if keepdims and axis is not None else out

    # ---- numpy's protocols ------------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method == "at" and ufunc is np.add:
            target, index, values = (inputs + (None,))[:3]
            return add_at(target, index, values)
        if method != "__call__" or kwargs:
            return NotImplemented
        name = UFUNCS.get(ufunc.__name__)
        if name is None:
            raise TypeError(f"numpy.{ufunc.__name__} is not implemented for cuda arrays")
        result = unary_op(name, *inputs) if ufunc.nin == 1 else binary_op(name, *inputs)
        if out is not None:
            copy_into(out[0], result)
            return out[0]
        return result

    def __array_function__(self, func, types, args, kwargs):
        impl = FUNCTIONS.get(func)
        if impl is None:
            raise TypeError(f"numpy.{func.__name__} is not implemented for cuda arrays")
        return impl(*args, **kwargs)


# The package's modules refer to each other; each imports the others at its end, once its own names exist
# (numpy_api, which uses them at import time, is imported last: see __init__.py).
from .creation import empty  # noqa: E402
from .indexing import add_at, basic_index, index_positions  # noqa: E402
from .numpy_api import FUNCTIONS  # noqa: E402
from .ops import (  # noqa: E402
    UFUNCS, binary_op, copy_into, launch_args, moved_last, normalize_axes, reduce_op, resolve_shape, unary_op,
)
