"""Factory functions with PyTorch's names and defaults (floats are float32 unless told).

Each takes device= ("cpu" by default, or "cuda"). Constant fills are made on the device itself;
random numbers come from the one global generator on the host and are then copied, so a seed
gives the same values on either device.
"""
import numpy as np

from . import backend
from .cuda import device as Device
from .dtypes import as_dtype, default_dtype_for, float32, int64
from .random import default_generator
from .tensor import Tensor


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _device(device):
    return "cpu" if device is None else Device(device).type


def _make(array, requires_grad, device=None):
    t = Tensor._wrap(backend.move(array, _device(device)))
    t.requires_grad = requires_grad  # the setter rejects integer tensors
    return t


def _filled(size, value, dtype, requires_grad, device):
    xp = backend.get(_device(device)).xp
    return _make(xp.full(_size(size), value, dtype=dtype), requires_grad, device)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new tensor holding a copy of `data` (a number, nested lists, an ndarray or a Tensor)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(array):
    """A tensor sharing memory with `array`, keeping its dtype."""
    return Tensor._wrap(np.asarray(array))


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return _filled(size, 0, as_dtype(dtype) or float32, requires_grad, device)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return _filled(size, 1, as_dtype(dtype) or float32, requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    """A tensor filled with fill_value; its dtype follows the value (int64, bool or float32) unless told."""
    dtype = as_dtype(dtype) or default_dtype_for(np.asarray(fill_value))
    return _filled((size,), fill_value, dtype, requires_grad, device)


def zeros_like(t, dtype=None, requires_grad=False, device=None):
    """Zeros of t's shape, on t's device and of t's dtype unless told."""
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def ones_like(t, dtype=None, requires_grad=False, device=None):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def randn(*size, dtype=None, requires_grad=False, device=None):
    """Standard normal samples from the global generator (see manual_seed)."""
    dtype = as_dtype(dtype) or float32
    return _make(default_generator().standard_normal(_size(size)).astype(dtype), requires_grad, device)


def rand(*size, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1) from the global generator."""
    dtype = as_dtype(dtype) or float32
    return _make(default_generator().random(_size(size)).astype(dtype), requires_grad, device)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers uniform in [low, high) (or [0, low) when high is omitted), int64 by default."""
    if high is None:
        low, high = 0, low
    values = default_generator().integers(low, high, size=_size((size,))).astype(as_dtype(dtype) or int64)
    return _make(values, False, device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    """Values from start to end (excluded); int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = as_dtype(dtype) or (int64 if integral else float32)
    return _make(np.arange(start, end, step).astype(dtype), requires_grad, device)


def empty_parameter_data(shape, dtype=None):
    """Uninitialised storage for a parameter (float32 by default); an init fills it."""
    return np.empty(shape, dtype=as_dtype(dtype) or float32)
