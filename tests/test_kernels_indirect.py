"""Work-item functions called through their address (kernels/cpu/indirect.py): the call passes every argument as
Numba passes it, a handle compiled for other argument types is refused, exceptions come through, handles are
memoised per argument types, and a kernel that calls through an address loads from the on-disk cache in a new
process and still calls the right function."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit, prange

from tinyattn.kernels.cpu.indirect import ITEM_INDEX, call_compiled, check_compiled, item_function, type_fingerprint
from compile_log import compile_recorder


@njit
def _scale_row(i, x, out, layout, factor):
    """out[i] = factor * x[i] + offset, from a tuple argument (flat, offset) as the attention kernels pass theirs."""
    flat, offset = layout
    for j in range(x.shape[1]):
        out[i, j] = factor * x[i, j] + offset + flat[0]
    if factor < 0:
        raise ValueError("negative factor")


@njit
def _serial(item, x, out, layout, factor):
    for i in range(x.shape[0]):
        call_compiled(item, (np.int64(i), x, out, layout, factor))


@njit(parallel=True)
def _parallel(item, x, out, layout, factor):
    check_compiled(item, (np.int64(0), x, out, layout, factor))  # (an exception inside the loop would be lost)
    for i in prange(x.shape[0]):
        call_compiled(item, (np.int64(i), x, out, layout, factor))


@njit
def _returns_a_value(i, x):
    return x[i]


def _arguments(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 5)).astype(dtype)
    return x, np.zeros_like(x), (np.full(1, 0.5, dtype), 2), dtype(3)


@pytest.mark.parametrize("kernel", [_serial, _parallel])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_kernel_calls_its_item_function_with_every_argument(kernel, dtype):
    x, out, layout, factor = _arguments(dtype)
    item = item_function(_scale_row, (ITEM_INDEX, x, out, layout, factor))
    kernel(item, x, out, layout, factor)
    np.testing.assert_array_equal(out, factor * x + 2 + dtype(0.5))


def test_handles_are_memoised_per_argument_types():
    x, out, layout, factor = _arguments()
    first = item_function(_scale_row, (ITEM_INDEX, x, out, layout, factor))
    assert item_function(_scale_row, (ITEM_INDEX, x + 1, out, layout, factor)) == first
    # other types (a read-only x, float64): another compiled version, another handle
    ro = x.copy()
    ro.flags.writeable = False
    assert item_function(_scale_row, (ITEM_INDEX, ro, out, layout, factor)) != first
    x64, out64, layout64, factor64 = _arguments(np.float64)
    assert item_function(_scale_row, (ITEM_INDEX, x64, out64, layout64, factor64))[1] != first[1]
    assert len(_scale_row.signatures) >= 3


@pytest.mark.parametrize("kernel", [_serial, _parallel])
def test_a_handle_for_other_argument_types_is_refused_not_called(kernel):
    x, out, layout, factor = _arguments()
    x64, out64, layout64, factor64 = _arguments(np.float64)
    wrong = item_function(_scale_row, (ITEM_INDEX, x64, out64, layout64, factor64))
    with pytest.raises(RuntimeError, match="compiled for other argument types"):
        kernel(wrong, x, out, layout, factor)
    assert not out.any()
    address, fingerprint = item_function(_scale_row, (ITEM_INDEX, x, out, layout, factor))
    with pytest.raises(RuntimeError, match="compiled for other argument types"):
        _serial((address, fingerprint + 1), x, out, layout, factor)
    assert not out.any()


def test_an_exception_in_the_item_function_reaches_the_caller():
    x, out, layout, _ = _arguments()
    item = item_function(_scale_row, (ITEM_INDEX, x, out, layout, np.float32(-1)))
    with pytest.raises(ValueError, match="negative factor"):
        _serial(item, x, out, layout, np.float32(-1))


def test_an_item_function_returns_nothing():
    with pytest.raises(TypeError, match="returns nothing"):
        item_function(_returns_a_value, (ITEM_INDEX, np.zeros(3)))


def test_the_fingerprint_is_the_same_in_every_process():
    from numba import types

    sig = (types.int64, types.Array(types.float32, 2, "C"), types.UniTuple(types.int64, 2))
    code = ("from numba import types; from tinyattn.kernels.cpu.indirect import type_fingerprint; "
            "print(type_fingerprint((types.int64, types.Array(types.float32, 2, 'C'), types.UniTuple(types.int64, 2))))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert int(other.stdout) == type_fingerprint(sig)


# a kernel and its item function in a module of their own, cached on disk
MODULE = """
import numpy as np
from numba import njit, prange
from tinyattn.kernels.cpu.indirect import call_compiled


@njit(cache=True)
def row_sum(i, x, out):
    out[i] = x[i].sum()


@njit(cache=True)
def row_max(i, x, out):
    out[i] = x[i].max()


@njit(cache=True, parallel=True)
def each_row(item, x, out):
    for i in prange(x.shape[0]):
        call_compiled(item, (np.int64(i), x, out))
"""
SCRIPT = """
import json, sys
import numpy as np
from tinyattn.kernels.cpu.indirect import ITEM_INDEX, item_function
import cached_items as m

""" + compile_recorder() + """
x = np.arange(12.0).reshape(3, 4)
results = {}
for name in sys.argv[1:]:
    out = np.zeros(3)
    m.each_row(item_function(getattr(m, name), (ITEM_INDEX, x, out)), x, out)
    results[name] = out.tolist()
ours = {"row_sum", "row_max", "each_row"}
print(json.dumps({"compiled": sorted(set(compiled) & ours), "results": results}))
"""


def test_a_kernel_calling_through_an_address_is_cached_and_calls_the_right_function(tmp_path):
    (tmp_path / "cached_items.py").write_text(MODULE)
    (tmp_path / "script.py").write_text(SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path),
               TINYATTN_COMPILE_NOTICE="0")

    def run(*names):
        proc = subprocess.run([sys.executable, str(tmp_path / "script.py"), *names], capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    cold = run("row_sum")
    assert set(cold["compiled"]) >= {"row_sum", "each_row"}, cold
    # a new process: both load from the cache; the kernel's code holds no address, so a function compiled only
    # now (row_max) is called through the same cached kernel
    warm = run("row_sum", "row_max")
    assert warm["compiled"] == ["row_max"], warm
    assert warm["results"] == {"row_sum": [6.0, 22.0, 38.0], "row_max": [3.0, 7.0, 11.0]}, warm
    assert run("row_max")["compiled"] == []


def test_the_product_kernel_refuses_handles_for_other_operands():
    """`_gemm_outer` with the task and packing functions compiled for float64 operands, given float32 ones: an
    error before its parallel loop, not a skipped loop body and an uninitialised result."""
    from tinyattn.kernels.cpu.matmul import outer

    def operands(dtype):
        a = np.ones((40, 24), dtype)
        return (a.ravel(), 1, 0, 24, 1, a.ravel(), 1, 0, 24, 1, 40, 40, 24, True, 2, np.empty(0, dtype),
                np.zeros((0, 0), dtype), np.empty(0, np.int64), np.empty(0, np.int64))

    args32, args64 = operands(np.float32), operands(np.float64)
    np.testing.assert_array_equal(outer.gemm_outer(*args32)[0], np.full((40, 40), 24, np.float32))
    with pytest.raises(RuntimeError, match="compiled for other argument types"):
        outer._gemm_outer(*args32, outer.no_act(np.float32), *outer._handles(*args64), outer._NO_EPILOGUE)


def test_the_product_kernel_refuses_flat_operands_with_gaps():
    """The micro-kernels step raw pointers through af and bf: a flat view with a stride would be read wrongly."""
    from tinyattn.kernels.cpu.matmul import outer

    a = np.ones(2 * 40 * 24, np.float32)[::2]
    args = (a, 1, 0, 24, 1, a, 1, 0, 24, 1, 40, 40, 24, True, 2, np.empty(0, np.float32), np.zeros((0, 0), np.float32),
            np.empty(0, np.int64), np.empty(0, np.int64))
    with pytest.raises(ValueError, match="unit stride"):
        outer.gemm_outer(*args)
