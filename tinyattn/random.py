"""The global random generator behind randn, rand, dropout and parameter initialisation."""
import operator

import numpy as np

_generator = np.random.default_rng()

_UINT64 = 1 << 64


def manual_seed(seed):
    """Reseed the global generator, so that runs are reproducible (PyTorch's name).

    The seed is an int in [-2**63, 2**64), PyTorch's range; a negative seed is taken modulo 2**64
    as PyTorch does (-1 seeds as 2**64 - 1), so it is as reproducible as any other.
    """
    global _generator
    try:
        value = operator.index(seed)  # Python and numpy ints (and bools, as in PyTorch)
    except TypeError:
        raise TypeError(f"manual_seed: seed must be an int, got {seed!r} of type {type(seed).__name__}") from None
    if not -(1 << 63) <= value < _UINT64:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64), got {value}")
    _generator = np.random.default_rng(value % _UINT64)
    return _generator


def default_generator():
    return _generator
