"""torch.backends.mkldnn: not used by tinyattn (its CPU kernels are its own Numba code)."""

__all__ = [
    "enabled", "is_available", "is_built",
]
enabled = False


def is_available():
    return False


def is_built():
    return False
