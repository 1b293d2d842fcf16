"""The process group: one MPI job (mpi4py's COMM_WORLD) and the collectives over it.

mpi4py is imported by `init()`, not before, so `import tinyattn` and `import tinyattn.distributed`
work without it. Every rank runs the same script (`mpiexec -n 2 python train.py`); a collective is
called by all ranks in the same order, with tensors of the same shape and dtype.

Collectives work on CPU tensors in place. A cuda tensor goes through a host buffer: copied to the
host, reduced there, copied back (the MPICH wheel is not CUDA-aware, so nothing is passed to MPI as
device memory). Each one bumps the tensor's version counter, like any in-place op.

A job ends, it never hangs
--------------------------
Every collective (the public ones, DistributedDataParallel's wrap-time checks and gradient buckets,
join()'s bookkeeping) is numbered per process (collective #1, #2, ...) and runs in two non-blocking
phases, each polled against the process group's deadline (`init(timeout=...)`, 30 minutes by
default, as PyTorch's gloo) with a short sleep, so an idle wait does not burn a core:

  1. a header: a small fixed-size Iallgather of what each rank is calling (the collective, its
     shapes, dtypes and arguments; for DDP, which forward's gradients). When it completes every rank
     has arrived, and every rank sees every rank's header: ranks that called different collectives,
     or the same one with different tensors, get the same error on every rank, before any data moves.
  2. the data: Iallreduce / Ibcast / Iallgather on the tensors.

Beside them a control communicator (a duplicate of COMM_WORLD) carries three kinds of notes, read
while waiting: "rank r left after its collective #n" (sent by an atexit hook and by
destroy_process_group(), so a rank that returns from its script or calls sys.exit() ends the job
within moments instead of at the timeout), "rank r has been waiting in collective #n for a while"
(so that a rank that times out can name the ranks that did not arrive), and "rank r gave up at
collective #n" (so that every rank that can still speak prints why). A failed wait raises
DistBackendError on that rank; uncaught (the usual case) the exception hook prints it and ends the
whole job with MPI_Abort; caught, the group is broken (later collectives raise at once) and the job
still ends non-zero at exit.
"""
import atexit
import datetime
import numbers
import os
import pickle
import sys
import time
import traceback

import numpy as np

from ..backend import device_of, move
from ..tensor import Tensor

__all__ = [
    "all_gather", "all_reduce", "barrier", "broadcast", "DEFAULT_TIMEOUT", "destroy_process_group", "DistBackendError",
    "DistError", "get_backend", "get_local_rank", "get_local_size", "get_rank", "get_timeout", "get_world_size", "init",
    "init_process_group", "is_available", "is_initialized", "is_main_process", "monitored_barrier", "print0",
    "ReduceOp", "save",
]

_comm = None  # COMM_WORLD once init() ran
_MPI = None  # the mpi4py.MPI module once init() ran
_coll = None  # a duplicate of COMM_WORLD for tinyattn's own collectives (headers and data)
_ctl = None  # another one for the control notes (left / waiting / gave up)
_previous_excepthook = None
_ABORT_GRACE_SECONDS = 0.5

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # PyTorch's default for gloo (default_pg_timeout)
_timeout = DEFAULT_TIMEOUT.total_seconds()
_seq = 0  # collectives this process entered
_done = 0  # collectives this process completed
_init_n = 0  # the number of the last init()'s collective
_broken = None  # the message of a failed wait: the group cannot be used any more
_hosts = None  # each rank's processor name (for the local rank and size)
_left = {}  # rank -> (collectives it completed, how it left)
_waiting = {}  # rank -> the collective it announced it has been waiting in
_gave_up = {}  # rank -> (collective, its message)
_sends = []  # outstanding control sends
_atexit_registered = False
_aborting = False  # the exception hook is ending the job
_ddp_used = False  # a DistributedDataParallel was wrapped: failures suggest join()

_HEADER_BYTES = 1024
_TAG_LEFT, _TAG_WAITING, _TAG_GAVE_UP = 11, 12, 13

_INSTALL_HINT = "pip install 'tinyattn[distributed]' (mpi4py and the MPICH wheel, which brings mpiexec)"


class DistError(RuntimeError):
    """PyTorch's torch.distributed.DistError: an error of the distributed machinery."""


class DistBackendError(DistError):
    """PyTorch's torch.distributed.DistBackendError: a collective could not complete (a rank timed out,
    left the job, or another rank gave up). The process group cannot be used after it."""


class ReduceOp:
    """The reductions of all_reduce, by PyTorch's names (the strings work too)."""

    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"


_OPS = ("sum", "avg", "max", "min")


def init(numba_threads="auto", timeout=None):
    """Join the MPI job this process was started in (or a job of one, without mpiexec). Idempotent
    (a second call only sets a new timeout, if one is given).

    - timeout: how long any collective may wait for the other ranks, a datetime.timedelta or seconds;
      default 30 minutes (DEFAULT_TIMEOUT, PyTorch's default for gloo; long enough for a rank to
      save a checkpoint or compile kernels while the others wait). On expiry every waiting rank raises
      DistBackendError naming the collective, its number and the ranks that did not arrive, and the job
      ends. A rank that leaves (the end of its script, sys.exit(), destroy_process_group()) while others
      wait for it ends the job within moments, not at the timeout.
    - An uncaught exception on any rank then prints that rank's traceback and aborts the whole job
      (MPI_Abort), so the other ranks never wait in a collective.
    - numba_threads="auto": when several ranks share a machine, each gets an equal share of its cores
      for Numba's parallel kernels (1 thread each for 2 ranks on 2 cores), unless NUMBA_NUM_THREADS is
      set; like torchrun's OMP_NUM_THREADS=1. An int sets it; None leaves Numba alone.
    """
    global _comm, _MPI, _coll, _ctl, _previous_excepthook, _timeout, _atexit_registered, _hosts, _broken, _init_n
    seconds = _timeout_seconds(timeout, "init") if timeout is not None else None
    if _comm is not None:
        if seconds is not None:
            _timeout = seconds
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"tinyattn.distributed needs mpi4py: {_INSTALL_HINT}") from e
    _timeout = seconds if seconds is not None else DEFAULT_TIMEOUT.total_seconds()
    _MPI = MPI
    world = MPI.COMM_WORLD
    if _coll is None:  # a second init() after destroy_process_group() reuses them
        _coll, request = world.Idup()
        _wait_plain([request], "init (duplicating COMM_WORLD)")
        _ctl, request = world.Idup()
        _wait_plain([request], "init (duplicating COMM_WORLD)")
    _comm = world
    _broken = None
    _left.clear()
    _waiting.clear()
    _gave_up.clear()
    # every rank says it is here and on which machine (the local rank and size come from that)
    _init_n = _seq + 1  # notes of ranks that left before this collective are from an earlier group
    _hosts = [str(h) for h in _exchange("init", (), payload=MPI.Get_processor_name())]
    if not _atexit_registered:
        atexit.register(_at_exit)  # after mpi4py's import: runs before MPI_Finalize
        _atexit_registered = True
    if world.Get_size() > 1 and sys.excepthook is not _abort_on_exception:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception
    if numba_threads is not None:
        _set_numba_threads(numba_threads)


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, **kwargs):
    """PyTorch's name for init(). The backend is MPI: backend None, "mpi" or "gloo" (PyTorch's CPU
    backend, which MPI stands in for) are accepted. The job's size and ranks come from mpiexec;
    world_size and rank, when given, must agree with them. timeout: a datetime.timedelta (or seconds),
    default 30 minutes. numba_threads= is passed on to init()."""
    if backend is not None and (not isinstance(backend, str) or backend.lower() not in ("mpi", "gloo")):
        raise ValueError(f"init_process_group: backend {backend!r} is not available; tinyattn has 'mpi' "
                         "(mpi4py), which also answers to 'gloo'")
    unknown = set(kwargs) - {"numba_threads", "store", "group_name", "pg_options", "device_id"}
    if unknown:
        raise TypeError(f"init_process_group() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if timeout is not None:
        _timeout_seconds(timeout, "init_process_group")
    init(numba_threads=kwargs.get("numba_threads", "auto"), timeout=timeout)
    for name, given, actual in (("world_size", world_size, get_world_size()), ("rank", rank, get_rank())):
        if given is not None and given != -1 and given != actual:
            raise ValueError(f"init_process_group: {name}={given!r}, but mpiexec started this process as "
                             f"{name} {actual}")


def destroy_process_group(group=None):
    """Leave the process group: the other ranks are told (a rank still waiting for this one in a
    collective fails at once), collectives raise again, the exception hook is restored. MPI itself is
    finalised by mpi4py when the process exits."""
    global _comm, _previous_excepthook
    if _comm is None:
        return
    _announce_leaving("called destroy_process_group()")
    if _previous_excepthook is not None and sys.excepthook is _abort_on_exception:
        sys.excepthook = _previous_excepthook
    _previous_excepthook = None
    _comm = None


def is_available():
    """True when mpi4py can be imported (the `distributed` extra is installed)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_initialized():
    return _comm is not None


def get_rank(group=None):
    return _world().Get_rank()


def get_world_size(group=None):
    return _world().Get_size()


def get_backend(group=None):
    _world()
    return "mpi"


def get_local_size():
    """How many ranks of this job run on this machine (found once, by init())."""
    _world()
    return _hosts.count(_hosts[_comm.Get_rank()])


def get_local_rank():
    """This rank's position among the ranks on its machine (0 .. get_local_size() - 1)."""
    _world()
    me = _comm.Get_rank()
    return _hosts[:me].count(_hosts[me])


def get_timeout():
    """The process group's timeout, a datetime.timedelta (see init)."""
    return datetime.timedelta(seconds=_timeout)


def barrier(group=None, async_op=False, device_ids=None, timeout=None):
    """Wait until every rank has called barrier() (the header exchange alone is the barrier).
    timeout: this call's own limit (a timedelta or seconds), else the process group's."""
    _world()
    _no_group_or_async("barrier", group, async_op)
    _exchange("barrier", (), timeout=None if timeout is None else _timeout_seconds(timeout, "barrier"))


def monitored_barrier(group=None, timeout=None, wait_all_ranks=False):
    """barrier() with its own timeout (PyTorch's gloo-only helper); on expiry the error names the ranks
    that did not arrive (all of them: wait_all_ranks is accepted, the report is always complete)."""
    _world()
    _no_group_or_async("monitored_barrier", group, False)
    limit = None if timeout is None else _timeout_seconds(timeout, "monitored_barrier")
    _exchange("monitored_barrier", (), timeout=limit)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` over all ranks, in place: every rank ends with the sum, mean ("avg"), max or min.
    "avg" needs a floating-point tensor (the mean of integers is not an integer)."""
    _world()
    _no_group_or_async("all_reduce", group, async_op)
    op = _check_op(op)
    name = "all_reduce"
    _check_tensor(name, tensor)
    if op == "avg" and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='avg' needs a floating-point tensor, got dtype {tensor.dtype}; "
                        "use op='sum' and divide")
    _exchange(name, _tensor_spec(tensor, op), data=True, mismatch=_tensor_mismatch(name))
    host, back = _host_buffer(tensor)
    _data_phase(name, [_coll.Iallreduce(_MPI.IN_PLACE, host, op=_mpi_op("sum" if op == "avg" else op))])
    if op == "avg":
        host /= host.dtype.type(_comm.Get_size())
    back(host)


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """Copy rank `src`'s tensor into every other rank's tensor, in place."""
    comm = _world()
    _no_group_or_async("broadcast", group, async_op)
    _check_tensor("broadcast", tensor)
    if src is None:
        src = group_src if group_src is not None else 0
    if not isinstance(src, (int, np.integer)) or isinstance(src, bool) or not 0 <= src < comm.Get_size():
        raise ValueError(f"broadcast: src must be a rank in [0, {comm.Get_size()}), got {src!r}")
    _exchange("broadcast", _tensor_spec(tensor, int(src)), data=True, mismatch=_tensor_mismatch("broadcast"))
    host, back = _host_buffer(tensor)
    _data_phase("broadcast", [_coll.Ibcast(host, root=int(src))])
    back(host)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill tensor_list[r] with rank r's `tensor`, on every rank (PyTorch's signature): the list has
    world-size tensors of `tensor`'s shape and dtype, written in place."""
    comm = _world()
    _no_group_or_async("all_gather", group, async_op)
    _check_tensor("all_gather", tensor)
    world = comm.Get_size()
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != world:
        got = f"{len(tensor_list)} tensors" if isinstance(tensor_list, (list, tuple)) else type(tensor_list).__name__
        raise ValueError(f"all_gather: tensor_list must hold one tensor per rank ({world}), got {got}")
    for i, out in enumerate(tensor_list):
        _check_tensor(f"all_gather (tensor_list[{i}])", out)
        if out.shape != tensor.shape or out.dtype != tensor.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {tuple(out.shape)} and dtype {out.dtype}, "
                             f"the tensor {tuple(tensor.shape)} and {tensor.dtype}")
    _exchange("all_gather", _tensor_spec(tensor, None), data=True, mismatch=_tensor_mismatch("all_gather"))
    send = np.ascontiguousarray(move(tensor._array, "cpu"))
    gathered = np.empty((world,) + send.shape, dtype=send.dtype)
    _data_phase("all_gather", [_coll.Iallgather(send, gathered)])
    for out, value in zip(tensor_list, gathered):
        out._array[...] = move(value, device_of(out._array))
        out._bump_version()


# ---- rank-0 helpers ---------------------------------------------------------------------------------
def is_main_process():
    """True on rank 0, and in a process that never called init()."""
    return _comm is None or _comm.Get_rank() == 0


def print0(*args, **kwargs):
    """print() on rank 0 only (and flushed, so that mpiexec shows it at once)."""
    if is_main_process():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def save(obj, path):
    """tinyattn.save on rank 0 only, then a barrier: when it returns on any rank, the file is complete
    (the write itself is atomic, see tinyattn.save). Every rank must call it."""
    from ..serialization import save as _save

    error = None
    if is_main_process():
        try:
            _save(obj, path)
        except Exception as e:  # noqa: BLE001  (re-raised below, after the other ranks have been told)
            error = e
    if _comm is not None and _comm.Get_size() > 1:
        # the barrier, carrying rank 0's outcome
        outcomes = _exchange("save", (), payload=error is not None)
        if outcomes[0] and error is None:
            raise RuntimeError(f"distributed.save: rank 0 could not write {os.fspath(path)!r} (see its traceback)")
    if error is not None:
        raise error


# ---- the two phases of a collective -----------------------------------------------------------------
def _exchange(kind, spec, payload=None, data=False, info=None, timeout=None, mismatch=None):
    """Phase 1 of collective #n (n = this process's next number): every rank's header, gathered.

    kind and spec must be equal on every rank (else every rank raises the same error: `mismatch`,
    called with the headers when the kinds agree, or a RuntimeError listing what each rank called);
    info is shown in messages only; payload is anything picklable, returned as the list of every
    rank's. data=True: a data phase follows (the collective is completed by _data_phase)."""
    global _seq, _done
    _check_usable()
    _seq += 1
    n = _seq
    header = {"n": n, "kind": kind, "spec": spec, "info": info}
    blob = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    inline = pickle.dumps((header, blob, len(blob)), protocol=pickle.HIGHEST_PROTOCOL)
    if len(inline) > _HEADER_BYTES:  # the payload goes in a second exchange
        inline = pickle.dumps((header, None, len(blob)), protocol=pickle.HIGHEST_PROTOCOL)
        if len(inline) > _HEADER_BYTES:  # an absurdly long spec: compare its digest
            import hashlib

            digest = hashlib.sha256(repr((spec, info)).encode()).hexdigest()
            header = {"n": n, "kind": kind, "spec": digest, "info": repr(spec)[:200]}
            inline = pickle.dumps((header, None, len(blob)), protocol=pickle.HIGHEST_PROTOCOL)
    world = _coll.Get_size()
    send = np.zeros(_HEADER_BYTES, np.uint8)
    send[:len(inline)] = np.frombuffer(inline, np.uint8)
    received = np.empty((world, _HEADER_BYTES), np.uint8)
    what = _Describe(kind, n, spec, info)
    _wait([_coll.Iallgather(send, received)], what, timeout=timeout, spin=0.001)
    parts = [pickle.loads(row.tobytes()) for row in received]
    headers = [p[0] for p in parts]
    if any(p[1] is None for p in parts):  # some payload did not fit: gather them all
        sizes = np.array([p[2] for p in parts], np.int64)
        flat = np.empty(int(sizes.sum()), np.uint8)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        _wait([_coll.Iallgatherv(np.frombuffer(blob, np.uint8), [flat, (sizes, offsets), _MPI.BYTE])], what,
              timeout=timeout, spin=0.05)
        blobs = [flat[o:o + s].tobytes() for o, s in zip(offsets, sizes)]
    else:
        blobs = [p[1] for p in parts]
    if not data:
        _done = n
    kinds = [h["kind"] for h in headers]
    if len(set(kinds)) > 1:
        if data:
            _done = n
        raise DistError(_different_collectives(n, headers))
    if any(h["spec"] != header["spec"] for h in headers):
        if data:
            _done = n
        if mismatch is not None:
            mismatch(headers)
        listing = "; ".join(f"rank {r}: {_describe_header(h)}" for r, h in enumerate(headers))
        raise DistError(f"{kind}: the ranks disagree at collective #{n} ({listing})")
    return [pickle.loads(b) for b in blobs]


def _data_phase(kind, requests, info=None):
    """Phase 2: wait for the data requests of the current collective (all ranks are known to be in it)."""
    global _done
    _wait(requests, _Describe(kind, _seq, None, info), spin=0.2)
    _done = _seq


class _Describe:
    """What a rank is waiting in, for messages (built lazily: only an error needs the text)."""

    def __init__(self, kind, n, spec, info):
        self.kind, self.n, self.spec, self.info = kind, n, spec, info

    def __str__(self):
        return _describe_header({"n": self.n, "kind": self.kind, "spec": self.spec, "info": self.info})


def _describe_header(h):
    kind, spec, info = h["kind"], h["spec"], h["info"]
    text = _KIND_NAMES.get(kind, kind)
    if kind in ("all_reduce", "broadcast", "all_gather") and isinstance(spec, tuple) and len(spec) == 3:
        shape, dtype, extra = spec
        arg = {"all_reduce": f", op={extra!r}", "broadcast": f", src={extra}", "all_gather": ""}[kind]
        text += f" (shape {shape}, dtype {np.dtype(dtype)}{arg})"
    if info:
        text += f" ({info})"
    return f"{text}, collective #{h['n']}"


_KIND_NAMES = {
    "init": "init()", "barrier": "barrier()", "monitored_barrier": "monitored_barrier()",
    "save": "distributed.save()", "ddp_wrap": "DistributedDataParallel(...) at wrap time",
    "ddp_broadcast": "DistributedDataParallel(...)'s broadcast of rank 0's parameters and buffers",
    "ddp_grads": "DistributedDataParallel's gradient all-reduce",
    "ddp_final_sync_data": "DistributedDataParallel's join() final broadcast",
    "ddp_join": "DistributedDataParallel's join() count",
    "ddp_final_sync": "DistributedDataParallel's join() final model sync",
}


def _join_hint(kinds):
    if _ddp_used or any(str(k).startswith("ddp") for k in kinds):
        return (" If the ranks have different numbers of batches, run the training loop inside "
                "`with ddp_model.join():` (DistributedDataParallel.join), or give every rank the same number of "
                "steps (DistributedSampler pads every rank's share to the same length); if a rank skipped a "
                "backward or ran one alone inside no_sync(), every rank must run the same forwards and backwards.")
    return ""


def _different_collectives(n, headers):
    listing = "; ".join(f"rank {r}: {_describe_header(h)}" for r, h in enumerate(headers))
    return (f"tinyattn.distributed: the ranks called different collectives as their collective #{n}: {listing}. "
            "Every rank must call the same collectives in the same order." + _join_hint([h["kind"] for h in headers]))


def _wait(requests, what, timeout=None, spin=0.001):
    """Poll the requests until they complete, reading the control notes meanwhile. Spins for `spin`
    seconds, then sleeps between polls (50 us, doubling up to 1 ms, 10 ms after 2 s of waiting).
    Raises DistBackendError when a rank this one waits for left the job or gave up, or at the deadline."""
    MPI = _MPI
    if MPI.Request.Testall(requests):
        return
    limit = _timeout if timeout is None else timeout
    start = time.monotonic()
    deadline = start + limit
    announce_after = min(1.0, limit / 4)
    announced = False
    nap = 0.0
    n = what.n
    while True:
        if MPI.Request.Testall(requests):
            return
        _read_notes()
        # (a note older than this init() is from a destroy_process_group() before it: every rank got past that)
        late = [r for r, (completed, _) in _left.items() if _init_n <= completed < n]
        if late:
            _fail(_left_message(late, what))
        if _gave_up:
            r, (at, text) = next(iter(sorted(_gave_up.items())))
            _fail(f"tinyattn.distributed: rank {_comm_rank()} stops waiting in {what}: rank {r} gave up at its "
                  f"collective #{at}: {text}", tell_others=False)
        now = time.monotonic()
        if now >= deadline:
            _fail(_timeout_message(what, limit))
        waited = now - start
        if not announced and waited > announce_after:
            _tell_others(_TAG_WAITING, n)
            announced = True
        if waited > spin:
            nap = min(max(nap * 2, 5e-5), 0.001 if waited < 2.0 else 0.01, max(deadline - now, 0.0))
            time.sleep(nap)


def _wait_plain(requests, text):
    """init()'s waits before the control communicator exists: the deadline only."""
    deadline = time.monotonic() + _timeout
    while not _MPI.Request.Testall(requests):
        if time.monotonic() >= deadline:
            _fail(f"tinyattn.distributed: {text} timed out after {_timeout:g} s on rank {_MPI.COMM_WORLD.Get_rank()}: "
                  "some rank did not call init()", tell_others=False)
        time.sleep(0.001)


def _comm_rank():
    return _MPI.COMM_WORLD.Get_rank()


def _left_message(late, what):
    me = _comm_rank()
    parts = [f"rank {r} left the job ({_left[r][1]}) after its collective #{_left[r][0]}" for r in late]
    return (f"tinyattn.distributed: {'; '.join(parts)}, while rank {me} waits for it in {what}: the ranks ran "
            "different numbers of collectives." + _join_hint([what.kind]))


def _timeout_message(what, limit):
    me = _comm_rank()
    world = _comm.Get_size() if _comm is not None else _MPI.COMM_WORLD.Get_size()
    here = sorted([me] + [r for r, at in _waiting.items() if at == what.n])
    missing = [r for r in range(world) if r not in here]
    if missing:
        many = len(missing) > 1
        who = (f"rank{'s' if many else ''} {', '.join(map(str, missing))} did not arrive (the last collective "
               f"{'they' if many else 'it'} reached is #{what.n - 1}; busy outside tinyattn's collectives, stuck, or "
               "stopped)")
        if len(here) > 1:
            who += f"; ranks {', '.join(map(str, here))} are waiting in it"
    else:
        who = "every rank arrived, but the collective did not complete"
    return (f"tinyattn.distributed: rank {me} timed out after {limit:g} s in {what}: {who}. The timeout is "
            "init(timeout=...) / init_process_group(timeout=...)." + _join_hint([what.kind]))


def _fail(text, tell_others=True):
    """A wait failed: tell the other ranks (so that they print why too), mark the group broken, raise."""
    global _broken
    if tell_others and _ctl is not None and _comm is not None:
        _tell_others(_TAG_GAVE_UP, (_seq, text))
    _broken = text
    raise DistBackendError(text)


def _check_usable():
    if _broken is not None:
        raise DistBackendError(f"tinyattn.distributed: the process group is broken by an earlier failure: {_broken}")


def _tell_others(tag, message):
    me, world = _ctl.Get_rank(), _ctl.Get_size()
    for r in range(world):
        if r != me:
            _sends.append(_ctl.isend(message, dest=r, tag=tag))
    _sends[:] = [s for s in _sends if not s.Test()]


def _read_notes():
    status = _MPI.Status()
    while _ctl.iprobe(source=_MPI.ANY_SOURCE, tag=_MPI.ANY_TAG, status=status):
        source, tag = status.Get_source(), status.Get_tag()
        message = _ctl.recv(source=source, tag=tag)
        if tag == _TAG_LEFT:
            _left[source] = message
        elif tag == _TAG_WAITING:
            _waiting[source] = message
        elif tag == _TAG_GAVE_UP:
            _gave_up[source] = message


def _announce_leaving(how):
    """Tell every other rank that this one leaves after its collective #_done, and wait (briefly) for the
    notes to go out."""
    if _ctl is None or _MPI is None or _MPI.Is_finalized() or _ctl.Get_size() < 2:
        return
    _tell_others(_TAG_LEFT, (_done, how))
    deadline = time.monotonic() + 1.0
    while _sends and time.monotonic() < deadline:
        _sends[:] = [s for s in _sends if not s.Test()]
        if _sends:
            time.sleep(0.001)


def _at_exit():
    """atexit (before mpi4py's MPI_Finalize): tell the others this rank is leaving; if a collective of this
    process failed and the exception was caught, end the job non-zero anyway."""
    if _comm is None or _aborting:
        return
    if _broken is not None:
        sys.stderr.write(f"[tinyattn.distributed] rank {_comm_rank()} exits after a failed collective; aborting "
                         "the job\n")
        sys.stderr.flush()
        time.sleep(_ABORT_GRACE_SECONDS)
        _MPI.COMM_WORLD.Abort(1)
    _announce_leaving("its process exited: the end of its script or sys.exit()")


def _timeout_seconds(timeout, name):
    if isinstance(timeout, datetime.timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, numbers.Real) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise TypeError(f"{name}: timeout must be a datetime.timedelta or a number of seconds, got "
                        f"{type(timeout).__name__}")
    if not seconds > 0 or seconds != seconds:
        raise ValueError(f"{name}: timeout must be positive, got {timeout!r}")
    return seconds


def _no_group_or_async(name, group, async_op):
    if group is not None and getattr(group, "__name__", None) != "WORLD" and group != "WORLD":
        raise NotImplementedError(f"{name}: process subgroups are not supported; only the default group (group=None)")
    if async_op:
        raise NotImplementedError(f"{name}: async_op=True is not supported; tinyattn's collectives are synchronous")


# ---- internals --------------------------------------------------------------------------------------
def _world():
    if _comm is None:
        raise RuntimeError("tinyattn.distributed: the process group is not initialized; call "
                           "tinyattn.distributed.init() first (and start the script with mpiexec -n N python ...)")
    return _comm


def _set_numba_threads(numba_threads):
    import numba

    if numba_threads == "auto":
        if "NUMBA_NUM_THREADS" in os.environ:
            return
        local = get_local_size()
        if local <= 1:
            return
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        numba_threads = max(1, cores // local)
    numba.set_num_threads(min(int(numba_threads), numba.config.NUMBA_NUM_THREADS))


def _abort_on_exception(exc_type, exc, tb):
    """sys.excepthook on every rank of a multi-rank job: this rank's traceback, then MPI_Abort, which
    ends every rank (a rank blocked in a collective would otherwise wait forever)."""
    global _aborting
    _aborting = True
    rank = _comm_rank() if _MPI is not None else "?"
    try:
        sys.stdout.flush()
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"[tinyattn.distributed] rank {rank} raised an uncaught exception; aborting the job\n"
                         + "".join(f"[rank {rank}] {line}\n" for line in text.rstrip("\n").split("\n")))
        sys.stderr.flush()
        # mpiexec forwards our output through its own processes; an abort that reaches it first can cut the
        # traceback off (seen: about 1 run in 10 with pipes). A moment lets the forwarding catch up.
        time.sleep(_ABORT_GRACE_SECONDS)
    finally:
        if _MPI is not None:
            _MPI.COMM_WORLD.Abort(1)


def _check_op(op):
    key = op.lower() if isinstance(op, str) else op
    if key not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {list(_OPS)} (or ReduceOp.SUM/AVG/MAX/MIN), got {op!r}")
    return key


def _mpi_op(op):
    return {"sum": _MPI.SUM, "max": _MPI.MAX, "min": _MPI.MIN}[op]


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))


def _check_tensor(name, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a tinyattn Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in _DTYPES:
        raise TypeError(f"{name}: dtype {tensor.dtype} is not supported (float32, float64, int32, int64)")


def _tensor_spec(tensor, extra):
    return (tuple(tensor.shape), tensor.dtype.str, extra)


def _tensor_mismatch(name):
    def fail(headers):
        """Every rank must pass the same shape, dtype and arguments: a ValueError on every rank (the group
        stays usable: no data moved)."""
        listing = "; ".join(f"rank {r}: shape {h['spec'][0]}, dtype {np.dtype(h['spec'][1])}, arg {h['spec'][2]!r}"
                            for r, h in enumerate(headers))
        raise ValueError(f"{name}: ranks disagree on the tensor or the arguments at collective #{headers[0]['n']} "
                         f"({listing})")

    return fail


def _host_buffer(tensor):
    """A C-contiguous host array with the tensor's values, and a function that writes the result back
    into the tensor's own memory (a no-op when the buffer is that memory) and bumps its version."""
    data = tensor._array
    on_host = device_of(data) == "cpu"
    host = np.ascontiguousarray(data) if on_host else np.ascontiguousarray(move(data, "cpu"))
    if host.ndim == 0:
        host = host.reshape(1)  # MPI needs a buffer; a 0-d array is one element

    def back(result):
        if not (on_host and np.shares_memory(result, data)):
            data[...] = result.reshape(data.shape) if on_host else move(result.reshape(data.shape), "cuda")
        tensor._bump_version()

    return host, back
