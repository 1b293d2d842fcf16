"""A workaround for a race in Numba's CUDA simulator: threads of one block given different shared arrays.

Under NUMBA_ENABLE_CUDASIM=1 each GPU thread is a Python thread and `cuda.shared.array(shape, dtype)` is
FakeCUDAShared.array (numba_cuda/numba/cuda/simulator/kernelapi.py; numba-cuda 0.30.4 at least), which
finds a launch's array by the (file, line) of the call:

    res = self._allocations.get(caller)
    if res is None:
        res = np.empty(shape, dtype)
        self._allocations[caller] = res

with no lock. If Python switches threads between the get and the store, two threads of the block each
allocate an array and keep their own: from then on they write and read different "shared" memory, so a
tiled matmul or a block reduction silently computes with garbage in some slots. At Python's default switch
interval (5 ms) this is very rare; at 1 µs it hit about 1 launch in 500-2000, and it was the rare wrong
row of tests/test_cuda_tensors.py::test_float_attention_masks_in_the_composite_paths_on_gpu: every
failing run had one such lost store, in matmul.py's As/Bs tiles, and no passing run had one.
benchmarks/sim_shared_race.py shows it without tinyattn code.

`patch_shared_arrays()` replaces the method by the same logic under a lock. It touches nothing but the
simulator, and only when the simulator is on (a real GPU has per-block shared memory and no such race).
"""
import sys
import threading

_lock = threading.Lock()
_patched = False


def patch_shared_arrays():
    """Make the simulator's cuda.shared.array thread-safe (idempotent; a no-op without the simulator)."""
    global _patched
    from numba import config

    if _patched or not config.ENABLE_CUDASIM:
        return
    import numpy as np
    from numba.cuda.simulator import kernelapi

    shared = kernelapi.FakeCUDAShared
    original = shared.array

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:  # unchanged: errors, and dynamic shared memory (one buffer)
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)  # the kernel's line, as the original's traceback.extract_stack()[-2]
        key = (caller.f_code.co_filename, caller.f_lineno)
        with _lock:  # one allocation per line and launch, seen by every thread of it
            res = self._allocations.get(key)
            if res is None:
                res = self._allocations[key] = np.empty(shape, dtype)
        return res

    array.__doc__ = original.__doc__
    array.__wrapped__ = original
    shared.array = array
    _patched = True
