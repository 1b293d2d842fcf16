"""tinyattn.viz: the graph behind a tensor as boxes and arrows, its layout, the PNG and the DOT text."""
import importlib.util
import os

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn import viz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def by_first_line(graph, kind):
    return {v.lines[0]: v for v in graph.vertices.values() if v.kind == kind}


def test_the_graph_of_a_small_expression():
    lin = nn.Linear(3, 2)
    x = ta.randn(4, 3)
    y = (lin(x) * 2.0).sum()
    g = viz.build_graph(y, module=lin, names={"loss": y})
    ops = by_first_line(g, "op")
    assert set(ops) == {"SumBackward", "MulBackward", "LinearBackward"}
    assert ops["MulBackward"].lines[1] == "(4, 2)" and ops["SumBackward"].lines[1] == "()"
    leaves = by_first_line(g, "leaf")
    assert set(leaves) == {"weight", "bias"} and leaves["weight"].lines[1] == "(2, 3)"
    assert g.vertices["output"].lines == ["loss", "()"]
    assert not by_first_line(g, "input")  # the graph itself keeps no input without grad
    key = {v.lines[0]: k for k, v in g.vertices.items()}
    edges = {(key_of(g, a), key_of(g, b)) for a, b, _ in g.edges}
    # backward direction: from the tensor down to the leaves
    assert edges == {("loss", "SumBackward"), ("SumBackward", "MulBackward"), ("MulBackward", "LinearBackward"),
                     ("LinearBackward", "weight"), ("LinearBackward", "bias")}
    assert key["weight"] == ("leaf", id(lin.weight))


def key_of(g, key):
    return g.vertices[key].lines[0]


def test_record_adds_inputs_without_grad_and_module_paths_and_changes_nothing():
    ta.manual_seed(0)
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 3))
    tokens, target = ta.tensor([[1, 2, 3]]), ta.tensor([0, 1, 2])

    def loss_fn():
        return F.cross_entropy(model(tokens).reshape(-1, 3), target)

    loss_fn().backward()
    plain = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    with viz.record(model):
        loss = loss_fn()
    loss.backward(retain_graph=True)
    for a, p in zip(plain, model.parameters()):
        np.testing.assert_array_equal(a, p.grad.numpy())
    assert all(not (m._forward_hooks or m._forward_pre_hooks) for m in model.modules())  # hooks gone
    g = viz.build_graph(loss, module=model, names={"tokens": tokens, "target": target})
    inputs = by_first_line(g, "input")
    assert set(inputs) == {"tokens", "target"}
    assert inputs["tokens"].lines[1] == "(1, 3) int64" and inputs["target"].lines[1] == "(3,) int64"
    assert all(faint for a, b, faint in g.edges if g.vertices[b].kind == "input")
    ops = by_first_line(g, "op")
    assert ops["EmbeddingBackward"].lines[-1] == "in 0" and ops["LinearBackward"].lines[-1] == "in 1"
    assert set(by_first_line(g, "leaf")) == {"0.weight", "1.weight", "1.bias"}


def test_collapse_makes_one_box_per_module_call():
    ta.manual_seed(0)
    block = nn.Sequential(nn.Linear(4, 4), nn.GELU(approximate="tanh"))
    head = nn.Linear(4, 2)
    model = nn.ModuleDict({"block": block, "head": head})
    x = ta.randn(3, 4)
    with viz.record(model):
        h = model["block"](x)
        h = model["block"](h) + h  # the same module called twice
        loss = model["head"](h).sum()
    g = viz.build_graph(loss, module=model, collapse="module")
    modules = by_first_line(g, "module")
    assert set(modules) == {"block (call 1)", "block (call 2)", "head"}
    assert modules["block (call 1)"].lines[1:3] == ["Sequential", "2 ops"]  # its Linear is used twice: drawn outside
    assert modules["head"].lines[2] == "1 op, 2 parameters (10 values)"
    assert set(by_first_line(g, "op")) == {"SumBackward", "AddBackward"}
    assert set(by_first_line(g, "leaf")) == {"block.0.weight", "block.0.bias"}
    viz.layout(g)  # acyclic: the layered layout would fail otherwise
    with pytest.raises(ValueError, match="viz.record"):
        viz.build_graph(model["head"](x).sum(), collapse="module")
    with pytest.raises(ValueError, match="collapse"):
        viz.build_graph(loss, collapse="ops")
    with pytest.raises(ValueError, match="does not require grad"):
        viz.build_graph(ta.ones(2))


def test_the_layout_keeps_boxes_apart_and_arrows_pointing_down():
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True, activation=nn.GELU(approximate="tanh"), norm_first=True)
    y = layer(ta.randn(2, 3, 8, requires_grad=True)).sum()
    g = viz.build_graph(y, module=layer)
    boxes, routes, width, height = viz.layout(g)
    assert set(boxes) == set(g.vertices) and len(routes) == len(g.edges)
    items = list(boxes.values())
    for i, (x1, y1, w1, h1) in enumerate(items):
        assert w1 / 2 - 1e-9 <= x1 <= width - w1 / 2 + 1e-9
        for x2, y2, w2, h2 in items[i + 1:]:
            overlap_x = abs(x1 - x2) < (w1 + w2) / 2
            overlap_y = abs(y1 - y2) < (h1 + h2) / 2
            assert not (overlap_x and overlap_y)
    for (consumer, producer, _), (points, _) in zip(g.edges, routes):
        assert boxes[consumer][1] < boxes[producer][1]  # the backward pass goes down the page
        assert all(a[1] < b[1] for a, b in zip(points, points[1:]))


def test_to_dot():
    w = ta.randn(3, 2, requires_grad=True)
    x = ta.randn(4, 3)
    with viz.record():
        y = (x @ w).tanh().sum()
    dot = viz.to_dot(y, names={"w": w, "x": x})
    assert dot.startswith("digraph tinyattn {") and dot.rstrip().endswith("}")
    g = viz.build_graph(y, names={"w": w, "x": x})
    assert dot.count("->") == len(g.edges) == 5  # out->sum->tanh->matmul->w, and matmul-->x (faint)
    assert 'label="MatmulBackward\\n(4, 2)"' in dot and 'label="w\\n(3, 2)"' in dot
    assert dot.count("style=dashed") == 1 and "arrowhead=none" in dot


def load_example(name):
    path = os.path.join(os.path.dirname(__file__), "..", "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_draw_graph_writes_the_reverse_models_graph_full_and_collapsed(tmp_path):
    reverse = load_example("reverse")
    ta.manual_seed(0)
    model = reverse.ReverseTransformer(vocab=4, seq_len=6, d_model=8, nhead=2, num_layers=2, dim_feedforward=16)
    x = np.random.default_rng(0).integers(0, 4, size=(2, 6))
    with viz.record(model):
        loss = F.cross_entropy(model(ta.tensor(x)).reshape(-1, 4), ta.tensor(x[:, ::-1].copy().reshape(-1)))
    full = viz.draw_graph(loss, tmp_path / "full.png", module=model)
    collapsed = viz.draw_graph(loss, tmp_path / "collapsed.png", module=model, collapse="module")
    for name in ("full.png", "collapsed.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    n_ops = len(by_first_line(full, "op")) and sum(1 for v in full.vertices.values() if v.kind == "op")
    modules = by_first_line(collapsed, "module")
    assert set(modules) == {"embed", "pos", "layers.0", "layers.1", "norm", "head"}
    inside = sum(len(v.nodes) for v in modules.values())
    outside = sum(1 for v in collapsed.vertices.values() if v.kind == "op")
    assert inside + outside == n_ops and outside == 2  # the reshape and the loss are outside the model
    assert sum(1 for v in full.vertices.values() if v.kind == "leaf") == len(list(model.parameters()))
    assert not any(v.kind == "leaf" for v in collapsed.vertices.values())  # all inside their modules
    assert (tmp_path / "full.png").stat().st_size > (tmp_path / "collapsed.png").stat().st_size
