"""Activation modules with torch.nn's names, signatures and defaults, and the exact GELU (a Function
with its hand-written backward) that tinyattn.functional.gelu lacks.

    GELU(approximate='none')   y = x Φ(x) = x/2 (1 + erf(x/√2))       (PyTorch's default, the exact form)
    GELU(approximate='tanh')   tinyattn.functional.gelu, the tanh form
    SiLU                       y = x σ(x)
    LeakyReLU(negative_slope)  y = x if x > 0 else slope x
    Tanh, Sigmoid, ReLU, Softmax(dim), LogSoftmax(dim)

The exact GELU runs on CPU arrays only (a Numba loop over math.erf); on the GPU use approximate='tanh'.
"""
import math
import warnings

import numpy as np
from numba import njit

from .. import functional as F
from ..autograd import Function
from .module import Module

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True)
def _gelu_erf(x, y):
    """for i: y[i] = x[i]/2 (1 + erf(x[i]/√2))   (flat, contiguous arrays)."""
    for i in range(x.size):
        v = x[i]
        y[i] = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))


@njit(cache=True)
def _gelu_erf_backward(x, dy, dx):
    """for i: dx[i] = dy[i] (Φ(x[i]) + x[i] φ(x[i])),  Φ(v) = (1 + erf(v/√2))/2,  φ(v) = e^(-v²/2)/√(2π)."""
    for i in range(x.size):
        v = x[i]
        cdf = 0.5 * (1.0 + math.erf(v * 0.7071067811865476))
        pdf = math.exp(-0.5 * v * v) * 0.3989422804014327
        dx[i] = dy[i] * (cdf + v * pdf)


def _cpu_float(op, x):
    a = x._array
    if type(a) is not np.ndarray:
        raise NotImplementedError(f"{op}: only implemented for CPU tensors (got one on {x.device}); "
                                  "use approximate='tanh' on the GPU")
    if a.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {a.dtype}")


class GeluErf(Function):
    """GELU, exact form: y = x Φ(x), Φ the standard normal CDF = (1 + erf(x/√2))/2.

    Backward: dx = dy (Φ(x) + x φ(x)), φ(x) = e^(-x²/2)/√(2π).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        xc = np.ascontiguousarray(x)
        y = np.empty_like(xc)
        _gelu_erf(xc.reshape(-1), y.reshape(-1))
        return y

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        xc = np.ascontiguousarray(x)
        dyc = np.ascontiguousarray(dy, dtype=xc.dtype)
        dx = np.empty_like(xc)
        _gelu_erf_backward(xc.reshape(-1), dyc.reshape(-1), dx.reshape(-1))
        return dx


def gelu(input, approximate="none"):
    """PyTorch's F.gelu: approximate='none' (default) is the exact erf form, 'tanh' the tanh form."""
    if approximate == "tanh":
        return F.gelu(input, "tanh")
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    _cpu_float("gelu", input)
    return GeluErf.apply(input)


def _legacy_softmax_dim(name, ndim):
    """PyTorch's implicit dim for Softmax(dim=None): 0 for 0-, 1- and 3-D inputs, else 1 (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class GELU(Module):
    """y = x Φ(x) (approximate='none', PyTorch's default) or its tanh form (approximate='tanh')."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    """y = max(x, 0). inplace=True is accepted (the result is computed out of place)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class SiLU(Module):
    """y = x σ(x) (inplace=True: written into the input, F.silu's rules)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input, self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope · x (inplace=True: written into the input)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Softmax(Module):
    """softmax along dim (dim=None: PyTorch's deprecated implicit choice, with its warning)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = _legacy_softmax_dim("softmax", input.ndim) if self.dim is None else self.dim
        return F.softmax(input, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log_softmax along dim (dim=None: PyTorch's deprecated implicit choice, with its warning)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = _legacy_softmax_dim("log_softmax", input.ndim) if self.dim is None else self.dim
        return F.log_softmax(input, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class ELU(Module):
    """y = x if x > 0 else α (e^x - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """y = log(1 + e^(βx)) / β (x where βx > threshold)."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Mish(Module):
    """y = x tanh(softplus(x))."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.mish(input)  # (inplace=True computes out of place)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Hardtanh(Module):
    """y = clamp(x, min_val, max_val)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__()
        if min_value is not None:  # PyTorch's deprecated spellings
            warnings.warn("keyword argument `min_value` is deprecated and rename to `min_val`", FutureWarning,
                          stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and rename to `max_val`", FutureWarning,
                          stacklevel=2)
            max_val = max_value
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} cannot be greater than max_val {max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """y = min(max(x, 0), 6)."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LogSigmoid(Module):
    """y = log σ(x) = -softplus(-x)."""

    def forward(self, input):
        return F.logsigmoid(input)
