"""The basic layers: Linear, LayerNorm, Embedding, Dropout, Identity, Flatten, Unflatten (GELU, ReLU and
the other activations live in activation.py and are re-exported here).

Each wraps one fused, gradchecked Function of tinyattn.functional; the initialisations
follow PyTorch's, so a model behaves like its PyTorch twin from the first step.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from ..autograd import Function, no_grad
from ..backend import device_of, move
from ..creation import empty_parameter_data
from ..functional.normalization import normalized_shape_arg
from . import init
from .activation import GELU, ReLU  # noqa: F401  (their old home)
from .module import Module
from .parameter import Parameter
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .._typing import Device as DeviceLike, DType, Shape
    from ..tensor import Tensor

__all__ = [
    "Dropout", "Embedding", "Flatten", "Identity", "LayerNorm", "Linear", "place", "probability_arg", "size_arg",
    "Unflatten",
]


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


def place(module, device):
    """PyTorch's device= constructor argument: the module's parameters and buffers moved there (None: CPU)."""
    if device is not None:
        module.to(device)
    return module


class Linear(Module):
    """y = x Wᵀ + b with W (out_features, in_features); W, b ~ U(-1/√in, 1/√in) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: DeviceLike = None,
                 dtype: DType = None) -> None:
        super().__init__()
        in_features = size_arg("Linear", "in_features", in_features)
        out_features = size_arg("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty_parameter_data((out_features, in_features), dtype))
        if bias:
            self.bias = Parameter(empty_parameter_data((out_features,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        place(self, device)

    def reset_parameters(self) -> None:
        if self.weight.numel():  # a zero-size layer (PyTorch allows them) has nothing to initialise
            init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # = U(-1/√in, 1/√in)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` axes, then scale (ones) and shift (zeros)."""

    if TYPE_CHECKING:
        weight: Parameter | None
        bias: Parameter | None
        eps: float
        elementwise_affine: bool

    def __init__(self, normalized_shape: Shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device: DeviceLike = None, dtype: DType = None) -> None:
        super().__init__()
        self.normalized_shape = normalized_shape_arg("LayerNorm", normalized_shape)
        if not isinstance(eps, numbers.Real) or isinstance(eps, (bool, np.bool_)):
            raise TypeError(f"LayerNorm: eps must be a non-negative number, got {type(eps).__name__}")
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be a non-negative number, got {eps!r}")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if elementwise_affine:
            self.weight = Parameter(empty_parameter_data(self.normalized_shape, dtype))
            if bias:
                self.bias = Parameter(empty_parameter_data(self.normalized_shape, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()
        place(self, device)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class _ScaleGrad(Function):
    """y = x; backward dx = dy · s (s a constant array broadcast against x): Embedding's scale_grad_by_freq."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.s = move(s, device_of(x))
        return x

    @staticmethod
    def backward(ctx, dy):
        return dy * ctx.s, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy · s as a tensor whose derivative in dy is the identity, not s: PyTorch's double backward of
        scale_grad_by_freq ignores the frequency scaling (embedding_dense_double_backward is a plain gather),
        and so does this one, so that second derivatives match PyTorch's (the scaling is not a derivative of
        the forward, so no choice here would agree with finite differences in both directions)."""
        return (dy * ctx.s).detach() + (dy - dy.detach()), None


class Embedding(Module):
    """A lookup table of num_embeddings rows of size embedding_dim, initialised N(0, 1) (PyTorch's).

    padding_idx: that row starts at zeros and gets no gradient (its output rows are detached).
    max_norm: before each lookup, the rows looked up whose `norm_type`-norm exceeds max_norm are
    rescaled in place to norm max_norm (PyTorch's renorm, under no_grad). scale_grad_by_freq: each
    looked-up row's gradient is divided by the number of times its index occurs in the batch.
    sparse=True (sparse gradients) is not implemented (NotImplementedError).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False, device: DeviceLike = None,
                 dtype: DType = None) -> None:
        super().__init__()
        num_embeddings = size_arg("Embedding", "num_embeddings", num_embeddings)
        embedding_dim = size_arg("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got {padding_idx!r}")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("Padding_idx must be within num_embeddings")  # PyTorch's type and words
            padding_idx = int(padding_idx) % num_embeddings
        if sparse:
            raise NotImplementedError("Embedding: sparse=True (sparse gradients) is not implemented")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(empty_parameter_data((num_embeddings, embedding_dim), dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {tuple(_weight.shape)} should be "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        place(self, device)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight._array[self.padding_idx] = 0
                self.weight._bump_version()

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is `embeddings` (2-D), frozen unless freeze=False (PyTorch's)."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {tuple(embeddings.shape)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings, _freeze=freeze, padding_idx=padding_idx, max_norm=max_norm,
                   norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)

    def forward(self, input: Tensor) -> Tensor:
        if self.max_norm is not None:
            self._renorm(input)
        out = F.embedding(input, self.weight)
        if self.scale_grad_by_freq and self.weight.requires_grad:
            idx = np.asarray(move(input._array, "cpu") if hasattr(input, "_array") else input)
            _, inverse, counts = np.unique(idx.reshape(-1), return_inverse=True, return_counts=True)
            scale = (1.0 / counts[inverse]).reshape(idx.shape + (1,)).astype(out.dtype)  # 1 / count of each index
            out = _ScaleGrad.apply(out, scale)
        if self.padding_idx is not None and self.weight.requires_grad:
            idx = move(input._array, "cpu") if hasattr(input, "_array") else np.asarray(input)
            pad = np.asarray(idx) == self.padding_idx  # on the host; F.where moves it to out's device
            if pad.any():  # the padding rows' outputs carry no gradient to the weight
                out = F.where(pad[..., None], out.detach(), out)
        return out

    def _renorm(self, input):
        idx = move(input._array, "cpu") if hasattr(input, "_array") else np.asarray(input)
        rows = np.unique(np.asarray(idx).reshape(-1))
        w = self.weight._array
        if type(w) is not np.ndarray:
            raise NotImplementedError("Embedding: max_norm is only implemented for a weight on the CPU")
        if rows.size == 0:
            return
        norms = np.linalg.norm(w[rows], ord=self.norm_type, axis=1)
        big = norms > self.max_norm
        if big.any():
            scale = self.max_norm / (norms[big] + 1e-7)
            w[rows[big]] *= scale[:, None].astype(w.dtype)
            self.weight._bump_version()

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s


class Dropout(Module):
    """Zeroes elements with probability p while training (the rest scaled by 1/(1-p)); the identity in
    eval mode. inplace=True is accepted and computes out of place."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = probability_arg("Dropout", "p", p)
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Identity(Module):
    """y = x: a placeholder layer (its arguments are accepted and ignored, as in PyTorch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Flatten(Module):
    """input.flatten(start_dim, end_dim); by default every axis but the batch one (start_dim=1)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Axis `dim` reshaped to `unflattened_size` (a tuple or list of ints, one of them may be -1)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if isinstance(dim, str):
            raise NotImplementedError("Unflatten: named dimensions are not implemented; pass an int dim")
        if not isinstance(unflattened_size, (tuple, list)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in unflattened_size):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got {unflattened_size!r}")
        self.dim, self.unflattened_size = dim, tuple(int(s) for s in unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        d = self.dim + input.ndim if self.dim < 0 else self.dim
        if not 0 <= d < input.ndim:
            raise IndexError(f"Unflatten: dim {self.dim} out of range for a {input.ndim}-D input")
        shape = tuple(input.shape[:d]) + self.unflattened_size + tuple(input.shape[d + 1:])
        known = math.prod(s for s in self.unflattened_size if s != -1)
        if (-1 not in self.unflattened_size and known != input.shape[d]) or (known and input.shape[d] % known):
            raise RuntimeError(f"Unflatten: unflattened_size {self.unflattened_size} does not multiply to the size "
                               f"{input.shape[d]} of dim {self.dim} of the input {tuple(input.shape)}")
        return F.reshape(input, shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
