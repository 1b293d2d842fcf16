"""What runs inside a DataLoader worker process, and what it tells the main process.

A worker seeds itself as PyTorch's do: seed = base_seed + worker_id (base_seed drawn by the main
process from the loader's generator, once per iterator) for Python's `random`, tinyattn's default
generator and NumPy's legacy global generator (from a SeedSequence of both), then runs
worker_init_fn(worker_id) and answers tasks (idx, indices) from its index queue with (idx, batch) on
the shared result queue, pickled by the worker itself, so a result that cannot be pickled comes back
as an error instead of being lost. A task None ends it; so does the main process's death.
"""
import os
import pickle
import queue
import random
import sys
import traceback

import numpy as np

from .fetch import create_fetcher

MP_STATUS_CHECK_INTERVAL = 5.0  # seconds between liveness checks while waiting on a queue


class WorkerInfo:
    """What get_worker_info() returns inside a worker: id, num_workers, seed, dataset (read-only)."""

    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs)
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        return super().__setattr__(key, val)

    def __repr__(self):
        items = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__keys)
        return f"{self.__class__.__name__}({items})"


_worker_info = None


def get_worker_info():
    """In a DataLoader worker: its WorkerInfo (id, num_workers, seed, dataset: this worker's copy);
    in the main process: None. An IterableDataset uses it to give each worker its own share."""
    return _worker_info


class KeyErrorMessage(str):
    """A KeyError's message shown as it is (KeyError's str() would quote it)."""

    def __repr__(self):
        return self


class ExceptionWrapper:
    """An exception caught in a worker, carried to the main process (its type and formatted traceback)."""

    def __init__(self, exc_info=None, where="in background"):
        if exc_info is None:
            exc_info = sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where
        try:
            pickle.dumps(self.exc_type)
        except Exception:  # a class the main process could not find: carry its name only
            self.exc_msg = f"({self.exc_type.__module__}.{self.exc_type.__qualname__}) " + self.exc_msg
            self.exc_type = RuntimeError

    def reraise(self):
        """Raise the worker's exception in this process: same type, with the worker's traceback."""
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = KeyErrorMessage(msg)
        try:
            exception = self.exc_type(msg)
        except Exception:  # a type whose constructor wants other arguments
            raise RuntimeError(msg) from None
        try:
            raise exception
        finally:
            del exception  # (no frame -> exception -> traceback -> frame cycle keeping the iterator alive)


class IterableDatasetStopIteration:
    """A worker's iterator over an IterableDataset is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class ResumeIteration:
    """Persistent workers: start a new epoch (re-create the fetcher); the worker echoes it back."""


def _numpy_seed(base_seed, worker_id):
    return np.random.SeedSequence([worker_id, base_seed]).generate_state(4)


def _put(data_queue, idx, data, worker_id):
    try:
        payload = pickle.dumps((idx, data), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        wrapped = ExceptionWrapper(where=f"in DataLoader worker process {worker_id} (pickling its result)")
        payload = pickle.dumps((idx, wrapped), protocol=pickle.HIGHEST_PROTOCOL)
    data_queue.put(payload)


def worker_loop(dataset_kind, dataset, index_queue, data_queue, done_event, auto_collation, collate_fn, drop_last,
                base_seed, init_fn, worker_id, num_workers):
    global _worker_info
    from .... import random as ta_random
    parent = os.getppid()
    try:
        seed = base_seed + worker_id
        random.seed(seed)
        ta_random.manual_seed(seed)
        np.random.seed(_numpy_seed(base_seed, worker_id))
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)

        init_exception = None
        fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = create_fetcher(dataset_kind, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_exception = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")

        iteration_end = False
        while True:
            try:
                task = index_queue.get(timeout=MP_STATUS_CHECK_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent:  # the main process died: nobody will read our results
                    break
                continue
            if isinstance(task, ResumeIteration):
                data_queue.put(pickle.dumps((task, None)))
                iteration_end = False
                if init_exception is None:
                    try:
                        fetcher = create_fetcher(dataset_kind, dataset, auto_collation, collate_fn, drop_last)
                    except Exception:
                        init_exception = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
                continue
            if task is None:
                break
            if done_event.is_set() or iteration_end:
                continue  # shutting down, or nothing left to fetch: skip until the None
            idx, index = task
            if init_exception is not None:
                data, init_exception = init_exception, None
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as e:
                    if isinstance(e, StopIteration) and dataset_kind == 1:
                        data = IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
            _put(data_queue, idx, data, worker_id)
            del data
    except KeyboardInterrupt:
        pass  # the main process handles it
    if done_event.is_set():
        data_queue.cancel_join_thread()  # results nobody will read must not keep this process alive
        data_queue.close()
