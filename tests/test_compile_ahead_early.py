"""Cold start, early: an encoder layer (or MultiheadAttention) announces its fused attention before its
projections, and a second process compiles attention's forward and backward kernels from then on; an optimiser
names its update kernels when built; a layer norm or GELU forward kernel compiling starts its backward's
(tinyattn/compile_ahead.py: expect, expect_kernels, companions, before_load). Each cold run is a fresh process
on its own Numba cache."""
import json
import os
import pickle
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn import compile_ahead
from tinyattn.kernels.cpu import attention
from compile_log import compile_recorder

# A fresh process: one training step of a float32 pre-norm encoder layer (L = 7 rows: the register-blocked
# kernels); records which attention kernels this process compiled, which signatures it holds after the step,
# and what the second process compiled (the cache index: every entry of an attention kernel).
SCRIPT = r"""
import json, sys

""" + compile_recorder('fn.__module__.startswith("tinyattn.kernels.cpu.attention")', outermost=True) + r"""

import numpy as np
import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.compile_ahead import AHEAD
from tinyattn.kernels.cpu import attention

ta.manual_seed(0)
layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
x = ta.tensor(np.random.default_rng(0).standard_normal((2, 7, 8)).astype(np.float32))
layer(x).square().sum().backward()
used = {name: [str(sig) for sig in getattr(attention, name).overloads]
        for name in ("_forward", "_forward_mk", "_forward_rows", "_backward", "_backward_mk", "_sum_groups",
                     "_query_tile", "_query_tile_mk", "_key_tiles", "_key_tiles_mk")}
cached = {}
for name in used:
    kernel = getattr(attention, name)
    cached[name] = sorted(str(key[0]) for key in kernel._cache._cache_file._load_index())
grad = float(np.abs(layer.self_attn.in_proj_weight.grad.numpy()).sum())
print(json.dumps({"compiled": compiled, "children": [str(k) for k in AHEAD.children], "used": used,
                  "cached": cached, "outcomes": list(AHEAD.outcomes.values()), "grad": grad}))
"""


def run(cache_dir, script=SCRIPT, **env):
    """`script` in a fresh process on Numba cache folder `cache_dir`: the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), **env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.background
def test_an_encoder_layer_compiles_attention_in_a_second_process_from_its_entry(tmp_path):
    cold = run(tmp_path / "a")
    # this process compiled no attention kernel: one child compiled the forward and the backward (another, layer
    # norm's backward: test_layer_norm_and_gelu_...), and every signature in the cache is one this process used
    # (nothing compiled for nothing)
    early = [key for key in cold["children"] if key.startswith("('early")]
    assert cold["compiled"] == [] and len(early) == 1 and set(cold["outcomes"]) == {"done"}, cold
    assert cold["used"] == {name: sigs for name, sigs in cold["cached"].items()}, cold
    assert any(cold["used"][name] for name in compile_ahead.FORWARD_KERNELS), cold
    assert any(cold["used"][name] for name in compile_ahead.FORWARD_ITEMS), cold
    assert any(cold["used"][name] for name in ("_backward", "_backward_mk")), cold
    assert any(cold["used"][name] for name in ("_key_tiles", "_key_tiles_mk")), cold
    warm = run(tmp_path / "a")  # warm: nothing compiles, no child
    assert warm["compiled"] == [] and warm["children"] == [] and warm["grad"] == cold["grad"], warm
    # (switched off, expect_attention plans nothing: test_off_the_cpu_under_autocast_or_switched_off_...)


@pytest.mark.parametrize("dtype", [np.float64])
@pytest.mark.parametrize("L", [3, 9])
def test_the_planned_signatures_are_the_ones_the_kernels_run_with(dtype, L):
    """attention_kernels predicts, from the dtype and L alone, the kernels and signatures a real call compiles
    (strided q, k, v of a fused projection, a bias): the forward kernel (after its work-item function, if it has
    one), then the backward's work-item function and kernel."""
    rng = np.random.default_rng(0)
    x = ta.tensor(rng.standard_normal((2, L, 3, 4)).astype(dtype), requires_grad=True)
    q, k, v = x.permute(2, 0, 1, 3).unbind(0)
    mask = ta.tensor(rng.standard_normal((L, L)).astype(dtype))
    F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
    planned = compile_ahead.attention_kernels(np.dtype(dtype), L)
    names = [name for name, _ in planned]
    assert names[:-2] in (["_forward_rows"], ["_query_tile", "_forward"], ["_query_tile_mk", "_forward_mk"]), names
    assert names[-2:] in (["_key_tiles", "_backward"], ["_key_tiles_mk", "_backward_mk"]), names
    for name, sig in planned:
        assert sig in getattr(attention, name).overloads, (name, sig, list(getattr(attention, name).overloads))


def test_a_job_the_child_has_not_started_is_skipped_and_one_it_started_is_waited_for(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    # a small kernel of the attention module (the protocol is the same for all): the backward's dq group sum
    offsets = np.zeros(1, np.int64)
    offsets.flags.writeable = False  # as the wrapper's offset tables are (layout._offsets)
    dq = (np.zeros(1), offsets, 1)  # dq's layout: (flat, offset table, row stride)
    sig = tuple(attention._sum_groups.typeof_pyval(a) for a in (np.zeros((2, 1, 1, 1)), dq))
    job = pickle.dumps([("t.0", compile_ahead.KERNELS, "_sum_groups", sig)]).hex()
    ahead = compile_ahead.AheadCompiler()
    # claimed at once (the child is still importing): it is told to skip the job, and compiles nothing
    assert ahead.start("skip", compile_ahead._COMPILE, job)
    child = ahead.children["skip"]
    assert not child.claim("t.0")
    assert child.wait() == "done" and child.started == set() and child.proc.returncode == 0
    # claimed once the child has started it: waited for until it is done (in the cache)
    assert ahead.start("wait", compile_ahead._COMPILE, job)
    child = ahead.children["wait"]
    deadline = time.monotonic() + 120
    while "t.0" not in child.started and child.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.claim("t.0")
    assert child.wait(until=lambda: "t.0" in child.done) == "ready"
    assert child.wait() == "done" and child.proc.returncode == 0


def test_off_the_cpu_under_autocast_or_switched_off_nothing_is_planned(monkeypatch):
    from tinyattn import runtime

    ahead = compile_ahead.AheadCompiler()
    planned = []
    monkeypatch.setattr(runtime, "AHEAD", ahead)
    monkeypatch.setattr(ahead, "expect", lambda key: planned.append(key))
    a32, a64 = np.zeros((2, 3), np.float32), np.zeros((2, 3))
    ahead.enabled = False
    runtime.expect_attention(a32, a32, 5)
    ahead.enabled = True
    runtime.expect_attention(a32, a64, 5)  # mixed dtypes
    runtime.expect_attention(a32.astype(np.float16), a32.astype(np.float16), 5)
    runtime.expect_attention(a32.tolist(), a32, 5)  # not a host array
    with pytest.warns(UserWarning, match="autocast"), ta.autocast("cpu"):
        runtime.expect_attention(a32, a32, 5)
    assert planned == []
    runtime.expect_attention(a32, a32, 5)
    assert planned == [(np.float32, 5, True)]


# A fresh process: an AdamW over a small model, one step; records which Adam kernels this process compiled, the
# signatures it planned and holds after the step, and the children started.
ADAM_SCRIPT = r"""
import json

""" + compile_recorder('fn.__name__.startswith("adam_update")') + r"""

import numpy as np
import tinyattn as ta
from tinyattn.compile_ahead import AHEAD
from tinyattn.kernels.cpu import optim

ta.manual_seed(0)
model = ta.nn.Sequential(ta.nn.Linear(8, 16), ta.nn.GELU(), ta.nn.Linear(16, 4))
opt = ta.optim.AdamW(model.parameters(), lr=1e-2)
planned = sorted({f"{name} {sig}" for _, name, sig in opt._update_kernels()})
loss = model(ta.tensor(np.ones((3, 8), np.float32))).square().sum()
loss.backward()
opt.step()
used = sorted(f"{name} {sig}" for name in ("adam_update", "adam_update_parallel")
              for sig in getattr(optim, name).overloads)
print(json.dumps({"compiled": compiled, "planned": planned, "used": used, "children": [str(k) for k in AHEAD.children],
                  "outcomes": list(AHEAD.outcomes.values()), "w": float(model[0].weight.detach().numpy().sum())}))
"""


@pytest.mark.background
def test_an_optimisers_update_compiles_in_a_second_process_from_its_construction(tmp_path):
    cold = run(tmp_path, ADAM_SCRIPT)
    # one child for the update kernel the step ran (planned == used); unless it had not started that job when the
    # step needed it (a busy machine: then it skipped it), this process only loaded it
    assert cold["planned"] == cold["used"] and cold["used"], cold
    assert [key[:6] for key in cold["children"]].count("('adam") == 1, cold
    assert set(cold["compiled"]) <= {"adam_update", "adam_update_parallel"}, cold
    warm = run(tmp_path, ADAM_SCRIPT)
    assert warm["compiled"] == [] and warm["children"] == [] and warm["w"] == cold["w"], warm


# A fresh process: layer norm and both GELUs forward and backward (float32, large enough for the kernels);
# records which of their backward kernels this process compiled, and which signatures the step used and the
# cache holds.
COMPANION_SCRIPT = r"""
import json

BACKWARD = ("layer_norm_backward", "gelu_backward", "gelu_erf_backward")
""" + compile_recorder('fn.__name__ in BACKWARD') + r"""

import numpy as np
import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.compile_ahead import AHEAD
from tinyattn.kernels.cpu import activations, layer_norm

x = ta.tensor(np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32), requires_grad=True)
norm = ta.nn.LayerNorm(96)
h = norm(x)
(F.gelu(h, approximate="tanh") * F.gelu(h)).sum().backward()
kernels = {"layer_norm_backward": layer_norm.layer_norm_backward, "gelu_backward": activations.gelu_backward,
           "gelu_erf_backward": activations.gelu_erf_backward}
used = {name: sorted(str(sig) for sig in k.overloads) for name, k in kernels.items()}
cached = {name: sorted(str(key[0]) for key in k._cache._cache_file._load_index()) for name, k in kernels.items()}
print(json.dumps({"compiled": compiled, "used": used, "cached": cached, "children": len(AHEAD.children),
                  "grad": float(np.abs(x.grad.numpy()).sum())}))
"""


@pytest.mark.background
def test_layer_norm_and_gelu_backward_kernels_compile_in_a_second_process_while_their_forward_does(tmp_path):
    cold = run(tmp_path, COMPANION_SCRIPT)
    # three children, one per forward kernel; every signature in the cache is the one the backward used (nothing
    # compiled for nothing). Which process compiled each depends on timing: a child that has not started a job
    # when this process needs it is told to skip it (and this process compiles it), as on a busy machine.
    assert cold["children"] == 3 and set(cold["compiled"]) <= {"layer_norm_backward", "gelu_backward",
                                                                 "gelu_erf_backward"}, cold
    assert cold["used"] == cold["cached"] and all(len(sigs) == 1 for sigs in cold["used"].values()), cold
    warm = run(tmp_path, COMPANION_SCRIPT)
    assert warm["compiled"] == [] and warm["children"] == 0 and warm["grad"] == cold["grad"], warm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_declared_backward_kernels_are_the_ones_the_backward_runs(monkeypatch, dtype):
    """backend._declare_backward_kernels predicts, from a forward kernel's argument types, the backward kernel and
    argument types its backward runs: layer norm and both GELUs, through the public API. A GELU's backward is one
    of two kernels: its own, or (when a Linear alone reads its output) the factor that Linear's product applies,
    predicted first (the common case); the graph below runs both."""
    from tinyattn.kernels.cpu import activations, layer_norm
    from tinyattn.kernels.cpu.matmul import outer

    monkeypatch.setattr(compile_ahead.AHEAD, "enabled", False)  # (a cold cache: no child for the spied kernels)
    calls = {}

    def spy(module, name):
        kernel = getattr(module, name)

        def record(*args):
            calls[name] = tuple(kernel.typeof_pyval(a) for a in args)
            return kernel(*args)
        monkeypatch.setattr(module, name, record)
        return kernel

    forwards = {name: spy(module, name) for module, name in ((layer_norm, "layer_norm_forward"),
                                                             (activations, "gelu_forward"),
                                                             (activations, "gelu_erf_forward"))}
    for module, name in ((layer_norm, "layer_norm_backward"), (activations, "gelu_backward"),
                         (activations, "gelu_erf_backward")):
        spy(module, name)
    x = ta.tensor(np.random.default_rng(0).standard_normal((64, 96)).astype(dtype), requires_grad=True)
    h = ta.nn.LayerNorm(96, dtype=dtype)(x)
    w = ta.tensor(np.ones((80, 96), dtype))
    loss = (F.gelu(h, approximate="tanh") * F.gelu(h)).sum()
    loss = loss + (F.linear(F.gelu(h, approximate="tanh"), w) ** 2).sum() + (F.linear(F.gelu(h), w) ** 2).sum()
    loss.backward()
    factors = {name: getattr(outer, name) for name in ("_times_gelu_tanh_grad", "_times_gelu_erf_grad")}
    for name, factor in factors.items():  # (compiled through item_function: its signatures, not a call to spy)
        calls[name] = next(sig for sig in factor.overloads if sig[0].dtype == numba.from_dtype(np.dtype(dtype)))
    expected = {"layer_norm_forward": ["layer_norm_backward"],
                "gelu_forward": ["_times_gelu_tanh_grad", "gelu_backward"],
                "gelu_erf_forward": ["_times_gelu_erf_grad", "gelu_erf_backward"]}
    for forward, backwards in expected.items():
        predicted = compile_ahead.AHEAD.companions[forwards[forward].py_func](calls[forward])
        assert [(name, sig) for _, name, sig in predicted] == [(b, calls[b]) for b in backwards], forward
