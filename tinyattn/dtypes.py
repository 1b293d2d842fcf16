"""The dtypes tinyattn uses, as NumPy dtypes under PyTorch's names."""
import numpy as np

float32 = np.dtype(np.float32)  # the default for floating-point data
float64 = np.dtype(np.float64)  # for gradient checks
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)  # the default for integer data and indices
bool_ = np.dtype(np.bool_)

float = float32
double = float64
long = int64


def as_dtype(dtype):
    """np.dtype from a tinyattn/NumPy dtype or its name; None stays None."""
    return None if dtype is None else np.dtype(dtype)


def default_dtype_for(array):
    """PyTorch's inference: Python floats become float32, ints int64, bools bool."""
    if array.dtype.kind == "f":
        return float32
    if array.dtype.kind in "iu":
        return int64
    if array.dtype.kind == "b":
        return bool_
    raise TypeError(f"tensor: unsupported data of dtype {array.dtype}")
