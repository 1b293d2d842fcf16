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

Every communication here is one of the process group's bounded collectives (see process_group): the
gradient all-reduce of a backward carries, in its header, which of this rank's forwards it belongs
to, so a rank that skipped a backward, or ran one alone inside no_sync(), is an error on every rank
at the next all-reduce, not silently mixed gradients. Ranks with different numbers of batches train
inside `with ddp.join():` (PyTorch's Join): a rank that has run out of batches shadows the others'
all-reduces with zeros until every rank is done.
"""
import contextlib
import time

import numpy as np

from ..autograd import Function, backward as _run_backward, is_grad_enabled
from ..backend import device_of, move
from ..nn.module import Module
from ..tensor import Tensor
from . import process_group as pg

__all__ = [
    "DistributedDataParallel", "Join",
]


class _SyncAfterBackward(Function):
    """Identity on the module's outputs; its backward is the module's backward plus the gradient sync."""

    @staticmethod
    def forward(ctx, anchor, ddp, outputs, meta):
        ctx.ddp, ctx.outputs, ctx.meta = ddp, outputs, meta
        return tuple(t._array for t in outputs)

    @staticmethod
    def backward(ctx, grads):
        reached = [(t, g) for t, g in zip(ctx.outputs, grads) if g is not None]
        for i, (t, g) in enumerate(reached):  # shared parts of the graph are kept until the last output
            _run_backward(t, g, retain_graph=i < len(reached) - 1)
        ctx.outputs = None
        if ctx.meta["sync"] and ctx.ddp._require_sync:  # neither the forward nor the backward ran inside no_sync
            ctx.ddp._reduce_gradients(ctx.meta["forward"], ctx.meta["divisor"])
        return (None, None, None, None)

    @staticmethod
    def differentiable_backward(ctx, inputs, grads):
        """Not supported, as in PyTorch (DDP works with gradients accumulated in .grad, not with
        autograd.grad or double backward): the sync all-reduces the parameters' .grad arrays after a plain
        backward of the module, and a gradient with a graph cannot be averaged over the ranks (each rank's graph
        is its own). Raises naming DistributedDataParallel instead of a gradient detached from the model."""
        raise RuntimeError(
            "backward with create_graph=True through DistributedDataParallel is not supported: "
            "its gradient sync all-reduces the parameters' .grad after a plain backward of the module, and a "
            "gradient with a graph cannot be averaged over the ranks. For second derivatives (a gradient "
            "penalty, a Hessian-vector product) call the wrapped model (ddp.module) and average what you need "
            "yourself, or run on one process")


_serials = [0]  # DistributedDataParallel objects wrapped in this process (the same order on every rank)


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over the process group (PyTorch's name and habits).

    Args:
        module: the model; every rank builds the same one: the same parameters in the same order, with
            the same names, shapes, dtypes and requires_grad (checked now, on every rank: a difference
            is a RuntimeError on every rank naming the first parameter that differs). Rank 0's
            parameters and buffers are then broadcast to the others, so different seeds per rank do not
            matter (init_sync=False skips that broadcast).
        bucket_cap_mb: gradients are all-reduced in flat buckets of at most this many megabytes
            (2**20 bytes) each, one bucket per dtype at least; a parameter larger than a bucket gets
            its own. Fewer, larger all-reduces are what makes data parallelism cheap. Default 25.
        device_ids, output_device, dim, broadcast_buffers, find_unused_parameters, check_reduction,
        gradient_as_bucket_view, static_graph: accepted for PyTorch's programs; see the differences.
        process_group: only None (the default group).

    `.module` is the wrapped model: save `ddp.module.state_dict()` for keys without the "module."
    prefix. `no_sync()` skips the all-reduce for gradient accumulation; `join()` trains ranks with
    different numbers of batches. Parameters on the GPU are reduced through host buffers.
    `comm_stats` counts the all-reduces, their bytes and their time.

    Differences from PyTorch: buffers are broadcast at wrap time only (broadcast_buffers is accepted,
    there is no broadcast at every forward); a parameter that gets no gradient on any rank keeps .grad
    None (no find_unused_parameters needed: a per-parameter flag travels in the bucket); the
    all-reduce runs after the module's backward, not overlapped with it; loss.backward(retain_graph=
    True) does not keep the module's own graph. Stricter than PyTorch: the gradient all-reduce of a
    backward must belong to the same forward (counted per rank, training-mode forwards with autograd
    on) on every rank: a rank that skipped a backward, ran one alone inside no_sync(), or ran an extra
    training-mode forward with autograd on, is an error at the next all-reduce (PyTorch mixes the
    gradients of different steps, or hangs).
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False, init_sync=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if bucket_cap_mb is None:
            bucket_cap_mb = 25.0
        if not isinstance(bucket_cap_mb, (int, float)) or isinstance(bucket_cap_mb, bool) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        if process_group is not None:
            raise NotImplementedError("DistributedDataParallel: process subgroups are not supported; "
                                      "only the default group (process_group=None)")
        if device_ids is not None and not isinstance(device_ids, (list, tuple)):
            raise TypeError(f"DistributedDataParallel: device_ids must be a list of devices (or None), got "
                            f"{type(device_ids).__name__} (bucket_cap_mb is passed by keyword)")
        comm = pg._world()
        pg._ddp_used = True
        self.module = module
        object.__setattr__(self, "_comm", comm)
        object.__setattr__(self, "_require_sync", True)
        object.__setattr__(self, "_anchor", Tensor(np.zeros((), np.float32), requires_grad=True))
        object.__setattr__(self, "bucket_cap_mb", float(bucket_cap_mb))
        object.__setattr__(self, "comm_stats", {"allreduce_calls": 0, "allreduce_bytes": 0, "allreduce_seconds": 0.0})
        object.__setattr__(self, "_serial", _serials[0])
        object.__setattr__(self, "_forwards", 0)  # training-mode forwards with autograd on, on this rank
        object.__setattr__(self, "_iteration", 0)  # gradient all-reduces done
        object.__setattr__(self, "_join", None)  # the join() settings while inside one
        _serials[0] += 1
        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._check_same_model(module)
        if init_sync:
            self._broadcast_state(module, src=0)
        buckets = _make_buckets(params, int(bucket_cap_mb * 2**20))
        object.__setattr__(self, "_buckets", buckets)
        object.__setattr__(self, "_layout", tuple((b.dtype.str, b.flat.size) for b in buckets))

    # ---- wrap time ----------------------------------------------------------------------------------
    def _check_same_model(self, module):
        """Every rank's parameters (names, shapes, dtypes, requires_grad, in order) and buffers, gathered
        and compared: the first difference is a RuntimeError on every rank."""
        params = [(n, tuple(p.shape), p.dtype.str, bool(p.requires_grad)) for n, p in module.named_parameters()]
        buffers = [(n, tuple(b.shape), b.dtype.str) for n, b in module.named_buffers()]
        everyone = pg._exchange("ddp_wrap", (self._serial,), payload=(params, buffers),
                                info=f"DistributedDataParallel #{self._serial}")
        for what, index in (("parameter", 0), ("buffer", 1)):
            lists = [e[index] for e in everyone]
            if all(other == lists[0] for other in lists):
                continue
            i = next(j for j in range(max(map(len, lists)))
                     if len({repr(x[j]) if j < len(x) else None for x in lists}) > 1)

            def entry(x, j=i, buffer=index == 1):
                if j >= len(x):
                    return f"no {what} #{j} (it has {len(x)})"
                if buffer:
                    return f"{x[j][0]!r} shape {x[j][1]}, dtype {np.dtype(x[j][2])}"
                return f"{x[j][0]!r} shape {x[j][1]}, dtype {np.dtype(x[j][2])}, requires_grad={x[j][3]}"

            differ = [r for r, x in enumerate(lists) if repr(x[i] if i < len(x) else None)
                      != repr(lists[0][i] if i < len(lists[0]) else None)]
            listing = "; ".join(f"rank {r}: {entry(x)}" for r, x in enumerate(lists))
            raise RuntimeError(
                f"DistributedDataParallel: the ranks' models differ at {what} #{i} (rank"
                f"{'s' if len(differ) > 1 else ''} {', '.join(map(str, differ))} "
                f"{'differ' if len(differ) > 1 else 'differs'} from rank 0): {listing}. "
                "Every rank must wrap the same model: "
                "the same parameters in the same order, with the same names, shapes, dtypes and requires_grad "
                "(freeze the same parameters on every rank), and the same buffers.")

    def _broadcast_state(self, module, src=0, kind="ddp_broadcast"):
        """Rank src's parameters and buffers, to everyone: one broadcast of all their bytes."""
        owners = [p for _, p in module.named_parameters()] + [b for _, b in module.named_buffers()]
        pg._exchange(kind, (self._serial, src), data=True, info=f"DistributedDataParallel #{self._serial}")
        if not owners:
            pg._data_phase(kind, [])
            return
        hosts = [np.ascontiguousarray(move(t._array, "cpu")) for t in owners]
        flat = np.concatenate([h.reshape(-1).view(np.uint8) for h in hosts])
        pg._data_phase(kind, [pg._coll.Ibcast(flat, root=src)])
        offset = 0
        for t, h in zip(owners, hosts):
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
        if self.training:
            object.__setattr__(self, "_forwards", self._forwards + 1)
        meta = {"sync": self._require_sync, "forward": self._forwards, "divisor": None}
        if self._join is not None:  # tell the joined ranks whether a gradient all-reduce follows
            active, syncing = self._join_count(1, int(self._require_sync))
            world = self._comm.Get_size()
            if self._join["throw"] and active < world:
                raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
            meta["divisor"] = world if self._join["divide_by_initial_world_size"] else active
        synced = _SyncAfterBackward.apply(self._anchor, self, [items[i] for i in routed], meta)
        for i, s in zip(routed, synced):
            items[i]._counter.share(s)  # the same memory: an in-place change of either is seen by both
            items[i] = s
        return items[0] if single else type(out)(items)

    @contextlib.contextmanager
    def no_sync(self):
        """Gradient accumulation without communication: a backward run inside this block, or through a
        forward run inside it (PyTorch's rule: put both inside), only adds to the local gradients; the
        next synced backward all-reduces the accumulated sum. Every rank must use it for the same
        forwards and backwards."""
        previous = self._require_sync
        object.__setattr__(self, "_require_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_require_sync", previous)

    def join(self, divide_by_initial_world_size=True, enable=True, throw_on_early_termination=False):
        """PyTorch's DistributedDataParallel.join(): train ranks with different numbers of batches.

            with ddp_model.join():
                for batch in my_batches:          # a different number on each rank
                    loss = ddp_model(batch)...; loss.backward(); opt.step()

        Every rank enters the block. Inside it each forward (with autograd on) tells the others that this
        rank is still training; a rank that leaves its loop early waits at the end of the block, where it
        shadows the others' gradient all-reduces with zeros, until every rank is done. Then the parameters
        and buffers of the last rank to finish are broadcast, so that all ranks end equal.

        divide_by_initial_world_size: True (the default) divides the summed gradients by the world size,
            as if the finished ranks contributed zero gradients; False by the number of ranks still
            training at that step.
        enable: False makes the block a no-op.
        throw_on_early_termination: True makes every rank raise RuntimeError as soon as one rank runs out
            of batches, instead of shadowing.
        """
        return _Join(self, bool(divide_by_initial_world_size), bool(enable), bool(throw_on_early_termination))

    def _join_count(self, active, syncing):
        """One all-reduce of [still training, a gradient all-reduce follows] over the ranks."""
        info = f"DistributedDataParallel #{self._serial}"
        pg._exchange("ddp_join", (self._serial,), data=True, info=info)
        counts = np.array([active, syncing], np.int64)
        pg._data_phase("ddp_join", [pg._coll.Iallreduce(pg._MPI.IN_PLACE, counts, op=pg._MPI.SUM)], info)
        return int(counts[0]), int(counts[1])

    def _reduce_gradients(self, forward=None, divisor=None, shadow=False):
        """All-reduce the buckets (in one go: one header, then every bucket's Iallreduce). shadow=True: a
        joined rank's zeros, nothing is written back."""
        world = self._comm.Get_size()
        in_join = self._join is not None
        # inside join() the ranks run different numbers of forwards: their counts are not compared
        spec = (self._serial, self._layout, None if in_join else forward)
        what = "shadowing with zeros (joined)" if shadow else f"the backward of forward #{forward}"
        info = f"DistributedDataParallel #{self._serial}, iteration {self._iteration + 1}: {what}"
        flats = [b.zeros() if shadow else b.pack() for b in self._buckets]
        start = time.perf_counter()  # the header's wait (for the slower rank) included, as a blocking all-reduce
        pg._exchange("ddp_grads", spec, data=True, info=info, mismatch=self._out_of_step)
        MPI = pg._MPI
        pg._data_phase("ddp_grads", [pg._coll.Iallreduce(MPI.IN_PLACE, f, op=MPI.SUM) for f in flats], info)
        self.comm_stats["allreduce_seconds"] += time.perf_counter() - start
        self.comm_stats["allreduce_calls"] += len(flats)
        self.comm_stats["allreduce_bytes"] += sum(f.nbytes for f in flats)
        object.__setattr__(self, "_iteration", self._iteration + 1)
        if not shadow:
            for bucket, flat in zip(self._buckets, flats):
                bucket.unpack(flat, world if divisor is None else divisor)

    def _out_of_step(self, headers):
        listing = "; ".join(f"rank {r}: {h['info']}" for r, h in enumerate(headers))
        raise pg.DistError(
            f"DistributedDataParallel: the ranks are out of step at collective #{headers[0]['n']}, the gradient "
            f"all-reduce: {listing}. Each rank counts its forwards (training mode, autograd on); a rank that "
            "skipped a backward, ran a backward inside no_sync() alone, or ran an extra forward, would sum the "
            "gradients of different steps." + pg._join_hint(["ddp_grads"]))

    @property
    def bucket_names(self):
        """The parameter names in each bucket, in order (what one all-reduce carries)."""
        return [[name for name, _ in b.params] for b in self._buckets]

    def extra_repr(self):
        return f"buckets={len(self._buckets)}, bucket_cap_mb={self.bucket_cap_mb:g}"


class Join:
    """PyTorch's generic torch.distributed.algorithms.join.Join, for a DistributedDataParallel:
    `with Join([ddp_model]):` is `with ddp_model.join():`. Keyword arguments go to the model's join
    (divide_by_initial_world_size). One DistributedDataParallel per Join (tinyattn has no other
    joinables, such as ZeroRedundancyOptimizer)."""

    def __init__(self, joinables, enable=True, throw_on_early_termination=False, **kwargs):
        joinables = list(joinables)
        if len(joinables) != 1 or not isinstance(joinables[0], DistributedDataParallel):
            raise NotImplementedError("Join: tinyattn supports exactly one DistributedDataParallel as the joinable, "
                                      f"got {[type(j).__name__ for j in joinables]}")
        unknown = set(kwargs) - {"divide_by_initial_world_size"}
        if unknown:
            raise TypeError(f"Join() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        self._context = joinables[0].join(kwargs.get("divide_by_initial_world_size", True), enable,
                                          throw_on_early_termination)

    def __enter__(self):
        self._context.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        return self._context.__exit__(exc_type, exc, tb)


class _Join:
    """The context manager of DistributedDataParallel.join()."""

    def __init__(self, ddp, divide_by_initial_world_size, enable, throw):
        self.ddp, self.enable = ddp, enable
        self.config = {"divide_by_initial_world_size": divide_by_initial_world_size, "throw": throw}
        self.previous = None

    def __enter__(self):
        if self.enable:
            if self.ddp._join is not None:
                raise RuntimeError("DistributedDataParallel.join(): already inside a join() of this model")
            object.__setattr__(self.ddp, "_join", self.config)
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.enable:
            return False
        ddp = self.ddp
        try:
            if exc_type is not None:
                return False  # the exception goes on (the other ranks learn of it from the abort)
            last = True  # no other rank was still training when this one finished
            world = ddp._comm.Get_size()
            while True:
                active, syncing = ddp._join_count(0, 0)
                if active == 0:
                    break
                last = False
                if self.config["throw"]:
                    raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
                if syncing:
                    ddp._reduce_gradients(shadow=True)
            # the last rank(s) to finish hold the final model: the highest of them broadcasts it
            me = ddp._comm.Get_rank()
            src = max(pg._exchange("ddp_final_sync", (ddp._serial,), payload=me if last else -1,
                                   info=f"DistributedDataParallel #{ddp._serial}"))
            if world > 1:
                ddp._broadcast_state(ddp.module, src=int(src), kind="ddp_final_sync_data")
            return False
        finally:
            object.__setattr__(ddp, "_join", None)


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

    def zeros(self):
        """A joined rank's contribution: no gradient, no flags."""
        self.flat[...] = 0
        return self.flat

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
