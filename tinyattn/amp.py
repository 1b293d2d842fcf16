"""torch.amp for tinyattn: `autocast` and `GradScaler`, so that mixed-precision programs run.

tinyattn has no float16 or bfloat16 kernels, so an enabled autocast region computes in the dtypes its
inputs have (float32 normally) and says so once with a warning: results are more precise than PyTorch's
low-precision ones, and no memory is saved. GradScaler is PyTorch's algorithm (scale the loss, unscale the
gradients, skip steps whose gradients overflowed, grow or shrink the scale); with float32 gradients it
rarely finds an overflow, but it computes what PyTorch's does.
"""
import functools
import math
import warnings

import numpy as np

from .cuda import device as _device, is_available as _cuda_available

_DEFAULT_DTYPE = {"cpu": "bfloat16", "cuda": "float16"}
_warned = set()
_state = {"cpu": None, "cuda": None}  # the dtype of the innermost enabled region per device, else None


def _device_type(device_type, op):
    if not isinstance(device_type, str):
        raise TypeError(f"{op}: device_type must be a string such as 'cpu' or 'cuda', got {type(device_type).__name__}")
    kind = device_type.partition(":")[0]
    if kind not in _DEFAULT_DTYPE:
        raise RuntimeError(f"{op}: unsupported device_type {device_type!r}: tinyattn has 'cpu' and 'cuda'")
    return kind


class autocast:
    """torch.amp.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context manager
    and decorator. Ops inside keep their inputs' dtypes (see the module docstring)."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        self.device = _device_type(device_type, "autocast")
        self.fast_dtype = dtype if dtype is not None else _DEFAULT_DTYPE[self.device]
        self.enabled = bool(enabled)
        self._previous = None
        name = str(getattr(self.fast_dtype, "name", self.fast_dtype))
        if self.enabled and (self.device, name) not in _warned:
            _warned.add((self.device, name))
            warnings.warn(f"autocast(device_type={self.device!r}, dtype={name}): tinyattn has no {name} kernels, "
                          "so ops in this region compute in their inputs' dtypes (float32): more precise than "
                          "PyTorch's, and no memory is saved", stacklevel=2)

    def __enter__(self):
        self._previous = _state[self.device]
        if self.enabled:
            _state[self.device] = self.fast_dtype
        return self

    def __exit__(self, *exc):
        _state[self.device] = self._previous
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self.enabled):
                return function(*args, **kwargs)
        return wrapper


def is_autocast_available(device_type):
    return device_type in _DEFAULT_DTYPE


def is_autocast_enabled(device_type="cuda"):
    return _state[_device_type(device_type, "is_autocast_enabled")] is not None


def get_autocast_dtype(device_type):
    kind = _device_type(device_type, "get_autocast_dtype")
    return _state[kind] if _state[kind] is not None else _DEFAULT_DTYPE[kind]


class GradScaler:
    """torch.amp.GradScaler(device='cuda', init_scale=2.**16, growth_factor=2., backoff_factor=.5,
    growth_interval=2000, enabled=True).

        scaler.scale(loss).backward()   # d(loss * s)/dθ = s · dloss/dθ
        scaler.unscale_(opt)            # optional, e.g. before clip_grad_norm_: grads /= s, look for inf/NaN
        scaler.step(opt)                # opt.step() unless a gradient was not finite
        scaler.update()                 # s *= backoff after an overflow; s *= growth after
                                        # growth_interval clean steps in a row

    Asked for on 'cuda' without CUDA it warns and disables itself, as PyTorch does; a disabled scaler
    passes everything through (scale(x) is x, step(opt) is opt.step()).
    """

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self.device = _device(device).type
        if enabled and self.device == "cuda" and not _cuda_available():
            warnings.warn("GradScaler is enabled, but CUDA is not available.  Disabling.", stacklevel=2)
            enabled = False
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if not isinstance(growth_interval, int) or growth_interval <= 0:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self._enabled = bool(enabled)
        self._scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer = {}  # id(optimizer) -> {"unscaled": bool, "found_inf": bool, "stepped": bool}

    # ---- the four calls of a step -------------------------------------------------------------------
    def scale(self, outputs):
        """outputs * scale (a tensor, or a list/tuple/iterable of them), differentiably."""
        if not self._enabled:
            return outputs
        from .autograd import Variable
        if isinstance(outputs, Variable):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if hasattr(outputs, "__iter__"):
            return map(self.scale, outputs)
        raise ValueError(f"GradScaler.scale: outputs must be a tensor or an iterable of tensors, "
                         f"got {type(outputs).__name__}")

    def _state_of(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"unscaled": False, "found_inf": False,
                                                              "stepped": False})

    def unscale_(self, optimizer):
        """Divide every gradient of `optimizer`'s parameters by the scale, in place, and note whether any
        is inf or NaN. Once per optimizer between two update()s."""
        if not self._enabled:
            return
        state = self._state_of(optimizer)
        if state["unscaled"]:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stepped"]:
            raise RuntimeError("unscale_() is being called after step().")
        inverse = 1.0 / self._scale
        found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad._array
                g *= np.asarray(inverse, dtype=g.dtype)
                if not found_inf and not bool(np.all(np.isfinite(g))):
                    found_inf = True
        state["unscaled"], state["found_inf"] = True, found_inf

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs), after unscale_ if it was not called, unless a gradient was
        inf or NaN (then the step is skipped and None returned)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state_of(optimizer)
        if state["stepped"]:
            raise RuntimeError("step() has already been called since the last update().")
        if not state["unscaled"]:
            self.unscale_(optimizer)
        state["stepped"] = True
        if state["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        """Set the scale for the next step: new_scale if given, else back off after an overflow in any
        optimizer since the last update, or grow after growth_interval clean updates in a row."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = float(new_scale.item() if hasattr(new_scale, "item") else new_scale)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"GradScaler.update: new_scale must be a positive finite number, got {value}")
            self._scale = value
        else:
            if not self._per_optimizer:
                raise RuntimeError("No inf checks were recorded prior to update.")
            if any(s["found_inf"] for s in self._per_optimizer.values()):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer = {}

    # ---- inspection and checkpoints ------------------------------------------------------------------
    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self):
        return self._growth_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def get_growth_interval(self):
        return self._growth_interval

    def state_dict(self):
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_available", "is_autocast_enabled"]
