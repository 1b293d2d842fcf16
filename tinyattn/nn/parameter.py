"""Parameter: a leaf tensor that a Module registers as learnable."""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default; assigning one to a Module attribute registers it.

    Results of ops on a Parameter are plain Tensors (see Tensor._wrap).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        array = data._array if isinstance(data, Tensor) else np.asarray(data)
        super().__init__(array, requires_grad=requires_grad, dtype=array.dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
