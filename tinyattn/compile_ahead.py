"""On a cold start, compile attention's backward kernel in a second process while this one compiles the forward.

A first training step with an empty Numba cache spends most of its time compiling, one kernel after
another on one core, and attention's backward is the largest kernel of all (about 7-12 s). Its
signature is known as soon as the forward runs: the same dtype, the same kind of bias, the same
scalar types. So when Numba starts compiling an attention forward kernel (the "numba:compile" event,
sent only on a cache miss), the CPU backend hands this module the call's arguments. A child Python
process then calls the backward on tiny arrays of the same types, which compiles it into the
on-disk cache, on the second core. The backend's attention_backward first waits for that child;
Numba then loads the kernel from the cache instead of compiling it.

A warm start sends no compile event and starts nothing. A child that fails (no writable cache, a
frozen executable) costs only its own time: the main process then compiles the kernel itself. When
this process has already failed to write the kernel cache (tinyattn/kernel_cache.py), no child starts:
it could not hand its kernel over. TINYATTN_COMPILE_AHEAD=0 (or tinyattn.runtime.configure(compile_ahead=False))
turns it off; tinyattn/runtime.py lists it with the other process-wide effects.

Which kernels start a child is declared, not guessed from their names: TRIGGERS names them (module and
function names, resolved when the module has been imported), and `AheadCompiler.register` adds others.

A child that stops making progress (stopped by a SIGSTOP sent to it alone, frozen, blocked on
something) is not waited for: it reports its own CPU time (time.process_time) on its stdout every
BEAT_S from a thread started before anything else, and the waiting process counts it as progressing
while that number grows (by MIN_CPU_S or more). A compiling process uses CPU without pause, so after
STALL_S seconds of waiting with no growth the child is killed (a RuntimeWarning says so) and this process
compiles the kernel itself: a first backward then takes at most STALL_S more than compiling in-process.
Progress is counted per beat, not per kernel, so STALL_S does not have to outlast the slowest kernel's
compile (attention's float64 backward: 7.1-12.4 s measured on the 2-core development machine, by load), only
a pause of a running process: 5 s. Only the time this process spends waiting counts (each poll adds at most
1 s), so a Ctrl-Z that stops both processes does not make the child look stalled when they resume.
A child that keeps progressing is waited for up to WAIT_S in all.
"""
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

BEAT_S = 0.2  # how often a child reports its CPU time
MIN_CPU_S = 0.05  # CPU seconds a child must add to count as progressing (a blocked one adds ~1 ms a second)
STALL_S = 5.0  # seconds of waiting without progress after which a child is killed and the kernel compiled here
WAIT_S = 300  # the longest attention_backward waits for a child that keeps progressing
POLL_S = 0.05

# The kernels whose compilation (during a pending attention forward call) starts the child: attention's CPU
# forward kernels, by module and name. A name that no longer resolves fails tests/test_runtime.py.
TRIGGERS = {"tinyattn.kernels.cpu.attention": ("_forward", "_forward_rows", "_forward_mk")}

# First thing in the child, before any import that takes time: a daemon thread that writes the process's CPU
# time to the original stdout every BEAT_S; anything else the child prints goes to the null device.
_HEARTBEAT = f"""
import os, sys, threading, time
_beats = os.fdopen(os.dup(1), "wb", 0)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def _beat():
    try:
        while True:
            _beats.write(b"%.4f\\n" % time.process_time())
            time.sleep({BEAT_S})
    except (OSError, ValueError):  # the parent is gone
        pass


threading.Thread(target=_beat, daemon=True).start()
"""
_COMPILE = """
import pickle
from tinyattn.kernels.cpu import attention
attention.attention_backward(*pickle.loads(bytes.fromhex(sys.argv[1])))
"""


class _Child:
    """A child process and what its heartbeat says: `progress` counts the beats that showed it working."""

    def __init__(self, proc):
        self.proc = proc
        self.progress = 0
        self.cpu = 0.0  # the child's CPU seconds at its last counted progress
        self.outcome = None  # "done" (it exited by itself), "stalled" or "timeout" (killed)
        self.listener = threading.Thread(target=self._listen, daemon=True, name="tinyattn-compile-ahead")
        self.listener.start()

    def _listen(self):
        try:
            for line in self.proc.stdout:
                try:
                    cpu = float(line)
                except ValueError:
                    continue
                if cpu >= self.cpu + MIN_CPU_S:
                    self.cpu = cpu
                    self.progress += 1
        except (OSError, ValueError):
            pass

    def wait(self):
        """Until the child exits, stalls for STALL_S of waiting, or WAIT_S have passed; returns the outcome."""
        start = last = time.monotonic()
        seen, idle = self.progress, 0.0
        while True:
            try:
                self.proc.wait(timeout=POLL_S)
                self.outcome = "done"
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if self.progress != seen:
                seen, idle = self.progress, 0.0
            else:
                idle += min(now - last, 1.0)  # a longer gap: this process was stopped too, not only the child
            last = now
            if idle > STALL_S or now - start > WAIT_S:
                self.outcome = "stalled" if idle > STALL_S else "timeout"
                self.proc.kill()
                self.proc.wait()
                break
        self.listener.join(timeout=1.0)
        if not self.listener.is_alive():  # (closing a pipe another thread still reads would wait for that read)
            self.proc.stdout.close()
        return self.outcome


class AheadCompiler:
    """The backward compiles started in child processes, keyed by the types that pick the kernel."""

    def __init__(self):
        self.enabled = os.environ.get("TINYATTN_COMPILE_AHEAD", "1") != "0"
        self.pending = None  # the arguments of the attention forward being called
        self.children = {}  # the types of a backward call -> its _Child (None once it has been waited for)
        self.outcomes = {}  # the types of a backward call -> how its child ended ("done", "stalled", "timeout")
        self.registered = set()  # Python functions of further trigger kernels (register)

    def register(self, *kernels):
        """Declare more kernels (Numba dispatchers or their Python functions) whose compilation during a
        pending attention forward call starts the child that compiles the matching backward."""
        self.registered.update(getattr(k, "py_func", k) for k in kernels)

    def triggers(self):
        """The Python functions of every declared trigger kernel whose module is imported (TRIGGERS, register)."""
        found = set(self.registered)
        for module_name, names in TRIGGERS.items():
            module = sys.modules.get(module_name)
            if module is not None:
                found.update(getattr(getattr(module, name, None), "py_func", None) for name in names)
        found.discard(None)
        return found

    def forward_called(self, q, k, v, bias, has_bias, causal, window, scale, offset):
        """The backend is about to run an attention forward with these arguments: keep them, in case the
        forward turns out to need compiling (then its backward will too)."""
        if self.enabled:
            self.pending = (q, k, v, bias, has_bias, causal, window, scale, offset)

    def compiling(self, dispatcher):
        """Numba starts compiling `dispatcher` (a cache miss). An attention forward kernel during a pending
        forward call: start the child that compiles the matching backward. Returns whether it started."""
        fn = getattr(dispatcher, "py_func", None)
        if self.pending is None or fn is None or fn not in self.triggers():
            return False
        q, k, v, bias, has_bias, causal, window, scale, offset = self.pending
        self.pending = None
        key = (q.dtype, k.dtype, v.dtype, None if bias is None else (bias.dtype, bias.ndim), type(scale))
        if key in self.children:
            return False
        from . import kernel_cache

        if kernel_cache.write_failed():  # the child could not hand its kernel over through the cache
            return False

        def tiny(ndim, dtype):  # the kernels' types depend on dtype and ndim only
            return np.zeros((1,) * ndim, dtype)

        args = (tiny(q.ndim, q.dtype), tiny(k.ndim, k.dtype), tiny(v.ndim, v.dtype),
                None if bias is None else tiny(bias.ndim, bias.dtype), has_bias, causal, window, scale,
                tiny(v.ndim, q.dtype), tiny(q.ndim - 1, q.dtype), tiny(v.ndim, q.dtype), offset)  # out, lse, dout
        return self.start(key, _COMPILE, pickle.dumps(args).hex())

    def start(self, key, code, argument=""):
        """Start a child running `code` (after the heartbeat) with sys.argv[1] = argument, for `key`."""
        env = dict(os.environ, TINYATTN_COMPILE_AHEAD="0", TINYATTN_COMPILE_NOTICE="0")
        try:
            proc = subprocess.Popen([sys.executable, "-c", _HEARTBEAT + code, argument], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            return False
        self.children[key] = _Child(proc)
        return True

    def wait(self):
        """Before an attention backward: let every child still compiling finish (it fills the cache), unless it
        makes no progress for STALL_S (then it is killed, and the kernel compiles here)."""
        for key, child in list(self.children.items()):
            if child is None:
                continue
            outcome = self.outcomes[key] = child.wait()
            self.children[key] = None
            if outcome != "done":
                warnings.warn(
                    f"tinyattn: the second process compiling attention's backward (pid {child.proc.pid}) "
                    + (f"made no progress for {STALL_S:g} s (stopped or blocked?)" if outcome == "stalled"
                       else f"was still compiling after {WAIT_S} s")
                    + "; it was killed and the kernel is compiled in this process instead (compile_ahead.py).",
                    RuntimeWarning, stacklevel=3)


AHEAD = AheadCompiler()


__all__ = ["AHEAD", "AheadCompiler", "BEAT_S", "MIN_CPU_S", "POLL_S", "STALL_S", "TRIGGERS", "WAIT_S"]
