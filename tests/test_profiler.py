"""tinyattn.profiler: per-op forward/backward times and shapes, the table, the Chrome trace."""
import importlib.util
import json
import os

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn import autograd
from tinyattn.profiler import profile, record_function


def small_model():
    ta.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(approximate="tanh"), nn.LayerNorm(16), nn.Linear(16, 4))


def step(model, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss


def test_the_table_names_every_op_of_a_small_model():
    model, x, y = small_model(), ta.randn(5, 8), ta.tensor([0, 1, 2, 3, 0])
    with profile() as prof:
        step(model, x, y)
    stats = {r.name: r for r in prof.key_averages()}
    assert set(stats) == {"Linear", "Gelu", "LayerNorm", "CrossEntropy"}
    assert stats["Linear"].calls == 2 and stats["Linear"].backward_calls == 2
    assert all(r.calls == 1 and r.backward_calls == 1 for n, r in stats.items() if n != "Linear")
    assert all(r.forward_ns > 0 and r.backward_ns > 0 for r in stats.values())
    table = prof.table(sort_by="total")
    lines = table.splitlines()
    assert lines[0].split() == ["op", "calls", "forward", "ms", "backward", "ms", "total", "ms", "share"]
    body = lines[2:6]
    assert {line.split()[0] for line in body} == set(stats)
    totals = [float(line.split()[4]) for line in body]
    assert totals == sorted(totals, reverse=True)  # sorted by total time
    assert abs(sum(float(line.split()[5].rstrip("%")) for line in body) - 100) < 0.5
    assert "wall time inside the profile" in table
    by_calls = prof.table(sort_by="calls").splitlines()
    assert by_calls[2].split()[:2] == ["Linear", "2"]
    with pytest.raises(ValueError, match="sort_by"):
        prof.table(sort_by="speed")


def test_grouping_by_input_shape_separates_calls():
    model, x, y = small_model(), ta.randn(5, 8), ta.tensor([0, 1, 2, 3, 0])
    with profile() as prof:
        step(model, x, y)
    rows = [r for r in prof.key_averages(group_by_input_shape=True) if r.name == "Linear"]
    assert sorted(r.input_shapes for r in rows) == [((5, 8), (16, 8), (16,)), ((5, 16), (4, 16), (4,))]
    assert all(r.calls == 1 and r.backward_calls == 1 for r in rows)
    assert "[(5, 8), (16, 8), (16,)]" in prof.table(group_by_input_shape=True)


def test_the_chrome_trace_is_valid_json_with_trace_events(tmp_path):
    model, x, y = small_model(), ta.randn(5, 8), ta.tensor([0, 1, 2, 3, 0])
    with profile() as prof:
        with record_function("step"):
            step(model, x, y)
    path = prof.export_chrome_trace(str(tmp_path / "trace.json"))
    with open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    names = [e["name"] for e in events]
    assert names.count("Linear") == 2 and names.count("LinearBackward") == 2 and "step" in names
    assert all(e["ph"] == "X" and e["dur"] >= 0 and e["ts"] >= 0 for e in events)
    assert {e["cat"] for e in events} == {"forward", "backward", "user"}
    first_linear = next(e for e in events if e["name"] == "Linear")
    assert first_linear["args"]["input shapes"] == [[5, 8], [16, 8], [16]]
    assert first_linear["args"]["output shapes"] == [[5, 16]]
    forward_end = max(e["ts"] + e["dur"] for e in events if e["cat"] == "forward")
    assert all(e["ts"] >= forward_end - 1e-3 for e in events if e["cat"] == "backward")
    span = next(e for e in events if e["name"] == "step")  # the span encloses every op
    assert all(span["ts"] <= e["ts"] and e["ts"] + e["dur"] <= span["ts"] + span["dur"] + 1e-3
               for e in events if e["cat"] != "user")


def test_profiling_is_off_outside_the_block_and_changes_no_result():
    model, x, y = small_model(), ta.randn(5, 8), ta.tensor([0, 1, 2, 3, 0])
    step(model, x, y)
    plain = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    with pytest.raises(KeyError):
        with profile() as prof:
            step(model, x, y)
            raise KeyError("inside")
    assert autograd._observers == ()  # removed even when the block raised
    profiled = [p.grad.numpy().copy() for p in model.parameters()]
    for a, b in zip(plain, profiled):
        np.testing.assert_array_equal(a, b)
    n = len(prof.events)
    step(model, x, y)
    assert len(prof.events) == n
    with prof:  # entering again adds to the same record
        (x * 2).sum()
    assert len(prof.events) == n + 2  # Mul and Sum
    with record_function("nobody listens"):
        pass


def test_bench_train_profile_prints_the_table(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_train.py")
    spec = importlib.util.spec_from_file_location("bench_train", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    prof = bench.main(["--profile", "--steps", "1", "--warmup", "1", "--batch-size", "2"])
    out = capsys.readouterr().out
    names = {r.name for r in prof.key_averages()}
    assert {"Embedding", "LayerNorm", "Linear", "ScaledDotProductAttention", "CrossEntropy"} <= names
    assert "ScaledDotProductAttention" in out and "all ops" in out and "reverse model" in out
    prof = bench.main(["--profile", "--model", "gpt", "--steps", "1", "--warmup", "0", "--batch-size", "1"])
    assert {"Embedding", "ScaledDotProductAttention", "Linear"} <= {r.name for r in prof.key_averages()}
    assert "char GPT" in capsys.readouterr().out
