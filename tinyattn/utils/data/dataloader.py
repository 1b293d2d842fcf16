"""DataLoader with PyTorch's signature, defaults, errors and iteration semantics (torch.utils.data.dataloader).

    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=2)
    for x, y in loader: ...

The index sampler (a BatchSampler over a Sequential/RandomSampler unless given) says which samples
make each batch; a fetcher reads them (dataset[i], or the next items of an IterableDataset) and
collate_fn (default_collate) stacks them. Each new iterator draws one int64 base seed from
`generator` (or the default generator), as PyTorch does, and with shuffle=True the order comes from
the same generator, so ta.manual_seed(s) or generator=ta.Generator().manual_seed(s) makes a loader
reproducible.

num_workers > 0 runs that in worker processes (`multiprocessing_context`, or Python's default start
method): batches are handed out round robin, prefetch_factor per worker ahead, and come back in the
sampler's order, the same batches as num_workers=0. Worker w seeds Python's random, tinyattn and
NumPy with base_seed + w; get_worker_info() inside it says which worker it is. An exception in a
worker is raised again in the main process ("Caught ValueError in DataLoader worker process 1 ...").
Workers end when the iterator is exhausted or dropped (persistent_workers=True keeps them across
epochs), and on their own when the main process dies.

pin_memory/pin_memory_device are accepted and do nothing: tinyattn's tensors live in host memory, and
copies to a GPU are made from it (PyTorch also skips pinning without an accelerator).
"""
import itertools
import math
import multiprocessing
import os
import pickle
import queue
import sys
import typing

from ...random import numpy_rng
from . import _utils  # noqa: F401  (torch.utils.data.dataloader._utils)
from ._utils.collate import default_collate, default_convert
from ._utils.fetch import create_fetcher
from ._utils.worker import (
    MP_STATUS_CHECK_INTERVAL, ExceptionWrapper, IterableDatasetStopIteration, ResumeIteration, worker_loop,
    get_worker_info,
)
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]


_POLL_INTERVAL = 1.0  # seconds between the main process's checks that its workers are alive


class DatasetKind:
    """Map-style or iterable dataset: for the library's own modules, not public API (not in __all__)."""
    Map = 0
    Iterable = 1


_DatasetKind = DatasetKind  # PyTorch's torch.utils.data.dataloader._DatasetKind


class _InfiniteConstantSampler(Sampler):
    """None forever: an IterableDataset's fetcher ignores the index and takes the next items."""

    def __iter__(self):
        while True:
            yield None


def _draw_base_seed(generator):
    """One int64 in [0, 2**63) from `generator` (None: the default one): PyTorch's base seed per iterator."""
    return int(numpy_rng(generator, "DataLoader").integers(0, 1 << 63))


_T_co = typing.TypeVar("_T_co", covariant=True)


class DataLoader(typing.Generic[_T_co]):
    """Batches from a dataset (PyTorch's torch.utils.data.DataLoader; see the module docstring).

    Args:
        dataset: a map-style Dataset (__getitem__, __len__) or an IterableDataset.
        batch_size: samples per batch (1); None turns batching off (each sample goes through
            default_convert, not default_collate).
        shuffle: a new random order each epoch (map-style datasets only).
        sampler / batch_sampler: the order of indices / of lists of indices, instead of shuffle and
            batch_size; mutually exclusive with those as in PyTorch.
        num_workers: worker processes (0: load in the main process).
        collate_fn: samples -> batch (default_collate, or default_convert when batch_size is None).
        pin_memory, pin_memory_device: accepted, no effect (see above).
        drop_last: drop the last, incomplete batch.
        timeout: seconds to wait for a worker's batch before RuntimeError (0: forever).
        worker_init_fn: called as worker_init_fn(worker_id) in each worker after seeding.
        multiprocessing_context: a start method name ('fork', 'spawn', 'forkserver') or a context.
        generator: the tinyattn.Generator for the base seed and RandomSampler's order.
        prefetch_factor: batches in flight per worker (2 when num_workers > 0).
        persistent_workers: keep the workers alive from one epoch to the next.
        in_order: accepted; batches always come in the sampler's order.
    """

    _initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if not isinstance(num_workers, int) or isinstance(num_workers, bool):
            raise TypeError(f"num_workers option should be an int, got {num_workers!r}")
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = DatasetKind.Iterable
            if shuffle not in {False, None}:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, but got "
                                 f"batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
            self._dataset_kind = DatasetKind.Map

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                                 "drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")

        if sampler is None:
            if self._dataset_kind == DatasetKind.Iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._iterator = None
        self._initialized = True

    # ---- attributes fixed after construction, and the start method ------------------------------------
    def __setattr__(self, attr, val):
        if self._initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
                                          "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after {self.__class__.__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def multiprocessing_context(self):
        return self._multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context):
        if context is not None:
            if self.num_workers > 0:
                if isinstance(context, str):
                    methods = multiprocessing.get_all_start_methods()
                    if context not in methods:
                        raise ValueError(f"multiprocessing_context option should specify a valid start method in "
                                         f"{methods!r}, but got multiprocessing_context={context!r}")
                    context = multiprocessing.get_context(context)
                if not isinstance(context, multiprocessing.context.BaseContext):
                    raise TypeError(f"multiprocessing_context option should be a valid context object or a string "
                                    f"specifying the start method, but got multiprocessing_context={context}")
            else:
                raise ValueError(f"multiprocessing_context can only be used with multi-process loading "
                                 f"(num_workers > 0), but got num_workers={self.num_workers}")
        self._multiprocessing_context = context

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    # ---- iteration -------------------------------------------------------------------------------------
    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        return _MultiProcessingDataLoaderIter(self)

    def __iter__(self):
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None:
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    def __len__(self):
        """Batches per epoch: len(batch_sampler), or for an IterableDataset len(dataset) / batch_size
        (rounded up, or down with drop_last); TypeError when the dataset has no len()."""
        return _length(self._dataset_kind, self.dataset, self.batch_size, self.drop_last, self._index_sampler)


def _length(kind, dataset, batch_size, drop_last, index_sampler):
    if kind == DatasetKind.Iterable:
        length = len(dataset)
        if batch_size is not None:
            length = length // batch_size if drop_last else math.ceil(length / batch_size)
        return length
    return len(index_sampler)


class _BaseDataLoaderIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._dataset_kind = loader._dataset_kind
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._persistent_workers = loader.persistent_workers
        self._base_seed = _draw_base_seed(loader.generator)
        self._len_args = (loader._dataset_kind, loader.dataset, loader.batch_size, loader.drop_last,
                          loader._index_sampler)  # (not the loader: persistent workers' loader holds this iterator)
        self._sampler_iter = None
        self._num_yielded = 0

    def __iter__(self):
        return self

    def _reset(self, loader, first_iter=False):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0

    def _next_index(self):
        return next(self._sampler_iter)

    def __next__(self):
        if self._sampler_iter is None:
            self._reset(None)
        data = self._next_data()
        self._num_yielded += 1
        return data

    def __len__(self):
        return _length(*self._len_args)


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._reset(loader, first_iter=True)
        self._fetcher = create_fetcher(self._dataset_kind, self._dataset, self._auto_collation, self._collate_fn,
                                       self._drop_last)

    def _next_data(self):
        index = self._next_index()  # may raise StopIteration
        return self._fetcher.fetch(index)  # may raise StopIteration (an IterableDataset's end)


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    """Workers fed round robin through one index queue each; results on one shared queue, put back in
    order by task number (map-style datasets give exactly the batches of num_workers=0)."""

    def __init__(self, loader):
        super().__init__(loader)
        self._shutdown = True  # until the workers exist (so __del__ after a failed start is harmless)
        self._owner_pid = os.getpid()  # a forked child that inherits this object must not shut its workers down
        context = loader.multiprocessing_context or multiprocessing
        self._start_method = context.get_start_method()
        self._worker_init_fn = loader.worker_init_fn
        self._worker_result_queue = context.Queue()
        self._workers_done_event = context.Event()
        self._index_queues, self._workers = [], []
        self._shutdown = False
        try:
            for worker_id in range(self._num_workers):
                index_queue = context.Queue()
                index_queue.cancel_join_thread()
                w = context.Process(
                    target=worker_loop,
                    args=(self._dataset_kind, self._dataset, index_queue, self._worker_result_queue,
                          self._workers_done_event, self._auto_collation, self._collate_fn, self._drop_last,
                          self._base_seed, self._worker_init_fn, worker_id, self._num_workers),
                    daemon=True,
                )
                w.start()
                self._index_queues.append(index_queue)
                self._workers.append(w)
        except BaseException:
            self._shutdown_workers()
            raise
        self._reset(loader, first_iter=True)

    def _reset(self, loader, first_iter=False):
        super()._reset(loader, first_iter)
        self._send_idx = 0  # the next task number to hand out
        self._rcvd_idx = 0  # the next task number to return
        self._task_info = {}  # task number -> (worker_id,) while pending, (worker_id, data) once back early
        self._tasks_outstanding = 0
        self._workers_status = [True] * self._num_workers
        self._worker_queue_idx_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:  # persistent workers: a new epoch
            for q in self._index_queues:
                q.put(ResumeIteration())
            resumed = 0
            while resumed < self._num_workers:
                marker, _ = self._get_data()
                if isinstance(marker, ResumeIteration):
                    resumed += 1
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    def _try_put_index(self):
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):  # the next worker that is still running
            worker_id = next(self._worker_queue_idx_cycle)
            if self._workers_status[worker_id]:
                break
        else:
            return  # no worker left (an IterableDataset exhausted everywhere)
        self._index_queues[worker_id].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_id,)
        self._tasks_outstanding += 1
        self._send_idx += 1

    def _try_get_data(self, timeout=_POLL_INTERVAL):
        try:
            payload = self._worker_result_queue.get(timeout=timeout)
            return True, pickle.loads(payload)
        except queue.Empty:
            failed = [w for i, w in enumerate(self._workers) if self._workers_status[i] and not w.is_alive()]
            if failed:
                pids = ", ".join(str(w.pid) for w in failed)
                self._shutdown_workers()
                hint = self._fork_hint()
                raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly{hint}") from None
            return False, None

    def _fork_hint(self):
        """Why a forked worker may have died: GNU OpenMP (Numba's 'omp' threading layer) ends a forked
        child that runs a parallel kernel after its parent did."""
        numba = sys.modules.get("numba")
        if self._start_method != "fork" or numba is None:
            return ""
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel kernel has run in this process
            return ""
        if layer != "omp":
            return ""
        return (" (this process ran parallel kernels with Numba's GNU OpenMP threading layer, which ends a "
                "forked worker that runs one too; use multiprocessing_context='spawn' or 'forkserver', or set "
                "NUMBA_THREADING_LAYER=workqueue (or tbb) before importing tinyattn)")

    def _get_data(self):
        if self._timeout > 0:
            success, data = self._try_get_data(self._timeout)
            if not success:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
            return data
        while True:
            success, data = self._try_get_data()
            if success:
                return data

    def _next_data(self):
        while True:
            # skip the tasks of workers that ended (an IterableDataset's stream ran out there)
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2 or self._workers_status[info[0]]:
                    break
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration

            if len(self._task_info[self._rcvd_idx]) == 2:  # it came back earlier, out of turn
                data = self._task_info.pop(self._rcvd_idx)[1]
                self._rcvd_idx += 1
                return self._process_data(data)

            idx, data = self._get_data()
            self._tasks_outstanding -= 1
            if isinstance(data, IterableDatasetStopIteration):
                if self._persistent_workers:
                    self._workers_status[data.worker_id] = False
                else:
                    self._mark_worker_as_unavailable(data.worker_id)
                self._try_put_index()
                continue
            if idx != self._rcvd_idx:
                self._task_info[idx] += (data,)
            else:
                del self._task_info[idx]
                self._rcvd_idx += 1
                return self._process_data(data)

    def _process_data(self, data):
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    def _mark_worker_as_unavailable(self, worker_id, shutdown=False):
        if self._workers_status[worker_id] or shutdown:
            self._index_queues[worker_id].put(None)
            self._workers_status[worker_id] = False

    def _shutdown_workers(self):
        if getattr(self, "_shutdown", True) or os.getpid() != self._owner_pid:
            return
        self._shutdown = True
        try:
            self._workers_done_event.set()
            for worker_id in range(len(self._workers)):
                if self._persistent_workers or self._workers_status[worker_id]:
                    self._mark_worker_as_unavailable(worker_id, shutdown=True)
            for w in self._workers:
                w.join(timeout=MP_STATUS_CHECK_INTERVAL)
                if w.is_alive():
                    w.terminate()
                    w.join()
            for q in self._index_queues:
                q.cancel_join_thread()
                q.close()
        finally:
            self._worker_result_queue.cancel_join_thread()
            self._worker_result_queue.close()

    def __del__(self):
        self._shutdown_workers()

