"""torch.backends: the flags programs set for PyTorch's GPU and CPU libraries.

tinyattn's kernels are its own Numba code, so none of these flags changes what it computes: float32
products are always full float32 (never TF32), and its CPU kernels give the same result run to run.
They exist so that programs which set them (`torch.backends.cuda.matmul.allow_tf32 = True`,
`torch.backends.cudnn.benchmark = True`) run unchanged; reading one back gives what was set.
"""
from . import cuda, cudnn, mkl, mkldnn, mps, openmp

__all__ = ["cuda", "cudnn", "mkl", "mkldnn", "mps", "openmp"]
