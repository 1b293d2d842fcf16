"""torch.utils.data.distributed: DistributedSampler over a dataset (tinyattn/distributed/sampler.py's).

Importing it does not import mpi4py: tinyattn.distributed imports mpi4py only in init().
"""
from ...distributed.sampler import DistributedSampler as _LengthSampler

__all__ = ["DistributedSampler"]


class DistributedSampler(_LengthSampler):
    """PyTorch's signature: DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
    drop_last=False); each rank's share of range(len(dataset)), reshuffled by set_epoch(epoch).
    num_replicas/rank default to the process group's (1 and 0 when it is not initialized)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        super().__init__(len(dataset), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.dataset = dataset
