"""The graph behind a tensor as boxes (Vertex) and arrows (Graph): build_graph() reads the recorded nodes, and
what record() noted, and collapses module calls into one box when asked."""
import numpy as np

from .. import autograd
from .recording import op_notes

__all__ = ["build_graph", "COLORS", "Graph", "Vertex"]


COLORS = {
    "op": ("#eeeeee", "#555555"),
    "leaf": ("#cfe6ff", "#2c6fb7"),
    "output": ("#d3f2c4", "#3d7a2a"),
    "input": ("#ffffff", "#b0b0b0"),
    "module": ("#fff1c7", "#a07a10"),
}


class Vertex:
    """A box: kind ("output", "op", "leaf", "input", "module"), its lines of text, and for ops the nodes it
    stands for."""

    __slots__ = ("key", "kind", "lines", "nodes", "faint")

    def __init__(self, key, kind, lines, nodes=()):
        self.key, self.kind, self.lines, self.nodes = key, kind, list(lines), list(nodes)
        self.faint = kind == "input"

    def __repr__(self):
        return f"Vertex({self.kind}: {' | '.join(self.lines)})"


class Graph:
    """Vertices by key and edges (consumer key, producer key, faint): the direction of the backward pass."""

    def __init__(self):
        self.vertices = {}
        self.edges = []
        self._seen = set()

    def add(self, key, kind, lines, nodes=()):
        if key not in self.vertices:
            self.vertices[key] = Vertex(key, kind, lines, nodes)
        return self.vertices[key]

    def connect(self, consumer, producer, faint=False):
        edge = (consumer, producer, faint)
        if consumer != producer and edge not in self._seen:
            self._seen.add(edge)
            self.edges.append(edge)

    def labels(self, kind=None):
        return [" ".join(v.lines) for v in self.vertices.values() if kind is None or v.kind == kind]


def _shape_text(shape):
    return "(" + ", ".join(str(n) for n in shape) + (",)" if len(shape) == 1 else ")")


def _shapes_text(shapes):
    if len(shapes) > 1 and all(s == shapes[0] for s in shapes):
        return f"{len(shapes)} × {_shape_text(shapes[0])}"
    return "  ".join(_shape_text(s) for s in shapes)


def build_graph(tensor, module=None, names=None, collapse=None, depth=1):
    """The Graph that draw_graph and to_dot draw (see draw_graph for the arguments)."""
    if not isinstance(tensor, autograd.Variable):
        raise TypeError(f"draw_graph: expected a tensor, got {type(tensor).__name__}")
    if not tensor.requires_grad:
        raise ValueError("draw_graph: the tensor does not require grad, so no graph was recorded for it")
    if collapse not in (None, "module"):
        raise ValueError(f"draw_graph: collapse must be None or 'module', got {collapse!r}")
    param_names = {id(p): n for n, p in module.named_parameters()} if module is not None else {}
    tensor_names = {}  # id(leaf) or (id(node), index) -> name
    for name, t in (names or {}).items():
        if not isinstance(t, autograd.Variable):
            raise TypeError(f"draw_graph: names[{name!r}] must be a tensor, got {type(t).__name__}")
        tensor_names[id(t) if t._node is None else (id(t._node), t._index)] = name

    # walk the graph from the tensor: every node, its output shapes, its leaves
    nodes, shapes, order = {}, {}, []
    leaves = {}
    stack = []
    if tensor._node is not None:
        stack.append(tensor._node)
        shapes.setdefault(id(tensor._node), {})[tensor._index] = tuple(tensor._array.shape)
    while stack:
        node = stack.pop()
        if id(node) in nodes:
            continue
        nodes[id(node)] = node
        order.append(node)
        for parent, edge in zip(node.parents, node.edges):
            if parent is None:
                continue
            if edge[0] is None:
                leaves[id(parent)] = parent
            else:
                shapes.setdefault(id(edge[0]), {})[edge[1]] = tuple(parent._array.shape)
                if id(edge[0]) not in nodes:
                    stack.append(edge[0])
    notes = {id(n): op_notes.get(n) for n in order}
    if collapse == "module" and order and not any(notes.values()):
        raise ValueError("draw_graph: collapse='module' needs to know which module ran each op: run the forward "
                         "pass inside `with viz.record(model):`")

    # which box each node goes to: itself, or (collapsed) the module call it ran in at `depth`
    group_of = {}
    for node in order:
        note = notes[id(node)]
        key = ("node", id(node))
        if collapse == "module" and note is not None and note.stack:
            stack = note.stack
            if stack[0][0] != "":  # the recorded model itself was not called (a ModuleDict): depth counts from it
                stack = (("", 0, "", True),) + stack
            if len(stack) > depth:
                key = ("module", stack[: depth + 1])
            elif not stack[-1][3]:  # a module without submodules, above `depth`: one box all the same
                key = ("module", stack)
        group_of[id(node)] = key

    g = Graph()
    root_name = (names and next((n for n, t in names.items() if t is tensor), None)) or "output"
    g.add("output", "output", [root_name, _shape_text(tensor._array.shape)])
    leaf_users = {}
    for node in order:
        for parent, edge in zip(node.parents, node.edges):
            if parent is not None and edge[0] is None:
                leaf_users.setdefault(id(parent), set()).add(group_of[id(node)])

    # the boxes
    module_members = {}
    for node in order:
        key = group_of[id(node)]
        if key[0] == "module":
            module_members.setdefault(key, []).append(node)
            continue
        lines = [f"{node.name}Backward", _shapes_text([s for _, s in sorted(shapes.get(id(node), {}).items())])]
        named = [tensor_names[(id(node), i)] for i in range(node.n_outputs)
                 if (id(node), i) in tensor_names and not (tensor._node is node and tensor._index == i)]
        if named:
            lines.insert(0, ", ".join(named))
        note = notes[id(node)]
        if note is not None and note.stack:
            lines.append(f"in {note.stack[-1][0] or note.stack[-1][2]}")
        g.add(key, "op", lines, [node])
    for key, members in module_members.items():
        path, number, cls, _ = key[1][-1]
        calls = sum(1 for k in module_members if k[1][-1][0] == path)
        title = (path or cls) + (f" (call {number + 1})" if calls > 1 or number > 0 else "")
        absorbed = [l for l, users in leaf_users.items() if users == {key}]
        n_values = sum(leaves[l]._array.size for l in absorbed)
        ops = f"{len(members)} op" + ("s" if len(members) != 1 else "")
        params = (f", {len(absorbed)} parameter{'s' if len(absorbed) != 1 else ''} ({n_values:,} values)"
                  if absorbed else "")
        out_shapes = []
        member_ids = {id(n) for n in members}
        for n in members:  # shapes of what leaves the box
            for i, s in sorted(shapes.get(id(n), {}).items()):
                if _used_outside(n, i, member_ids, order, tensor) and s not in out_shapes:
                    out_shapes.append(s)
        g.add(key, "module", [title, cls, ops + params, " ".join(_shape_text(s) for s in out_shapes)], members)
    for lid, leaf in leaves.items():
        users = leaf_users[lid]
        if len(users) == 1 and next(iter(users))[0] == "module":
            continue  # inside its module's box
        name = tensor_names.get(lid) or param_names.get(lid) or "leaf"
        g.add(("leaf", lid), "leaf", [name, _shape_text(leaf._array.shape)])
    if tensor._node is None:  # a leaf on its own
        name = tensor_names.get(id(tensor)) or param_names.get(id(tensor)) or "leaf"
        g.add(("leaf", id(tensor)), "leaf", [name, _shape_text(tensor._array.shape)])

    # the arrows, in the direction of the backward pass
    g.connect("output", group_of[id(tensor._node)] if tensor._node is not None else ("leaf", id(tensor)))
    for node in order:
        consumer = group_of[id(node)]
        for parent, edge in zip(node.parents, node.edges):
            if parent is None:
                continue
            if edge[0] is None:
                producer = ("leaf", id(parent))
                if producer not in g.vertices:
                    continue  # absorbed into the consumer's module box
            else:
                producer = group_of[id(edge[0])]
            g.connect(consumer, producer)
        note = notes[id(node)]
        for position, ref, ident, shape, dtype, label in (note.inputs if note is not None else ()):
            alive = ref() if ref is not None else None
            key = ("input", ident) if alive is not None else ("input", id(node), position)
            name = label
            if alive is not None:  # named by the caller: the tensor itself, or an array holding its values
                name = tensor_names.get(ident) or next(
                    (n for n, t in (names or {}).items() if _holds(alive, t)), name)
            g.add(key, "input", [name, f"{_shape_text(shape)} {dtype}"])
            g.connect(consumer, key, faint=True)
    return g


def _holds(array, t):
    """Whether `array` (an op's argument) is tensor t's data, or a copy of it that a functional made
    (a dtype conversion, a flattening): the same values in the same order."""
    if isinstance(array, autograd.Variable):
        return array is t
    if array is t._array:
        return True
    if not isinstance(array, np.ndarray) or not isinstance(t._array, np.ndarray) or array.size != t._array.size:
        return False
    return bool(np.array_equal(array.reshape(-1), t._array.reshape(-1)))


def _used_outside(node, index, member_ids, order, tensor):
    if tensor._node is node and tensor._index == index:
        return True
    for other in order:
        if id(other) in member_ids:
            continue
        for parent, edge in zip(other.parents, other.edges):
            if parent is not None and edge is not None and edge[0] is node and edge[1] == index:
                return True
    return False
