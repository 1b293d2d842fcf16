"""Gradient utilities."""
import functools
import operator

import numpy as np

from ..autograd import Variable
from ..backend import backend_of
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm, eps=1e-6):
    """Scale every gradient by min(1, max_norm / (‖g‖ + eps)), ‖g‖ the 2-norm over all of them.

    Returns the norm before clipping as a 0-d tensor, as PyTorch does (read it with .item()).
    Everything stays on the gradients' device: a GPU step does not wait for the norm.
    `parameters` is a tensor or an iterable of them.
    """
    if isinstance(parameters, Variable):
        parameters = [parameters]
    grads = [p.grad._array for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    total = np.sqrt(functools.reduce(operator.add, [np.sum(g.astype(np.float64) ** 2) for g in grads]))
    scale = np.minimum(max_norm / (total + eps), 1.0)
    for g in grads:
        g *= scale.astype(g.dtype)
    return Tensor._wrap(backend_of(grads[0]).asarray(total, dtype=grads[0].dtype))
