"""On a cold start, compile attention's backward kernel in a second process while this one compiles the forward.

A first training step with an empty Numba cache spends most of its time compiling, one kernel after
another on one core, and attention's backward is the largest kernel of all (about 7 s). Its
signature is known as soon as the forward runs: the same dtype, the same kind of bias, the same
scalar types. So when Numba starts compiling an attention forward kernel (the "numba:compile" event,
sent only on a cache miss), the CPU backend hands this module the call's arguments. A child Python
process then calls the backward on tiny arrays of the same types, which compiles it into the
on-disk cache, on the second core. The backend's attention_backward first waits for that child;
Numba then loads the kernel from the cache instead of compiling it.

A warm start sends no compile event and starts nothing. A child that fails (no writable cache, a
frozen executable) costs only its own time: the main process then compiles the kernel itself.
TINYATTN_COMPILE_AHEAD=0 turns it off.
"""
import os
import pickle
import subprocess
import sys

import numpy as np

_CHILD = """
import pickle, sys
from tinyattn.kernels.cpu import attention
attention.attention_backward(*pickle.loads(bytes.fromhex(sys.argv[1])))
"""
WAIT_S = 300  # the longest attention_backward waits for a child before compiling the kernel itself


class AheadCompiler:
    """The backward compiles started in child processes, keyed by the types that pick the kernel."""

    def __init__(self):
        self.enabled = os.environ.get("TINYATTN_COMPILE_AHEAD", "1") != "0"
        self.pending = None  # the arguments of the attention forward being called
        self.children = {}  # the types of a backward call -> its child process (None once it has ended)

    def forward_called(self, q, k, v, bias, has_bias, causal, window, scale, offset):
        """The backend is about to run an attention forward with these arguments: keep them, in case the
        forward turns out to need compiling (then its backward will too)."""
        if self.enabled:
            self.pending = (q, k, v, bias, has_bias, causal, window, scale, offset)

    def compiling(self, dispatcher):
        """Numba starts compiling `dispatcher` (a cache miss). An attention forward kernel during a pending
        forward call: start the child that compiles the matching backward. Returns whether it started."""
        fn = getattr(dispatcher, "py_func", None)
        if (self.pending is None or fn is None or fn.__module__ != "tinyattn.kernels.cpu.attention"
                or not fn.__name__.startswith("_forward")):
            return False
        q, k, v, bias, has_bias, causal, window, scale, offset = self.pending
        self.pending = None
        key = (q.dtype, k.dtype, v.dtype, None if bias is None else (bias.dtype, bias.ndim), type(scale))
        if key in self.children:
            return False

        def tiny(ndim, dtype):  # the kernels' types depend on dtype and ndim only
            return np.zeros((1,) * ndim, dtype)

        args = (tiny(q.ndim, q.dtype), tiny(k.ndim, k.dtype), tiny(v.ndim, v.dtype),
                None if bias is None else tiny(bias.ndim, bias.dtype), has_bias, causal, window, scale,
                tiny(v.ndim, q.dtype), tiny(q.ndim - 1, q.dtype), tiny(v.ndim, q.dtype), offset)  # out, lse, dout
        env = dict(os.environ, TINYATTN_COMPILE_AHEAD="0", TINYATTN_COMPILE_NOTICE="0")
        try:
            self.children[key] = subprocess.Popen([sys.executable, "-c", _CHILD, pickle.dumps(args).hex()], env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            return False
        return True

    def wait(self):
        """Before an attention backward: let every child still compiling finish (it fills the cache)."""
        for key, child in self.children.items():
            if child is not None:
                try:
                    child.wait(timeout=WAIT_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                self.children[key] = None


AHEAD = AheadCompiler()
