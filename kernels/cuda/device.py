"""Host-side helper shared by the CUDA kernel modules."""
import numpy as np
from numba import cuda


def as_device(x):
    """x as a numba device array: those pass through, host arrays are copied (C-contiguous), other
    objects with __cuda_array_interface__ (CuPy, torch) are wrapped without a copy."""
    if cuda.devicearray.is_cuda_ndarray(x):
        return x
    if hasattr(x, "__cuda_array_interface__"):
        return cuda.as_cuda_array(x)
    return cuda.to_device(np.ascontiguousarray(x))
