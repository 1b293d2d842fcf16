"""Losses with PyTorch's signatures: cross_entropy (through log-softmax, finite for huge logits), nll_loss,
mse_loss, l1_loss, smooth_l1_loss, huber_loss, binary_cross_entropy(_with_logits), kl_div."""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from ..autograd import Function, Variable, is_grad_enabled
from ..autograd.function import constant
from ..backend import _KERNEL_FLOATS, backend_of, is_device_array, move
from .checks import (check_broadcast, check_float, check_indices, check_tensor, on_device_of, sum_to_shape,
                     sum_to_shape_graph)
from . import elementwise as ew, reduction as red
from .shape import getitem, permute, reshape
from .unary import softplus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tensor import Tensor

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "cross_entropy_composite",
    "CrossEntropy", "FUSED_BACKWARD", "huber_loss", "kl_div", "l1_loss", "legacy_reduction", "mse_loss", "MSELoss",
    "nll_loss", "NLLLoss", "PointwiseLoss", "smooth_l1_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


# Logits of at least FUSED_BACKWARD elements take the fused cross-entropy kernels (CrossEntropy); smaller ones
# log_softmax's kernel and the NumPy backward formula (the CPU policy module says why and how it was measured).
from ..kernels.cpu.policy import FUSED_BACKWARD  # noqa: E402


def _softmax_kernels():
    from ..kernels.cpu import softmax
    return softmax


def _fused(logits):
    """Whether cross_entropy's fused CPU kernels take these (N, C) logits: a host float32/float64 array of at
    least FUSED_BACKWARD elements (the kernels compile for those dtypes; smaller logits, and anything else, go
    through log_softmax and the NumPy backward, so that a small model's cold start compiles nothing new)."""
    return (isinstance(logits, np.ndarray) and logits.dtype in _KERNEL_FLOATS and logits.size >= FUSED_BACKWARD
            and logits.shape[0] > 0 and logits.shape[1] > 0)


class CrossEntropy(Function):
    """loss_n = (1 - ε)·(-logp_n[t_n]) + ε·(-(1/C) Σ_c logp_n[c]) for each row n whose target is not
    ignored, with logp = log_softmax(logits) (finite even for logits of ±1e4) and ε the label
    smoothing (0: the plain negative log-likelihood). That is the cross-entropy against the target
    distribution (1 - ε)·onehot(t_n) + ε/C, PyTorch's label_smoothing.

    With p = e^logp, since d(-logp_n[c])/dlogits_n = p_n - onehot(c):
        dlogits_n = (p_n - (1 - ε)·onehot(t_n) - ε/C) · dloss_n,  and 0 for ignored rows.
    'mean' divides by the number of rows not ignored, as PyTorch does. The count stays an
    array on the logits' device, so a GPU step never waits for it.
    """

    fresh_grads = True  # every path's backward returns a new array (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, logits, safe_target, valid, reduction, smoothing):
        """safe_target: the targets with ignored ones replaced by 0; valid: which are not ignored (both (N,)),
        or None when none is (cross_entropy computes them once, with its range check).

        On the CPU (float32/float64 logits) one fused kernel pass (kernels/cpu/softmax.py cross_entropy_forward)
        gives each row's loss and its max m and ls = log Σ exp(x - m), which the backward reuses; elsewhere the
        loss comes from log_softmax's output."""
        be = backend_of(logits)
        n, c = logits.shape
        ctx.reduction, ctx.smoothing = reduction, smoothing
        if _fused(logits):
            x = np.ascontiguousarray(logits)
            # on every thread (as the row kernels from 2^15 elements: policy.PARALLEL_ROWS), not _run's SERIAL_WORK
            losses, m, ls = _softmax_kernels().cross_entropy_forward(x, safe_target, float(smoothing))
            ctx.fused = True
            ctx.save_for_backward(x, m, ls, safe_target, valid)
            dtype = x.dtype
        else:
            logp = be.log_softmax(logits, -1)  # (N, C)
            if isinstance(logp, np.ndarray):  # logp[n, t_n] as one flat gather (np.take_along_axis costs ~3x more)
                picked = logp.reshape(-1).take(np.arange(0, n * c, c) + safe_target)
            else:
                picked = np.take_along_axis(logp, safe_target[:, None], axis=1)[:, 0]
            losses = -picked
            if smoothing:
                losses = logp.dtype.type(1 - smoothing) * losses - logp.dtype.type(smoothing) * logp.mean(axis=1)
            ctx.fused = False
            ctx.save_for_backward(logp, safe_target, valid)
            dtype = logp.dtype
        if valid is not None:
            losses = np.where(valid, losses, np.zeros((), dtype))
        if reduction == "none":
            return losses
        if reduction == "sum":
            return be.asarray(losses.sum())
        if valid is None:
            ctx.count = dtype.type(n)
            if n:
                return be.asarray(losses.sum() / ctx.count)
        else:
            ctx.count = valid.sum().astype(dtype)
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: nan, as in PyTorch
            return be.asarray(losses.sum() / ctx.count)

    @staticmethod
    def backward(ctx, dloss):
        if ctx.fused:
            x, m, ls, safe_target, valid = ctx.saved
            dtype = x.dtype
        else:
            logp, safe_target, valid = ctx.saved
            dtype = logp.dtype
        be = backend_of(ctx.saved[0])
        eps = ctx.smoothing
        scale = dloss / np.maximum(ctx.count, 1) if ctx.reduction == "mean" else dloss
        if valid is None:  # no target ignored: every row's weight is the upstream gradient's
            weight = np.broadcast_to(np.asarray(scale, dtype=dtype), safe_target.shape)
        else:
            weight = valid.astype(dtype) * scale
        if ctx.fused:
            if x.size >= FUSED_BACKWARD:  # one kernel pass: p recomputed from the logits and the saved m, ls
                w = np.array(weight, dtype=dtype)  # writable (a broadcast view would compile a read-only twin)
                dx = _softmax_kernels().cross_entropy_backward(x, m, ls, safe_target, w, float(eps), np.empty_like(x))
                return dx, None, None, None, None
            logp = (x - m[:, None]) - ls[:, None]  # the NumPy formula below (the kernel's twin)
        onehot = safe_target[:, None] == be.xp.arange(logp.shape[1])  # (N, C) bool
        if eps:
            dlogits = np.exp(logp) - onehot * logp.dtype.type(1 - eps) - logp.dtype.type(eps / logp.shape[1])
        else:
            dlogits = np.exp(logp) - onehot
        return dlogits * weight[:, None], None, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dloss):
        """dlogits_n = (p_n - (1 - ε)·onehot(t_n) - ε/C) · w_n with recorded ops: p = softmax(logits) recomputed
        from the logits tensor (Softmax), w_n = dloss_n (or dloss / count for 'mean') for rows not ignored, 0
        for ignored ones; the targets, the smoothing and the count are constants."""
        from ..autograd.function import constant
        from .softmax import Softmax

        logp = ctx.saved[0]  # the logits when fused: only the shape, dtype and device are used here
        safe_target, valid = ctx.saved[-2:]
        n, c = logp.shape
        dt = logp.dtype.type
        eps = ctx.smoothing
        onehot = (safe_target[:, None] == backend_of(logp).xp.arange(c)).astype(logp.dtype)
        target_dist = onehot * dt(1 - eps) + dt(eps / c) if eps else onehot
        rows = np.ones((n, 1), logp.dtype) if valid is None else valid.astype(logp.dtype)[:, None]  # (N, 1)
        if ctx.reduction == "mean":
            rows = rows / np.maximum(ctx.count, 1)
        per_row = dloss.reshape(n, 1) if ctx.reduction == "none" else dloss.reshape(1, 1)
        return (Softmax.apply(inputs[0], -1) - constant(dloss, target_dist)) * (per_row * rows), None, None, None, None


class MSELoss(Function):
    """loss = mean((x - y)²) ('mean'), sum, or elementwise ('none').  dx = 2 (x - y) dloss / n, dy = -dx."""

    @staticmethod
    def forward(ctx, x, y, reduction):
        diff = x - y
        ctx.save_for_backward(diff)
        ctx.shapes, ctx.reduction = (x.shape, y.shape), reduction
        sq = diff * diff
        if reduction == "none":
            return sq
        return backend_of(sq).asarray(sq.sum() if reduction == "sum" else sq.mean())

    @staticmethod
    def backward(ctx, dloss):
        (diff,) = ctx.saved
        scale = 2.0 / diff.size if ctx.reduction == "mean" else 2.0
        g = diff * (dloss * scale)
        need_x, need_y = ctx.needs_input_grad[:2]
        return (
            sum_to_shape(g, ctx.shapes[0]) if need_x else None,
            sum_to_shape(-g, ctx.shapes[1]) if need_y else None,
            None,
        )

    @staticmethod
    def differentiable_backward(ctx, inputs, dloss):
        """dx = 2 (x - y) dloss / n, dy = -dx with recorded ops; x - y is formed from the input tensors (an
        operand that needs no gradient is a constant: its value from the saved difference)."""
        from ..autograd.function import constant
        from .checks import sum_to_shape_graph

        x, y = inputs[:2]
        (diff,) = ctx.saved
        if x is not None and y is not None:
            d = x - y
        elif x is not None:
            d = x - constant(dloss, x._array - diff)  # y's value, broadcast
        else:
            d = constant(dloss, diff + y._array) - y  # x's value, broadcast
        g = d * (dloss * (2.0 / diff.size if ctx.reduction == "mean" else 2.0))
        return (None if x is None else sum_to_shape_graph(g, ctx.shapes[0]),
                None if y is None else sum_to_shape_graph(g * -1.0, ctx.shapes[1]), None)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """PyTorch's F.cross_entropy: class-index targets with ignore_index, class weights and label_smoothing,
    or class-probability targets (a float target of the input's shape).

    input (N, C) with target (N,); input (C,) with a scalar target; or input (N, C, d1, ...)
    with target (N, d1, ...), the class axis being dim 1. Without weights and with index targets it is
    one fused Function (CrossEntropy); otherwise a composition of log_softmax and nll_loss.
    size_average and reduce are PyTorch's deprecated pair (mapped to a reduction, with its warning).
    """
    reduction = legacy_reduction("cross_entropy", size_average, reduce, reduction)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating, np.integer)):
        raise TypeError(f"cross_entropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    probabilities = (isinstance(target, Variable) and target.dtype.kind == "f" and isinstance(input, Variable)
                     and tuple(target.shape) == tuple(input.shape))
    if weight is not None or probabilities:
        check_tensor("cross_entropy", "input", input)
        check_float("cross_entropy", input._array)
        return _cross_entropy_weighted(input, target, weight, int(ignore_index), reduction, float(label_smoothing))
    check_tensor("cross_entropy", "input", input)
    check_float("cross_entropy", input._array)
    if not (isinstance(target, (Variable, np.ndarray, list, tuple, numbers.Integral)) or is_device_array(target)):
        raise TypeError(f"cross_entropy: target must be a tensor of class indices, got {type(target).__name__}")
    t = on_device_of("cross_entropy", target, input._array)
    logits = input
    if input.ndim == 1:
        expected = ()
    elif input.ndim >= 2:
        expected = (input.shape[0],) + tuple(input.shape[2:])
    else:
        raise ValueError(f"cross_entropy: input must have a class axis, got shape {input.shape}")
    if tuple(t.shape) != expected:
        raise ValueError(f"cross_entropy: input {input.shape} expects target of shape {expected}, got {t.shape}")
    n_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    if t.dtype.kind not in "iu":
        check_indices("cross_entropy", t, n_classes, "target")  # raises: float (or NaN), bool, ... targets
    t = t.astype(np.int64, copy=False).reshape(-1)
    valid = t != ignore_index
    if isinstance(t, np.ndarray) and valid.all():  # the usual case: nothing ignored, one range check
        safe, valid = t, None
        if t.size and not (0 <= t.min() and t.max() < n_classes):
            check_indices("cross_entropy", t, n_classes, "target")  # raises, naming the bad value
    else:
        safe = np.where(valid, t, 0)
        check_indices("cross_entropy", safe, n_classes, "target")
    if input.ndim == 1:
        logits = reshape(logits, 1, -1)
    elif input.ndim > 2:  # class axis last, then flatten the rest
        perm = (0,) + tuple(range(2, input.ndim)) + (1,)
        logits = reshape(permute(logits, perm), -1, n_classes)
    loss = CrossEntropy.apply(logits, safe, valid, reduction, float(label_smoothing))
    if reduction == "none" and input.ndim != 2:
        loss = reshape(loss, expected)
    return loss


def cross_entropy_composite(logits, target, ignore_index=-100, label_smoothing=0.0):
    """The same mean cross-entropy over (N, C) logits from primitive ops: the reference path.

    log_softmax as x - m - log Σ e^(x - m) (m the row max, detached), then the target entries
    picked by integer indexing, mixed with the mean over the classes by the label smoothing ε,
    averaged over the rows whose target is not ignored.
    """
    t = move(target._array if isinstance(target, Variable) else np.asarray(target), "cpu")  # indices, on the host
    shifted = ew.sub(logits, red.amax(logits, -1, keepdim=True).detach())
    logp = ew.sub(shifted, ew.log(red.sum(ew.exp(shifted), -1, keepdim=True)))
    rows = np.flatnonzero(t != ignore_index)
    nll = ew.neg(getitem(logp, (rows, t[rows])))
    if label_smoothing:
        smooth = ew.neg(red.mean(getitem(logp, rows), -1))
        nll = ew.add(ew.mul(nll, 1 - label_smoothing), ew.mul(smooth, label_smoothing))
    return red.mean(nll)


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """PyTorch's F.mse_loss. An integer target takes the input's dtype; two float dtypes promote (float32
    and float64 give a float64 loss, each gradient in its tensor's dtype). Shapes that differ but
    broadcast give PyTorch's UserWarning, naming both. weight (a constant) multiplies each squared error."""
    reduction = legacy_reduction("mse_loss", size_average, reduce, reduction)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if weight is not None:
        input, target = _pointwise_operands("mse_loss", input, target)

        def rule(x, y):
            d = x - y
            return d * d, 2 * d, -2 * d
        _with_graph(rule, lambda x, y: (2 * (x - y), -2 * (x - y)))
        w = _same_size_weight("mse_loss", weight, input)
        return PointwiseLoss.apply(input, target, _weighted(_cast_rule(rule), w), reduction, w.sum())
    check_tensor("mse_loss", "input", input)
    check_tensor("mse_loss", "target", target)
    check_float("mse_loss", input._array)
    if target.dtype.kind in "biu":  # a constant: integer tensors never require grad
        target = target._wrap(target._array.astype(input.dtype))
    check_float("mse_loss", target._array)
    check_broadcast("mse_loss", input.shape, target.shape)
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(
            f"mse_loss: using a target size {tuple(target.shape)} that is different to the input size "
            f"{tuple(input.shape)}. This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            UserWarning, stacklevel=2,
        )
    return MSELoss.apply(input, target, reduction)


# ---- PyTorch's other losses ---------------------------------------------------------------------------
def legacy_reduction(op, size_average, reduce, reduction):
    """PyTorch's deprecated size_average/reduce pair mapped to a reduction (with PyTorch's warning), or
    `reduction` itself (checked) when both are None."""
    if size_average is not None or reduce is not None:
        sa = True if size_average is None else bool(size_average)
        rd = True if reduce is None else bool(reduce)
        reduction = "mean" if (sa and rd) else "sum" if rd else "none"
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' "
                      "instead.", UserWarning, stacklevel=3)
    return reduction


def _check_reduction(op, reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; expected one of {allowed}")


def _constant(op, name, value, like):
    """A weight-like constant (tensor, array, number or None) as an array of like's dtype on its device."""
    if value is None:
        return None
    if isinstance(value, Variable) and value.requires_grad and is_grad_enabled():
        raise NotImplementedError(
            f"{op}: {name} requires grad, and tinyattn takes it as a constant (no gradient would reach it; PyTorch "
            f"differentiates it): pass {name}.detach(), or write the weighting with tensor ops")
    a = on_device_of(op, value, like)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{op}: {name} must be a numeric tensor, got dtype {a.dtype}")
    return a.astype(like.dtype, copy=False)


def _reduce_value(loss, reduction, divisor=None):
    be = backend_of(loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return be.asarray(loss.sum())
    n = loss.size if divisor is None else divisor
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty mean is NaN, as in PyTorch
        return be.asarray(loss.sum() / loss.dtype.type(n))


class PointwiseLoss(Function):
    """A loss l(x, y) evaluated elementwise (with broadcasting), then reduced: 'none', 'sum', 'mean'
    (divided by the element count), or 'batchmean' (divided by x.shape[0]).

    `rule(x, y)` returns (l, dl/dx, dl/dy) as arrays (the local derivatives written out per loss in
    its rule's docstring; None for a side without one). Backward: dx = sum_to_shape(g · dl/dx),
    dy = sum_to_shape(g · dl/dy), g = dloss (or dloss / n for the means) broadcast over the elements.
    `rule.graph(x, y)` gives (dl/dx, dl/dy) again, from tensors with tensor ops: the differentiable backward
    (create_graph=True) is the same formula on those.
    """

    @staticmethod
    def forward(ctx, x, y, rule, reduction, divisor):
        loss, dx, dy = rule(x, y)
        ctx.save_for_backward(dx, dy, x, y)  # x, y: the values for rule.graph (a create_graph backward)
        ctx.rule = rule
        ctx.shapes, ctx.dtypes, ctx.reduction = (x.shape, y.shape), (x.dtype, y.dtype), reduction
        if divisor is None:
            divisor = loss.size if reduction == "mean" else x.shape[0] if reduction == "batchmean" else 1
        ctx.n = divisor
        return _reduce_value(loss, "mean" if reduction == "batchmean" else reduction, divisor)

    @staticmethod
    def backward(ctx, dloss):
        dx, dy = ctx.saved[:2]
        g = dloss if ctx.reduction in ("none", "sum") else dloss / dloss.dtype.type(ctx.n)  # (n: Σ weight too)
        need_x, need_y = ctx.needs_input_grad[:2]
        gx = sum_to_shape(g * dx, ctx.shapes[0]).astype(ctx.dtypes[0], copy=False) if need_x and dx is not None \
            else None
        gy = sum_to_shape(g * dy, ctx.shapes[1]).astype(ctx.dtypes[1], copy=False) if need_y and dy is not None \
            else None
        return gx, gy, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dloss):
        """backward with the local derivatives from `rule.graph` on the input tensors (the saved values for
        an argument that needs no gradient): dl/dx and dl/dy then depend on x and y through recorded ops."""
        x, y = inputs[:2]
        x_value, y_value = ctx.saved[2:]
        local_x, local_y = ctx.rule.graph(constant(dloss, x_value) if x is None else x,
                                          constant(dloss, y_value) if y is None else y)
        g = dloss if ctx.reduction in ("none", "sum") else dloss / ctx.n
        gx = None if x is None or local_x is None else sum_to_shape_graph(g * local_x, ctx.shapes[0])
        gy = None if y is None or local_y is None else sum_to_shape_graph(g * local_y, ctx.shapes[1])
        return gx, gy, None, None, None


def _pointwise_operands(op, input, target, same_size=None, warn_size=True):
    """input and target as float tensors of one dtype whose shapes broadcast (PyTorch's checks)."""
    check_tensor(op, "input", input)
    check_tensor(op, "target", target)
    check_float(op, input._array)
    if target.dtype.kind in "biu":  # a constant: integer tensors never require grad
        target = target._wrap(target._array.astype(input.dtype))
    check_float(op, target._array)
    if same_size is not None and tuple(input.shape) != tuple(target.shape):
        raise ValueError(same_size.format(t=tuple(target.shape), i=tuple(input.shape)))
    check_broadcast(op, input.shape, target.shape)
    if warn_size and tuple(input.shape) != tuple(target.shape):
        warnings.warn(
            f"{op}: using a target size {tuple(target.shape)} that is different to the input size "
            f"{tuple(input.shape)}. This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.", UserWarning, stacklevel=3)
    return input, target


def _with_graph(rule, graph):
    """Give a pointwise rule its tensor form: graph(x, y) -> (dl/dx, dl/dy) as recorded ops (PointwiseLoss's
    differentiable backward calls it)."""
    setattr(rule, "graph", graph)
    return rule


def _weighted(rule, w):
    """rule with every term (loss and both derivatives) multiplied by the constant weight w."""
    if w is None:
        return rule

    def weighted(x, y):
        loss, dx, dy = rule(x, y)
        return loss * w, None if dx is None else dx * w, None if dy is None else dy * w

    def graph(x, y):
        dx, dy = getattr(rule, "graph")(x, y)
        return None if dx is None else dx * w, None if dy is None else dy * w
    _with_graph(weighted, graph)
    return weighted


def _cast_rule(rule):
    """Both operands in their common dtype before the rule (float32 with float64: float64, as PyTorch)."""
    def cast(x, y):
        dt = np.result_type(x.dtype, y.dtype)
        return rule(x.astype(dt, copy=False), y.astype(dt, copy=False))

    def graph(x, y):
        dt = np.result_type(x.dtype, y.dtype)
        return getattr(rule, "graph")(x if x.dtype == dt else x.to(dt), y if y.dtype == dt else y.to(dt))
    _with_graph(cast, graph)
    return cast


def _same_size_weight(op, weight, input):
    """l1_loss's and mse_loss's weight (PyTorch 2.x): the input's shape; 'mean' then divides by Σ weight."""
    w = _constant(op, "weight", weight, input._array)
    if w is not None and tuple(w.shape) != tuple(input.shape):
        raise ValueError(f"{op}: Weights and input must have the same size. (weight {tuple(w.shape)}, "
                         f"input {tuple(input.shape)})")
    return w


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """PyTorch's F.l1_loss: |x - y|.  dl/dx = sign(x - y) (0 at a tie), dl/dy = -dl/dx. With weight
    (the input's shape), each term is multiplied by it and 'mean' divides by Σ weight, as PyTorch."""
    reduction = legacy_reduction("l1_loss", size_average, reduce, reduction)
    _check_reduction("l1_loss", reduction)
    input, target = _pointwise_operands("l1_loss", input, target)

    def rule(x, y):
        d = x - y
        s = np.sign(d)
        return np.abs(d), s, -s
    _with_graph(rule, lambda x, y: ((x - y).sign(), -(x - y).sign()))
    w = _same_size_weight("l1_loss", weight, input)
    return PointwiseLoss.apply(input, target, _weighted(_cast_rule(rule), w), reduction,
                               None if w is None else w.sum())


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """PyTorch's F.smooth_l1_loss: d = x - y; 0.5 d²/β where |d| < β, else |d| - 0.5 β (β = 0: |d|).
    dl/dx = d/β where |d| < β, else sign(d); dl/dy = -dl/dx."""
    reduction = legacy_reduction("smooth_l1_loss", size_average, reduce, reduction)
    _check_reduction("smooth_l1_loss", reduction)
    if not isinstance(beta, numbers.Real) or beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be a non-negative number, got {beta!r}")
    input, target = _pointwise_operands("smooth_l1_loss", input, target)

    def rule(x, y):
        d = x - y
        a = np.abs(d)
        if beta == 0:
            return a, np.sign(d), -np.sign(d)
        small = a < beta
        b = d.dtype.type(beta)
        loss = np.where(small, 0.5 * d * d / b, a - 0.5 * b)
        g = np.where(small, d / b, np.sign(d))
        return loss, g, -g

    def graph(x, y):
        d = x - y
        if beta == 0:
            return d.sign(), -d.sign()
        g = ew.where(constant(d, np.abs(d._array) < beta), d / beta, d.sign())
        return g, -g
    _with_graph(rule, graph)
    return PointwiseLoss.apply(input, target, _cast_rule(rule), reduction, None)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """PyTorch's F.huber_loss: d = x - y; 0.5 d² where |d| <= δ, else δ (|d| - 0.5 δ).
    dl/dx = d where |d| <= δ, else δ sign(d); dl/dy = -dl/dx."""
    _check_reduction("huber_loss", reduction)
    if not isinstance(delta, numbers.Real) or not delta > 0:
        raise ValueError(f"huber_loss: delta must be a positive number, got {delta!r}")
    input, target = _pointwise_operands("huber_loss", input, target)

    def rule(x, y):
        d = x - y
        a = np.abs(d)
        k = d.dtype.type(delta)
        small = a <= k
        loss = np.where(small, 0.5 * d * d, k * (a - 0.5 * k))
        g = np.where(small, d, k * np.sign(d))
        return loss, g, -g

    def graph(x, y):
        d = x - y
        g = ew.where(constant(d, np.abs(d._array) <= delta), d, delta * d.sign())
        return g, -g
    _with_graph(rule, graph)
    w = _constant("huber_loss", "weight", weight, input._array)
    return PointwiseLoss.apply(input, target, _weighted(_cast_rule(rule), w), reduction, None)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """PyTorch's F.binary_cross_entropy on probabilities x in [0, 1]:
        l = -w (y log x + (1 - y) log(1 - x)), each log clamped at >= -100 (PyTorch's);
        dl/dx = w (x - y) / max(x (1 - x), 1e-12),   dl/dy = w (log(1 - x) - log x) (clamped logs).
    weight is a constant (no gradient), broadcast against the input."""
    reduction = legacy_reduction("binary_cross_entropy", size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy", reduction)
    input, target = _pointwise_operands(
        "binary_cross_entropy", input, target, warn_size=False,
        same_size="binary_cross_entropy: Using a target size ({t}) that is different to the input size ({i}) is "
                  "deprecated. Please ensure they have the same size.")
    x = input._array
    if x.size and bool(((x < 0) | (x > 1)).any()):
        raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1")

    def rule(x, y):
        with np.errstate(divide="ignore"):
            lx = np.maximum(np.log(x), x.dtype.type(-100))
            l1x = np.maximum(np.log1p(-x), x.dtype.type(-100))
        loss = -(y * lx + (1 - y) * l1x)
        dx = (x - y) / np.maximum(x * (1 - x), x.dtype.type(1e-12))
        return loss, dx, l1x - lx

    def graph(x, y):
        lx, l1x = x.log().clamp(min=-100), (1 - x).log().clamp(min=-100)
        return (x - y) / (x * (1 - x)).clamp(min=1e-12), l1x - lx
    _with_graph(rule, graph)
    w = _constant("binary_cross_entropy", "weight", weight, input._array)
    if w is not None:
        check_broadcast("binary_cross_entropy", w.shape, input.shape)
    return PointwiseLoss.apply(input, target, _weighted(_cast_rule(rule), w), reduction, None)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """PyTorch's F.binary_cross_entropy_with_logits, finite for any logit x (p = pos_weight, 1 if None):
        l = w (p y softplus(-x) + (1 - y) softplus(x))       [= -w (p y log σ(x) + (1 - y) log(1 - σ(x)))]
        dl/dx = w ((p y + 1 - y) σ(x) - p y),   dl/dy = w (p softplus(-x) - softplus(x)).
    weight and pos_weight are constants (no gradient); pos_weight broadcasts against the last (class) axis."""
    reduction = legacy_reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    input, target = _pointwise_operands(
        "binary_cross_entropy_with_logits", input, target, warn_size=False,
        same_size="binary_cross_entropy_with_logits: Target size ({t}) must be the same as input size ({i})")
    pw = _constant("binary_cross_entropy_with_logits", "pos_weight", pos_weight, input._array)
    w = _constant("binary_cross_entropy_with_logits", "weight", weight, input._array)
    for name, a in (("pos_weight", pw), ("weight", w)):
        if a is not None:
            check_broadcast(f"binary_cross_entropy_with_logits: {name}", a.shape, input.shape)

    def rule(x, y):
        sp_neg = np.logaddexp(0, -x)  # softplus(-x) = -log σ(x)
        sp_pos = sp_neg + x  # softplus(x) = -log(1 - σ(x))
        s = 0.5 * (1 + np.tanh(0.5 * x))  # σ(x)
        p = 1 if pw is None else pw
        loss = p * y * sp_neg + (1 - y) * sp_pos
        return loss, (p * y + 1 - y) * s - p * y, p * sp_neg - sp_pos

    def graph(x, y):
        p = 1 if pw is None else pw
        sp_neg = softplus(-x)
        return (p * y + 1 - y) * x.sigmoid() - p * y, p * sp_neg - (sp_neg + x)
    _with_graph(rule, graph)
    return PointwiseLoss.apply(input, target, _weighted(_cast_rule(rule), w), reduction, None)


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """PyTorch's F.kl_div: input holds log-probabilities log q, target probabilities p (log p with log_target):
        l = p (log p - log q)  (0 where p = 0),    dl/dinput = -p,  dl/dp = log p + 1 - log q (0 where p = 0)
        log_target: l = e^t (t - input),           dl/dinput = -e^t, dl/dt = e^t (t - input + 1).
    reduction 'batchmean' divides the sum by input.shape[0] (the KL divergence's definition); 'mean'
    divides by the element count and warns, as PyTorch does."""
    reduction = legacy_reduction("kl_div", size_average, reduce, reduction)
    _check_reduction("kl_div", reduction, _REDUCTIONS + ("batchmean",))
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    input, target = _pointwise_operands("kl_div", input, target, warn_size=False)
    if reduction == "batchmean" and input.ndim == 0:
        reduction = "sum"  # PyTorch: a 0-d input's batch size is 1

    def rule(x, t):
        if log_target:
            e = np.exp(t)
            return e * (t - x), -e, e * (t - x + 1)
        pos = t > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            logt = np.where(pos, np.log(np.where(pos, t, 1)), 0)
        loss = np.where(pos, t * (logt - x), np.where(t == 0, 0, np.nan)).astype(x.dtype, copy=False)
        return loss, -t, np.where(pos, logt + 1 - x, 0)

    def graph(x, t):
        if log_target:
            e = t.exp()
            return -e, e * (t - x + 1)
        pos = constant(t, t._array > 0)
        logt = ew.where(pos, t, 1.0).log()
        return -t, ew.where(pos, logt + 1 - x, 0.0)
    _with_graph(rule, graph)
    return PointwiseLoss.apply(input, target, _cast_rule(rule), reduction, None)


class NLLLoss(Function):
    """loss_n = -w[t_n] · logp[n, t_n] for each row n whose target is not ignore_index (0 otherwise);
    'mean' divides the sum by Σ_n w[t_n] over those rows (PyTorch's weighted mean), 'sum' sums.
    Backward: dlogp[n, t_n] = -w[t_n] · dloss_n (divided by that total for 'mean'), 0 elsewhere."""

    @staticmethod
    def forward(ctx, logp, target, weight, ignore_index, reduction):
        be = backend_of(logp)
        valid = target != ignore_index  # (N,)
        safe = np.where(valid, target, 0)
        w = (weight[safe] if weight is not None else np.ones(safe.shape, logp.dtype)) * valid
        picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
        losses = -w * picked
        ctx.save_for_backward(safe, w)
        ctx.shape, ctx.reduction = logp.shape, reduction
        if reduction == "none":
            return losses
        if reduction == "sum":
            return be.asarray(losses.sum())
        ctx.total = w.sum()
        with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: NaN, as in PyTorch
            return be.asarray(losses.sum() / ctx.total)

    @staticmethod
    def backward(ctx, dloss):
        safe, w = ctx.saved
        scale = dloss / ctx.total if ctx.reduction == "mean" else dloss
        d = np.zeros(ctx.shape, w.dtype)
        d[np.arange(ctx.shape[0]), safe] = -w * scale
        return d, None, None, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dloss):
        """dlogp[n, t_n] = -w[t_n] · dloss_n (/ Σ w for 'mean') with recorded ops: dloss times a constant
        (N, C) table (linear in dloss, constant in logp: the second derivative in logp is 0)."""
        from ..autograd.function import constant

        safe, w = ctx.saved
        n = ctx.shape[0]
        table = np.zeros(ctx.shape, w.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: NaN, as backward gives
            table[np.arange(n), safe] = -w / ctx.total if ctx.reduction == "mean" else -w
        per_row = dloss.reshape(n, 1) if ctx.reduction == "none" else dloss.reshape(1, 1)
        return per_row * constant(dloss, table), None, None, None, None


def _class_rows(op, input, target, ignore_index):
    """input (N, C) / (C,) / (N, C, d1, ...) and its class-index target as (rows (M, C), indices (M,), the
    shape of an unreduced result)."""
    check_tensor(op, "input", input)
    check_float(op, input._array)
    t = on_device_of(op, target, input._array)
    if input.ndim == 1:
        expected = ()
    elif input.ndim >= 2:
        expected = (input.shape[0],) + tuple(input.shape[2:])
    else:
        raise ValueError(f"{op}: input must have a class axis, got shape {tuple(input.shape)}")
    if tuple(t.shape) != expected:
        raise ValueError(f"{op}: input {tuple(input.shape)} expects target of shape {expected}, got {tuple(t.shape)}")
    n_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    if np.issubdtype(t.dtype, np.integer):
        check_indices(op, np.where(t == ignore_index, 0, t), n_classes, "target")
    else:
        check_indices(op, t, n_classes, "target")
    t = t.astype(np.int64)
    rows = input
    if input.ndim == 1:
        rows, t = reshape(input, 1, -1), t.reshape(1)
    elif input.ndim > 2:
        perm = (0,) + tuple(range(2, input.ndim)) + (1,)
        rows, t = reshape(permute(input, perm), -1, n_classes), t.reshape(-1)
    return rows, t, expected, n_classes


def _class_weight(op, weight, n_classes, like):
    if weight is None:
        return None
    w = _constant(op, "weight", weight, like)
    if w.shape != (n_classes,):
        raise ValueError(f"{op}: weight should be a 1-D tensor of {n_classes} elements (one per class), "
                         f"got shape {tuple(w.shape)}")
    return w


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """PyTorch's F.nll_loss on log-probabilities: input (N, C) with target (N,), (C,) with a scalar target,
    or (N, C, d1, ...) with (N, d1, ...); class weights, ignore_index and the weighted 'mean'."""
    reduction = legacy_reduction("nll_loss", size_average, reduce, reduction)
    _check_reduction("nll_loss", reduction)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"nll_loss: ignore_index must be an int, got {ignore_index!r}")
    rows, t, expected, n_classes = _class_rows("nll_loss", input, target, ignore_index)
    w = _class_weight("nll_loss", weight, n_classes, input._array)
    loss = NLLLoss.apply(rows, t, w, int(ignore_index), reduction)
    if reduction == "none" and input.ndim != 2:
        loss = reshape(loss, expected)
    return loss


def _cross_entropy_weighted(input, target, weight, ignore_index, reduction, label_smoothing):
    """cross_entropy with class weights or probability targets, composed from log_softmax, nll_loss and
    reductions (their backwards give its gradient). PyTorch's formulas:
      class indices: (1 - ε) nll_w + ε/C · Σ_c -w_c logp_c per row; 'mean' divides both by Σ_n w[t_n];
      probabilities: -Σ_c w_c p'_c logp_c per row, p' = (1 - ε) p + ε/C; 'mean' averages over N, d1, ...."""
    from .softmax import log_softmax

    class_dim = 0 if input.ndim == 1 else 1
    logp = log_softmax(input, class_dim)
    n_classes = input.shape[class_dim]
    if isinstance(target, Variable) and target.dtype.kind == "f":  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"cross_entropy: probability targets must have the input's shape {tuple(input.shape)}, "
                             f"got {tuple(target.shape)}")
        p = target
        if label_smoothing:
            p = ew.add(ew.mul(p, 1 - label_smoothing), label_smoothing / n_classes)
        w = _class_weight("cross_entropy", weight, n_classes, input._array)
        term = ew.mul(logp, p)
        if w is not None:
            term = ew.mul(term, w.reshape((n_classes,) + (1,) * (input.ndim - class_dim - 1)))
        per = ew.neg(red.sum(term, class_dim))
        if reduction == "none":
            return per
        if reduction == "sum":
            return red.sum(per)
        return red.mean(per)  # over every sample position (N, d1, ...), whatever the weights
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll
    rows, t, expected, _ = _class_rows("cross_entropy", logp, target, ignore_index)
    w = _class_weight("cross_entropy", weight, n_classes, input._array)
    valid = t != ignore_index
    term = rows if w is None else ew.mul(rows, w)
    smooth = ew.mul(ew.neg(red.sum(term, 1)), valid.astype(input.dtype))  # (M,), 0 for ignored rows
    if reduction == "none":
        smooth = reshape(smooth, expected) if input.ndim != 2 else smooth
    elif reduction == "sum":
        smooth = red.sum(smooth)
    else:
        wt = valid.astype(input.dtype) if w is None else w[np.where(valid, t, 0)] * valid
        smooth = ew.div(red.sum(smooth), float(wt.sum()))
    return ew.add(ew.mul(nll, 1 - label_smoothing), ew.mul(smooth, label_smoothing / n_classes))
