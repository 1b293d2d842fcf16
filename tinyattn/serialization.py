"""save / load: checkpoints as .npz files that never run code when loaded.

A checkpoint is a (possibly nested) dict of tensors, arrays, numbers and strings. Nested
keys are joined with "/", and each stored name records the value's kind after "::", so
that load() returns the same structure: tensors come back as tensors, numbers as numbers.
Files are read with allow_pickle=False and written atomically: to a temporary file in the
same folder, flushed to disk, then renamed over the target, so that a crash mid-save leaves
the previous checkpoint intact.
"""
import io
import os
import tempfile

import numpy as np

from .tensor import Tensor

_KINDS = ("tensor", "array", "int", "float", "bool", "str")


def _flatten(obj, prefix, out):
    for key, value in obj.items():
        key = str(key)
        if "/" in key or "::" in key:
            raise ValueError(f"save: key {key!r} may not contain '/' or '::'")
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            if not value:
                raise ValueError(f"save: empty dict at {name!r} cannot be stored")
            _flatten(value, name, out)
        elif isinstance(value, Tensor):
            out[f"{name}::tensor"] = value.numpy()  # a host copy for a tensor on the GPU
        elif isinstance(value, np.ndarray):
            out[f"{name}::array"] = value
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


def save(obj, path):
    """Write a dict of tensors/arrays/numbers/strings (nested dicts allowed) to `path` as .npz."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. a state_dict), got {type(obj).__name__}")
    arrays = _flatten(obj, "", {})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
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
    out = {}
    with np.load(path, allow_pickle=False) as archive:
        for stored in archive.files:
            name, _, kind = stored.rpartition("::")
            if kind not in _KINDS:
                raise ValueError(f"load: {path} is not a tinyattn checkpoint (entry {stored!r})")
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
    return out
