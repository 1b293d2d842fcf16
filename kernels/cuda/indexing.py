"""Gather and scatter-add through flat positions, on a CUDA device: the kernels behind integer-array
indexing of tinyattn's DeviceArray (x[idx], np.take, np.take_along_axis) and its backward (np.add.at).

    gather(out, src, pos)            out[i] = src[pos[i]]           (src a flat, contiguous buffer)
    scatter_add(dst, pos, values)    dst[pos[i]] += values[i]       (repeated positions add up)

Both are grid-stride loops over i. scatter_add uses atomic adds, since two i may share a position;
the order of those adds is not fixed, so float sums may differ from the CPU's in the last bits.
"""
from numba import cuda

from .launch import grid_1d


@cuda.jit
def _gather(out, src, pos):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[pos[i]]


@cuda.jit
def _scatter_add(dst, pos, values):
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        cuda.atomic.add(dst, pos[i], values[i])


def gather(out, src, pos):
    _gather[grid_1d(out.size)](out, src, pos)


def scatter_add(dst, pos, values):
    _scatter_add[grid_1d(values.size)](dst, pos, values)
