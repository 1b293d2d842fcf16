"""Cold start: attention's backward compiles in a second process while the forward compiles here
(tinyattn/compile_ahead.py). Each run is a fresh process on its own Numba cache folder."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from tinyattn import compile_ahead
from compile_log import compile_recorder

# Runs in a fresh process: records which tinyattn kernels this process compiles; one float32 attention
# under no_grad, then one causal attention forward + backward in float64 (L = 9 query rows: the
# register-blocked kernels, not the few-row one) on q, k, v that are strided views of one tensor (a fused
# projection's: the kernels read them in place, so the child, which calls the backward on tiny
# contiguous arrays, must have compiled the very signature they need), held to the composite path's gradients.
SCRIPT = r"""
import json, os, signal, sys, time

""" + compile_recorder('fn.__module__.startswith("tinyattn.kernels.")') + r"""

import numpy as np
import tinyattn as ta
import tinyattn.functional as composite
import tinyattn.nn.functional as F
from tinyattn.compile_ahead import AHEAD

if sys.argv[1:] == ["stopped-child"]:  # a child that stops responding before the backward waits for it
    AHEAD.start("stopped", "while True: pass")
    while AHEAD.children["stopped"].progress == 0:  # running: its heartbeat shows CPU time growing
        time.sleep(0.01)
    os.kill(AHEAD.children["stopped"].proc.pid, signal.SIGSTOP)
rng = np.random.default_rng(0)
with ta.no_grad():  # no backward will follow: a forward kernel compiles (the few-row one), no child starts
    x = ta.tensor(rng.standard_normal((1, 3, 4)).astype(np.float32), requires_grad=True)
    F.scaled_dot_product_attention(x, x, x)
qkv = rng.standard_normal((2, 9, 3, 5))
weights = ta.tensor(np.arange(2 * 9 * 5).reshape(2, 9, 5) % 7 * 1.0)
grads, seconds = [], []
for attend in (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
               lambda q, k, v: composite.attention_composite(q, k, v, None, True)):
    x = ta.tensor(qkv, requires_grad=True)
    q, k, v = x.permute(2, 0, 1, 3).unbind(0)  # (2, 9, 5) each, rows 3 x 5 apart
    loss = (attend(q, k, v) * weights).sum()
    start = time.perf_counter()
    loss.backward()
    seconds.append(time.perf_counter() - start)
    grads.append(x.grad.numpy())
err = float(np.abs(grads[0] - grads[1]).max())
print(json.dumps({"compiled": compiled, "children": len(AHEAD.children), "err": err, "backward_s": seconds[0],
                  "outcomes": {str(key): outcome for key, outcome in AHEAD.outcomes.items()}}))
"""


def run(cache_dir, *args, **env):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), **env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.background
def test_backward_compiles_in_a_second_process_on_a_cold_start_only(tmp_path):
    cold, stderr = run(tmp_path)
    assert cold["err"] < 1e-12
    forward = [name for name in cold["compiled"] if name.startswith(("_forward", "_query_tile"))]
    backward = [name for name in cold["compiled"] if name.startswith(("_backward", "_key_tiles"))]
    # compiled here: the few-row forward kernel (float32, no_grad: no child) and the float64 forward's work-item
    # function, whose compile started one child; the child compiled the float64 forward kernel and the
    # backward's item function and kernel, which this process only loaded
    assert sorted(forward) in (["_forward_rows", "_query_tile"], ["_forward_rows", "_query_tile_mk"]), cold
    assert not backward and cold["children"] == 1, cold
    assert "compiling the rest of attention's kernels in a second process" in stderr
    assert list(cold["outcomes"].values()) == ["done"], cold
    warm, stderr = run(tmp_path)
    assert warm["compiled"] == [] and warm["children"] == 0 and warm["err"] < 1e-12, warm
    # warm, but a child (started by hand) stopped before the backward: the backward waits STALL_S for it, kills
    # it and goes on (here it loads its kernel from the cache; cold, it would compile it: STALL_S more than that)
    stopped, stderr = run(tmp_path, "stopped-child")
    assert stopped["compiled"] == [] and stopped["err"] < 1e-12, stopped
    assert stopped["outcomes"] == {"stopped": "stalled"}, stopped
    assert compile_ahead.STALL_S - 0.5 < stopped["backward_s"] < compile_ahead.STALL_S + 3.0, stopped
    assert "made no progress for 5 s" in stderr


def test_switched_off_by_the_environment(monkeypatch):
    from tinyattn import compile_ahead
    from tinyattn.kernels.cpu import attention

    monkeypatch.setenv("TINYATTN_COMPILE_AHEAD", "0")
    ahead = compile_ahead.AheadCompiler()
    ahead.forward_called(*(None,) * 9)
    assert ahead.pending is None and not ahead.compiling(attention._forward_mk) and ahead.children == {}


# The heartbeat's judgement, on children that compile nothing: STALL_S lowered to 0.8 s to keep this short.
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
@pytest.mark.parametrize("how", ["SIGSTOP", "blocked"])
def test_a_child_that_makes_no_progress_is_killed_after_the_stall_time(monkeypatch, how):
    monkeypatch.setattr(compile_ahead, "STALL_S", 0.8)
    ahead = compile_ahead.AheadCompiler()
    assert ahead.start("k", "while True: pass" if how == "SIGSTOP" else "time.sleep(60)")
    child = ahead.children["k"]
    if how == "SIGSTOP":
        deadline = time.monotonic() + 30
        while child.progress == 0 and time.monotonic() < deadline:  # wait until it runs
            time.sleep(0.01)
        os.kill(child.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="made no progress for 0.8 s"):
        ahead.wait()
    waited = time.monotonic() - start
    assert ahead.outcomes == {"k": "stalled"} and ahead.children == {"k": None}
    assert child.proc.returncode == -signal.SIGKILL
    assert 0.8 <= waited < 0.8 + 1.5, waited


def test_a_child_that_keeps_working_is_waited_for(monkeypatch):
    monkeypatch.setattr(compile_ahead, "STALL_S", 1.0)
    ahead = compile_ahead.AheadCompiler()
    # busy for 1.5 s (more than STALL_S), then exits by itself: what a long compile looks like
    assert ahead.start("k", "t = time.process_time()\nwhile time.process_time() - t < 1.5: pass\n")
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ahead.wait()
    assert ahead.outcomes == {"k": "done"} and time.monotonic() - start > 1.0


def test_no_child_when_this_process_could_not_write_the_kernel_cache(monkeypatch):
    import numpy as np

    from tinyattn import kernel_cache
    from tinyattn.kernels.cpu import attention

    ahead = compile_ahead.AheadCompiler()
    ahead.enabled = True
    started = []
    monkeypatch.setattr(ahead, "start", lambda key, code, argument="", nice=0: started.append(key) or True)
    monkeypatch.setattr(compile_ahead, "_cold", lambda module, name, sig: True)  # as on an empty cache
    q = np.zeros((1, 2, 3))
    monkeypatch.setattr(kernel_cache, "failures", [("write", "/cache", OSError(28, "No space left on device"))])
    ahead.forward_called(q, q, q, None, False, True, -1, 0.5, 0)
    assert not ahead.compiling(attention._forward_mk) and started == []  # it could not hand its kernel over
    monkeypatch.setattr(kernel_cache, "failures", [])
    ahead.forward_called(q, q, q, None, False, True, -1, 0.5, 0)
    assert ahead.compiling(attention._forward_mk) and len(started) == 1
