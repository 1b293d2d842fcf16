"""Numba's CUDA simulator, as tinyattn's CUDA tests rely on it: shared arrays shared by a block's threads.

The simulator (numba-cuda 0.30.4) finds a launch's `cuda.shared.array` by the (file, line) of the call with
an unlocked get-then-store, so a thread switch between the two gives threads of one block different
arrays: the rare wrong row of test_cuda_tensors.py's test_float_attention_masks_in_the_composite_paths_on_gpu
at a 1 µs switch interval (the lost store was always in matmul.py's As/Bs tiles). kernels/cuda/simulator.py
makes the lookup thread-safe; these tests hold it to that, deterministically: lookups that wait for one another put
every thread in the window at once, which makes the unpatched simulator fail every time.
benchmarks/sim_shared_race.py shows the race itself without tinyattn; tests/test_cuda_stress.py (opt-in)
runs it and the composite path at a 1 µs switch interval.
"""
import threading

import numpy as np
import pytest
from numba import config

if not config.ENABLE_CUDASIM:
    pytest.skip("about Numba's CUDA simulator only", allow_module_level=True)

from numba import cuda, float64  # noqa: E402

import tinyattn.kernels.cuda  # noqa: E402, F401  (importing the kernels package installs the workaround)

THREADS = 8


@cuda.jit
def _block_sums(base, out):
    """out = (sum over the block of base + t, the same through a second shared array times 2)."""
    t = cuda.threadIdx.x
    a = cuda.shared.array(THREADS, float64)
    b = cuda.shared.array(THREADS, float64)
    a[t] = base + t
    b[t] = 2 * (base + t)
    cuda.syncthreads()
    if t == 0:
        sa = 0.0
        sb = 0.0
        for i in range(THREADS):
            sa += a[i]
            sb += b[i]
        out[0] = sa
        out[1] = sb


class _LookupsMeet(dict):
    """A launch's table of shared arrays in which each key's first lookups wait for one another (for up to
    0.25 s): unless lookup and store are one locked step, every thread of the block looks up before any
    thread stores, and each then stores and uses an array of its own."""

    def get(self, key, default=None):
        found = super().get(key, default)
        meet = _MEETINGS.setdefault(key, threading.Barrier(THREADS, timeout=0.25))
        try:
            meet.wait()
        except threading.BrokenBarrierError:  # timed out (as with the lock): the later lookups go straight on
            pass
        return found


_MEETINGS = {}


@pytest.fixture
def lookups_meet(monkeypatch):
    from numba.cuda.simulator import kernelapi

    init = kernelapi.FakeCUDAShared.__init__

    def meeting_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._allocations = _LookupsMeet(self._allocations)

    _MEETINGS.clear()
    monkeypatch.setattr(kernelapi.FakeCUDAShared, "__init__", meeting_init)


def _launch(base):
    out = cuda.to_device(np.zeros(2))
    _block_sums[1, THREADS](base, out)
    return out.copy_to_host()


def _want(base):
    s = THREADS * base + THREADS * (THREADS - 1) / 2
    return [s, 2 * s]


def test_simulator_shared_arrays_are_one_per_line_and_launch():
    # Two calls on two lines are two arrays (the lookup keys on the kernel's line, not the workaround's),
    # and every launch gets fresh ones.
    for base in (1000.0, -7.5, 3.0):
        np.testing.assert_array_equal(_launch(base), _want(base))


def test_simulator_shared_arrays_survive_a_thread_switch_mid_lookup(lookups_meet):
    # Unpatched, every thread here would allocate its own arrays and thread 0 would sum garbage.
    base = float(np.random.default_rng().integers(1, 10**6))  # stale memory cannot pass for the right sum
    np.testing.assert_array_equal(_launch(base), _want(base))
