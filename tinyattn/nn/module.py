"""Module: parameters and sub-modules registered by attribute assignment, state_dict, modes."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from ..autograd import Function, RemovableHandle, is_grad_enabled
from ..backend import device_of, move
from ..cuda import parse_to_args
from ..tensor import Tensor
from .parameter import Parameter
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

if TYPE_CHECKING:
    _M = TypeVar("_M", bound="Module")

__all__ = [
    "BackwardHookFunction", "IncompatibleKeys", "Module",
]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer. Subclasses set attributes in __init__ and define forward().

    Assigning a Parameter registers it; assigning a Module registers it as a child, and its
    parameters appear under "child_name.param_name". Buffers (register_buffer) are state
    that is saved but not learned.
    """

    if TYPE_CHECKING:  # set in __init__ (through object.__setattr__), declared for the type checker
        training: bool
        _parameters: OrderedDict[str, Parameter | None]
        _modules: OrderedDict[str, Module | None]
        _buffers: OrderedDict[str, Tensor | None]
        _forward_pre_hooks: OrderedDict[int, Any]
        _forward_pre_hooks_with_kwargs: OrderedDict[int, bool]
        _forward_hooks: OrderedDict[int, Any]
        _forward_hooks_with_kwargs: OrderedDict[int, bool]
        _forward_hooks_always_called: OrderedDict[int, bool]
        _backward_hooks: OrderedDict[int, Any]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        for name in _HOOK_REGISTRIES:  # PyTorch's names; see register_forward_hook and friends
            object.__setattr__(self, name, OrderedDict())

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

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    # ---- hooks (PyTorch's names and semantics) -------------------------------------------
    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call `hook(module, args)` before each forward. It may return None, or new positional
        arguments (a tuple; a single value is wrapped into one). With with_kwargs=True it is called
        as `hook(module, args, kwargs)` and may return None or a tuple (new_args, new_kwargs).
        `prepend=True` runs it before the hooks registered so far. Returns a handle with .remove()."""
        return self._add_hook(self._forward_pre_hooks, hook, prepend,
                              (self._forward_pre_hooks_with_kwargs,) if with_kwargs else ())

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Call `hook(module, args, output)` after each forward (`hook(module, args, kwargs, output)`
        with with_kwargs=True). It may return None, or a value that replaces the output.
        always_call=True also calls it when forward raises (then output is None), before the error
        goes on. Returns a handle with .remove()."""
        extra = ((self._forward_hooks_with_kwargs,) if with_kwargs else ()) + (
            (self._forward_hooks_always_called,) if always_call else ())
        return self._add_hook(self._forward_hooks, hook, prepend, extra)

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """Call `hook(module, grad_input, grad_output)` when the gradients with respect to the
        module's inputs have been computed. grad_output holds the gradients with respect to the
        outputs (one entry per output tensor), grad_input those with respect to the positional
        arguments (one entry per argument; None for one that is not a tensor requiring grad). The
        hook may return a tuple of the same length, which replaces grad_input in what flows on.
        When no input requires grad it is called with grad_input all None as soon as grad_output
        is known. It must not change its arguments in place. Returns a handle with .remove().

        As in PyTorch, the module's inputs and outputs pass through an identity op that catches
        their gradients, so a graph drawn while the hook is registered shows BackwardHookFunction
        nodes around the module."""
        return self._add_hook(self._backward_hooks, hook, prepend, ())

    def _add_hook(self, registry, hook, prepend, flags):
        if not callable(hook):
            raise TypeError(f"{type(self).__name__}: a hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(registry, *flags)
        registry[handle.id] = hook
        for flag in flags:
            flag[handle.id] = True
        if prepend:
            registry.move_to_end(handle.id, last=False)
        return handle

    def _call_with_hooks(self, args, kwargs):
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"{type(self).__name__}: a forward pre-hook with kwargs must return None "
                                           f"or a tuple (new_args, new_kwargs), got {type(result).__name__}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward_hook = None
        if self._backward_hooks and is_grad_enabled():
            backward_hook = _BackwardHook(self)
            args = backward_hook.wrap_inputs(args)
        try:
            output = self.forward(*args, **kwargs)
        except BaseException:
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called:
                    try:
                        if hook_id in self._forward_hooks_with_kwargs:
                            hook(self, args, kwargs, None)
                        else:
                            hook(self, args, None)
                    except Exception:
                        pass  # the forward's error is the one to report
            raise
        for hook_id, hook in list(self._forward_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs, output)
            else:
                result = hook(self, args, output)
            if result is not None:
                output = result
        if backward_hook is not None:
            output = backward_hook.wrap_outputs(output)
        return output

    # ---- traversal -------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator[Module]:
        return (m for m in self._modules.values() if m is not None)

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:  # shared (tied) parameters appear once
                    seen.add(id(p))
                    yield (f"{module_prefix}.{name}" if module_prefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for module_prefix, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), b

    # ---- modes and gradients ---------------------------------------------------------
    def train(self: _M, mode: bool = True) -> _M:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self: _M) -> _M:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad._array[...] = 0

    def requires_grad_(self: _M, requires_grad: bool = True) -> _M:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self: _M, *args: Any, **kwargs: Any) -> _M:
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
                        t._array = move(t._array, device.type)
                        if t.grad is not None:
                            t.grad._array = move(t.grad._array, device.type)
                    if cast:
                        t._array = t._array.astype(dtype)
                        t.grad = None
        return self

    def cuda(self: _M, device: int | None = None) -> _M:
        return self.to("cuda" if device is None else f"cuda:{device}")

    def cpu(self: _M) -> _M:
        return self.to("cpu")

    def double(self: _M) -> _M:
        return self.to(np.float64)

    def float(self: _M) -> _M:
        return self.to(np.float32)

    def apply(self: _M, fn: Callable[[Module], Any]) -> _M:
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- state -------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Name -> tensor (detached, sharing memory) for every parameter and buffer."""
        state = OrderedDict()
        for prefix, m in self.named_modules():
            for registry in (m._parameters, m._buffers):
                for name, t in registry.items():
                    if t is not None:
                        state[f"{prefix}.{name}" if prefix else name] = t.detach()
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
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
            target._array[...] = move(value, device_of(target._array))  # shares memory with the parameter
            target._bump_version()  # and its version counter: a graph that saved the old value will say so
        return IncompatibleKeys(missing, unexpected)

    # ---- display -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


_HOOK_REGISTRIES = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                    "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_hooks")


class BackwardHookFunction(Function):
    """Identity on a module's input or output tensors, placed there by register_full_backward_hook:
    its backward sees the gradients with respect to them (PyTorch's BackwardHookFunction).

    y_i = x_i;  dx_i = dy_i (or what a backward hook returns instead, on the input side).
    """

    @staticmethod
    def forward(ctx, hook, side, *arrays):
        ctx.hook, ctx.side = hook, side
        return arrays

    @staticmethod
    def backward(ctx, grads):
        grads = ctx.hook.on_output_grads(grads) if ctx.side == "output" else ctx.hook.on_input_grads(grads)
        return (None, None, *grads)

    @staticmethod
    def differentiable_backward(ctx, inputs, grads):
        """backward with gradient tensors (create_graph=True): the module's hooks see grad_output and
        grad_input as those tensors, graphs included, and a tensor a hook returns replaces grad_input with its
        graph (PyTorch's hooks under create_graph)."""
        hook = ctx.hook
        grads = tuple(grads)
        if ctx.side == "output":
            packed = [None] * hook.n_outputs
            for i, g in zip(hook.output_positions, grads):
                packed[i] = g
            hook.grad_output = tuple(packed)
            if not hook.input_positions:  # no input gradient will come: call the hooks now, as PyTorch does
                hook._call((None,) * hook.n_args)
            return (None, None, *grads)
        packed = [None] * hook.n_args
        for i, g in zip(hook.input_positions, grads):
            packed[i] = g
        result = hook._call(tuple(packed))
        return (None, None, *(result[i] for i in hook.input_positions))


class _BackwardHook:
    """One forward call of a module with full backward hooks: wraps its inputs and outputs in
    BackwardHookFunction, keeps grad_output when it arrives and calls the hooks with grad_input."""

    def __init__(self, module):
        self.module = module
        self.n_args, self.input_positions = 0, ()
        self.n_outputs, self.output_positions = 0, ()
        self.grad_output = None

    @staticmethod
    def _identity(hook, side, tensors):
        outs = BackwardHookFunction.apply(hook, side, *tensors)
        for t, out in zip(tensors, outs):
            out._counter = t._counter  # the same memory: an in-place change of either is seen by both
        return outs

    def wrap_inputs(self, args):
        self.n_args = len(args)
        self.input_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not self.input_positions:
            return args
        outs = self._identity(self, "input", [args[i] for i in self.input_positions])
        args = list(args)
        for i, out in zip(self.input_positions, outs):
            args[i] = out
        return tuple(args)

    def wrap_outputs(self, output):
        single = isinstance(output, Tensor)
        items = [output] if single else list(output) if isinstance(output, (tuple, list)) else None
        if items is None:
            return output
        self.n_outputs = len(items)
        self.output_positions = [i for i, o in enumerate(items) if isinstance(o, Tensor) and o.requires_grad]
        if not self.output_positions:
            return output
        outs = self._identity(self, "output", [items[i] for i in self.output_positions])
        for i, out in zip(self.output_positions, outs):
            items[i] = out
        return items[0] if single else type(output)(items)

    @staticmethod
    def _pack(n, positions, grads):
        packed = [None] * n
        for i, g in zip(positions, grads):
            packed[i] = None if g is None else Tensor._wrap(g)
        return tuple(packed)

    def on_output_grads(self, grads):
        self.grad_output = self._pack(self.n_outputs, self.output_positions, grads)
        if not self.input_positions:  # no input gradient will come: call the hooks now, as PyTorch does
            self._call((None,) * self.n_args)
        return grads

    def on_input_grads(self, grads):
        grad_input = self._pack(self.n_args, self.input_positions, grads)
        result = self._call(grad_input)
        if result is None:
            return grads
        return tuple(None if result[i] is None else result[i]._array for i in self.input_positions)

    def _call(self, grad_input):
        grad_output = self.grad_output if self.grad_output is not None else (None,) * self.n_outputs
        name = type(self.module).__name__
        for hook in list(self.module._backward_hooks.values()):
            out = hook(self.module, grad_input, grad_output)
            if out is None:
                continue
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != len(grad_input):
                raise RuntimeError(f"{name}: a backward hook returned {len(out)} gradients for grad_input, which has "
                                   f"{len(grad_input)} entries")
            for i, (new, old) in enumerate(zip(out, grad_input)):
                if new is not None and old is not None and tuple(new.shape) != tuple(old.shape):
                    raise RuntimeError(f"{name}: a backward hook returned grad_input[{i}] of shape "
                                       f"{tuple(new.shape)}; the input has shape {tuple(old.shape)}")
            grad_input = out
        return grad_input
