"""DistributedSampler: each rank's share of a dataset's indices, for one epoch at a time."""
import math
import operator

import numpy as np

from . import process_group as pg

__all__ = [
    "DistributedSampler",
]


class DistributedSampler:
    """Indices 0 .. n-1 split over the ranks (PyTorch's DistributedSampler, over a length).

    Each epoch the indices are shuffled with a generator seeded by (seed, epoch), the same on every
    rank, then padded by repeating the first ones until they divide evenly (or cut, with
    drop_last=True), and rank r takes every num_replicas-th one starting at r. So the ranks' shares
    are disjoint and together cover the epoch, and every rank runs the same number of steps. Call
    set_epoch(e) at the start of each epoch, or every epoch has the same order.

    Args:
        n: the dataset size, or anything with a len().
        num_replicas, rank: default to the process group's world size and rank (1 and 0 when it is
            not initialized, so a single process sees all indices).
    """

    def __init__(self, n, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if not isinstance(n, (int, np.integer)):
            n = len(n)
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"DistributedSampler: the dataset size must be >= 0, got {n}")
        if num_replicas is None:
            num_replicas = pg.get_world_size() if pg.is_initialized() else 1
        if rank is None:
            rank = pg.get_rank() if pg.is_initialized() else 0
        if operator.index(num_replicas) < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= operator.index(rank) < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.n, self.num_replicas, self.rank = n, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        if drop_last:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        self.epoch = operator.index(epoch)

    def __iter__(self):
        if self.shuffle:
            indices = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        else:
            indices = np.arange(self.n)
        if self.total_size > self.n and self.n > 0:  # pad with the first indices, wrapping as often as needed
            indices = np.resize(indices, self.total_size)
        indices = indices[:self.total_size]
        return iter(indices[self.rank::self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples
