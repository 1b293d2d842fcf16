"""Optimisers (SGD, Adam, AdamW) and learning-rate schedules, with PyTorch's update rules.

Each optimiser updates `p.data` in place from `p.grad`; its state_dict holds the learning
rate, the number of steps taken and the per-parameter state (buffers and, for Adam, each
parameter's own step count, by parameter position), so that training resumed from a
checkpoint continues exactly.
"""
import math

import numpy as np

from .backend import backend_of, device_of, move


class Optimizer:
    def __init__(self, params, defaults):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        self.defaults = dict(defaults)
        self.lr = self.defaults["lr"]
        self.state = [dict() for _ in self.params]
        self.step_count = 0

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def step(self):
        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._follow(p.data, self.state[i])
                self._update(p.data, p.grad.data, self.state[i])

    def _update(self, w, g, state):
        raise NotImplementedError

    @staticmethod
    def _follow(w, state):
        """Move a parameter's state to its device first (the model may have moved since the last
        step), so that an update never half-runs and then fails on mixed devices."""
        for key, value in state.items():
            if not isinstance(value, (int, float)) and device_of(value) != device_of(w):
                state[key] = move(value, device_of(w))

    def state_dict(self):
        """Flat name -> array/number dict (it saves to .npz as it is); arrays are host copies."""
        out = {"step_count": self.step_count, "lr": self.lr}
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"state.{i}.{key}"] = value if isinstance(value, (int, float)) else np.array(move(value, "cpu"))
        return out

    def load_state_dict(self, state_dict):
        n = len(self.params)
        new_state = [dict() for _ in range(n)]
        for key, value in state_dict.items():
            if not key.startswith("state."):
                continue
            _, index, name = key.split(".", 2)
            i = int(index)
            if i >= n:
                raise KeyError(f"{type(self).__name__}.load_state_dict: {key!r} refers to parameter {i}, but there are {n}")
            if name == "step":
                new_state[i][name] = int(value)
                continue
            value = np.asarray(value)
            if value.shape != self.params[i].shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape {value.shape}, "
                    f"parameter {i} has shape {self.params[i].shape}"
                )
            param = self.params[i].data
            new_state[i][name] = move(value.astype(param.dtype, copy=True), device_of(param))
        self.state = new_state
        self.step_count = int(state_dict["step_count"])
        self.lr = float(state_dict["lr"])


class SGD(Optimizer):
    """w ← w - lr · v, where v = momentum · v + (g + weight_decay · w) (v = g without momentum)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _update(self, w, g, state):
        d = self.defaults
        if d["weight_decay"]:
            g = g + d["weight_decay"] * w
        if d["momentum"]:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                v = state["momentum_buffer"]
                v *= d["momentum"]
                v += g
            g = state["momentum_buffer"]
        w -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): with g (+ weight_decay · w, L2 style),
        m ← β1 m + (1-β1) g,  v ← β2 v + (1-β2) g²,
        w ← w - lr · m̂ / (√v̂ + eps),  m̂ = m / (1-β1^t),  v̂ = v / (1-β2^t).
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, w, g, state):
        d = self.defaults
        beta1, beta2 = d["betas"]
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
            state["step"] = 0
        state["step"] += 1  # per parameter, as in PyTorch: one that had no gradient has not stepped
        t = state["step"]
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        wd = d["weight_decay"]
        backend_of(w).adam_update(  # the update above, in place, one fused pass on a GPU
            w, g, state["exp_avg"], state["exp_avg_sq"], beta1, beta2, self.lr / bias1, bias2, d["eps"],
            decay=1 - self.lr * wd if self.decoupled else 1.0, l2=0.0 if self.decoupled else wd)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): w ← w (1 - lr · λ) before the Adam step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class WarmupCosine:
    """lr(t) = base · (t + 1) / warmup for t < warmup, then a cosine from base down to min_lr at total_steps.

    Call step() once per optimiser step; it sets optimizer.lr for the next step.
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        if total_steps <= warmup_steps:
            raise ValueError(f"WarmupCosine: total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.optimizer, self.warmup, self.total, self.min_lr = optimizer, warmup_steps, total_steps, min_lr
        self.base_lr = optimizer.lr
        self.t = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t):
        if t < self.warmup:
            return self.base_lr * (t + 1) / self.warmup
        progress = min(1.0, (t - self.warmup) / (self.total - self.warmup))
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))

    def step(self):
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)

    def state_dict(self):
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.t, self.base_lr = int(state["t"]), float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.t)
