"""Parameter initialisers, in place, with PyTorch's names and formulas."""
import math as _math
import warnings as _warnings

import numpy as _np

from ..backend import device_of as _device_of, move as _move
from ..random import numpy_rng as _numpy_rng

__all__ = [
    "kaiming_uniform_", "normal_", "ones_", "uniform_", "xavier_uniform_", "zeros_",
]


def _fill(t, values):
    """t's data = host `values` (a number, or drawn from the one host generator and copied to t's
    device), in place: the tensor keeps its identity, and its version counter records the change."""
    t._array[...] = values if _np.isscalar(values) else _move(values, _device_of(t._array))
    t._bump_version()
    return t


def _fans(t):
    if t.ndim < 2:
        raise ValueError(f"init: fan in/out need a tensor with at least 2 dims, got shape {t.shape}")
    receptive = int(_np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t, a=0.0, b=1.0, generator=None):
    return _fill(t, _numpy_rng(generator, "uniform_").uniform(a, b, t.shape).astype(t.dtype))


def normal_(t, mean=0.0, std=1.0, generator=None):
    return _fill(t, _numpy_rng(generator, "normal_").normal(mean, std, t.shape).astype(t.dtype))


def zeros_(t):
    return _fill(t, 0)


def ones_(t):
    return _fill(t, 1)


def _zero_element(t):
    """PyTorch's rule for the fan-based inits: a tensor with a zero-size axis has nothing to fill
    (and no fan to scale by), so the init warns and leaves it alone."""
    if 0 in t.shape:
        _warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
        return True
    return False


def xavier_uniform_(t, gain=1.0, generator=None):
    """U(-a, a) with a = gain · √(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(t)
    if fan_in + fan_out == 0 and _zero_element(t):  # (0, 0): no bound to compute (PyTorch divides by zero)
        return t  # (a (0, 3) weight has a bound and nothing to fill: silent, as in PyTorch)
    a = gain * _math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a, generator)


def kaiming_uniform_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b) with b = gain · √(3 / fan) (He et al., 2015); for the default leaky_relu (slope a) and
    fan_in that is √(6 / ((1 + a²) fan_in)). mode: 'fan_in' or 'fan_out'; nonlinearity: 'leaky_relu',
    'relu' (gain √2), or 'linear'/'sigmoid'/conv (gain 1), 'tanh' (5/3), 'selu' (3/4), as PyTorch's."""
    if _zero_element(t):
        return t
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan = _fans(t)[0 if mode == "fan_in" else 1]
    gain = _kaiming_gain(nonlinearity, a)
    bound = gain * _math.sqrt(3.0 / fan)
    return uniform_(t, -bound, bound, generator)


def _kaiming_gain(nonlinearity, a):
    """PyTorch's calculate_gain for the names kaiming_uniform_ takes."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return _math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4
    if nonlinearity == "leaky_relu":
        slope = 0.01 if a is None else a
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope} not a valid number")
        return _math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
