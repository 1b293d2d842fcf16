"""The recorded graph: VersionCounter (in-place changes of an array), Context (what a forward leaves for its
backward) and Node (one recorded op, with the edges its gradients flow along)."""
import itertools
import operator
import weakref

__all__ = ["Context", "creation_order", "input_positions", "Node", "nodes_to_run", "topological_order",
           "VersionCounter"]


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
creation_order = operator.attrgetter("seq")


class Node:
    """One recorded op: the Function, its context, and the Variables it was applied to.

    `parents[i]` is the i-th positional argument when it is a Variable that requires a
    gradient, else None. `edges[i]` is where that argument's gradient goes: the (node, output
    index) that had made it when the op ran, or (None, 0) for a leaf, and the argument's version
    then. The edge is taken at record time because an in-place op later gives the tensor a new
    node, and this op consumed the old value. `ctx` becomes None once backward has freed the saved
    values. A Function whose forward returns a tuple makes one Node with `n_outputs` outputs; each
    output tensor knows its position (`_index`).

    `hooks` is None, or {output index: _OutputHooks}: the tensor hooks and retain_grad() of the
    tensors that stood for that output when they were registered (see Variable.register_hook).
    """

    __slots__ = ("function", "ctx", "parents", "edges", "n_outputs", "returns_tuple", "hooks", "seq", "__weakref__")

    def __init__(self, function, ctx, parents, n_outputs=1, returns_tuple=False):
        self.seq = next(_node_seq)  # creation order: the backward walk's topological order (see topological_order)
        self.function = function
        self.ctx = ctx
        self.parents = parents
        # (node, output index, the input's version now): the version lets a create_graph backward, which reads the
        # inputs' values, refuse one that an in-place op changed since (graph_walk.py)
        if len(parents) == 1:  # the commonest ops spelled out (a comprehension is a call of its own)
            p = parents[0]
            self.edges = (None if p is None else (p._node, p._index, p._counter.value),)
        elif len(parents) == 2:
            p, q = parents
            self.edges = (None if p is None else (p._node, p._index, p._counter.value),
                          None if q is None else (q._node, q._index, q._counter.value))
        else:
            self.edges = tuple([None if p is None else (p._node, p._index, p._counter.value) for p in parents])
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
        return tuple((None, 0) if e is None else e[:2] for e in self.edges)

    def freed_error(self):
        """The error for a second backward through this node after the first freed its saved values."""
        return RuntimeError(
            f"backward: trying to backward through {self.name} a second time, but its saved values were freed by "
            "the first backward; pass retain_graph=True to the first call")

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


def topological_order(root_nodes):
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
    nodes.sort(key=creation_order, reverse=True)
    return nodes


def nodes_to_run(order, capture, wanted):
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


def input_positions(inputs):
    """For a walk that collects the gradients of `inputs` (grad()): (found, wanted, capture), found a list of one
    None per input, wanted {id(leaf): its positions}, capture {(id(node), output index): positions} for the
    non-leaf ones; all None for backward() (inputs=None)."""
    if inputs is None:
        return None, None, None
    found, wanted, capture = [None] * len(inputs), {}, {}
    for i, t in enumerate(inputs):
        if t._node is None:
            wanted.setdefault(id(t), []).append(i)
        else:
            capture.setdefault((id(t._node), t._index), []).append(i)
    return found, wanted, capture
