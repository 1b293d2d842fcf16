"""PyTorch's Transformer family with its signatures, defaults, parameter names and mask semantics:
TransformerEncoderLayer, TransformerEncoder, TransformerDecoderLayer, TransformerDecoder, Transformer.

Defaults are PyTorch's: post-norm (norm_first=False), activation=relu, dim_feedforward=2048, dropout=0.1,
batch_first=False. activation is "relu", "gelu" (the exact erf form, as PyTorch) or any callable (a
function or a module such as nn.GELU(approximate="tanh")). Masks are PyTorch's MultiheadAttention ones:
a bool mask is True where attention is NOT allowed, a float mask is added to the scores."""
import copy
import functools

import numpy as np

from .. import autograd
from .. import functional as F
from ..backend import backend_of
from ..backend_contract import DECODE
from ..kernels.cpu.policy import DECODE_MAX_ROWS
from ..tensor import Tensor
from .attention import KVCache, LayerKVCache, MultiheadAttention
from . import init
from .containers import ModuleList
from .activation import GELU, ReLU
from .layers import Dropout, LayerNorm, Linear, place
from .module import Module

# The fused decode step (TransformerEncoderLayer._decode): tests switch it off to hold it to the op-by-op path.
_FUSED_DECODE = True
# It takes at most this many new rows (batch x positions): its products are matrix-vector ones, row after row,
# and from about 64-96 rows (d_model 128, ff 512, one thread) the op-by-op path's packed, threaded products win
# (kernels/cpu/policy.py, DECODE_MAX_ROWS, with its measurement).
_DECODE_MAX_ROWS = DECODE_MAX_ROWS


def _activation_fn(owner, activation):
    """PyTorch's rule: "relu" -> F.relu, "gelu" -> the exact GELU, a callable as it is; else RuntimeError."""
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu  # approximate='none', the exact form
        raise RuntimeError(f"{owner}: activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"{owner}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


def _activation_code(act):
    """The fused decode kernel's activation for the callable `act`: "relu", "gelu" (GELU's tanh form),
    "gelu_erf" (the exact form: activation="gelu", F.gelu, nn.GELU()), or None for anything else."""
    if act is F.relu:
        return "relu"
    if act is F.gelu:  # approximate="none" by default: the exact form
        return "gelu_erf"
    if isinstance(act, Module):
        if (act._forward_pre_hooks or act._forward_hooks or act._backward_hooks or "forward" in act.__dict__
                or type(act).forward is not _STOCK_ACT_FORWARD.get(type(act))):
            return None
        if type(act) is ReLU:
            return "relu"
        if type(act) is GELU:
            return {"tanh": "gelu", "none": "gelu_erf"}.get(act.approximate)
    return None


class TransformerEncoderLayer(Module):
    """PyTorch's nn.TransformerEncoderLayer: self-attention and a feed-forward block, post-norm by default.

        norm_first=False (default):  h = norm1(x + dropout1(self_attn(x)));  y = norm2(h + FF(h))
        norm_first=True:             h = x + dropout1(self_attn(norm1(x)));  y = h + FF(norm2(h))
        FF(z) = dropout2(linear2(dropout(activation(linear1(z)))))

    Signature and defaults are PyTorch's (dim_feedforward=2048, dropout=0.1, activation=relu,
    layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True); parameter names match, so
    weights move between the two. tinyattn's additions, keyword-only: `causal=True` masks future
    positions in every call (or pass is_causal to forward); rotary=nn.RotaryEmbedding(d_model // nhead,
    max_len) gives the attention RoPE (see MultiheadAttention). A causal layer takes forward(x,
    kv_cache=c), c an nn.LayerKVCache: x holds only the new positions, which attend to every cached one
    (generation one token at a time).

    Fused decode step: with a cache, under no_grad, on the CPU, the whole layer runs as one kernel call
    (kernels/cpu/decode.py; PyTorch's encoder-layer fast path plays the same role) when that is the same
    computation as the op-by-op path: an activation the kernel implements (F.relu / "relu" / nn.ReLU, or
    the tanh-form GELU module nn.GELU(approximate="tanh"); the exact GELU, a GELU function and other
    callables run op by op), either norm position, no dropout in effect (eval mode or p = 0), no masks, no
    rotary, float32/float64, stock submodules with no hooks (on the submodules: the layer's own hooks run
    either way) and their stock methods (none replaced on the instance or the class), an nn.LayerKVCache
    itself (a subclass may change update()), no profiler or viz.record watching, and at most 64 new rows
    (batch x positions; a longer prompt is faster op by op). Anything else runs op by op. Not seen: a
    replaced function such as F.relu.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu,
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, device=None, dtype=None, *,
                 causal=False, rotary=None):
        super().__init__()
        act = _activation_fn("TransformerEncoderLayer", activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype, rotary=rotary)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = act
        self.causal = causal
        place(self, device)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=None, *, kv_cache=None):
        """src (S, N, E) ((N, S, E) with batch_first, or unbatched (S, E)); src_mask (S, S) or (N·nhead, S, S);
        src_key_padding_mask (N, S) (True = padding). is_causal=None keeps the layer's `causal`."""
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
        if kv_cache is None:  # before norm1 and the projections: a cold start compiles attention's kernels meanwhile
            self.self_attn._expect_fused(src)
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
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

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
        activation = _activation_code(self.activation)
        if activation is None:  # a custom callable, a hooked or patched activation module
            return None
        if ((attn.training and attn.dropout > 0) or (self.dropout.training and self.dropout.p > 0)
                or (self.dropout1.training and self.dropout1.p > 0) or (self.dropout2.training and self.dropout2.p > 0)
                or attn.rotary is not None or attn.in_proj_weight is None
                or self.norm1.normalized_shape != (attn.embed_dim,)
                or self.norm2.normalized_shape != (attn.embed_dim,)):
            return None
        # an exact LayerKVCache: a subclass may change update(), which the fused step does not call
        if not isinstance(src, Tensor) or type(kv_cache) is not LayerKVCache or src.ndim not in (2, 3):
            return None
        x = src._array
        e, f, dtype = attn.embed_dim, self.linear1.out_features, x.dtype
        # the fused step is an optional kernel (backend_contract.DECODE): ask the array's backend for it
        if (not backend_of(x).supports(DECODE) or x.shape[-1] != e or not 0 < x.size <= _DECODE_MAX_ROWS * e
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
            if type(a) is not type(x) or a.dtype != dtype or a.shape != shape:
                return None
            arrays.append(a)
        if src.ndim == 2:
            x = x[None]  # (1, T, E)
        elif not attn.batch_first:
            x = x.transpose(1, 0, 2)  # (T, N, E) -> (N, T, E)
        if not kv_cache._fits(attn, x.shape[0], attn.num_heads, attn.head_dim, dtype):
            return None
        return x, arrays, activation

    def _decode(self, src, x, arrays, activation, kv_cache):
        """The fused decode step: the op-by-op forward's result, with the cache appended, in one kernel call."""
        attn = self.self_attn
        n, t, _ = x.shape
        s = kv_cache.seq_len
        buffers = kv_cache._reserve(n, attn.num_heads, attn.head_dim, attn.head_dim, t, x.dtype)
        k_buf, v_buf = buffers
        w_in, b_in, w_o, b_o, g1, b1, g2, b2, w_1, b_1, w_2, b_2 = arrays
        y = backend_of(x).encoder_layer_decode(
            x, (g1, b1, self.norm1.eps), (w_in, b_in), (w_o, b_o), (g2, b2, self.norm2.eps), (w_1, b_1), (w_2, b_2),
            k_buf, v_buf, s, self.norm_first, activation)  # (N, T, E)
        kv_cache._filled(attn, s + t, buffers)
        if src.ndim == 2:
            y = y[0]
        elif not attn.batch_first:
            y = y.transpose(1, 0, 2)
        return Tensor._wrap(y)


_DECODE_MODULES = (MultiheadAttention, Linear, LayerNorm, LayerNorm, Linear, Linear, Dropout, Dropout, Dropout)
_DECODE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_SA_BLOCK, _FF_BLOCK = TransformerEncoderLayer._sa_block, TransformerEncoderLayer._ff_block
_STOCK_ACT_FORWARD = {ReLU: ReLU.forward, GELU: GELU.forward}
# the methods the op-by-op path runs, as defined here: a class-level patch of one of them means op by op
_STOCK_METHODS = tuple((c, name, getattr(c, name)) for c, name in (
    (MultiheadAttention, "forward"), (MultiheadAttention, "_project"), (Linear, "forward"), (LayerNorm, "forward"),
    (Dropout, "forward"), (GELU, "forward"), (ReLU, "forward")))


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
        # PyTorch's fast-path switches: accepted, recorded, and without effect on the result
        self.enable_nested_tensor = self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None, *, kv_cache=None):
        if kv_cache is not None and not isinstance(kv_cache, KVCache):
            raise TypeError(f"TransformerEncoder: kv_cache must be an nn.KVCache, got {type(kv_cache).__name__}")
        x = src
        for i, layer in enumerate(self.layers):
            cache = {} if kv_cache is None else {"kv_cache": kv_cache[i]}
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal, **cache)
        return x if self.norm is None else self.norm(x)


class TransformerDecoderLayer(Module):
    """PyTorch's nn.TransformerDecoderLayer: self-attention, cross-attention over `memory`, feed-forward.

        norm_first=False (default):  x = norm1(x + SA(x));  x = norm2(x + MHA(x, memory));  y = norm3(x + FF(x))
        norm_first=True:             x = x + SA(norm1(x));  x = x + MHA(norm2(x), memory);  y = x + FF(norm3(x))
        SA(x) = dropout1(self_attn(x, x, x)),  MHA(x, m) = dropout2(multihead_attn(x, m, m)),
        FF(x) = dropout3(linear2(dropout(activation(linear1(x)))))

    Signature, defaults and parameter names are PyTorch's. Masks are MultiheadAttention's: tgt_mask
    (T, T) / memory_mask (T, S), bool True = not allowed or float added to the scores; key padding masks
    (N, T) / (N, S), True = padding. tgt_is_causal=True applies the causal mask to the self-attention
    (PyTorch treats it as a hint that tgt_mask is causal; with a causal tgt_mask the result is the same).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        act = _activation_fn("TransformerDecoderLayer", activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = act
        place(self, device)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                need_weights=False, is_causal=bool(is_causal))
        return self.dropout1(out)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        # memory_is_causal is only a hint in PyTorch (about memory_mask); the mask itself is what counts
        out, _ = self.multihead_attn(x, mem, mem, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                     need_weights=False)
        return self.dropout2(out)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoder(Module):
    """num_layers deep copies of `decoder_layer` applied in turn, then an optional final norm
    (PyTorch's nn.TransformerDecoder); parameter names "layers.0.self_attn.in_proj_weight", ..."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        if not isinstance(decoder_layer, Module):
            raise TypeError(f"TransformerDecoder: decoder_layer must be a Module, got {type(decoder_layer).__name__}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"TransformerDecoder: num_layers must be a non-negative int, got {num_layers!r}")
        if norm is not None and not isinstance(norm, Module):
            raise TypeError(f"TransformerDecoder: norm must be a Module or None, got {type(norm).__name__}")
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """PyTorch's nn.Transformer: an encoder (num_encoder_layers layers + final LayerNorm) and a decoder
    (num_decoder_layers layers + final LayerNorm); every parameter with more than one dimension is
    re-initialised xavier-uniform, as PyTorch does. forward(src, tgt, ...) -> (T, N, E) ((N, T, E) with
    batch_first). custom_encoder / custom_decoder replace the stacks."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation=F.relu, custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self._reset_parameters()
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        place(self, device)

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batched = src.ndim == 3
        if batched and src.ndim == tgt.ndim:
            axis = 0 if self.batch_first else 1
            if src.shape[axis] != tgt.shape[axis]:
                raise RuntimeError("the batch number of src and tgt must be equal")
        elif not batched and tgt.ndim != 2:
            raise RuntimeError("the number of dimensions of src and tgt must be equal (2 or 3): got "
                               f"src {tuple(src.shape)}, tgt {tuple(tgt.shape)}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The (sz, sz) float mask with -inf above the diagonal and 0 elsewhere (float32 by default)."""
        from ..creation import float32, full

        mask = full((sz, sz), float("-inf"), dtype=float32 if dtype is None else dtype).triu(1)
        return mask if device is None else mask.to(device)


__all__ = ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer"]  # noqa: E501
