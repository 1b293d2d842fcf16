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
import threading
import weakref

import numpy as np

from .backend import backend_of, device_of

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


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


class Node:
    """One recorded op: the Function, its context, and the Variables it was applied to.

    `parents[i]` is the i-th positional argument when it is a Variable that requires a
    gradient, else None. `edges[i]` is where that argument's gradient goes: the (node, output
    index) that had made it when the op ran, or (None, 0) for a leaf. The edge is taken at record
    time because an in-place op later gives the tensor a new node, and this op consumed the old
    value. `ctx` becomes None once backward has freed the saved values. A Function whose forward
    returns a tuple makes one Node with `n_outputs` outputs; each output tensor knows its
    position (`_index`).
    """

    __slots__ = ("function", "ctx", "parents", "edges", "n_outputs", "returns_tuple")

    def __init__(self, function, ctx, parents, n_outputs=1, returns_tuple=False):
        self.function = function
        self.ctx = ctx
        self.parents = parents
        self.edges = tuple(None if p is None else (p._node, p._index) for p in parents)
        self.n_outputs = n_outputs
        self.returns_tuple = returns_tuple  # backward then takes a tuple of gradients, even of one

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
    __slots__ = ("data", "grad", "_requires_grad", "_node", "_index", "_counter", "_view", "__weakref__")

    def __init__(self, data, requires_grad=False, node=None):
        self.data = data
        self.grad = None
        self._node = node
        self._index = 0
        self._counter = VersionCounter()
        self._view = None
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
        """The same data, cut from the graph: no gradient flows through the result.

        It shares the memory and the version counter, as in PyTorch: an in-place change of either
        is seen by a backward that saved the other.
        """
        out = self._wrap(self.data)
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
        out.data, out.grad, out._requires_grad, out._node, out._index = data, None, requires_grad, node, index
        out._counter, out._view = VersionCounter(), None
        return out


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
    """

    returns_view = False

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
        tensors = []
        for a in args:
            if isinstance(a, Variable):
                if first is None:
                    first = a
                elif type(a.data) is not type(first.data):
                    _raise_mixed_devices(cls.__name__, first, a)
                raw.append(a.data)
                needs.append(a._requires_grad)
                tensors.append(a)
            else:
                raw.append(a)
                needs.append(False)
        record = any(needs) and is_grad_enabled()
        ctx = Context(tuple(needs))
        out = cls.forward(ctx, *raw)
        multiple = isinstance(out, tuple)
        if not record:
            results = tuple(first._wrap(o) for o in out) if multiple else (first._wrap(out),)
        else:
            parents = tuple(a if n else None for a, n in zip(args, needs))
            node = Node(cls, ctx, parents, len(out) if multiple else 1, multiple)
            results = (tuple(first._wrap(o, True, node, i) for i, o in enumerate(out)) if multiple
                       else (first._wrap(out, True, node),))
            if ctx.saved:
                ctx.versions = _saved_versions(ctx.saved, tensors, results)
        if cls.returns_view:
            _share_counters(first, results, cls, args[1:], multiple)
        return results if multiple else results[0]


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
    owner = _memory_owner(source.data)
    base, steps = source._view or (source, ())
    for i, r in enumerate(results):
        if owner is not None and _memory_owner(r.data) is owner:
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
    positions = np.arange(base.data.size, dtype=np.int64).reshape(base.data.shape)
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
        for t in inputs:
            if t.data is array:
                break
        else:
            for t in results:
                if t.data is array:
                    break
            else:
                t = _owner_among(array, inputs, results)
                if t is None:
                    continue
        versions.append((t._counter, t._counter.value, t.data.shape))
    return tuple(versions)


def _owner_among(array, inputs, results):
    """The tensor whose memory a derived saved array shares (a view of an input, or an array that an
    output is a view of), or None."""
    owner = _memory_owner(array)
    if owner is None:
        return None
    candidates = results if owner is array else (*inputs, *results)  # a fresh array: only an output can view it
    for t in candidates:
        if _memory_owner(t.data) is owner:
            return t
    return None


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
        for edge in node.edges:
            if edge is not None and edge[0] is not None and id(edge[0]) not in visited:
                stack.append((edge[0], False))
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
    _add_pending(pending, root._node, root._index, grad)
    for node in _topological_order(root._node):
        output_grads = pending.pop(id(node), None)
        if output_grads is None:  # no gradient flows through this node
            continue
        g = tuple(output_grads) if node.returns_tuple else output_grads[0]
        if node.ctx is None:
            raise RuntimeError(
                f"backward: trying to backward through {node.name} a second time, but its saved "
                "values were freed by the first backward; pass retain_graph=True to the first call"
            )
        if node.ctx.versions:
            node.check_versions()
        grads = node.function.backward(node.ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != len(node.parents):
            raise RuntimeError(
                f"backward: {node.name}.backward returned {len(grads)} gradients, but forward took "
                f"{len(node.parents)} arguments (return None for each one without a gradient)"
            )
        if not retain_graph:
            node.ctx = None
        for i, (parent, edge, pg) in enumerate(zip(node.parents, node.edges, grads)):
            if parent is None or pg is None:
                continue
            if getattr(pg, "shape", None) != parent.data.shape:
                raise RuntimeError(
                    f"backward: {node.name}.backward returned a gradient of shape {getattr(pg, 'shape', type(pg))} "
                    f"for argument {i}, which has shape {parent.data.shape}"
                )
            if pg.dtype != parent.data.dtype:  # a gradient has its tensor's dtype (mixed-dtype ops)
                pg = pg.astype(parent.data.dtype)
            if edge[0] is None:
                _accumulate_leaf(parent, pg)
            else:
                _add_pending(pending, *edge, pg)


def _add_pending(pending, node, index, g):
    """Add g to the gradient waiting for output `index` of `node`."""
    slots = pending.get(id(node))
    if slots is None:
        slots = pending[id(node)] = [None] * node.n_outputs
    slots[index] = g if slots[index] is None else slots[index] + g


def _accumulate_leaf(leaf, g):
    if leaf.grad is None:
        # Own a fresh copy: backward functions may hand the same array to several inputs.
        dtype = leaf.data.dtype
        leaf.grad = leaf._wrap(np.array(g, dtype=dtype, copy=True) if device_of(g) == "cpu" else g.astype(dtype))
    else:
        leaf.grad.data += g
