"""Parameter initialisers, in place, with PyTorch's names and formulas."""
import math
import warnings

import numpy as np

from ..backend import device_of, move
from ..random import default_generator


def _fill(t, values):
    """t's data = host `values` (a number, or drawn from the one host generator and copied to t's
    device), in place: the tensor keeps its identity, and its version counter records the change."""
    t._array[...] = values if np.isscalar(values) else move(values, device_of(t._array))
    t._bump_version()
    return t


def _fans(t):
    if t.ndim < 2:
        raise ValueError(f"init: fan in/out need a tensor with at least 2 dims, got shape {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t, a=0.0, b=1.0):
    return _fill(t, default_generator().uniform(a, b, t.shape).astype(t.dtype))


def normal_(t, mean=0.0, std=1.0):
    return _fill(t, default_generator().normal(mean, std, t.shape).astype(t.dtype))


def zeros_(t):
    return _fill(t, 0)


def ones_(t):
    return _fill(t, 1)


def _zero_element(t):
    """PyTorch's rule for the fan-based inits: a tensor with a zero-size axis has nothing to fill
    (and no fan to scale by), so the init warns and leaves it alone."""
    if 0 in t.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
        return True
    return False


def xavier_uniform_(t, gain=1.0):
    """U(-a, a) with a = gain · √(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(t)
    if fan_in + fan_out == 0 and _zero_element(t):  # (0, 0): no bound to compute (PyTorch divides by zero)
        return t  # (a (0, 3) weight has a bound and nothing to fill: silent, as in PyTorch)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def kaiming_uniform_(t, a=0.0):
    """U(-b, b) with b = √(6 / ((1 + a²) fan_in)) (He et al., 2015), leaky-ReLU slope a."""
    if _zero_element(t):
        return t
    fan_in, _ = _fans(t)
    bound = math.sqrt(6.0 / ((1 + a * a) * fan_in))
    return uniform_(t, -bound, bound)
