"""The lecture's other choices for attention: additive relevance and other normalisers.

Relevance α_ij (how much a_j matters to a_i):
    dot       α_ij = scale · q_i · k_j                     (what scaled_dot_product_attention fuses)
    additive  α_ij = wᵀ tanh(W_1 q_i + W_2 k_j)            (Bahdanau et al.; built from gradchecked ops)

Normaliser α'_ij = f(α_i·) over the keys j that position i may attend to (`allowed`), each a
Function with its own backward; disallowed entries give α' = 0 and receive gradient 0:
    softmax   α'_ij = e^α_ij / Σ_j' e^α_ij'               dα = α' ∘ (dα' - Σ_j dα'_ij α'_ij)
    sigmoid   α'_ij = σ(α_ij + b), b = -log S or 0        dα = dα' ∘ α' ∘ (1 - α')
    relu      α'_ij = max(α_ij, 0)                         dα = dα' where α_ij > 0
"""
import functools
import math

import numpy as np

from ..autograd import Function
from ..backend import backend_of, move
from ..backend_contract import attention_allowed
from .checks import on_device_of
from . import elementwise as ew, linalg, shape as sh


class MaskedSoftmax(Function):
    """softmax over the allowed keys of each row; 0 elsewhere, and 0 for rows with none allowed."""

    @staticmethod
    def forward(ctx, scores, allowed):
        dead = ~allowed.any(axis=-1, keepdims=True)
        masked = np.where(allowed, scores, np.asarray(-np.inf, scores.dtype))
        masked = np.where(dead, np.zeros((), scores.dtype), masked)  # keeps dead rows NaN-free
        y = backend_of(scores).softmax(masked, -1)
        y = np.where(allowed, y, np.zeros((), y.dtype))
        ctx.save_for_backward(y)
        ctx.allowed = allowed  # (a reference, for differentiable_backward)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        # y = 0 on masked entries and dead rows, so the usual formula gives them 0
        return backend_of(dy).softmax_backward(y, dy, -1), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dα = α' ∘ (dα' - Σ_j dα' ∘ α') with recorded ops, α' recomputed from the scores tensor by this op
        (so that it is differentiated too); `allowed` is a constant."""
        scores, allowed = inputs
        y = MaskedSoftmax.apply(scores, ctx.allowed)
        return y * (dy - (dy * y).sum(-1, keepdim=True)), None


class MaskedSigmoid(Function):
    """α' = σ(α + b) on allowed entries, 0 elsewhere."""

    @staticmethod
    def forward(ctx, scores, allowed, b):
        y = np.where(allowed, 0.5 * (1 + np.tanh(0.5 * (scores + b))), np.zeros((), scores.dtype))
        ctx.save_for_backward(y)
        ctx.allowed, ctx.b = allowed, b  # (references, for differentiable_backward)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * y * (1 - y), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dα = dα' ∘ α' ∘ (1 - α') with recorded ops, α' recomputed from the scores tensor by this op (masked
        entries: α' = 0, so their gradient is 0 at every order)."""
        scores = inputs[0]
        y = MaskedSigmoid.apply(scores, ctx.allowed, ctx.b)
        return dy * (y - y * y), None, None


class MaskedRelu(Function):
    """α' = max(α, 0) on allowed entries, 0 elsewhere."""

    @staticmethod
    def forward(ctx, scores, allowed):
        y = np.where(allowed, np.maximum(scores, 0), np.zeros((), scores.dtype))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * (y > 0), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dα = dα' ∘ [α > 0] with recorded ops; the mask is a constant of the forward (piecewise linear: the
        second derivative in α is 0)."""
        (y,) = ctx.saved
        return dy * (y > 0).astype(y.dtype), None


NORMALIZERS = ("softmax", "sigmoid", "relu")
RELEVANCES = ("dot", "additive")


def normalize_scores(scores, allowed, normalizer="softmax", sigmoid_bias=True):
    """α' from α: `allowed` is a bool array broadcastable to scores (L, S) or (..., L, S)."""
    allowed = np.broadcast_to(on_device_of("attention", allowed, scores._array), scores.shape)
    if normalizer == "softmax":
        return MaskedSoftmax.apply(scores, allowed)
    if normalizer == "sigmoid":
        b = -math.log(scores.shape[-1]) if sigmoid_bias else 0.0
        return MaskedSigmoid.apply(scores, allowed, b)
    if normalizer == "relu":
        return MaskedRelu.apply(scores, allowed)
    raise ValueError(f"attention: normalizer must be one of {NORMALIZERS}, got {normalizer!r}")


def additive_relevance(q, k, w1, w2, w):
    """α_ij = wᵀ tanh(W_1 q_i + W_2 k_j).  q (..., L, d_qk), k (..., S, d_qk) -> (..., L, S).

    W_1, W_2 are (d_hidden, d_qk) and w is (d_hidden,). The sum over hidden units forms a
    (..., L, S, d_hidden) tensor: fine for teaching sizes, quadratic in memory by nature.
    """
    hq = sh.unsqueeze(linalg.linear(q, w1), -2)  # (..., L, 1, H)
    hk = sh.unsqueeze(linalg.linear(k, w2), -3)  # (..., 1, S, H)
    return linalg.matmul(ew.tanh(hq + hk), w)  # (..., L, S)


def apply_mask(scores, allowed, attn_mask):
    """Fold an SDPA-style mask into (scores, allowed): a bool mask (True = may attend) narrows
    `allowed`; a float mask is added to the scores, its -inf entries also leaving `allowed`.
    `allowed` comes back on the scores' device."""
    allowed = on_device_of("attention", allowed, scores._array)
    if attn_mask is None:
        return scores, allowed
    mask = on_device_of("attention", attn_mask, scores._array)
    if mask.dtype == np.bool_:
        return scores, allowed & mask
    return ew.add(scores, mask.astype(scores.dtype)), allowed & (mask != -np.inf)


def allowed_positions(L, S, causal=False, window=None, device="cpu"):
    """(L, S) bool: i may attend to j unless causal (j > i) or outside the window (|i - j| > w): the
    masking rule's reference definition (backend_contract.attention_allowed) with offset 0.

    On device "cuda" the table is made once per (L, S, causal, window) and reused: it is never
    written to, and uploading it at every forward would stall the GPU's queue.
    """
    if device != "cpu":
        return _allowed_on_gpu(L, S, causal, window)
    return attention_allowed(L, S, causal, window)


@functools.lru_cache(maxsize=16)
def _allowed_on_gpu(L, S, causal, window):
    return move(allowed_positions(L, S, causal, window), "cuda")


__all__ = ["additive_relevance", "allowed_positions", "apply_mask", "MaskedRelu", "MaskedSigmoid", "MaskedSoftmax", "normalize_scores", "NORMALIZERS", "RELEVANCES"]  # noqa: E501
