"""The layered layout (Sugiyama-style): layers, crossing reduction, placement, and the routes of the edges."""
__all__ = ["FONT_SIZE", "LINE_H", "PAD_Y", "layout"]


FONT_SIZE = 8.0  # points
_CHAR_W = 0.6 * FONT_SIZE / 72  # inches per character, DejaVu Sans (a little generous)
LINE_H = 1.35 * FONT_SIZE / 72
_PAD_X, PAD_Y = 0.14, 0.10
_GAP_X, _GAP_Y = 0.22, 0.42
_DUMMY_W = 0.08


def _box_size(v):
    width = max(len(s) for s in v.lines if s) * _CHAR_W + 2 * _PAD_X
    height = sum(1 for s in v.lines if s) * LINE_H + 2 * PAD_Y
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
