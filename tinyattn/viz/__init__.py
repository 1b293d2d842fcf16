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
This package observes the graph and never changes it.

The package: recording.py (what record() notes), graph.py (build_graph: boxes and arrows), dot.py (to_dot),
layered.py (layout(): the layered layout), draw.py (draw_graph with matplotlib).
"""
from .dot import to_dot
from .draw import draw_graph
from .graph import Graph, Vertex, build_graph
from .layered import layout
from .recording import record

__all__ = ["record", "draw_graph", "to_dot", "build_graph", "Graph", "Vertex", "layout"]
