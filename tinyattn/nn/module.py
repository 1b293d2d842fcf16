"""Module: parameters and sub-modules registered by attribute assignment, state_dict, modes."""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from ..backend import device_of, move
from ..cuda import parse_to_args
from ..tensor import Tensor
from .parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer. Subclasses set attributes in __init__ and define forward().

    Assigning a Parameter registers it; assigning a Module registers it as a child, and its
    parameters appear under "child_name.param_name". Buffers (register_buffer) are state
    that is saved but not learned.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            # PyTorch's rule: `m.weight = m.weight - lr * g` would silently unregister the weight
            raise TypeError(
                f"{type(self).__name__}: cannot assign a {type(value).__name__} to {name!r}, which holds a Parameter "
                f"(nn.Parameter or None expected); to change its values in place use `with ta.no_grad(): "
                f"{name}.copy_(...)` or `{name} -= ...`"
            )
        if name in self._modules and value is not None and not isinstance(value, Module):
            raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to {name!r}, which holds "
                            "a submodule (a Module or None expected)")
        if name in self.__dict__.get("_buffer_names", ()) and value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to buffer {name!r} "
                            "(a Tensor or None expected)")
        was_parameter, was_module = name in self._parameters, name in self._modules
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter) or (value is None and was_parameter):  # None keeps the slot, as in PyTorch
            self._parameters[name] = value
        elif isinstance(value, Module) or (value is None and was_module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, tensor):
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, tensor)

    def register_parameter(self, name, param):
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal -------------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return (m for m in self._modules.values() if m is not None)

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:  # shared (tied) parameters appear once
                    seen.add(id(p))
                    yield (f"{module_prefix}.{name}" if module_prefix else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix=""):
        for module_prefix, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), b

    # ---- modes and gradients ---------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, *args, **kwargs):
        """Move every parameter and buffer to a device and/or cast the floating-point ones to a
        dtype, in place: .to("cuda"), .to(torch_dtype), .to(device, dtype) (PyTorch's Module.to).
        Parameters stay the same objects (optimisers built before keep working); gradients move
        with them."""
        device, dtype = parse_to_args(f"{type(self).__name__}.to", args, kwargs)
        dtype = None if dtype is None else np.dtype(dtype)
        for m in self.modules():
            for registry in (m._parameters, m._buffers):
                for t in registry.values():
                    if t is None:
                        continue
                    cast = dtype is not None and t.dtype.kind == "f" and t.dtype != dtype
                    if device is not None:
                        t.data = move(t.data, device.type)
                        if t.grad is not None:
                            t.grad.data = move(t.grad.data, device.type)
                    if cast:
                        t.data = t.data.astype(dtype)
                        t.grad = None
        return self

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{device}")

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- state -------------------------------------------------------------------------
    def state_dict(self):
        """Name -> tensor (detached, sharing memory) for every parameter and buffer."""
        state = OrderedDict()
        for prefix, m in self.named_modules():
            for registry in (m._parameters, m._buffers):
                for name, t in registry.items():
                    if t is not None:
                        state[f"{prefix}.{name}" if prefix else name] = t.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters and buffers, checking every key and shape first.

        Values may be tensors or arrays (converted to each parameter's dtype, as PyTorch's copy_).
        With strict=True a missing or unexpected key raises a RuntimeError naming it, as in PyTorch;
        a wrong shape or a non-numeric value always raises. Nothing is copied unless every check passes.
        """
        op = f"load_state_dict for {type(self).__name__}"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{op}: expected a dict-like state_dict (name -> tensor), got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise RuntimeError(f"{op}: " + "; ".join(parts) + " (pass strict=False to load the keys that match)")
        updates = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{op}: key {key!r} holds a value of dtype {value.dtype}, not numbers")
            if value.shape != target.shape:
                raise ValueError(f"{op}: key {key!r} has shape {value.shape}, the model expects {target.shape}")
            updates.append((target, value))
        for target, value in updates:
            target.data[...] = move(value, device_of(target.data))  # shares memory with the parameter
            target._bump_version()  # and its version counter: a graph that saved the old value will say so
        return IncompatibleKeys(missing, unexpected)

    # ---- display -------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
