"""torch.backends.mkl: not used by tinyattn (its CPU kernels are its own Numba code)."""
enabled = False


def is_available():
    return False


def is_built():
    return False
