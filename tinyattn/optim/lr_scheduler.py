"""Learning-rate schedules with PyTorch's semantics (torch.optim.lr_scheduler).

A scheduler acts on every param group of its optimizer. At construction it records each group's
starting lr as group["initial_lr"] (kept when already there), which gives `base_lrs`, sets
`last_epoch` to 0 and writes the lrs for step 0. Each `step()` (called after `optimizer.step()`)
advances `last_epoch` by one and writes the next lrs; `get_last_lr()` returns them.

To resume: build the optimizer and the scheduler as for a fresh run, then load both state_dicts
(the optimizer's holds each group's lr and initial_lr; the scheduler's holds last_epoch and its
settings). Loading a scheduler changes no lr by itself, as in PyTorch.

LambdaLR, LinearLR and CosineAnnealingLR follow PyTorch's recursive ("chainable") formulas, each
step scaling the group's current lr; `_get_closed_form_lr()` gives the same schedule from base_lrs
directly. WarmupCosine is this library's own: a linear warmup, then a cosine down to min_lr.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .optimizer import Optimizer
from typing import TYPE_CHECKING, Any


def _lists(value, n, what, where):
    """A number repeated n times, or a list/tuple/array of n numbers, as a list of floats."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [float(value)] * n
    values = list(np.asarray(value, dtype=np.float64).reshape(-1)) if not isinstance(value, (str, dict)) else None
    if values is None or len(values) != n:
        raise ValueError(f"{where}: expected {n} {what} (one per param group), got {value!r}")
    return [float(v) for v in values]


class LRScheduler:
    """Base class: subclasses set their settings, list them in `_settings`, and define get_lr()."""

    _settings: tuple[str, ...] = ()  # names of the subclass's settings, saved in state_dict beside the counters

    if TYPE_CHECKING:  # set in __init__ and step()
        optimizer: Optimizer
        base_lrs: list[float]
        last_epoch: int
        _step_count: int
        _last_lr: list[float]
        _is_initial: bool

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: {type(optimizer).__name__} is not an Optimizer")
        if not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
            raise ValueError(f"{name}: last_epoch must be an integer >= -1, got {last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{name}: param 'initial_lr' is not specified in param_groups[{i}] when "
                                   "resuming with last_epoch >= 0 (load the optimizer's state_dict first)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._step_count = 0
        self._is_initial = True  # the step below sets the lrs for last_epoch + 1 (0 for a fresh run)
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs of step `last_epoch`, one per param group."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The lrs the last step() wrote, one per param group."""
        return list(self._last_lr)

    def step(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}.step: the optimizer has {len(groups)} param groups, the "
                             f"scheduler was made for {len(self.base_lrs)} (add groups before the scheduler)")
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(groups, self.get_lr()):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in groups]

    def state_dict(self) -> dict[str, Any]:
        """Counters, base and last lrs, and the settings; lists as arrays, so tinyattn.save stores it."""
        out = {"last_epoch": self.last_epoch, "_step_count": self._step_count,
               "base_lrs": np.array(self.base_lrs, dtype=np.float64),
               "_last_lr": np.array(self._last_lr, dtype=np.float64)}
        for key in self._settings:
            value = getattr(self, key)
            out[key] = np.array(value, dtype=np.float64) if isinstance(value, list) else value
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from state_dict(); checks everything first, so a bad one changes nothing."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{where}: expected a dict from state_dict(), got {type(state_dict).__name__}")
        expected = {"last_epoch", "_step_count", "base_lrs", "_last_lr", *self._settings}
        if set(state_dict) != expected:
            missing, unknown = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
            raise ValueError(f"{where}: missing key(s) {missing}, unknown key(s) {unknown}")
        n = len(self.optimizer.param_groups)
        new = {"last_epoch": int(state_dict["last_epoch"]), "_step_count": int(state_dict["_step_count"]),
               "base_lrs": _lists(state_dict["base_lrs"], n, "base_lrs", where),
               "_last_lr": _lists(state_dict["_last_lr"], n, "_last_lr", where)}
        for key in self._settings:
            value = state_dict[key]
            current = getattr(self, key)
            if isinstance(current, list):
                value = _lists(value, n, key, where)
            elif isinstance(current, numbers.Integral):
                value = int(value)
            else:
                value = float(value)
            new[key] = value
        self.__dict__.update(new)


class LambdaLR(LRScheduler):
    """lr = initial_lr · lr_lambda(last_epoch), with one function for all groups or one per group.

    The functions are not part of state_dict (as in PyTorch, where plain functions are saved as None):
    give the same ones when rebuilding the scheduler.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"LambdaLR: expected {n} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        if not all(callable(f) for f in self.lr_lambdas):
            raise TypeError("LambdaLR: lr_lambda must be a function of the step, or a list of them")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * f(self.last_epoch) for f, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class LinearLR(LRScheduler):
    """The lr multiplied by a factor going linearly from start_factor to end_factor over total_iters
    steps, then held:  lr = initial_lr · (start + (end - start) · min(total_iters, t) / total_iters)."""

    _settings = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor {start_factor!r}: starting multiplicative factor expected "
                             "to be greater than 0 and less or equal to 1")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor {end_factor!r}: ending multiplicative factor expected to be "
                             "between 0 and 1")
        if not isinstance(total_iters, numbers.Integral) or total_iters < 1:
            raise ValueError(f"LinearLR: total_iters must be a positive integer, got {total_iters!r}")
        self.start_factor, self.end_factor, self.total_iters = float(start_factor), float(end_factor), int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] * self.start_factor for g in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [g["lr"] for g in groups]
        ratio = 1.0 + (self.end_factor - self.start_factor) / (
            self.total_iters * self.start_factor + (self.last_epoch - 1) * (self.end_factor - self.start_factor))
        return [g["lr"] * ratio for g in groups]

    def _get_closed_form_lr(self):
        factor = self.start_factor + (self.end_factor - self.start_factor) * min(
            self.total_iters, self.last_epoch) / self.total_iters
        return [base_lr * factor for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) · (1 + cos(π t / T_max)) / 2  (SGDR without restarts;
    past T_max the cosine goes on, rising again, as in PyTorch)."""

    _settings = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if not isinstance(T_max, numbers.Integral) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got {T_max!r}")
        if not isinstance(eta_min, numbers.Real) or not eta_min >= 0:
            raise ValueError(f"CosineAnnealingLR: eta_min must be a number >= 0, got {eta_min!r}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, t, T, low = self.optimizer.param_groups, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [g["lr"] for g in groups]
        if (t - 1 - T) % (2 * T) == 0:  # the step after the minimum: the ratio below would divide by 0
            return [g["lr"] + (base_lr - low) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, g in zip(self.base_lrs, groups)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (g["lr"] - low) + low for g in groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class WarmupCosine(LRScheduler):
    """lr(t) = base · (t + 1) / warmup_steps for t < warmup_steps, then a cosine from base down to
    min_lr at total_steps, held there after:

        lr(t) = min_lr + (base - min_lr) · (1 + cos(π · min(1, (t - warmup) / (total - warmup)))) / 2

    base is each group's initial_lr; min_lr is one number for every group or one per group.
    Call step() once per optimiser step, after it.
    """

    _settings = ("warmup_steps", "total_steps", "min_lrs")

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        if not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
            raise ValueError(f"WarmupCosine: warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        if not isinstance(total_steps, numbers.Integral) or total_steps <= warmup_steps:
            raise ValueError(f"WarmupCosine: total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        n = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 1
        self.min_lrs = _lists(min_lr, n, "min_lr values", "WarmupCosine")
        if not all(m >= 0 for m in self.min_lrs):
            raise ValueError(f"WarmupCosine: min_lr must be >= 0, got {min_lr!r}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self):
        t, warmup = self.last_epoch, self.warmup_steps
        if t < warmup:
            return [base_lr * (t + 1) / warmup for base_lr in self.base_lrs]
        progress = min(1.0, (t - warmup) / (self.total_steps - warmup))
        return [low + 0.5 * (base_lr - low) * (1 + math.cos(math.pi * progress))
                for base_lr, low in zip(self.base_lrs, self.min_lrs)]


__all__ = ["LRScheduler", "LambdaLR", "LinearLR", "CosineAnnealingLR", "WarmupCosine"]
