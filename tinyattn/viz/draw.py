"""draw_graph(): the laid-out graph drawn to a PNG with matplotlib (Agg)."""
import textwrap

from .graph import COLORS, build_graph
from .layered import FONT_SIZE, LINE_H, PAD_Y, layout

__all__ = ["draw_graph"]


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
    header = 0.45 + len(legend_lines) * LINE_H + 0.2
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
        ax.text(left, -margin - header + 0.45 + j * LINE_H, line, ha="left", va="top", fontsize=FONT_SIZE,
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
        top = cy - h / 2 + PAD_Y + LINE_H / 2
        for j, s in enumerate(lines):
            bold = j == 0 and v.kind in ("op", "module", "output", "leaf")
            muted = v.faint or (v.kind == "op" and s.startswith("in ")) or (v.kind == "module" and j == 1)
            ax.text(cx, top + j * LINE_H, s, ha="center", va="center", fontsize=FONT_SIZE,
                    fontweight="bold" if bold and not v.faint else "normal",
                    color="#9a9a9a" if v.faint else ("#666666" if muted else "#111111"), zorder=3)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return g
