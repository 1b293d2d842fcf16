"""The global random generator behind randn, rand, dropout and parameter initialisation."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the global generator, so that runs are reproducible (PyTorch's name)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    return _generator
