"""Arrays that compiled code allocates start on a cache line: `align_compiled_arrays`, which importing the CPU
kernels runs, before any of them compiles (kernels/cpu/__init__.py).

Numba places the data of an array made inside compiled code (np.empty, np.zeros, np.empty_like, ...) at the
alignment its CPU target prefers, `CPUContext.get_preferred_array_alignment`: 32 bytes ("AVX prefers 32-byte
alignment"), while glibc's heap, where such arrays live under tinyattn's malloc thresholds (tinyattn/runtime.py),
gives 16 bytes. A 64-byte AVX-512 vector at an address 32 bytes past a line spans two cache lines, so on such an
array every vector load and store that steps in whole vectors from its start (the micro-kernels', the row
kernels') is split in two. The target's preference is raised here to policy.ARRAY_ALIGNMENT (64: one line) for
every dtype.

That preference belongs to Numba's CPU target, not to a function, so it holds for every Numba function compiled
in the process afterwards, the user's own too: their arrays start on a stricter boundary (up to 63 bytes more per
array), and nothing else changes. Arrays allocated by NumPy (outside compiled code) keep NumPy's alignment, except
the long-lived ones tinyattn makes itself with `empty` (through backend.host_empty): the built-in layers'
parameters (creation.empty_parameter_data) and Adam's moments.
Kernels loaded from Numba's cache were compiled under the same setting: the cache is keyed on the kernels'
sources (tinyattn/kernel_cache.py), this file and policy.py included.
"""
import math

import numpy as np
from numba.core import cpu

from .policy import ARRAY_ALIGNMENT

__all__ = ["align_compiled_arrays", "empty"]


def align_compiled_arrays():
    """Make Numba's CPU target align the arrays compiled code allocates to at least ARRAY_ALIGNMENT bytes. Idempotent;
    returns the method it replaced (or the one already in place)."""
    current = cpu.CPUContext.get_preferred_array_alignment
    if getattr(current, "tinyattn_alignment", None) == ARRAY_ALIGNMENT:
        return current

    def get_preferred_array_alignment(context, ty):
        return max(ARRAY_ALIGNMENT, current(context, ty))

    get_preferred_array_alignment.tinyattn_alignment = ARRAY_ALIGNMENT
    cpu.CPUContext.get_preferred_array_alignment = get_preferred_array_alignment
    return current


def empty(shape, dtype):
    """np.empty(shape, dtype) whose data starts on an ARRAY_ALIGNMENT-byte line: a view of a few bytes more."""
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = math.prod(shape) * dt.itemsize
    raw = np.empty(nbytes + ARRAY_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ARRAY_ALIGNMENT
    return raw[start:start + nbytes].view(dt).reshape(shape)
