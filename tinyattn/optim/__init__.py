"""Optimisers and learning-rate schedules with PyTorch's API (torch.optim).

    opt = ta.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                          {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)
    sched = ta.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    ...
    loss.backward(); opt.step(); sched.step()

optimizer.py    Optimizer: param_groups, add_param_group, state, zero_grad, state_dict
sgd.py          SGD (momentum, dampening, Nesterov, weight decay)
adam.py         Adam, AdamW (the backend's fused update: one kernel per parameter on a GPU)
lr_scheduler.py LambdaLR, LinearLR, CosineAnnealingLR, WarmupCosine
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import WarmupCosine
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "WarmupCosine", "lr_scheduler"]
