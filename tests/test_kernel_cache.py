"""A Numba cache that cannot be written or read costs one warning and a compile, never a failed op
(tinyattn/kernel_cache.py)."""
import errno
import json
import os
import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest
from numba.core import caching

from tinyattn import kernel_cache
from compile_log import compile_recorder

# Runs in a fresh process on its own NUMBA_CACHE_DIR. With argv[1] == "full" the disk is full: opening any
# file under the cache folder for writing raises ENOSPC, as a full disk does (creating the folders and Numba's
# empty probe file still works, as on a real full disk). Prints which tinyattn kernels it compiled, how many
# KernelCacheWarnings it got, and whether softmax, exact gelu (twice: compiled once) and a matmul gave the right
# values.
SCRIPT = r"""
import builtins, errno, json, os, sys, warnings

cache = os.path.realpath(os.environ["NUMBA_CACHE_DIR"])
if sys.argv[1] == "full":
    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if (isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+")
                and os.path.realpath(os.fsdecode(file)).startswith(cache + os.sep)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(file))
        return real_open(file, mode, *args, **kwargs)

    builtins.open = full_disk_open

""" + compile_recorder('fn.__module__.startswith("tinyattn.")') + r"""
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import tinyattn as ta
    from math import erf
    import tinyattn.nn.functional as F

    a = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    x = ta.tensor(a)
    ok = {"softmax": bool(np.allclose(x.softmax(-1).numpy(), np.exp(a) / np.exp(a).sum(-1, keepdims=True)))}
    softmax_compiled = len(compiled)
    if sys.argv[1] == "full":
        want = a * (1 + np.vectorize(erf)(a / np.sqrt(2))) / 2
        ok["gelu"] = bool(np.allclose(F.gelu(x, approximate="none").numpy(), want))
        n = len(compiled)
        ok["gelu again"] = bool(np.allclose(F.gelu(x, approximate="none").numpy(), want)) and len(compiled) == n
        ok["matmul"] = bool(np.allclose((x @ x.T).numpy(), a @ a.T))
ours = [str(w.message) for w in caught if issubclass(w.category, ta.kernel_cache.KernelCacheWarning)]
print(json.dumps({"ok": ok, "compiled": compiled, "softmax_compiled": softmax_compiled, "warnings": ours,
                  "failures": [[k, e.errno] for k, _, e in ta.kernel_cache.failures]}))
"""


def run(cache_dir, mode):
    # (no compile-ahead child: the full disk is simulated in this process only, a child would write to it)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), TINYATTN_COMPILE_NOTICE="0", TINYATTN_COMPILE_AHEAD="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


@pytest.mark.background  # its own cache folder: its compiles are shared with no other test
def test_a_full_disk_costs_one_warning_and_cache_hits_still_load(tmp_path):
    # a normal cold start fills the cache with softmax's kernels
    cold = run(tmp_path, "normal")
    assert cold["ok"] == {"softmax": True} and cold["softmax_compiled"] > 0 and cold["warnings"] == [], cold
    before = files(tmp_path)
    assert any(f.endswith(".nbi") for f in before) and any(f.endswith(".nbc") for f in before), before
    # the disk is now full: softmax loads from the cache (nothing compiled, nothing to save), gelu and matmul
    # compile in memory, several kernels, their saves fail (a folder that failed is not tried again): one warning
    full = run(tmp_path, "full")
    assert all(full["ok"].values()) and set(full["ok"]) == {"softmax", "gelu", "gelu again", "matmul"}, full
    assert full["softmax_compiled"] == 0 and len(full["compiled"]) >= 2, full
    assert len(full["warnings"]) == 1, full
    assert full["failures"] and {tuple(f) for f in full["failures"]} == {("write", errno.ENOSPC)}, full
    assert "No space left on device" in full["warnings"][0] and "NUMBA_CACHE_DIR" in full["warnings"][0]
    assert files(tmp_path) == before  # nothing written, no temporary file left behind


# In-process checks on a tiny function that kernel_cache treats as tinyattn's (its module is set to one under
# tinyattn before it is decorated), cached in its own folder.
@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "_warned", set())
    monkeypatch.setattr(kernel_cache, "_unwritable", set())
    monkeypatch.setattr(kernel_cache, "failures", [])
    return tmp_path


def make(module="tinyattn._probe"):
    def plus_one(x):
        return x + 1.0

    plus_one.__module__ = module
    return numba.njit(cache=True)(plus_one)


def full_disk(monkeypatch):
    real_open = open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(caching, "open", full_disk_open, raising=False)  # shadows the builtin in Numba's module


def test_a_failed_save_warns_once_and_stops_writing_there(fresh, monkeypatch):
    full_disk(monkeypatch)
    first, second = make(), make()
    with pytest.warns(kernel_cache.KernelCacheWarning, match="No space left on device") as caught:
        assert first(1.0) == 2.0 and second(2.5) == 3.5 and first(np.float32(1)) == 2.0
    assert len([w for w in caught if w.category is kernel_cache.KernelCacheWarning]) == 1
    assert len(kernel_cache.failures) == 1 and kernel_cache.write_failed()  # the folder was not tried again
    assert files(fresh) == []


def test_other_functions_keep_numbas_behaviour(fresh, monkeypatch):
    full_disk(monkeypatch)
    theirs = make(module="someone_else")
    with pytest.raises(OSError, match="No space left"):
        theirs(1.0)
    assert kernel_cache.failures == []


def test_an_unreadable_cache_entry_is_compiled_again(fresh, monkeypatch):
    assert make()(1.0) == 2.0  # cached
    assert files(fresh)
    for name in files(fresh):  # truncate every cache file, as a disk error or a killed write could
        with open(os.path.join(fresh, name), "r+b") as f:
            f.truncate(5)
    again = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert again(1.0) == 2.0
    assert [w.category for w in caught] == [kernel_cache.KernelCacheWarning]
    assert "could not read" in str(caught[0].message)
    assert again.stats.cache_misses and not again.stats.cache_hits
    healed = make()  # the compile wrote a fresh index and entry over the broken ones
    assert healed(1.0) == 2.0 and healed.stats.cache_hits and not healed.stats.cache_misses


def unwritable_folders(monkeypatch):
    def unwritable(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), self.get_cache_path())

    monkeypatch.setattr(caching._CacheLocator, "ensure_cache_path", unwritable)


def test_no_writable_folder_costs_one_warning(fresh, monkeypatch):
    unwritable_folders(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe = make()  # Numba alone raises "cannot cache function ...: no locator available" here
        assert probe(1.0) == 2.0 and probe(2.0) == 3.0
    assert [w.category for w in caught] == [kernel_cache.KernelCacheWarning], [str(w.message) for w in caught]
    with pytest.raises(RuntimeError, match="no locator available"):
        make(module="someone_else")


def test_a_read_only_cache_folder_still_loads(fresh, monkeypatch):
    assert make()(1.0) == 2.0  # cached in NUMBA_CACHE_DIR
    unwritable_folders(monkeypatch)  # now every folder is read-only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe = make()
        assert probe(1.0) == 2.0
    assert probe.stats.cache_hits and not probe.stats.cache_misses
    assert probe.stats.cache_path.startswith(str(fresh))


def test_a_kernels_cache_stamp_covers_the_sources_it_inlines(tmp_path):
    # a kernel inlines code from other kernel modules (micro-kernels, policy's constants): its cache stamp
    # holds a digest of all of them, so editing any one recompiles it instead of loading stale code
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "policy.py").write_text("BLOCK = 64\n")
    (tmp_path / "cpu" / "notes.txt").write_text("not a source")
    before = kernel_cache.kernels_digest([str(tmp_path)])
    assert kernel_cache.kernels_digest([str(tmp_path)]) == before
    (tmp_path / "cpu" / "notes.txt").write_text("still not a source")
    assert kernel_cache.kernels_digest([str(tmp_path)]) == before
    (tmp_path / "cpu" / "policy.py").write_text("BLOCK = 32\n")
    assert kernel_cache.kernels_digest([str(tmp_path)]) != before

    from tinyattn.kernels.cpu import softmax

    stamp = kernel_cache.TolerantCache(softmax._row_max.py_func)._cache_file._source_stamp
    assert stamp[1] == kernel_cache.kernels_digest()
