"""Numba's CUDA simulator can give the threads of one block different shared arrays (no tinyattn code here).

Run:  python benchmarks/sim_shared_race.py [launches] [--fixed]

Under NUMBA_ENABLE_CUDASIM=1 every GPU thread is a Python thread, and `cuda.shared.array(...)` is the
simulator's FakeCUDAShared.array (numba_cuda/numba/cuda/simulator/kernelapi.py, numba-cuda 0.30.4):

    res = self._allocations.get(caller)      # caller = (file, line) of the cuda.shared.array call
    if res is None:
        res = np.empty(shape, dtype)
        self._allocations[caller] = res
    return res

a check-then-set with no lock. When the interpreter switches threads between the get and the set, two
threads of the block both see None, each allocates its own array and the later store wins: those threads
then write and read different "shared" arrays, and a reduction through shared memory silently drops the
other threads' partials. Python switches threads every sys.getswitchinterval() seconds (5 ms by default),
so at the default it almost never happens; at 1 µs it happens often enough to see.

The kernel below is a textbook block sum (every thread writes its slot, syncthreads, thread 0 adds the
slots); on a GPU it is always right. Under the simulator at a 1 µs switch interval some launches return a
wrong sum. With --fixed, FakeCUDAShared.array is first replaced by tinyattn's workaround (the same logic
under a lock: kernels/cuda/simulator.py, loaded from its file), and none does. Measured on a loaded 2-core
machine, numba-cuda 0.30.4, Python 3.11.7: 205 wrong sums in 3000 launches as shipped, 0 in 3000 --fixed.
"""
import os
import sys
import time

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
from numba import config, cuda, float64  # noqa: E402

THREADS = 32


@cuda.jit
def block_sum(n, out):
    """out[0] = sum over the block's threads t of (n + t), through a shared array."""
    t = cuda.threadIdx.x
    cuda.syncthreads()  # no-op for the result; in the simulator it lines the threads up for the allocation
    sh = cuda.shared.array(THREADS, float64)
    sh[t] = n + t
    cuda.syncthreads()
    if t == 0:
        total = 0.0
        for i in range(THREADS):
            total += sh[i]
        out[0] = total


def main():
    if not config.ENABLE_CUDASIM:
        sys.exit("this shows a bug of Numba's CUDA simulator: run it with NUMBA_ENABLE_CUDASIM=1")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    launches = int(args[0]) if args else 3000
    if "--fixed" in sys.argv:
        import importlib.util  # the workaround, loaded from its file (no tinyattn import)

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels", "cuda", "simulator.py")
        spec = importlib.util.spec_from_file_location("tinyattn_sim_workaround", path)
        workaround = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(workaround)
        workaround.patch_shared_arrays()
    from importlib.metadata import version


    out = cuda.device_array(1, np.float64)
    sys.setswitchinterval(1e-6)
    wrong, t0 = [], time.perf_counter()
    for n in range(launches):
        block_sum[1, THREADS](n, out)  # n changes the values, so stale memory cannot pass for the right sum
        got = out.copy_to_host()[0]
        if got != THREADS * n + THREADS * (THREADS - 1) // 2:
            wrong.append((n, got))
    sys.setswitchinterval(0.005)
    seconds = time.perf_counter() - t0
    print(f"numba-cuda {version('numba-cuda')}, python {sys.version.split()[0]}"
          f"{', FakeCUDAShared.array locked' if '--fixed' in sys.argv else ''}: {launches} launches of a "
          f"{THREADS}-thread block sum at a 1 µs switch interval, {len(wrong)} wrong, {seconds:.0f} s")
    for n, got in wrong[:5]:
        print(f"  launch {n}: got {got:g}, expected {THREADS * n + THREADS * (THREADS - 1) // 2}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
