"""See the graph that backward will walk: draw_graph() draws it to a PNG with matplotlib, to_dot() writes
Graphviz DOT text.

    from tinyattn import viz
    with viz.record(model):                      # optional: module names and inputs without grad
        loss = F.cross_entropy(model(x).reshape(-1, 16), y)
    viz.draw_graph(loss, "graph.png", module=model)                       # every op
    viz.draw_graph(loss, "modules.png", module=model, collapse="module")  # one box per module call

What the graph holds by itself: one Node per recorded op (`tensor.grad_fn`) and, along its
`edges`, the nodes that made its inputs, down to the leaves that require a gradient. That is
what is drawn: ops as grey boxes named as PyTorch names them (`MulBackward`, `LinearBackward`)
with their output shapes, leaves as blue boxes (named after the module's parameters when a
module is given), the tensor itself at the top, and arrows in the direction the gradient
travels, from the tensor down to the leaves. The graph keeps nothing of the inputs that need
no gradient (token ids, targets, the sinusoidal table): ops run inside `record()` also note
those, and they are drawn faintly, with a dashed line and no arrow, since no gradient goes there.

`record(model)` puts a forward pre-hook and a forward hook on every submodule, so each op knows
the module calls it ran inside; `collapse="module"` then draws one box per call of a module at
`depth` (1: the model's children, 2: their children, ...), with the parameters it uses inside.

The layout is layered (a Sugiyama-style layout, written here): each box sits one layer below
the lowest box that consumes it, long edges bend through the layers in between, the order
within a layer is chosen to cut crossings, and boxes are pulled under their neighbours.
This module observes the graph and never changes it.
"""
import textwrap
import weakref

import numpy as np

from . import autograd

__all__ = ["record", "draw_graph", "to_dot", "build_graph"]

# node -> _Note, filled by record(); entries vanish with their nodes
_notes = weakref.WeakKeyDictionary()

COLORS = {
    "op": ("#eeeeee", "#555555"),
    "leaf": ("#cfe6ff", "#2c6fb7"),
    "output": ("#d3f2c4", "#3d7a2a"),
    "input": ("#ffffff", "#b0b0b0"),
    "module": ("#fff1c7", "#a07a10"),
}


class _Note:
    __slots__ = ("stack", "inputs")

    def __init__(self, stack, inputs):
        self.stack = stack  # ((module path, call number, class name, has submodules), ...), outermost first
        self.inputs = inputs  # [(argument position, weakref or None, id, shape, dtype, label)]


class record:
    """Context manager: while open, every recorded op is noted with the module calls it runs
    inside and with its tensor arguments that need no gradient (which the graph does not keep).

    `module` (optional) gets a forward pre-hook and a forward hook on itself and every submodule;
    they are removed on exit. Without a module only the inputs are noted.
    """

    def __init__(self, module=None):
        self.module = module
        self._stack = ()
        self._calls = {}
        self._handles = []
        self._buffers = {}
        self._derived = {}  # id(tensor) -> (weakref, label) for results of unrecorded ops on a buffer
        self._parents = set()  # paths of the modules that have submodules

    def __enter__(self):
        if self.module is not None:
            for path, m in self.module.named_modules():
                self._handles.append(m.register_forward_pre_hook(self._enter_module(path)))
                self._handles.append(m.register_forward_hook(self._leave_module(path), always_call=True))
            self._buffers = {id(b): name for name, b in self.module.named_buffers()}
            self._parents = {path for path, m in self.module.named_modules() if any(True for _ in m.children())}
        self._handles.append(autograd.observe(self))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    def _enter_module(self, path):
        def pre_hook(module, args):
            number = self._calls.get(path, 0)
            self._calls[path] = number + 1
            self._stack = self._stack + ((path, number, type(module).__name__, path in self._parents),)

        return pre_hook

    def _leave_module(self, path):
        def hook(module, args, output):
            for i in range(len(self._stack) - 1, -1, -1):
                if self._stack[i][0] == path:
                    self._stack = self._stack[:i]
                    break

        return hook

    def on_apply(self, cls, args, out, start, end):
        first = out[0] if isinstance(out, tuple) else out
        node = first._node
        if node is None:  # not recorded: remember what a buffer became (the slice pe[:T] of the sinusoidal table)
            labels = [self._label(a) for a in args if isinstance(a, autograd.Variable)]
            label = next((l for l in labels if l), None)
            if label is not None:
                for o in (out if isinstance(out, tuple) else (out,)):
                    text = f"{label}[…]" if cls.__name__ == "GetItem" else f"{cls.__name__.lower()}({label})"
                    self._derived[id(o)] = (weakref.ref(o), text)
            return
        inputs = []
        for i, a in enumerate(args):
            if isinstance(a, autograd.Variable):
                if not a._requires_grad:
                    inputs.append((i, weakref.ref(a), id(a), tuple(a._array.shape), str(a._array.dtype),
                                   self._label(a) or _argument_name(cls, i)))
            elif getattr(a, "ndim", 0) >= 1 and hasattr(a, "dtype"):  # an array the functional passed on
                try:
                    ref = weakref.ref(a)
                except TypeError:
                    ref = None
                inputs.append((i, ref, id(a), tuple(a.shape), str(a.dtype), _argument_name(cls, i)))
        _notes[node] = _Note(self._stack, inputs)

    def _label(self, t):
        if id(t) in self._buffers:
            return self._buffers[id(t)]
        derived = self._derived.get(id(t))
        if derived is not None and derived[0]() is t:
            return derived[1]
        return None

    def on_backward(self, node, grad, start, end):
        pass


_signatures = {}


def _argument_name(cls, position):
    """The name of forward's argument at `position` (after ctx): what an input without grad is called."""
    names = _signatures.get(cls)
    if names is None:
        import inspect

        try:
            names = [p.name for p in inspect.signature(cls.forward).parameters.values()][1:]
        except (TypeError, ValueError):
            names = []
        _signatures[cls] = names
    return names[position] if position < len(names) and not names[position].startswith("*") else "input"


# ---- the graph as boxes and arrows ---------------------------------------------------------------

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
    notes = {id(n): _notes.get(n) for n in order}
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


# ---- DOT -----------------------------------------------------------------------------------------

def to_dot(tensor, module=None, names=None, collapse=None, depth=1):
    """The graph as Graphviz DOT text (`dot -Tpng graph.dot -o graph.png`, for those who have Graphviz)."""
    g = build_graph(tensor, module, names, collapse, depth)
    ids = {key: f"v{i}" for i, key in enumerate(g.vertices)}
    lines = ["digraph tinyattn {", '  rankdir=TB;',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];']
    for key, v in g.vertices.items():
        fill, line = COLORS[v.kind]
        label = "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in v.lines if s)
        extra = ', style="rounded,dashed", fontcolor="#999999"' if v.faint else ""
        lines.append(f'  {ids[key]} [label="{label}", fillcolor="{fill}", color="{line}"{extra}];')
    for consumer, producer, faint in g.edges:
        style = ' [style=dashed, color="#bbbbbb", arrowhead=none]' if faint else ""
        lines.append(f"  {ids[consumer]} -> {ids[producer]}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- layout --------------------------------------------------------------------------------------

FONT_SIZE = 8.0  # points
_CHAR_W = 0.6 * FONT_SIZE / 72  # inches per character, DejaVu Sans (a little generous)
_LINE_H = 1.35 * FONT_SIZE / 72
_PAD_X, _PAD_Y = 0.14, 0.10
_GAP_X, _GAP_Y = 0.22, 0.42
_DUMMY_W = 0.08


def _box_size(v):
    width = max(len(s) for s in v.lines if s) * _CHAR_W + 2 * _PAD_X
    height = sum(1 for s in v.lines if s) * _LINE_H + 2 * _PAD_Y
    return width, height


def _layers(keys, edges):
    """Longest path from the top: each vertex one layer below the lowest vertex that points to it."""
    preds = {k: [] for k in keys}
    succs = {k: [] for k in keys}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    layer, indegree = {}, {k: len(preds[k]) for k in keys}
    ready = [k for k in keys if indegree[k] == 0]
    while ready:
        k = ready.pop()
        layer[k] = max((layer[p] + 1 for p in preds[k]), default=0)
        for s in succs[k]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    assert len(layer) == len(keys), "the graph has a cycle"
    return layer


def _isotonic(values, weights):
    """Pool-adjacent-violators: the non-decreasing sequence closest to `values` in weighted squares."""
    blocks = []  # [mean, weight, count]
    for v, w in zip(values, weights):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out = []
    for m, _, c in blocks:
        out.extend([m] * c)
    return out


def _place_row(row, desired, widths, weights):
    """x for the vertices of one layer, in order, at least _GAP_X apart, as close to `desired` as can be."""
    offsets, total = [], 0.0
    for i, k in enumerate(row):
        if i:
            both_bends = widths[k] <= _DUMMY_W and widths[row[i - 1]] <= _DUMMY_W
            total += (widths[row[i - 1]] + widths[k]) / 2 + (_GAP_X / 2 if both_bends else _GAP_X)
        offsets.append(total)
    fitted = _isotonic([desired[k] - o for k, o in zip(row, offsets)], [weights[k] for k in row])
    return {k: f + o for k, f, o in zip(row, fitted, offsets)}


def _crossings(upper, lower, down):
    pos = {k: i for i, k in enumerate(lower)}
    pairs = sorted((i, pos[b]) for i, a in enumerate(upper) for b in down.get(a, ()) if b in pos)
    count = 0
    for x in range(len(pairs)):
        for y in range(x + 1, len(pairs)):
            if pairs[x][0] < pairs[y][0] and pairs[x][1] > pairs[y][1]:
                count += 1
    return count


def layout(graph):
    """Positions (centre x, centre y in inches, y growing downwards) of every vertex, and of every
    edge the points it bends through. Returns (boxes {key: (x, y, w, h)}, routes [(points, faint)], width, height)."""
    keys = list(graph.vertices)
    pairs = [(a, b) for a, b, _ in graph.edges]
    layer = _layers(keys, pairs)
    sizes = {k: _box_size(graph.vertices[k]) for k in keys}
    # long edges get a dummy vertex in every layer they cross
    down, up, chains = {}, {}, []
    widths = {k: sizes[k][0] for k in keys}
    n_layers = max(layer.values()) + 1
    rows = [[] for _ in range(n_layers)]
    for a, b, faint in graph.edges:
        chain = [a]
        for level in range(layer[a] + 1, layer[b]):
            d = ("dummy", len(chains), level)
            layer[d], widths[d] = level, _DUMMY_W
            chain.append(d)
        chain.append(b)
        chains.append((chain, faint))
        for u, v in zip(chain, chain[1:]):
            down.setdefault(u, []).append(v)
            up.setdefault(v, []).append(u)
    # first order: depth-first from the top, so that chains start out untangled
    seen = set()

    def visit(k):
        stack = [k]
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            rows[layer[k]].append(k)
            stack.extend(reversed(down.get(k, [])))

    for k in keys:
        if not up.get(k):
            visit(k)
    for k in list(layer):
        if k not in seen:
            visit(k)
    # cut crossings: barycentre sweeps down and up, keeping the best order seen
    def total_crossings():
        return sum(_crossings(rows[i], rows[i + 1], down) for i in range(n_layers - 1))

    best, best_rows = total_crossings(), [list(r) for r in rows]
    for sweep in range(12):
        if best == 0:
            break
        span = range(1, n_layers) if sweep % 2 == 0 else range(n_layers - 2, -1, -1)
        for i in span:
            ref = rows[i - 1] if sweep % 2 == 0 else rows[i + 1]
            neighbours = up if sweep % 2 == 0 else down
            pos = {k: j for j, k in enumerate(ref)}
            current = {k: j for j, k in enumerate(rows[i])}

            def centre(k):
                ps = [pos[n] for n in neighbours.get(k, ()) if n in pos]
                return sum(ps) / len(ps) if ps else current[k] * len(ref) / max(len(rows[i]), 1)

            rows[i].sort(key=lambda k: (centre(k), current[k]))
        c = total_crossings()
        if c < best:
            best, best_rows = c, [list(r) for r in rows]
    rows = best_rows
    # x: start packed, then pull every vertex under the mean of its neighbours, row by row
    x = {}
    for row in rows:
        x.update(_place_row(row, {k: 0.0 for k in row}, widths, {k: 1.0 for k in row}))
    # how firmly a box holds its place in a row (ops before the bends of long edges before leaves), and how
    # much a neighbour pulls: a leaf hanging below an op must not drag the op (and the chain) sideways
    kinds = {k: graph.vertices[k].kind if k in graph.vertices else "dummy" for k in layer}
    weights = {k: {"dummy": 0.5, "leaf": 0.02, "input": 0.02}.get(kinds[k], 1.0) for k in layer}
    pull = {k: {"leaf": 0.05, "input": 0.02}.get(kinds[k], 1.0) for k in layer}
    for sweep in range(20):
        downward = sweep % 2 == 0
        both = sweep >= 14
        span = range(n_layers) if downward else range(n_layers - 1, -1, -1)
        for i in span:
            desired = {}
            for k in rows[i]:
                ns = (up.get(k, []) + down.get(k, [])) if both else (up.get(k, []) if downward else down.get(k, []))
                total = sum(pull[n] for n in ns)
                desired[k] = sum(pull[n] * x[n] for n in ns) / total if ns else x[k]
            x.update(_place_row(rows[i], desired, widths, weights))
    # y: each layer as tall as its tallest box
    heights = [max((sizes[k][1] for k in row if k in sizes), default=0.1) for row in rows]
    y, top = {}, 0.0
    for i, row in enumerate(rows):
        for k in row:
            y[k] = top + heights[i] / 2
        top += heights[i] + _GAP_Y
    left = min(x[k] - widths[k] / 2 for k in x)
    right = max(x[k] + widths[k] / 2 for k in x)
    boxes = {k: (x[k] - left, y[k], sizes[k][0], sizes[k][1]) for k in keys}
    routes = []
    for chain, faint in chains:
        a, b = chain[0], chain[-1]
        points = [(x[a] - left, y[a] + sizes[a][1] / 2)]
        for d in chain[1:-1]:  # straight down through a layer, so that no box of that layer is crossed
            half = heights[layer[d]] / 2
            points += [(x[d] - left, y[d] - half), (x[d] - left, y[d] + half)]
        points.append((x[b] - left, y[b] - sizes[b][1] / 2))
        routes.append((points, faint))
    return boxes, routes, right - left, top - _GAP_Y


# ---- drawing -------------------------------------------------------------------------------------

def draw_graph(tensor, path, module=None, collapse=None, depth=1, names=None, title=None, dpi=110):
    """Draw the graph behind `tensor` to a PNG at `path` (matplotlib, Agg); returns the Graph.

    module: names the leaves after its parameters (named_parameters). names: {name: tensor} for
    any other tensor, leaf or intermediate (an op box then shows the name of its output).
    collapse="module": one box per module call at `depth`, from the notes that `record(model)`
    took during the forward pass (an error without them). title: a line above the picture.
    """
    g = build_graph(tensor, module, names, collapse, depth)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes, routes, width, height = layout(g)
    counts = {kind: sum(1 for v in g.vertices.values() if v.kind == kind) for kind in COLORS}
    if collapse is None:
        what = f"{counts['op']} ops, {counts['leaf']} leaves that need a gradient (blue)"
    else:
        what = f"{counts['module']} module calls (yellow; their parameters inside), {counts['op']} ops outside them"
        if counts["leaf"]:
            what += f", {counts['leaf']} other leaves that need a gradient (blue)"
    legend = (f"{what}. Arrows: the backward pass, from the tensor to the leaves. Faint and dashed: inputs that "
              "need no gradient.")
    margin = 0.3
    fig_w = max(width + 2 * margin, 6.4)
    legend_lines = textwrap.wrap(legend, max(40, int((fig_w - 2 * margin) / (0.55 * FONT_SIZE / 72))))
    header = 0.45 + len(legend_lines) * _LINE_H + 0.2
    fig_h = height + 2 * margin + header
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-(fig_w - width) / 2, width + (fig_w - width) / 2)
    ax.set_ylim(height + margin, -margin - header)
    ax.axis("off")
    left = -(fig_w - width) / 2 + margin
    ax.text(left, -margin - header + 0.1, title or "The graph behind the tensor", ha="left", va="top",
            fontsize=11, fontweight="bold")
    for j, line in enumerate(legend_lines):
        ax.text(left, -margin - header + 0.45 + j * _LINE_H, line, ha="left", va="top", fontsize=FONT_SIZE,
                color="#444444")
    for points, faint in routes:
        xs, ys = zip(*points)
        if faint:
            ax.plot(xs, ys, color="#c4c4c4", linewidth=0.9, linestyle=(0, (3, 2)), zorder=1)
            continue
        if len(points) > 2:
            ax.plot(xs[:-1], ys[:-1], color="#666666", linewidth=0.9, zorder=1, solid_capstyle="round")
        ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>", mutation_scale=9, color="#666666",
                                     linewidth=0.9, shrinkA=0, shrinkB=0.5, zorder=1))
    for key, (cx, cy, w, h) in boxes.items():
        v = g.vertices[key]
        fill, edge = COLORS[v.kind]
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                    facecolor=fill, edgecolor=edge, linewidth=0.9 if not v.faint else 0.8,
                                    linestyle="--" if v.faint else "-", zorder=2))
        lines = [s for s in v.lines if s]
        top = cy - h / 2 + _PAD_Y + _LINE_H / 2
        for j, s in enumerate(lines):
            bold = j == 0 and v.kind in ("op", "module", "output", "leaf")
            muted = v.faint or (v.kind == "op" and s.startswith("in ")) or (v.kind == "module" and j == 1)
            ax.text(cx, top + j * _LINE_H, s, ha="center", va="center", fontsize=FONT_SIZE,
                    fontweight="bold" if bold and not v.faint else "normal",
                    color="#9a9a9a" if v.faint else ("#666666" if muted else "#111111"), zorder=3)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return g
