"""to_dot(): the graph as Graphviz DOT text."""
from .graph import COLORS, build_graph

__all__ = ["to_dot"]


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
