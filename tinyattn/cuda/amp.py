"""torch.cuda.amp: the older spelling of `torch.amp` with device_type "cuda" (see tinyattn/amp.py)."""
from .. import amp as _amp


def autocast(enabled=True, dtype=None, cache_enabled=True):
    """torch.cuda.amp.autocast(...) == torch.amp.autocast("cuda", ...)."""
    return _amp.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


def GradScaler(init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000, enabled=True):
    """torch.cuda.amp.GradScaler(...) == torch.amp.GradScaler("cuda", ...): without CUDA it warns and
    disables itself, as PyTorch's does."""
    return _amp.GradScaler("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


__all__ = ["GradScaler", "autocast"]
