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
import functools
import inspect
import itertools
import operator
import threading
import weakref
from time import perf_counter_ns
from typing import TYPE_CHECKING

import numpy as np

from .backend import backend_of, device_of

if TYPE_CHECKING:
    from .size import Size

__all__ = [
    "backward", "Context", "enable_grad", "Function", "grad", "inference_mode", "is_grad_enabled", "no_grad", "Node",
    "observe", "RemovableHandle", "replay_view", "set_grad_enabled", "Variable", "VersionCounter", "view_positions",
]

class _State(threading.local):
    grad_enabled = True  # each thread starts recording (a class default: no missing-attribute lookup per op)


_state = _State()


def is_grad_enabled():
    return _state.grad_enabled


def _set_mode(mode):
    _state.grad_enabled = bool(mode)


class _GradMode:
    """Switches graph recording to `mode` for a `with` block, and back to what it was after.

    Also a decorator, with or without parentheses (`@ta.no_grad()`, `@ta.no_grad`). Each call of
    the decorated function enters a fresh copy, so a recursive function restores the mode of its
    own caller; a generator function runs in the mode each time it is resumed, as in PyTorch.
    """

    mode = True

    def __new__(cls, function=None):
        self = super().__new__(cls)
        return self(function) if callable(function) else self

    def __init__(self, function=None):
        pass

    def __enter__(self):
        self._previous = is_grad_enabled()
        _set_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_mode(self._previous)
        return False

    def _fresh(self):
        """A new context manager with this one's mode (one per call, so calls can nest)."""
        return type(self)()

    def __call__(self, function):
        fresh = self._fresh
        if inspect.isgeneratorfunction(function):
            @functools.wraps(function)
            def generator(*args, **kwargs):
                gen = function(*args, **kwargs)
                try:
                    with fresh():
                        item = next(gen)
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            gen.close()
                            raise
                        except BaseException as error:
                            with fresh():
                                item = gen.throw(error)
                        else:
                            with fresh():
                                item = gen.send(sent)
                except StopIteration as stop:
                    return stop.value

            return generator

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with fresh():
                return function(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) inside which no graph is recorded."""

    mode = False


class enable_grad(_GradMode):
    """Context manager (and decorator) that turns graph recording back on inside a `no_grad` block."""

    mode = True


class set_grad_enabled(_GradMode):
    """set_grad_enabled(mode): as a function call it switches recording on or off at once; as a
    context manager (`with ta.set_grad_enabled(False):`) it also switches back on exit; as a
    decorator it applies to each call of the function only. As in PyTorch."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._previous = is_grad_enabled()
        _set_mode(self.mode)

    def __enter__(self):
        return self  # the mode was set by __init__; _previous is what it was before

    def _fresh(self):
        return _Deferred(self.mode)

    def __call__(self, function):
        _set_mode(self._previous)  # used as a decorator: the switch applies only inside the function
        return super().__call__(function)


class inference_mode(_GradMode):
    """torch.inference_mode(mode=True): for tinyattn the same as no_grad() (mode=True) or
    enable_grad() (mode=False); it has no separate inference tensors. A context manager and a decorator,
    with or without parentheses."""

    def __new__(cls, mode=True):
        if callable(mode):  # @inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = not mode

    def _fresh(self):
        return _Deferred(self.mode)


class _Deferred(_GradMode):
    """set_grad_enabled's mode, entered at each call of a function it decorates."""

    def __init__(self, mode):
        self.mode = mode


class VersionCounter:
    """How many times an array was changed in place. A tensor and its views share one counter.

    `views` holds weak references to the tensors that were made as views of the memory (dead
    ones are dropped now and then): an in-place op that records a graph re-makes the live ones
    from their base's new node.
    """

    __slots__ = ("value", "views", "_prune_at")

    def __init__(self):
        self.value = 0
        self.views = None

    def share(self, view):
        """Make `view` (a tensor over this counter's memory) count with this counter."""
        view._counter = self
        if self.views is None:
            self.views, self._prune_at = [], 32
        elif len(self.views) >= self._prune_at:  # a long-lived base viewed every step: forget the dead views
            self.views = [r for r in self.views if r() is not None]
            self._prune_at = max(32, 2 * len(self.views))  # amortised: the list at most doubles between prunes
        self.views.append(weakref.ref(view))

    def live_views(self):
        return [v for v in (r() for r in self.views or ()) if v is not None]


class Context:
    """What a Function's forward leaves for its backward.

    `needs_input_grad[i]` says whether input i needs a gradient, so backward can skip work.
    Arbitrary attributes (ctx.dim = ...) hold non-array state. `versions` holds, for each saved
    array that is (part of) a tensor's data, that tensor's counter and its value at save time.
    """

    __slots__ = ("saved", "needs_input_grad", "versions", "__dict__")

    def __init__(self, needs_input_grad):
        self.saved = ()
        self.needs_input_grad = needs_input_grad
        self.versions = ()

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @property
    def saved_tensors(self):  # PyTorch's name
        return self.saved


_node_seq = itertools.count()
_creation = operator.attrgetter("seq")


class Node:
    """One recorded op: the Function, its context, and the Variables it was applied to.

    `parents[i]` is the i-th positional argument when it is a Variable that requires a
    gradient, else None. `edges[i]` is where that argument's gradient goes: the (node, output
    index) that had made it when the op ran, or (None, 0) for a leaf. The edge is taken at record
    time because an in-place op later gives the tensor a new node, and this op consumed the old
    value. `ctx` becomes None once backward has freed the saved values. A Function whose forward
    returns a tuple makes one Node with `n_outputs` outputs; each output tensor knows its
    position (`_index`).

    `hooks` is None, or {output index: _OutputHooks}: the tensor hooks and retain_grad() of the
    tensors that stood for that output when they were registered (see Variable.register_hook).
    """

    __slots__ = ("function", "ctx", "parents", "edges", "n_outputs", "returns_tuple", "hooks", "seq", "__weakref__")

    def __init__(self, function, ctx, parents, n_outputs=1, returns_tuple=False):
        self.seq = next(_node_seq)  # creation order: the backward walk's topological order (see _topological_order)
        self.function = function
        self.ctx = ctx
        self.parents = parents
        self.edges = tuple([None if p is None else (p._node, p._index) for p in parents])
        self.n_outputs = n_outputs
        self.returns_tuple = returns_tuple  # backward then takes a tuple of gradients, even of one
        self.hooks = None

    @property
    def name(self):
        return self.function.__name__

    def __repr__(self):  # PyTorch prints grad_fn as <MulBackward0 object at ...>
        return f"<{self.name}Backward>"

    @property
    def next_functions(self):
        """The nodes that made this node's inputs, one (node or None, output index) per input, as in PyTorch."""
        return tuple((None, 0) if e is None else e for e in self.edges)

    def check_versions(self):
        """Raise if a tensor this node saved for backward was changed in place since."""
        for counter, version, shape in self.ctx.versions:
            if counter.value != version:
                raise RuntimeError(
                    f"backward: a tensor of shape {shape} that {self.name} saved for its backward was modified "
                    f"by an in-place operation (it is at version {counter.value}; {self.name} saved version "
                    f"{version}). Use an out-of-place op (x = x + y, not x += y), .clone() it before changing "
                    "it, or call the optimiser's step() only after backward()"
                )


class Variable:
    """The autograd half of a tensor: an array, its gradient, and the node that made it."""

    # _view: None, or (base, steps) for a tensor whose data is a view of `base`'s data, made from it by
    # the view Functions in `steps` ((Function, extra args, output index) each); see replay_view.
    # _hooks: None; for a leaf, {handle id: hook} once register_hook was called; for a non-leaf, _RETAINS once
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
    def requires_grad(self):
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
    def grad(self):
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
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """PyTorch's Tensor.backward: accumulate d(self)/d(leaf) into the leaves' .grad, or, with `inputs`,
        into those tensors' .grad only (leaves or not). See `backward` below."""
        backward(self, gradient, retain_graph, create_graph, inputs)

    # ---- hooks (PyTorch's Tensor.register_hook / retain_grad) --------------------------------
    def register_hook(self, hook):
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
            hooks = _output_hooks(self).fns
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def retain_grad(self):
        """Keep the gradient of this non-leaf tensor in its `.grad` during backward (a leaf keeps
        it anyway: then this does nothing). It follows the tensor through in-place changes (its
        `.grad` is the gradient of the tensor's latest value), it sees the gradient after every
        hook of the tensor has run, and it accumulates over backward calls, as in PyTorch.
        `autograd.grad` does not fill it (tinyattn's grad() touches no `.grad`)."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False")
        if self._node is None or self._hooks is _RETAINS:
            return
        self._hooks = _RETAINS
        ref = weakref.ref(self)
        _retained.append(ref)
        _output_hooks(self).retain.append(ref)

    @property
    def retains_grad(self):
        """True for a non-leaf tensor on which retain_grad() was called (PyTorch's name)."""
        return self._node is not None and self._hooks is _RETAINS

    def detach(self):
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


_NEEDS_1, _NO_NEEDS_1, _NO_PARENTS_1 = (True,), (False,), (None,)


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
    (PyTorch's AccumulateGrad steals an unshared gradient the same way). Anything else must leave it
    False: a backward may hand one array to several inputs (Add gives dy to both).
    """

    returns_view = False
    fresh_grads = False

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
                needs, parents = _NEEDS_1, args
            else:
                needs, parents = _NO_NEEDS_1, _NO_PARENTS_1
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
            else:
                raw = (first._array, b)
                tensors = (first,)
                needs = (need, False)
                parents = (first if need else None, None)
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
        ctx = Context(needs)
        out = cls.forward(ctx, *raw)
        if isinstance(out, tuple):
            return _wrap_outputs(cls, args, parents, tensors, first, ctx, out)
        if True in needs and _state.grad_enabled:
            node = Node(cls, ctx, parents)
            result = first._wrap(out, True, node)
            if ctx.saved:
                ctx.versions = _saved_versions(ctx.saved, tensors, (result,))
        else:
            result = first._wrap(out)
        if cls.returns_view:
            _share_counters(first, (result,), cls, args[1:], False)
        return result


def _wrap_outputs(cls, args, parents, tensors, first, ctx, out):
    """Function.apply's end for a forward that returned a tuple of arrays: a tuple of tensors."""
    wrap = first._wrap
    if True in ctx.needs_input_grad and _state.grad_enabled:
        node = Node(cls, ctx, parents, len(out), True)
        results = tuple([wrap(o, True, node, i) for i, o in enumerate(out)])
        if ctx.saved:
            ctx.versions = _saved_versions(ctx.saved, tensors, results)
    else:
        results = tuple([wrap(o) for o in out])
    if cls.returns_view:
        _share_counters(first, results, cls, args[1:], True)
    return results


def _memory_owner(array):
    """What owns an array's memory: the ndarray at the end of numpy's chain of views, or a
    DeviceArray's buffer (None for anything else). Two arrays can overlap only if their owners match."""
    if isinstance(array, np.ndarray):
        while isinstance(array.base, np.ndarray):
            array = array.base
        return array
    return getattr(array, "buf", None)


def _share_counters(source, results, function, extra, multiple):
    """Outputs of a view Function that are views of its input share the input's counter and
    remember how they were made from the input's base (for in-place ops; see functional/inplace.py)."""
    owner = _memory_owner(source._array)
    base, steps = source._view or (source, ())
    for i, r in enumerate(results):
        if owner is not None and _memory_owner(r._array) is owner:
            source._counter.share(r)
            r._view = (base, steps + ((function, extra, i if multiple else None),))


def replay_view(base, steps, cache=None):
    """The view of `base` that `steps` made, made again (recorded like any op).

    `cache` (a dict, while re-making several views of one base) shares the work of common steps:
    views of one view, or the outputs of one unbind, are re-made from one replay."""
    t, key = base, ()
    for step in steps:
        function, extra, i = step
        key += (id(function), id(extra))
        out = cache.get(key) if cache is not None else None
        if out is None:
            out = function.apply(t, *extra)
            if cache is not None:
                cache[key] = out
        t = out if i is None else out[i]
        key += (i,)
    return t


def view_positions(base, steps):
    """For a view of `base`: the flat index into base of each of the view's elements (host int64)."""
    positions = np.arange(base._array.size, dtype=np.int64).reshape(base._array.shape)
    for function, extra, i in steps:
        positions = function.forward(Context(()), positions, *extra)
        positions = positions if i is None else positions[i]
    return positions


def _saved_versions(saved, inputs, results):
    """(counter, version, shape) for every saved array whose memory is a tensor's (an input's or an
    output's): what Node.check_versions compares at backward time. This runs for every recorded op,
    so the common case (the saved array is an input's or output's array itself) is checked first."""
    versions = []
    for array in saved:
        if array is None or isinstance(array, np.generic):  # nothing saved, or a constant scalar: no memory to watch
            continue
        for t in inputs:
            if t._array is array:
                break
        else:
            for t in results:
                if t._array is array:
                    break
            else:
                t = _owner_among(array, inputs, results)
                if t is None:
                    continue
        versions.append((t._counter, t._counter.value, t._array.shape))
    return tuple(versions)


def _owner_among(array, inputs, results):
    """The tensor whose memory a derived saved array shares (a view of an input, or an array that an
    output is a view of), or None."""
    owner = _memory_owner(array)
    if owner is None:
        return None
    if owner is array:  # a fresh array (a constant made from a number): only an output that is a view can share it
        for t in results:
            data = t._array
            if getattr(data, "base", None) is not None and _memory_owner(data) is owner:
                return t
        return None
    for t in (*inputs, *results):
        if _memory_owner(t._array) is owner:
            return t
    return None


def _raise_mixed_devices(op, a, b):
    devices = [device_of(a._array), device_of(b._array)]
    if devices[0] == devices[1]:  # same device, array types differ (a numpy scalar): not a device mix
        return
    raise RuntimeError(
        f"{op}: expected all tensors on the same device, got one on {devices[0]} (shape {tuple(a.shape)}) "
        f"and one on {devices[1]} (shape {tuple(b.shape)}); move them with .to('{devices[0]}') or .to('{devices[1]}')"
    )


def _topological_order(root_nodes):
    """Nodes reachable from root_nodes, each after every node that consumes its output.

    A node's inputs were made before it, so every node was created after the nodes it reads from:
    the reachable nodes in decreasing creation order (`Node.seq`) are in topological order,
    consumers first. One pass collects them, one C-level sort orders them."""
    nodes, seen = [], set()
    for node in root_nodes:
        if id(node) not in seen:
            seen.add(id(node))
            nodes.append(node)
    add, push = seen.add, nodes.append
    for node in nodes:  # the list grows while it is read: a breadth-first walk
        for edge in node.edges:
            if edge is not None:
                producer = edge[0]
                if producer is not None and id(producer) not in seen:
                    add(id(producer))
                    push(producer)
    nodes.sort(key=_creation, reverse=True)
    return nodes


def backward(root, grad=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(root)/d(leaf) into every leaf's `.grad` that requires a gradient.

    `grad` is d(loss)/d(root); it may be omitted only when root holds a single element.
    Saved values are freed afterwards unless `retain_graph=True`. `inputs` (a tensor or a sequence of
    them): accumulate into those tensors' .grad only, as PyTorch does; nothing else's .grad changes.
    """
    if create_graph:
        raise NotImplementedError("backward: create_graph=True is not supported: tinyattn's backward functions work "
                                  "on raw arrays, so a gradient has no graph of its own (no second derivatives)")
    if not root.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no grad_fn")
    root_grad = _output_grad("backward", root, grad)
    if inputs is None:
        _walk(((root, root_grad),), bool(retain_graph))
        return
    inputs = _as_tensors("backward", "inputs", inputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"backward: inputs[{i}] (shape {tuple(t._array.shape)}) does not require grad")
    found = _walk(((root, root_grad),), bool(retain_graph), inputs)
    done = set()
    for t, g in zip(inputs, found):  # only now, when the whole walk succeeded
        if g is not None and id(t) not in done:
            done.add(id(t))
            _accumulate_leaf(t, g)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs`, returned as a tuple (PyTorch's
    torch.autograd.grad). No `.grad` is touched, not even a retained one.

    outputs, inputs: a tensor or a sequence of tensors; every input must require grad and may be a
    leaf or an intermediate tensor (its gradient is that of the value it holds now). grad_outputs:
    d(something)/d(output) for each output (None: ones, allowed for one-element outputs only).
    Only the part of the graph between the outputs and the inputs runs; tensor hooks on it run
    too. retain_graph (default False) keeps the saved values for another pass. An input that no
    gradient reaches is an error unless allow_unused=True (then its entry is None) or
    materialize_grads=True (then zeros). create_graph=True (a graph of the gradient itself, for
    second derivatives) is not supported: every backward here works on raw arrays.
    """
    if create_graph:
        raise NotImplementedError("grad: create_graph=True is not supported: tinyattn's backward functions work on raw "
                                  "arrays, so a gradient has no graph of its own (no second derivatives)")
    outputs, inputs = _as_tensors("grad", "outputs", outputs), _as_tensors("grad", "inputs", inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    else:
        grad_outputs = (grad_outputs,) if isinstance(grad_outputs, Variable) else tuple(grad_outputs)
        if len(grad_outputs) != len(outputs):
            raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
        for g in grad_outputs:
            if g is not None and not isinstance(g, Variable):
                raise TypeError(f"grad: gradients can be either Tensors or None, but got {type(g).__name__}")
    if materialize_grads and allow_unused is False:
        raise ValueError("grad: allow_unused must be True (or left out) when materialize_grads=True")
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {tuple(t._array.shape)}) does not require grad")
    roots = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: output {i} (shape {tuple(out._array.shape)}) does not require grad and has no "
                               "grad_fn")
        roots.append((out, _output_grad("grad", out, g)))
    found = _walk(roots, bool(retain_graph), inputs)
    results = []
    for i, (t, g) in enumerate(zip(inputs, found)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {i} (shape {tuple(t._array.shape)}) was not used to compute the "
                                   "outputs (no gradient reaches it); pass allow_unused=True to get None for it")
            results.append(t._wrap(np.zeros_like(t._array)) if materialize_grads else None)
        else:
            results.append(t._wrap(_owned(g, t._array.dtype)))
    return tuple(results)


def _as_tensors(op, what, value):
    items = (value,) if isinstance(value, Variable) else tuple(value) if _iterable(value) else (value,)
    for i, t in enumerate(items):
        if not isinstance(t, Variable):
            raise TypeError(f"{op}: {what}[{i}] must be a tensor, got {type(t).__name__}")
    if not items:
        raise ValueError(f"{op}: {what} is empty")
    return items


def _iterable(value):
    try:
        iter(value)
    except TypeError:
        return False
    return not isinstance(value, (str, bytes, np.ndarray))


def _output_grad(op, root, grad):
    """d(...)/d(root) as an array of root's shape, dtype and device (ones for a one-element root)."""
    if grad is None:
        if root._array.size != 1:
            raise RuntimeError(
                f"{op}: grad can be implicitly created only for scalar outputs, "
                f"but the output has shape {tuple(root._array.shape)}; pass a gradient of that shape"
            )
        return np.ones_like(root._array)
    grad = getattr(grad, "_array", grad)
    if device_of(grad) != device_of(root._array):
        raise RuntimeError(f"{op}: the gradient is on {device_of(grad)}, the output on {device_of(root._array)}")
    grad = backend_of(root._array).asarray(grad, dtype=root._array.dtype)
    if grad.shape != root._array.shape:
        raise ValueError(f"{op}: gradient shape {grad.shape} does not match output shape {root._array.shape}")
    return grad


def _walk(roots, retain_graph, inputs=None):
    """The backward pass from `roots` ((tensor, d/d tensor) pairs), node by node in topological order.

    inputs=None (backward): gradients that reach a leaf accumulate into its `.grad`. Otherwise
    (grad()): only the nodes on a path to an input run, nothing's `.grad` changes, and the return
    value holds each input's gradient (None where none arrived).
    """
    if _retained:
        _attach_retained()
    observers = _observers
    pending = {}  # id(node) -> list of the gradients of its outputs (None until one arrives)
    leaves = {}  # id(leaf) -> [leaf, summed gradient]: leaves with hooks, or grad()'s leaf inputs
    wanted = capture = run = found = None
    if inputs is not None:
        found = [None] * len(inputs)
        wanted, capture = {}, {}  # id(leaf) -> input positions; (id(node), index) -> input positions
        for i, t in enumerate(inputs):
            if t._node is None:
                wanted.setdefault(id(t), []).append(i)
            else:
                capture.setdefault((id(t._node), t._index), []).append(i)
    owned = set()  # ids of the pending sums that accumulation made (see _add_pending): it may add into them
    root_nodes = []
    for t, g in roots:
        if t._node is None:
            _leaf_gets(leaves, t, g, wanted, owned)
        else:
            _add_pending(pending, t._node, t._index, g, owned)
            root_nodes.append(t._node)
    order = _topological_order(root_nodes)
    if inputs is not None:
        run = _nodes_to_run(order, capture, wanted)
    for node in order:
        output_grads = pending.pop(id(node), None)
        if output_grads is None:  # no gradient flows through this node
            continue
        if owned:  # these sums leave the pending table: from here on they may be shared (hooks, grad())
            for og in output_grads:
                owned.discard(id(og))
        if run is not None:
            todo = run.get(id(node))
            if todo is None:  # grad(): nothing wanted lies behind this node
                continue
        if node.hooks is not None:
            _run_output_hooks(node, output_grads, inputs is None)
        if capture is not None:
            for index, og in enumerate(output_grads):
                for i in capture.get((id(node), index), ()):
                    found[i] = og
            if not todo:
                continue
        g = tuple(output_grads) if node.returns_tuple else output_grads[0]
        ctx = node.ctx
        if ctx is None:
            raise RuntimeError(
                f"backward: trying to backward through {node.name} a second time, but its saved "
                "values were freed by the first backward; pass retain_graph=True to the first call"
            )
        if ctx.versions:
            for counter, version, _ in ctx.versions:
                if counter.value != version:
                    node.check_versions()  # raises, naming the op
        if observers:
            start = perf_counter_ns()
            grads = node.function.backward(ctx, g)
            end = perf_counter_ns()
            for observer in observers:
                observer.on_backward(node, g, start, end)
        else:
            grads = node.function.backward(ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        parents = node.parents
        if len(grads) != len(parents):
            raise RuntimeError(
                f"backward: {node.name}.backward returned {len(grads)} gradients, but forward took "
                f"{len(parents)} arguments (return None for each one without a gradient)"
            )
        if not retain_graph:
            node.ctx = None
        for parent, edge, pg in zip(parents, node.edges, grads):
            if parent is None or pg is None:
                continue
            data = parent._array
            if getattr(pg, "shape", None) != data.shape:
                i = next(j for j, (p, q) in enumerate(zip(parents, grads)) if p is parent and q is pg)
                raise RuntimeError(
                    f"backward: {node.name}.backward returned a gradient of shape {getattr(pg, 'shape', type(pg))} "
                    f"for argument {i}, which has shape {data.shape}"
                )
            if pg.dtype != data.dtype:  # a gradient has its tensor's dtype (mixed-dtype ops)
                pg = pg.astype(data.dtype)
            producer = edge[0]
            if producer is None:
                _leaf_gets(leaves, parent, pg, wanted, owned, node.function.fresh_grads)
            elif producer.n_outputs == 1 and id(producer) not in pending:  # the first gradient to arrive there
                pending[id(producer)] = [pg]
            else:
                _add_pending(pending, producer, edge[1], pg, owned)
    # Each leaf once, on the sum of its gradients: its hooks first, for every leaf, and only then the .grad
    # of every leaf, so that a walk that fails anywhere (an op's backward, a hook, Ctrl-C) leaves no leaf
    # with part of its gradient, as in PyTorch.
    final = []
    for leaf, g in leaves.values():
        if isinstance(leaf._hooks, dict) and leaf._hooks:
            g = _call_hooks(leaf._hooks, g, leaf._wrap, "leaf")
        final.append((leaf, g))
    for leaf, g in final:
        if wanted is None:
            _accumulate_leaf(leaf, g, fresh=id(g) in owned)
        else:
            for i in wanted[id(leaf)]:
                found[i] = g
    return found


def _nodes_to_run(order, capture, wanted):
    """For grad(): id(node) -> True for the nodes whose backward must run to reach an input, False
    for those that only hold an input's gradient (it is taken, their backward is not run)."""
    run = {}
    for node in reversed(order):  # producers first
        needed = False
        for parent, edge in zip(node.parents, node.edges):
            if parent is None:
                continue
            if edge[0] is None:
                needed = id(parent) in wanted
            else:
                needed = run.get(id(edge[0])) is True or (id(edge[0]), edge[1]) in capture
            if needed:
                break
        if needed or any((id(node), i) in capture for i in range(node.n_outputs)):
            run[id(node)] = needed
    return run


def _add_pending(pending, node, index, g, owned):
    """Add g to the gradient waiting for output `index` of `node`.

    The first sum is a new array, which accumulation owns (its id goes into `owned`); later
    gradients are added into it in place. Never into any other array: a backward may hand one
    array to several inputs (Add gives dy to both), so a gradient as it arrives may be shared.
    """
    slots = pending.get(id(node))
    if slots is None:
        slots = pending[id(node)] = [None] * node.n_outputs
    s = slots[index]
    if s is None:
        slots[index] = g
    elif id(s) in owned:
        backend_of(s).add_(s, g)  # same shape and dtype (the walk checked and cast g), a host array of our own
    else:
        s = slots[index] = backend_of(s).add(s, g)
        if type(s) is np.ndarray:  # (a 0-d sum is a numpy scalar, immutable; a GPU array's += copies anyway)
            owned.add(id(s))


def _leaf_gets(leaves, leaf, g, wanted, owned, fresh=False):
    """A gradient for a leaf, held until the walk ends (see _walk). Summed as in _add_pending: into an
    array of accumulation's own (in `owned`: a sum it made, or a `fresh` gradient, which no one else
    holds), never into g otherwise."""
    if wanted is not None and id(leaf) not in wanted:
        return
    entry = leaves.get(id(leaf))
    if entry is None:
        leaves[id(leaf)] = [leaf, g]
        if fresh and type(g) is np.ndarray:
            owned.add(id(g))
    elif id(entry[1]) in owned:
        entry[1] += g
    else:
        s = entry[1] = entry[1] + g  # not into entry[1]: it may be an array that backward handed to several inputs
        if type(s) is np.ndarray:
            owned.add(id(s))  # kept alive by `leaves` until the walk ends: the id stays its own


def _owned(g, dtype):
    """A fresh copy of g (backward functions may hand one array to several inputs)."""
    return np.array(g, dtype=dtype, copy=True) if device_of(g) == "cpu" else g.astype(dtype)


def _accumulate_leaf(leaf, g, fresh=False):
    """leaf.grad += g, or leaf.grad = a copy of g (g itself when `fresh`: see Function.fresh_grads)."""
    if leaf._grad is None:
        leaf._grad = leaf._wrap(g if fresh and g.dtype == leaf._array.dtype else _owned(g, leaf._array.dtype))
    else:
        leaf._grad._array += g


# ---- hooks ---------------------------------------------------------------------------------------

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


_RETAINS = object()  # Variable._hooks of a non-leaf tensor on which retain_grad() was called
_retained = []  # weak references to those tensors: each backward re-attaches them to their current node


def _output_hooks(t):
    """The _OutputHooks of the node output that non-leaf tensor t stands for now."""
    node = t._node
    if node.hooks is None:
        node.hooks = {}
    entry = node.hooks.get(t._index)
    if entry is None:
        entry = node.hooks[t._index] = _OutputHooks(t._wrap)
    return entry


def _attach_retained():
    """A tensor that was changed in place since retain_grad() stands for a new node: attach it
    there (PyTorch moves the retain_grad hook to the new grad_fn). Dead tensors are forgotten."""
    alive = []
    for ref in _retained:
        t = ref()
        if t is None or t._node is None or t._hooks is not _RETAINS:
            continue
        alive.append(ref)
        entry = _output_hooks(t)
        if not any(r() is t for r in entry.retain):
            entry.retain.append(ref)
    _retained[:] = alive


def _run_output_hooks(node, output_grads, retain):
    """The hooks of node's outputs, on their gradients (in the list, replaced by what the hooks
    return); then, in backward() (retain=True), the retained .grad of the tensors there now."""
    for index, entry in node.hooks.items():
        g = output_grads[index]
        if g is None:
            continue
        if entry.fns:
            g = output_grads[index] = _call_hooks(entry.fns, g, entry.wrap, f"{node.name}Backward output {index}")
        if retain and entry.retain:
            for ref in entry.retain:
                t = ref()
                if t is not None and t._node is node and t._index == index:  # not moved by an in-place op
                    _accumulate_leaf(t, g)


def _call_hooks(hooks, g, wrap, where):
    """Run the hooks in order, each on the gradient the previous one left (shown read-only)."""
    for hook in list(hooks.values()):
        shown = g
        if isinstance(g, np.ndarray):
            shown = g.view()
            shown.flags.writeable = False
        out = hook(wrap(shown))
        if out is None:
            continue
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
        if out._array is not shown:
            g = out._array
    return g


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
