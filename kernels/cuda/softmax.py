"""Row-wise softmax and log-softmax on a CUDA device, over the last axis of an (R, C) array, forward and
backward; the meanings of kernels/cpu/softmax.py:

    softmax_forward(x)           y[r, c] = exp(x[r, c] - m_r) / s_r
    softmax_backward(y, dy)      dx[r, c] = y[r, c] * (dy[r, c] - sum_c' dy[r, c'] * y[r, c'])
    log_softmax_forward(x)       y[r, c] = (x[r, c] - m_r) - log(s_r)
    log_softmax_backward(y, dy)  dx[r, c] = dy[r, c] - exp(y[r, c]) * sum_c' dy[r, c']

with m_r = max_c x[r, c] and s_r = sum_c exp(x[r, c] - m_r). Inputs are numba device arrays (host
arrays are copied to the device); each returns a new device array of the input's dtype, and the
arithmetic is done in that dtype. A row that is all -inf gives NaN, as on the CPU.

Launch: one block of `block` threads (default BLOCK, a power of two) per row, grid (R,). Thread t owns
columns c = t, t + block, t + 2*block, ... (C may be smaller or larger than the block). Loop nest of a
block, for the softmax forward:

    part = max over owned c of x[r, c];     m = block_reduce_max(part)
    y[r, c] = exp(x[r, c] - m) (owned c);   part = sum of those;   s = block_reduce_sum(part)
    y[r, c] *= 1 / s (owned c)

The other three have the same shape: one block reduction, then an elementwise pass. A block reduction
is a shared-memory tree: sh[t] = part; syncthreads; for h = block/2, block/4, ..., 1: sh[t] op= sh[t + h]
for t < h, syncthreads; every thread then reads sh[0] and a last syncthreads frees sh for reuse. No warp
shuffles, so Numba's simulator runs it. Kernels are compiled per (dtype, block) by `_kernels`, since a
shared array needs its dtype and size at compile time.
"""
import functools
import math

import numba
import numpy as np
from numba import cuda

from .device import as_device

from .policy import ROW_THREADS as BLOCK  # default threads per row (a power of two; policy.py)


@cuda.jit(device=True)
def _reduce_sum(sh, t, part):
    """Sum of `part` over the block's threads (all must call it); sh: shared, one slot per thread."""
    sh[t] = part
    cuda.syncthreads()
    h = sh.shape[0] // 2
    while h > 0:
        if t < h:
            sh[t] += sh[t + h]
        cuda.syncthreads()
        h //= 2
    total = sh[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def _reduce_max(sh, t, part):
    """Max of `part` over the block's threads (all must call it); sh: shared, one slot per thread."""
    sh[t] = part
    cuda.syncthreads()
    h = sh.shape[0] // 2
    while h > 0:
        if t < h:
            if sh[t + h] > sh[t]:
                sh[t] = sh[t + h]
        cuda.syncthreads()
        h //= 2
    total = sh[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def _row_max(x, r, t, block, sh, neg_inf):
    """max_c x[r, c] over the block: thread t scans columns t, t + block, ..., then the block reduces."""
    part = neg_inf
    for c in range(t, x.shape[1], block):
        if x[r, c] > part:
            part = x[r, c]
    return _reduce_max(sh, t, part)


@functools.lru_cache(maxsize=None)
def _kernels(dtype, block):
    """The four row kernels for one dtype and block size, as a dict by public name."""
    nbt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    one = dtype.type(1)
    neg_inf = dtype.type(-np.inf)

    @cuda.jit
    def softmax_fwd(x, y):
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        C = x.shape[1]
        sh = cuda.shared.array(block, nbt)
        m = _row_max(x, r, t, block, sh, neg_inf)
        part = zero
        for c in range(t, C, block):
            e = math.exp(x[r, c] - m)
            y[r, c] = e
            part += e
        inv = one / _reduce_sum(sh, t, part)
        for c in range(t, C, block):
            y[r, c] *= inv

    @cuda.jit
    def softmax_bwd(y, dy, dx):
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        C = y.shape[1]
        sh = cuda.shared.array(block, nbt)
        part = zero
        for c in range(t, C, block):
            part += dy[r, c] * y[r, c]
        d = _reduce_sum(sh, t, part)
        for c in range(t, C, block):
            dx[r, c] = y[r, c] * (dy[r, c] - d)

    @cuda.jit
    def log_softmax_fwd(x, y):
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        C = x.shape[1]
        sh = cuda.shared.array(block, nbt)
        m = _row_max(x, r, t, block, sh, neg_inf)
        part = zero
        for c in range(t, C, block):
            part += math.exp(x[r, c] - m)
        ls = math.log(_reduce_sum(sh, t, part))
        for c in range(t, C, block):
            y[r, c] = (x[r, c] - m) - ls      # m subtracted first: keeps log s in float32 (CPU note)

    @cuda.jit
    def log_softmax_bwd(y, dy, dx):
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        C = y.shape[1]
        sh = cuda.shared.array(block, nbt)
        part = zero
        for c in range(t, C, block):
            part += dy[r, c]
        g = _reduce_sum(sh, t, part)
        for c in range(t, C, block):
            dx[r, c] = dy[r, c] - math.exp(y[r, c]) * g

    return {"softmax_forward": softmax_fwd, "softmax_backward": softmax_bwd,
            "log_softmax_forward": log_softmax_fwd, "log_softmax_backward": log_softmax_bwd}


def _launch(name, arrays, block):
    arrays = [as_device(a) for a in arrays]
    x = arrays[0]
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (R, C) array, got shape {x.shape}")
    dt = np.dtype(x.dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype {dt} is not float32 or float64")
    for a in arrays[1:]:
        if a.shape != x.shape or np.dtype(a.dtype) != dt:
            raise ValueError(f"{name}: {x.shape} {dt} and {a.shape} {a.dtype} differ")
    if block < 1 or block & (block - 1):
        raise ValueError(f"{name}: block {block} is not a power of two")
    out = cuda.device_array(x.shape, dtype=dt)
    R, C = x.shape
    if R == 0 or C == 0:
        return out
    _kernels(dt, block)[name][R, block](*arrays, out)
    return out


def softmax_forward(x, block=BLOCK):
    """y = softmax(x) along the last axis of an (R, C) array (module docstring)."""
    return _launch("softmax_forward", [x], block)


def softmax_backward(y, dy, block=BLOCK):
    """dx = y * (dy - sum(dy * y, -1, keepdim)) from the softmax output y."""
    return _launch("softmax_backward", [y, dy], block)


def log_softmax_forward(x, block=BLOCK):
    """y = log_softmax(x) along the last axis of an (R, C) array (module docstring)."""
    return _launch("log_softmax_forward", [x], block)


def log_softmax_backward(y, dy, block=BLOCK):
    """dx = dy - exp(y) * sum(dy, -1, keepdim) from the log_softmax output y."""
    return _launch("log_softmax_backward", [y, dy], block)
