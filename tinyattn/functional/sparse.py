"""embedding: rows of a weight matrix picked by integer indices."""
from __future__ import annotations

from ..autograd import Function
from ..backend import backend_of
from .checks import check_float, check_indices, check_tensor, on_device_of
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "Embedding", "embedding", "EmbeddingBackward",
]


class Embedding(Function):
    """y[..., :] = W[idx[...], :].  dW = zeros with every dy row added at its index's row."""

    fresh_grads = True  # every gradient is a new array (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, weight, index):
        ctx.save_for_backward(index)
        ctx.num_embeddings = weight.shape[0]
        return backend_of(weight).embedding(weight, index)

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        return backend_of(dy).embedding_backward(index, dy, ctx.num_embeddings), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dW by EmbeddingBackward, the same scatter-add of rows as an op (whose own backward is an embedding)."""
        (index,) = ctx.saved
        return EmbeddingBackward.apply(dy, index, ctx.num_embeddings), None


class EmbeddingBackward(Function):
    """Embedding's backward as a differentiable op, for create_graph=True: y = zeros (num_embeddings, D) with
    every row g[..., :] added at its index's row.  It is linear in g, the transpose of Embedding:
    dg = dy's rows picked by the index, an Embedding."""

    fresh_grads = True

    @staticmethod
    def forward(ctx, g, index, num_embeddings):
        ctx.save_for_backward(index)
        return backend_of(g).embedding_backward(index, g, num_embeddings)

    @staticmethod
    def backward(ctx, dy):
        (index,) = ctx.saved
        return backend_of(dy).embedding(dy, index), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (index,) = ctx.saved
        return Embedding.apply(dy, index), None, None


def embedding(input: Tensor, weight: Tensor) -> Tensor:
    """PyTorch's F.embedding(input, weight): input holds integer indices into weight's rows."""
    check_tensor("embedding", "weight", weight)
    index = on_device_of("embedding", input, weight._array)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    check_float("embedding", weight._array)
    check_indices("embedding", index, weight.shape[0], "index")
    return Embedding.apply(weight, index)
