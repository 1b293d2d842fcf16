"""Function: the base of every differentiable op, and its `apply` (the hot path of every op); the observers of
the study tools (profiler, viz.record), which `apply` checks once per call."""
from time import perf_counter_ns

from ..backend import device_of
from .grad_mode import grad_state
from .graph import Context, Node
from .hooks import RemovableHandle
from .variable import Variable
from .views import saved_versions, share_counters

__all__ = ["constant", "Function", "observe"]


_NEEDS_1, _NO_NEEDS_1, _NO_PARENTS_1 = (True,), (False,), (None,)
_NEEDS_FIRST_2, _NO_NEEDS_2, _NO_PARENTS_2 = (True, False), (False, False), (None, None)


class Function:
    """Base class of every differentiable op.

    Subclasses define `forward(ctx, *args)` returning an array and `backward(ctx, grad)`
    returning one gradient (array or None) per positional argument of forward, in order.
    Call an op through `MyOp.apply(*args)`. A forward may return a tuple of arrays: apply
    then returns a tuple of tensors, and backward receives a tuple of their gradients
    (None for an output that no gradient reached).

    A Function whose outputs may be views of its first input (reshape, indexing, ...) sets
    `returns_view = True`: such an output shares the input's version counter whenever it
    shares its memory, so an in-place change through either is seen by both.

    A Function whose backward returns only arrays it has just allocated, each for one argument and
    referenced nowhere else (a matmul's result, a kernel's output), may set `fresh_grads = True`: a
    leaf's first gradient from it then becomes the leaf's `.grad` as it is, without the defensive copy
    (PyTorch's AccumulateGrad steals an unshared gradient the same way), and the backward walk adds the
    other gradients of the same tensor into it in place. Anything else must leave it False: a backward may
    hand one array to several inputs (Add gives dy to both), and two inputs given one array (or overlapping
    views) would then each receive the other's gradient.

    A Function whose gradient for its first input is zero outside a part of it (indexing) may define
    `accumulate_into(ctx, acc, grad)`: add that gradient into `acc`, an array of the input's shape that the
    backward walk owns (the sum of the gradients that reached the input so far), in place. The walk calls it
    instead of backward when such a sum exists, so a second slice of one tensor costs a write into the slice,
    not a new array of zeros and a sum over the whole tensor. It must leave every other input without a gradient.

    Two attributes let the backward walk fuse an activation's backward into the product that makes its upstream
    gradient (a Linear after a GELU: dh = (dy W) · f'(h) as the product writes each tile, one pass over memory
    fewer). The activation defines `grad_factor(ctx)`: (name, x), its backward being dy · f'(x) for a factor
    the backend's matmul_act_grad knows by that name. The consumer defines `backward_with_factor(ctx, grad,
    factor)`: its backward with its first input's gradient multiplied by that factor. The walk pairs them only
    where nothing could see the unfused gradient (engine.py, `_factor_producer`); it then passes the gradient
    through the activation's node without calling its backward.

    The backward of a Function works on raw arrays, which is fast but leaves no graph. For
    `backward(create_graph=True)` / `grad(..., create_graph=True)` (second derivatives), a Function also
    defines `differentiable_backward(ctx, inputs, grad)`: the same derivative written with tensor ops, which
    record a graph. `inputs` holds one entry per positional argument of forward: the tensor as this op used
    it when that argument requires a gradient, else None (its value, when needed, is what forward saved in
    ctx: wrap it with `constant(like, array)`). `grad` is the gradient tensor of the output (a tuple of tensors
    or None for a tuple of outputs). It returns a tensor or None per argument, as backward does. A Function
    without one makes create_graph=True raise, naming it: never a silently detached gradient.
    """

    returns_view = False
    fresh_grads = False
    accumulate_into = None
    differentiable_backward = None
    grad_factor = None
    backward_with_factor = None

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        if _observers:  # a study tool (profiler, viz.record) is watching: the only cost when none is
            return _observed_apply(cls, args)
        # raw: the arguments with tensors unwrapped; needs: which need a gradient; parents: those arguments
        # (None for the others); tensors: the tensor arguments. Spelled out for the commonest calls, a unary
        # op on a tensor and a binary op whose first argument is a tensor; a loop for the rest.
        n = len(args)
        first = args[0] if n else None
        if n == 1 and isinstance(first, Variable):
            raw = (first._array,)
            tensors = args
            if first._requires_grad:
                needs, parents, record = _NEEDS_1, args, True
            else:
                needs, parents, record = _NO_NEEDS_1, _NO_PARENTS_1, False
        elif n == 2 and isinstance(first, Variable):
            b = args[1]
            need = first._requires_grad
            if isinstance(b, Variable):
                raw = (first._array, b._array)
                if type(raw[1]) is not type(raw[0]):
                    _raise_mixed_devices(cls.__name__, first, b)
                tensors = args
                need_b = b._requires_grad
                needs = (need, need_b)
                parents = (first if need else None, b if need_b else None)
                record = need or need_b
            else:
                raw = (first._array, b)
                tensors = (first,)
                if need:
                    needs, parents, record = _NEEDS_FIRST_2, (first, None), True
                else:
                    needs, parents, record = _NO_NEEDS_2, _NO_PARENTS_2, False
        else:
            first = None
            raw = []
            needs = []
            parents = []
            tensors = []
            for a in args:
                if isinstance(a, Variable):
                    data = a._array
                    if first is None:
                        first = a
                    elif type(data) is not type(first._array):
                        _raise_mixed_devices(cls.__name__, first, a)
                    raw.append(data)
                    tensors.append(a)
                    if a._requires_grad:
                        needs.append(True)
                        parents.append(a)
                        continue
                else:
                    raw.append(a)
                needs.append(False)
                parents.append(None)
            needs = tuple(needs)
            parents = tuple(parents)
            record = True in needs
        ctx = Context(needs)
        out = cls.forward(ctx, *raw)
        if isinstance(out, tuple):
            return _wrap_outputs(cls, args, parents, tensors, first, ctx, out)
        if record and grad_state.grad_enabled:
            result = first._wrap(out, True, Node(cls, ctx, parents))
            if ctx.saved:
                ctx.versions = saved_versions(ctx.saved, tensors, (result,))
        else:
            result = first._wrap(out)
        if cls.returns_view:
            share_counters(first, (result,), cls, args[1:], False)
        return result


def constant(like, array):
    """A tensor over `array` with no graph (a value a differentiable backward uses but does not
    differentiate through: a saved mask, an index, an argument that needs no gradient), of like's class."""
    return like._wrap(array)


def _wrap_outputs(cls, args, parents, tensors, first, ctx, out):
    """Function.apply's end for a forward that returned a tuple of arrays: a tuple of tensors."""
    wrap = first._wrap
    if True in ctx.needs_input_grad and grad_state.grad_enabled:
        node = Node(cls, ctx, parents, len(out), True)
        results = tuple([wrap(o, True, node, i) for i, o in enumerate(out)])
        if ctx.saved:
            ctx.versions = saved_versions(ctx.saved, tensors, results)
    else:
        results = tuple([wrap(o) for o in out])
    if cls.returns_view:
        share_counters(first, results, cls, args[1:], True)
    return results


def _raise_mixed_devices(op, a, b):
    devices = [device_of(a._array), device_of(b._array)]
    if devices[0] == devices[1]:  # same device, array types differ (a numpy scalar): not a device mix
        return
    raise RuntimeError(
        f"{op}: expected all tensors on the same device, got one on {devices[0]} (shape {tuple(a.shape)}) "
        f"and one on {devices[1]} (shape {tuple(b.shape)}); move them with .to('{devices[0]}') or .to('{devices[1]}')"
    )


# ---- observers: the study tools (profiler, viz.record) -------------------------------------------

_observers = ()  # objects with on_apply(cls, args, out, start_ns, end_ns) and on_backward(node, grad, start_ns, end_ns)


def observe(observer):
    """Call observer.on_apply after every op's forward and observer.on_backward after every
    node's backward, from now until the returned handle's remove(). For the study tools; while
    no observer is active, Function.apply pays one check of `_observers` and nothing more."""
    global _observers
    _observers = _observers + (observer,)
    handle = RemovableHandle()

    def remove():
        global _observers
        _observers = tuple(o for o in _observers if o is not observer)

    handle.remove = remove
    return handle


def _observed_apply(cls, args):
    """Function.apply, timed, with every observer told about it. Ops that run inside this one are
    not reported separately (the observers are off while it runs)."""
    global _observers
    observers, _observers = _observers, ()
    try:
        start = perf_counter_ns()
        out = cls.apply(*args)
        end = perf_counter_ns()
    finally:
        _observers = observers
    for observer in observers:
        observer.on_apply(cls, args, out, start, end)
    return out
