"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's torch.optim.SGD)."""
from __future__ import annotations

from .optimizer import Optimizer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Params

__all__ = [
    "SGD",
]


class SGD(Optimizer):
    """Per parameter, with g its gradient and the group's hyperparameters:

        g ← g + weight_decay · w
        v ← g at the first step, then momentum · v + (1 - dampening) · g      (when momentum ≠ 0)
        g ← g + momentum · v with nesterov, else v
        w ← w - lr · g
    """

    _bool_keys = ("nesterov", "maximize", "differentiable")
    _state_keys = ("momentum_buffer",)

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def _check_hyper(self, hyper, at):
        super()._check_hyper(hyper, at)
        if hyper.get("nesterov") and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(f"{at}Nesterov momentum requires a momentum and zero dampening")
        if hyper.get("differentiable"):
            raise NotImplementedError(f"{at}differentiable=True is not supported: tinyattn's optimiser step is "
                                      "not recorded by autograd")

    def _update(self, w, g, state, group):
        if group.get("maximize"):
            g = -g
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w
        momentum = group["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                v = state["momentum_buffer"]
                v *= momentum
                v += (1 - group["dampening"]) * g
            v = state["momentum_buffer"]
            g = g + momentum * v if group["nesterov"] else v
        w -= group["lr"] * g
