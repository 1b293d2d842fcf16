"""What tinyattn does to the whole process, besides computing: every such effect, in one place.

Six effects with the environment variable that turns each off (read when the effect starts) and the function
that does the same from Python, and one that stays on (array alignment):

=================  ====================================================  ===============================
effect             what, and when                                        off
=================  ====================================================  ===============================
malloc tuning      glibc's mmap and trim thresholds raised to 32 MiB     TINYATTN_MALLOC_TUNING=0, or
                   and 512 MiB (mallopt), when the first CPU backend is  configure(malloc_tuning=False)
                   created; not when the user set malloc's own           before the first CPU op
                   variables, and a no-op off glibc (`tune_malloc`)
compile notice     a line on stderr naming each tinyattn kernel Numba    TINYATTN_COMPILE_NOTICE=0, or
                   compiles (a cache miss: the first run), through       configure(compile_notice=False)
                   tqdm.write when tqdm is loaded (`CompileNotice`)
compile ahead      on a cold start, attention's forward and backward      TINYATTN_COMPILE_AHEAD=0, or
                   kernels (and Adam's update) compiled in a second      configure(compile_ahead=False)
                   Python process while this one compiles the rest
                   (tinyattn/compile_ahead.py)
host kernel        which CPU matmul/attention micro-kernel runs:         TINYATTN_MATMUL_KERNEL=portable
                   'avx512', 'avx2' or 'portable', from the features     (or avx2/avx512), or
                   Numba compiles for (kernels/cpu/microkernel.py)       configure(host_kernel="portable")
thread count       the kernels' thread count lowered while other         TINYATTN_ADAPT_THREADS=0, or
                   processes hold this process's cores, raised again     configure(adapt_threads=False)
                   when they let go; looked at 4 times a second by the
                   CPU backend (tinyattn/contention.py)
OpenMP spin        only on request: TINYATTN_OMP_SPIN=<n> sets           (off unless asked for)
                   GOMP_SPINCOUNT when tinyattn is imported, for the
                   libgomp Numba loads later (`limit_omp_spin`)
array alignment    arrays allocated inside Numba-compiled code start on  (always on: a stricter alignment
                   a 64-byte line (Numba's CPU target prefers 32), for   changes no result)
                   every Numba function compiled in the process; set
                   by the kernels package itself when tinyattn is
                   imported, before any kernel compiles, not here
                   (kernels/cpu/alignment.py)
=================  ====================================================  ===============================

`off()` turns the first three off together (the process then keeps glibc's defaults, prints nothing
and starts no child); `settings()` says what is on. The compile-notice listener is installed either way,
since it is also what starts the compile-ahead child: with both off it does nothing.

For the ops: an op never asks for a compile. nn.MultiheadAttention and the encoder layers call
`expect_attention(...)` before their projections, and Adam `expect_kernels(...)` when it is built; the backend
brackets attention's forward kernel with `compile_ahead_of_backward(...)` and its backward with
`before_backward()`; whether a backward is expected at all is asked of the probe set by
`set_backward_expected` (the composition root, tinyattn/__init__.py, can hand it autograd's `is_grad_enabled`;
the default expects one).

Thresholds that choose a path by size are not effects of the process: they are in kernels/cpu/policy.py
and kernels/cuda/policy.py.
"""
import contextlib
import os
import sys

from .compile_ahead import AHEAD
from .contention import GOVERNOR

__all__ = ["configure", "off", "settings", "tune_malloc", "CompileNotice", "host_kernel", "set_host_kernel",
           "compile_ahead_of_backward", "declare_backward_kernels", "expect_attention", "expect_kernels",
           "before_backward", "set_backward_expected", "limit_omp_spin", "MMAP_THRESHOLD", "OMP_SPIN_COUNT",
           "TRIM_THRESHOLD"]


# ---- malloc tuning ----------------------------------------------------------------------------------------

# glibc's malloc, as it starts: a block of 128 KiB or more gets pages of its own from mmap, and freed memory
# at the top of the heap past 128 KiB goes back to the system. A training step allocates its activations and
# gradients afresh (2048 x 512 float32 is 4 MiB), so a step could touch new pages every time: 6,000-26,000
# page faults per step of benchmarks/bench_train.py's gpt model in a tinyattn-only process, 90-118 ms per step
# against 79-82 ms with the thresholds below (1 fault per step; docs/benchmarks.md "Goal 1: page faults").
# glibc raises both thresholds by itself as big blocks are freed, up to 32 MiB and twice that; tinyattn starts
# at 32 MiB for mmap and keeps up to 512 MiB of freed heap top: a step's own rise and fall of the heap must stay
# under the trim threshold. At 64 MiB (glibc's ceiling) the gpt model's heap, which rises by 65 MiB within a step
# and falls back at its end, was returned and faulted in again every step once an unrelated change moved a
# small long-lived block: 8,300 faults and 15.4 against 18.6 steps/s (docs/benchmarks.md, fifth session).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 512 << 20

_malloc_tuning = None  # None: as the environment says; True/False: configure()'s choice


def tune_malloc():
    """Sets glibc's mmap and trim thresholds (mallopt) unless the user chose malloc settings or turned this off
    (TINYATTN_MALLOC_TUNING=0, configure(malloc_tuning=False)); a no-op off glibc. Returns whether it set them."""
    chosen = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "MALLOC_TOP_PAD_")
    wanted = os.environ.get("TINYATTN_MALLOC_TUNING", "1") != "0" if _malloc_tuning is None else _malloc_tuning
    if not wanted or any(k in os.environ for k in chosen):
        return False
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only (musl has no mallopt thresholds)
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(libc.mallopt(m_trim_threshold,
                                                                                         TRIM_THRESHOLD))


# ---- compile notice (and the listener that starts compile-ahead) -----------------------------------------

def _kernel_label(dispatcher, args):
    """'matmul._gemm_outer (float32)' for a kernel compiled for float32 array arguments: the kernel's module
    below tinyattn.kernels.<device> (a split kernel module keeps its package: 'matmul.outer._gemm_outer')."""
    fn = dispatcher.py_func
    dtypes = sorted({str(a.dtype) for a in args if getattr(a, "dtype", None) is not None
                     and str(getattr(a, "dtype", "")).startswith("float")})
    module = fn.__module__
    parts = module.split(".")
    where = ".".join(parts[3:]) if module.startswith("tinyattn.kernels.") and len(parts) > 3 else parts[-1]
    return f"{where}.{fn.__name__}" + (f" ({', '.join(dtypes)})" if dtypes else "")


class CompileNotice:
    """Says on stderr which tinyattn kernel Numba is compiling, so a first run is not a silent pause.

    Numba announces a compilation ("numba:compile" event) only when it does compile, i.e. on a cache miss:
    the lines appear on the first run (or after an upgrade), never on a warm start. Only the outermost
    tinyattn kernel is named (helpers compile inside it). Written through tqdm.write when tqdm is loaded,
    so an open progress bar stays intact. TINYATTN_COMPILE_NOTICE=0 (configure(compile_notice=False))
    silences it. The same listener starts compile_ahead's second process, so it listens whether or not the
    lines are printed.
    """

    installed = False
    quiet = False

    @classmethod
    def install(cls):
        if cls.installed:
            return
        if _compile_notice is None:
            cls.quiet = os.environ.get("TINYATTN_COMPILE_NOTICE", "1") == "0"
        from numba.core import event

        class Listener(event.Listener):
            depth = 0

            def on_start(self, ev):
                self.depth += 1
                data = ev.data or {}
                disp = data.get("dispatcher")
                mod = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
                if self.depth == 1 and mod.startswith("tinyattn.kernels."):
                    label = _kernel_label(disp, data.get("args") or ())
                    CompileNotice.say(f"tinyattn: compiling {label} (first run only: Numba caches it on disk)")
                    if AHEAD.compiling(disp):
                        CompileNotice.say("tinyattn: compiling the rest of attention's kernels in a second process")
                    elif AHEAD.companions and AHEAD.enabled and _backward_expected():
                        AHEAD.compiling_forward(disp, data.get("args") or ())

            def on_end(self, ev):
                self.depth -= 1

        event.register("numba:compile", Listener())
        cls.installed = True

    @classmethod
    def say(cls, line):
        if cls.quiet:
            return
        tqdm = sys.modules.get("tqdm")
        if tqdm is not None and hasattr(tqdm, "tqdm"):
            tqdm.tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


_compile_notice = None  # None: as the environment says; True/False: configure()'s choice


# ---- compile ahead: what the backend calls -----------------------------------------------------------------

def _expect_backward_always():
    return True


_backward_expected = _expect_backward_always


def set_backward_expected(probe):
    """`probe()` says whether a backward may follow the forward being run (e.g. autograd's is_grad_enabled);
    None restores the default (always). Only then does a cold start compile attention's backward ahead."""
    global _backward_expected
    _backward_expected = _expect_backward_always if probe is None else probe


@contextlib.contextmanager
def compile_ahead_of_backward(q, k, v, bias, causal, window, scale, offset):
    """Around the CPU attention forward kernel's call (kernel arguments: window -1 for none): if that call
    compiles the kernel (a cold start) while a backward is expected, the rest of attention's kernels compile in
    a second process meanwhile (compile_ahead.py). Costs one attribute store when compile-ahead is off."""
    if AHEAD.enabled:
        if _backward_expected():
            AHEAD.forward_called(q, k, v, bias, bias is not None, causal, window, scale, offset)
    try:
        yield
    finally:
        AHEAD.pending = None


def expect_attention(x, weight, L):
    """A module is about to project `x` with `weight` (both its arrays) into the q, k, v of a fused CPU attention
    with L query rows (nn.MultiheadAttention with need_weights=False and no dropout, or an encoder layer at its
    entry): on a cold start its kernels compile in a second process from now on, while this one compiles the
    projection and the rest (compile_ahead.py). Nothing when compile-ahead is off, off the CPU, under autocast
    (the projection's dtype may then not be x's), or when it was already planned for this dtype and L."""
    if not AHEAD.enabled:
        return
    dtype = getattr(x, "dtype", None)
    key = (dtype, L, bool(_backward_expected()))
    if key in AHEAD.expected:  # the steady state: one lookup
        return
    import numpy as np

    if type(x) is not np.ndarray or type(weight) is not np.ndarray or dtype != weight.dtype \
            or dtype not in (np.float32, np.float64):
        return
    amp = sys.modules.get("tinyattn.amp")
    if amp is not None and amp.is_autocast_enabled("cpu"):
        return
    AHEAD.expect(key)


def expect_kernels(name, jobs):
    """On a cold start, compile `jobs()` ([(module, kernel name, Numba signature)]: kernels this process will call
    soon, such as an optimiser's update before its first step) in a second process, those not compiled or cached
    yet (compile_ahead.py). Planned once per name and list. Nothing when compile-ahead is off."""
    if not AHEAD.enabled:
        return
    found = list(dict.fromkeys(jobs()))
    if found:
        AHEAD.expect_kernels(name, found)


def declare_backward_kernels(forward, predict):
    """The backward kernels of CPU forward kernel `forward`: predict(its argument types) -> [(module, kernel name,
    Numba signature)]; on a cold start they compile in a second process while the forward compiles here
    (compile_ahead.py: companions)."""
    AHEAD.companion(forward, predict)


def before_backward():
    """Before the CPU attention backward kernel: wait for a second process still compiling it."""
    AHEAD.wait()


# ---- host kernel ------------------------------------------------------------------------------------------

def host_kernel():
    """The CPU micro-kernel large products and attention use: 'avx512', 'avx2' or 'portable'."""
    from tinyattn.kernels.cpu import matmul

    return matmul.KERNEL


def set_host_kernel(name):
    """Use micro-kernel `name` ('avx512', 'avx2', 'portable'; None: the host's choice again) for matmul and
    attention from the next call on (a shape the CPU lacks still computes the right result, slowly)."""
    from tinyattn.kernels.cpu import attention, matmul, microkernel

    if name is None:
        name = microkernel.host_kernel()
    if name not in microkernel.KERNELS:
        raise ValueError(f"set_host_kernel: {name!r}: expected one of {', '.join(microkernel.KERNELS)}")
    matmul.KERNEL = name
    if hasattr(attention, "KERNEL"):
        attention.KERNEL = name


# ---- all of them ------------------------------------------------------------------------------------------

def configure(*, malloc_tuning=None, compile_notice=None, compile_ahead=None, host_kernel=None, adapt_threads=None):
    """Switch effects on (True) or off (False); None leaves one as it is. malloc_tuning acts at the first CPU
    backend's creation (glibc's thresholds once set stay set); adapt_threads at once (off: a count the governor
    lowered goes back to the user's, when called from the governed thread); the others from the next kernel
    compile."""
    global _malloc_tuning, _compile_notice
    if malloc_tuning is not None:
        _malloc_tuning = bool(malloc_tuning)
    if compile_notice is not None:
        _compile_notice = bool(compile_notice)
        CompileNotice.quiet = not _compile_notice
    if compile_ahead is not None:
        AHEAD.enabled = bool(compile_ahead)
        if not AHEAD.enabled:
            AHEAD.pending = None
    if host_kernel is not None:
        set_host_kernel(host_kernel)
    if adapt_threads is not None:
        if adapt_threads:
            GOVERNOR.enabled = True
        else:
            GOVERNOR.release()


def off():
    """Turn off malloc tuning, the compile notice and compile-ahead together."""
    configure(malloc_tuning=False, compile_notice=False, compile_ahead=False)


def settings():
    """What is on: {'malloc_tuning': ..., 'compile_notice': ..., 'compile_ahead': ..., 'host_kernel': ...,
    'adapt_threads': ...} (malloc_tuning: whether it will be, or was, attempted; host_kernel: None until the CPU
    kernels load)."""
    tuning = os.environ.get("TINYATTN_MALLOC_TUNING", "1") != "0" if _malloc_tuning is None else _malloc_tuning
    notice = (os.environ.get("TINYATTN_COMPILE_NOTICE", "1") != "0" if not CompileNotice.installed
              and _compile_notice is None else not CompileNotice.quiet)
    mm = sys.modules.get("tinyattn.kernels.cpu.matmul")
    return {"malloc_tuning": tuning, "compile_notice": notice, "compile_ahead": AHEAD.enabled,
            "host_kernel": getattr(mm, "KERNEL", None), "adapt_threads": GOVERNOR.enabled}


# ---- OpenMP spin -----------------------------------------------------------------------------------------

# Numba's parallel kernels run on GNU OpenMP (libgomp). Between two parallel regions its threads spin, by default
# for 300,000 rounds, before they sleep. On an idle machine that saves a wake-up; when another process holds one
# of the cores, the spinning thread takes the core from the thread that has the work, and every region waits for
# it. tinyattn used to shorten the spin to 3000 rounds at import: the gpt model of benchmarks/bench_train.py
# (2026-12-07 14:45, 2 threads, steps/s quiet / with a spin loop on the other core) ran 22.5 / 11.3 with it against
# 23.7 / 7.7 with libgomp's default, and nanoGPT through as_torch 34.0 against 27.7 ms/iter on an idle machine
# (small products: the threads fell asleep between regions). The thread-count governor (contention.py) now handles
# the busy machine instead (one thread: 12.4 busy), so libgomp keeps its own spin unless TINYATTN_OMP_SPIN=<n>
# asks for another. When PyTorch was imported first, Numba's kernels run on PyTorch's libgomp (same soname,
# already loaded and configured), and the setting has no effect: set GOMP_SPINCOUNT before Python starts.
OMP_SPIN_COUNT = "3000"  # the earlier default; TINYATTN_OMP_SPIN=on (or yes, true) asks for it
_OMP_OWN = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def limit_omp_spin():
    """Set GOMP_SPINCOUNT for the OpenMP runtime Numba will load when TINYATTN_OMP_SPIN asks for it (a count, or
    on/yes/true for OMP_SPIN_COUNT), unless the user chose a wait policy or spin count. `import tinyattn` calls
    it, before anything makes Numba load libgomp (which reads it once, when it loads); a libgomp loaded earlier
    (PyTorch's own copy, when torch was imported first) keeps its settings, and a PyTorch imported after tinyattn
    gets this one too. Returns whether it set it."""
    chosen = os.environ.get("TINYATTN_OMP_SPIN", "").strip().lower()
    if chosen in ("", "0", "off", "false", "no") or any(k in os.environ for k in _OMP_OWN):
        return False
    if not chosen.isdigit() and chosen not in ("on", "yes", "true"):
        raise ValueError(f"TINYATTN_OMP_SPIN={chosen!r}: expected a spin count, or 0/off to leave libgomp's own")
    os.environ["GOMP_SPINCOUNT"] = chosen if chosen.isdigit() else OMP_SPIN_COUNT
    return True


def setup_cpu():
    """What creating the CPU backend does to the process: malloc tuning, then the compile listener. Returns
    whether the malloc thresholds were set."""
    tuned = tune_malloc()
    CompileNotice.install()
    return tuned
