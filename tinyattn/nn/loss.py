"""Loss modules with torch.nn's names: CrossEntropyLoss and MSELoss, over tinyattn.functional's losses."""
from .. import functional as F
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name, reduction, size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError(f"{name}: size_average and reduce are deprecated in PyTorch and not supported; "
                         f"use reduction= (one of {_REDUCTIONS})")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


class CrossEntropyLoss(Module):
    """loss(input, target) = F.cross_entropy(input, target, ignore_index=, reduction=, label_smoothing=).

    input (N, C) logits with class-index targets (N,) (or (C,) with a scalar target, or (N, C, d1, ...)
    with (N, d1, ...)). Rows whose target is ignore_index add nothing, and 'mean' divides by the rows
    that count. Class weights (weight=) are not implemented.
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("CrossEntropyLoss: class weights (weight=) are not implemented; pass weight=None")
        _check_reduction("CrossEntropyLoss", reduction, size_average, reduce)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, float(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class MSELoss(Module):
    """loss(input, target) = mean((input - target)²) ('mean'), its sum ('sum'), or elementwise ('none')."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        _check_reduction("MSELoss", reduction, size_average, reduce)
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
