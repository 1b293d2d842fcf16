"""Type aliases used by the annotations of the public API (Tensor, functional, nn, optim).

Modules import these only under `typing.TYPE_CHECKING` (their annotations are strings, through
`from __future__ import annotations`), so nothing here runs on the library's import path.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from .cuda import device
    from .tensor import Tensor

__all__ = ["DType", "Device", "Dim", "Number", "Operand", "Params", "Shape"]

Number = Union[int, float, bool]
"""A Python scalar operand."""
Operand = Union["Tensor", int, float, bool]
"""What arithmetic takes on either side: a tensor or a Python number (broadcast as a 0-d constant)."""
Dim = Union[int, Sequence[int], None]
"""One dimension, several, or None for all of them."""
Shape = Union[int, Sequence[int]]
"""A size: one int per dimension (a Size, tuple or list), or a bare int for one dimension."""
DType = Union[np.dtype, type, str, None]
"""A dtype: tinyattn's (NumPy dtypes, e.g. tinyattn.float32), a NumPy scalar type, or a name."""
Device = Union[str, "device", int, None]
"""A device: "cpu", "cuda", "cuda:0", a tinyattn.device, or a CUDA index."""
Params = Union[Iterable["Tensor"], Iterable[dict]]
"""An optimiser's params: tensors, or param groups (dicts with a "params" entry)."""
