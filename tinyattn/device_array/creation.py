"""Allocation and conversion (the CUDA backend's `xp` namespace): empty, full, zeros, ones, arange, asarray."""
import math

import numpy as np

__all__ = ["arange", "asarray", "empty", "full", "ones", "zeros"]


def empty(shape, dtype=np.float32):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    return DeviceArray(kern().cuda.device_array(max(prod(shape), 1), dtype=np.dtype(dtype)), shape)


def full(shape, fill_value, dtype=None):
    dtype = np.dtype(dtype) if dtype is not None else np.asarray(fill_value).dtype
    out = empty(shape, dtype)
    copy_into(out, fill_value)
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
        kern().ew.arange(out.buf, dtype.type(start), dtype.type(step))
    return out


def asarray(data, dtype=None):
    """A DeviceArray: device arrays pass through (converted to dtype if given), host data is uploaded."""
    if isinstance(data, DeviceArray):
        return data if dtype is None else data.astype(dtype, copy=False)
    host = np.asarray(data, dtype=dtype, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    buf = kern().cuda.to_device(host.reshape(-1) if host.size else np.empty(1, host.dtype))
    return DeviceArray(buf, host.shape)


# The package's modules refer to each other; each imports the others at its end, once its own names exist
# (numpy_api, which uses them at import time, is imported last: see __init__.py).
from .array import DeviceArray, kern, prod  # noqa: E402
from .ops import copy_into  # noqa: E402
