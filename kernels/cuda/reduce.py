"""Row reductions on a CUDA device: out[r] = fold_op(x[r, 0], ..., x[r, N-1]) over a C-contiguous (R, N)
device array. tinyattn's DeviceArray brings every reduction to this form (the reduced axes moved last
and flattened).

    reduce_rows(op, x, out)   op in SUM, MAX, MIN, ANY, ALL; out (R,) of the result dtype
    argmax_rows(x, out)       out[r] = the first c with x[r, c] maximal (NaN counts as maximal), as numpy

Two launch shapes for reduce_rows, chosen by the row count (or forced with by_block=):
- one thread per row (grid-stride over the rows) folding its row left to right: for many rows;
- one block per row when rows are few and long: thread t folds columns t, t + T, t + 2T, ..., then a
  shared-memory tree combines the T partials (sh[t] = sh[t] op sh[t + h] for h = T/2, ..., 1, with a
  syncthreads after each step; no warp shuffles, so Numba's simulator runs it).
The fold runs in the output's dtype: SUM of bool or integer input is int64, as in numpy. Kernels are
compiled per (op, input dtype, output dtype): the identity and the shared array's dtype are constants.
"""
import functools

import numba
import numpy as np
from numba import cuda

from .launch import SIMULATOR, grid_1d
from .policy import REDUCE_MANY_ROWS as MANY_ROWS  # from this many rows on, one thread per row (policy.py)
from .policy import REDUCE_ROW_THREADS, REDUCE_SIM_ROW_THREADS

SUM, MAX, MIN, ANY, ALL = range(5)
BLOCK = REDUCE_SIM_ROW_THREADS if SIMULATOR else REDUCE_ROW_THREADS  # threads per row of the block-per-row kernel


def _identity(op, dtype):
    if op == SUM:
        return dtype.type(0)
    if op in (ANY, ALL):
        return np.bool_(op == ALL)
    if dtype.kind == "b":
        return np.bool_(op == MIN)  # max of bools starts at False, min at True
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    if dtype.kind == "f":
        return dtype.type(-np.inf if op == MAX else np.inf)
    return dtype.type(info.min if op == MAX else info.max)


@functools.lru_cache(maxsize=None)
def _kernels(op, in_dtype, out_dtype, block):
    init = _identity(op, out_dtype)
    cast = out_dtype.type
    shared_type = numba.from_dtype(out_dtype)

    @cuda.jit(device=True)
    def combine(acc, x):
        if op == SUM:
            return acc + x
        if op == MAX:
            return acc if (acc >= x or acc != acc) else x  # NaN propagates, as in numpy
        if op == MIN:
            return acc if (acc <= x or acc != acc) else x
        if op == ANY:
            return acc or x
        return acc and x

    @cuda.jit
    def by_thread(x, out):
        for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            acc = init
            for c in range(x.shape[1]):
                acc = combine(acc, cast(x[r, c]))
            out[r] = acc

    @cuda.jit
    def by_block(x, out):
        sh = cuda.shared.array(block, shared_type)
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        acc = init
        for c in range(t, x.shape[1], block):
            acc = combine(acc, cast(x[r, c]))
        sh[t] = acc
        cuda.syncthreads()
        h = block // 2
        while h > 0:
            if t < h:
                sh[t] = combine(sh[t], sh[t + h])
            cuda.syncthreads()
            h //= 2
        if t == 0:
            out[r] = sh[0]

    return by_thread, by_block


@cuda.jit
def _argmax(x, out):
    for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        best = x[r, 0]
        at = 0
        for c in range(1, x.shape[1]):
            v = x[r, c]
            if best == best and (v > best or v != v):
                best = v
                at = c
        out[r] = at


def reduce_rows(op, x, out, by_block=None):
    """out[r] = fold_op over x[r, :]; x (R, N) with N >= 1 for MAX/MIN (numpy refuses empty maxima)."""
    R = x.shape[0]
    if R == 0:
        return out
    by_thread_kernel, by_block_kernel = _kernels(op, np.dtype(x.dtype), np.dtype(out.dtype), BLOCK)
    if by_block is None:
        by_block = R < MANY_ROWS and x.shape[1] > 4 * BLOCK
    if by_block:
        by_block_kernel[R, BLOCK](x, out)
    else:
        by_thread_kernel[grid_1d(R)](x, out)
    return out


def argmax_rows(x, out):
    """out[r] = argmax_c x[r, c] (int64); x (R, N) with N >= 1."""
    if x.shape[0]:
        _argmax[grid_1d(x.shape[0])](x, out)
    return out
