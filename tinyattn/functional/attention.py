"""Scaled dot-product attention: one fused Function, and the same math from primitive ops.

In the lecture's notation, for each query q_i and the keys k_j and values v_j:
    α_ij  = scale · q_i · k_j  (+ bias_ij; -inf where i may not attend to j)
    α'_ij = softmax_j(α_ij)
    b_i   = Σ_j α'_ij v_j
or, as matrices: S = scale·QKᵀ + bias, P = softmax(S) row-wise, O = P V.

Backward (derived step by step in docs/backprop.md), with D_i = Σ_e dO_ie O_ie = Σ_j dP_ij P_ij:
    dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP - D),   dQ = scale · dS K,   dK = scale · dSᵀ Q

Masks (PyTorch's SDPA conventions): a boolean attn_mask's True means "may attend"; a float
mask is added to the scores; is_causal keeps j <= i (top-left aligned); window=w (tinyattn's
CNN-like receptive field) keeps |i - j| <= w. A query row with every key masked yields
output 0 and gradient 0, never NaN (PyTorch's SDPA returns NaN there).

Causal alignment when L != S. PyTorch's is_causal=True aligns the mask to the top-left corner:
query i sees keys j <= i, whatever S is, and tinyattn keeps that meaning. A key/value cache needs
the other one, the bottom-right corner: the L new queries are the last L positions of the S keys,
so query i sits at position i + (S - L) and sees keys j <= i + S - L. Pass
attn_mask=causal_lower_right(L, S) for that (PyTorch's torch.nn.attention.bias.causal_lower_right,
same name and meaning); causal_upper_left(L, S) is is_causal=True. Both run the fused kernel
without forming an L×S mask, and `window` is measured from the same aligned query positions.
"""
import enum
import math
import numbers

import numpy as np

from ..autograd import Function, Variable
from ..backend import backend_of, device_of, move
from ..backend_contract import attention_allowed
from . import elementwise as ew, linalg, shape as sh
from .attention_variants import allowed_positions, apply_mask
from .checks import check_float, on_device_of
from .dropout import dropout
from .softmax import softmax


class CausalVariant(enum.Enum):
    """Where a causal mask's diagonal starts when L != S (PyTorch's torch.nn.attention.bias.CausalVariant)."""
    UPPER_LEFT = 1   # query i sees keys j <= i (is_causal=True)
    LOWER_RIGHT = 2  # query i sees keys j <= i + S - L (the last query sees every key: a KV cache)


class CausalBias:
    """A causal mask of a given alignment, passed as SDPA's attn_mask (PyTorch's CausalBias).

    Made by causal_upper_left(L, S) or causal_lower_right(L, S). The fused kernel applies it from the
    positions alone; materialize() gives the (L, S) bool table (True = may attend) for inspection.
    """

    def __init__(self, variant, seq_len_q, seq_len_kv):
        if not isinstance(variant, CausalVariant):
            raise TypeError(f"CausalBias: variant must be a CausalVariant, got {variant!r}")
        for name, n in (("seq_len_q", seq_len_q), ("seq_len_kv", seq_len_kv)):
            if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"CausalBias: {name} must be a non-negative int, got {n!r}")
        self.variant, self.seq_len_q, self.seq_len_kv = variant, int(seq_len_q), int(seq_len_kv)

    @property
    def offset(self):
        """The key position of query row 0: query i sees keys j <= i + offset."""
        return self.seq_len_kv - self.seq_len_q if self.variant is CausalVariant.LOWER_RIGHT else 0

    def materialize(self, device="cpu"):
        return allowed_aligned(self.seq_len_q, self.seq_len_kv, True, None, self.offset, device)

    def __repr__(self):
        return f"CausalBias({self.variant.name}, seq_len_q={self.seq_len_q}, seq_len_kv={self.seq_len_kv})"


def causal_upper_left(*size):
    """causal_upper_left(L, S): query i sees keys j <= i (the same mask as is_causal=True)."""
    return CausalBias(CausalVariant.UPPER_LEFT, *_causal_size("causal_upper_left", size))


def causal_lower_right(*size):
    """causal_lower_right(L, S): query i sees keys j <= i + S - L, so the last query sees every key.

    The mask a key/value cache needs: L new queries after S - L cached positions.
    """
    return CausalBias(CausalVariant.LOWER_RIGHT, *_causal_size("causal_lower_right", size))


def _causal_size(op, size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if len(size) != 2:
        raise ValueError(f"{op}: expected two sizes (seq_len_q, seq_len_kv), got {size!r}")
    return size


def allowed_aligned(L, S, causal, window, offset, device="cpu"):
    """(L, S) bool: may query row i (at key position i + offset) attend to key j under causal/window (the
    reference definition, backend_contract.attention_allowed; on a GPU a slice of the cached table)."""
    if device == "cpu":
        return attention_allowed(L, S, causal, window, offset)
    if offset >= 0:  # the last L rows of the (cached) top-left table for L + offset queries
        return allowed_positions(L + offset, S, causal, window, device)[offset:]
    return move(attention_allowed(L, S, causal, window, offset), device)


class ScaledDotProductAttention(Function):
    """The fused, tiled kernel: never holds an L×S matrix; saves O and the row logsumexp.

    causal and window count query row i as key position i + offset (0: top-left, S - L: bottom-right).
    """

    # each backend's attention_backward returns new arrays, one per input (on the CPU possibly side by side in
    # one new buffer, but never sharing an element): a leaf's .grad takes them without a copy
    fresh_grads = True

    @staticmethod
    def forward(ctx, q, k, v, bias, causal, window, scale, offset=0):
        # q (..., L, E), k (..., S, E), v (..., S, Ev) with equal batch dims (any strides); bias (Bb, Lb, Sb),
        # each axis 1 or full (BH, L, S), or None
        batch = q.shape[:-2]
        bh = math.prod(batch)
        ctx.shapes = (q.shape, k.shape, v.shape)
        if bh == 0:  # an empty batch: nothing to compute, and the kernels split work per batch row
            ctx.empty = True
            return backend_of(q).xp.zeros(batch + (q.shape[-2], v.shape[-1]), dtype=q.dtype)
        ctx.empty = False
        # q, k, v go to the backend as they are, batch dims and strides included: reshaping them to
        # (BH, L, E) would copy the usual strided views (the q, k, v of a fused qkv projection)
        out, lse = backend_of(q).attention_forward(q, k, v, bias, causal, window, scale, offset)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (bias, causal, window, scale, offset)
        return out.reshape(batch + out.shape[-2:])

    @staticmethod
    def backward(ctx, dout):
        if ctx.empty:
            xp = backend_of(dout).xp
            return tuple(xp.zeros(s, dtype=dout.dtype) for s in ctx.shapes) + (None,) * 5
        q, k, v, out, lse = ctx.saved
        bias, causal, window, scale, offset = ctx.args
        # dout (..., L, Ev) as it arrives (often a transposed view): the backend reads it in place
        dq, dk, dv = backend_of(dout).attention_backward(q, k, v, bias, causal, window, scale, out, lse, dout, offset)
        sq, sk, sv = ctx.shapes
        return dq.reshape(sq), dk.reshape(sk), dv.reshape(sv), None, None, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dout):
        """The backward above with recorded ops, for create_graph=True. The fused kernel never forms P, so this
        runs the composite twin's math (attention_composite) in tensor ops and writes its derivative out:
            S = scale·QKᵀ + bias,  P = MaskedSoftmax(S) over the allowed keys (the masking rule of
            backend_contract.attention_allowed with causal/window/offset, and a -inf bias entry masks too;
            fully masked rows give P = 0),
            dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP - Σ_j dP ∘ P),  dQ = scale·dS K,  dK = scale·dSᵀ Q
        with P recomputed from the differentiable q and k (matmul, MaskedSoftmax), so that every term is
        differentiated again; an input that needs no gradient is a constant made from what forward saved.
        It holds L×S tensors (the twin's memory, not the kernel's): fine for second derivatives of small models."""
        from ..autograd.function import constant
        from .attention_variants import MaskedSoftmax

        if ctx.empty:
            return tuple(constant(dout, backend_of(dout._array).xp.zeros(s, dtype=dout._array.dtype))
                         for s in ctx.shapes) + (None,) * 5
        q_in, k_in, v_in = inputs[:3]
        q_saved, k_saved, v_saved = ctx.saved[:3]
        bias, causal, window, scale, offset = ctx.args
        q = q_in if q_in is not None else constant(dout, q_saved)
        k = k_in if k_in is not None else constant(dout, k_saved)
        v = v_in if v_in is not None else constant(dout, v_saved)
        batch, L, S = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2]
        allowed = allowed_aligned(L, S, causal, window, offset, device_of(q._array))  # (L, S)
        scores = linalg.matmul(q, k.mT) * scale  # (..., L, S)
        if bias is not None:
            b = bias.reshape(bias.shape[-2:] if bias.shape[0] == 1 else batch + bias.shape[-2:])
            allowed = allowed & (b != -np.inf)
            scores = scores + np.where(b == -np.inf, np.zeros((), b.dtype), b)  # masked entries: P = 0 anyway
        p = MaskedSoftmax.apply(scores, np.broadcast_to(allowed, tuple(scores.shape)))
        dq = dk = dv = None
        if v_in is not None:
            dv = linalg.matmul(p.mT, dout)
        if q_in is not None or k_in is not None:
            dp = linalg.matmul(dout, v.mT)
            ds = p * (dp - (dp * p).sum(-1, keepdim=True))
            if q_in is not None:
                dq = linalg.matmul(ds, k) * scale
            if k_in is not None:
                dk = linalg.matmul(ds.mT, q) * scale
        return dq, dk, dv, None, None, None, None, None


def scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, *, window=None
):
    """PyTorch's F.scaled_dot_product_attention (same argument order), plus `window`.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). Batch dims
    broadcast. scale defaults to 1/√E. With dropout_p > 0 the composite path runs (dropout
    acts on the attention weights, which the fused kernel never forms).

    is_causal=True is PyTorch's top-left alignment (query i sees keys j <= i, also when L != S);
    attn_mask=causal_lower_right(L, S) is the bottom-right one a key/value cache needs (query i
    sees keys j <= i + S - L), as in PyTorch.
    """
    attn_mask, is_causal, offset = _causal_bias_arg(attn_mask, is_causal, query, key)
    return sdpa_with_offset(query, key, value, attn_mask, dropout_p, is_causal, scale, window, offset)


def _causal_bias_arg(attn_mask, is_causal, query, key):
    """A CausalBias attn_mask as (None, True, its offset); anything else passes through with offset 0."""
    if not isinstance(attn_mask, CausalBias):
        return attn_mask, is_causal, 0
    op = "scaled_dot_product_attention"
    if is_causal:
        raise ValueError(f"{op}: attn_mask is a CausalBias ({attn_mask!r}), so is_causal must be False "
                         "(the CausalBias already says which causal mask; PyTorch refuses both too)")
    L, S = (t.shape[-2] if isinstance(t, Variable) and t.ndim >= 2 else None for t in (query, key))
    if (L, S) != (attn_mask.seq_len_q, attn_mask.seq_len_kv):
        raise ValueError(f"{op}: {attn_mask!r} does not match query length {L} and key length {S}")
    return None, True, attn_mask.offset


def sdpa_with_offset(query, key, value, attn_mask, dropout_p, is_causal, scale, window, offset):
    """scaled_dot_product_attention with the causal/window alignment explicit: query row i at key
    position i + offset (0: PyTorch's top-left is_causal; S - L: bottom-right, for a key/value cache).

    For the library's own modules (nn.MultiheadAttention's cached decode); not public API, not in __all__."""
    op = "scaled_dot_product_attention"
    if not isinstance(dropout_p, numbers.Real) or isinstance(dropout_p, (bool, np.bool_)):
        raise TypeError(f"{op}: dropout_p must be a number, got {type(dropout_p).__name__}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    q, k, v, scale, window = _check_attention_inputs(query, key, value, attn_mask, scale, window)
    if dropout_p > 0.0:
        return attention_composite(q, k, v, attn_mask, is_causal, scale, window=window, dropout_p=dropout_p,
                                   causal_offset=offset)
    batch = q.shape[:-2]
    bias = attention_bias(attn_mask, batch, q._array)
    return ScaledDotProductAttention.apply(q, k, v, bias, bool(is_causal), window, float(scale), int(offset))


def attention_composite(
    query, key, value, attn_mask=None, is_causal=False, scale=None, *, window=None, dropout_p=0.0,
    return_weights=False, causal_offset=0,
):
    """The reference path: the same attention from matmul, masked_fill and softmax.

    It materialises S and P (L×S each). Fully masked rows give 0, as in the fused kernel:
    their scores are replaced by 0 before the softmax and their weights zeroed after it.
    attn_mask may be a CausalBias as in scaled_dot_product_attention; causal_offset places query
    row i at key position i + causal_offset for is_causal and window (see sdpa_with_offset).
    """
    if isinstance(attn_mask, CausalBias):
        attn_mask, is_causal, causal_offset = _causal_bias_arg(attn_mask, is_causal, query, key)
    q, k, v, scale, window = _check_attention_inputs(query, key, value, attn_mask, scale, window)
    L, S = q.shape[-2], k.shape[-2]
    scores = linalg.matmul(q, sh.transpose(k, -2, -1)) * scale  # (..., L, S)
    allowed = allowed_aligned(L, S, is_causal, window, causal_offset, device_of(q._array))  # (L, S) bool
    scores, allowed = apply_mask(scores, allowed, attn_mask)
    allowed = np.broadcast_to(allowed, np.broadcast_shapes(allowed.shape, scores.shape))
    dead = ~allowed.any(axis=-1, keepdims=True)  # rows with no key to attend to
    scores = ew.masked_fill(scores, ~allowed, -np.inf)
    scores = ew.masked_fill(scores, dead, 0.0)  # a finite row keeps the softmax NaN-free...
    weights = ew.masked_fill(softmax(scores, -1), ~allowed, 0.0)  # ...and is zeroed here, (..., L, S)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)  # returned after dropout, as PyTorch's MHA does
    out = linalg.matmul(weights, v)
    return (out, weights) if return_weights else out


def attention_bias(attn_mask, batch, q):
    """An additive float bias (Bb, Lb, Sb) on q's device, each axis 1 or full (BH, L, S), or None.

    A bool mask becomes 0 (may attend) / -inf (masked). The mask is not copied over the batch
    dims it lacks, nor over L or S where it has size 1 (the kernels broadcast size-1 axes); it
    is copied only when it has its own batch dims (a key-padding mask, (B, 1, 1, S) -> (B·H, 1, S)).
    """
    if attn_mask is None:
        return None
    dtype = q.dtype
    mask = on_device_of("scaled_dot_product_attention", attn_mask, q)
    if mask.dtype == np.bool_:
        bias = np.where(mask, np.zeros((), dtype), np.asarray(-np.inf, dtype))
    else:
        bias = mask.astype(dtype, copy=False)
    bias = bias.reshape((1,) * (len(batch) + 2 - bias.ndim) + bias.shape)
    lm, sm = bias.shape[-2:]
    if all(n == 1 for n in bias.shape[:-2]):
        return bias.reshape(1, lm, sm)
    bh = math.prod(batch)
    return np.broadcast_to(bias, batch + (lm, sm)).reshape(bh, lm, sm)  # reshaping a broadcast view copies


def window_arg(op, window):
    """`window` (None, or an integer-valued number >= 0) as None or an int."""
    if window is None:
        return None
    if not isinstance(window, numbers.Real) or isinstance(window, (bool, np.bool_)):
        raise TypeError(f"{op}: window must be a non-negative integer, got {window!r}")
    if not (math.isfinite(window) and int(window) == window and window >= 0):
        raise ValueError(f"{op}: window must be a non-negative integer, got {window!r}")
    return int(window)


def _check_attention_inputs(query, key, value, attn_mask, scale, window):
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Variable):
            raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} needs at least 2 dims (..., length, dim), got shape {t.shape}")
    check_float(op, query._array, key._array, value._array)
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"{op}: dtypes differ: query {query.dtype}, key {key.dtype}, value {value.dtype}")
    shapes = f"query {query.shape}, key {key.shape}, value {value.shape}"
    if query.shape[-1] == 0:
        raise ValueError(f"{op}: the head dim E must be positive: {shapes}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"{op}: query and key head dims differ ({query.shape[-1]} vs {key.shape[-1]}): {shapes}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: key and value lengths differ ({key.shape[-2]} vs {value.shape[-2]}): {shapes}")
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dims do not broadcast: {shapes}") from None
    L, S = query.shape[-2], key.shape[-2]
    if attn_mask is not None:
        mask = on_device_of(op, attn_mask, query._array)
        if isinstance(attn_mask, Variable) and attn_mask.requires_grad:
            raise TypeError(f"{op}: attn_mask must not require grad (tinyattn does not differentiate masks)")
        if mask.dtype != np.bool_ and mask.dtype.kind != "f":
            raise TypeError(f"{op}: attn_mask must be bool or float, got dtype {mask.dtype}")
        if mask.dtype.kind == "f" and mask.dtype != query.dtype:
            raise TypeError(f"{op}: attn_mask dtype {mask.dtype} differs from the query's {query.dtype}; "
                            "a float mask must match the query's dtype (as in PyTorch)")
        full = batch + (L, S)
        try:
            fits = np.broadcast_shapes(mask.shape, full) == full
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{op}: attn_mask of shape {mask.shape} does not broadcast to {full} ({shapes})")
    window = window_arg(op, window)
    if scale is not None and (not isinstance(scale, numbers.Real) or isinstance(scale, (bool, np.bool_))):
        raise TypeError(f"{op}: scale must be a number, got {type(scale).__name__}")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    q, k, v = (sh.expand(t, batch + t.shape[-2:]) if t.shape[:-2] != batch else t for t in (query, key, value))
    return q, k, v, scale, window


__all__ = ["allowed_aligned", "attention_bias", "attention_composite", "causal_lower_right", "causal_upper_left", "CausalBias", "CausalVariant", "scaled_dot_product_attention", "ScaledDotProductAttention", "window_arg"]  # noqa: E501
