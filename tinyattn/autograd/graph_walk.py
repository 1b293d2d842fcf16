"""The backward walk with create_graph=True: every node's backward runs as recorded tensor ops, so that the
gradients it returns have a graph of their own and can be differentiated again (second derivatives,
Hessian-vector products, gradient penalties).

A Function takes part by defining `differentiable_backward(ctx, inputs, grad)`, its backward written with
tensor ops instead of raw arrays (see Function). The walk is the one of engine._walk (same order, same hooks,
same rules for leaves and for grad()'s inputs), with gradients that are tensors: sums are recorded additions, a
leaf's `.grad` becomes `old + new` (out of place, as PyTorch does under create_graph), and grad mode is on while
it runs, whatever it was outside. engine._walk, the everyday path, is left as it is: this one is only taken when
create_graph=True is asked for.
"""
from .grad_mode import enable_grad
from .graph import Node, input_positions, nodes_to_run, topological_order
from .hooks import attach_retained, check_hook_result, retained
from .variable import Variable

__all__ = ["accumulate_with_graph", "walk_with_graph"]


def walk_with_graph(roots, retain_graph, inputs=None):
    """engine._walk for create_graph=True. roots: (tensor, gradient tensor) pairs. Returns, for grad(), each
    input's gradient tensor (None where none arrived); for backward() (inputs=None), fills the leaves' .grad."""
    if retained:
        attach_retained()
    pending, leaves, run = {}, {}, None
    found, wanted, capture = input_positions(inputs)
    root_nodes = []
    with enable_grad():
        for t, g in roots:
            if t._node is None:
                _leaf_gets(leaves, t, g, wanted)
            else:
                _add_pending(pending, t._node, t._index, g)
                root_nodes.append(t._node)
        order = topological_order(root_nodes)
        if inputs is not None:
            run = nodes_to_run(order, capture, wanted)
        for node in order:
            output_grads = pending.pop(id(node), None)
            if output_grads is None:
                continue
            if run is not None:
                todo = run.get(id(node))
                if todo is None:
                    continue
            if node.hooks is not None:
                _run_output_hooks(node, output_grads)
            if capture is not None:
                for index, og in enumerate(output_grads):
                    for i in capture.get((id(node), index), ()):
                        found[i] = og
                if not todo:
                    continue
            grads = _node_backward(node, output_grads, retain_graph)
            for parent, edge, pg in zip(node.parents, node.edges, grads):
                if parent is None or pg is None:
                    continue
                if edge[0] is None:
                    _leaf_gets(leaves, parent, pg, wanted)
                else:
                    _add_pending(pending, edge[0], edge[1], pg)
        final = []
        for leaf, g in leaves.values():
            if isinstance(leaf._hooks, dict) and leaf._hooks:
                g = _call_hooks(leaf._hooks.values(), g, "leaf")
            final.append((leaf, g))
        for leaf, g in final:
            if wanted is None:
                accumulate_with_graph(leaf, g)
            else:
                for i in wanted[id(leaf)]:
                    found[i] = g
    return found


def _node_backward(node: Node, output_grads, retain_graph):
    """Run node's differentiable backward on the gradient tensors of its outputs; its input gradients."""
    name = node.name
    fn = node.function.differentiable_backward
    if fn is None:
        raise RuntimeError(
            f"backward with create_graph=True: {name} has no differentiable backward (its backward works on raw "
            f"arrays only), so the gradient through {name} cannot be differentiated again; compute without "
            f"create_graph, or write {name} from ops that have one")
    ctx = node.ctx
    if ctx is None:
        raise node.freed_error()
    for counter, version, _ in ctx.versions:
        if counter.value != version:
            node.check_versions()  # raises, naming the op
    inputs = []
    for i, (parent, edge) in enumerate(zip(node.parents, node.edges)):
        # the differentiable backward reads the inputs' values (not only what forward saved): an input changed in
        # place since (its version moved, or it stands for a newer node) would give a silently wrong derivative
        if parent is not None and (parent._counter.value != edge[2] or (
                edge[0] is not None and (parent._node is not edge[0] or parent._index != edge[1]))):
            raise RuntimeError(
                f"backward with create_graph=True: input {i} of {name} (shape {tuple(parent._array.shape)}) was "
                f"changed in place after {name} used it, so its old value is gone and the gradient's graph cannot "
                "be built; clone() it before the in-place change")
        inputs.append(parent)
    g = tuple(output_grads) if node.returns_tuple else output_grads[0]
    grads = fn(ctx, tuple(inputs), g)
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(node.parents):
        raise RuntimeError(f"backward: {name}.differentiable_backward returned {len(grads)} gradients, but forward "
                           f"took {len(node.parents)} arguments (return None for each one without a gradient)")
    if not retain_graph:
        node.ctx = None
    checked = []
    for i, (parent, pg) in enumerate(zip(node.parents, grads)):
        if parent is None or pg is None:
            checked.append(None)
            continue
        if not isinstance(pg, Variable):
            raise TypeError(f"backward: {name}.differentiable_backward returned a {type(pg).__name__} for argument "
                            f"{i}; it must return tensors (built from recorded ops) or None")
        if pg._array.shape != parent._array.shape:
            raise RuntimeError(f"backward: {name}.differentiable_backward returned a gradient of shape "
                               f"{tuple(pg._array.shape)} for argument {i}, which has shape "
                               f"{tuple(parent._array.shape)}")
        if pg._array.dtype != parent._array.dtype:
            pg = pg.to(parent._array.dtype)
        checked.append(pg)
    return checked


def accumulate_with_graph(t, g):
    """t.grad += g under create_graph: out of place, so that an earlier .grad keeps its graph (a copy of g
    for the first, as PyTorch's AccumulateGrad: g may be handed to several inputs)."""
    t._grad = g.clone() if t._grad is None else t._grad + g


def _add_pending(pending, node, index, g):
    slots = pending.get(id(node))
    if slots is None:
        slots = pending[id(node)] = [None] * node.n_outputs
    slots[index] = g if slots[index] is None else slots[index] + g


def _leaf_gets(leaves, leaf, g, wanted):
    if wanted is not None and id(leaf) not in wanted:
        return
    entry = leaves.get(id(leaf))
    if entry is None:
        leaves[id(leaf)] = [leaf, g]
    else:
        entry[1] = entry[1] + g


def _run_output_hooks(node, output_grads):
    """The hooks of node's outputs on their gradient tensors, then the .grad of the tensors that retain it
    (both in backward() and in grad(), as in PyTorch)."""
    for index, entry in node.hooks.items():
        g = output_grads[index]
        if g is None:
            continue
        if entry.fns:
            g = output_grads[index] = _call_hooks(entry.fns.values(), g, f"{node.name}Backward output {index}")
        for ref in entry.retain:
            t = ref()
            if t is not None and t._node is node and t._index == index:
                accumulate_with_graph(t, g)


def _call_hooks(hooks, g, where):
    """Each hook on the gradient tensor the previous one left; a returned tensor replaces it (its graph too)."""
    for hook in list(hooks):
        out = hook(g)
        if out is not None:
            check_hook_result(hook, out, g._array, where)
            g = out
    return g
