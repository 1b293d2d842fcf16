"""The process group: one MPI job (mpi4py's COMM_WORLD) and the collectives over it.

mpi4py is imported by `init()`, not before, so `import tinyattn` and `import tinyattn.distributed`
work without it. Every rank runs the same script (`mpiexec -n 2 python train.py`); a collective is
called by all ranks in the same order, with tensors of the same shape and dtype.

Collectives work on CPU tensors in place. A cuda tensor goes through a host buffer: copied to the
host, reduced there, copied back (the MPICH wheel is not CUDA-aware, so nothing is passed to MPI as
device memory). Each one bumps the tensor's version counter, like any in-place op.
"""
import os
import sys
import time
import traceback

import numpy as np

from ..backend import device_of, move
from ..tensor import Tensor

_comm = None  # COMM_WORLD once init() ran
_MPI = None  # the mpi4py.MPI module once init() ran
_previous_excepthook = None
_ABORT_GRACE_SECONDS = 0.5

_INSTALL_HINT = "pip install 'tinyattn[distributed]' (mpi4py and the MPICH wheel, which brings mpiexec)"


class ReduceOp:
    """The reductions of all_reduce, by PyTorch's names (the strings work too)."""

    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"


_OPS = ("sum", "avg", "max", "min")


def init(numba_threads="auto"):
    """Join the MPI job this process was started in (or a job of one, without mpiexec). Idempotent.

    - An uncaught exception on any rank then prints that rank's traceback and aborts the whole job
      (MPI_Abort), so the other ranks never wait forever in a collective.
    - numba_threads="auto": when several ranks share a machine, each gets an equal share of its cores
      for Numba's parallel kernels (1 thread each for 2 ranks on 2 cores), unless NUMBA_NUM_THREADS is
      set; like torchrun's OMP_NUM_THREADS=1. An int sets it; None leaves Numba alone.
    """
    global _comm, _MPI, _previous_excepthook
    if _comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"tinyattn.distributed needs mpi4py: {_INSTALL_HINT}") from e
    _MPI, _comm = MPI, MPI.COMM_WORLD
    _local_comm()  # a collective: split off this machine's ranks now, while every rank is here
    if _comm.Get_size() > 1:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception
    if numba_threads is not None:
        _set_numba_threads(numba_threads)


def init_process_group(backend="mpi", **kwargs):
    """PyTorch's name for init(); the only backend is "mpi"."""
    if backend != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not available; tinyattn has 'mpi' (mpi4py)")
    init(**kwargs)


def destroy_process_group():
    """Leave the process group: collectives raise again, the exception hook is restored.
    MPI itself is finalised by mpi4py when the process exits."""
    global _comm, _previous_excepthook
    if _previous_excepthook is not None:
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


def get_rank():
    return _world().Get_rank()


def get_world_size():
    return _world().Get_size()


def get_local_size():
    """How many ranks of this job run on this machine (found once, by init())."""
    return _local_comm().Get_size()


def get_local_rank():
    """This rank's position among the ranks on its machine (0 .. get_local_size() - 1)."""
    return _local_comm().Get_rank()


def barrier():
    _world().Barrier()


def all_reduce(tensor, op=ReduceOp.SUM):
    """Reduce `tensor` over all ranks, in place: every rank ends with the sum, mean ("avg"), max or min.
    "avg" needs a floating-point tensor (the mean of integers is not an integer)."""
    comm = _world()
    op = _check_op(op)
    name = "all_reduce"
    _check_tensor(name, tensor)
    if op == "avg" and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='avg' needs a floating-point tensor, got dtype {tensor.dtype}; "
                        "use op='sum' and divide")
    _check_same_everywhere(name, tensor, op)
    host, back = _host_buffer(tensor)
    comm.Allreduce(_MPI.IN_PLACE, host, op=_mpi_op("sum" if op == "avg" else op))
    if op == "avg":
        host /= host.dtype.type(comm.Get_size())
    back(host)


def broadcast(tensor, src=0):
    """Copy rank `src`'s tensor into every other rank's tensor, in place."""
    comm = _world()
    _check_tensor("broadcast", tensor)
    if not isinstance(src, (int, np.integer)) or isinstance(src, bool) or not 0 <= src < comm.Get_size():
        raise ValueError(f"broadcast: src must be a rank in [0, {comm.Get_size()}), got {src!r}")
    _check_same_everywhere("broadcast", tensor, int(src))
    host, back = _host_buffer(tensor)
    comm.Bcast(host, root=int(src))
    back(host)


def all_gather(tensor_list, tensor):
    """Fill tensor_list[r] with rank r's `tensor`, on every rank (PyTorch's signature): the list has
    world-size tensors of `tensor`'s shape and dtype, written in place."""
    comm = _world()
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
    _check_same_everywhere("all_gather", tensor, None)
    send = np.ascontiguousarray(move(tensor._array, "cpu"))
    gathered = np.empty((world,) + send.shape, dtype=send.dtype)
    comm.Allgather(send, gathered)
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
        failed = _comm.allreduce(error is not None, op=_MPI.LOR)  # the barrier, carrying rank 0's outcome
        if failed and error is None:
            raise RuntimeError(f"distributed.save: rank 0 could not write {os.fspath(path)!r} (see its traceback)")
    if error is not None:
        raise error


# ---- internals --------------------------------------------------------------------------------------
def _world():
    if _comm is None:
        raise RuntimeError("tinyattn.distributed: the process group is not initialized; call "
                           "tinyattn.distributed.init() first (and start the script with mpiexec -n N python ...)")
    return _comm


_local = None


def _local_comm():
    global _local
    comm = _world()
    if _local is None or _local[0] is not comm:
        _local = (comm, comm.Split_type(_MPI.COMM_TYPE_SHARED))
    return _local[1]


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
    rank = _comm.Get_rank() if _comm is not None else "?"
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


def _check_same_everywhere(name, tensor, extra):
    """Every rank must pass the same shape, dtype and arguments: checked with one small allgather, so that
    a mismatch is a ValueError on every rank instead of a hang or silently mixed bytes."""
    mine = (tuple(tensor.shape), tensor.dtype.str, extra)
    everyone = _comm.allgather(mine)
    if any(other != mine for other in everyone):
        listing = "; ".join(f"rank {r}: shape {s}, dtype {np.dtype(d)}, arg {x!r}" for r, (s, d, x) in enumerate(everyone))
        raise ValueError(f"{name}: ranks disagree on the tensor or the arguments ({listing})")


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
