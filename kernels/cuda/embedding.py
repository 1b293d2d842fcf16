"""Embedding on a CUDA device: a gather of weight rows, and its backward, a scatter-add; the meaning of
kernels/cpu/embedding.py (and of weight[index] for the forward):

    embedding_forward(weight, index)                out[n, :] = weight[index[n], :]
    embedding_backward(index, dy, num_embeddings)   dW = 0;  dW[index[n], :] += dy[n, :]  for every n

weight (V, D) and dy (n, D) are float32 or float64, index (n,) any integer dtype (int64 from the
functional layer), all numba device arrays (host arrays are copied); results are new device arrays in
the float dtype. Indices are the caller's to check (0 <= index < V), as on the CPU.

Launch: grid-stride loops over the n·D output (or dy) elements, flat f = n·D + d, so consecutive threads
walk a row's contiguous axis; `blocks` blocks of `block` threads (blocks defaults to one element per
thread, capped at OP_MAX_BLOCKS):

    forward:   for f in grid-stride(n·D):  out[f // D, f % D] = weight[index[f // D], f % D]
    backward:  for f in grid-stride(V·D):  dW[f // D, f % D] = 0                  (one kernel)
               for f in grid-stride(n·D):  atomic dW[index[f // D], f % D] += dy[f // D, f % D]

Repeated indices add into the same dW element from different threads, hence cuda.atomic.add (float64
atomics need compute capability 6.0+); float addition order then varies from run to run, so float32
sums may differ from the CPU's in the last bits.
"""
import numpy as np
from numba import cuda

from .device import as_device

from .policy import OP_MAX_BLOCKS  # grid cap; the grid-stride loop covers the rest (policy.py)
from .policy import THREADS as BLOCK  # default threads per block (policy.py)


@cuda.jit
def _gather(weight, index, out):
    D = out.shape[1]
    for f in range(cuda.grid(1), out.shape[0] * D, cuda.gridsize(1)):
        n = f // D
        d = f - n * D
        out[n, d] = weight[index[n], d]


@cuda.jit
def _zero(a):
    D = a.shape[1]
    for f in range(cuda.grid(1), a.shape[0] * D, cuda.gridsize(1)):
        n = f // D
        a[n, f - n * D] = 0


@cuda.jit
def _scatter_add(index, dy, dw):
    D = dy.shape[1]
    for f in range(cuda.grid(1), dy.shape[0] * D, cuda.gridsize(1)):
        n = f // D
        d = f - n * D
        cuda.atomic.add(dw, (index[n], d), dy[n, d])


def _grid(size, block, blocks):
    return blocks if blocks is not None else max(1, min(OP_MAX_BLOCKS, (size + block - 1) // block))


def _prepare(name, table, index):
    """Device copies of the (rows, D) float table and the (n,) integer index, checked."""
    table, index = as_device(table), as_device(index)
    if table.ndim != 2 or index.ndim != 1:
        raise ValueError(f"{name}: expected a 2-D float array and a 1-D index, got {table.shape} and {index.shape}")
    if np.dtype(table.dtype) not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype {table.dtype} is not float32 or float64")
    if np.dtype(index.dtype).kind not in "iu":
        raise TypeError(f"{name}: index dtype {index.dtype} is not an integer type")
    return table, index


def embedding_forward(weight, index, block=BLOCK, blocks=None):
    """out (n, D) = weight[index] for weight (V, D) and index (n,)."""
    weight, index = _prepare("embedding_forward", weight, index)
    out = cuda.device_array((index.shape[0], weight.shape[1]), dtype=weight.dtype)
    if out.size:
        _gather[_grid(out.size, block, blocks), block](weight, index, out)
    return out


def embedding_backward(index, dy, num_embeddings, block=BLOCK, blocks=None):
    """dW (num_embeddings, D) with every row dy[n] (dy (n, D)) added at row index[n] (index (n,))."""
    dy, index = _prepare("embedding_backward", dy, index)
    if dy.shape[0] != index.shape[0]:
        raise ValueError(f"embedding_backward: index {index.shape} and dy {dy.shape} differ in length")
    dw = cuda.device_array((num_embeddings, dy.shape[1]), dtype=dy.dtype)
    if dw.size:
        _zero[_grid(dw.size, block, blocks), block](dw)
    if dy.size:
        _scatter_add[_grid(dy.size, block, blocks), block](index, dy, dw)
    return dw
