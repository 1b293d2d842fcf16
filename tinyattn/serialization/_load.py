"""load: read and check what save wrote; the weights-only allowlist (add_safe_globals)."""
import base64
import collections
import io
import json
import math
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from ..backend import move
from ..cuda import device as Device
from ..size import Size
from ..tensor import Tensor
from ._format import (
    _bytes, _dtype_or_none, _dtype_words, _DTYPES, _entry, FORMAT, _MAX_DEPTH, OBJECT, _short, _shown,
    _source_name, STRUCTURE, VERSION,
)

_LOAD_KWARGS = {"encoding", "errors", "fix_imports", "buffers"}


# ---- load ---------------------------------------------------------------------------------------------------

class _Bad(ValueError):
    """A damaged or foreign checkpoint; load() adds the path."""


class _Refused(pickle.UnpicklingError):
    """weights_only=True met a global that is not allowlisted (its name is the argument)."""


def _target_device(map_location, location, cpu_tensor):
    """Where a tensor saved at `location` goes: "cpu", "cuda", or a Tensor the callable returned."""
    if map_location is None:
        target = location
    elif isinstance(map_location, (str, Device)):
        target = map_location
    elif isinstance(map_location, dict):
        target = map_location.get(location, location)
    elif callable(map_location):
        result = map_location(cpu_tensor, location)
        if result is None:
            target = location
        elif isinstance(result, Tensor):
            return result
        else:
            raise TypeError(f"load: map_location returned {type(result).__name__}; it must return a tensor "
                            "(e.g. the one it was given, or .cuda() of it) or None")
    else:
        raise TypeError(f"load: map_location must be None, a str, a device, a dict or a callable, "
                        f"got {type(map_location).__name__}")
    if isinstance(target, str) and not target:
        raise ValueError("load: map_location gives an empty device name")
    try:
        kind = Device(target).type
    except (TypeError, ValueError) as e:
        raise type(e)(f"load: map_location: {e}") from None
    if kind == "cuda":
        from ..cuda import is_available
        if not is_available():
            raise RuntimeError(
                "load: attempting to deserialize a tensor on a CUDA device but tinyattn.cuda.is_available() is "
                "False. If you are running on a CPU-only machine, use tinyattn.load with "
                "map_location=torch.device('cpu') (or 'cpu') to map the tensors to the CPU.")
    return kind


class _Reader:
    """Reads one archive: its .npy members, checked against the file, and the nodes of structure.json."""

    def __init__(self, name, raw, size, zf, map_location, mmap_path):
        self.name, self.raw, self.size, self.zf = name, raw, size, zf
        self.map_location, self.mmap_path = map_location, mmap_path
        self.infos = {}
        for info in zf.infolist():
            if info.filename in self.infos:
                raise _Bad(f"entry {_shown(info.filename)!r} appears twice")
            self.infos[info.filename] = info

    def member_bytes(self, member, limit):
        info = self._info(member)
        if info.file_size > limit:
            raise _Bad(f"entry {_shown(member)!r} is {info.file_size} bytes, more than a checkpoint's {limit}")
        with self._open(info) as fp:
            data = fp.read()
        return data

    def _open(self, info):
        try:
            return self.zf.open(info)
        except (ValueError, RuntimeError, NotImplementedError) as e:  # a bad offset, encryption, ...
            raise _Bad(f"entry {_shown(info.filename)!r} cannot be opened ({type(e).__name__}: {e}); the file "
                       "is damaged or was not written by tinyattn.save") from e

    def _info(self, member):
        info = self.infos.get(member)
        if info is None:
            raise _Bad(f"entry {_shown(member)!r} is missing")
        if info.flag_bits & 0x41:
            raise _Bad(f"entry {_shown(member)!r} is encrypted; tinyattn.save does not encrypt")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _Bad(f"entry {_shown(member)!r} is compressed; tinyattn.save stores members uncompressed")
        if (info.header_offset < 0 or info.header_offset + info.compress_size > self.size
                or info.file_size != info.compress_size):
            raise _Bad(f"entry {_shown(member)!r} claims {info.file_size} bytes, more than the file holds "
                       f"({self.size} bytes)")
        return info

    def array(self, member, where, kinds=None):
        """The array in .npy member `member`, its dtype one a tensor holds (or of a kind in `kinds`)."""
        info = self._info(member)
        label = f"entry {_shown(member)!r}" + (f" ({where})" if where else "")
        with self._open(info) as fp:
            try:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=10000)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=10000)
                else:
                    raise ValueError(f".npy format version {version} (tinyattn writes 1.0)")
            except (ValueError, TypeError, SyntaxError, EOFError, OSError) as e:
                raise _Bad(f"{label} is not a valid .npy array ({type(e).__name__}: {e})") from e
            if kinds is None and dtype.newbyteorder("=") not in _DTYPES:
                raise _Bad(f"{label} holds an array of dtype {dtype} ({_dtype_words(dtype)}), which "
                           "no tinyattn tensor holds")
            if kinds is not None and (dtype.kind not in kinds[0] or dtype.hasobject or dtype.fields is not None):
                raise _Bad(f"{label} should hold {kinds[1]}, but holds an array of dtype {dtype}")
            if any(type(n) is not int or n < 0 for n in shape):
                raise _Bad(f"{label} has an invalid shape {shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            header = fp.tell()
            if header + nbytes != info.file_size:
                raise _Bad(f"{label} claims shape {shape} of {dtype} = {_bytes(nbytes)}, but the entry holds "
                           f"{_bytes(max(info.file_size - header, 0))} of data; the file is damaged or was not "
                           "written by tinyattn.save")
            order = "F" if fortran else "C"
            if self.mmap_path is not None and nbytes:
                array = np.asarray(np.memmap(self.mmap_path, dtype=dtype, mode="c", shape=shape, order=order,
                                             offset=self._data_offset(info) + header))
                return array if dtype.isnative else array.astype(dtype.newbyteorder("="))
            try:
                flat = np.empty(math.prod(shape), dtype)
            except MemoryError as e:
                raise MemoryError(f"load: {self.name}: {label} needs {_bytes(nbytes)}, more memory than is "
                                  "free") from e
            view, done = memoryview(flat.view(np.uint8)), 0
            while done < nbytes:
                got = fp.readinto(view[done:])
                if not got:
                    raise _Bad(f"{label} ends after {done} of {nbytes} bytes of data")
                done += got
            if fp.read(1):  # also makes zipfile check the CRC
                raise _Bad(f"{label} has more data than its header says")
        array = flat.reshape(shape, order=order)
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))

    def _data_offset(self, info):
        self.raw.seek(info.header_offset)
        local = self.raw.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise _Bad(f"entry {_shown(info.filename)!r}: bad local header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        return info.header_offset + 30 + name_len + extra_len

    def tensor(self, array, location, requires_grad, parameter):
        cpu = Tensor._wrap(array)
        target = _target_device(self.map_location, location, cpu)
        if isinstance(target, Tensor):
            out = target
        else:
            out = cpu if target == "cpu" else Tensor._wrap(move(array, "cuda"))
        if parameter:
            from ..nn.parameter import Parameter

            p = Parameter(np.zeros(0, out.dtype), requires_grad=False)
            p._array = out._array
            p.requires_grad = requires_grad
            return p
        if requires_grad:
            out = Tensor._wrap(out._array, requires_grad=True)
        return out


class _Decoder:
    """Nodes of structure.json back to objects, every node checked for exactly the shape save() writes."""

    def __init__(self, reader, table):
        self.reader = reader
        self.table = table
        self.loaded = {}  # member index -> array
        self.objects = {}  # tensor object number -> tensor

    def array(self, index, where):
        if type(index) is not int or not 0 <= index < len(self.table):
            raise _Bad(f"{where}: array index {index!r} is not one of the {len(self.table)} stored arrays")
        if index not in self.loaded:
            entry = self.table[index]
            array = self.reader.array(entry["member"], where)
            if list(array.shape) != entry["shape"] or array.dtype.newbyteorder("=") != _dtype_or_none(entry["dtype"]):
                raise _Bad(f"entry {_shown(entry['member'])!r} ({where}) holds {array.dtype} {array.shape}, but "
                           f"structure.json says {entry['dtype']} {tuple(entry['shape'])}")
            self.loaded[index] = array
        return self.loaded[index]

    def tensor_from(self, index, number, requires_grad, parameter, where):
        for flag, name in ((requires_grad, "requires_grad"), (parameter, "parameter")):
            if type(flag) is not bool:
                raise _Bad(f"{where}: {name} must be true or false, got {flag!r}")
        if type(number) is not int:
            raise _Bad(f"{where}: tensor object number must be an int, got {number!r}")
        if number in self.objects:
            return self.objects[number]
        array = self.array(index, where)
        location = self.table[index]["location"]
        if requires_grad and array.dtype.kind != "f":
            raise _Bad(f"{where}: a tensor of dtype {array.dtype} cannot require grad")
        out = self.reader.tensor(array, location, requires_grad, parameter)
        self.objects[number] = out
        return out

    def decode(self, node, path=(), depth=0):
        if depth > 2 * _MAX_DEPTH + 4:  # a key and its value count as two levels
            raise _Bad(f"{_entry(path)}: nested more than {_MAX_DEPTH} levels deep")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is not dict or len(node) == 0:
            raise _Bad(f"{_entry(path)}: unexpected {type(node).__name__} node {_short(node)}")
        kind = next(iter(node))
        value = node[kind]
        where = _entry(path)
        if kind == "tensor":
            if not set(node) <= {"tensor", "object", "requires_grad", "parameter"} or "object" not in node:
                raise _Bad(f"{where}: a tensor node with keys {sorted(node)}")
            return self.tensor_from(value, node["object"], node.get("requires_grad", False),
                                    node.get("parameter", False), where)
        if len(node) != 1:
            raise _Bad(f"{where}: a {kind!r} node with keys {sorted(node)}")
        if kind in ("list", "tuple", "set", "dict", "OrderedDict", "Counter"):
            if type(value) is not list:
                raise _Bad(f"{where}: a {kind} node must hold a list, got {type(value).__name__}")
            if kind in ("list", "tuple"):
                items = [self.decode(v, path + (i,), depth + 1) for i, v in enumerate(value)]
                return items if kind == "list" else tuple(items)
            if kind == "set":
                return {self.key(v, path, depth + 1) for v in value}
            out = {"dict": dict, "OrderedDict": collections.OrderedDict, "Counter": collections.Counter}[kind]()
            for pair in value:
                if type(pair) is not list or len(pair) != 2:
                    raise _Bad(f"{where}: a {kind} item must be a [key, value] pair, got {_short(pair)}")
                key = self.key(pair[0], path, depth + 1)
                if key in out:
                    raise _Bad(f"{where}: key {key!r} appears twice")
                out[key] = self.decode(pair[1], path + (key,), depth + 1)
            return out
        if kind == "float":
            if value not in ("nan", "inf", "-inf"):
                raise _Bad(f"{where}: a float node must hold 'nan', 'inf' or '-inf', got {_short(value)}")
            return float(value)
        if kind == "complex":
            if type(value) is not list or len(value) != 2:
                raise _Bad(f"{where}: a complex node must hold [real, imag], got {_short(value)}")
            parts = [self.decode(v, path, depth + 1) for v in value]
            if any(type(p) is not float for p in parts):
                raise _Bad(f"{where}: a complex node must hold two floats, got {_short(value)}")
            return complex(*parts)
        if kind in ("bytes", "bytearray"):
            if type(value) is not str:
                raise _Bad(f"{where}: a {kind} node must hold base64 text")
            try:
                data = base64.b64decode(value.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as e:
                raise _Bad(f"{where}: a {kind} node holds invalid base64 ({e})") from e
            return data if kind == "bytes" else bytearray(data)
        if kind == "ndarray":
            return self.array(value, where)
        if kind == "numpy_scalar":
            array = self.array(value, where)
            if array.ndim != 0:
                raise _Bad(f"{where}: a numpy scalar must be 0-d, got shape {array.shape}")
            return array[()]
        if kind == "Size":
            if type(value) is not list or any(type(n) is not int for n in value):
                raise _Bad(f"{where}: a Size node must hold a list of ints, got {_short(value)}")
            return Size(value)
        if kind == "dtype":
            if type(value) is not str or value not in {d.name for d in _DTYPES}:
                raise _Bad(f"{where}: unknown dtype {_short(value)}")
            return np.dtype(value)
        if kind == "device":
            if value not in ("cpu", "cuda:0", "cuda"):
                raise _Bad(f"{where}: unknown device {_short(value)}")
            return Device(value)
        raise _Bad(f"{where}: unknown node kind {kind!r}")

    def key(self, node, path, depth):
        key = self.decode(node, path, depth)
        self._hashable(key, path)
        return key

    def _hashable(self, key, path):
        if key is not None and type(key) not in (bool, int, float, complex, str, bytes, tuple, Size):
            raise _Bad(f"{_entry(path)}: a key of type {type(key).__name__}")
        if type(key) in (tuple, Size):
            for k in key:
                self._hashable(k, path)


# ---- allowlisted globals (PyTorch's torch.serialization.add_safe_globals) ------------------------------------

_SAFE_GLOBALS = {}  # "module.qualname" -> the object that name gives, allowed under weights_only=True
_ALWAYS_SAFE = {"collections.OrderedDict": collections.OrderedDict, "collections.Counter": collections.Counter,
                "builtins.set": set, "builtins.complex": complex, "builtins.bytearray": bytearray,
                "_codecs.encode": __import__("codecs").encode}  # bytes in pickle protocol 2


def _global_name(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def add_safe_globals(safe_globals):
    """Allow these classes/functions in what weights_only=True loads (PyTorch's add_safe_globals).

    Each item is the object, or (object, "module.name") where pickle knows it by another name. Only
    objects from a trusted source belong here: loading calls them with the file's arguments.
    """
    for item in safe_globals:
        obj, name = item if isinstance(item, tuple) else (item, _global_name(item))
        if not isinstance(name, str):
            raise TypeError(f"add_safe_globals: a (object, name) pair needs a str name, got {type(name).__name__}")
        _SAFE_GLOBALS[name] = obj


def get_safe_globals():
    return list(_SAFE_GLOBALS.values())


def clear_safe_globals():
    _SAFE_GLOBALS.clear()


class safe_globals:
    """Context manager: add_safe_globals(globals) inside the block only."""

    def __init__(self, safe_globals):
        self.safe_globals = safe_globals

    def __enter__(self):
        self._saved = dict(_SAFE_GLOBALS)
        add_safe_globals(self.safe_globals)

    def __exit__(self, *exc):
        _SAFE_GLOBALS.clear()
        _SAFE_GLOBALS.update(self._saved)
        return False


class _Unpickler(pickle.Unpickler):
    """weights_only=False: any global; weights_only=True: only allowlisted ones (find_class refuses the rest)."""

    def __init__(self, file, decoder, restricted=False, **kwargs):
        super().__init__(file, **kwargs)
        self.decoder = decoder
        self.restricted = restricted

    def find_class(self, module, name):
        if not self.restricted:
            return super().find_class(module, name)
        key = f"{module}.{name}"
        found = _SAFE_GLOBALS.get(key, _ALWAYS_SAFE.get(key))
        if found is None:
            raise _Refused(key)
        return found

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != "tensor":
            raise pickle.UnpicklingError(f"unknown persistent id {_short(pid)}")
        _, index, number, requires_grad, parameter = pid
        return self.decoder.tensor_from(index, number, requires_grad, parameter, "object.pkl")


def _check_table(table, reader):
    if type(table) is not list:
        raise _Bad("structure.json: 'arrays' must be a list")
    for i, entry in enumerate(table):
        if (type(entry) is not dict or set(entry) != {"member", "location", "dtype", "shape"}
                or entry["member"] != f"arrays/{i}.npy" or entry["location"] not in ("cpu", "cuda:0")
                or type(entry["dtype"]) is not str or type(entry["shape"]) is not list
                or any(type(n) is not int or n < 0 for n in entry["shape"])):
            raise _Bad(f"structure.json: array {i} is described as {_short(entry)}")


def _load_v2(reader, weights_only, pickle_load_args):
    try:
        structure = json.loads(reader.member_bytes(STRUCTURE, 1 << 30).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Bad(f"entry 'structure.json' is not valid JSON ({type(e).__name__}: {e})") from e
    if type(structure) is not dict or structure.get("format") != FORMAT:
        raise _Bad("entry 'structure.json' does not describe a tinyattn checkpoint")
    if structure.get("version") != VERSION:
        raise _Bad(f"format version {structure.get('version')!r}: this tinyattn reads version {VERSION} "
                   "(a newer tinyattn wrote it?)")
    known = {"format", "version", "arrays", "root", "unsafe"}
    if not set(structure) <= known or not {"arrays", "root"} <= set(structure):
        raise _Bad(f"entry 'structure.json' has the keys {sorted(structure)}")
    table = structure["arrays"]
    _check_table(table, reader)
    root = structure["root"]
    pickled = root == {"pickle": OBJECT}
    expected = {STRUCTURE, *(e["member"] for e in table), *((OBJECT,) if pickled else ())}
    for member in reader.infos:
        if member not in expected:
            raise _Bad(f"entry {_shown(member)!r} is not part of a tinyattn checkpoint (a tinyattn checkpoint "
                       f"holds {STRUCTURE}, arrays/<i>.npy and, for pickled objects, {OBJECT})")
    for member in expected:
        reader._info(member)
    decoder = _Decoder(reader, table)
    if not pickled:
        return decoder.decode(root)
    data = reader.member_bytes(OBJECT, 1 << 40)
    try:
        return _Unpickler(io.BytesIO(data), decoder, restricted=weights_only, **pickle_load_args).load()
    except _Refused as e:
        refused = e.args[0]
    found = structure.get("unsafe")
    if (type(found) is list and found and all(type(x) is list and len(x) == 2
                                              and all(type(s) is str for s in x) for x in found)):
        what = "; ".join(f"{t} at {where}" for t, where in found[:5]) + ("; ..." if len(found) > 5 else "")
    else:
        what = "objects of other types"
    raise pickle.UnpicklingError(
        f"Weights only load failed: {reader.name} holds {what}, which tinyattn.save stored with pickle, and "
        f"the global {refused} is not allowed. weights_only=True (the default) loads only tensors, numbers, "
        "strings, None, dtypes, devices and lists, tuples, sets, dicts of them, and the globals allowed with "
        f"tinyattn.serialization.add_safe_globals([{refused}]) (or the safe_globals([...]) context manager) "
        "if you trust that class/function. Re-running tinyattn.load with weights_only=False will likely "
        "succeed, but it unpickles, which can run arbitrary code: do it only if you got the file from a "
        "trusted source.") from None


def _load_legacy(reader):
    """The earlier format: entries "a/b::kind" (tensor, array, int, float, bool, str) of a nested dict."""
    out = {}
    scalar = {"int": (("iu", "an integer"), int), "float": (("f", "a float"), float), "bool": (("b", "a bool"), bool),
              "str": (("U", "a string"), str)}
    for member in reader.infos:
        name = _shown(member)
        key, _, kind = name.rpartition("::")
        if not member.endswith(".npy") or not key or kind not in ("tensor", "array", *scalar):
            raise _Bad(f"is not a tinyattn checkpoint (entry {name!r}): its entries are {STRUCTURE} and "
                       ".npy arrays")
        if kind in scalar:
            kinds, convert = scalar[kind]
            array = reader.array(member, "", kinds=kinds)
            if array.ndim != 0:
                raise _Bad(f"entry {name!r} should hold one {kind}, got an array of shape {array.shape}")
            value = convert(array[()])
        else:
            array = reader.array(member, "")
            value = reader.tensor(array, "cpu", False, False) if kind == "tensor" else array
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise _Bad(f"entry {name!r} is inside {p!r}, which holds a value")
        if leaf in node:
            raise _Bad(f"entry {name!r} clashes with another entry of that name")
        node[leaf] = value
    return out


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """torch.load: read what save() wrote to `f` (a path, or a readable binary file object).

    map_location: None (each tensor to the device it was saved from), 'cpu'/'cuda'/a device (all tensors
    there), a dict {'cuda:0': 'cpu'} of saved location -> new location, or a callable(tensor, location)
    that gets each tensor on the CPU with its saved location ('cpu' or 'cuda:0') and returns a tensor, or
    None for the default. A tensor for 'cuda' without a GPU is a RuntimeError (use map_location='cpu').
    weights_only: True, or None as in PyTorch >= 2.6 (True unless `pickle_module` is given): only the
    weights-only types (see the module docstring) and the globals allowed with add_safe_globals.
    weights_only=False also loads what save() pickled (whole modules, custom classes) with pickle, which can
    run arbitrary code: unsafe for files you do not trust.
    mmap=True (f must be a path): arrays are memory-mapped copy-on-write from the file instead of read.
    pickle_load_args (encoding=, errors=, fix_imports=) go to the unpickler for weights_only=False.
    """
    if weights_only is None:
        weights_only = pickle_module is None
    if weights_only and pickle_module is not None:
        raise RuntimeError("load: cannot safely load weights when an explicit pickle_module is given; "
                           "pass weights_only=False to use it")
    unknown = sorted(set(pickle_load_args) - _LOAD_KWARGS)
    if unknown:
        raise TypeError(f"load() got unexpected keyword argument(s) {unknown}")
    if map_location is not None and not isinstance(map_location, (str, Device, dict)) and not callable(map_location):
        raise TypeError(f"load: map_location must be None, a str, a device, a dict or a callable, "
                        f"got {type(map_location).__name__}")
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        name = path
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise ValueError(f"load: {path} is not a tinyattn checkpoint: the file is empty")
        with open(path, "rb") as raw:  # FileNotFoundError, IsADirectoryError, PermissionError name the path
            return _load_from(raw, name, os.fstat(raw.fileno()).st_size, map_location,
                              path if mmap else None, weights_only, pickle_load_args)
    if not callable(getattr(f, "read", None)):
        raise TypeError(f"load: path must be a str or os.PathLike, got {type(f).__name__} "
                        "(or pass a readable binary file object such as io.BytesIO)")
    if mmap:
        raise ValueError("load: f must be a file path in order to use the mmap argument")
    name = _source_name(f)
    try:
        seekable = f.seekable()
    except (AttributeError, OSError):
        seekable = False
    if not seekable:
        f = io.BytesIO(f.read())
    start = f.tell()
    size = f.seek(0, io.SEEK_END)
    f.seek(start)
    if size == start:
        raise ValueError(f"load: {name} is not a tinyattn checkpoint: the file is empty")
    if start:  # zipfile finds members relative to the archive's end; offsets then need the start added
        f = io.BytesIO(f.read())
        size = len(f.getbuffer())
    return _load_from(f, name, size, map_location, None, weights_only, pickle_load_args)


def _load_from(raw, name, size, map_location, mmap_path, weights_only, pickle_load_args):
    head = raw.read(6)
    raw.seek(0)
    if head == b"\x93NUMPY":
        raise ValueError(f"load: {name} is not a tinyattn checkpoint: it holds a single array (.npy), "
                         "not an archive")
    try:
        zf = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error, NotImplementedError) as e:
        raise ValueError(f"load: {name} is not a tinyattn checkpoint: the file is truncated or not a zip "
                         f"archive ({type(e).__name__}: {e})") from e
    try:
        with zf:
            reader = _Reader(name, raw, size, zf, map_location, mmap_path)
            if STRUCTURE in reader.infos:
                return _load_v2(reader, weights_only, pickle_load_args)
            if any(n.endswith("/data.pkl") or n == "data.pkl" for n in reader.infos):
                raise _Bad("is not a tinyattn checkpoint: it looks like a file written by torch.save, which "
                           "tinyattn cannot read (it would need pickle); load it with torch.load and save "
                           "tensors converted with tinyattn.tensor(t.numpy()) through tinyattn.save")
            return _load_legacy(reader)
    except _Bad as e:
        text = str(e)
        sep = " " if text.startswith("is not") else ": "
        raise ValueError(f"load: {name}{sep}{text}") from e.__cause__
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, UnicodeDecodeError,
            NotImplementedError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"load: {name}: an entry cannot be read ({type(e).__name__}: {e}); the file is damaged "
                         "or was not written by tinyattn.save") from e
