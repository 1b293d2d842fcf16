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

The package:

    array.py      DeviceArray: views, operators, methods, numpy's dispatch protocols
    creation.py   empty, full, zeros, ones, arange, asarray
    ops.py        the kernels over views: constants, dtype rules, copies, unary/binary ops, where, reductions
    indexing.py   basic indices as views, advanced ones through gather/scatter, add.at
    numpy_api.py  numpy's functions (np.stack, np.take, np.zeros_like, ...) for __array_function__

They refer to each other: each imports the others at its end (numpy_api, which builds its table at import
time, at its top), and array.py is imported first.
"""
from .array import DeviceArray
from .creation import arange, asarray, empty, full, ones, zeros
from .ops import launch_args as _launch_args  # noqa: F401  (tests/test_cuda_tensors.py imports it by this name)
from .ops import where

__all__ = [
    "arange", "asarray", "DeviceArray", "empty", "full", "ones", "where", "zeros",
]
