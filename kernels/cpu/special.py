"""erf, elementwise, for the exact GELU (PyTorch's default form) and torch.erf.

NumPy has no erf; `erf_flat` is one pass over a flat C-contiguous array with math.erf,
    for i: y[i] = erf(x[i])
in the array's dtype (float32 or float64), in parallel over chunks.
"""
import math

import numpy as np
from numba import njit, prange

CHUNK = 4096


@njit(parallel=True, cache=True)
def erf_flat(x):
    """y[i] = erf(x[i]) for a 1-D C-contiguous array.  Loop nest: prange chunk: for i in chunk."""
    y = np.empty_like(x)
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            y[i] = math.erf(x[i])
    return y


def erf(x):
    """erf of any-shaped float32/float64 array (others through float64)."""
    a = np.ascontiguousarray(x)
    if a.dtype not in (np.float32, np.float64) or not a.dtype.isnative:
        return erf_flat(a.astype(np.float64).reshape(-1)).reshape(a.shape).astype(a.dtype)
    return erf_flat(a.reshape(-1)).reshape(a.shape)
