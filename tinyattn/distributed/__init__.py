"""Data-parallel training over MPI (mpi4py's COMM_WORLD), with PyTorch's names.

    mpiexec -n 2 python train.py          # the same script on every rank

    import tinyattn.distributed as dist
    dist.init()                                       # join the job; one rank's error ends all of them
                                                      # (timeout=: how long a collective may wait, 30 min)
    model = dist.DistributedDataParallel(Model())     # rank 0's weights everywhere
    sampler = dist.DistributedSampler(len(data), shuffle=True, seed=0)
    for epoch in range(epochs):                       # (different batch counts per rank: `with model.join():`)
        sampler.set_epoch(epoch)
        ...
        loss.backward()                               # gradients averaged over the ranks here
        opt.step()
        dist.print0(f"loss {loss.item():.3f}")         # rank 0 prints, rank 0 saves:
    dist.save({"model": model.module.state_dict()}, "ckpt.npz")

Needs the `distributed` extra (mpi4py and the MPICH wheel, which installs mpiexec into the
environment); it is imported by init(), so importing this package does not need it.
"""
from .ddp import DistributedDataParallel, Join
from .process_group import (
    DEFAULT_TIMEOUT, DistBackendError, DistError, get_backend, get_timeout, monitored_barrier,
    ReduceOp, all_gather, all_reduce, barrier, broadcast, destroy_process_group, get_local_rank, get_local_size,
    get_rank, get_world_size, init, init_process_group, is_available, is_initialized, is_main_process, print0,
    save,
)
from .sampler import DistributedSampler

__all__ = [
    "DEFAULT_TIMEOUT", "DistBackendError", "DistError", "get_backend", "get_timeout", "monitored_barrier",
    "DistributedDataParallel", "DistributedSampler", "Join", "ReduceOp", "all_gather", "all_reduce", "barrier",
    "broadcast",
    "destroy_process_group", "get_local_rank", "get_local_size", "get_rank", "get_world_size", "init",
    "init_process_group", "is_available", "is_initialized", "is_main_process", "print0", "save",
]
