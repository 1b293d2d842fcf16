"""A pre-norm Transformer encoder layer and the encoder that stacks copies of it, with PyTorch's
TransformerEncoderLayer and TransformerEncoder names."""
import copy
import functools

import numpy as np

from .. import autograd
from .. import functional as F
from ..backend import backend_of
from ..tensor import Tensor
from .attention import KVCache, LayerKVCache, MultiheadAttention
from .containers import ModuleList
from .layers import Dropout, LayerNorm, Linear
from .module import Module

# The fused decode step (TransformerEncoderLayer._decode): tests switch it off to hold it to the op-by-op path.
_FUSED_DECODE = True
# It takes at most this many new rows (batch x positions): its products are matrix-vector ones, row after row,
# and from about 64-96 rows (d_model 128, ff 512, one thread) the op-by-op path's packed, threaded products win.
_DECODE_MAX_ROWS = 64


class TransformerEncoderLayer(Module):
    """x + SA(LN(x)), then + FF(LN(·)) (norm_first=True, the pre-norm layout), or post-norm.

        h = x + dropout1(self_attn(norm1(x)))
        y = h + dropout2(linear2(dropout(activation(linear1(norm2(h))))))

    Parameter names match torch.nn.TransformerEncoderLayer, so weights move between the two.
    `causal=True` masks future positions in every call (or pass is_causal to forward).
    The activation defaults to GELU in its tanh form ("gelu"); "relu" is PyTorch's default.
    rotary=nn.RotaryEmbedding(d_model // nhead, max_len) gives the attention RoPE (see
    MultiheadAttention). A causal layer takes forward(x, kv_cache=c), c an nn.LayerKVCache: x holds only
    the new positions, which attend to every cached one (generation one token at a time).

    Fused decode step: with a cache, under no_grad, on the CPU, the whole layer runs as one kernel call
    (kernels/cpu/decode.py; PyTorch's encoder-layer fast path plays the same role) when that is the same
    computation as the op-by-op path: no dropout in effect (eval mode or p = 0), no masks, no rotary,
    float32/float64, stock submodules with no hooks (on the submodules: the layer's own hooks run either
    way) and their stock methods (none replaced on the instance or the class), an nn.LayerKVCache itself
    (a subclass may change update()), no profiler or viz.record watching, and at most 64 new rows
    (batch x positions; a longer prompt is faster op by op). Anything else runs op by op. Not seen: a
    replaced function such as F.gelu.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="gelu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=True, causal=False, dtype=None, *, rotary=None):
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise ValueError(f"TransformerEncoderLayer: activation must be 'gelu' or 'relu', got {activation!r}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first, dtype=dtype,
                                            rotary=rotary)
        self.linear1 = Linear(d_model, dim_feedforward, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.norm_first, self.causal = norm_first, causal

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=None, *, kv_cache=None):
        causal = self.causal if is_causal is None else is_causal
        if kv_cache is not None and not causal:
            raise ValueError("TransformerEncoderLayer: kv_cache needs a causal layer (causal=True or is_causal=True): "
                             "without the causal mask earlier positions depend on later ones and cannot be cached")
        if isinstance(kv_cache, KVCache):
            raise TypeError("TransformerEncoderLayer: kv_cache must be this layer's nn.LayerKVCache (kv_cache[i] of "
                            "an nn.KVCache); nn.TransformerEncoder takes the whole nn.KVCache")
        if kv_cache is not None and _FUSED_DECODE:
            fused = self._decode_arrays(src, src_mask, src_key_padding_mask, kv_cache)
            if fused is not None:
                return self._decode(src, *fused, kv_cache)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, causal, kv_cache)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, causal, kv_cache))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, causal, kv_cache=None):
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                need_weights=False, is_causal=causal, kv_cache=kv_cache)
        return self.dropout1(out)

    def _ff_block(self, x):
        act = F.gelu if self.activation == "gelu" else F.relu
        return self.dropout2(self.linear2(self.dropout(act(self.linear1(x)))))

    def _decode_arrays(self, src, src_mask, src_key_padding_mask, kv_cache):
        """The fused decode step's arguments when it computes exactly what the op-by-op path would (see the
        class docstring), else None. Cheap: it runs at every layer of every generated token."""
        if (src_mask is not None or src_key_padding_mask is not None or autograd.is_grad_enabled()
                or autograd._observers):  # the profiler / viz.record must see every op
            return None
        attn = self.self_attn
        modules = (attn, attn.out_proj, self.norm1, self.norm2, self.linear1, self.linear2, self.dropout,
                   self.dropout1, self.dropout2)  # what the op-by-op path calls: each must be stock and unhooked
        if (tuple(map(type, modules)) != _DECODE_MODULES or type(self)._sa_block is not _SA_BLOCK
                or type(self)._ff_block is not _FF_BLOCK or "_sa_block" in self.__dict__ or "_ff_block" in self.__dict__
                or "_project" in attn.__dict__ or any(getattr(c, name) is not f for c, name, f in _STOCK_METHODS)):
            return None
        for m in modules:
            if m._forward_pre_hooks or m._forward_hooks or m._backward_hooks or "forward" in m.__dict__:
                return None
        if ((attn.training and attn.dropout > 0) or (self.dropout.training and self.dropout.p > 0)
                or (self.dropout1.training and self.dropout1.p > 0) or (self.dropout2.training and self.dropout2.p > 0)
                or attn.rotary is not None or attn.in_proj_weight is None
                or self.norm1.normalized_shape != (attn.embed_dim,) or self.norm2.normalized_shape != (attn.embed_dim,)):
            return None
        # an exact LayerKVCache: a subclass may change update(), which the fused step does not call
        if not isinstance(src, Tensor) or type(kv_cache) is not LayerKVCache or src.ndim not in (2, 3):
            return None
        x = src._array
        e, f, dtype = attn.embed_dim, self.linear1.out_features, x.dtype
        if (type(x) is not np.ndarray or x.shape[-1] != e or not 0 < x.size <= _DECODE_MAX_ROWS * e
                or dtype not in _DECODE_DTYPES):
            return None
        arrays = []
        for p, shape in zip((attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias,
                             self.norm1.weight, self.norm1.bias, self.norm2.weight, self.norm2.bias,
                             self.linear1.weight, self.linear1.bias, self.linear2.weight, self.linear2.bias),
                            _decode_shapes(e, f)):
            if p is None:  # no bias: zeros; a LayerNorm without weight: ones
                arrays.append((np.ones if len(arrays) in (4, 6) else np.zeros)(shape, dtype))
                continue
            a = p._array
            if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape:
                return None
            arrays.append(a)
        if src.ndim == 2:
            x = x[None]  # (1, T, E)
        elif not attn.batch_first:
            x = x.transpose(1, 0, 2)  # (T, N, E) -> (N, T, E)
        if not kv_cache._fits(attn, x.shape[0], attn.num_heads, attn.head_dim, dtype):
            return None
        return x, arrays

    def _decode(self, src, x, arrays, kv_cache):
        """The fused decode step: the op-by-op forward's result, with the cache appended, in one kernel call."""
        attn = self.self_attn
        n, t, _ = x.shape
        s = kv_cache.seq_len
        buffers = kv_cache._reserve(n, attn.num_heads, attn.head_dim, attn.head_dim, t, x.dtype)
        k_buf, v_buf = buffers
        w_in, b_in, w_o, b_o, g1, b1, g2, b2, w_1, b_1, w_2, b_2 = arrays
        y = backend_of(x).encoder_layer_decode(
            x, (g1, b1, self.norm1.eps), (w_in, b_in), (w_o, b_o), (g2, b2, self.norm2.eps), (w_1, b_1), (w_2, b_2),
            k_buf, v_buf, s, self.norm_first, self.activation)  # (N, T, E)
        kv_cache._filled(attn, s + t, buffers)
        if src.ndim == 2:
            y = y[0]
        elif not attn.batch_first:
            y = y.transpose(1, 0, 2)
        return Tensor._wrap(y)


_DECODE_MODULES = (MultiheadAttention, Linear, LayerNorm, LayerNorm, Linear, Linear, Dropout, Dropout, Dropout)
_DECODE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_SA_BLOCK, _FF_BLOCK = TransformerEncoderLayer._sa_block, TransformerEncoderLayer._ff_block
# the methods the op-by-op path runs, as defined here: a class-level patch of one of them means op by op
_STOCK_METHODS = tuple((c, name, getattr(c, name)) for c, name in (
    (MultiheadAttention, "forward"), (MultiheadAttention, "_project"), (Linear, "forward"), (LayerNorm, "forward"),
    (Dropout, "forward")))


@functools.lru_cache(maxsize=16)
def _decode_shapes(e, f):
    """The shapes of in_proj (weight, bias), out_proj's, norm1's, norm2's, linear1's and linear2's parameters."""
    return (3 * e, e), (3 * e,), (e, e), (e,), (e,), (e,), (e,), (e,), (f, e), (f,), (e, f), (e,)


class TransformerEncoder(Module):
    """num_layers deep copies of `encoder_layer` applied in turn, then an optional final norm
    (PyTorch's nn.TransformerEncoder):

        x_0 = src,  x_(i+1) = layers[i](x_i, mask, src_key_padding_mask, is_causal),  y = norm(x_N)

    The copies start with the same weights (as in PyTorch) and train independently. Parameter names
    are PyTorch's: "layers.0.self_attn.in_proj_weight", ..., "norm.weight". is_causal=None leaves
    each layer's own `causal` setting; True/False overrides it. enable_nested_tensor and mask_check
    select PyTorch fast paths that do not change the result; they are accepted and ignored.
    kv_cache=nn.KVCache() (causal layers) gives layer i the cache kv_cache[i].
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got {type(encoder_layer).__name__}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"TransformerEncoder: num_layers must be a non-negative int, got {num_layers!r}")
        if norm is not None and not isinstance(norm, Module):
            raise TypeError(f"TransformerEncoder: norm must be a Module or None, got {type(norm).__name__}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None, *, kv_cache=None):
        if kv_cache is not None and not isinstance(kv_cache, KVCache):
            raise TypeError(f"TransformerEncoder: kv_cache must be an nn.KVCache, got {type(kv_cache).__name__}")
        x = src
        for i, layer in enumerate(self.layers):
            cache = {} if kv_cache is None else {"kv_cache": kv_cache[i]}
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal, **cache)
        return x if self.norm is None else self.norm(x)
