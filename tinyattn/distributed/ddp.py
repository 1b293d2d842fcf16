"""DistributedDataParallel: one model per rank, gradients averaged after every backward.

Data parallelism in one screen. Every rank holds the whole model and runs forward and backward on
its own share of the batch; if the gradients are then averaged over the ranks, every rank takes the
same optimiser step from the same weights, as one process would on the whole batch (the loss is a
mean over the batch, and the mean of the ranks' means is the mean over their union).

    wrap time     rank 0's parameters and buffers are broadcast: all ranks start equal
    forward       the wrapped module's forward, unchanged
    backward      the module's graph, then the gradients are packed into a few flat buckets (one
                  host array per dtype, up to bucket_cap_mb each), all-reduced (summed) in place,
                  divided by the world size and unpacked into each parameter's .grad
    opt.step()    identical on every rank: no communication

How "after backward" is found (autograd has per-tensor hooks but no end-of-backward callback, and a
parameter that gets no gradient fires no hook): forward runs the module as usual, then routes its
outputs through one node (_SyncAfterBackward) whose only input is a private leaf. loss.backward()
reaches that node after everything between the loss and the model's outputs; its backward runs the
module's own graph (a backward inside a backward), then all-reduces the buckets, and returns nothing
further.
"""
import contextlib
import time

import numpy as np

from ..autograd import Function, backward as _run_backward, is_grad_enabled
from ..backend import device_of, move
from ..nn.module import Module
from ..tensor import Tensor
from . import process_group as pg


class _SyncAfterBackward(Function):
    """Identity on the module's outputs; its backward is the module's backward plus the gradient sync."""

    @staticmethod
    def forward(ctx, anchor, ddp, outputs, sync):
        ctx.ddp, ctx.outputs, ctx.sync = ddp, outputs, sync
        return tuple(t._array for t in outputs)

    @staticmethod
    def backward(ctx, grads):
        reached = [(t, g) for t, g in zip(ctx.outputs, grads) if g is not None]
        for i, (t, g) in enumerate(reached):  # shared parts of the graph are kept until the last output
            _run_backward(t, g, retain_graph=i < len(reached) - 1)
        ctx.outputs = None
        if ctx.sync and ctx.ddp._require_sync:  # neither the forward nor the backward ran inside no_sync
            ctx.ddp._reduce_gradients()
        return (None, None, None, None)


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over the process group (PyTorch's name and habits).

    Args:
        module: the model; every rank builds the same one. Rank 0's parameters and buffers are
            broadcast to the others now, so different seeds per rank do not matter.
        bucket_cap_mb: gradients are all-reduced in flat buckets of at most this many megabytes
            (2**20 bytes) each, one bucket per dtype at least; a parameter larger than a bucket gets
            its own. Fewer, larger all-reduces are what makes data parallelism cheap.

    `.module` is the wrapped model: save `ddp.module.state_dict()` for keys without the "module."
    prefix. `no_sync()` skips the all-reduce for gradient accumulation. Parameters on the GPU are
    reduced through host buffers. `comm_stats` counts the all-reduces, their bytes and their time.

    Differences from PyTorch: buffers are broadcast at wrap time only (no broadcast_buffers at every
    forward); a parameter that gets no gradient on any rank keeps .grad None (no
    find_unused_parameters needed: a per-parameter flag travels in the bucket); the all-reduce runs
    after the module's backward, not overlapped with it; loss.backward(retain_graph=True) does not keep
    the module's own graph.
    """

    def __init__(self, module, bucket_cap_mb=25.0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if not isinstance(bucket_cap_mb, (int, float)) or isinstance(bucket_cap_mb, bool) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        comm = pg._world()
        self.module = module
        object.__setattr__(self, "_comm", comm)
        object.__setattr__(self, "_require_sync", True)
        object.__setattr__(self, "_anchor", Tensor(np.zeros((), np.float32), requires_grad=True))
        object.__setattr__(self, "bucket_cap_mb", float(bucket_cap_mb))
        object.__setattr__(self, "comm_stats", {"allreduce_calls": 0, "allreduce_bytes": 0, "allreduce_seconds": 0.0})
        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._check_same_model(module)
        self._broadcast_state(module)
        object.__setattr__(self, "_buckets", _make_buckets(params, int(bucket_cap_mb * 2**20)))

    # ---- wrap time ----------------------------------------------------------------------------------
    def _check_same_model(self, module):
        mine = [(k, tuple(t.shape), t.dtype.str) for k, t in module.state_dict().items()]
        everyone = self._comm.allgather(mine)
        for rank, other in enumerate(everyone):
            if other != mine:
                diff = sorted(set(map(str, other)) ^ set(map(str, mine)))[:4]
                raise ValueError(f"DistributedDataParallel: rank {rank} has a different model (names, shapes or "
                                 f"dtypes of its state_dict) than rank {self._comm.Get_rank()}: e.g. {diff}")

    def _broadcast_state(self, module):
        """Rank 0's parameters and buffers, to everyone: one broadcast of all their bytes."""
        tensors = list(module.state_dict().values())  # detached, sharing memory with the module's
        owners = [t for _, t in module.named_parameters()] + [b for _, b in module.named_buffers()]
        if not tensors:
            return
        hosts = [np.ascontiguousarray(move(t._array, "cpu")) for t in tensors]
        flat = np.concatenate([h.reshape(-1).view(np.uint8) for h in hosts])
        self._comm.Bcast(flat, root=0)
        offset = 0
        for t, h in zip(tensors, hosts):
            value = flat[offset:offset + h.nbytes].view(h.dtype).reshape(h.shape)
            offset += h.nbytes
            t._array[...] = move(value, device_of(t._array))
        for t in owners:  # an in-place change: a graph that saved the old values would say so
            t._bump_version()

    # ---- forward and the sync -----------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        out = self.module(*args, **kwargs)
        if not is_grad_enabled() or not self._buckets:
            return out
        single = isinstance(out, Tensor)
        items = [out] if single else list(out) if isinstance(out, (tuple, list)) else None
        if items is None:
            raise TypeError(f"DistributedDataParallel: the module returned a {type(out).__name__}; "
                            "a Tensor or a tuple/list of them is expected")
        routed = [i for i, t in enumerate(items) if isinstance(t, Tensor) and t.requires_grad]
        if not routed:
            return out
        synced = _SyncAfterBackward.apply(self._anchor, self, [items[i] for i in routed], self._require_sync)
        for i, s in zip(routed, synced):
            items[i]._counter.share(s)  # the same memory: an in-place change of either is seen by both
            items[i] = s
        return items[0] if single else type(out)(items)

    @contextlib.contextmanager
    def no_sync(self):
        """Gradient accumulation without communication: a backward run inside this block, or through a
        forward run inside it (PyTorch's rule: put both inside), only adds to the local gradients; the
        next synced backward all-reduces the accumulated sum."""
        previous = self._require_sync
        object.__setattr__(self, "_require_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_require_sync", previous)

    def _reduce_gradients(self):
        world = self._comm.Get_size()
        for bucket in self._buckets:
            flat = bucket.pack()
            start = time.perf_counter()
            self._comm.Allreduce(pg._MPI.IN_PLACE, flat, op=pg._MPI.SUM)
            self.comm_stats["allreduce_seconds"] += time.perf_counter() - start
            self.comm_stats["allreduce_calls"] += 1
            self.comm_stats["allreduce_bytes"] += flat.nbytes
            bucket.unpack(flat, world)

    @property
    def bucket_names(self):
        """The parameter names in each bucket, in order (what one all-reduce carries)."""
        return [[name for name, _ in b.params] for b in self._buckets]

    def extra_repr(self):
        return f"buckets={len(self._buckets)}, bucket_cap_mb={self.bucket_cap_mb:g}"


class _Bucket:
    """Some parameters of one dtype, reduced as one flat host array: their gradients, then one
    "has a gradient" flag per parameter (summed too: a gradient stays None only where no rank had one)."""

    def __init__(self, params, dtype):
        self.params, self.dtype = params, dtype
        self.sizes = [p._array.size for _, p in params]
        self.flat = np.empty(sum(self.sizes) + len(params), dtype=dtype)

    def pack(self):
        flat, offset = self.flat, 0
        for (_, p), n in zip(self.params, self.sizes):
            if p.grad is None:
                flat[offset:offset + n] = 0
            else:
                flat[offset:offset + n] = move(p.grad._array, "cpu").reshape(-1)
            offset += n
        flat[offset:] = [p.grad is not None for _, p in self.params]
        return flat

    def unpack(self, flat, world):
        offset, flags = 0, flat[len(flat) - len(self.params):]
        world = self.dtype.type(world)
        for (_, p), n, flag in zip(self.params, self.sizes, flags):
            part = flat[offset:offset + n].reshape(p._array.shape)
            offset += n
            if flag == 0:
                continue  # no rank had a gradient
            mean = part / world  # the sum over ranks -> their mean
            if p.grad is None:
                p.grad = Tensor._wrap(move(np.array(mean, copy=True), device_of(p._array)))
            else:
                p.grad._array[...] = move(mean, device_of(p.grad._array))
                p.grad._bump_version()


def _make_buckets(params, cap_bytes):
    """Parameters in model order, split by dtype, then into runs of at most cap_bytes."""
    by_dtype = {}
    for name, p in params:
        by_dtype.setdefault(p._array.dtype, []).append((name, p))
    buckets = []
    for dtype, group in by_dtype.items():
        current, size = [], 0
        for name, p in group:
            nbytes = p._array.size * dtype.itemsize
            if current and size + nbytes > cap_bytes:
                buckets.append(_Bucket(current, dtype))
                current, size = [], 0
            current.append((name, p))
            size += nbytes
        if current:
            buckets.append(_Bucket(current, dtype))
    return buckets
