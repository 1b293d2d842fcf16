"""The basic layers: Linear, LayerNorm, Embedding, Dropout, GELU, ReLU, Identity.

Each wraps one fused, gradchecked Function of tinyattn.functional; the initialisations
follow PyTorch's, so a model behaves like its PyTorch twin from the first step.
"""
import math
import numbers

import numpy as np

from .. import functional as F
from ..creation import empty_parameter_data
from ..functional.normalization import normalized_shape_arg
from . import init
from .module import Module
from .parameter import Parameter


def size_arg(owner, name, value, minimum=0):
    """A layer's size argument as an int >= minimum: Python and numpy ints pass, as in PyTorch;
    anything else is a TypeError, and a smaller value a ValueError, naming the layer and argument."""
    what = "a positive int" if minimum == 1 else "a non-negative int"
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")
    return int(value)


def probability_arg(owner, name, p):
    """A dropout probability: a real number in [0, 1] (NaN refused)."""
    if not isinstance(p, numbers.Real) or isinstance(p, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1], got {p}")
    return float(p)


class Linear(Module):
    """y = x Wᵀ + b with W (out_features, in_features); W, b ~ U(-1/√in, 1/√in) as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        in_features = size_arg("Linear", "in_features", in_features)
        out_features = size_arg("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty_parameter_data((out_features, in_features), dtype))
        self.bias = Parameter(empty_parameter_data((out_features,), dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight.numel():  # a zero-size layer (PyTorch allows them) has nothing to initialise
            init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # = U(-1/√in, 1/√in)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` axes, then scale (ones) and shift (zeros)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=None):
        super().__init__()
        self.normalized_shape = normalized_shape_arg("LayerNorm", normalized_shape)
        if not isinstance(eps, numbers.Real) or isinstance(eps, (bool, np.bool_)):
            raise TypeError(f"LayerNorm: eps must be a non-negative number, got {type(eps).__name__}")
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be a non-negative number, got {eps!r}")
        self.eps = float(eps)
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = init.ones_(Parameter(empty_parameter_data(self.normalized_shape, dtype)))
            if bias:
                self.bias = init.zeros_(Parameter(empty_parameter_data(self.normalized_shape, dtype)))

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Embedding(Module):
    """A lookup table of num_embeddings rows of size embedding_dim, initialised N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, dtype=None):
        super().__init__()
        num_embeddings = size_arg("Embedding", "num_embeddings", num_embeddings)
        embedding_dim = size_arg("Embedding", "embedding_dim", embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = init.normal_(Parameter(empty_parameter_data((num_embeddings, embedding_dim), dtype)))

    def forward(self, index):
        return F.embedding(index, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Zeroes elements with probability p while training; the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = probability_arg("Dropout", "p", p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """GELU, tanh form (PyTorch's GELU(approximate='tanh'))."""

    def __init__(self, approximate="tanh"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        if approximate != "tanh":
            raise ValueError(f"GELU: only approximate='tanh' is implemented (tinyattn's GELU is the tanh form), "
                             f"got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Identity(Module):
    """y = x: a placeholder layer (its arguments are accepted and ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
