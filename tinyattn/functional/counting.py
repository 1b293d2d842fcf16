"""Ops on values and positions that carry no gradient, PyTorch's names: unique, unique_consecutive,
bincount, bucketize, searchsorted, tril_indices, triu_indices; and meshgrid (differentiable: views
expanded from its inputs)."""
from __future__ import annotations

import numpy as np

from ..autograd import Variable
from .checks import check_tensor, host_result
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._typing import Number
    from ..tensor import Tensor

__all__ = [
    "bincount", "bucketize", "histc", "histogram", "meshgrid", "searchsorted", "tril_indices", "triu_indices", "unique",
    "unique_consecutive",
]


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None) -> Any:
    """The distinct values (sorted), and optionally the inverse indices (input's shape) and the counts."""
    check_tensor("unique", "input", input)
    a = input.numpy()
    if dim is None:
        values, inverse, counts = np.unique(a.reshape(-1), return_inverse=True, return_counts=True)
        inverse = inverse.reshape(a.shape)
    else:
        values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True, axis=dim)
        inverse = inverse.reshape(-1)
    out = [host_result(input, values)]
    if return_inverse:
        out.append(host_result(input, inverse.astype(np.int64)))
    if return_counts:
        out.append(host_result(input, counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(input: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None) -> Any:
    """Each run of equal consecutive values kept once (the flattened input when dim is None)."""
    check_tensor("unique_consecutive", "input", input)
    if dim is not None:
        raise NotImplementedError("unique_consecutive: dim= is not supported (only the flattened input)")
    a = input.numpy().reshape(-1)
    if a.size == 0:
        starts = np.zeros(0, dtype=np.int64)
    else:
        starts = np.flatnonzero(np.concatenate([[True], a[1:] != a[:-1]]))
    out = [host_result(input, a[starts].copy())]
    if return_inverse:
        out.append(host_result(input, (np.cumsum(np.isin(np.arange(a.size), starts)) - 1).reshape(input.shape)
                               .astype(np.int64)))
    if return_counts:
        out.append(host_result(input, np.diff(np.append(starts, a.size)).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ... occurs in the 1-D non-negative integer input (weighted sums with weights)."""
    check_tensor("bincount", "input", input)
    a = input.numpy()
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise TypeError(f"bincount: expected a 1-d integer tensor, got shape {tuple(a.shape)} and dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError("bincount: input must contain non-negative values only")
    w = None if weights is None else np.asarray(weights.numpy() if isinstance(weights, Variable) else weights)
    out = np.bincount(a, weights=w, minlength=minlength)
    if w is None:
        out = out.astype(np.int64)
    elif w.dtype == np.float32:
        out = out.astype(np.float32)
    return host_result(input, out)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    """Indices where input's values would be inserted to keep sorted_sequence (1-D, or batched along its
    last dim) sorted."""
    check_tensor("searchsorted", "sorted_sequence", sorted_sequence)
    if side is not None:
        right = side == "right"
    seq = sorted_sequence.numpy()
    vals = input.numpy() if isinstance(input, Variable) else np.asarray(input)
    how = "right" if right else "left"
    if seq.ndim == 1:
        out = np.searchsorted(seq, vals, side=how)
    else:
        flat_seq = seq.reshape(-1, seq.shape[-1])
        flat_vals = vals.reshape(flat_seq.shape[0], -1)
        out = np.stack([np.searchsorted(s, v, side=how) for s, v in zip(flat_seq, flat_vals)]).reshape(vals.shape)
    out = np.asarray(out, dtype=np.int32 if out_int32 else np.int64)
    return host_result(sorted_sequence, out)


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket of each value among 1-D boundaries (searchsorted with the roles swapped)."""
    check_tensor("bucketize", "boundaries", boundaries)
    out = searchsorted(boundaries, input, out_int32=out_int32, right=right)
    return out


def _indices(op, row, col, offset, upper):
    for name, v in (("row", row), ("col", col)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{op}: {name} must be a non-negative int, got {v!r}")
    from ..creation import tensor

    rows, cols = (np.triu_indices if upper else np.tril_indices)(row, offset, col)
    return tensor(np.stack([rows, cols]).astype(np.int64))


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    """The (2, n) coordinates of the lower triangle of a row x col matrix (diagonal `offset`), row by row."""
    return _indices("tril_indices", row, col, offset, False)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _indices("triu_indices", row, col, offset, True)


def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Grids from 1-D tensors: indexing='ij' (matrix, PyTorch's default) or 'xy' (Cartesian, the first two
    axes swapped). Each output is an expanded view of its input, so gradients flow back."""
    from .shape import expand, reshape

    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in tensors:
        check_tensor("meshgrid", "tensors", t)
        if t.ndim > 1:
            raise ValueError(f"meshgrid: expects 0-d or 1-d tensors, got shape {tuple(t.shape)}")
    ts = [reshape(t, -1) for t in tensors]
    if indexing == "xy" and len(ts) >= 2:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.shape[0] for t in ts)
    out = []
    for i, t in enumerate(ts):
        view = [1] * len(ts)
        view[i] = shape[i]
        out.append(expand(reshape(t, tuple(view)), shape))
    if indexing == "xy" and len(out) >= 2:  # the ij grids of (y, x, ...), handed back in the inputs' order
        out[0], out[1] = out[1], out[0]
    return tuple(out)


def histogram(input, bins=100, *, range=None, weight=None, density=False):
    """(hist, bin_edges) of a float tensor, as torch.histogram: `bins` equal bins over `range` (the data's
    min and max by default) or the given 1-D tensor of edges; both results take input's dtype."""
    from collections import namedtuple

    check_tensor("histogram", "input", input)
    a = input.numpy()
    if a.dtype.kind != "f":
        raise TypeError(f"histogram: expected a floating-point tensor, got dtype {a.dtype}")
    edges = bins.numpy() if isinstance(bins, Variable) else bins
    w = None if weight is None else weight.numpy()
    hist, edges = np.histogram(a.reshape(-1), bins=edges, range=range,
                               weights=None if w is None else w.reshape(-1), density=density)
    result = namedtuple("histogram", ["hist", "bin_edges"])
    return result(host_result(input, hist.astype(a.dtype)), host_result(input, edges.astype(a.dtype)))


def histc(input: Tensor, bins: int = 100, min: Number = 0, max: Number = 0) -> Tensor:
    """Counts in `bins` equal bins between min and max (the data's range when both are 0); elements
    outside are ignored. The result has input's dtype."""
    check_tensor("histc", "input", input)
    a = input.numpy().reshape(-1)
    if a.dtype.kind != "f":
        raise TypeError(f"histc: expected a floating-point tensor, got dtype {a.dtype}")
    lo, hi = float(min), float(max)
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise ValueError(f"histc: max ({max}) must be larger than min ({min})")
    hist, _ = np.histogram(a[(a >= lo) & (a <= hi)], bins=int(bins), range=(lo, hi))
    return host_result(input, hist.astype(a.dtype))
