"""Losses: cross_entropy (through log-softmax, finite for huge logits) and mse_loss."""
import numbers
import warnings

import numpy as np

from ..autograd import Function, Variable
from ..backend import backend_of, is_device_array, move
from .checks import check_broadcast, check_float, check_indices, check_tensor, on_device_of, sum_to_shape
from . import elementwise as ew, reduction as red
from .shape import getitem, permute, reshape

_REDUCTIONS = ("mean", "sum", "none")


# Logits of at least this many elements take log_softmax's parallel backward kernel (CrossEntropy.backward);
# smaller ones (examples/reverse.py: 16k) the NumPy formula, so a cold start compiles no extra kernel.
FUSED_BACKWARD = 1 << 17


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

    @staticmethod
    def forward(ctx, logits, target, ignore_index, reduction, smoothing):
        be = backend_of(logits)
        logp = be.log_softmax(logits, -1)  # (N, C)
        valid = target != ignore_index  # (N,)
        safe_target = np.where(valid, target, 0)
        picked = np.take_along_axis(logp, safe_target[:, None], axis=1)[:, 0]
        per_row = -picked
        if smoothing:
            per_row = logp.dtype.type(1 - smoothing) * per_row - logp.dtype.type(smoothing) * logp.mean(axis=1)
        losses = np.where(valid, per_row, np.zeros((), logp.dtype))
        ctx.save_for_backward(logp, safe_target, valid)
        ctx.reduction, ctx.smoothing = reduction, smoothing
        if reduction == "none":
            return losses
        if reduction == "sum":
            return be.asarray(losses.sum())
        ctx.count = valid.sum().astype(logp.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: nan, as in PyTorch
            return be.asarray(losses.sum() / ctx.count)

    @staticmethod
    def backward(ctx, dloss):
        logp, safe_target, valid = ctx.saved
        be = backend_of(logp)
        eps = ctx.smoothing
        weight = valid.astype(logp.dtype) * (dloss / np.maximum(ctx.count, 1) if ctx.reduction == "mean" else dloss)
        if logp.size >= FUSED_BACKWARD and isinstance(logp, np.ndarray):
            # log_softmax's fused backward on the loss's gradient with respect to logp, which is
            # d_n = -w_n ((1 - ε) onehot(t_n) + ε/C): dx_n = d_n - p_n Σ_c d_n[c] = w_n (p_n - (1 - ε) onehot - ε/C),
            # one parallel pass instead of four serial NumPy ones (exp, compare, subtract, scale)
            d = np.full(logp.shape, -weight[:, None] * logp.dtype.type(eps / logp.shape[1]) if eps else 0,
                        dtype=logp.dtype)
            rows = np.arange(logp.shape[0])
            d[rows, safe_target] -= weight * logp.dtype.type(1 - eps)
            return be.log_softmax_backward(logp, d, -1), None, None, None, None
        onehot = safe_target[:, None] == be.xp.arange(logp.shape[1])  # (N, C) bool
        if eps:
            dlogits = np.exp(logp) - onehot * logp.dtype.type(1 - eps) - logp.dtype.type(eps / logp.shape[1])
        else:
            dlogits = np.exp(logp) - onehot
        return dlogits * weight[:, None], None, None, None, None


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


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """PyTorch's F.cross_entropy with class-index targets, ignore_index and label_smoothing.

    input (N, C) with target (N,); input (C,) with a scalar target; or input (N, C, d1, ...)
    with target (N, d1, ...), the class axis being dim 1. Class weights are not implemented
    (weight must be None). Options after weight are keyword-only (PyTorch has deprecated
    arguments between them).
    """
    if weight is not None:
        raise NotImplementedError("cross_entropy: class weights (weight=) are not implemented; pass weight=None")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating, np.integer)):
        raise TypeError(f"cross_entropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
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
    if np.issubdtype(t.dtype, np.integer):
        check_indices("cross_entropy", np.where(t == ignore_index, 0, t), n_classes, "target")
    else:
        check_indices("cross_entropy", t, n_classes, "target")  # raises: float (or NaN), bool, ... targets
    t = t.astype(np.int64)
    if input.ndim == 1:
        logits, t = reshape(logits, 1, -1), t.reshape(1)
    elif input.ndim > 2:  # class axis last, then flatten the rest
        perm = (0,) + tuple(range(2, input.ndim)) + (1,)
        logits, t = reshape(permute(logits, perm), -1, n_classes), t.reshape(-1)
    loss = CrossEntropy.apply(logits, t, ignore_index, reduction, float(label_smoothing))
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


def mse_loss(input, target, reduction="mean"):
    """PyTorch's F.mse_loss. An integer target takes the input's dtype; two float dtypes promote (float32
    and float64 give a float64 loss, each gradient in its tensor's dtype). Shapes that differ but
    broadcast give PyTorch's UserWarning, naming both."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
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
