"""Factory functions with PyTorch's names and defaults (floats are float32 unless told).

Each takes device= ("cpu" by default, or "cuda"). Constant fills are made on the device itself;
random numbers come from the one global generator on the host and are then copied, so a seed
gives the same values on either device.
"""
import math
import numbers

import numpy as np

from . import backend
from .autograd import Variable
from .cuda import device as Device
from .dtypes import KINDS, as_dtype, default_dtype_for, float32, get_default_dtype, int64
from .random import default_generator
from .tensor import Tensor


def _is_int(n):
    """A Python or numpy integer, not a bool (PyTorch refuses zeros(True))."""
    return isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))


def _size(op, size):
    """The shape from `*size` (ints, or one tuple/list of ints), checked as PyTorch does."""
    shown = size[0] if len(size) == 1 else size
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(_is_int(s) for s in size):
        raise TypeError(f"{op}: size must be a tuple of ints, got {shown!r}")
    size = tuple(int(s) for s in size)
    for s in size:
        if s < 0:
            raise ValueError(f"{op}: negative dimension {s} in size {size}")
    return size


def _dtype(op, dtype, default):
    """`dtype` (a tinyattn/numpy dtype, its name, or float/int/bool) as np.dtype; `default` when None."""
    return default if dtype is None else as_dtype(dtype, op)


def _device(device):
    return "cpu" if device is None else Device(device).type


def _check_grad(op, dtype, requires_grad):
    if requires_grad and dtype.kind != "f":
        raise TypeError(f"{op}: only floating-point tensors can require gradients, got dtype {dtype}")


def _make(array, requires_grad, device=None):
    t = Tensor._wrap(backend.move(array, _device(device)))
    t.requires_grad = requires_grad  # the setter rejects integer tensors
    return t


def _filled(op, size, value, dtype, requires_grad, device):
    size = _size(op, size)
    _check_grad(op, dtype, requires_grad)
    xp = backend.get(_device(device)).xp
    return _make(xp.full(size, value, dtype=dtype), requires_grad, device)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new tensor holding a copy of `data` (a number, nested lists, an ndarray or a Tensor)."""
    dtype = as_dtype(dtype, "tensor")  # then Tensor() checks the data (dtypes.check_data)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(array):
    """A tensor sharing memory with `array`, keeping its dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(array).__name__}")
    if array.dtype.kind not in KINDS:
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype}; a tensor holds bool, integer or "
                        "floating-point data")
    return Tensor._wrap(array)


def _no_out(op, out):
    if out is not None:
        raise NotImplementedError(f"{op}: out= is not supported by tinyattn; assign the result instead")


def zeros(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    """Zeros of shape `size` (ints, or one tuple/list/Size), of the default dtype (float32) unless told."""
    _no_out("zeros", out)
    return _filled("zeros", size, 0, _dtype("zeros", dtype, get_default_dtype()), requires_grad, device)


def ones(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    _no_out("ones", out)
    return _filled("ones", size, 1, _dtype("ones", dtype, get_default_dtype()), requires_grad, device)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    """A tensor filled with fill_value; its dtype follows the value (int64, bool or float32) unless told."""
    if isinstance(fill_value, Variable):
        fill_value = fill_value.item()  # a one-element tensor, as PyTorch allows
    if not isinstance(fill_value, (numbers.Number, np.bool_)) or isinstance(fill_value, complex):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    _no_out("full", out)
    dtype = _dtype("full", dtype, None) or default_dtype_for(np.asarray(fill_value))
    return _filled("full", (size,), fill_value, dtype, requires_grad, device)


def _like(op, t):
    if not isinstance(t, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(t).__name__}")
    return t


def zeros_like(t, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    """Zeros of t's shape, on t's device and of t's dtype unless told."""
    t = _like("zeros_like", t)
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def ones_like(t, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    t = _like("ones_like", t)
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def _random_float(op, size, dtype, requires_grad):
    size, dtype = _size(op, size), _dtype(op, dtype, float32)
    if dtype.kind != "f":
        raise TypeError(f"{op}: dtype must be a floating-point type (float32 or float64), got {dtype}")
    _check_grad(op, dtype, requires_grad)
    return size, dtype


def randn(*size, dtype=None, requires_grad=False, device=None):
    """Standard normal samples from the global generator (see manual_seed)."""
    size, dtype = _random_float("randn", size, dtype, requires_grad)
    return _make(default_generator().standard_normal(size).astype(dtype), requires_grad, device)


def rand(*size, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1) from the global generator."""
    size, dtype = _random_float("rand", size, dtype, requires_grad)
    return _make(default_generator().random(size).astype(dtype), requires_grad, device)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers uniform in [low, high) (or [0, low) when high is omitted), int64 by default."""
    if high is None:
        low, high = 0, low
    if not (_is_int(low) and _is_int(high)):
        raise TypeError(f"randint: low and high must be ints, got {low!r} and {high!r}")
    if not low < high:
        raise ValueError(f"randint: low {low} must be less than high {high}")
    size, dtype = _size("randint", (size,)), _dtype("randint", dtype, int64)
    values = default_generator().integers(low, high, size=size).astype(dtype)
    return _make(values, False, device)


def arange(start, end=None, step=1, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """Values from start to end (excluded); int64 for integer arguments, the default dtype (float32)
    otherwise. Numbers may be 0-d tensors."""
    _no_out("arange", out)
    start, end, step = (v.item() if isinstance(v, Variable) else v for v in (start, end, step))
    if end is None:
        start, end = 0, start
    for v in (start, end, step):
        if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
            raise TypeError(f"arange: start, end and step must be numbers, got {v!r}")
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise ValueError(f"arange: unsupported range {start} -> {end} (step {step}): the bounds must be finite")
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: the range {start} -> {end} goes against step {step} (upper and lower bound "
                         "inconsistent with the step's sign)")
    integral = all(_is_int(v) for v in (start, end, step))
    dtype = _dtype("arange", dtype, int64 if integral else get_default_dtype())
    _check_grad("arange", dtype, requires_grad)
    return _make(np.arange(start, end, step).astype(dtype), requires_grad, device)


def empty_parameter_data(shape, dtype=None):
    """Uninitialised storage for a parameter (float32 by default); an init fills it."""
    return np.empty(shape, dtype=as_dtype(dtype, "parameter") or float32)


# ---- more factories (PyTorch's names and keywords) -------------------------------------------------


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False,
          memory_format=None):
    """A tensor of shape `size` whose values are unspecified (here: zeros, so nothing uninitialised leaks)."""
    _no_out("empty", out)
    return _filled("empty", size, 0, _dtype("empty", dtype, get_default_dtype()), requires_grad, device)


def empty_like(t, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    t = _like("empty_like", t)
    return empty(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def full_like(t, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    """A tensor of t's shape filled with fill_value, of t's dtype and device unless told."""
    t = _like("full_like", t)
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def _number(op, name, v):
    if isinstance(v, Variable):
        v = v.item()
    if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a number, got {v!r}")
    return v


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end, both included (the default dtype unless told)."""
    _no_out("linspace", out)
    start, end = _number("linspace", "start", start), _number("linspace", "end", end)
    if not _is_int(steps):
        raise TypeError(f"linspace: steps must be an int, got {steps!r}")
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    dtype = _dtype("linspace", dtype, get_default_dtype())
    _check_grad("linspace", dtype, requires_grad)
    values = np.linspace(start, end, int(steps))
    if dtype.kind in "iu":
        values = np.trunc(values)
    return _make(values.astype(dtype), requires_grad, device)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps)."""
    _no_out("logspace", out)
    start, end = _number("logspace", "start", start), _number("logspace", "end", end)
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"logspace: steps must be a non-negative int, got {steps!r}")
    dtype = _dtype("logspace", dtype, get_default_dtype())
    _check_grad("logspace", dtype, requires_grad)
    return _make(np.power(float(base), np.linspace(start, end, int(steps))).astype(dtype), requires_grad, device)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """The n x m identity matrix (m = n by default)."""
    _no_out("eye", out)
    m = n if m is None else m
    for name, v in (("n", n), ("m", m)):
        if not _is_int(v):
            raise TypeError(f"eye: {name} must be an int, got {v!r}")
        if v < 0:
            raise ValueError(f"eye: {name} must be greater or equal to 0, got {v}")
    dtype = _dtype("eye", dtype, get_default_dtype())
    _check_grad("eye", dtype, requires_grad)
    return _make(np.eye(int(n), int(m), dtype=dtype), requires_grad, device)


def as_tensor(data, dtype=None, device=None):
    """`data` as a tensor, sharing memory where it can: a tensor of the same dtype and device comes back as
    it is, a NumPy array of a supported dtype is wrapped without a copy (CPU); anything else is copied."""
    dt = as_dtype(dtype, "as_tensor")
    if isinstance(data, Variable):
        out = data if dt is None else data.to(dt)
        return out if device is None else out.to(device)
    if isinstance(data, np.ndarray) and data.dtype.kind in KINDS and (dt is None or dt == data.dtype) \
            and _device(device) == "cpu":
        return Tensor._wrap(data)
    return tensor(data, dtype=dt, device=device)


asarray = as_tensor
