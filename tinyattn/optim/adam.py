"""Adam and AdamW (PyTorch's torch.optim.Adam / AdamW), through the backend's fused update."""
import numpy as np

from ..backend import backend_of
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): with g (+ weight_decay · w, L2 style),
        m ← β1 m + (1-β1) g,  v ← β2 v + (1-β2) g²,
        w ← w - lr · m̂ / (√v̂ + eps),  m̂ = m / (1-β1^t),  v̂ = v / (1-β2^t),
    where t counts this parameter's own steps (one that had no gradient has not stepped), as in PyTorch.
    """

    decoupled = False
    _pair_keys = ("betas",)
    _state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_hyper(self, hyper, at):
        super()._check_hyper(hyper, at)
        if "betas" in hyper:
            betas = hyper["betas"]
            if len(betas) != 2:
                raise ValueError(f"{at}betas must be a pair (beta1, beta2), got {betas!r}")
            for i, beta in enumerate(betas):
                if not 0.0 <= beta < 1.0:
                    raise ValueError(f"{at}invalid beta parameter at index {i}: {beta!r} (must be in [0, 1))")

    def _update(self, w, g, state, group):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)  # on w's device (DeviceArray implements np.zeros_like)
            state["exp_avg_sq"] = np.zeros_like(w)
        state["step"] += 1
        t = state["step"]
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        backend_of(w).adam_update(  # the update above, in place: one fused pass (a Numba kernel on the CPU)
            w, g, state["exp_avg"], state["exp_avg_sq"], beta1, beta2, lr / bias1, bias2, group["eps"],
            decay=1 - lr * wd if self.decoupled else 1.0, l2=0.0 if self.decoupled else wd)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): w ← w (1 - lr · λ) before the Adam step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
