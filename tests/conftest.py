import os
import shutil
import sys

# The CUDA tests need a GPU or Numba's CUDA simulator, and the simulator must be chosen before numba
# is imported (it reads NUMBA_ENABLE_CUDASIM then). So, on a machine with no NVIDIA driver, pick it
# here, before anything imports tinyattn; CPU code is unaffected. Set NUMBA_ENABLE_CUDASIM=0 to opt out.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
# Under the simulator, GPU threads are Python threads: a shorter GIL switch interval (0.1 ms instead of
# 5 ms) lets them take turns sooner and halves the CUDA tests' time (108 s -> 54 s on 2 cores). It once
# let a rare wrong result through (about 1 run in 40-70 at 1 µs) whose cause was Numba's simulator
# (numba-cuda 0.30.4), not tinyattn: FakeCUDAShared.array looks up and stores a launch's shared array
# without a lock, so a thread switch between the two gave threads of one block different "shared" arrays
# (matmul's tiles, every time). kernels/cuda/simulator.py makes that lookup locked whenever a kernel module
# is imported under the simulator; benchmarks/sim_shared_race.py shows the race alone,
# tests/test_cuda_simulator.py holds the workaround to it, and TINYATTN_STRESS=1 runs
# tests/test_cuda_stress.py at 1 µs (0 failures in 450 runs of the composite test with the workaround).
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.setswitchinterval(1e-4)
# Numba's OpenMP threads spin between parallel regions by default (libgomp's active wait). The suite runs
# two processes (tests/background.py) and many tiny parallel kernels separated by Python work, so a
# spinning thread takes the core that the other process, or this one's Python thread, needs: the
# positional-encodings example test took 44 s instead of 6 s next to one busy process. Sleeping waiters
# change nothing but speed (still 2 threads, the same parallel code); set OMP_WAIT_POLICY to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# For the same two processes, the thread-count governor (tinyattn/contention.py) would see the other as a busy
# core and lower this one's kernels to one thread: tests that set two threads would then not run two. The
# governor has tests of its own (test_contention.py).
os.environ.setdefault("TINYATTN_ADAPT_THREADS", "0")

import background
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinyattn as ta

# Small, deterministic property tests: the suite (Numba compilation included) must stay fast.
settings.register_profile(
    "tinyattn", max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("tinyattn")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def leaf(rng, *shape, low=None):
    """A float64 leaf tensor that requires grad, for gradcheck."""
    data = rng.standard_normal(shape)
    if low is not None:
        data = low + np.abs(data)
    return ta.tensor(data, dtype=ta.float64, requires_grad=True)


class WrongSquare(ta.Function):
    """y = x², with a backward off by a factor of 2 (dx = x·dy): what a gradcheck must catch."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return x * dy  # should be 2 x dy


def module_gradcheck(module, *inputs, name, call=None):
    """gradcheck a module for its inputs and every parameter; `call` maps inputs to the output."""
    call = call or module
    n = len(inputs)
    return ta.testing.gradcheck(lambda *args: call(*args[:n]), [*inputs, *module.parameters()], name=name)


# Slow tests that share no kernels with the rest run in a second process from the start (tests/background.py).
def pytest_configure(config):
    _require_the_reference_in_ci()
    background.configure(config)


def _require_the_reference_in_ci():
    """The comparison tests skip where PyTorch is not installed (a developer's choice); in CI that skip
    would hide every check of "PyTorch's semantics", so there a missing reference stops the run."""
    import importlib.util
    if os.environ.get("CI") and importlib.util.find_spec("torch") is None:
        raise pytest.UsageError("CI: PyTorch, the reference the comparison tests check against, is not installed; "
                                "install the README's test extras: pip install -e '.[dev,examples,distributed,"
                                "reference]'")


def pytest_terminal_summary(terminalreporter):
    """Say loudly how many tests a missing reference (PyTorch) or program copy skipped."""
    reasons = [getattr(r, "longrepr", None) for r in terminalreporter.stats.get("skipped", [])]
    texts = [str(r[2]) if isinstance(r, tuple) else str(r) for r in reasons]
    torch_skips = sum("torch" in t and ("No module" in t or "could not import" in t) for t in texts)
    program_skips = sum("no copy of" in t for t in texts)
    if torch_skips:
        terminalreporter.write_line(f"WARNING: {torch_skips} comparison tests were skipped because PyTorch is not "
                                    "installed (pip install -e '.[reference]')", red=True, bold=True)
    if program_skips:
        terminalreporter.write_line(f"note: {program_skips} tests of real programs were skipped: no copies of "
                                    "nanoGPT/minGPT (benchmarks/programs/fetch.sh)", yellow=True)


def pytest_collection_modifyitems(config, items):
    background.reorder(config, items)


def pytest_collection_finish(session):
    background.start(session)


def pytest_pyfunc_call(pyfuncitem):
    return background.run(pyfuncitem)
