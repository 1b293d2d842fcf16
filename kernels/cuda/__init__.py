"""CUDA kernels (numba.cuda.jit) with the same names and meanings as kernels/cpu.

Import lazily (``from tinyattn.kernels.cuda import matmul``): importing these modules imports
``numba.cuda``. They run on a real GPU or under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``, set before
numba is imported).
"""
