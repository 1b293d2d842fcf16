"""Attention layers: the lecture's single head (SelfAttention) and PyTorch's MultiheadAttention, and the
key/value cache (KVCache) that lets a causal model generate one token at a time."""
from __future__ import annotations

import math
import weakref

import numpy as np

from .. import functional as F
from .. import runtime
from ..autograd import is_grad_enabled
from ..backend import backend_of, device_of
from ..creation import empty_parameter_data
from ..functional.attention import sdpa_with_offset, window_arg
from ..functional.attention import CausalBias, CausalVariant, causal_lower_right, causal_upper_left  # noqa: F401
from ..functional.attention_variants import NORMALIZERS, RELEVANCES
from ..functional.checks import on_device_of
from . import init
from .layers import Linear, probability_arg, size_arg
from .module import Module
from .parameter import Parameter
from ..tensor import Tensor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._typing import Device as DeviceLike, DType
    from ..tensor import Tensor

__all__ = [
    "KVCache", "LayerKVCache", "MultiheadAttention", "SelfAttention",
]


class SelfAttention(Module):
    """One self-attention head, as in Hung-Yi Lee's ML 2021 lecture.

    Every input vector a_i (length d_in, the lecture's n_a) gives
        q_i = W^q a_i,  k_i = W^k a_i  (length d_qk, the lecture's n_α),  v_i = W^v a_i (length d_v, n_b);
    the relevance α_ij of a_j to a_i ("dot": q_i·k_j / √d_qk, or "additive": wᵀ tanh(W_1 q_i + W_2 k_j)),
    normalised over j into α'_ij ("softmax", "sigmoid" with bias -log S, or "relu"), gives
        b_i = Σ_j α'_ij v_j.
    `causal` lets i see only j <= i; `window=w` only |i - j| <= w (the CNN-like receptive field).
    Dot + softmax runs the fused kernel unless the weights are asked for.

    Input (..., N, d_in) -> output (..., N, d_v); with need_weights also α' (..., N, N).
    """

    def __init__(self, d_in, d_qk, d_v, relevance="dot", normalizer="softmax", window=None, causal=False,
                 d_hidden=None, sigmoid_bias=True, dtype=None):
        super().__init__()
        if relevance not in RELEVANCES:
            raise ValueError(f"SelfAttention: relevance must be one of {RELEVANCES}, got {relevance!r}")
        if normalizer not in NORMALIZERS:
            raise ValueError(f"SelfAttention: normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
        window = window_arg("SelfAttention", window)
        d_in, d_qk, d_v = (size_arg("SelfAttention", name, n, minimum=1)
                           for name, n in (("d_in", d_in), ("d_qk", d_qk), ("d_v", d_v)))
        if d_hidden is not None:
            d_hidden = size_arg("SelfAttention", "d_hidden", d_hidden, minimum=1)
        self.d_in, self.d_qk, self.d_v = d_in, d_qk, d_v
        self.relevance, self.normalizer = relevance, normalizer
        self.window, self.causal, self.sigmoid_bias = window, causal, sigmoid_bias
        self.w_q = Linear(d_in, d_qk, bias=False, dtype=dtype)  # W^q
        self.w_k = Linear(d_in, d_qk, bias=False, dtype=dtype)  # W^k
        self.w_v = Linear(d_in, d_v, bias=False, dtype=dtype)  # W^v
        if relevance == "additive":
            d_hidden = d_hidden or d_qk
            self.w_1 = init.xavier_uniform_(Parameter(empty_parameter_data((d_hidden, d_qk), dtype)))
            self.w_2 = init.xavier_uniform_(Parameter(empty_parameter_data((d_hidden, d_qk), dtype)))
            bound = 1 / math.sqrt(d_hidden)
            self.w = init.uniform_(Parameter(empty_parameter_data((d_hidden,), dtype)), -bound, bound)

    def forward(self, a, attn_mask=None, need_weights=False):
        """a (..., N, d_in); attn_mask: bool (True = may attend) or float (added to α), (N, N) or broadcastable."""
        if a.ndim < 2 or a.shape[-1] != self.d_in:
            raise ValueError(f"SelfAttention: expected input (..., N, {self.d_in}), got {a.shape}")
        q, k, v = self.w_q(a), self.w_k(a), self.w_v(a)  # (..., N, d_qk), (..., N, d_qk), (..., N, d_v)
        if self.relevance == "dot" and self.normalizer == "softmax" and not need_weights:
            return F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=self.causal, window=self.window)
        n = a.shape[-2]
        if self.relevance == "dot":
            scores = (q @ k.mT) * (1.0 / math.sqrt(self.d_qk))  # α (..., N, N)
        else:
            scores = F.additive_relevance(q, k, self.w_1, self.w_2, self.w)
        allowed = F.allowed_positions(n, n, self.causal, self.window, device_of(a._array))
        scores, allowed = F.apply_mask(scores, allowed, attn_mask)
        weights = F.normalize_scores(scores, allowed, self.normalizer, self.sigmoid_bias)  # α'
        b = weights @ v
        return (b, weights) if need_weights else b

    def extra_repr(self):
        extra = f", window={self.window}" if self.window is not None else ""
        extra += ", causal=True" if self.causal else ""
        return (f"d_in={self.d_in}, d_qk={self.d_qk}, d_v={self.d_v}, relevance={self.relevance!r}, "
                f"normalizer={self.normalizer!r}{extra}")


class LayerKVCache:
    """One attention layer's cache: the keys and values of every position seen so far.

    key, value: (N, num_heads, S, head_dim) tensors (None while empty), the keys after any rotary
    rotation, each position at its own. MultiheadAttention.forward(..., kv_cache=c) appends the new
    positions with update() and attends to all of them. A cache belongs to the module that first
    filled it and to that batch size, head count and head size: anything else is an error, not a
    silently wrong result. Get one from an nn.KVCache (cache[i] for layer i), or make one for a
    single attention layer.
    """

    def __init__(self):
        self.key = None
        self.value = None
        self._owner = None  # weakref to the module that filled it
        self._buffers = None  # under no_grad: raw (N, H, capacity, D) arrays that key/value are views of

    @property
    def seq_len(self):
        """The number of cached positions (the position the next new token takes)."""
        return 0 if self.key is None else self.key.shape[-2]

    def update(self, key, value, owner=None):
        """Appends key, value (N, H, T, D) (T new positions) and returns all of them: (N, H, S + T, D) each.

        owner (a module, optional) must be the same on every call."""
        op = f"{type(owner).__name__ if owner is not None else 'LayerKVCache'}: kv_cache"
        if key.ndim != 4 or value.ndim != 4 or key.shape[:3] != value.shape[:3]:
            raise ValueError(f"{op}: expected key and value (N, H, T, D) with equal N, H, T, got {key.shape} and "
                             f"{value.shape}")
        if self.key is None:
            self._owner = None if owner is None else weakref.ref(owner)
            self.key, self.value, self._buffers = key, value, None
            return key, value
        if self._owner is not None and self._owner() is not owner:
            raise ValueError(f"{op} was filled by another module ({self._owner()!r}); a cache belongs to one "
                             "model and one sequence batch: make a new nn.KVCache() for each")
        n, h, s, d = self.key.shape
        if key.shape[0] != n:
            raise ValueError(f"{op} holds {s} positions for a batch of {n}, but the input is a batch of {key.shape[0]} "
                             "(a cache is for one batch; make a new nn.KVCache() or call reset())")
        if key.shape[1] != h or key.shape[3] != d or value.shape[3] != self.value.shape[3]:
            raise ValueError(f"{op}: the cached keys/values are {tuple(self.key.shape)}/{tuple(self.value.shape)} "
                             f"(N, heads, S, head_dim), the new ones {tuple(key.shape)}/{tuple(value.shape)}")
        if key.dtype != self.key.dtype or key.device != self.key.device:
            raise ValueError(f"{op}: cached keys are {self.key.dtype} on {self.key.device}, new ones {key.dtype} on "
                             f"{key.device}")
        if is_grad_enabled():  # recorded: the gradient reaches the cached keys' sources
            self._buffers = None
            self.key = F.cat([self.key, key], dim=2)  # (N, H, S + T, D)
            self.value = F.cat([self.value, value], dim=2)
        else:  # generation: written into buffers that grow by doubling, no copy of the cached positions
            self._append(key._array, value._array)
        return self.key, self.value

    def _append(self, k, v):
        """Writes k, v (N, H, T, D) at positions S .. S + T - 1 of the buffers (grown as needed, no copy of the
        cached positions otherwise); key and value then view them."""
        s, t = self.seq_len, k.shape[2]
        buffers = self._reserve(k.shape[0], k.shape[1], k.shape[3], v.shape[3], t, k.dtype, backend_of(k).xp)
        for buf, a in zip(buffers, (k, v)):
            buf[:, :, s : s + t] = a
        self._filled(None, s + t, buffers)

    # ---- shared with nn.TransformerEncoderLayer's fused decode step (CPU, no_grad), which writes the buffers ----
    def _fits(self, owner, n, h, d, dtype):
        """Whether the fused step may append to this cache: it is empty, or `owner` filled it with numpy
        (n, h, S, d) keys and values of `dtype`. Otherwise the op-by-op path runs (and update() says what
        is wrong, if anything is)."""
        if self.key is None:
            return True
        k, v = self.key, self.value
        return (self._owner is not None and self._owner() is owner and k.shape[0] == n and k.shape[1] == h
                and k.shape[3] == d and v.shape[:2] == k.shape[:2] and v.shape[3] == d and k.dtype == dtype
                and v.dtype == dtype and isinstance(k._array, np.ndarray) and isinstance(v._array, np.ndarray))

    def _reserve(self, n, h, dk, dv, t, dtype, xp=np):
        """Key and value buffers (n, h, capacity, dk / dv) holding the S cached positions with room for t more
        at S .. S + t - 1: the current ones when they have room, else new ones of capacity 2 (S + t) (at least
        16) with the S positions copied in. The caller writes them, then calls _filled(owner, S + t, buffers);
        new buffers are adopted only then, so a write that fails leaves the cache as it was."""
        s = self.seq_len
        if self._buffers is not None and self._buffers[0].shape[2] >= s + t:
            return self._buffers
        cap = max(2 * (s + t), 16)
        buffers = (xp.empty((n, h, cap, dk), dtype=dtype), xp.empty((n, h, cap, dv), dtype=dtype))
        if s:
            buffers[0][:, :, :s] = self.key._array
            buffers[1][:, :, :s] = self.value._array
        return buffers

    def _filled(self, owner, length, buffers):
        """key, value: the first `length` positions of `buffers` (from _reserve, now written); `owner` fills
        an empty cache."""
        if self.key is None:
            self._owner = weakref.ref(owner)
        self._buffers = buffers
        k, v = buffers
        self.key, self.value = Tensor._wrap(k[:, :, :length]), Tensor._wrap(v[:, :, :length])

    def reset(self):
        """Empties the cache (it may then serve another module or batch size)."""
        self.key = self.value = self._owner = self._buffers = None

    def __repr__(self):
        shape = None if self.key is None else tuple(self.key.shape)
        return f"LayerKVCache(seq_len={self.seq_len}, key shape={shape})"


class KVCache:
    """The key/value cache of a causal model: one LayerKVCache per attention layer, made on first use.

        cache = nn.KVCache()
        logits = model(prompt, kv_cache=cache)        # (N, T, V): caches the T prompt positions
        logits = model(next_tokens, kv_cache=cache)   # (N, 1, V): one new position attends to all

    Inside the model, cache[i] is layer i's LayerKVCache (nn.TransformerEncoder passes them on
    itself), and cache.seq_len, read before the layers run, is the position offset of the new tokens
    for the positional encodings (pos(x, offset=cache.seq_len)). It holds HF's DynamicCache's role.
    """

    def __init__(self):
        self.layers = []

    def __getitem__(self, i):
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or i < 0:
            raise TypeError(f"KVCache: layer index must be a non-negative int, got {i!r}")
        while len(self.layers) <= i:
            self.layers.append(LayerKVCache())
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    @property
    def seq_len(self):
        """The number of cached positions: the offset of the next new token's position."""
        lengths = {layer.seq_len for layer in self.layers}
        if len(lengths) > 1:
            raise ValueError(f"KVCache: its layers hold different numbers of positions {sorted(lengths)} (a forward "
                             "was interrupted, or layers were used out of step); make a new nn.KVCache()")
        return lengths.pop() if lengths else 0

    def reset(self):
        self.layers = []

    def __repr__(self):
        return f"KVCache(layers={len(self.layers)}, seq_len={self.seq_len})"


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: same signature, parameters, initialisation, masks and returns.

    Each head h projects q, k, v to embed_dim / num_heads with its rows of the in-projection,
    attends, and the heads' outputs are concatenated and mixed by W^o (out_proj).

    The constructor takes PyTorch's arguments in PyTorch's order; add_bias_kv and
    add_zero_attn must stay False. Masks follow PyTorch's MultiheadAttention (the opposite of SDPA's boolean
    convention):
    a boolean attn_mask (L, S) or (N·num_heads, L, S) or key_padding_mask (N, S) is True where
    attention is NOT allowed; float masks are added to the scores. Differences from PyTorch:
    is_causal=True without an attn_mask applies the causal mask (PyTorch asks for both), and a
    query whose keys are all masked gets output 0 rather than NaN.

    Two additions of tinyattn's, both keyword-only:
    * rotary=nn.RotaryEmbedding(head_dim, max_len) rotates every head's queries and keys (RoPE) before
      attending; it has no parameters, so the state_dict is PyTorch's.
    * forward(..., is_causal=True, kv_cache=c) with a LayerKVCache c (cache[i] of an nn.KVCache) for causal
      self-attention one step at a time: the T new positions' keys and values are appended to c, and the T
      new queries attend to all S cached positions with the causal mask aligned to the bottom-right
      (new query t sits at position S - T + t and sees keys <= that), so the outputs equal those of the
      same rows of a forward over the whole sequence. attn_mask is then (T, S), key_padding_mask (N, S).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: DeviceLike = None, dtype: DType = None, *,
                 rotary: Any = None) -> None:
        super().__init__()
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not implemented")
        if device not in (None, "cpu"):
            raise ValueError(f"MultiheadAttention: only device='cpu' is available, got {device!r}")
        for name, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)):
                raise TypeError(f"MultiheadAttention: {name} must be an int, got {n!r}")
        embed_dim, num_heads = int(embed_dim), int(num_heads)
        if embed_dim <= 0 or num_heads <= 0:  # PyTorch's check and wording
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got embed_dim={embed_dim} "
                             f"and num_heads={num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else size_arg("MultiheadAttention", "kdim", kdim)
        self.vdim = embed_dim if vdim is None else size_arg("MultiheadAttention", "vdim", vdim)
        self.dropout = probability_arg("MultiheadAttention", "dropout", dropout)
        self.batch_first = batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        e = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty_parameter_data((3 * e, e), dtype))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(empty_parameter_data((e, e), dtype))
            self.k_proj_weight = Parameter(empty_parameter_data((e, self.kdim), dtype))
            self.v_proj_weight = Parameter(empty_parameter_data((e, self.vdim), dtype))
        if bias:
            self.in_proj_bias = Parameter(empty_parameter_data((3 * e,), dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, dtype=dtype)
        if rotary is not None:
            from .positional import RotaryEmbedding

            if not isinstance(rotary, RotaryEmbedding):
                raise TypeError(f"MultiheadAttention: rotary must be an nn.RotaryEmbedding or None, got "
                                f"{type(rotary).__name__}")
            if rotary.head_dim != self.head_dim:
                raise ValueError(f"MultiheadAttention: rotary has head_dim {rotary.head_dim}, but embed_dim "
                                 f"{embed_dim} / num_heads {num_heads} = {self.head_dim}")
        self.rotary = rotary
        self._reset_parameters()

    def _reset_parameters(self):
        # PyTorch's: xavier-uniform in-projection(s), zero biases; out_proj.weight keeps Linear's init.
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False, *, kv_cache: Any = None) -> tuple[Tensor, Tensor | None]:
        """query (L, N, E) (or (N, L, E) with batch_first, or unbatched (L, E)); key (S, N, kdim), value (S, N, vdim).

        Returns (attn_output shaped like query, attn_weights or None); the weights are
        (N, L, S) averaged over heads, or (N, num_heads, L, S) with average_attn_weights=False.
        With kv_cache (a LayerKVCache, is_causal=True, key and value the same L new positions as the
        query), S is the number of cached positions after appending the L new ones.
        """
        batched = query.ndim == 3
        self._check_inputs(query, key, value, batched)
        if kv_cache is not None:
            self._check_cache(kv_cache, query, key, is_causal, batched)
        self_attention = query is key and key is value  # before the transposes make new objects
        if not batched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, L, _ = query.shape  # (N, L, E) from here on
        if not need_weights and kv_cache is None:  # the fused kernel will run: a cold start compiles it meanwhile
            self._expect_fused(query, L)
        q, k, v = self._project(query, key, value, self_attention)  # (N, H, L, D), (N, H, S, D), (N, H, S, D)
        offset = 0 if kv_cache is None else kv_cache.seq_len  # position of the first new row
        if self.rotary is not None:
            q, k = self.rotary(q, k, offset=offset)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v, owner=self)  # (N, H, S, D): cached positions, then the new ones
        S = k.shape[2]
        mask = self._merge_masks(attn_mask, key_padding_mask, n, L, S, q._array, batched)
        dropout_p = self.dropout if self.training else 0.0
        # with a cache the causal mask is aligned to the bottom-right: new query t sits at position S - L + t
        causal_offset = S - L if kv_cache is not None else 0
        if need_weights:
            out, weights = F.attention_composite(q, k, v, mask, is_causal, dropout_p=dropout_p, return_weights=True,
                                                 causal_offset=causal_offset)
        else:
            out, weights = sdpa_with_offset(q, k, v, mask, dropout_p, is_causal, None, None, causal_offset), None
        out = self.out_proj(out.transpose(1, 2).reshape(n, L, self.embed_dim))  # concat heads, then W^o
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if weights is not None:
            if average_attn_weights:
                weights = weights.mean(dim=1)
            if not batched:
                weights = weights.squeeze(0)
        return out, weights

    def _expect_fused(self, query, L=None):
        """Before the projections: on a cold start, the fused attention kernels a call on `query` (as forward takes
        it; L: its length, when known) will run start compiling in a second process (runtime.expect_attention;
        nothing when warm, under dropout, or off the CPU)."""
        if self.training and self.dropout > 0.0:  # the composite path runs
            return
        if L is None:
            L = query.shape[1 if self.batch_first and query.ndim == 3 else 0]
        w = self.in_proj_weight if self.in_proj_weight is not None else self.q_proj_weight
        runtime.expect_attention(getattr(query, "_array", None), getattr(w, "_array", None), L)

    def _project(self, query, key, value, self_attention):
        e, h, d = self.embed_dim, self.num_heads, self.head_dim
        b = self.in_proj_bias
        if self._qkv_same_embed_dim and self_attention:
            qkv = F.linear(query, self.in_proj_weight, b)  # one product for the three projections
            n, L, _ = qkv.shape
            qkv = qkv.reshape(n, L, 3, h, d).permute(2, 0, 3, 1, 4)  # (3, N, H, L, D)
            return qkv.unbind(0)
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

        def heads(x, weight, bias):
            y = F.linear(x, weight, bias)  # (N, T, E)
            return y.reshape(y.shape[0], y.shape[1], h, d).transpose(1, 2)  # (N, H, T, D)

        return heads(query, wq, bq), heads(key, wk, bk), heads(value, wv, bv)

    def _merge_masks(self, attn_mask, key_padding_mask, n, L, S, like, batched):
        """One SDPA mask (bool True = may attend, or additive float) broadcastable to (N, H, L, S),
        on the device (and, when float, of the dtype) of the array `like`."""
        dtype = like.dtype
        parts = []
        if attn_mask is not None:
            m = self._mask("attn_mask", attn_mask, like)
            if m.shape == (L, S):
                parts.append(m)
            elif m.shape == (n * self.num_heads, L, S) or (not batched and m.shape == (self.num_heads, L, S)):
                parts.append(m.reshape(n, self.num_heads, L, S))
            else:
                raise ValueError(
                    f"MultiheadAttention: attn_mask of shape {m.shape} should be ({L}, {S}) or "
                    f"({n * self.num_heads}, {L}, {S})"
                )
        if key_padding_mask is not None:
            m = self._mask("key_padding_mask", key_padding_mask, like)
            expected = (n, S) if batched else (S,)
            if m.shape != expected:
                raise ValueError(f"MultiheadAttention: key_padding_mask of shape {m.shape} should be {expected}")
            parts.append(m.reshape(n, 1, 1, S))
        for m in parts:
            if m.dtype != np.bool_ and m.dtype.kind != "f":
                raise TypeError(f"MultiheadAttention: masks must be bool or float, got dtype {m.dtype}")
        if not parts:
            return None
        if all(m.dtype == np.bool_ for m in parts):
            allowed = ~parts[0]
            for m in parts[1:]:
                allowed = allowed & ~m
            return allowed
        bias = np.zeros((), dtype)
        for m in parts:
            bias = bias + (np.where(m, np.asarray(-np.inf, dtype), np.zeros((), dtype)) if m.dtype == np.bool_
                           else m.astype(dtype))
        return bias

    @staticmethod
    def _mask(name, mask, like):
        """A mask as an array on the device of `like`: bool, or float of like's dtype (PyTorch refuses others)."""
        m = on_device_of("MultiheadAttention", mask, like)
        if m.dtype != np.bool_ and m.dtype.kind != "f":
            raise TypeError(f"MultiheadAttention: masks must be bool or float, got dtype {m.dtype} for {name}")
        if m.dtype.kind == "f" and m.dtype != like.dtype:
            raise TypeError(f"MultiheadAttention: {name} dtype {m.dtype} differs from the query's {like.dtype}; "
                            "a float mask must match the query's dtype (as in PyTorch)")
        return m

    def _check_cache(self, kv_cache, query, key, is_causal, batched):
        if isinstance(kv_cache, KVCache):
            raise TypeError("MultiheadAttention: kv_cache must be one layer's cache, an nn.LayerKVCache (kv_cache[i] "
                            "of an nn.KVCache), not the whole nn.KVCache")
        if not isinstance(kv_cache, LayerKVCache):
            raise TypeError(f"MultiheadAttention: kv_cache must be an nn.LayerKVCache, got {type(kv_cache).__name__}")
        if not is_causal:
            raise ValueError("MultiheadAttention: kv_cache needs is_causal=True: without the causal mask an earlier "
                             "position's output depends on later tokens, so cached keys and values would be stale")
        seq_axis = 1 if (batched and self.batch_first) else 0
        if query.shape[seq_axis] != key.shape[seq_axis]:
            raise ValueError(f"MultiheadAttention: with kv_cache, key and value are the new positions of the query "
                             f"(self-attention): query {query.shape}, key {key.shape}")
        if not self._qkv_same_embed_dim:
            raise ValueError("MultiheadAttention: kv_cache is for self-attention (kdim = vdim = embed_dim)")

    def _check_inputs(self, query, key, value, batched):
        ndim = 3 if batched else 2
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a tensor, got {type(t).__name__}")
        shapes = f"query {query.shape}, key {key.shape}, value {value.shape}"
        dtypes = {t.dtype for t in (query, key, value)}
        param = self.out_proj.weight.dtype
        if len(dtypes) > 1 or dtypes != {param}:
            raise TypeError(f"MultiheadAttention: query, key and value are {query.dtype}, {key.dtype} and "
                            f"{value.dtype}; "
                            f"the parameters are {param} (convert the inputs, or the module with .to())")
        if any(t.ndim != ndim for t in (query, key, value)):
            raise ValueError(f"MultiheadAttention: query, key and value must all be {ndim}-D: {shapes}")
        for name, t, dim in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != dim:
                raise ValueError(f"MultiheadAttention: {name} feature size {t.shape[-1]} != {dim}: {shapes}")
        seq_axis = 1 if (batched and self.batch_first) else 0
        if key.shape[seq_axis] != value.shape[seq_axis]:
            raise ValueError(f"MultiheadAttention: key and value lengths differ: {shapes}")
        if batched:
            batch_axis = 0 if self.batch_first else 1
            if not (query.shape[batch_axis] == key.shape[batch_axis] == value.shape[batch_axis]):
                raise ValueError(f"MultiheadAttention: batch sizes differ: {shapes}")

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")
