"""CUDA kernels (numba.cuda.jit) with the same names and meanings as kernels/cpu.

Import lazily (``from tinyattn.kernels.cuda import matmul``): importing these modules imports
``numba.cuda``. They run on a real GPU or under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``, set before
numba is imported).
"""
from .simulator import patch_shared_arrays

# Under Numba's simulator, make cuda.shared.array thread-safe before any kernel runs (simulator.py: a
# race there could give threads of one block different shared arrays). Nothing changes on a real GPU.
patch_shared_arrays()
