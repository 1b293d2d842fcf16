"""The dtypes tinyattn uses, as NumPy dtypes under PyTorch's names, and the checks on what a
tensor may hold (used by tensor() and Tensor() alike)."""
import numbers
from collections.abc import Sequence

import numpy as np

from .autograd import Variable
from .backend import is_device_array

float32 = np.dtype(np.float32)  # the default for floating-point data
float64 = np.dtype(np.float64)  # for gradient checks
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)  # the default for integer data and indices
bool_ = np.dtype(np.bool_)

float = float32
double = float64
long = int64


KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a tensor may hold (as in PyTorch)


def as_dtype(dtype, op="dtype"):
    """np.dtype from a tinyattn/NumPy dtype, its name, or float/int/bool; None stays None.

    A name numpy does not know is a TypeError, and so is a dtype no tensor holds (complex,
    object, strings, dates), each naming `op` and the dtype.
    """
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: unknown dtype {dtype!r}") from None
    if dt.kind not in KINDS:
        raise TypeError(f"{op}: unsupported dtype {dt}; a tensor holds bool, integer or floating-point data")
    return dt


def default_dtype_for(array):
    """PyTorch's inference: Python floats become float32, ints int64, bools bool."""
    if array.dtype.kind == "f":
        return float32
    if array.dtype.kind in "iu":
        return int64
    if array.dtype.kind == "b":
        return bool_
    raise TypeError(f"tensor: unsupported data of dtype {array.dtype}")


def check_data(data, op="tensor"):
    """Numbers, (nested) lists of them, arrays and tensors pass; anything else is a TypeError or
    ValueError naming `op`, raised before any conversion."""
    if isinstance(data, Variable) or is_device_array(data):
        return
    if isinstance(data, (np.ndarray, np.generic)):
        if np.dtype(data.dtype).kind not in KINDS:
            raise TypeError(f"{op}: unsupported dtype {data.dtype}; a tensor holds bool, integer or floating-point data")
        return
    array_like = hasattr(data, "__array__") or hasattr(data, "__array_interface__")
    if isinstance(data, (str, bytes)) or not (isinstance(data, (numbers.Real, Sequence)) or array_like):
        raise TypeError(f"{op}: expected a number, a (nested) list of numbers or an array, got {type(data).__name__}")
    if isinstance(data, numbers.Real) or (not array_like and any(isinstance(x, Variable) for x in data)):
        return  # a list of tensors is stacked by Tensor itself
    try:
        array = np.array(data)
    except ValueError:  # numpy: "inhomogeneous shape"
        raise ValueError(f"{op}: nested lists of different lengths cannot form a tensor: {_short(data)}") from None
    except TypeError as e:
        raise TypeError(f"{op}: cannot build a tensor from {_short(data)}: {e}") from None
    if array.dtype.kind not in KINDS:
        raise TypeError(f"{op}: expected numbers, got {_short(data)}")


def _short(data):
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."
