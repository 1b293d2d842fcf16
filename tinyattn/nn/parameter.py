"""Parameter: a leaf tensor that a Module registers as learnable."""
from __future__ import annotations

import numpy as np

from ..autograd import Variable
from ..tensor import Tensor
from typing import Any

__all__ = [
    "Parameter",
]


class Parameter(Tensor):
    """A Tensor that requires grad by default; assigning one to a Module attribute registers it.

    Results of ops on a Parameter are plain Tensors (see Tensor._wrap).
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        """Parameter(t) shares t's memory, as in PyTorch (changing one changes the other); a NumPy array or a
        list is taken as tinyattn.tensor would take it. Parameter() is an empty float32 parameter."""
        if data is None:
            data = np.empty(0, dtype=np.float32)
        if isinstance(data, Tensor):
            Variable.__init__(self, data._array, requires_grad)
        else:
            super().__init__(np.asarray(data), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
