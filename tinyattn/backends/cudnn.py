"""torch.backends.cudnn: tinyattn does not use cuDNN; the flags are kept as set and change nothing."""

__all__ = [
    "allow_tf32", "benchmark", "deterministic", "enabled", "is_available", "version",
]
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    return False


def version():
    return None
