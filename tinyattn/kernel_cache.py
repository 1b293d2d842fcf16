"""Numba's on-disk cache of tinyattn's kernels, made to tolerate a disk that cannot be written or read.

Every tinyattn kernel is an ``@njit(cache=True)`` function. Numba saves a kernel's compiled code right
after compiling it (``Dispatcher.compile`` -> ``FunctionCache.save_overload`` -> ``IndexDataCacheFile``'s
``_save_index``/``_save_data``, in the folder its locator chose: NUMBA_CACHE_DIR, else ``__pycache__`` next to
the source, else the user's cache folder) and raises whatever the file system raised. So on a full disk
(``OSError: [Errno 28] No space left on device``), a read-only or unwritable folder, a quota, an I/O error,
every op whose kernel is not cached yet failed, softmax included, although the kernel had been compiled and
was ready in memory. Likewise an unreadable or truncated cache file failed the load, and a process in which
no cache folder at all was writable could not even ``import tinyattn`` (Numba's "cannot cache function ...:
no locator available", raised when the module defining a kernel is imported).

Here tinyattn's dispatchers get a cache that treats the disk as an optimisation only:

- a failed save (any error; the kernel is already compiled and added in memory) costs one
  ``KernelCacheWarning`` per process, naming the folder and the error; that folder is not written again by
  this process (no more failed writes, no more serialising kernels for nothing), and the next process
  compiles those kernels again;
- a failed load (unreadable, truncated or foreign file) is a cache miss: the kernel is compiled, one
  warning per process;
- no writable folder when a kernel module is imported: the cache folder Numba would have used is loaded
  from if it exists (NUMBA_CACHE_DIR's, else the ``__pycache__`` next to the source: a read-only install
  with its caches keeps its warm start; Numba alone would skip it), saves to it fail as above; with no such
  folder either, that kernel runs uncached (one warning).

Loading from a readable cache is otherwise Numba's own code, unchanged.

How: ``install()`` (run by ``import tinyattn`` before any kernel module is imported) replaces
``numba.core.dispatcher.Dispatcher.enable_caching``, the method ``@njit(cache=True)`` calls at decoration
time, by one that gives functions defined in tinyattn's own modules (``tinyattn.*``, which includes
``tinyattn.kernels.*``) a ``TolerantCache`` and leaves every other function's caching to Numba as it was:
a user's own ``@njit(cache=True)`` functions keep Numba's behaviour. New kernels need nothing: any
``njit(cache=True)`` in a tinyattn module gets it.
"""
import os
import threading
import warnings

from numba.core import caching, dispatcher

__all__ = [
    "failures", "install", "kernels_digest", "KernelCacheWarning", "TolerantCache", "uninstall", "write_failed",
]


class KernelCacheWarning(UserWarning):
    """Numba's on-disk cache of tinyattn's kernels could not be written or read: the kernels are compiled in
    memory and work; only the next process's start is slower."""


_lock = threading.Lock()
_warned = set()  # the kinds of failure ("write", "read", "open") already warned about in this process
_unwritable = set()  # cache folders a save failed in: not written again by this process
failures = []  # (kind, folder, exception) of every failure in this process, oldest first: for tests and reports

_ADVICE = ("free some space or make it writable, or point NUMBA_CACHE_DIR at a writable folder "
           "(set before tinyattn is imported)")


def _report(kind, folder, exc):
    with _lock:
        failures.append((kind, folder, exc))
        first = kind not in _warned
        _warned.add(kind)
    if not first:
        return
    where = folder or "the cache folders Numba tried"
    what = f"{type(exc).__name__}: {exc}"
    if kind == "write":
        msg = (f"tinyattn: Numba could not save a compiled kernel in its cache folder {where} ({what}). The kernels "
               f"are compiled in memory and work; this process will not write to that folder again, and the next "
               f"process will compile them again (a slower start). To cache them, {_ADVICE}.")
    elif kind == "read":
        msg = (f"tinyattn: Numba could not read a cached kernel in {where} ({what}); it is compiled again instead "
               f"(warned once per process).")
    else:
        msg = (f"tinyattn: no folder can hold Numba's cache of tinyattn's kernels ({what}); they are compiled in "
               f"memory in every process. To cache them, {_ADVICE}.")
    warnings.warn(msg, KernelCacheWarning, stacklevel=2)


def write_failed():
    """Whether a kernel could not be saved in this process (so a second process could not hand one over
    through the cache either: compile_ahead then starts none)."""
    return bool(_unwritable) or any(kind != "read" for kind, _, _ in failures)


class _TolerantIndex(caching.IndexDataCacheFile):
    """Numba's index of one function's cache entries; an unreadable index (truncated, foreign) reads as empty,
    as Numba reads an index from another Numba version, so the next save writes a fresh one over it."""

    def _load_index(self):
        try:
            return super()._load_index()
        except FileNotFoundError:
            return {}
        except Exception as exc:  # noqa: BLE001 (pickle's errors, EOFError, an OSError reading it)
            _report("read", self._cache_path, exc)
            return {}


class _ReadableUserProvidedLocator(caching.UserProvidedCacheLocator):
    """NUMBA_CACHE_DIR's folder for this source file when it exists but cannot be written: loaded from, not
    written to. Numba's own locators need a writable folder even to load, so a read-only cache folder (or an
    installed, read-only package with its caches) would be skipped for another, empty one, or for none."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not caching.config.CACHE_DIR or not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file)
        return self if os.path.isdir(self.get_cache_path()) else None


class _ReadableInTreeLocator(caching.InTreeCacheLocator):
    """The source file's __pycache__ when it exists but cannot be written (a read-only install): loaded from."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file)
        return self if os.path.isdir(self.get_cache_path()) else None


class _TolerantImpl(caching.CompileResultCacheImpl):
    # Numba's locators first (the first writable folder wins, as without tinyattn), then the read-only ones
    _locator_classes = [*caching.CompileResultCacheImpl._locator_classes, _ReadableUserProvidedLocator,
                        _ReadableInTreeLocator]


_digest = None


def kernels_digest(roots=None):
    """A digest of the sources of every module under tinyattn.kernels (their paths and contents), part of each
    kernel's cache stamp. Numba stamps a cached kernel with its own file only, but a kernel compiles in what it
    inlines from other files (the micro-kernels, policy's constants, the shared row functions): without this, an
    edited micro-kernel or threshold would leave every kernel that inlines it running its old cached code.
    With it, changing any kernel source recompiles the kernels once. `roots`: folders to digest (default: the
    kernels package's, computed once per process)."""
    global _digest
    if roots is None and _digest is not None:
        return _digest
    import hashlib
    import sys

    h = hashlib.sha256()
    for root in roots if roots is not None else sys.modules["tinyattn.kernels"].__path__:
        for folder, _, names in sorted(os.walk(root)):
            for name in sorted(n for n in names if n.endswith(".py")):
                path = os.path.join(folder, name)
                h.update(os.path.relpath(path, root).encode())
                try:
                    with open(path, "rb") as f:
                        h.update(f.read())
                except OSError:  # unreadable: its own kernels' stamps (Numba's) still cover it
                    h.update(b"?")
    digest = h.hexdigest()[:16]
    if roots is None:
        _digest = digest
    return digest


# Called as before_load(py_func, sig) just before a kernel is looked up in the on-disk cache (compile_ahead.py
# sets it when imported; it returns at once unless a second process holds kernels to compile).
before_load = None


class TolerantCache(caching.FunctionCache):
    """Numba's FunctionCache, where a failing disk costs a warning and a compile, never the call."""

    _impl_class = _TolerantImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        stamp = self._impl.locator.get_source_stamp()
        if (getattr(py_func, "__module__", None) or "").startswith("tinyattn.kernels."):
            stamp = (stamp, kernels_digest())
        self._cache_file = _TolerantIndex(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                          source_stamp=stamp)

    def load_overload(self, sig, target_context):
        if before_load is not None:  # compile_ahead: a second process may be compiling this very kernel
            before_load(self._py_func, sig)
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # noqa: BLE001 (an unreadable cache entry is a miss: the kernel compiles)
            _report("read", self._cache_path, exc)
            return None

    def save_overload(self, sig, data):
        if self._cache_path in _unwritable:
            return
        try:
            super().save_overload(sig, data)
        except Exception as exc:  # noqa: BLE001 (the kernel is compiled and in memory: the call goes on)
            if isinstance(exc, OSError):
                _unwritable.add(self._cache_path)
            _report("write", self._cache_path, exc)

    def flush(self):  # Dispatcher.recompile empties the index first
        try:
            super().flush()
        except OSError as exc:
            _unwritable.add(self._cache_path)
            _report("write", self._cache_path, exc)


def _ours(py_func):
    module = getattr(py_func, "__module__", None) or ""
    return module == "tinyattn" or module.startswith("tinyattn.")


_numba_enable_caching = dispatcher.Dispatcher.enable_caching


def _enable_caching(self):
    """Dispatcher.enable_caching, as installed: a TolerantCache for tinyattn's functions, Numba's otherwise."""
    if not _ours(getattr(self, "py_func", None)):
        return _numba_enable_caching(self)
    try:
        self._cache = TolerantCache(self.py_func)
    except Exception as exc:  # noqa: BLE001 (Numba's RuntimeError "no locator available", an OSError from stat)
        _report("open", None, exc)
        self._cache = caching.NullCache()


def install():
    """Give every ``@njit(cache=True)`` function defined from now on in a tinyattn module a TolerantCache
    (idempotent; ``import tinyattn`` runs it before importing any kernel)."""
    dispatcher.Dispatcher.enable_caching = _enable_caching


def uninstall():
    """Numba's own enable_caching again, for functions decorated from now on (tests)."""
    dispatcher.Dispatcher.enable_caching = _numba_enable_caching


install()
