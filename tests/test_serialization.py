"""tinyattn.save / tinyattn.load: torch.save / torch.load's weights-only types without pickle, map_location,
weights_only, mmap, file objects, atomic saves and their temporaries, and files that are not what save wrote."""
import collections
import dataclasses
import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn


# ---- helpers ------------------------------------------------------------------------------------------------

def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def _npz_with(path, **arrays):
    np.savez(path, **arrays)
    return path


def _corrupted_checkpoint(folder):
    """A real checkpoint with a byte flipped inside the stored array data (zip CRC mismatch)."""
    path = os.path.join(folder, "corrupt.npz")
    ta.save({"w": ta.zeros(64)}, path)
    raw = bytearray(open(path, "rb").read())
    at = raw.index(b"\x00" * 64)  # inside the stored zeros
    raw[at + 10] ^= 0xFF
    return _write(path, bytes(raw))


def _truncated_checkpoint(folder):
    path = os.path.join(folder, "trunc.npz")
    ta.save({"w": ta.zeros(64)}, path)
    raw = open(path, "rb").read()
    return _write(path, raw[: len(raw) // 2])


def _rewrite(path, edit):
    """Rebuild the zip at `path` with edit(members: dict name -> bytes) applied (stored members)."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    edit(members)
    os.remove(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _structure(members):
    return json.loads(members["structure.json"])


def _set_structure(members, structure):
    members["structure.json"] = json.dumps(structure).encode()


def _checkpoint(folder, obj=None, name="c.pt"):
    path = os.path.join(folder, name)
    ta.save({"w": ta.arange(4).float(), "n": 3} if obj is None else obj, path)
    return path


def _huge_header(data):
    """The .npy bytes `data` with its header claiming shape (2**40,) float64 (8 TiB), same header length."""
    end = data.index(b"\n") + 1
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"
    old = data[10:end]
    return data[:10] + (header + " " * (len(old) - len(header) - 1) + "\n").encode() + data[end:]


def _claim_huge_member(path, member="arrays/0.npy"):
    """The zip at `path` with its central directory claiming ~4 GiB for `member` (beyond the file's end)."""
    raw = bytearray(open(path, "rb").read())
    at = raw.index(b"PK\x01\x02")
    while raw[at + 46: at + 46 + int.from_bytes(raw[at + 28: at + 30], "little")] != member.encode():
        at = raw.index(b"PK\x01\x02", at + 4)
    raw[at + 20: at + 28] = (0xFFFFFF00).to_bytes(4, "little") * 2
    return _write(path, bytes(raw))


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _skeleton(obj):
    """The structure of a checkpoint with tensors (torch's or tinyattn's) replaced by a description."""
    kind = type(obj).__name__
    if isinstance(obj, (np.ndarray, np.generic)):
        return (kind, obj.dtype.str, obj.shape, obj.tolist())
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, np.ndarray):
        dtype = str(obj.dtype).replace("torch.", "")
        return ("Parameter" if kind == "Parameter" else "Tensor", dtype, tuple(obj.shape), bool(obj.requires_grad))
    if isinstance(obj, (dict, collections.OrderedDict)):
        return (kind, [(k, _skeleton(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (kind, [_skeleton(v) for v in obj])
    return (kind, obj)


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.fc2 = nn.Linear(4, 2)
        self.scale = nn.Parameter(ta.ones(1))

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.norm(self.fc1(x)))) * self.scale


# (id, call, error, pattern): `call` gets a scratch folder; the pattern is searched in the message, and
# names the op and what is wrong with the input.
BAD = [
    # ---- save ----
    ("save-missing-folder", lambda d: ta.save({"a": 1}, os.path.join(d, "nope", "c.npz")), FileNotFoundError,
     r"save: folder .*nope.* does not exist"),
    ("save-to-folder", lambda d: ta.save({"a": 1}, d), IsADirectoryError, r"save: .* is a directory"),
    ("save-None-path", lambda d: ta.save({"a": 1}, None), TypeError, r"save: path must be a str or os.PathLike, got NoneType"),
    ("save-unpicklable", lambda d: ta.save({"w": ta.ones(2), "f": lambda x: x}, os.path.join(d, "c.pt")),
     pickle.PicklingError, r"save: cannot store the dict: it holds builtins.function at \['f'\].*pickling failed"),
    # ---- load ----
    ("load-missing", lambda d: ta.load(os.path.join(d, "missing.npz")), FileNotFoundError, r"missing\.npz"),
    ("load-empty", lambda d: ta.load(_write(os.path.join(d, "empty.npz"), b"")), ValueError,
     r"load: .*empty\.npz is not a tinyattn checkpoint: the file is empty"),
    ("load-truncated", lambda d: ta.load(_truncated_checkpoint(d)), ValueError,
     r"load: .*trunc\.npz is not a tinyattn checkpoint"),
    ("load-random-bytes", lambda d: ta.load(_write(os.path.join(d, "noise.npz"), bytes(range(256)) * 4)), ValueError,
     r"load: .*noise\.npz is not a tinyattn checkpoint"),
    ("load-npy", lambda d: ta.load(np.save(os.path.join(d, "a.npy"), np.zeros(3)) or os.path.join(d, "a.npy")),
     ValueError, r"load: .*a\.npy is not a tinyattn checkpoint"),
    ("load-foreign-npz", lambda d: ta.load(_npz_with(os.path.join(d, "plain.npz"), x=np.zeros(2))), ValueError,
     r"load: .*plain\.npz is not a tinyattn checkpoint \(entry 'x'\)"),
    ("load-pickled-entry", lambda d: ta.load(_npz_with(os.path.join(d, "obj.npz"), **{"w::array": np.array([1, None])})),
     ValueError, r"load: .*obj\.npz: entry 'w::array' .*"),
    ("load-corrupted", lambda d: ta.load(_corrupted_checkpoint(d)), ValueError, r"load: .*corrupt\.npz.*damaged"),
    ("load-None", lambda d: ta.load(None), TypeError, r"load: path must be a str or os.PathLike, got NoneType"),
    # ---- load: only what tinyattn wrote (no extra members, no dtypes or entries it never saves) ----
    ("load-extra-member", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.update({"notes.txt": b"hi"}))),
     ValueError, r"load: .*c\.pt: entry 'notes\.txt' is not part of a tinyattn checkpoint"),
    ("load-complex-array", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.update(
        {"arrays/0.npy": _npy(np.zeros(4, np.complex64))}))), ValueError,
     r"load: .*c\.pt: entry 'arrays/0' \(\['w'\]\) holds an array of dtype complex64 \(complex\)"),
    ("load-datetime-array", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.update(
        {"arrays/0.npy": _npy(np.zeros(4, "datetime64[s]"))}))), ValueError, r"entry 'arrays/0' .*datetime"),
    ("load-void-array", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.update(
        {"arrays/0.npy": _npy(np.zeros(4, "V4"))}))), ValueError, r"entry 'arrays/0' .*void"),
    ("load-object-array", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.update(
        {"arrays/0.npy": _npy(np.array([1, None, 2, 3], dtype=object))}))), ValueError,
     r"entry 'arrays/0' .*dtype object .*Python objects"),
    ("load-legacy-complex", lambda d: ta.load(_npz_with(os.path.join(d, "c.npz"), **{"w::tensor": np.zeros(2, complex)})),
     ValueError, r"load: .*c\.npz: entry 'w::tensor' holds an array of dtype complex128"),
    ("load-legacy-int-holding-float", lambda d: ta.load(_npz_with(os.path.join(d, "c.npz"), **{"n::int": np.array(2.7)})),
     ValueError, r"load: .*c\.npz: entry 'n::int' should hold an integer, but holds an array of dtype float64"),
    ("load-legacy-bool-holding-int", lambda d: ta.load(_npz_with(os.path.join(d, "c.npz"), **{"b::bool": np.array(5)})),
     ValueError, r"load: .*c\.npz: entry 'b::bool' should hold a bool, but holds an array of dtype int64"),
    ("load-legacy-int-array", lambda d: ta.load(_npz_with(os.path.join(d, "c.npz"), **{"n::int": np.arange(2)})),
     ValueError, r"entry 'n::int' should hold one int, got an array of shape \(2,\)"),
    ("load-int-holding-float", lambda d: ta.load(_rewrite(_checkpoint(d, {"t": ta.ones(2, requires_grad=True)}),
     lambda m: _set_structure(m, {**_structure(m), "root": {"dict": [["t", {"tensor": 0, "object": 2.7}]]}}))),
     ValueError, r"load: .*c\.pt: \['t'\]: tensor object number must be an int, got 2\.7"),
    ("load-bool-holding-int", lambda d: ta.load(_rewrite(_checkpoint(d, {"t": ta.ones(2)}),
     lambda m: _set_structure(m, {**_structure(m), "root": {"dict": [["t", {"tensor": 0, "object": 0,
                                                                                "requires_grad": 5}]]}}))),
     ValueError, r"load: .*c\.pt: \['t'\]: requires_grad must be true or false, got 5"),
    ("load-shape-holding-float", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: _set_structure(
        m, {**_structure(m), "arrays": [{**_structure(m)["arrays"][0], "shape": [2.7]}, *_structure(m)["arrays"][1:]]}))),
     ValueError, r"load: .*c\.pt: structure\.json: array 0 is described as"),
    ("load-huge-header", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.update(
        {"arrays/0.npy": _huge_header(m["arrays/0.npy"])}))), ValueError,
     r"load: .*c\.pt: entry 'arrays/0' \(\['w'\]\) claims shape \(1099511627776,\) of float64 = 8\.0 TiB, but the "
     r"entry holds 16 bytes"),
    ("load-legacy-huge-header", lambda d: ta.load(_rewrite(_npz_with(os.path.join(d, "c.npz"), **{"w::tensor": np.zeros(2)}),
     lambda m: m.update({"w::tensor.npy": _huge_header(m["w::tensor.npy"])}))), ValueError,
     r"load: .*c\.npz: entry 'w::tensor' claims shape \(1099511627776,\) of float64 = 8\.0 TiB"),
    ("load-huge-member", lambda d: ta.load(_claim_huge_member(_checkpoint(d))), ValueError,
     r"load: .*c\.pt: entry 'arrays/0' claims 4294967040 bytes, more than the file holds"),
    ("load-compressed", lambda d: ta.load(np.savez_compressed(os.path.join(d, "z.npz"), **{"w::tensor": np.zeros(2)})
                                         or os.path.join(d, "z.npz")), ValueError,
     r"load: .*z\.npz: entry 'w::tensor' is compressed"),
    ("load-unknown-node", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: _set_structure(
        m, {**_structure(m), "root": {"module": "os.system"}}))), ValueError, r"unknown node kind 'module'"),
    ("load-newer-version", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: _set_structure(
        m, {**_structure(m), "version": 3}))), ValueError, r"load: .*c\.pt: format version 3"),
    ("load-missing-member", lambda d: ta.load(_rewrite(_checkpoint(d), lambda m: m.pop("arrays/0.npy"))), ValueError,
     r"load: .*c\.pt: entry 'arrays/0' is missing"),
    # ---- arguments ----
    ("load-map_location-int", lambda d: ta.load(_checkpoint(d), map_location=3), TypeError,
     r"load: map_location must be None, a str, a device, a dict or a callable, got int"),
    ("load-map_location-bad-name", lambda d: ta.load(_checkpoint(d), map_location="tpu"), ValueError,
     r"load: map_location: device: expected 'cpu', 'cuda' or 'cuda:0', got 'tpu'"),
    ("load-map_location-returns-str", lambda d: ta.load(_checkpoint(d), map_location=lambda s, loc: "cpu"), TypeError,
     r"load: map_location returned str"),
    ("load-mmap-file-object", lambda d: ta.load(io.BytesIO(open(_checkpoint(d), "rb").read()), mmap=True), ValueError,
     r"load: f must be a file path in order to use the mmap argument"),
    ("load-pickle_module-weights_only", lambda d: ta.load(_checkpoint(d), pickle_module=pickle, weights_only=True),
     RuntimeError, r"load: cannot safely load weights when an explicit pickle_module is given"),
    ("load-unknown-kwarg", lambda d: ta.load(_checkpoint(d), colour="red"), TypeError, r"load\(\) got unexpected"),
]


@pytest.mark.parametrize("call, error, pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in BAD])
def test_bad_input_is_a_clear_error(call, error, pattern, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=pattern):
            call(str(tmp_path))


# ---- round trips --------------------------------------------------------------------------------------------

def test_save_load_roundtrip_without_pickle(tmp_path):
    """The member names are those of the new format."""
    m = TwoLayer()
    opt = ta.optim.Adam(m.parameters(), lr=0.01)
    m(ta.randn(3, 3)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.npz"
    ta.save({"model": m.state_dict(), "optim": opt.state_dict(), "step": 7, "note": "hi"}, path)
    ck = ta.load(path)
    assert ck["step"] == 7 and ck["note"] == "hi"
    assert isinstance(ck["model"]["fc1.weight"], ta.Tensor)
    np.testing.assert_array_equal(ck["model"]["fc1.weight"].numpy(), m.fc1.weight.numpy())
    state = ck["optim"]["state"]
    key = next(k for k in state if str(k) == "1")  # the optimiser's own key type (str or int), kept
    np.testing.assert_array_equal(np.asarray(state[key]["exp_avg"]), np.asarray(opt.state[m.fc1.weight]["exp_avg"]))
    with np.load(path, allow_pickle=False) as raw:  # a plain .npz that needs no pickle
        assert "structure.json" in raw.files and sum(f.startswith("arrays/") for f in raw.files) >= 7
        for f in raw.files:
            if f.startswith("arrays/"):
                assert raw[f].dtype.kind in "biuf"
    assert "object.pkl" not in zipfile.ZipFile(path).namelist()
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.object at \['bad'\]"):
        ta.save({"bad": object()}, tmp_path / "x.npz")
        ta.load(tmp_path / "x.npz")


def test_every_weights_only_type_round_trips_exactly(tmp_path):
    w = ta.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    obj = {
        "none": None, "true": True, "false": False, "int": 7, "big": 2**70, "neg": -3, "float": 2.5, "whole": 2.0,
        "nan": float("nan"), "inf": float("-inf"), "str": "héllo", "complex": 1 - 2j, "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"), "list": [1, [2.0, None]], "tuple": (0.9, 0.95), "empty": {}, "empty_list": [],
        "set": {1, "a"}, "odict": collections.OrderedDict([("b", 1), ("a", 2)]), "counter": collections.Counter("aab"),
        1: "int key", 2.5: "float key", None: "None key", False: "bool key", (1, "a"): "tuple key", "a/b::c": "odd key",
        "f32": w, "f64": ta.ones(2, dtype=ta.float64), "i64": ta.arange(3), "i32": ta.zeros(2, dtype=ta.int32),
        "bool": ta.tensor([True, False]), "f16": ta.tensor(np.ones(2, np.float16)), "zero_d": ta.tensor(1.5),
        "empty_t": ta.zeros(0, 3), "transposed": w.T, "strided": w[:, ::2], "grad": ta.ones(2, requires_grad=True),
        "param": nn.Parameter(ta.ones(2)), "frozen": nn.Parameter(ta.ones(2), requires_grad=False),
        "ndarray": np.arange(4, dtype=np.int16), "np_scalar": np.float32(0.1), "np_int": np.int64(3),
        "dtype": ta.float32, "device": ta.device("cpu"), "size": ta.ones(2, 3).shape,
    }
    ta.save(obj, tmp_path / "all.pt")
    back = ta.load(tmp_path / "all.pt")
    assert list(back) == list(obj)
    assert [type(k) for k in back] == [type(k) for k in obj]  # an int key stays an int, a bool key a bool
    for key, value in obj.items():
        got = back[key]
        assert type(got) is type(value), key
        if isinstance(value, ta.Tensor):
            assert got.dtype == value.dtype and got.shape == value.shape, key
            assert got.requires_grad == value.requires_grad and got.is_leaf, key
            np.testing.assert_array_equal(got.numpy(), value.detach().numpy())
        elif isinstance(value, np.ndarray):
            assert got.dtype == value.dtype
            np.testing.assert_array_equal(got, value)
        elif isinstance(value, float) and value != value:
            assert got != got
        else:
            assert got == value and repr(got) == repr(value), key
    assert type(back["np_scalar"]) is np.float32 and type(back["big"]) is int and type(back["whole"]) is float
    assert list(back["odict"]) == ["b", "a"] and type(back["tuple"]) is tuple
    assert back["transposed"].numpy().flags.f_contiguous  # the layout a transposed weight had (as torch keeps strides)


def test_same_tensor_and_tied_weights_come_back_shared(tmp_path):
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # nanoGPT's weight tying
    sd = collections.OrderedDict([("wte.weight", emb.weight.detach()), ("lm_head.weight", head.weight.detach())])
    t = ta.ones(2)
    ta.save({"sd": sd, "a": t, "b": t}, tmp_path / "tied.pt")
    with zipfile.ZipFile(tmp_path / "tied.pt") as zf:
        assert sorted(zf.namelist()) == ["arrays/0.npy", "arrays/1.npy", "structure.json"]  # stored once each
    back = ta.load(tmp_path / "tied.pt")
    assert back["a"] is back["b"]  # the same object, as with torch.load
    a, b = back["sd"]["wte.weight"], back["sd"]["lm_head.weight"]
    assert a is not b and np.shares_memory(a.numpy(), b.numpy())  # two tensors over one memory, as torch's
    np.testing.assert_array_equal(a.numpy(), emb.weight.numpy())


def test_paths_and_file_objects(tmp_path):
    class Where(os.PathLike):
        def __fspath__(self):
            return str(tmp_path / "like.pt")

    for target in (str(tmp_path / "s.pt"), tmp_path / "p.pt", Where()):
        ta.save({"x": ta.arange(3)}, target)
        np.testing.assert_array_equal(ta.load(target)["x"].numpy(), [0, 1, 2])
    buffer = io.BytesIO()
    ta.save([ta.ones(2), (1, None)], buffer)
    buffer.seek(0)
    back = ta.load(buffer)
    assert type(back) is list and back[1] == (1, None)
    with open(tmp_path / "f.pt", "wb") as f:
        ta.save({"k": 1}, f)
    with open(tmp_path / "f.pt", "rb") as f:
        assert ta.load(f) == {"k": 1}
    data = buffer.getvalue()
    unseekable = io.BufferedReader(io.BytesIO(data))
    unseekable.seekable = lambda: False
    assert ta.load(unseekable)[1] == (1, None)
    prefixed = io.BytesIO(b"header" + data)
    prefixed.seek(6)
    assert ta.load(prefixed)[1] == (1, None)


def test_zip64_members_stay_aligned_and_load(tmp_path, monkeypatch):
    """Members over 4 GiB get zip64 headers; a lowered limit makes small ones take that path too."""
    w = ta.randn(50)
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    ta.save({"w": w, "v": ta.ones(3)}, tmp_path / "z.pt")
    monkeypatch.undo()
    for mmap in (False, True):
        back = ta.load(tmp_path / "z.pt", mmap=mmap)
        np.testing.assert_array_equal(back["w"].numpy(), w.numpy())
        assert back["w"].numpy().ctypes.data % 64 == 0 or not mmap


def test_big_endian_data_comes_back_native(tmp_path):
    ta.save({"t": ta.tensor(np.arange(3, dtype=">f4")), "a": np.arange(2, dtype=">i8")}, tmp_path / "be.pt")
    back = ta.load(tmp_path / "be.pt")
    assert back["t"].dtype == np.float32 and back["t"].dtype.isnative and back["t"].tolist() == [0, 1, 2]
    assert back["a"].dtype == np.int64 and back["a"].tolist() == [0, 1]


def test_a_torch_file_is_named_as_such(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"load: .*t\.pt is not a tinyattn checkpoint: it looks like a file "
                                         r"written by torch\.save"):
        ta.load(tmp_path / "t.pt")


def test_save_writes_through_a_symlink(tmp_path):
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "ckpt.pt"
    ta.save({"w": ta.ones(2)}, real)
    link = tmp_path / "latest.pt"
    link.symlink_to(real)
    ta.save({"w": ta.zeros(2)}, link)
    assert link.is_symlink() and ta.load(real)["w"].tolist() == [0, 0]
    assert sorted(os.listdir(tmp_path / "runs")) == ["ckpt.pt"]


def test_deep_nesting_round_trips_or_is_pickled(tmp_path):
    deep = current = []
    for _ in range(300):
        current.append([])
        current = current[0]
    ta.save({"deep": deep}, tmp_path / "d.pt")
    back = ta.load(tmp_path / "d.pt")["deep"]
    for _ in range(300):
        back = back[0]
    assert back == []
    too_deep = current = []
    for _ in range(450):
        current.append([])
        current = current[0]
    ta.save(too_deep, tmp_path / "dd.pt")  # pickled; plain lists need no global, so weights_only loads it
    assert "object.pkl" in zipfile.ZipFile(tmp_path / "dd.pt").namelist()
    back = ta.load(tmp_path / "dd.pt")
    for _ in range(450):
        back = back[0]
    assert back == []


def test_mmap_maps_the_arrays_from_the_file(tmp_path):
    path = tmp_path / "m.pt"
    w = ta.randn(4, 8)
    ta.save({"w": w, "b": ta.zeros(0), "s": ta.tensor(3)}, path)
    back = ta.load(path, mmap=True)
    np.testing.assert_array_equal(back["w"].numpy(), w.numpy())
    base = back["w"].numpy()
    while not isinstance(base, np.memmap) and base.base is not None:
        base = base.base
    assert isinstance(base, np.memmap)
    assert back["w"].numpy().ctypes.data % 64 == 0  # aligned in the file
    back["w"][0, 0] = 100.0  # copy-on-write: the file keeps its values
    np.testing.assert_array_equal(ta.load(path)["w"].numpy(), w.numpy())
    assert back["s"].item() == 3 and back["b"].shape == (0,)


def test_save_load_of_a_nanogpt_checkpoint_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")

    def build(lib, module, parameter_groups):
        model = module.Sequential(module.Embedding(5, 4), module.LayerNorm(4), module.Linear(4, 5, bias=False))
        opt = lib.optim.AdamW(parameter_groups(model), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1)
        return model, opt

    groups = lambda m: [{"params": [p for p in m.parameters() if p.dim() >= 2], "weight_decay": 0.1},
                        {"params": [p for p in m.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    ckpts = {}
    for name, lib, module, save, load in (("torch", torch, torch.nn, torch.save, torch.load),
                                          ("ta", ta, nn, ta.save, ta.load)):
        lib.manual_seed(0)
        model, opt = build(lib, module, groups)
        loss = model(lib.tensor([[0, 1, 2]])).sum()
        loss.backward()
        opt.step()
        checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                      "model_args": dict(n_layer=1, n_head=1, n_embd=4, block_size=3, bias=False, vocab_size=5,
                                         dropout=0.0),
                      "iter_num": 7, "best_val_loss": lib.tensor(1.25),
                      "config": {"out_dir": "out", "eval_interval": 2000, "learning_rate": 6e-4, "decay_lr": True,
                                 "dtype": "float32", "compile": False}}
        path = tmp_path / f"{name}.pt"
        save(checkpoint, path)
        ckpts[name] = (checkpoint, load(path, map_location="cpu"))
    for name, (saved, loaded) in ckpts.items():
        assert _skeleton(loaded) == _skeleton(saved), name  # each library round-trips its own structure
    ta_model = ckpts["ta"][1]["model"]
    torch_model = ckpts["torch"][1]["model"]
    assert list(ta_model) == list(torch_model) and type(ta_model) is type(torch_model)
    for (name, a), b in zip(ta_model.items(), torch_model.values()):
        assert tuple(a.shape) == tuple(b.shape) and str(a.dtype) == str(b.dtype).replace("torch.", ""), name
    # the parts that do not depend on the optimiser's internals are the same on both sides
    for key in ("model_args", "iter_num", "config"):
        assert _skeleton(ckpts["ta"][1][key]) == _skeleton(ckpts["torch"][1][key])
    assert type(ckpts["ta"][1]["best_val_loss"]) is ta.Tensor and ckpts["ta"][1]["best_val_loss"].dim() == 0
    ta_groups = ckpts["ta"][1]["optimizer"]["param_groups"]
    if isinstance(ta_groups, list):  # PyTorch's layout (tinyattn's optimisers are moving to it)
        assert ta_groups[0]["betas"] == (0.9, 0.95) and type(ta_groups[0]["betas"]) is tuple
    # a state_dict saved by tinyattn loads into torch's model with equal values, and back
    tm = torch.nn.Linear(4, 3)
    path = tmp_path / "sd.pt"
    ta.save({k: ta.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()}, path)
    tm2 = torch.nn.Linear(4, 3)
    tm2.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ta.load(path).items()})
    for a, b in zip(tm.parameters(), tm2.parameters()):
        assert torch.equal(a, b)


def test_map_location_forms(tmp_path):
    path = _checkpoint(str(tmp_path), {"w": ta.ones(2), "p": nn.Parameter(ta.ones(2))})
    for where in ("cpu", ta.device("cpu"), {"cpu": "cpu"}, {"cuda:0": "cpu"}, None):
        back = ta.load(path, map_location=where)
        assert back["w"].device == "cpu" and type(back["p"]) is nn.Parameter and back["p"].requires_grad
    seen = []
    back = ta.load(path, map_location=lambda storage, loc: seen.append(loc) or storage)
    assert seen == ["cpu", "cpu"] and back["w"].device == "cpu"
    assert ta.load(path, map_location=lambda storage, loc: None)["w"].device == "cpu"


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    path = _checkpoint(str(tmp_path))
    monkeypatch.setattr(ta.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"load: attempting to deserialize a tensor on a CUDA device but "
                                           r"tinyattn\.cuda\.is_available\(\) is False.*map_location"):
        ta.load(path, map_location="cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        ta.load(path, map_location={"cpu": "cuda:0"})


@pytest.mark.skipif(not ta.cuda.is_available(), reason="no CUDA GPU and no numba-cuda simulator")
def test_cuda_tensors_come_back_where_they_were_or_where_mapped(tmp_path):
    """Runs under Numba's CUDA simulator without a GPU (tests/conftest.py); only copies, no kernels."""
    w = ta.arange(6).float().reshape(2, 3)
    path = tmp_path / "gpu.pt"
    ta.save({"gpu": w.cuda(), "cpu": ta.ones(1), "p": nn.Parameter(w).cuda()}, path)
    with zipfile.ZipFile(path) as zf:
        locations = [a["location"] for a in json.loads(zf.read("structure.json"))["arrays"]]
    assert sorted(locations) == ["cpu", "cuda:0", "cuda:0"]
    back = ta.load(path)
    assert back["gpu"].device == "cuda" and back["cpu"].device == "cpu"
    np.testing.assert_array_equal(back["gpu"].numpy(), w.numpy())
    assert ta.load(path, map_location="cpu")["gpu"].device == "cpu"
    assert ta.load(path, map_location={"cuda:0": "cpu"})["gpu"].device == "cpu"
    assert ta.load(path, map_location=lambda storage, loc: storage)["gpu"].device == "cpu"
    moved = ta.load(path, map_location=lambda storage, loc: storage.cuda())
    assert moved["cpu"].device == "cuda" and moved["gpu"].device == "cuda"
    assert ta.load(path, map_location=ta.device("cuda"))["cpu"].device == "cuda"


# ---- weights_only and pickled objects -------------------------------------------------------------------------

@dataclasses.dataclass
class RunConfig:
    lr: float = 1e-3
    layers: int = 2


def test_arbitrary_objects_need_weights_only_false(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = tmp_path / "model.pt"
    ta.save(model, path)
    with pytest.raises(pickle.UnpicklingError,
                       match=r"tinyattn\.nn\.containers\.Sequential at the top level.*weights_only=False.*trusted"):
        ta.load(path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        ta.load(path, weights_only=True)
    back = ta.load(path, weights_only=False)
    assert type(back) is nn.Sequential and type(back[0].weight) is nn.Parameter and back[0].weight.requires_grad
    x = ta.randn(2, 3)
    np.testing.assert_array_equal(back(x).detach().numpy(), model(x).detach().numpy())
    with zipfile.ZipFile(path) as zf:  # the weights are still plain .npy members
        assert sum(n.startswith("arrays/") for n in zf.namelist()) == 4 and "object.pkl" in zf.namelist()
    assert type(ta.load(path, pickle_module=pickle)) is nn.Sequential  # weights_only=None becomes False then

    ta.save({"cfg": RunConfig(), "w": ta.ones(2), "arr": np.array([1, None])}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"test_serialization\.RunConfig at \['cfg'\]; an object array"):
        ta.load(path)
    back = ta.load(path, weights_only=False)
    assert back["cfg"] == RunConfig() and back["arr"].dtype == object and type(back["w"]) is ta.Tensor

    torch = pytest.importorskip("torch")
    torch.save({"cfg": RunConfig()}, tmp_path / "torch.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # the same error type as torch's
        torch.load(tmp_path / "torch.pt")


def test_safe_globals_allow_a_class_under_weights_only(tmp_path):
    import argparse

    from tinyattn import serialization

    path = tmp_path / "args.pt"
    ta.save({"args": argparse.Namespace(lr=0.1, betas=(0.9, 0.95)), "w": ta.ones(2)}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"the global argparse\.Namespace is not allowed.*"
                                                     r"add_safe_globals\(\[argparse\.Namespace\]\)"):
        ta.load(path)
    with serialization.safe_globals([argparse.Namespace]):
        back = ta.load(path)
        assert serialization.get_safe_globals() == [argparse.Namespace]
    assert back["args"] == argparse.Namespace(lr=0.1, betas=(0.9, 0.95)) and type(back["w"]) is ta.Tensor
    assert serialization.get_safe_globals() == []
    with pytest.raises(pickle.UnpicklingError):  # the allowlist was only for the block
        ta.load(path)
    serialization.add_safe_globals([argparse.Namespace])
    try:
        assert ta.load(path)["args"].lr == 0.1
    finally:
        serialization.clear_safe_globals()


def test_a_whole_module_pickles():
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    back = pickle.loads(pickle.dumps(model))
    for a, b in zip(model.parameters(), back.parameters()):
        assert type(b) is nn.Parameter and b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_non_leaf_tensor_is_saved_as_a_leaf_that_requires_grad(tmp_path):
    x = ta.ones(2, requires_grad=True)
    ta.save({"y": x * 2}, tmp_path / "y.pt")
    y = ta.load(tmp_path / "y.pt")["y"]
    assert y.is_leaf and y.requires_grad  # as torch.load gives
    np.testing.assert_array_equal(y.detach().numpy(), [2, 2])


def test_legacy_checkpoints_still_load(tmp_path):
    path = _npz_with(str(tmp_path / "old.npz"), **{"model/fc.weight::tensor": np.ones((2, 2), np.float32),
                                                 "step::int": np.array(3, np.int64), "lr::float": np.array(0.5),
                                                 "flag::bool": np.array(True), "note::str": np.array("hi"),
                                                 "opt/state/0/m::array": np.zeros(2)})
    back = ta.load(path)
    assert back["step"] == 3 and type(back["step"]) is int and back["lr"] == 0.5 and back["flag"] is True
    assert back["note"] == "hi" and isinstance(back["model"]["fc.weight"], ta.Tensor)
    np.testing.assert_array_equal(back["opt"]["state"]["0"]["m"], np.zeros(2))


# ---- atomic saves and their temporaries -----------------------------------------------------------------------

def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    ta.save({"w": ta.ones(3)}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ta.save({"w": ta.zeros(3)}, path)
    np.testing.assert_array_equal(ta.load(path)["w"].numpy(), [1, 1, 1])  # the old checkpoint survives
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temp file left behind


def test_failed_save_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path):
    """Values that cannot be pickled make save fail before the file is replaced."""
    import threading

    path = tmp_path / "model.npz"
    ta.save({"w": ta.ones(3)}, path)
    before, mode = path.read_bytes(), stat.S_IMODE(os.stat(path).st_mode)
    for bad in ({"w": lambda: 0}, {"w": ta.ones(3), "x": threading.Lock()}, {"a": (i for i in range(2))}):
        with pytest.raises((TypeError, ValueError, pickle.PicklingError), match="save: "):
            ta.save(bad, path)
    assert path.read_bytes() == before
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    np.testing.assert_array_equal(ta.load(path)["w"].numpy(), np.ones(3))


def test_checkpoint_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        ta.save({"w": ta.ones(2)}, tmp_path / "a.npz")
        assert stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode) == 0o644
        os.umask(0o077)
        ta.save({"w": ta.ones(2)}, tmp_path / "b.npz")
        assert stat.S_IMODE(os.stat(tmp_path / "b.npz").st_mode) == 0o600
    finally:
        os.umask(old)


def test_overwriting_a_checkpoint_keeps_its_permissions(tmp_path):
    path = tmp_path / "a.npz"
    ta.save({"w": ta.ones(2)}, path)
    os.chmod(path, 0o640)
    ta.save({"w": ta.zeros(2)}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    np.testing.assert_array_equal(ta.load(path)["w"].numpy(), np.zeros(2))


def test_temporaries_are_named_and_stale_ones_removed(tmp_path, monkeypatch):
    from tinyattn.serialization._save import _host

    path = tmp_path / "ckpt.pt"
    names = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: names.append(os.path.basename(a)) or real_replace(a, b))
    ta.save({"w": ta.ones(2)}, path)
    host = _host()
    assert re.fullmatch(rf"\.ckpt\.pt\.tinyattn-tmp-{re.escape(host)}-{os.getpid()}-[0-9a-f]{{16}}", names[0])
    dead, live = _dead_pid(), os.getppid()
    temp = lambda target, who, pid, tag="0123456789abcdef": tmp_path / f".{target}.tinyattn-tmp-{who}-{pid}-{tag}"
    stale = temp("ckpt.pt", host, dead)  # a save killed mid-write on this host
    earlier = temp("ckpt.pt", host, os.getpid())  # an earlier process with our pid (a restarted container)
    running = temp("ckpt.pt", host, live)  # a live process's, unlocked and new: just created
    locked = temp("ckpt.pt", host, dead, "fedcba9876543210")  # a save in progress: its lock is held
    other_host = temp("ckpt.pt", "elsewhere", 1)  # another machine's, new
    abandoned = temp("ckpt.pt", "elsewhere", 2)  # another machine's, unlocked for two minutes
    other_target = temp("other.pt", host, dead)
    for p in (stale, earlier, running, locked, other_host, abandoned, other_target):
        p.write_bytes(b"partial")
    os.utime(abandoned, (os.path.getmtime(abandoned) - 120,) * 2)
    holder = os.open(locked, os.O_RDWR)
    try:
        import fcntl
        fcntl.flock(holder, fcntl.LOCK_EX)
        os.utime(locked, (os.path.getmtime(locked) - 120,) * 2)  # however old, a held lock keeps it
        ta.save({"w": ta.zeros(2)}, path)
    finally:
        os.close(holder)
    assert not stale.exists() and not earlier.exists() and not abandoned.exists()
    assert running.exists() and locked.exists() and other_host.exists() and other_target.exists()
    np.testing.assert_array_equal(ta.load(path)["w"].numpy(), [0, 0])


def test_damaged_bytes_give_a_value_error_or_the_data():
    """Random byte changes anywhere in a checkpoint: a ValueError naming the file, never another error."""
    import random

    buffer = io.BytesIO()
    ta.save({"model": collections.OrderedDict(w=ta.randn(3, 4)), "g": [{"betas": (0.9, 0.95), "x": None}]}, buffer)
    data, rng = buffer.getvalue(), random.Random(0)
    for _ in range(300):
        raw = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        raw = raw[: rng.randrange(len(raw))] if rng.random() < 0.2 else raw
        try:
            ta.load(io.BytesIO(bytes(raw)))
        except ValueError as e:
            assert str(e).startswith("load: <BytesIO>"), e


def test_failed_load_leaves_the_file_alone(tmp_path):
    path = _truncated_checkpoint(str(tmp_path))
    raw = open(path, "rb").read()
    with pytest.raises(ValueError, match="load: "):
        ta.load(path)
    assert open(path, "rb").read() == raw


def test_load_error_keeps_the_cause():
    """The wrapped error says what numpy or zipfile found."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(ValueError) as info:
            ta.load(_truncated_checkpoint(d))
    assert info.value.__cause__ is not None
    assert isinstance(info.value.__cause__, (zipfile.BadZipFile, EOFError, ValueError, OSError))
