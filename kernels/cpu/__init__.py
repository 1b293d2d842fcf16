"""The CPU kernels (Numba, compiled on first use). Importing the package first makes the arrays compiled code
allocates start on a cache line (alignment.py), before any kernel compiles."""
from .alignment import align_compiled_arrays

align_compiled_arrays()
