"""Variable: the autograd half of a tensor (its array, gradient, requires_grad, the node that made it, hooks).

`tinyattn.tensor.Tensor` subclasses it and adds the user-facing operators and methods.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..backend import device_of
from .graph import VersionCounter

if TYPE_CHECKING:
    from ..size import Size
    from ..tensor import Tensor
    from .graph import Node

__all__ = ["Variable"]


class Variable:
    """The autograd half of a tensor: an array, its gradient, and the node that made it."""

    # _view: None, or (base, steps) for a tensor whose data is a view of `base`'s data, made from it by
    # the view Functions in `steps` ((Function, extra args, output index) each); see replay_view.
    # _hooks: None; for a leaf, {handle id: hook} once register_hook was called; for a non-leaf, RETAINS once
    # retain_grad() was called (its hooks live on its node, see register_hook).
    __slots__ = ("_array", "_grad", "_requires_grad", "_node", "_index", "_counter", "_view", "_hooks", "__weakref__")

    if TYPE_CHECKING:  # what Tensor adds, declared for the type checker (ops take and check Variables)
        @property
        def shape(self) -> Size: ...
        @property
        def ndim(self) -> int: ...
        @property
        def dtype(self) -> np.dtype: ...

    def __init__(self, data, requires_grad=False, node=None):
        self._array = data
        self._grad = None
        self._node = node
        self._index = 0
        self._counter = VersionCounter()
        self._view = None
        self._hooks = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has seen (PyTorch's t._version)."""
        return self._counter.value

    def _bump_version(self):
        """Record an in-place change of `data` (in-place ops and optimisers call this)."""
        self._counter.value += 1

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self._node is None and not np.issubdtype(self._array.dtype, np.floating):
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, got dtype {self._array.dtype}"
            )
        if not flag and self._node is not None:
            raise RuntimeError(
                "requires_grad: cannot turn off gradients of a non-leaf tensor; use .detach() instead"
            )
        self._requires_grad = bool(flag)

    @property
    def grad(self) -> Tensor | None:
        """The gradient that backward() accumulated here (a leaf, or a tensor that called retain_grad())."""
        return self._grad

    @grad.setter
    def grad(self, value):
        """PyTorch's checks: None, or a tensor of this tensor's shape, dtype and device."""
        if value is not None:
            if not isinstance(value, Variable):
                raise TypeError(f"grad: assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__}")
            if value._array.dtype != self._array.dtype:
                raise RuntimeError(f"grad: assigned grad has data of a different type ({value._array.dtype}) than "
                                   f"the tensor ({self._array.dtype})")
            if value._array.shape != self._array.shape:
                raise RuntimeError(f"grad: assigned grad has data of a different size {tuple(value._array.shape)} "
                                   f"than the tensor {tuple(self._array.shape)}")
            if device_of(value._array) != device_of(self._array):
                raise RuntimeError(f"grad: assigned grad has data located on {device_of(value._array)}, the tensor "
                                   f"on {device_of(self._array)}")
        self._grad = value

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Node | None:
        return self._node

    def backward(self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs: Any = None) -> None:
        """PyTorch's Tensor.backward: accumulate d(self)/d(leaf) into the leaves' .grad, or, with `inputs`,
        into those tensors' .grad only (leaves or not). See `backward` below."""
        backward(self, gradient, retain_graph, create_graph, inputs)

    # ---- hooks (PyTorch's Tensor.register_hook / retain_grad) --------------------------------
    def register_hook(self, hook: Callable[[Any], Any]) -> RemovableHandle:
        """Call `hook(grad)` each time the gradient with respect to this tensor is computed.

        The hook gets the gradient as a tensor and returns None or a tensor of the same shape,
        which replaces the gradient from then on: what flows on to the tensor's inputs, what
        later hooks see, what `.grad` receives. Hooks run in the order they were registered; on a
        leaf they run once per backward, on the sum of every contribution, before it is added to
        `.grad`. A hook must not change its argument in place (it is read-only): return a new one.

        As in PyTorch, a hook on a non-leaf belongs to the value the tensor has now: after an
        in-place change (`h.mul_(2)`) the tensor stands for a new node, and a hook registered
        before the change still receives the gradient of the old value. Register it afterwards to
        see the gradient of the new value. Returns a handle; `handle.remove()` takes the hook off.
        """
        if not callable(hook):
            raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        if self._node is None:
            if not isinstance(self._hooks, dict):
                self._hooks = {}
            hooks = self._hooks
        else:
            hooks = output_hooks(self).fns
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in its `.grad` during backward (a leaf keeps
        it anyway: then this does nothing). It follows the tensor through in-place changes (its
        `.grad` is the gradient of the tensor's latest value), it sees the gradient after every
        hook of the tensor has run, and it accumulates over backward calls, as in PyTorch.
        `autograd.grad` fills it too (when its walk passes the tensor), as PyTorch's does."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False")
        if self._node is None or self._hooks is RETAINS:
            return
        self._hooks = RETAINS
        ref = weakref.ref(self)
        retained.append(ref)
        output_hooks(self).retain.append(ref)

    @property
    def retains_grad(self) -> bool:
        """True for a non-leaf tensor on which retain_grad() was called (PyTorch's name)."""
        return self._node is not None and self._hooks is RETAINS

    def detach(self) -> Tensor:
        """The same data, cut from the graph: no gradient flows through the result.

        It shares the memory and the version counter, as in PyTorch: an in-place change of either
        is seen by a backward that saved the other.
        """
        out = self._wrap(self._array)
        self._counter.share(out)
        return out

    @classmethod
    def _wrap(cls, data, requires_grad=False, node=None, index=0):
        """Build a result around an array, skipping user-input checks.

        Tensor overrides this so that op results and gradients are plain tensors even when
        an input is a subclass (a Parameter).
        """
        out = cls.__new__(cls)
        if isinstance(data, np.generic):  # a numpy scalar (a full reduction): a 0-d array, which can change in place
            data = np.asarray(data)
        out._array, out.grad, out._requires_grad, out._node, out._index = data, None, requires_grad, node, index
        out._counter, out._view, out._hooks = VersionCounter(), None, None
        return out


# The walk and the hooks use Variable (isinstance checks); Variable's methods call them. Imported here, after
# Variable exists, so the package imports this module first and they find it defined (see __init__.py).
from .engine import backward  # noqa: E402
from .hooks import RETAINS, RemovableHandle, output_hooks, retained  # noqa: E402
