"""Launch sizes for the grid-stride kernels, on a real GPU and under Numba's simulator.

A grid-stride kernel lets thread g of G handle elements g, g + G, g + 2G, ..., so any grid covers any
size. On a GPU the grid is wide (enough blocks to fill the device). The simulator runs every GPU thread
as a Python thread (about 0.2 ms each to start), so there a few threads that loop are far faster than
one thread per element; the kernels and their results are the same either way.
"""
from numba import config

SIMULATOR = bool(config.ENABLE_CUDASIM)  # read when numba was imported, as numba itself does

# threads per block on a GPU, the grid cap (larger sizes loop), threads in all under the simulator: policy.py
from .policy import GRID_STRIDE_MAX_BLOCKS, SIM_THREADS, THREADS


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n elements."""
    if SIMULATOR:
        return 1, max(1, min(n, SIM_THREADS))
    return max(1, min((n + THREADS - 1) // THREADS, GRID_STRIDE_MAX_BLOCKS)), THREADS
