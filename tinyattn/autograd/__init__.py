"""Reverse-mode automatic differentiation: Function, the graph, and the backward walk.

Every differentiable op is a `Function` with a hand-written `forward(ctx, ...)` and
`backward(ctx, grad)`. Both work on raw arrays (numpy on the CPU, DeviceArray on the GPU); `Function.apply`
unwraps Tensor arguments, runs `forward`, wraps the result, and, when a gradient is
needed, records a `Node` that remembers the Function, its context and its parents. For second
derivatives (create_graph=True) a Function also has `differentiable_backward`, the same derivative in
tensor ops, which record a graph of the gradient itself.

`backward(root)` orders the nodes reachable from `root` topologically, then visits each
node once, after every node that consumes its output. So a tensor used several times
receives the sum of its gradients before its own backward runs.

This package knows nothing about Tensor's user-facing API: `Variable` is the autograd half
of a tensor (data, grad, requires_grad, the node that made it); `tinyattn.tensor.Tensor`
subclasses it and adds operators and methods.

One file per part, each readable on its own:

    grad_mode.py   no_grad, enable_grad, set_grad_enabled, inference_mode: whether ops record a graph
    graph.py       VersionCounter, Context (what a forward saves), Node (one recorded op and its edges)
    variable.py    Variable: array, grad, requires_grad, backward(), register_hook, retain_grad, detach
    views.py       views share their base's version counter; replay_view re-makes a view after an in-place op
    function.py    Function and Function.apply (every op's hot path); observe() for the study tools
    hooks.py       tensor hooks and retain_grad's bookkeeping; RemovableHandle
    engine.py      backward() and grad(): the walk over the graph, gradient accumulation
    graph_walk.py  the walk with create_graph=True: gradients as tensors, each node's differentiable_backward
    functional.py  torch.autograd.functional: vjp, jvp, jacobian, hessian, hvp, vhp (built on grad)

variable.py, hooks.py, function.py and engine.py refer to each other; variable.py is imported first (below)
and imports the others at its end, once Variable exists.
"""
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .graph import Context, Node, VersionCounter
from .variable import Variable  # first of the four that refer to each other (see above)
from .function import Function, observe
from .hooks import RemovableHandle
from .views import replay_view, view_positions
from .engine import backward, grad
from . import functional

__all__ = [
    "backward", "Context", "enable_grad", "Function", "functional", "grad", "inference_mode", "is_grad_enabled",
    "no_grad", "Node", "observe", "RemovableHandle", "replay_view", "set_grad_enabled", "Variable", "VersionCounter",
    "view_positions",
]


def __getattr__(name):
    # `autograd._observers`: the study tools' observers now (function.py rebinds its tuple on each observe()/remove;
    # nn/transformer.py and the profiler's tests read it here)
    if name == "_observers":
        from .function import _observers
        return _observers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
