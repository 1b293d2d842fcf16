"""Neural-network building blocks (PyTorch's torch.nn names)."""
from . import functional
