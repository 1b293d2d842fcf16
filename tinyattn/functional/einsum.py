"""einsum: Einstein summation over any number of operands, differentiable in each (PyTorch's einsum).

    einsum("bij,bjk->bik", a, b)     batched matmul
    einsum("ii->i", a)               diagonal;  einsum("ii", a) trace
    einsum("...ij,...jk", a, b)      matmul over broadcast batch axes

Subscripts are letters [a-zA-Z]; "..." stands for the axes not named, right-aligned across operands.
Without "->" the output is the ellipsis axes, then the letters that appear once, in alphabetical
order. An axis of size 1 broadcasts against the same letter's size in other operands, as in PyTorch.

A contraction of two float32/float64 operands (the forward of a two-operand einsum and every gradient of
one: each is an einsum of dy and the other operand) runs as one batched product on the backend's matmul
kernels (`_pair`): the labels of both operands and the output are batch axes, those of both but not the
output are summed in the product, the rest are the rows and columns; the operands are passed as views in that
order (a copy only where axes do not merge). Anything else (three or more operands, a repeated label, integer
dtypes, a product with no summed label or under _PAIR_MIN_WORK multiply-adds each) is numpy's einsum
(optimize=True contracts pairwise through BLAS). A tensor on the GPU is computed on the host, which costs a
copy of the operands down and of the result up.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Variable
from ..backend import backend_of, device_of, move
from .shape import reshape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "Einsum", "einsum",
]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # numpy's labels 0..51, in this order


class Einsum(Function):
    """y[out] = Σ over the labels not in `out` of Π_k A_k[s_k]   (s_k: operand k's labels).

    Backward. y is linear in each operand, so for operand j

        dA_j[s_j] = Σ over the labels not in s_j of  dy[out] · Π_{k≠j} A_k[s_k],

    which is itself an einsum: the operands dy (labels `out`) and every A_k but A_j, with output
    s_j. Two cases need more than that one call:
      - a label of s_j that appears in neither `out` nor another operand was summed inside A_j
        alone: y does not depend on which index it takes, so the einsum leaves it out and the
        gradient is broadcast along it;
      - a label repeated in s_j (a diagonal: "ii->i") reads only the elements whose indices agree,
        so the gradient lives on that diagonal: with u_j = s_j's distinct labels,
        dA_j[s_j] = g[u_j] · Π δ(l, l'), one δ (an identity matrix, itself an einsum operand) for
        each repeat l' of a label l.
    The public function has already squeezed away axes of size 1 that broadcast, so every label
    has one size here.
    """

    @staticmethod
    def forward(ctx, labels, out, *arrays):
        ctx.save_for_backward(*arrays)
        ctx.labels, ctx.out = labels, out
        device = device_of(arrays[0])
        host = [move(a, "cpu") for a in arrays]
        y = _contract(host, labels, out)
        if any(np.may_share_memory(y, a) for a in host):  # "ij->ij", "ii->i": numpy returns a view
            y = y.copy()
        return move(np.asarray(y, order="C"), device)

    @staticmethod
    def backward(ctx, dy):
        arrays = [move(a, "cpu") for a in ctx.saved]
        device = device_of(dy)
        dy = move(dy, "cpu")
        labels, out = ctx.labels, ctx.out
        grads = [None, None]
        for j, need in enumerate(ctx.needs_input_grad[2:]):
            if not need:
                grads.append(None)
                continue
            g = _operand_grad(j, arrays, labels, out, dy)
            grads.append(move(np.asarray(g, dtype=arrays[j].dtype, order="C"), device))
        return tuple(grads)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """The backward above with recorded ops: each operand's gradient is this op again (an einsum of dy and
        the other operands, as tensors: an operand that needs no gradient is a constant of its saved value),
        then expanded along the labels summed inside that operand alone, permuted to its labels, and for a
        repeated label contracted with constant identity matrices (the diagonal), as in _operand_grad."""
        from ..autograd.function import constant

        labels, out = ctx.labels, ctx.out
        device = device_of(dy._array)
        operands = [t if t is not None else constant(dy, a) for t, a in zip(inputs[2:], ctx.saved)]
        grads = [None, None]
        for j, t in enumerate(inputs[2:]):
            if t is None:
                grads.append(None)
                continue
            s = labels[j]
            sizes = dict(zip(s, ctx.saved[j].shape))
            unique = list(dict.fromkeys(s))
            others = [(dy, out)] + [(o, lab) for k, (o, lab) in enumerate(zip(operands, labels)) if k != j]
            available = set(l for _, lab in others for l in lab)
            present = tuple(l for l in unique if l in available)
            g = Einsum.apply(tuple(tuple(lab) for _, lab in others), present, *(o for o, _ in others))
            g = g.reshape(tuple(sizes[l] if l in available else 1 for l in unique))
            full = tuple(sizes[l] for l in unique)
            if tuple(g.shape) != full:
                g = g.expand(*full)
            if len(unique) == len(s):
                grads.append(g if list(s) == unique else g.permute(*[unique.index(l) for l in s]))
                continue
            used = set(s) | set(out) | available
            fresh = (l for l in range(len(_LETTERS)) if l not in used)
            renamed, deltas, delta_labels, seen = [], [], [], set()
            for l in s:
                if l in seen:
                    l2 = next(fresh)
                    deltas.append(constant(dy, move(np.eye(sizes[l], dtype=dy._array.dtype), device)))
                    delta_labels.append((l, l2))
                    renamed.append(l2)
                else:
                    seen.add(l)
                    renamed.append(l)
            grads.append(Einsum.apply((tuple(unique),) + tuple(delta_labels), tuple(renamed), g, *deltas))
        return tuple(grads)


def _contract(arrays, labels, out):
    """np.einsum in its sublist form: operands with integer labels, then the output's labels (two float
    operands without repeated labels: `_pair`, the same result through the matmul kernels)."""
    if len(arrays) == 2:
        y = _pair(arrays, labels, out)
        if y is not None:
            return y
    args = []
    for a, s in zip(arrays, labels):
        args += [a, list(s)]
    return np.einsum(*args, list(out), optimize=len(arrays) > 2)


_PAIR_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Multiply-adds per batch element below which a contraction stays numpy's einsum (and so does one with no
# summed label, an elementwise or outer product): a batch of tiny products is not what the kernels are for.
_PAIR_MIN_WORK = 1024


def _pair(arrays, labels, out):
    """y[out] = Σ a[la] b[lb] as one batched product, or None when this form does not apply (not two host
    float arrays of one dtype, or a label repeated within an operand or the output).

        batch g: labels in a, b and out     rows i: in a and out only     columns j: in b and out only
        summed k: in a and b, not in out    (a label in one operand only, not in out: summed first)
        C[g, i, j] = Σ_k A[g, i, k] B[g, k, j]: backend matmul on (G, I, K) and (G, K, J) views
    """
    a, b = arrays
    la, lb = list(labels[0]), list(labels[1])
    out = list(out)
    if (type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype != b.dtype or a.dtype not in _PAIR_DTYPES
            or len(set(la)) != len(la) or len(set(lb)) != len(lb) or len(set(out)) != len(out)):
        return None
    from .linalg import _merge_axes, _merge

    for x_is_a in (True, False):              # labels of one operand only and not in out: sum them first
        x, lx, other = (a, la, lb) if x_is_a else (b, lb, la)
        alone = [d for d, l in enumerate(lx) if l not in other and l not in out]
        if alone:
            x = x.sum(axis=tuple(alone))
            lx = [l for l in lx if l in other or l in out]
            if x_is_a:
                a, la = x, lx
            else:
                b, lb = x, lx
    size = dict(zip(la, a.shape))
    size.update(zip(lb, b.shape))
    g = [l for l in out if l in la and l in lb]
    i = [l for l in out if l in la and l not in lb]
    j = [l for l in out if l in lb and l not in la]
    k = [l for l in la if l in lb and l not in out]
    G, I, J, K = (math.prod(size[l] for l in ls) for ls in (g, i, j, k))

    if K == 1 or I * J * K < _PAIR_MIN_WORK:   # an elementwise or tiny product: numpy's loops do it well
        return None

    def operand(x, lx, rows, cols, shape):
        """x with axes (g, rows, cols) merged into `shape` (G, R, C): a view wherever the strides allow,
        else a copy that keeps the faster of the rows and columns innermost (`linalg._merge`)."""
        t = np.transpose(x, [lx.index(l) for l in g + rows + cols])
        v = _merge_axes(t, shape)
        if v is not None:
            return v
        gs = t.shape[:len(g)]
        v = _merge_axes(t, gs + shape[1:])    # rows and columns merge: only the batch axes need a copy, which the
        if v is not None and type(v) is np.ndarray and len(gs) > 1:     # CPU kernels do without (they take
            return v                                                     # several batch axes: linalg.Matmul)
        if v is None:
            inner = (lambda ls: min(abs(t.strides[(g + rows + cols).index(l)]) for l in ls if size[l] > 1)
                     if any(size[l] > 1 for l in ls) else 0)
            if inner(cols) <= inner(rows):    # columns faster: a row-major copy
                v = np.ascontiguousarray(t).reshape(gs + shape[1:])
            else:
                n = len(g)
                tt = np.transpose(t, list(range(n)) + list(range(n + len(rows), t.ndim))
                                  + list(range(n, n + len(rows))))
                v = np.swapaxes(np.ascontiguousarray(tt).reshape(gs + (shape[2], shape[1])), -1, -2)
        return _merge(v, shape)

    a3 = operand(a, la, i, k, (G, I, K))
    b3 = operand(b, lb, k, j, (G, K, J))
    c = backend_of(a3).matmul(a3, b3)         # (G, I, J)
    c = c.reshape([size[l] for l in g + i + j])
    order = g + i + j
    return np.transpose(c, [order.index(l) for l in out])


def _operand_grad(j, arrays, labels, out, dy):
    s = labels[j]
    sizes = dict(zip(s, arrays[j].shape))
    unique = list(dict.fromkeys(s))
    others = [(dy, out)] + [(a, lab) for k, (a, lab) in enumerate(zip(arrays, labels)) if k != j]
    available = set(l for _, lab in others for l in lab)
    present = [l for l in unique if l in available]
    g = _contract([a for a, _ in others], [lab for _, lab in others], present)
    # labels summed inside A_j alone: the gradient is the same for each of their indices
    g = g.reshape([sizes[l] if l in available else 1 for l in unique])
    g = np.broadcast_to(g, [sizes[l] for l in unique])
    if len(unique) == len(s):
        return g if list(s) == unique else np.transpose(g, [unique.index(l) for l in s])
    # a diagonal: one identity matrix per repeat of a label
    used = set(s) | set(out) | available
    fresh = (l for l in range(len(_LETTERS)) if l not in used)
    renamed, deltas, seen = [], [], set()
    for l in s:
        if l in seen:
            l2 = next(fresh)
            deltas.append((np.eye(sizes[l], dtype=g.dtype), [l, l2]))
            renamed.append(l2)
        else:
            seen.add(l)
            renamed.append(l)
    return _contract([g] + [d for d, _ in deltas], [unique] + [lab for _, lab in deltas], renamed)


# ---- parsing and checks ------------------------------------------------------------------


def _parse_term(equation, term, where):
    """A term's labels as a list of ints and "..." (at most once)."""
    items, i = [], 0
    while i < len(term):
        c = term[i]
        if term.startswith("...", i):
            if "..." in items:
                raise ValueError(f"einsum: {where} {term!r} of {equation!r} has more than one ellipsis")
            items.append("...")
            i += 3
            continue
        if c not in _LETTERS:
            raise ValueError(f"einsum: invalid subscript {c!r} in {where} {term!r} of {equation!r}; "
                             "subscripts must be letters [a-zA-Z] (or '...')")
        items.append(_LETTERS.index(c))
        i += 1
    return items


def _parse(op, equation, shapes):
    """(labels of each operand with "..." expanded, output labels); ValueError naming the problem."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"{op}: the equation {equation!r} names {len(terms)} operand(s), got {len(shapes)} "
                         f"(shapes {[tuple(s) for s in shapes]})")
    parsed = [_parse_term(equation, t, f"operand {k}") for k, t in enumerate(terms)]
    ellipsis_ndims = []
    for k, (items, shape) in enumerate(zip(parsed, shapes)):
        named = len([x for x in items if x != "..."])
        if "..." in items:
            if len(shape) < named:
                raise ValueError(f"{op}: operand {k} has shape {tuple(shape)}, fewer dimensions than the "
                                 f"{named} subscripts of {terms[k]!r}")
            ellipsis_ndims.append(len(shape) - named)
        else:
            if len(shape) != named:
                raise ValueError(f"{op}: operand {k} has {len(shape)} dimensions (shape {tuple(shape)}) but "
                                 f"{terms[k]!r} names {named}")
            ellipsis_ndims.append(0)
    letters = set(x for items in parsed for x in items if x != "...")
    out_items = _parse_term(equation, rhs, "output") if arrow else None
    if out_items is not None:
        letters |= set(x for x in out_items if x != "...")
    n_ellipsis = max(ellipsis_ndims, default=0)
    spare = [l for l in range(len(_LETTERS)) if l not in letters]
    if n_ellipsis > len(spare):
        raise ValueError(f"{op}: {equation!r} needs more than the 52 labels numpy's einsum has")
    ellipsis = spare[:n_ellipsis]
    labels = []
    for items, e in zip(parsed, ellipsis_ndims):
        expanded = []
        for x in items:
            expanded += ellipsis[n_ellipsis - e:] if x == "..." else [x]
        labels.append(tuple(expanded))
    if out_items is None:
        counts = {}
        for lab in labels:
            for l in lab:
                if l not in ellipsis:
                    counts[l] = counts.get(l, 0) + 1
        out = tuple(ellipsis) + tuple(sorted((l for l, c in counts.items() if c == 1), key=lambda l: _LETTERS[l]))
    else:
        out = []
        for x in out_items:
            out += ellipsis if x == "..." else [x]
        inputs = set(l for lab in labels for l in lab)
        for l in out:
            if out.count(l) > 1:
                raise ValueError(f"{op}: output subscript {_LETTERS[l]!r} appears more than once in {equation!r}")
            if l not in inputs:
                raise ValueError(f"{op}: output subscript {_LETTERS[l]!r} of {equation!r} appears in no operand")
        out = tuple(out)
    return labels, out


def _sizes(op, equation, labels, shapes, written):
    """Each label's size: equal wherever it appears, or 1 (which broadcasts) in some operands.
    `written`: the labels the equation spells out (the others stand for ellipsis axes)."""
    def name(l):
        return f"subscript {_LETTERS[l]!r}" if l in written else "an axis under '...'"

    sizes = {}
    for k, (lab, shape) in enumerate(zip(labels, shapes)):
        own = {}
        for l, n in zip(lab, shape):
            if l in own and own[l] != n:
                raise ValueError(f"{op}: {name(l)} is repeated in operand {k} of {equation!r} "
                                 f"with sizes {own[l]} and {n} (shape {tuple(shape)})")
            own[l] = n
        for l, n in own.items():
            seen = sizes.get(l, 1)
            if n != seen and 1 not in (n, seen):
                raise ValueError(f"{op}: {name(l)} of {equation!r} has size {n} in operand {k} "
                                 f"(shape {tuple(shape)}) but {seen} elsewhere (shapes {[tuple(s) for s in shapes]})")
            sizes[l] = max(n, seen)
    return sizes


def einsum(equation: str, *operands: Any) -> Tensor:
    """PyTorch's einsum(equation, *operands) (or einsum(equation, [operands])); see the module doc."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__} "
                        "(the sublist form is not supported)")
    if not operands:
        raise ValueError(f"einsum: {equation!r} needs at least one operand")
    for k, t in enumerate(operands):
        if not isinstance(t, Variable):
            raise TypeError(f"einsum: operand {k} must be a tensor, got {type(t).__name__}")
    first = operands[0]
    for k, t in enumerate(operands):
        if t.dtype != first.dtype:
            raise TypeError(f"einsum: operands have different dtypes: operand 0 is {first.dtype}, operand {k} is "
                            f"{t.dtype}; convert them to one dtype first")
        if device_of(t._array) != device_of(first._array):
            raise RuntimeError(f"einsum: expected all operands on the same device, got {device_of(first._array)} "
                               f"and {device_of(t._array)} (operand {k})")
    shapes = [tuple(t.shape) for t in operands]
    labels, out = _parse("einsum", equation, shapes)
    written = set(_LETTERS.index(c) for c in equation if c in _LETTERS)
    sizes = _sizes("einsum", equation, labels, shapes, written)
    # an axis of size 1 against a bigger size elsewhere broadcasts: drop it from that operand
    squeezed, new_labels = [], []
    for t, lab in zip(operands, labels):
        keep = [i for i, l in enumerate(lab) if not (t.shape[i] == 1 and sizes[l] > 1)]
        if len(keep) != len(lab):
            t = reshape(t, tuple(t.shape[i] for i in keep))
            lab = tuple(lab[i] for i in keep)
        squeezed.append(t)
        new_labels.append(lab)
    spare_needed = sum(len(lab) - len(set(lab)) for lab in new_labels)
    if len(sizes) + spare_needed > len(_LETTERS):
        raise ValueError(f"einsum: {equation!r} needs more than the 52 labels numpy's einsum has")
    return Einsum.apply(tuple(new_labels), out, *squeezed)
