"""Factory functions with PyTorch's names and defaults (floats are float32 unless told)."""
import numpy as np

from .dtypes import as_dtype, default_dtype_for, float32, int64
from .random import default_generator
from .tensor import Tensor


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _make(array, requires_grad):
    t = Tensor._wrap(array)
    t.requires_grad = requires_grad  # the setter rejects integer tensors
    return t


def tensor(data, requires_grad=False, dtype=None):
    """A new tensor holding a copy of `data` (a number, nested lists, an ndarray or a Tensor)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def from_numpy(array):
    """A tensor sharing memory with `array`, keeping its dtype."""
    return Tensor._wrap(np.asarray(array))


def zeros(*size, dtype=None, requires_grad=False):
    return _make(np.zeros(_size(size), dtype=as_dtype(dtype) or float32), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make(np.ones(_size(size), dtype=as_dtype(dtype) or float32), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """A tensor filled with fill_value; its dtype follows the value (int64, bool or float32) unless told."""
    dtype = as_dtype(dtype) or default_dtype_for(np.asarray(fill_value))
    return _make(np.full(_size((size,)), fill_value, dtype=dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    """Standard normal samples from the global generator (see manual_seed)."""
    dtype = as_dtype(dtype) or float32
    return _make(default_generator().standard_normal(_size(size)).astype(dtype), requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1) from the global generator."""
    dtype = as_dtype(dtype) or float32
    return _make(default_generator().random(_size(size)).astype(dtype), requires_grad)


def randint(low, high=None, size=(), dtype=None):
    """Integers uniform in [low, high) (or [0, low) when high is omitted), int64 by default."""
    if high is None:
        low, high = 0, low
    return Tensor._wrap(default_generator().integers(low, high, size=_size((size,))).astype(as_dtype(dtype) or int64))


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values from start to end (excluded); int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = as_dtype(dtype) or (int64 if integral else float32)
    return _make(np.arange(start, end, step).astype(dtype), requires_grad)


def empty_parameter_data(shape, dtype=None):
    """Uninitialised storage for a parameter (float32 by default); an init fills it."""
    return np.empty(shape, dtype=as_dtype(dtype) or float32)
