"""tinyattn.cuda: what PyTorch users look for under torch.cuda, and the device names.

tinyattn uses one GPU, "cuda" (= "cuda:0"), through Numba's CUDA support; with no GPU,
Numba's simulator (NUMBA_ENABLE_CUDASIM=1, set before numba is imported) stands in for one,
slowly, which is how the CUDA code is tested on machines without a GPU.
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


def require_cuda(op):
    """Raise a clear error naming `op` when there is no GPU to run on."""
    if not is_available():
        raise RuntimeError(
            f"{op}: CUDA is not available: Numba finds no NVIDIA GPU (or no driver, or numba-cuda is not "
            "installed: pip install 'numba-cuda[cu12]'). To run tinyattn's CUDA code without a GPU, use "
            "Numba's CUDA simulator: set NUMBA_ENABLE_CUDASIM=1 before numba is imported (it is slow: "
            "tiny sizes only)."
        )


class device:
    """PyTorch's torch.device: a type, "cpu" or "cuda", and for cuda an index (tinyattn uses GPU 0).

    device("cuda") and device("cuda:0") are the same device here (in PyTorch they compare unequal).
    A device compares equal to its name: t.device == "cuda" works.
    """

    __slots__ = ("type", "index")

    def __init__(self, spec, index=None):
        if isinstance(spec, device):
            spec, index = spec.type, spec.index
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda', got {type(spec).__name__}")
        kind, _, number = spec.partition(":")
        if kind not in ("cpu", "cuda") or (number and not number.isdigit()):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:0', got {spec!r}")
        if number:
            index = int(number)
        if kind == "cuda" and index not in (None, 0):
            raise ValueError(f"device: tinyattn uses a single GPU, cuda:0; got {spec!r} with index {index}")
        self.type = kind
        self.index = 0 if kind == "cuda" else None

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except ValueError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


def parse_to_args(op, args, kwargs):
    """(device or None, dtype or None) from .to()'s arguments: .to(device), .to(dtype),
    .to(device, dtype), .to(other_tensor), and the keywords device= and dtype=."""
    target_device, target_dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)  # accepted for PyTorch code; copies here are always synchronous
    if kwargs:
        raise TypeError(f"{op}: unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, (str, device)):
            target_device = device(a)
        elif hasattr(a, "device") and hasattr(a, "dtype") and not isinstance(a, type):
            target_device, target_dtype = a.device, a.dtype  # another tensor
        else:
            target_dtype = a
    return (None if target_device is None else device(target_device)), target_dtype


# ---- the rest of torch.cuda's everyday surface -------------------------------------------------------
# tinyattn has one GPU (cuda:0) and one random generator for both devices (GPU random tensors are drawn on
# the host), so these are small. Like PyTorch, the seeding functions are silently ignored without CUDA.

def device_count():
    return 1 if is_available() else 0


def current_device():
    require_cuda("torch.cuda.current_device")
    return 0


def set_device(dev):
    """Select the GPU: tinyattn has only cuda:0, so anything else is an error."""
    index = dev if isinstance(dev, int) else device(dev).index  # device() also takes a device
    if index not in (0, None):
        raise ValueError(f"torch.cuda.set_device: tinyattn uses a single GPU, cuda:0; got {dev!r}")
    require_cuda("torch.cuda.set_device")


def get_device_name(dev=None):
    require_cuda("torch.cuda.get_device_name")
    from numba import cuda as numba_cuda
    name = numba_cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def is_bf16_supported(including_emulation=True):
    """False: tinyattn has no bfloat16 kernels on any device."""
    return False


def synchronize(dev=None):
    """Wait for the GPU to finish its queued work (a no-op without CUDA, where nothing is queued)."""
    if is_available():
        from numba import cuda as numba_cuda
        numba_cuda.synchronize()


def empty_cache():
    """Accepted for PyTorch's programs; tinyattn keeps no caching allocator of its own."""


def _seed_if_available(seed):
    if is_available():
        from ..random import manual_seed as _manual_seed
        _manual_seed(seed)


def manual_seed(seed):
    """Seed the generator that GPU random tensors come from. tinyattn draws them from its one generator
    (the CPU's), so with CUDA present this reseeds that generator, as torch.manual_seed does; without
    CUDA it is ignored, as in PyTorch."""
    _seed_if_available(seed)


manual_seed_all = manual_seed


def __getattr__(name):
    if name == "amp":  # torch.cuda.amp, imported on first use: it needs the tensor, which needs this module
        import importlib
        return importlib.import_module(".amp", __name__)
    raise AttributeError(f"module 'tinyattn.cuda' has no attribute {name!r}")


__all__ = [
    "current_device", "device", "device_count", "empty_cache", "get_device_name", "is_available", "is_bf16_supported",
    "manual_seed", "manual_seed_all", "parse_to_args", "require_cuda", "set_device", "synchronize",
]
