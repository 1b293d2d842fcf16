"""Optimizer: the base class, with PyTorch's param_groups, state and state_dict.

An optimiser holds `param_groups`, a list of dicts: each has "params" (a list of leaf tensors) and
its own hyperparameters (lr, weight_decay, ...), a key missing from a group taking the constructor's
default. `state` maps each parameter to its buffers (momentum, Adam's moments and step count).
`step()` updates every parameter that has a gradient, in place, and bumps its version counter, so
a backward through a graph that saved the old value raises instead of using the new one.

state_dict() has PyTorch's layout:

    {"state":        {0: {"step": 3, "exp_avg": tensor, ...}, 1: {...}},   # by parameter position
     "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), ..., "params": [0, 1]}, {...}]}

Parameters are numbered across the groups in order, as in PyTorch. Buffers are host copies, as tensors; the
step count is a Python int (PyTorch keeps a 0-d tensor). load_state_dict also takes the older tinyattn layout
(dicts keyed "0", "1", ... for the lists, NumPy arrays for the buffers).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..autograd import enable_grad
from ..backend import device_of, move
from ..tensor import Tensor
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .._typing import Params

_EXTRA_GROUP_KEYS = ("initial_lr",)  # set by the learning-rate schedulers (lr_scheduler.LRScheduler)
_NUMBER_KEYS = ("lr", "initial_lr", "momentum", "dampening", "weight_decay", "eps")  # become Python floats


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


class Optimizer:
    """Base class. The built-in optimisers pass their defaults, check them in `_check_hyper` and
    define `_update(w, g, state, group)` on raw arrays; a user's optimiser may instead override
    step() as in PyTorch, walking `self.param_groups` and `self.state[p]` (and calling
    p._bump_version() after changing p in place).

    Args:
        params: an iterable of tensors, or of dicts (param groups) each with a "params" entry and
            any of the defaults' keys.
        defaults: the hyperparameters a group takes when it does not give its own.
    """

    # the buffers one parameter's state holds (all of them once it has any); None: any
    _state_keys: tuple[str, ...] | None = None
    _pair_keys: tuple[str, ...] = ()  # hyperparameters that are pairs of numbers (Adam's betas)
    _bool_keys: tuple[str, ...] = ()  # hyperparameters that are True or False (SGD's nesterov)

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got {type(params).__name__}")
        if isinstance(params, (dict, set)):
            raise TypeError(f"{name}: params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts (in a list), but got {type(params).__name__}")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        self.defaults = self._normalise(dict(defaults), "")
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # ---- groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (a dict with "params" and optionally its own hyperparameters), e.g. layers
        unfrozen while fine-tuning. Its missing keys take the optimizer's defaults."""
        name, where = type(self).__name__, f"param group {len(self.param_groups)}"
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: {where} has no 'params' entry")
        unknown = sorted(set(param_group) - {"params", *self.defaults, *_EXTRA_GROUP_KEYS})
        if unknown:
            raise TypeError(f"{name}: {where} has unknown key(s) {unknown}; "
                            f"known: {sorted(self.defaults) + list(_EXTRA_GROUP_KEYS)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs; use a list instead")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: optimizer can only optimize Tensors, but {where} item {i} "
                                f"is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor ({where} item {i}, shape {p.shape}); "
                                 "optimise the leaf it was computed from, or .detach() it into a new leaf")
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"{name}: can only optimize floating-point tensors, but {where} item {i} "
                                f"has dtype {p.dtype}")
        seen = set()
        for p in params:
            if id(p) in seen:
                raise ValueError(f"{name}: {where} contains the same parameter (shape {p.shape}) more than once")
            seen.add(id(p))
        if any(id(p) in seen for g in self.param_groups for p in g["params"]):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        group = self._normalise({**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}, where)
        group["params"] = params
        self.param_groups.append(group)

    def _normalise(self, hyper, where):
        """Check a group's hyperparameters; numbers become Python floats (np.float32(1e-3) included)."""
        at = f"{type(self).__name__}: {where}: " if where else f"{type(self).__name__}: "
        out = {}
        for key, value in hyper.items():
            if key in self._pair_keys:
                try:
                    value = tuple(value)
                except TypeError:
                    raise TypeError(f"{at}{key} must be a pair of numbers, got {value!r}") from None
                if not all(_is_number(v) for v in value):
                    raise TypeError(f"{at}{key} must be numbers, got {value!r}")
                value = tuple(float(v) for v in value)
            elif key in self._bool_keys:
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"{at}{key} must be True or False, got {value!r}")
                value = bool(value)
            elif key in _NUMBER_KEYS:
                if isinstance(value, Tensor) and value.numel() == 1 and value.dtype.kind == "f":
                    value = value.item()  # a tensor lr (PyTorch keeps the tensor; here its value is taken now)
                if not _is_number(value):
                    raise TypeError(f"{at}{key} must be a number, got {type(value).__name__}")
                value = float(value)
            out[key] = value  # any other key: a subclass's own setting, kept as given
        self._check_hyper(out, at)
        return out

    def _check_hyper(self, hyper, at):
        """Raise ValueError (message prefix `at`) for an out-of-range value among those in `hyper`."""
        for key in ("lr", "initial_lr", "eps", "weight_decay", "momentum"):
            if key in hyper and not hyper[key] >= 0:  # NaN fails too
                raise ValueError(f"{at}invalid {key} {hyper[key]!r} (must be >= 0)")

    @property
    def lr(self):
        """The learning rate when every group has the same one (kept from before param_groups);
        setting it sets every group's."""
        lrs = {g["lr"] for g in self.param_groups}
        if len(lrs) != 1:
            raise ValueError(f"{type(self).__name__}.lr: the param groups have different learning rates "
                             f"{[g['lr'] for g in self.param_groups]}; read param_groups[i]['lr']")
        return lrs.pop()

    @lr.setter
    def lr(self, value):
        value = self._normalise({"lr": value}, "lr")["lr"]
        for g in self.param_groups:
            g["lr"] = value

    # ---- stepping ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad = p.grad.detach()
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient. `closure`, if given, re-evaluates
        the model and returns the loss (with gradients enabled); step returns that loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                self._follow(p._array, state)
                self._update(p._array, p.grad._array, state, group)
                p._bump_version()  # p changed in place: a graph that saved it can no longer backward
        return loss

    def _update(self, w, g, state, group):
        raise NotImplementedError

    @staticmethod
    def _follow(w, state):
        """Move a parameter's state to its device first (the model may have moved since the last
        step), so that an update never half-runs and then fails on mixed devices."""
        host = type(w) is np.ndarray
        for key, value in state.items():
            if host and type(value) is np.ndarray:  # (the common case, without device_of's checks)
                continue
            if not isinstance(value, (int, float)) and device_of(value) != device_of(w):
                state[key] = move(value, device_of(w))

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout (see the module docstring); host copies."""
        index = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index[id(p)] = len(index)
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, buffers in self.state.items():
            if buffers and id(p) in index:
                state[index[id(p)]] = {k: v if isinstance(v, (int, float)) else Tensor._wrap(np.array(move(v, "cpu")))
                                       for k, v in buffers.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore groups' hyperparameters and per-parameter state from state_dict(). Everything is
        checked before anything changes: a bad checkpoint leaves the optimizer as it was."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}: expected a dict from state_dict(), got {type(state_dict).__name__}")
        unknown = sorted(set(state_dict) - {"state", "param_groups"})
        if unknown or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected the keys 'param_groups' and 'state' (as state_dict() gives), "
                             f"got {sorted(state_dict)}")
        saved_groups = _as_list(state_dict["param_groups"], f"{name}: param_groups")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the checkpoint has {len(saved_groups)} parameter group(s), "
                             f"this optimizer has {len(self.param_groups)}")
        known = {*self.defaults, *_EXTRA_GROUP_KEYS}
        new_groups, params_by_id = [], {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            where = f"param group {g}"
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"{name}: {where} is not a dict with a 'params' entry")
            unknown = sorted(set(saved) - known - {"params"})
            if unknown:
                raise ValueError(f"{name}: {where} has unknown key(s) {unknown} (a checkpoint of another optimizer?)")
            ids = [int(i) for i in np.asarray(saved["params"], dtype=np.int64).reshape(-1)]
            if len(ids) != len(group["params"]):
                raise ValueError(f"{name}: {where} has {len(ids)} parameter(s) in the checkpoint, "
                                 f"{len(group['params'])} in this optimizer")
            for i, p in zip(ids, group["params"]):
                if i in params_by_id:
                    raise ValueError(f"{name}: parameter index {i} appears twice in the checkpoint's groups")
                params_by_id[i] = p
            hyper = {k: (tuple(np.asarray(v.numpy() if isinstance(v, Tensor) else v).tolist())
                         if k in self._pair_keys else v)
                     for k, v in saved.items() if k != "params"}
            hyper = self._normalise({**{k: v for k, v in group.items() if k != "params"}, **hyper}, where)
            new_groups.append({**hyper, "params": group["params"]})
        new_state = defaultdict(dict)
        saved_state = state_dict.get("state", {})
        if not isinstance(saved_state, dict):
            raise ValueError(f"{name}: 'state' must be a dict keyed by parameter index")
        for key, buffers in saved_state.items():
            try:
                p = params_by_id[int(key)]
            except (KeyError, ValueError):
                raise ValueError(f"{name}: state entry {key!r} refers to no parameter of the checkpoint's groups "
                                 f"(indices {sorted(params_by_id)})") from None
            new_state[p] = self._load_buffers(buffers, p, f"{name}: state {key!r}")
        self.param_groups[:] = new_groups
        self.state = new_state

    def _state_keys_for(self, p):
        """The buffers that p's state holds once it has any (None: any set is accepted)."""
        return self._state_keys

    def _load_buffers(self, buffers, p, where):
        if not isinstance(buffers, dict):
            raise ValueError(f"{where} must be a dict of buffers, got {type(buffers).__name__}")
        keys = self._state_keys_for(p)
        if keys is not None and set(buffers) != set(keys):
            raise ValueError(f"{where} has the keys {sorted(buffers)}; {type(self).__name__} keeps "
                             f"{sorted(keys)}")
        out = {}
        for key, value in buffers.items():
            if key == "step":
                if not _is_number(value) or int(value) != value or value < 0:
                    raise ValueError(f"{where}: step must be a non-negative integer, got {value!r}")
                out[key] = int(value)
                continue
            if _is_number(value):  # a subclass's scalar state
                out[key] = value
                continue
            value = np.asarray(value.numpy() if isinstance(value, Tensor) else move(value, "cpu"))
            if value.shape != p.shape:
                raise ValueError(f"{where}: {key!r} has shape {value.shape}, the parameter has shape {p.shape}")
            out[key] = move(value.astype(p.dtype, copy=True), device_of(p._array))
        return out

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(getattr(self, "param_groups", [])):
            lines.append(f"Parameter Group {g}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])


def _as_list(value, where):
    """A list/tuple as it is; a dict keyed "0".."n-1" (what tinyattn.load gives back) as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        try:
            keys = sorted(value, key=int)
        except ValueError:
            raise ValueError(f"{where}: keys must be indices 0..n-1, got {sorted(value)}") from None
        if [int(k) for k in keys] != list(range(len(keys))):
            raise ValueError(f"{where}: keys must be indices 0..n-1, got {keys}")
        return [value[k] for k in keys]
    raise ValueError(f"{where}: expected a dict keyed by index or a list, got {type(value).__name__}")


__all__ = ["Optimizer"]
