"""A pre-norm Transformer encoder layer and the encoder that stacks copies of it, with PyTorch's
TransformerEncoderLayer and TransformerEncoder names."""
import copy

from .. import functional as F
from .attention import KVCache, MultiheadAttention
from .containers import ModuleList
from .layers import Dropout, LayerNorm, Linear
from .module import Module


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
