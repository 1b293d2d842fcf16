"""Reverse-mode automatic differentiation: Function, the graph, and the backward walk.

Every differentiable op is a `Function` with a hand-written `forward(ctx, ...)` and
`backward(ctx, grad)`. Both work on raw arrays (numpy on the CPU, DeviceArray on the GPU); `Function.apply`
unwraps Tensor arguments, runs `forward`, wraps the result, and, when a gradient is
needed, records a `Node` that remembers the Function, its context and its parents.

`backward(root)` orders the nodes reachable from `root` topologically, then visits each
node once, after every node that consumes its output. So a tensor used several times
receives the sum of its gradients before its own backward runs.

This module knows nothing about Tensor's user-facing API: `Variable` is the autograd half
of a tensor (data, grad, requires_grad, the node that made it); `tinyattn.tensor.Tensor`
subclasses it and adds operators and methods.
"""
import contextlib
import threading

import numpy as np

from .backend import backend_of, device_of

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


def set_grad_enabled(mode):
    _state.grad_enabled = bool(mode)


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) inside which no graph is recorded."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)
        return False


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside a `no_grad` block."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(True)
        return self


class Context:
    """What a Function's forward leaves for its backward.

    `needs_input_grad[i]` says whether input i needs a gradient, so backward can skip work.
    Arbitrary attributes (ctx.dim = ...) hold non-array state.
    """

    __slots__ = ("saved", "needs_input_grad", "__dict__")

    def __init__(self, needs_input_grad):
        self.saved = ()
        self.needs_input_grad = needs_input_grad

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @property
    def saved_tensors(self):  # PyTorch's name
        return self.saved


class Node:
    """One recorded op: the Function, its context, and the Variables it was applied to.

    `parents[i]` is the i-th positional argument when it is a Variable that requires a
    gradient, else None. `ctx` becomes None once backward has freed the saved values.
    A Function whose forward returns a tuple makes one Node with `n_outputs` outputs;
    each output tensor knows its position (`_index`).
    """

    __slots__ = ("function", "ctx", "parents", "n_outputs")

    def __init__(self, function, ctx, parents, n_outputs=1):
        self.function = function
        self.ctx = ctx
        self.parents = parents
        self.n_outputs = n_outputs

    @property
    def name(self):
        return self.function.__name__


class Variable:
    """The autograd half of a tensor: an array, its gradient, and the node that made it."""

    __slots__ = ("data", "grad", "_requires_grad", "_node", "_index", "__weakref__")

    def __init__(self, data, requires_grad=False, node=None):
        self.data = data
        self.grad = None
        self._node = node
        self._index = 0
        self._requires_grad = False
        self.requires_grad = requires_grad

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self._node is None and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        if not flag and self._node is not None:
            raise RuntimeError(
                "requires_grad: cannot turn off gradients of a non-leaf tensor; use .detach() instead"
            )
        self._requires_grad = bool(flag)

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def backward(self, grad=None, retain_graph=False):
        backward(self, grad, retain_graph)

    def detach(self):
        """The same data, cut from the graph: no gradient flows through the result."""
        return self._wrap(self.data)

    @classmethod
    def _wrap(cls, data, requires_grad=False, node=None, index=0):
        """Build a result around an array, skipping user-input checks.

        Tensor overrides this so that op results and gradients are plain tensors even when
        an input is a subclass (a Parameter).
        """
        out = cls.__new__(cls)
        out.data, out.grad, out._requires_grad, out._node, out._index = data, None, requires_grad, node, index
        return out


class Function:
    """Base class of every differentiable op.

    Subclasses define `forward(ctx, *args)` returning an array and `backward(ctx, grad)`
    returning one gradient (array or None) per positional argument of forward, in order.
    Call an op through `MyOp.apply(*args)`. A forward may return a tuple of arrays: apply
    then returns a tuple of tensors, and backward receives a tuple of their gradients
    (None for an output that no gradient reached).
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        first = None
        raw = []
        needs = []
        for a in args:
            if isinstance(a, Variable):
                if first is None:
                    first = a
                elif type(a.data) is not type(first.data):
                    _raise_mixed_devices(cls.__name__, first, a)
                raw.append(a.data)
                needs.append(a._requires_grad)
            else:
                raw.append(a)
                needs.append(False)
        record = any(needs) and is_grad_enabled()
        ctx = Context(tuple(needs))
        out = cls.forward(ctx, *raw)
        multiple = isinstance(out, tuple)
        if not record:
            return tuple(first._wrap(o) for o in out) if multiple else first._wrap(out)
        parents = tuple(a if n else None for a, n in zip(args, needs))
        node = Node(cls, ctx, parents, len(out) if multiple else 1)
        if multiple:
            return tuple(first._wrap(o, True, node, i) for i, o in enumerate(out))
        return first._wrap(out, True, node)


def _raise_mixed_devices(op, a, b):
    devices = [device_of(a.data), device_of(b.data)]
    if devices[0] == devices[1]:  # same device, array types differ (a numpy scalar): not a device mix
        return
    raise RuntimeError(
        f"{op}: expected all tensors on the same device, got one on {devices[0]} (shape {tuple(a.shape)}) "
        f"and one on {devices[1]} (shape {tuple(b.shape)}); move them with .to('{devices[0]}') or .to('{devices[1]}')"
    )


def _topological_order(root_node):
    """Nodes reachable from root_node, each after every node that consumes its output."""
    order, visited = [], set()
    stack = [(root_node, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if parent is not None and parent._node is not None and id(parent._node) not in visited:
                stack.append((parent._node, False))
    order.reverse()  # consumers first
    return order


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into every leaf's `.grad` that requires a gradient.

    `grad` is d(loss)/d(root); it may be omitted only when root holds a single element.
    Saved values are freed afterwards unless `retain_graph=True`.
    """
    if not root.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no grad_fn")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, "
                f"but the output has shape {tuple(root.data.shape)}; pass a gradient of that shape"
            )
        grad = np.ones_like(root.data)
    else:
        grad = getattr(grad, "data", grad)
        if device_of(grad) != device_of(root.data):
            raise RuntimeError(f"backward: the gradient is on {device_of(grad)}, the output on {device_of(root.data)}")
        grad = backend_of(root.data).asarray(grad, dtype=root.data.dtype)
        if grad.shape != root.data.shape:
            raise ValueError(
                f"backward: gradient shape {grad.shape} does not match output shape {root.data.shape}"
            )
    if root._node is None:
        _accumulate_leaf(root, grad)
        return

    pending = {}  # id(node) -> list of the gradients of its outputs (None until one arrives)
    _add_pending(pending, root, grad)
    for node in _topological_order(root._node):
        output_grads = pending.pop(id(node), None)
        if output_grads is None:  # no gradient flows through this node
            continue
        g = output_grads[0] if node.n_outputs == 1 else tuple(output_grads)
        if node.ctx is None:
            raise RuntimeError(
                f"backward: trying to backward through {node.name} a second time, but its saved "
                "values were freed by the first backward; pass retain_graph=True to the first call"
            )
        grads = node.function.backward(node.ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph:
            node.ctx = None
        for parent, pg in zip(node.parents, grads):
            if parent is None or pg is None:
                continue
            assert pg.shape == parent.data.shape, (node.name, pg.shape, parent.data.shape)
            if pg.dtype != parent.data.dtype:  # a gradient has its tensor's dtype (mixed-dtype ops)
                pg = pg.astype(parent.data.dtype)
            if parent._node is None:
                _accumulate_leaf(parent, pg)
            else:
                _add_pending(pending, parent, pg)


def _add_pending(pending, tensor, g):
    """Add g to the gradient waiting for `tensor`'s output slot of its node."""
    slots = pending.get(id(tensor._node))
    if slots is None:
        slots = pending[id(tensor._node)] = [None] * tensor._node.n_outputs
    i = tensor._index
    slots[i] = g if slots[i] is None else slots[i] + g


def _accumulate_leaf(leaf, g):
    if leaf.grad is None:
        # Own a fresh copy: backward functions may hand the same array to several inputs.
        dtype = leaf.data.dtype
        leaf.grad = leaf._wrap(np.array(g, dtype=dtype, copy=True) if device_of(g) == "cpu" else g.astype(dtype))
    else:
        leaf.grad.data += g
