"""torch.backends.openmp: not used by tinyattn (its CPU kernels are its own Numba code)."""

__all__ = [
    "is_available", "is_built",
]


def is_available():
    return False


def is_built():
    return False
