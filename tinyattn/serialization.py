"""save / load: checkpoints as .npz files that never run code when loaded.

A checkpoint is a (possibly nested) dict of tensors, arrays, numbers and strings. Nested
keys are joined with "/", and each stored name records the value's kind after "::", so
that load() returns the same structure: tensors come back as tensors, numbers as numbers.
Files are read with allow_pickle=False and written atomically: to a temporary file in the
same folder, flushed to disk, then renamed over the target, so that a crash mid-save leaves
the previous checkpoint intact. Everything is checked before the file is touched: a value
that load() could not read back (an object array needs pickle) is refused, and a failed
save leaves the old checkpoint and no temporary file. A new checkpoint gets the usual
permissions (0666 less the umask, as open() gives); an overwritten one keeps its own.
A file that is not a checkpoint (empty, truncated, damaged, random bytes, a plain .npy)
makes load() raise a ValueError naming the path, the cause chained.
"""
import io
import os
import stat
import tempfile
import zipfile
import zlib

import numpy as np

from .tensor import Tensor

_KINDS = ("tensor", "array", "int", "float", "bool", "str")


def _flatten(obj, prefix, out):
    for key, value in obj.items():
        if not isinstance(key, str):  # load could only give it back as a string (and {1: a, "1": b} would collide)
            raise TypeError(f"save: keys must be strings, got {type(key).__name__} {key!r}"
                            + (f" in {prefix!r}" if prefix else "") + f"; use {str(key)!r}")
        if "/" in key or "::" in key:
            raise ValueError(f"save: key {key!r} may not contain '/' or '::'")
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            if not value:
                raise ValueError(f"save: empty dict at {name!r} cannot be stored")
            _flatten(value, name, out)
        elif isinstance(value, Tensor):
            out[f"{name}::tensor"] = _no_pickle(name, value.numpy())  # a host copy for a tensor on the GPU
        elif isinstance(value, np.ndarray):
            out[f"{name}::array"] = _no_pickle(name, value)
        elif isinstance(value, (bool, np.bool_)):
            out[f"{name}::bool"] = np.asarray(value)
        elif isinstance(value, (int, np.integer)):
            out[f"{name}::int"] = np.asarray(value, dtype=np.int64)
        elif isinstance(value, (float, np.floating)):
            out[f"{name}::float"] = np.asarray(value, dtype=np.float64)
        elif isinstance(value, str):
            out[f"{name}::str"] = np.asarray(value)
        else:
            raise TypeError(f"save: cannot store {name!r} of type {type(value).__name__}")
    return out


def _no_pickle(name, array):
    if array.dtype.hasobject:
        raise TypeError(
            f"save: cannot store {name!r}: a numpy array of dtype {array.dtype} needs pickle, which load() refuses; "
            "store numbers, strings or numeric arrays"
        )
    return array


def _path(op, path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{op}: path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _umask():
    """The process's umask, read without changing it where Linux shows it (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(obj, path):
    """Write a dict of tensors/arrays/numbers/strings (nested dicts allowed) to `path` as .npz."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. a state_dict), got {type(obj).__name__}")
    path = _path("save", path)
    arrays = _flatten(obj, "", {})
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path} is a directory; give a file name such as {os.path.join(path, 'model.npz')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder} does not exist (saving {path})")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # overwriting: keep the file's permissions
    except FileNotFoundError:
        mode = 0o666 & ~_umask()  # a new file: what open(path, "wb") would give
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # mkstemp makes it 0600
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Read a checkpoint written by save(); never unpickles anything."""
    path = _path("load", path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"load: {path} is not a tinyattn checkpoint: the file is empty")
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise  # they name the path already
        raise ValueError(f"load: {path} is not a tinyattn checkpoint: {e}") from e
    except (EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"load: {path} is not a tinyattn checkpoint: the file is truncated or not an .npz "
                         f"archive ({type(e).__name__}: {e})") from e
    except ValueError as e:  # numpy found neither a zip nor an .npy header and refused to unpickle
        raise ValueError(f"load: {path} is not a tinyattn checkpoint: not an .npz archive ({e})") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"load: {path} is not a tinyattn checkpoint: it holds a single array (.npy), "
                         "not an .npz archive")
    out = {}
    with archive:
        for stored in archive.files:
            name, _, kind = stored.rpartition("::")
            if kind not in _KINDS:
                raise ValueError(f"load: {path} is not a tinyattn checkpoint (entry {stored!r})")
            try:
                value = archive[stored]
                if kind == "tensor":
                    value = Tensor._wrap(value)
                elif kind != "array":
                    value = {"int": int, "float": float, "bool": bool, "str": str}[kind](value[()])
                node = out
                *parents, leaf = name.split("/")
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = value
            except (ValueError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                # a CRC error, a pickled entry, a cut stream, a clash of names
                raise ValueError(
                    f"load: {path}: entry {stored!r} cannot be read ({type(e).__name__}: {e}); the file is damaged "
                    "or was not written by tinyattn.save"
                ) from e
    return out
