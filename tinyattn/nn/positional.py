"""Positional encodings: the lecture's e_i added to a_i (sinusoidal or learned), and RoPE.

The lecture leaves open which is better; examples/positional_encodings.py compares them.
Positions run along axis -2 of the input: (..., T, d_model). Each forward takes `offset`, the
position of the input's first row (default 0): with a key/value cache, the new tokens of a step
sit at positions offset .. offset + T - 1, offset being the number of positions already cached.
"""
import numbers

import numpy as np

from ..backend import device_of, move
from ..creation import empty_parameter_data
from ..dtypes import as_dtype, float32
from ..functional.rotary import apply_rotary, rotary_tables
from ..tensor import Tensor
from . import init
from .layers import size_arg
from .module import Module
from .parameter import Parameter

__all__ = [
    "LearnedPositionalEncoding", "RotaryEmbedding", "SinusoidalPositionalEncoding",
]


def _check_length(name, x, max_len, d_model=None, offset=0):
    """Checks the input and returns `offset` as an int."""
    if x.ndim < 2:
        raise ValueError(f"{name}: expected input (..., T, d), got shape {x.shape}")
    if d_model is not None and x.shape[-1] != d_model:
        raise ValueError(f"{name}(d_model={d_model}, max_len={max_len}): the input's last axis has size "
                         f"{x.shape[-1]}, not d_model={d_model} (input shape {x.shape}); the arguments are "
                         "(d_model, max_len)")
    if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"{name}: offset must be a non-negative int (the position of the first row), got {offset!r}")
    offset = int(offset)
    if offset + x.shape[-2] > max_len:
        if offset:
            raise ValueError(f"{name}: positions {offset} .. {offset + x.shape[-2] - 1} (offset {offset} + sequence "
                             f"length {x.shape[-2]}) exceed max_len {max_len} (input shape {x.shape})")
        raise ValueError(f"{name}: sequence length {x.shape[-2]} exceeds max_len {max_len} (input shape {x.shape})")
    return offset


class SinusoidalPositionalEncoding(Module):
    """a_i + e_i with the fixed e_(pos, 2i) = sin(pos / 10000^(2i/d)), e_(pos, 2i+1) = cos(pos / 10000^(2i/d)).

    The table is a buffer, not a parameter; the backward is the identity (da = db).
    """

    def __init__(self, d_model, max_len=5000, dtype=None):
        super().__init__()
        d_model = size_arg("SinusoidalPositionalEncoding", "d_model", d_model, minimum=1)
        max_len = size_arg("SinusoidalPositionalEncoding", "max_len", max_len, minimum=1)
        dtype = as_dtype(dtype, "SinusoidalPositionalEncoding")
        self.d_model, self.max_len = d_model, max_len
        pos = np.arange(max_len, dtype=np.float64)[:, None]
        freq = 10000.0 ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)
        table = np.zeros((max_len, d_model))
        table[:, 0::2] = np.sin(pos * freq)
        table[:, 1::2] = np.cos(pos * freq[: d_model // 2])
        self.register_buffer("pe", Tensor._wrap(table.astype(dtype or float32)))

    def forward(self, x, offset=0):
        """x (..., T, d_model) -> x + e[offset : offset + T]."""
        offset = _check_length("SinusoidalPositionalEncoding", x, self.max_len, self.d_model, offset)
        return x + self.pe[offset : offset + x.shape[-2]]

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEncoding(Module):
    """a_i + e_i with e a learned (max_len, d_model) table, initialised N(0, 0.02²).

    The arguments are (d_model, max_len), as for SinusoidalPositionalEncoding; pass them by keyword
    to be safe. (Until late 2026 the order was (max_len, d_model): an old-order call builds a table
    for the wrong d_model, and forward's check names both numbers.) The table's layout, and so
    the state_dict, is unchanged.
    """

    def __init__(self, d_model, max_len, dtype=None):
        super().__init__()
        for name, n in (("d_model", d_model), ("max_len", max_len)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"LearnedPositionalEncoding: {name} must be a positive int, got {n!r}")
        self.d_model, self.max_len = int(d_model), int(max_len)
        self.weight = init.normal_(Parameter(empty_parameter_data((self.max_len, self.d_model), dtype)), std=0.02)

    def forward(self, x, offset=0):
        """x (..., T, d_model) -> x + e[offset : offset + T]."""
        offset = _check_length("LearnedPositionalEncoding", x, self.max_len, self.d_model, offset)
        return x + self.weight[offset : offset + x.shape[-2]]

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"


class RotaryEmbedding(Module):
    """RoPE: rotates q and k so that q_i·k_j depends on positions only through i - j.

    Half-split pairing (feature i with i + head_dim/2, GPT-NeoX / Hugging Face convention);
    see tinyattn.functional.rotary. forward(q, k) -> (q rotated, k rotated), positions on axis -2,
    starting at `offset` (with a key/value cache: the number of positions already cached; the cached
    keys were rotated at their own positions when they were new).
    """

    def __init__(self, head_dim, max_len=4096, base=10000.0):
        super().__init__()
        head_dim = size_arg("RotaryEmbedding", "head_dim", head_dim, minimum=1)
        max_len = size_arg("RotaryEmbedding", "max_len", max_len, minimum=1)
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}")
        if not isinstance(base, numbers.Real) or isinstance(base, (bool, np.bool_)):
            raise TypeError(f"RotaryEmbedding: base must be a positive number, got {base!r}")
        if not base > 0:
            raise ValueError(f"RotaryEmbedding: base must be a positive number, got {base!r}")
        self.head_dim, self.max_len, self.base = head_dim, max_len, base
        self._tables = {}

    def _cos_sin(self, length, like, offset=0):
        """The tables for positions offset .. offset + length - 1, in the dtype and on the device of the
        array `like` (made once per dtype and device, then sliced)."""
        key = (np.dtype(like.dtype), device_of(like))
        if key not in self._tables:
            tables = rotary_tables(self.max_len, self.head_dim, self.base, key[0])
            self._tables[key] = tuple(move(t, key[1]) for t in tables)
        cos, sin = self._tables[key]
        return cos[offset : offset + length], sin[offset : offset + length]

    def rotate(self, x, offset=0):
        """x (..., T, head_dim), row t at position offset + t -> x rotated."""
        offset = _check_length("RotaryEmbedding", x, self.max_len, None, offset)
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"RotaryEmbedding: expected head_dim {self.head_dim}, got input of shape {x.shape}")
        cos, sin = self._cos_sin(x.shape[-2], x._array, offset)
        return apply_rotary(x, cos, sin)

    def forward(self, q, k, offset=0):
        return self.rotate(q, offset), self.rotate(k, offset)

    def extra_repr(self):
        return f"head_dim={self.head_dim}, max_len={self.max_len}"
