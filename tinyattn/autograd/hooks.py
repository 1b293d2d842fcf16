"""Tensor hooks (register_hook), retain_grad, and the RemovableHandle every register_*hook returns."""
import itertools

import numpy as np

from ..backend import device_of
from .variable import Variable

__all__ = ["attach_retained", "call_hooks", "check_hook_result", "output_hooks", "RemovableHandle", "RETAINS",
           "retained"]


class RemovableHandle:
    """What every register_*hook returns: `handle.remove()` takes the hook off (PyTorch's
    torch.utils.hooks.RemovableHandle). Also a context manager that removes the hook on exit."""

    _ids = itertools.count()

    def __init__(self, *registries):
        self.id = next(RemovableHandle._ids)
        self._registries = registries

    def remove(self):
        for registry in self._registries:
            registry.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class _OutputHooks:
    """The hooks of one output of a node: `fns` {handle id: hook} in registration order, and
    `retain`, weak references to the tensors at that output that retain their gradient."""

    __slots__ = ("fns", "retain", "wrap")

    def __init__(self, wrap):
        self.fns, self.retain, self.wrap = {}, [], wrap


RETAINS = object()  # Variable._hooks of a non-leaf tensor on which retain_grad() was called
retained = []  # weak references to those tensors: each backward re-attaches them to their current node


def output_hooks(t):
    """The _OutputHooks of the node output that non-leaf tensor t stands for now."""
    node = t._node
    if node.hooks is None:
        node.hooks = {}
    entry = node.hooks.get(t._index)
    if entry is None:
        entry = node.hooks[t._index] = _OutputHooks(t._wrap)
    return entry


def attach_retained():
    """A tensor that was changed in place since retain_grad() stands for a new node: attach it
    there (PyTorch moves the retain_grad hook to the new grad_fn). Dead tensors are forgotten."""
    alive = []
    for ref in retained:
        t = ref()
        if t is None or t._node is None or t._hooks is not RETAINS:
            continue
        alive.append(ref)
        entry = output_hooks(t)
        if not any(r() is t for r in entry.retain):
            entry.retain.append(ref)
    retained[:] = alive


def call_hooks(hooks, g, wrap, where):
    """Run the hooks in order, each on the gradient the previous one left (shown read-only)."""
    for hook in list(hooks.values()):
        shown = g
        if isinstance(g, np.ndarray):
            shown = g.view()
            shown.flags.writeable = False
        out = hook(wrap(shown))
        if out is None:
            continue
        check_hook_result(hook, out, g, where)
        if out._array is not shown:
            g = out._array
    return g


def check_hook_result(hook, out, g, where):
    """What a hook returned in place of gradient array g: a tensor of g's shape, device and dtype (PyTorch's
    checks), else an error naming the hook and where it was registered."""
    if not isinstance(out, Variable):
        raise TypeError(f"hook {getattr(hook, '__name__', hook)!r} (on {where}) returned a "
                        f"{type(out).__name__}; a hook returns None or a tensor")
    if out._array.shape != g.shape:
        raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} (on {where}) returned a gradient of shape "
                           f"{tuple(out._array.shape)}; the gradient has shape {tuple(g.shape)}")
    if device_of(out._array) != device_of(g):
        raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} (on {where}) returned a gradient on "
                           f"{device_of(out._array)}; the gradient is on {device_of(g)}")
    if out._array.dtype != g.dtype:
        raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} (on {where}) has changed the type of the "
                           f"gradient (was {g.dtype}, got {out._array.dtype}); return a tensor of the "
                           "gradient's dtype")
