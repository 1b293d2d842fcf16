"""The checkpoint format's constants and the words errors use (see the package docstring)."""
import os

import numpy as np


FORMAT, VERSION = "tinyattn.checkpoint", 2
STRUCTURE, OBJECT = "structure.json", "object.pkl"
_ALIGN = 64  # array data offsets in the file (NumPy pads .npy headers to 64 bytes as well)
_PAD_ID = 0x7461  # the id of the zip "extra" field that pads a local header to the alignment ("ta")
_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same object gives the same bytes
# what a tensor may hold, by NumPy type character (either byte order in a file; arrays come back native)
_DTYPES = {np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                  "uint64", "float16", "float32", "float64")}
_SCALAR_TYPES = {d.type for d in _DTYPES}
_MAX_DEPTH = 400  # containers in containers: deeper ones are pickled (and load would refuse them)


# ---- naming entries ---------------------------------------------------------------------------------------

def _entry(path):
    """['model']['wte.weight'] for the keys leading to a value; 'the top level' for the object itself."""
    return "".join(f"[{k!r}]" for k in path) if path else "the top level"


def _source_name(f):
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    name = getattr(f, "name", None)
    return name if isinstance(name, str) else f"<{type(f).__name__}>"


def _shown(member):
    return member[:-4] if member.endswith(".npy") else member


def _bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def _dtype_words(dtype):
    return {"c": "complex", "M": "datetime", "m": "timedelta", "V": "void/structured", "O": "Python objects",
            "U": "strings", "S": "bytes"}.get(dtype.kind, "not one of bool, int8-64, uint8-64, float16-64")


def _dtype_or_none(text):
    try:
        return np.dtype(text).newbyteorder("=")
    except (TypeError, ValueError):
        return None


def _short(x):
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."
