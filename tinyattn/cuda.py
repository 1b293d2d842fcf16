"""tinyattn.cuda: what PyTorch users look for under torch.cuda.

The CUDA kernels exist (kernels/cuda, tested under Numba's CUDA simulator), but tensors do
not yet live on a GPU: asking for one raises `device_error`, which says so.
"""


def is_available():
    """True when Numba sees a usable CUDA GPU (or the simulator, with NUMBA_ENABLE_CUDASIM=1)."""
    try:
        from numba import cuda  # imported lazily: `import tinyattn` stays fast without a GPU
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit means "not available", not a crash
        return False


def device_error(op, device):
    """The error for a tensor or module asked to move to a device other than the CPU."""
    return RuntimeError(
        f"{op}: device {device!r} is not supported yet: tinyattn tensors live on the CPU. "
        "The CUDA kernels are in tinyattn.kernels.cuda (they run on an NVIDIA GPU, or on a machine "
        "without one under Numba's CUDA simulator, NUMBA_ENABLE_CUDASIM=1), but Tensor is not wired "
        "to them yet."
    )


def parse_target(op, target):
    """Split a .to() argument into (dtype or None): a device other than 'cpu' raises device_error."""
    if isinstance(target, str) and (target == "cpu" or target.startswith("cuda")):
        if target != "cpu":
            raise device_error(op, target)
        return None
    return target
