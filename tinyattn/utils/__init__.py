"""PyTorch's torch.utils, the part real programs use: `tinyattn.utils.data` (Dataset, DataLoader, samplers)."""
from . import data

__all__ = ["data"]
