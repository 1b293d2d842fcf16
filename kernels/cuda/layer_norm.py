"""Layer normalisation over the last axis of an (R, N) array on a CUDA device, forward and backward; the
meanings of kernels/cpu/layer_norm.py:

    μ = (1/N) Σ_c x[r, c],   σ² = (1/N) Σ_c (x[r, c] - μ)²,   rstd = 1/√(σ² + eps)
    x̂ = (x - μ) · rstd,      y = x̂ ∘ w + b
Backward, with g = dy ∘ w:
    dx = rstd · (g - mean_c(g) - x̂ ∘ mean_c(g ∘ x̂))
    dw = Σ_r dy ∘ x̂,   db = Σ_r dy

    layer_norm_forward(x, w, b, eps)             -> (y (R, N), mean (R,), rstd (R,))
    layer_norm_backward(dy, x, mean, rstd, w)    -> (dx (R, N), dw (N,), db (N,))

The forward keeps each row's μ and rstd, not x̂; the backward recomputes x̂ = (x - μ) rstd from x.

Inputs are numba device arrays (host arrays are copied), all float32 or all float64; results are new
device arrays in that dtype, and the arithmetic is done in that dtype.

Launches:
* row kernels (forward; dx of the backward): one block of `block` threads (a power of two) per row, grid
  (R,). Thread t owns columns c = t, t + block, ...; the row statistics are shared-memory tree reductions
  (softmax's `_reduce_sum`). Forward loop nest of a block:

      μ = block_sum(Σ_owned x) / N;   σ² = block_sum(Σ_owned (x - μ)²) / N;   rstd = 1/√(σ² + eps)
      y[r, c] = (x[r, c] - μ) rstd w[c] + b[c]   (owned c);   thread 0: mean[r], rstd[r]

  dx (x̂ = (x - μ) rstd recomputed): mean_g = block_sum(Σ_owned g) / N;  mean_gh = block_sum(Σ_owned g x̂) / N;
  then dx elementwise.
* column kernel (dw, db): one thread per column c, grid ceil(N / block): for r in 0..R-1: dw[c] += dy x̂,
  db[c] += dy (x̂ recomputed from x, mean[r], rstd[r]). Each thread owns its column, so nothing races and no
  atomics are needed; consecutive threads read consecutive addresses.
Kernels are compiled per (dtype, block) by `_kernels`, since a shared array needs both at compile time.
"""
import functools
import math

import numba
import numpy as np
from numba import cuda

from .device import as_device
from .softmax import _reduce_sum

from .policy import ROW_THREADS as BLOCK  # threads per row, and per block of columns in the dw/db kernel (policy.py)


@functools.lru_cache(maxsize=None)
def _kernels(dtype, block):
    """(forward, dx, dw_db) kernels for one dtype and block size."""
    nbt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    one = dtype.type(1)

    @cuda.jit
    def forward(x, w, b, eps, y, mean, rstd):
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        N = x.shape[1]
        n = dtype.type(N)
        sh = cuda.shared.array(block, nbt)
        part = zero
        for c in range(t, N, block):
            part += x[r, c]
        mu = _reduce_sum(sh, t, part) / n
        part = zero
        for c in range(t, N, block):
            d = x[r, c] - mu
            part += d * d
        inv = one / math.sqrt(_reduce_sum(sh, t, part) / n + eps)
        for c in range(t, N, block):
            y[r, c] = (x[r, c] - mu) * inv * w[c] + b[c]
        if t == 0:
            mean[r] = mu
            rstd[r] = inv

    @cuda.jit
    def dx_kernel(dy, x, mean, rstd, w, dx):
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        N = dy.shape[1]
        n = dtype.type(N)
        sh = cuda.shared.array(block, nbt)
        mu = mean[r]
        inv = rstd[r]
        part_g = zero
        part_gh = zero
        for c in range(t, N, block):
            g = dy[r, c] * w[c]
            part_g += g
            part_gh += g * ((x[r, c] - mu) * inv)
        mean_g = _reduce_sum(sh, t, part_g) / n
        mean_gh = _reduce_sum(sh, t, part_gh) / n
        for c in range(t, N, block):
            dx[r, c] = inv * (dy[r, c] * w[c] - mean_g - (x[r, c] - mu) * inv * mean_gh)

    @cuda.jit
    def dw_db_kernel(dy, x, mean, rstd, dw, db):
        c = cuda.blockIdx.x * block + cuda.threadIdx.x
        if c >= dy.shape[1]:
            return
        sw = zero
        sb = zero
        for r in range(dy.shape[0]):
            sw += dy[r, c] * ((x[r, c] - mean[r]) * rstd[r])
            sb += dy[r, c]
        dw[c] = sw
        db[c] = sb

    return forward, dx_kernel, dw_db_kernel


def _prepare(name, mats, vecs, block):
    """Device copies of mats (each (R, N)) and of vecs, a list of (vector, axis): a vector's length is
    the mats' size along that axis (w, b: N; rstd: R). Returns (mats, vectors, dtype)."""
    mats = [as_device(a) for a in mats]
    vecs = [(as_device(a), axis) for a, axis in vecs]
    shape = mats[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in mats[1:]):
        raise ValueError(f"{name}: expected 2-D (R, N) arrays of one shape, got {[a.shape for a in mats]}")
    for a, axis in vecs:
        if a.shape != (shape[axis],):
            raise ValueError(f"{name}: expected a ({shape[axis]},) vector beside {shape}, got shape {a.shape}")
    vecs = [a for a, _ in vecs]
    dt = np.dtype(mats[0].dtype)
    if dt not in (np.float32, np.float64) or any(np.dtype(a.dtype) != dt for a in mats + vecs):
        raise TypeError(f"{name}: inputs must all be float32 or all float64, got {[str(a.dtype) for a in mats + vecs]}")
    if block < 1 or block & (block - 1):
        raise ValueError(f"{name}: block {block} is not a power of two")
    return mats, vecs, dt


def layer_norm_forward(x, w, b, eps, block=BLOCK):
    """Returns (y, mean, rstd): y (R, N), and each row's μ (R,) and rstd (R,) for the backward."""
    (x,), (w, b), dt = _prepare("layer_norm_forward", [x], [(w, 1), (b, 1)], block)
    R, N = x.shape
    y = cuda.device_array((R, N), dtype=dt)
    mean = cuda.device_array(R, dtype=dt)
    rstd = cuda.device_array(R, dtype=dt)
    if R:
        _kernels(dt, block)[0][R, block](x, w, b, dt.type(eps), y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(dy, x, mean, rstd, w, block=BLOCK):
    """Returns (dx, dw, db) from dy (R, N), the forward's input x (R, N), its row μ and rstd (R,), and the
    weight w (N,)."""
    (dy, x), (mean, rstd, w), dt = _prepare("layer_norm_backward", [dy, x], [(mean, 0), (rstd, 0), (w, 1)],
                                            block)
    R, N = dy.shape
    _, dx_kernel, dw_db_kernel = _kernels(dt, block)
    dx = cuda.device_array((R, N), dtype=dt)
    dw = cuda.device_array(N, dtype=dt)
    db = cuda.device_array(N, dtype=dt)
    if R and N:
        dx_kernel[R, block](dy, x, mean, rstd, w, dx)
    if N:
        dw_db_kernel[(N + block - 1) // block, block](dy, x, mean, rstd, dw, db)
    return dx, dw, db
