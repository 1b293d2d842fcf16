"""Gradient utilities."""
import functools
import operator

import numpy as np

from ..autograd import Variable


def clip_grad_norm_(parameters, max_norm, eps=1e-6):
    """Scale every gradient by min(1, max_norm / (‖g‖ + eps)), ‖g‖ the 2-norm over all of them.

    Returns the norm before clipping, as PyTorch does. `parameters` is a tensor or an iterable of them.
    """
    if isinstance(parameters, Variable):
        parameters = [parameters]
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    squares = [np.sum(g.astype(np.float64) ** 2) for g in grads]  # on the gradients' device
    total = float(np.sqrt(functools.reduce(operator.add, squares)))  # one scalar to the host
    scale = max_norm / (total + eps)
    if scale < 1:
        for g in grads:
            g *= scale
    return total
