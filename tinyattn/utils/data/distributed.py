"""torch.utils.data.distributed: DistributedSampler (tinyattn/distributed/sampler.py).

Importing it does not import mpi4py: tinyattn.distributed imports mpi4py only in init().
"""
from ...distributed.sampler import DistributedSampler

__all__ = ["DistributedSampler"]
