"""save: encode an object to structure.json + .npy members (or a pickled part), write it atomically."""
import base64
import collections
import io
import json
import math
import os
import pickle
import re
import socket
import stat
import struct
import time
import zipfile

try:
    import fcntl
except ImportError:  # Windows: temporaries are judged by their writer's pid alone
    fcntl = None

import numpy as np

from ..backend import device_of, move
from ..cuda import device as Device
from ..size import Size
from ..tensor import Tensor
from ._format import (
    _ALIGN, _DATE, _DTYPES, _entry, FORMAT, _MAX_DEPTH, OBJECT, _PAD_ID, _SCALAR_TYPES, STRUCTURE, VERSION,
)

_STALE_AGE = 60.0  # seconds: an unlocked temporary older than this is abandoned, whoever wrote it
_WRITING = set()  # the temporaries this process is writing now


class _Unsupported(Exception):
    """An object the weights-only format cannot hold (raised inside the encoder, never to the user)."""


# ---- save ---------------------------------------------------------------------------------------------------

class _Encoder:
    """The JSON tree of an object and the arrays it references; raises _Unsupported on anything else
    (after recording every unsupported type it meets at the outermost level, for load's message)."""

    def __init__(self):
        self.arrays = []  # (array on the host, location) per member
        self.table = []  # their descriptions in structure.json
        self._by_memory = {}  # memory key -> member index (tied weights stored once)
        self._tensor_ids = {}  # id(tensor) -> object number (the same tensor object comes back once)
        self._keep = []  # the objects whose ids are used as keys, alive until the save ends
        self._active = set()  # ids of the containers being encoded (a cycle goes to the pickle path)
        self.unsupported = []  # (type name, entry)

    def encode(self, obj, path=()):
        if obj is None or type(obj) is str:
            return obj
        t = type(obj)
        if t is bool or t is int:
            return obj
        if t is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}  # nan, inf, -inf (JSON has none)
        if t is complex:
            return {"complex": [self.encode(obj.real), self.encode(obj.imag)]}
        if t is bytes or t is bytearray:
            return {t.__name__: base64.b64encode(bytes(obj)).decode("ascii")}
        if isinstance(obj, Tensor):
            return self._tensor(obj, path)
        if t is np.ndarray:
            return {"ndarray": self._array(obj, obj, "cpu", path)}
        if isinstance(obj, np.generic) and t in _SCALAR_TYPES:
            return {"numpy_scalar": self._array(np.asarray(obj), None, "cpu", path)}
        if isinstance(obj, np.dtype) and obj in _DTYPES:
            return {"dtype": obj.name}
        if t is Device:
            return {"device": str(obj)}
        if t is Size:
            return {"Size": list(obj)}
        if t in (list, tuple, set, dict, collections.OrderedDict, collections.Counter):
            if len(path) > _MAX_DEPTH:
                self._unsupported(f"containers nested more than {_MAX_DEPTH} deep", path)
            if id(obj) in self._active:
                self._unsupported(f"a {t.__name__} that contains itself", path)
            self._active.add(id(obj))
            items, failed = [], False
            try:  # every item, so that `unsupported` lists all the objects that need pickle
                pairs = (enumerate(obj) if t in (list, tuple) else ((None, v) for v in obj) if t is set
                         else obj.items())
                for k, v in pairs:
                    try:
                        if t in (list, tuple):
                            items.append(self.encode(v, path + (k,)))
                        elif t is set:
                            items.append(self._key(v, path))
                        else:
                            items.append([self._key(k, path), self.encode(v, path + (k,))])
                    except _Unsupported:
                        failed = True
            finally:
                self._active.discard(id(obj))
            if failed:
                raise _Unsupported
            return {t.__name__: items}
        self._unsupported(f"{t.__module__}.{t.__qualname__}", path)

    def _unsupported(self, what, path):
        self.unsupported.append((what, _entry(path)))
        raise _Unsupported

    def _key(self, key, path):
        t = type(key)
        if key is None or t in (bool, int, float, complex, str, bytes):
            return self.encode(key)
        if t is tuple:
            return {"tuple": [self._key(k, path) for k in key]}
        if t is Size:
            return {"Size": list(key)}
        self._unsupported(f"a key of type {t.__module__}.{t.__qualname__} ({key!r:.40})", path)

    def _tensor(self, t, path):
        from ..nn.parameter import Parameter

        kind = type(t)
        if kind is not Tensor and kind is not Parameter:
            self._unsupported(f"{kind.__module__}.{kind.__qualname__}", path)  # a subclass: pickled with its type
        number = self._tensor_ids.setdefault(id(t), len(self._tensor_ids))
        self._keep.append(t)
        location = "cuda:0" if device_of(t._array) == "cuda" else "cpu"
        node = {"tensor": self._array(t._array, t._array, location, path), "object": number}
        if t.requires_grad:  # a non-leaf comes back as a leaf that requires grad, as in PyTorch
            node["requires_grad"] = True
        if kind is Parameter:
            node["parameter"] = True
        return node

    def _array(self, array, share, location, path):
        """The member index for `array`; `share` (or None) is the array whose memory identifies repeats."""
        if location == "cpu" and array.dtype.newbyteorder("=") not in _DTYPES:
            what = "an object array (it needs pickle)" if array.dtype.hasobject else f"an array of dtype {array.dtype}"
            self._unsupported(what, path)
        key = None
        if share is not None:
            if isinstance(share, np.ndarray):
                if share.size:
                    key = (share.__array_interface__["data"][0], share.shape, share.strides, share.dtype.str)
            else:
                key = ("device", id(share))
                self._keep.append(share)
            if key is not None and key in self._by_memory:
                return self._by_memory[key]
        index = len(self.arrays)
        self.arrays.append((array, location))
        self.table.append({"member": f"arrays/{index}.npy", "location": location})
        if key is not None:
            self._by_memory[key] = index
        return index


class _Pickler(pickle.Pickler):
    """Pickles an object whose tensors go to .npy members (persistent ids), each tensor object once."""

    def __init__(self, file, protocol, encoder):
        super().__init__(file, protocol)
        self.encoder = encoder

    def persistent_id(self, obj):
        from ..nn.parameter import Parameter

        if type(obj) is Tensor or type(obj) is Parameter:
            try:
                node = self.encoder._tensor(obj, ())
            except _Unsupported:
                return None  # pickled as an object
            return ("tensor", node["tensor"], node["object"], bool(obj.requires_grad), type(obj) is Parameter)
        return None


def _npy_header(array):
    """(the .npy header bytes, the array as it is written: C order, or its transpose for Fortran order)."""
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)  # a strided view: its values
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    data = array if array.flags.c_contiguous else array.T
    return header.getvalue(), data


def _write_member(zf, name, parts, size):
    """A stored zip member from byte-like `parts`, its data starting at a multiple of _ALIGN in the file."""
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    info.external_attr = 0o644 << 16
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own test, made explicit
    start = zf.start_dir + 30 + len(name.encode("ascii")) + (20 if zip64 else 0)
    pad = -(start + 4) % _ALIGN
    info.extra = struct.pack("<HH", _PAD_ID, pad) + b"\x20" * pad
    with zf.open(info, "w", force_zip64=zip64) as out:
        for part in parts:
            if len(part):
                out.write(part)


def _write_archive(fileobj, encoder, structure, pickled):
    with zipfile.ZipFile(fileobj, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        body = json.dumps(structure, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
        _write_member(zf, STRUCTURE, [body], len(body))
        if pickled is not None:
            _write_member(zf, OBJECT, [pickled], len(pickled))
        for (array, location), entry in zip(encoder.arrays, encoder.table):
            host = move(array, "cpu") if location != "cpu" else array
            header, data = _npy_header(host)
            flat = data.reshape(-1).view(np.uint8) if data.size else b""
            _write_member(zf, entry["member"], [header, memoryview(flat) if data.size else b""],
                          len(header) + data.nbytes)


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


def _host():
    return re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname())[:40] or "host"


def _temp_prefix(path):
    return f".{os.path.basename(path)[:120]}.tinyattn-tmp-"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # PermissionError: someone else's process, alive
    return True


def _lock(fd):
    """Hold an advisory lock on a temporary while it is written: a lock outlives no process."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # a file system without locks: the pid in the name still protects it


def _remove_stale_temporaries(path):
    """Remove the temporaries of `path` that no save is writing any more; never one a live save holds.

    A save holds a lock on its temporary from just after creating it until it is renamed. One is stale
    when nobody holds its lock and either its writer (named in it) is a dead process on this host, or
    it is older than _STALE_AGE seconds (the writer then died on another host, or its pid was reused).
    Without locks (a file system that refuses them), only the first rule applies.
    """
    folder, prefix = os.path.dirname(os.path.abspath(path)), _temp_prefix(path)
    pattern = re.compile(re.escape(prefix) + r"(.*)-([0-9]+)-[0-9a-f]{16}")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    host, me = _host(), os.getpid()
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        full = os.path.join(folder, name)
        pid = int(match.group(2))
        if full in _WRITING:
            continue  # this process is writing it (another thread's save)
        dead_here = match.group(1) == host and (pid == me or not _alive(pid))  # our pid: an earlier process's
        try:
            fd = os.open(full, os.O_RDWR)
        except OSError:
            continue  # gone already, or not ours to touch
        try:
            locked = None  # unknown
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = False
                except BlockingIOError:
                    locked = True
                except OSError:
                    pass
            if locked:
                continue
            old = time.time() - os.fstat(fd).st_mtime > _STALE_AGE
            if dead_here or (locked is False and old):
                try:
                    os.remove(full)
                except OSError:
                    pass
        finally:
            os.close(fd)


def save(obj, f, pickle_module=pickle, pickle_protocol=2, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False):
    """torch.save: write `obj` to `f` (a path, or a writable binary file object such as io.BytesIO).

    A checkpoint of tensors, numbers, strings, None and the usual containers (nanoGPT's {'model':
    state_dict, 'optimizer': optimizer.state_dict(), 'model_args': ..., 'iter_num': ..., ...}) is stored
    without pickle. Any other object (a whole Module, a dataclass) is pickled with `pickle_module` and
    `pickle_protocol` (its tensors still as .npy members); loading it then needs load(..., weights_only=False).
    Everything is encoded before `f` is touched; a path is written atomically (see the module docstring).
    `_use_new_zipfile_serialization` and `_disable_byteorder_record` are accepted and ignored: there is one format.
    """
    path = None
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
    elif not callable(getattr(f, "write", None)):
        raise TypeError(f"save: path must be a str or os.PathLike, got {type(f).__name__} "
                        "(or pass a writable binary file object such as io.BytesIO)")
    encoder = _Encoder()
    pickled = None
    try:
        root = encoder.encode(obj)
    except _Unsupported:
        found = encoder.unsupported
        encoder = _Encoder()  # start again: the whole object is pickled, its tensors as members
        buffer = io.BytesIO()
        base = getattr(pickle_module, "Pickler", pickle.Pickler)
        try:  # persistent ids over pickle_module's own Pickler where it can be combined with ours
            pickler = _Pickler if base is pickle.Pickler else type("_CheckpointPickler", (_Pickler, base), {})
        except TypeError:
            pickler = _Pickler
        try:
            pickler(buffer, pickle_protocol, encoder).dump(obj)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as e:
            what = ", ".join(f"{t} at {where}" for t, where in found[:5]) or "objects"
            raise pickle.PicklingError(
                f"save: cannot store the {type(obj).__name__}: it holds {what}, which tinyattn stores with "
                f"pickle, and pickling failed ({type(e).__name__}: {e})") from e
        pickled = buffer.getvalue()
        root = {"pickle": OBJECT}
    structure = {"format": FORMAT, "version": VERSION, "arrays": encoder.table, "root": root}
    if pickled is not None:
        structure["unsafe"] = [[t, where] for t, where in found[:20]]
    for entry, (array, _) in zip(encoder.table, encoder.arrays):
        entry["dtype"], entry["shape"] = np.dtype(array.dtype).str, list(array.shape)
    if path is None:
        _write_archive(f, encoder, structure, pickled)
        return
    if os.path.islink(path):
        path = os.path.realpath(path)  # write through a symlink (as open() does), not over it
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path} is a directory; "
                                f"give a file name such as {os.path.join(path, 'model.pt')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder} does not exist (saving {path})")
    _remove_stale_temporaries(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # overwriting: keep the file's permissions
    except FileNotFoundError:
        mode = 0o666 & ~_umask()  # a new file: what open(path, "wb") would give
    tmp = os.path.join(folder, f"{_temp_prefix(path)}{_host()}-{os.getpid()}-{os.urandom(8).hex()}")
    _WRITING.add(tmp)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                _lock(out.fileno())  # held until the rename is done: no other save removes it
                os.fchmod(out.fileno(), mode)
                _write_archive(out, encoder, structure, pickled)
                out.flush()
                os.fsync(out.fileno())
                os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    finally:
        _WRITING.discard(tmp)
    try:  # the rename itself reaches the disk
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
