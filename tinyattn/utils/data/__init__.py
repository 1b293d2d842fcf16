"""PyTorch's torch.utils.data: datasets, samplers, DataLoader and collation, pure Python.

    from tinyattn.utils.data import DataLoader, TensorDataset, random_split
    train, val = random_split(TensorDataset(x, y), [0.9, 0.1], generator=ta.Generator().manual_seed(0))
    for xb, yb in DataLoader(train, batch_size=32, shuffle=True, num_workers=2):
        ...

Submodules at PyTorch's paths: dataset, sampler, dataloader, distributed, _utils.collate.
"""
from . import _utils
from ._utils.collate import default_collate, default_convert
from ._utils.worker import get_worker_info
from .dataloader import DataLoader, DatasetKind as _DatasetKind  # PyTorch's torch.utils.data._DatasetKind
from .dataset import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split,
)
from .distributed import DistributedSampler
from .sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
    "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
    "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "default_collate", "default_convert",
    "get_worker_info", "random_split",
]
