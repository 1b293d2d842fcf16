"""Adam and AdamW (PyTorch's torch.optim.Adam / AdamW), through the backend's fused update."""
from __future__ import annotations

import numpy as np

from .. import runtime
from ..backend import backend_of, host_zeros_like
from .optimizer import Optimizer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Params

__all__ = [
    "Adam", "AdamW",
]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): with g (+ weight_decay · w, L2 style),
        m ← β1 m + (1-β1) g,  v ← β2 v + (1-β2) g²,
        w ← w - lr · m̂ / (√v̂ + eps),  m̂ = m / (1-β1^t),  v̂ = v / (1-β2^t),
    where t counts this parameter's own steps (one that had no gradient has not stepped), as in PyTorch.
    With amsgrad=True the denominator uses v_max ← max(v_max, v) instead of v; with maximize=True the
    step climbs (g ← -g); decoupled_weight_decay=True makes it AdamW.

    foreach, fused and capturable are accepted and change nothing (the CPU update is one fused pass
    already); differentiable=True is refused (the update is not recorded as a graph).
    """

    _pair_keys = ("betas",)
    _bool_keys = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")
    _state_keys = ("step", "exp_avg", "exp_avg_sq")  # and max_exp_avg_sq with amsgrad

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      foreach=foreach, maximize=maximize, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))
        runtime.expect_kernels("adam", self._update_kernels)

    def _update_kernels(self):
        """The kernels the first step's fused updates will run (compiled ahead on a cold start: runtime.py)."""
        return [job for group in self.param_groups if not group["amsgrad"] for p in group["params"]
                for job in getattr(backend_of(p._array), "adam_kernels", lambda w: [])(p._array)]

    def _state_keys_for(self, p):
        amsgrad = next(g["amsgrad"] for g in self.param_groups if any(q is p for q in g["params"]))
        return self._state_keys + ("max_exp_avg_sq",) if amsgrad else self._state_keys

    def _check_hyper(self, hyper, at):
        super()._check_hyper(hyper, at)
        if "betas" in hyper:
            betas = hyper["betas"]
            if len(betas) != 2:
                raise ValueError(f"{at}betas must be a pair (beta1, beta2), got {betas!r}")
            for i, beta in enumerate(betas):
                if not 0.0 <= beta < 1.0:
                    raise ValueError(f"{at}invalid beta parameter at index {i}: {beta!r} (must be in [0, 1))")
        for key in ("foreach", "fused"):
            if hyper.get(key) not in (None, True, False):
                raise TypeError(f"{at}{key} must be None, True or False, got {hyper[key]!r}")
        if hyper.get("differentiable"):
            raise NotImplementedError(f"{at}differentiable=True is not supported: tinyattn's optimiser step is "
                                      "not recorded by autograd")

    def _update(self, w, g, state, group):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = host_zeros_like(w)  # on w's device (on a cache line on the host)
            state["exp_avg_sq"] = host_zeros_like(w)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = host_zeros_like(w)
        state["step"] += 1
        t = state["step"]
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        if group.get("maximize"):
            g = -g
        if not group.get("amsgrad"):
            backend_of(w).adam_update(  # the update above, in place: one fused pass (a Numba kernel on the CPU)
                w, g, state["exp_avg"], state["exp_avg_sq"], beta1, beta2, lr / bias1, bias2, group["eps"],
                decay=1 - lr * wd if decoupled else 1.0, l2=0.0 if decoupled else wd)
            return
        if "max_exp_avg_sq" not in state:  # amsgrad switched on after steps without it: start from v
            state["max_exp_avg_sq"] = state["exp_avg_sq"].copy()
        m, v, v_max = state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"]
        if decoupled:
            w *= w.dtype.type(1 - lr * wd)
        elif wd:
            g = g + wd * w
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        v_max[...] = np.maximum(v_max, v)
        w -= (lr / bias1) * m / (np.sqrt(v_max / bias2) + group["eps"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): w ← w (1 - lr · λ) before the Adam step."""

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
