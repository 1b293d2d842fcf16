"""The backward walk: backward() and grad() order the nodes reachable from their roots and run each node's
backward once, after every node that consumes its output; gradients reach the leaves' .grad (backward) or
are returned (grad)."""
from time import perf_counter_ns

import numpy as np

from ..backend import backend_of, device_of
from . import function as _function
from .graph import input_positions, nodes_to_run, topological_order
from .graph_walk import accumulate_with_graph, walk_with_graph
from .hooks import attach_retained, call_hooks, retained
from .variable import Variable

__all__ = ["backward", "grad"]


def backward(root, grad=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(root)/d(leaf) into every leaf's `.grad` that requires a gradient.

    `grad` is d(loss)/d(root); it may be omitted only when root holds a single element.
    Saved values are freed afterwards unless `retain_graph=True`. `inputs` (a tensor or a sequence of
    them): accumulate into those tensors' .grad only, as PyTorch does; nothing else's .grad changes.
    create_graph=True: the backward runs as recorded tensor ops (graph_walk.py), so every `.grad` it fills
    has a graph and can be differentiated again; retain_graph then defaults to True, as in PyTorch.
    """
    if not root.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no grad_fn")
    root_grad = _output_grad("backward", root, grad)
    if retain_graph is None:
        retain_graph = create_graph  # PyTorch's default
    walk = _walk
    if create_graph:
        walk, root_grad = walk_with_graph, _grad_tensor(root, grad, root_grad)
    if inputs is None:
        walk(((root, root_grad),), bool(retain_graph))
        return
    inputs = _as_tensors("backward", "inputs", inputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"backward: inputs[{i}] (shape {tuple(t._array.shape)}) does not require grad")
    found = walk(((root, root_grad),), bool(retain_graph), inputs)
    done = set()
    for t, g in zip(inputs, found):  # only now, when the whole walk succeeded
        if g is not None and id(t) not in done:
            done.add(id(t))
            if create_graph:
                accumulate_with_graph(t, g)
            else:
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
    materialize_grads=True (then zeros). create_graph=True: the gradients are built from recorded ops
    (graph_walk.py) and can be differentiated again; retain_graph then defaults to True. As in PyTorch, the
    `.grad` of tensors that called retain_grad() on the way is filled.
    """
    if retain_graph is None:
        retain_graph = create_graph
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
        root_grad = _output_grad("grad", out, g)
        roots.append((out, _grad_tensor(out, g, root_grad) if create_graph else root_grad))
    found = (walk_with_graph if create_graph else _walk)(roots, bool(retain_graph), inputs)
    results = []
    for i, (t, g) in enumerate(zip(inputs, found)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {i} (shape {tuple(t._array.shape)}) was not used to compute the "
                                   "outputs (no gradient reaches it); pass allow_unused=True to get None for it")
            results.append(t._wrap(np.zeros_like(t._array)) if materialize_grads else None)
        elif create_graph:
            results.append(g)
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


def _grad_tensor(root, given, array):
    """The root's gradient as a tensor for the create_graph walk: the one given, when it is a tensor of the
    right dtype (so that a gradient that requires grad stays in the graph), else a constant over `array`."""
    if isinstance(given, Variable) and given._array is array:
        return given
    if isinstance(given, Variable) and given._requires_grad:
        return given.to(root._array.dtype)
    return root._wrap(array)


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
    if retained:
        attach_retained()
    observers = _function._observers
    pending = {}  # id(node) -> list of the gradients of its outputs (None until one arrives)
    leaves = {}  # id(leaf) -> [leaf, summed gradient]: leaves with hooks, or grad()'s leaf inputs
    run = None
    found, wanted, capture = input_positions(inputs)
    owned = set()  # ids of the pending sums that accumulation made (see _add_pending): it may add into them
    factored = None  # ids of the nodes whose backward a consumer's product applied (_factor_producer)
    consumers = []  # [id(node) -> edges into it from the walk's nodes], counted when a pairing first needs it
    root_nodes = []
    for t, g in roots:
        if t._node is None:
            _leaf_gets(leaves, t, g, wanted, owned)
        else:
            _add_pending(pending, t._node, t._index, g, owned)
            root_nodes.append(t._node)
    order = topological_order(root_nodes)
    if inputs is not None:
        run = nodes_to_run(order, capture, wanted)
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
            _run_output_hooks(node, output_grads)
        if capture is not None:
            for index, og in enumerate(output_grads):
                for i in capture.get((id(node), index), ()):
                    found[i] = og
            if not todo:
                continue
        g = tuple(output_grads) if node.returns_tuple else output_grads[0]
        ctx = node.ctx
        if ctx is None:
            raise node.freed_error()
        if ctx.versions:
            for counter, version, _ in ctx.versions:
                if counter.value != version:
                    node.check_versions()  # raises, naming the op
        function = node.function
        into = producer = None
        if function.accumulate_into is not None:  # (for its first input: see Function)
            into = _owned_sum(node.parents[0], node.edges[0], pending, leaves, owned)
        elif function.backward_with_factor is not None and inputs is None:
            producer = _factor_producer(node, pending, order, consumers)
        start = perf_counter_ns() if observers else 0
        if factored is not None and id(node) in factored:  # its backward already ran inside its consumer's product
            grads = (g,) + (None,) * (len(node.parents) - 1)
        elif producer is not None:
            grads = function.backward_with_factor(ctx, g, producer.function.grad_factor(producer.ctx))
            if factored is None:
                factored = set()
            factored.add(id(producer))
        elif into is None:
            grads = function.backward(ctx, g)
        else:
            grads = _accumulate_into(node, ctx, g, into)
        if observers:
            end = perf_counter_ns()
            for observer in observers:
                observer.on_backward(node, g, start, end)
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
                if node.function.fresh_grads:
                    _own_fresh(pg, owned)
            else:
                _add_pending(pending, producer, edge[1], pg, owned, node.function.fresh_grads)
    # Each leaf once, on the sum of its gradients: its hooks first, for every leaf, and only then the .grad
    # of every leaf, so that a walk that fails anywhere (an op's backward, a hook, Ctrl-C) leaves no leaf
    # with part of its gradient, as in PyTorch.
    final = []
    for leaf, g in leaves.values():
        if isinstance(leaf._hooks, dict) and leaf._hooks:
            g = call_hooks(leaf._hooks, g, leaf._wrap, "leaf")
            owned.discard(id(g))  # a hook has seen it (and may keep it): .grad gets a copy, as in PyTorch
        final.append((leaf, g))
    for leaf, g in final:
        if wanted is None:
            _accumulate_leaf(leaf, g, fresh=id(g) in owned)
        else:
            for i in wanted[id(leaf)]:
                found[i] = g
    return found


def _consumer_counts(order):
    """id(node) -> how many edges of the nodes in `order` lead to it (its consumers in this walk)."""
    counts = {}
    for node in order:
        for edge in node.edges:
            if edge is not None and edge[0] is not None:
                key = id(edge[0])
                counts[key] = counts.get(key, 0) + 1
    return counts


def _factor_producer(node, pending, order, consumers):
    """The node that made `node`'s first input, when its backward (dy · f'(x): Function.grad_factor) may run
    inside node's product (Function.backward_with_factor), else None. Only where nothing could see the
    gradient that would pass between them: the producer has one output, nobody else consumes it in this walk
    (the nodes in `order`: their edges are counted into `consumers`, an empty list until a candidate first needs
    them) and no gradient from a root waits for it (`pending`), and it has no hooks (a tensor hook or
    retain_grad on the activation's output). grad() does not pair nodes (it may capture that gradient). Its
    saved values must still be there (else its own backward raises as usual) and unchanged: a changed one
    raises here, naming the producer, as its backward would."""
    edge = node.edges[0]
    producer = None if edge is None else edge[0]
    if (producer is None or producer.function.grad_factor is None or producer.n_outputs != 1
            or producer.hooks is not None or producer.ctx is None or id(producer) in pending):
        return None
    if not consumers:
        consumers.append(_consumer_counts(order))
    if consumers[0].get(id(producer)) != 1:
        return None
    producer.check_versions()  # raises, naming the op, if a saved value changed
    return producer


def _owned_sum(parent, edge, pending, leaves, owned):
    """The gradient summed so far for `parent` (reached through `edge`) when accumulation owns it (see
    _add_pending), else None."""
    if parent is None:
        return None
    producer = edge[0]
    if producer is None:
        entry = leaves.get(id(parent))
        s = None if entry is None else entry[1]
    else:
        slots = pending.get(id(producer))
        s = None if slots is None else slots[edge[1]]
    return s if s is not None and id(s) in owned else None


def _accumulate_into(node, ctx, g, into):
    """The node's gradient for its first input added into `into` (Function.accumulate_into); no other
    gradients, so the walk has nothing more to hand on."""
    node.function.accumulate_into(ctx, into, g)
    return (None,) * len(node.parents)


def _own_fresh(g, owned):
    """Accumulation owns g, a `fresh` gradient (Function.fresh_grads: no one else holds it), so gradients
    for the same output are added into it in place; not a read-only or non-host array. Returns whether it
    took g."""
    if type(g) is np.ndarray and g.flags.writeable:
        owned.add(id(g))
        return True
    return False


def _add_pending(pending, node, index, g, owned, fresh=False):
    """Add g to the gradient waiting for output `index` of `node`.

    The first sum is a new array, which accumulation owns (its id goes into `owned`); later
    gradients are added into it in place. Never into any other array: a backward may hand one
    array to several inputs (Add gives dy to both), so a gradient as it arrives may be shared,
    unless it is `fresh` (see _own_fresh).
    """
    slots = pending.get(id(node))
    if slots is None:
        slots = pending[id(node)] = [None] * node.n_outputs
    s = slots[index]
    if s is None:
        slots[index] = g
        if fresh:
            _own_fresh(g, owned)
    else:
        slots[index] = _sum(s, g, owned, fresh)


def _sum(s, g, owned, fresh):
    """s + g for a sum in progress: into s when accumulation owns it, else into g when g is `fresh`, else a new
    array, which accumulation then owns. s and g have one shape and dtype (the walk checked and cast g)."""
    if id(s) in owned:
        return backend_of(s).add_(s, g)
    if fresh and _own_fresh(g, owned):
        return backend_of(g).add_(g, s)
    s = backend_of(s).add(s, g)
    if type(s) is np.ndarray:  # (a 0-d sum is a numpy scalar, immutable; a GPU array's += copies anyway)
        owned.add(id(s))  # kept alive by the pending table or `leaves` until it leaves them: the id stays its own
    return s


def _leaf_gets(leaves, leaf, g, wanted, owned, fresh=False):
    """A gradient for a leaf, held until the walk ends (see _walk). Summed as in _add_pending: into an
    array of accumulation's own (in `owned`: a sum it made, or a `fresh` gradient, which no one else
    holds), never into g otherwise."""
    if wanted is not None and id(leaf) not in wanted:
        return
    entry = leaves.get(id(leaf))
    if entry is None:
        leaves[id(leaf)] = [leaf, g]
        if fresh:
            _own_fresh(g, owned)
    else:
        entry[1] = _sum(entry[1], g, owned, fresh)


def _owned(g, dtype):
    """A fresh copy of g (backward functions may hand one array to several inputs)."""
    return np.array(g, dtype=dtype, copy=True) if device_of(g) == "cpu" else g.astype(dtype)


def _accumulate_leaf(leaf, g, fresh=False):
    """leaf.grad += g, or leaf.grad = a copy of g (g itself when `fresh`: see Function.fresh_grads)."""
    if leaf._grad is None:
        leaf._grad = leaf._wrap(g if fresh and g.dtype == leaf._array.dtype else _owned(g, leaf._array.dtype))
    elif leaf._grad._requires_grad:  # a .grad with a graph (create_graph=True before): its array may be saved there
        leaf._grad = leaf._wrap(leaf._grad._array + g)
    else:
        leaf._grad._array += g
        leaf._grad._bump_version()  # (a graph that saved .grad, e.g. (x.grad @ w), can no longer backward)


def _run_output_hooks(node, output_grads):
    """The hooks of node's outputs, on their gradients (in the list, replaced by what the hooks
    return); then the retained .grad of the tensors there now (in grad() too, as in PyTorch)."""
    for index, entry in node.hooks.items():
        g = output_grads[index]
        if g is None:
            continue
        if entry.fns:
            g = output_grads[index] = call_hooks(entry.fns, g, entry.wrap, f"{node.name}Backward output {index}")
        if entry.retain:
            for ref in entry.retain:
                t = ref()
                if t is not None and t._node is node and t._index == index:  # not moved by an in-place op
                    _accumulate_leaf(t, g)
