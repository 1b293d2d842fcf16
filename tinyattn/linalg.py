"""torch.linalg's names that tinyattn has: vector_norm, norm (vectors only), matrix_norm ('fro'), inv, det,
slogdet, solve, matrix_power (the last five on CPU tensors, through NumPy's LAPACK)."""
from .functional.linalg import det, inv, matrix_power, slogdet, solve  # noqa: F401
from .functional.reduction import vector_norm  # noqa: F401
from .functional.reduction import norm as _norm
from .functional.linalg import matmul  # noqa: F401

__all__ = [
    "det", "inv", "matmul", "matrix_norm", "matrix_power", "norm", "slogdet", "solve", "vector_norm",
]


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """The 2-norm of the flattened input (ord=None), or a vector norm along dim; matrix ords other than
    'fro' are not supported."""
    if isinstance(ord, str) and ord != "fro":
        raise NotImplementedError(f"linalg.norm: ord={ord!r} is not supported (only vector norms and 'fro')")
    return _norm(A, 2 if ord in (None, "fro") else ord, dim, keepdim, dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    if ord != "fro":
        raise NotImplementedError(f"linalg.matrix_norm: only ord='fro' is supported, got {ord!r}")
    return vector_norm(A, 2, dim, keepdim, dtype=dtype)
