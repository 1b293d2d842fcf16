"""On a cold start, compile attention's (and the optimiser's) kernels in a second process while this one
compiles the rest.

A first training step with an empty Numba cache spends most of its time compiling, one kernel after
another on one core; attention's forward (about 4 s) and backward (about 4 s) are the largest, each a
work-item function (a query tile, a group of key tiles) and the parallel kernel that calls it through its
address (kernels/cpu/indirect.py). Their signatures depend only on the dtype and on which forward kernel
the query length picks (the kernels read every array through flat views of fixed types:
kernels/cpu/attention/layout.py), so they are known before any projection has run. A second Python process
compiles them into Numba's on-disk cache on the second core; this process then loads them from the cache
instead of compiling them.

Four ways in:

* Early (`expect`, through runtime.expect_attention): nn.MultiheadAttention (and the encoder layers, at
  their entry, before their first layer norm and input projection) say "a fused attention of this dtype
  and query length follows". The kernels that attention would compile are found by running the kernels'
  own Python wrappers (attention_forward, and the backward's) with the kernels, and `item_function`, swapped
  for recorders, on tiny arrays: so the child compiles exactly the signatures the real call will use,
  nothing else. Any of them already compiled in this process or present in the on-disk cache index is left
  out; a warm start finds none and starts nothing. One child compiles them in order: the forward's item
  function and kernel, then (when a backward is expected) the backward's.
* Late (`compiling`, the fallback for a bare F.scaled_dot_product_attention): when Numba starts
  compiling an attention forward kernel or its item function (the "numba:compile" event, sent only on a
  cache miss) during a forward call no early child covered, a child compiles the rest of that attention's
  kernels (the forward's other one, then the backward's) while this process compiles that one.
* Listed (`expect_kernels`, through runtime.expect_kernels): a caller names kernels and signatures it will
  run soon; tinyattn.optim.Adam and AdamW, when built, name the update kernel of each parameter (the
  backend's adam_kernels), so it compiles during the first forward and backward.
* Companions (`companion`, `compiling_forward`): the CPU backend declares, for the forward kernels of layer
  norm and GELU, the backward kernel and signature a backward of that forward call runs (from the forward's
  argument types: backend.py says how it calls both). When such a forward kernel starts compiling while a
  backward may follow, a child compiles its backward meanwhile.

When this process is about to need a kernel a child holds (Numba looks it up in the on-disk cache:
kernel_cache.TolerantCache.load_overload calls `before_load`), the child is waited for only if it has already
started compiling it (it says so on its stdout): it then usually finishes sooner than this process would. If
it has not started yet, it is told to skip that kernel (a line on its stdin) and this process compiles it
itself. (The skip can cross the child's "start" in the pipe: then both compile it, and the same cache entry is
written twice.) A child of lower priority (CHILD_NICE, below) gets what CPU is left: waiting for it can take
longer than compiling would have (layer norm's backward in reverse.py: 2.4 s against 1.6 s), but compiling its
jobs a second time here was slower still (reverse.py's first step 12.1-12.9 s against 11.0-11.9 s,
alternated). So it is waited for as long as it gets at least STARVED_RATE of a core; on a machine so busy that
it does not, this process compiles the kernel itself. Before the attention backward kernel (`wait`), every
child of this process's priority (attention's) is waited for. A child exits when its parent does (its
heartbeat finds the pipe closed).

A child that fails (no writable cache, a frozen executable, a crash) costs only its own time: the kernel
it did not leave in the cache is compiled here. When this process has already failed to write the kernel
cache (tinyattn/kernel_cache.py), no child starts: it could not hand its kernels over.
TINYATTN_COMPILE_AHEAD=0 (or tinyattn.runtime.configure(compile_ahead=False)) turns it all off;
tinyattn/runtime.py lists it with the other process-wide effects.

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
import types
import warnings

import numpy as np

BEAT_S = 0.2  # how often a child reports its CPU time
MIN_CPU_S = 0.05  # CPU seconds a child must add to count as progressing (a blocked one adds ~1 ms a second)
STALL_S = 5.0  # seconds of waiting without progress after which a child is killed and the kernel compiled here
WAIT_S = 300  # the longest attention_backward waits for a child that keeps progressing
POLL_S = 0.05
# The niceness above its parent's of a child compiling kernels that are not attention's (an optimiser's update,
# a backward's companions): those take what CPU the parent and an attention child leave (Linux: about a tenth
# of a core against either). An attention child runs at the parent's priority: its kernels are the longest.
CHILD_NICE = 10
# Waiting for such a child's job ends, and this process compiles the kernel itself, once the child has had less than
# STARVED_RATE of a core over STARVED_S or more of waiting (other processes take the CPU it was left).
STARVED_S = 1.0
STARVED_RATE = 0.2

KERNELS = "tinyattn.kernels.cpu.attention"  # the module whose wrappers call the kernels below
FORWARD_KERNELS = ("_forward", "_forward_rows", "_forward_mk")
BACKWARD_KERNELS = ("_backward", "_backward_mk", "_sum_groups")
# The work-item functions the parallel kernels call through their address (kernels/cpu/indirect.py): the
# wrappers ask `item_function` for them, so each is a job of its own, before its kernel.
FORWARD_ITEMS = ("_query_tile", "_query_tile_mk")
ITEM_FUNCTION = "item_function"

# The kernels whose compilation (during a pending attention forward call) starts the late child: attention's CPU
# forward kernels and their work items, by module and name. A name that no longer resolves fails
# tests/test_runtime.py.
TRIGGERS = {KERNELS: FORWARD_KERNELS + FORWARD_ITEMS}

# First thing in the child, before any import that takes time: a daemon thread that writes the process's CPU
# time to the original stdout every BEAT_S; anything else the child prints goes to the null device. `_say`
# writes the child's own lines ("start <label>", "done <label>") to the same pipe (one write each: whole lines).
_HEARTBEAT = f"""
import os, sys, threading, time
try:  # a child of lower priority (TINYATTN_CHILD_NICE) lets its parent and attention's child go first
    os.nice(int(os.environ.get("TINYATTN_CHILD_NICE", "0")))
except (AttributeError, OSError, ValueError):
    pass
_beats = os.fdopen(os.dup(1), "wb", 0)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def _say(line):
    _beats.write(line.encode() + b"\\n")


def _beat():
    try:
        while True:
            _beats.write(b"%.4f\\n" % time.process_time())
            time.sleep({BEAT_S})
    except (OSError, ValueError):  # the parent is gone: so is the need for its kernels
        os._exit(0)


threading.Thread(target=_beat, daemon=True).start()
"""
# The jobs (label, module, kernel name, Numba signature) come pickled in sys.argv[1]; before each job the child
# reads what its parent wrote on stdin meanwhile ("skip <label>": the parent compiles that one itself).
_COMPILE = """
import importlib, pickle, select
jobs = pickle.loads(bytes.fromhex(sys.argv[1]))
skipped, pending = set(), b""
for label, module, name, sig in jobs:
    while select.select([0], [], [], 0)[0]:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        pending += chunk
    *lines, pending = pending.split(b"\\n")
    skipped.update(line.split(b" ", 1)[1].decode() for line in lines if line.startswith(b"skip "))
    if label in skipped:
        continue
    _say("start " + label)
    getattr(importlib.import_module(module), name).compile(sig)
    _say("done " + label)
"""


class _Child:
    """A child process and what its heartbeat says: `progress` counts the beats that showed it working;
    `started` and `done` the labels of the jobs it began and finished."""

    def __init__(self, proc, nice=0):
        self.proc = proc
        self.nice = nice  # its niceness above the parent's
        self.progress = 0
        self.cpu = 0.0  # the child's CPU seconds at its last counted progress
        self.outcome = None  # "done" (it exited by itself), "stalled" or "timeout" (killed)
        self.started, self.done = set(), set()
        self.lock = threading.Lock()  # orders a "skip" sent here against a "start" read by the listener
        self.listener = threading.Thread(target=self._listen, daemon=True, name="tinyattn-compile-ahead")
        self.listener.start()

    def _listen(self):
        try:
            for line in self.proc.stdout:
                word, _, label = line.strip().partition(b" ")
                if word in (b"start", b"done"):
                    with self.lock:
                        (self.started if word == b"start" else self.done).add(label.decode())
                    continue
                try:
                    cpu = float(line)
                except ValueError:
                    continue
                if cpu >= self.cpu + MIN_CPU_S:
                    self.cpu = cpu
                    self.progress += 1
        except (OSError, ValueError):
            pass

    def claim(self, label):
        """This process is about to need job `label`: True if the child has started it (wait for it: it ends
        sooner than a compile started now); else the child is told to skip it, and False."""
        with self.lock:
            if label in self.started or self.proc.poll() is not None:
                return label in self.started
            try:
                self.proc.stdin.write(f"skip {label}\n".encode())
                self.proc.stdin.flush()
            except (OSError, ValueError):  # it is exiting: it compiles nothing more
                pass
            return False

    def wait(self, until=None):
        """Until the child exits (or `until()` holds), stalls for STALL_S of waiting, or WAIT_S have passed;
        returns the outcome ("ready" when `until()` held first)."""
        start = last = time.monotonic()
        seen, idle = self.progress, 0.0
        while True:
            if until is not None and until():
                return "ready"
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
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return self.outcome


def _recorder(calls, name):
    def record(*args):
        calls.append((name, args))
    return record


def _item_recorder(calls):
    def record(dispatcher, args):  # item_function(dispatcher, args): a job compiling the item function
        calls.append((dispatcher.py_func.__name__, args))
        return (0, 0)  # typed as the real (address, fingerprint): two int64
    return record


def _recorded_calls(fn, names, *args):
    """The calls of the kernels `names` that the Python wrapper `fn` makes for `args`, and the work-item functions
    it asks `item_function` for: [(name, args)], recorded instead of run (fn runs as a copy whose globals hold
    recorders under those names: thread-safe, and it follows any change to the wrapper)."""
    calls = []
    scope = dict(fn.__globals__)
    scope.update((name, _recorder(calls, name)) for name in names)
    scope[ITEM_FUNCTION] = _item_recorder(calls)
    types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)(*args)
    return calls


_KERNELS_MEMO = {}


def attention_kernels(dtype, L, backward=True):
    """[(kernel name, Numba signature)]: what a CPU fused attention of this dtype with L query rows compiles,
    the forward's work-item function and kernel first, then (backward) the backward's. The signatures depend on
    the dtype and on the kernel the wrapper picks (by L and the host kernel), not on the other sizes, strides,
    bias or mask (kernels/cpu/attention/layout.py): tiny arrays stand in for the real ones."""
    module = sys.modules.get(KERNELS)
    if module is None:
        import importlib

        module = importlib.import_module(KERNELS)
    dt = np.dtype(dtype)
    memo = (dt.str, int(L), bool(backward), getattr(module, "KERNEL", None))
    if memo not in _KERNELS_MEMO:
        _KERNELS_MEMO[memo] = _attention_kernels(module, dt, L, backward)
    return _KERNELS_MEMO[memo]


def _attention_kernels(module, dt, L, backward):
    q = np.zeros((1, max(int(L), 1), 1), dt)
    kv = np.zeros((1, 1, 1), dt)
    calls = _recorded_calls(module.attention_forward, FORWARD_KERNELS, q, kv, kv, None, False, False, -1, 1.0, 0)
    if backward:
        out, lse = np.zeros((1, q.shape[1], 1), dt), np.zeros((1, q.shape[1]), dt)
        calls += _recorded_calls(module._backward_impl, BACKWARD_KERNELS,
                                 q, kv, kv, None, False, False, -1, 1.0, out, lse, out, None, 0)
    found = []
    for name, args in calls:
        kernel = getattr(module, name)
        found.append((name, tuple(kernel.typeof_pyval(a) for a in args)))
    return found


def _attention_jobs(dtype, L, backward):
    """attention_kernels as jobs: [(module, kernel name, sig)]."""
    return [(KERNELS, name, sig) for name, sig in attention_kernels(dtype, L, backward)]


def _args_of(sig):
    """A signature as Numba keys a dispatcher's compiled versions: the tuple of argument types."""
    from numba.core import sigutils

    return tuple(sigutils.normalize_signature(sig)[0])


def _claim_key(job):
    """(the kernel's Python function, its argument types): what before_load is given, for a job."""
    module, name, sig = job
    return _kernel(module, name).py_func, _args_of(sig)


def _kernel(module, name):
    """The dispatcher `name` of module `module` (imported)."""
    import importlib

    return getattr(importlib.import_module(module), name)


def _cold(module, name, sig):
    """Whether kernel `name` of `module` for `sig` would compile: not in this process, not in the on-disk cache's
    index. When that cannot be told, False (a warm start must start nothing)."""
    try:
        kernel = _kernel(module, name)
        if sig in kernel.overloads:
            return False
        cache = kernel._cache
        key = cache._index_key(sig, kernel.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 (Numba internals moved: take it as warm, the late trigger remains)
        return False


class AheadCompiler:
    """The kernels compiled in child processes, and those children."""

    def __init__(self):
        self.enabled = os.environ.get("TINYATTN_COMPILE_AHEAD", "1") != "0"
        self.pending = None  # the arguments of the attention forward being called
        self.children = {}  # a key -> its _Child (None once it has been waited for)
        self.outcomes = {}  # a key -> how its child ended ("done", "stalled", "timeout")
        self.jobs = {}  # (kernel's Python function, argument types) -> (key of the child holding it, its label)
        self.expected = set()  # the (dtype, L, backward) already planned by `expect`, the keys of expect_kernels
        self.registered = set()  # Python functions of further trigger kernels (register)
        self.companions = {}  # a forward kernel's Python function -> predict(argument types) -> backward's jobs
        self.lock = threading.Lock()

    def register(self, *kernels):
        """Declare more kernels (Numba dispatchers or their Python functions) whose compilation during a
        pending attention forward call starts the late child (`compiling`)."""
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

    def _plan(self, key, jobs, nice=0):
        """Start one child compiling those of `jobs` ([(module, kernel name, sig)]) that are cold and held by no
        child, `nice` below this process's priority."""
        from . import kernel_cache

        with self.lock:
            try:
                todo = [job for job in jobs if _claim_key(job) not in self.jobs and _cold(*job)]
            except Exception:  # noqa: BLE001 (a job that names no kernel: plan nothing, compile as without a child)
                return False
            if not todo or key in self.children or kernel_cache.write_failed():
                return False  # (a failed write: the child could not hand its kernels over through the cache)
            labelled = [(f"{key[0]}.{i}",) + job for i, job in enumerate(todo)]
            try:
                argument = pickle.dumps(labelled).hex()
            except Exception:  # noqa: BLE001 (a signature that does not pickle: compile here)
                return False
            if not self.start(key, _COMPILE, argument, nice):
                return False
            for label, *job in labelled:
                self.jobs[_claim_key(job)] = (key, label)
            return True

    def expect(self, key):
        """key = (dtype, L, backward): a CPU fused attention of this dtype with L query rows is coming (its
        projections have not run yet), and a backward may follow it: on a cold start, a child compiles its forward
        kernel, then its backward when one is expected. Planned once per key."""
        if key in self.expected:
            return False
        self.expected.add(key)
        dtype, L, backward = key
        try:
            jobs = _attention_jobs(dtype, L, backward)
        except Exception:  # noqa: BLE001 (a wrapper that no longer matches: no early child, the late one remains)
            return False
        return self._plan((f"early{len(self.expected)}", np.dtype(dtype).str), jobs)

    def expect_kernels(self, name, jobs):
        """On a cold start, a child compiles `jobs` ([(module, kernel name, sig)]: kernels this process will call
        soon, e.g. an optimiser's update before its first step), those not compiled or cached yet. Planned once
        per list; `name` (a word) labels the child."""
        key = (name, tuple(jobs))
        if key in self.expected:
            return False
        self.expected.add(key)
        return self._plan((f"{name}{len(self.expected)}", ""), jobs, CHILD_NICE)

    def companion(self, forward, predict):
        """Declare the backward kernels of forward kernel `forward` (a dispatcher): predict(argument types of a
        forward call) -> [(module, kernel name, sig)], the jobs its backward will run. When `forward` compiles
        (a cold start) and a backward may follow, a child compiles them meanwhile (`compiling_forward`)."""
        self.companions[forward.py_func] = predict

    def compiling_forward(self, dispatcher, args):
        """Numba starts compiling `dispatcher` for argument types `args` (a cache miss) while a backward may
        follow: when it is a forward kernel with declared companions, start a child compiling them."""
        predict = self.companions.get(getattr(dispatcher, "py_func", None))
        if predict is None:
            return False
        try:
            jobs = predict(tuple(args))
        except Exception:  # noqa: BLE001 (a prediction that no longer fits: the backward compiles here)
            return False
        return self._plan((dispatcher.py_func.__name__, str(tuple(args))), jobs, CHILD_NICE)

    def forward_called(self, q, k, v, bias, has_bias, causal, window, scale, offset):
        """The backend is about to run an attention forward with these arguments: keep them, in case the
        forward turns out to need compiling (then its backward will too)."""
        if not self.enabled:
            return
        self.pending = (q, k, v, bias, has_bias, causal, window, scale, offset)

    def before_load(self, py_func, sig):
        """Numba is about to look for kernel `py_func` compiled for `sig` in the on-disk cache (this process is
        about to need it; kernel_cache.TolerantCache.load_overload calls this). If a child holds that job and
        has started it, wait until it is in the cache; if it has not started it, it skips it and this process
        compiles it."""
        held = self.jobs.get((py_func, _args_of(sig)))
        child = held and self.children.get(held[0])
        if not child:
            return
        key, label = held
        if child.claim(label):
            outcome = child.wait(until=self._ready_or_starved(child, label))
            if outcome != "ready":
                self._finished(key, child, outcome, py_func.__name__)
        child.proc.poll()  # (reaps it once it has exited)

    @staticmethod
    def _ready_or_starved(child, label):
        """until() for waiting on the child's job `label`: it is done, or (a child of lower priority) it has had
        less than STARVED_RATE of a core over the last STARVED_S of waiting: then this process compiles it."""
        t0, cpu0 = time.monotonic(), child.cpu

        def until():
            if label in child.done:
                return True
            waited = time.monotonic() - t0
            return bool(child.nice) and waited >= STARVED_S and child.cpu - cpu0 < STARVED_RATE * waited
        return until

    def compiling(self, dispatcher):
        """Numba starts compiling `dispatcher` (a cache miss). An attention forward kernel (or its work-item
        function) during a pending forward call that no child covers: start a child compiling the rest of that
        attention's kernels, the forward's other one and the backward's. Returns whether it started."""
        fn = getattr(dispatcher, "py_func", None)
        if self.pending is None or fn is None or fn not in self.triggers():
            return False
        q = self.pending[0]
        self.pending = None
        try:
            jobs = [job for job in _attention_jobs(q.dtype, q.shape[-2], backward=True) if _kernel(*job[:2]).py_func
                    is not fn]
        except Exception:  # noqa: BLE001
            return False
        return self._plan(("late", np.dtype(q.dtype).str), jobs)

    def start(self, key, code, argument="", nice=0):
        """Start a child running `code` (after the heartbeat) with sys.argv[1] = argument, for `key`, `nice` below
        this process's priority."""
        env = dict(os.environ, TINYATTN_COMPILE_AHEAD="0", TINYATTN_COMPILE_NOTICE="0", TINYATTN_CHILD_NICE=str(nice))
        attention = sys.modules.get(KERNELS)
        if getattr(attention, "KERNEL", None):  # the host kernel this process chose (configure may have changed it)
            env["TINYATTN_MATMUL_KERNEL"] = attention.KERNEL
        try:
            proc = subprocess.Popen([sys.executable, "-c", _HEARTBEAT + code, argument], env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            return False
        self.children[key] = _Child(proc, nice)
        return True

    def _finished(self, key, child, outcome, what):
        self.outcomes[key] = outcome
        self.children[key] = None
        if outcome != "done":
            warnings.warn(
                f"tinyattn: the second process compiling {what} (pid {child.proc.pid}) "
                + (f"made no progress for {STALL_S:g} s (stopped or blocked?)" if outcome == "stalled"
                   else f"was still compiling after {WAIT_S} s")
                + "; it was killed and the kernel is compiled in this process instead (compile_ahead.py).",
                RuntimeWarning, stacklevel=4)

    def wait(self):
        """Before an attention backward: let every child of this process's priority (attention's) still compiling
        finish (it fills the cache), unless it makes no progress for STALL_S (then it is killed, and the kernel
        compiles here). The lower-priority ones are claimed kernel by kernel (`before_load`)."""
        for key, child in list(self.children.items()):
            if child is not None and not child.nice:
                self._finished(key, child, child.wait(), "attention's backward")


AHEAD = AheadCompiler()


def _before_load(py_func, sig):
    if AHEAD.jobs:
        AHEAD.before_load(py_func, sig)


def _running_children():
    """The pids of the children not reaped yet (a reaped child's CPU time is in os.times): contention.py counts
    their CPU time as this process's own."""
    return [child.proc.pid for child in list(AHEAD.children.values())
            if child is not None and child.proc.returncode is None]


def _install():
    from . import contention, kernel_cache

    kernel_cache.before_load = _before_load
    contention.helper_pids = _running_children


_install()


__all__ = ["AHEAD", "AheadCompiler", "BEAT_S", "MIN_CPU_S", "POLL_S", "STALL_S", "TRIGGERS", "WAIT_S",
           "attention_kernels"]
