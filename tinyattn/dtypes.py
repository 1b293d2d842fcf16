"""The dtypes tinyattn uses, as NumPy dtypes under PyTorch's names, and the checks on what a
tensor may hold (used by tensor() and Tensor() alike)."""
import numbers
from collections.abc import Sequence

import numpy as np

from .autograd import Variable
from .backend import is_device_array

__all__ = [
    "as_dtype", "bfloat16", "bool_", "check_data", "default_dtype_for", "double", "finfo", "float", "float16",
    "float32", "float64", "from_type_name", "get_default_dtype", "half", "iinfo", "int", "int16", "int32", "int64",
    "int8", "is_floating_point", "is_tensor", "KINDS", "long", "numel", "set_default_dtype", "short", "type_name",
    "TYPE_NAMES", "uint8", "UnsupportedDtype",
]

float32 = np.dtype(np.float32)  # the default for floating-point data
float64 = np.dtype(np.float64)  # for gradient checks
float16 = np.dtype(np.float16)  # storage and NumPy's arithmetic; the Numba kernels take float32/float64 only
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)  # the default for integer data and indices
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

float = float32
double = float64
half = float16
short = int16
int = int32  # torch.int is int32
long = int64


class UnsupportedDtype:
    """A PyTorch dtype that tinyattn cannot hold (NumPy has no such type): the name exists, so code that
    only mentions it (`dtype = 'bfloat16' if ok else 'float16'`, `x.dtype == torch.bfloat16`) runs, and
    any use as a dtype raises a TypeError naming it."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"tinyattn.{self.name}"

    @property
    def is_floating_point(self):
        return True

    def error(self, op):
        return TypeError(f"{op}: dtype {self.name} is not supported by tinyattn (NumPy has no {self.name}); "
                         "use float32 (or float16)")


bfloat16 = UnsupportedDtype("bfloat16")

# PyTorch's legacy type names (Tensor.type()) for each dtype tinyattn holds
TYPE_NAMES = {
    float32: "torch.FloatTensor", float64: "torch.DoubleTensor", float16: "torch.HalfTensor",
    int64: "torch.LongTensor", int32: "torch.IntTensor", int16: "torch.ShortTensor", int8: "torch.CharTensor",
    uint8: "torch.ByteTensor", bool_: "torch.BoolTensor",
}
_BY_TYPE_NAME = {name: dt for dt, name in TYPE_NAMES.items()}
_BY_TYPE_NAME.update({"torch.BFloat16Tensor": bfloat16})
# PyTorch's dtype names as strings ("torch.float32") map to the same dtypes
_TORCH_NAMES = {
    "float32": float32, "float": float32, "float64": float64, "double": float64, "float16": float16,
    "half": float16, "int64": int64, "long": int64, "int32": int32, "int": int32, "int16": int16,
    "short": int16, "int8": int8, "uint8": uint8, "bool": bool_, "bfloat16": bfloat16,
}


def type_name(dtype, cuda=False):
    """'torch.FloatTensor' (or 'torch.cuda.FloatTensor') for float32, as PyTorch's Tensor.type()."""
    name = TYPE_NAMES.get(np.dtype(dtype))
    if name is None:
        raise TypeError(f"type: dtype {dtype} has no PyTorch type name")
    return name.replace("torch.", "torch.cuda.") if cuda else name


def from_type_name(name, op="type"):
    """The dtype and device type of a legacy name ('torch.FloatTensor', 'torch.cuda.LongTensor')."""
    cuda = name.startswith("torch.cuda.")
    dt = _BY_TYPE_NAME.get(name.replace("torch.cuda.", "torch.") if cuda else name)
    if dt is None:
        raise ValueError(f"{op}: invalid type: {name!r}")
    if isinstance(dt, UnsupportedDtype):
        raise dt.error(op)
    return dt, ("cuda" if cuda else "cpu")


_default_float = [float32]


def get_default_dtype():
    """The dtype of floating-point tensors made from Python floats and of zeros/ones/randn/... (float32)."""
    return _default_float[0]


def set_default_dtype(d):
    """Make `d` (float32 or float64; float16 is accepted as PyTorch does) the default floating-point dtype."""
    dt = as_dtype(d, "set_default_dtype")
    if dt.kind != "f":
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got {dt}")
    _default_float[0] = dt


KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a tensor may hold (as in PyTorch)


def as_dtype(dtype, op="dtype"):
    """np.dtype from a tinyattn/NumPy dtype, its name, or float/int/bool; None stays None.

    A name numpy does not know is a TypeError, and so is a dtype no tensor holds (complex,
    object, strings, dates), each naming `op` and the dtype.
    """
    if dtype is None:
        return None
    if isinstance(dtype, UnsupportedDtype):
        raise dtype.error(op)
    if isinstance(dtype, str) and dtype.startswith("torch."):  # "torch.float32" (a plain name is NumPy's)
        if dtype[6:] not in _TORCH_NAMES:
            raise TypeError(f"{op}: unknown dtype {dtype!r}")
        dtype = _TORCH_NAMES[dtype[6:]]
        if isinstance(dtype, UnsupportedDtype):
            raise dtype.error(op)
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: unknown dtype {dtype!r}") from None
    if dt.kind not in KINDS:
        raise TypeError(f"{op}: unsupported dtype {dt}; a tensor holds bool, integer or floating-point data")
    return dt


def default_dtype_for(array):
    """PyTorch's inference: Python floats become the default dtype (float32), ints int64, bools bool."""
    if array.dtype.kind == "f":
        return _default_float[0]
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
            raise TypeError(f"{op}: unsupported dtype {data.dtype}; "
                            "a tensor holds bool, integer or floating-point data")
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


def is_tensor(obj):
    """True for a tinyattn tensor (or Parameter), as torch.is_tensor."""
    return isinstance(obj, Variable)


def is_floating_point(input):
    if not isinstance(input, Variable):
        raise TypeError(f"is_floating_point: expected a tensor, got {type(input).__name__}")
    return input._array.dtype.kind == "f"


def numel(input):
    if not isinstance(input, Variable):
        raise TypeError(f"numel: expected a tensor, got {type(input).__name__}")
    return input._array.size.__index__()


class finfo:
    """PyTorch's torch.finfo: the limits of a floating-point dtype (the default dtype when none is given) as
    Python floats: bits, eps, max, min, tiny (= smallest_normal), resolution, dtype."""

    def __init__(self, type=None):
        dt = _default_float[0] if type is None else as_dtype(type, "finfo")
        if dt.kind != "f":
            raise TypeError(f"finfo: expected a floating-point dtype, got {dt}")
        info = np.finfo(dt)
        self.dtype = dt.name
        self.bits = info.bits
        self.eps, self.max, self.min = info.eps.item(), info.max.item(), info.min.item()
        self.tiny = self.smallest_normal = info.smallest_normal.item()
        self.resolution = 10.0 ** -info.precision  # PyTorch's: 1e-06 for float32

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """PyTorch's torch.iinfo: bits, min, max and dtype of an integer (or bool) dtype, as Python ints."""

    def __init__(self, type):
        dt = as_dtype(type, "iinfo")
        if dt.kind not in "iub":
            raise TypeError(f"iinfo: expected an integer dtype, got {dt}")
        info = np.iinfo(np.uint8 if dt.kind == "b" else dt)
        self.dtype = dt.name
        self.bits, self.min, self.max = info.bits, info.min, info.max
        if dt.kind == "b":
            self.bits, self.min, self.max = 8, 0, 1

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"
