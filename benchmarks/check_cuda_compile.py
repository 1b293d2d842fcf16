"""Compile every CUDA kernel in tinyattn.kernels.cuda to PTX for a real GPU, with no GPU and no simulator.

The CUDA tests run the kernels under Numba's simulator (NUMBA_ENABLE_CUDASIM=1), which executes them as
Python: it neither type-checks nor compiles them the way the real CUDA target does, so a kernel can pass
every test and still fail to compile on a GPU. This script type-checks and compiles each kernel with
`numba.cuda.compile_ptx(py_func, signature, cc=...)`, for the argument types tinyattn's launchers pass
(float32 and float64, and for the elementwise/reduce/indexing kernels the bool/int64/mixed cases that
tinyattn.device_array produces); kernels built by the lru_cache'd factories (matmul._kernel,
softmax._kernels, ...) are built for the GPU's default block/tile sizes. Device functions a kernel calls are
compiled with it (their dispatcher asks the driver for the compute capability; the script answers --cc).
It prints one line per kernel and signature, "ok" or the error, and exits non-zero if any failed.

It is a developer tool, not a test: it needs NVIDIA's NVVM library (the CUDA toolkit), which the
simulator does not. Set it up once, in a venv of its own (about 200 MB of wheels, 800 MB installed):

    python -m venv /tmp/ptxvenv
    /tmp/ptxvenv/bin/pip install 'numba-cuda[cu12]' numpy      # or [cu13]
    /tmp/ptxvenv/bin/pip install -e . --no-deps                  # from the repo root
    /tmp/ptxvenv/bin/python benchmarks/check_cuda_compile.py     # --cc 9.0, -k LABEL, -v: tracebacks

Only compilation is checked, not results (the simulator tests do that) nor speed.
"""
import argparse
import os
import sys
import traceback
import types as types_ns

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    sys.exit("check_cuda_compile: unset NUMBA_ENABLE_CUDASIM: the simulator compiles nothing")

import numba
import numpy as np
from numba import cuda, types
from tinyattn.kernels.cuda import (
    activations,
    attention,
    elementwise,
    embedding,
    indexing,
    layer_norm,
    matmul,
    optim,
    reduce,
    softmax,
)

i64 = types.int64
b1 = types.boolean
F32, F64, I64, I32, B = (np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_))
FLOATS = (F32, F64)


def arr(dtype, ndim=1):
    """A C-contiguous array type, as a numba device array (or a slice of one, reshaped) types as."""
    return types.Array(numba.from_dtype(dtype), ndim, "C")


def scalar(dtype):
    return numba.from_dtype(dtype)


def view(dtype, nd):
    """An elementwise operand (buf, off, st): flat buffer, int64 offset, int64 stride per axis."""
    return (arr(dtype), i64, types.UniTuple(i64, nd))


def shape(nd):
    return types.UniTuple(i64, nd)


def name(dt):
    return {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool"}[str(dt)]


def checks():
    """(label, python function, argument types) for every kernel and the signatures tinyattn launches."""
    out = []

    def add(label, kernel, *argtypes):
        fn = getattr(kernel, "py_func", kernel)
        out.append((label, fn, tuple(argtypes)))

    ew = elementwise
    # ---- elementwise: unary(out <- a), as device_array._unary picks the output dtype -----------------
    for nd in (1, 3):
        for o, a in ((F32, F32), (F64, F64), (F64, I64), (I64, I64), (F64, B), (B, B)):
            add(f"elementwise._unary {name(o)} <- {name(a)} nd={nd}", ew._unary, i64, arr(o), *view(a, nd), shape(nd))
    # binary(out <- a op b): out = np.result_type(a, b) (float64 for DIV of integers)
    for o, a, b in ((F32, F32, F32), (F64, F64, F64), (F32, B, F32), (F32, F32, B), (F64, F32, F64),
                    (F64, F32, I64), (F64, I64, F64), (F64, I64, I64), (I64, I64, I64), (I64, B, I64),
                    (B, B, B)):
        add(f"elementwise._binary {name(o)} <- {name(a)}, {name(b)}", ew._binary,
            i64, arr(o), *view(a, 2), *view(b, 2), shape(2))
    for a, b in ((F32, F32), (F64, F64), (F32, F64), (I64, I64), (I64, F32), (B, B)):
        add(f"elementwise._compare bool <- {name(a)}, {name(b)}", ew._compare,
            i64, arr(B), *view(a, 2), *view(b, 2), shape(2))
    for a, b in ((B, B), (F32, F32), (I64, I64)):
        add(f"elementwise._logical bool <- {name(a)}, {name(b)}", ew._logical,
            i64, arr(B), *view(a, 2), *view(b, 2), shape(2))
    add("elementwise._logical_not bool <- bool", ew._logical_not, arr(B), *view(B, 2), shape(2))
    for a in (F32, F64, I64):
        add(f"elementwise._isfinite bool <- {name(a)}", ew._isfinite, arr(B), *view(a, 2), shape(2))
    for o, a, b in ((F32, F32, F32), (F64, F64, F64), (F64, F32, F64), (I64, I64, I64), (B, B, B)):
        add(f"elementwise._where {name(o)} <- bool ? {name(a)} : {name(b)}", ew._where,
            arr(o), *view(B, 2), *view(a, 2), *view(b, 2), shape(2))
    for d, s in ((F32, F32), (F64, F64), (F32, F64), (F64, F32), (F32, B), (F64, I64), (I64, F32),
                 (B, F32), (I64, B), (B, B), (I64, I64)):
        add(f"elementwise._copy {name(d)} <- {name(s)}", ew._copy, i64, *view(d, 2), *view(s, 2), shape(2))
    for dt in (F32, F64, I64):
        add(f"elementwise._arange {name(dt)}", ew._arange, arr(dt), scalar(dt), scalar(dt))

    # ---- indexing ------------------------------------------------------------------------------------
    for dt in (F32, F64, I64, B):
        add(f"indexing._gather {name(dt)}", indexing._gather, arr(dt), arr(dt), arr(I64))
    for dt in (F32, F64, I64):
        add(f"indexing._scatter_add {name(dt)}", indexing._scatter_add, arr(dt), arr(I64), arr(dt))

    # ---- reduce (block = the GPU's BLOCK) ----------------------------------------------------------------
    R = reduce
    for op, a, o in (("SUM", F32, F32), ("SUM", F64, F64), ("SUM", B, I64), ("SUM", I64, I64),
                     ("MAX", F32, F32), ("MAX", F64, F64), ("MIN", F32, F32), ("MIN", F64, F64),
                     ("MAX", I64, I64), ("ANY", B, B), ("ALL", B, B)):
        by_thread, by_block = R._kernels(getattr(R, op), a, o, R.BLOCK)
        for kname, k in (("by_thread", by_thread), ("by_block", by_block)):
            add(f"reduce.{kname} {op} {name(o)} <- {name(a)}", k, arr(a, 2), arr(o))
    for dt in (F32, F64, I64):
        add(f"reduce._argmax i64 <- {name(dt)}", R._argmax, arr(dt, 2), arr(I64))

    for dt in FLOATS:
        n = name(dt)
        a3, a2, a1, s = arr(dt, 3), arr(dt, 2), arr(dt, 1), scalar(dt)
        # ---- matmul ----------------------------------------------------------------------------------
        for ta, tb, kname in ((False, False, "nn"), (False, True, "nt"), (True, False, "tn")):
            add(f"matmul.gemm_{kname} {n}", matmul._kernel(dt, ta, tb, matmul.TILE, matmul.REGS), a3, a3, a3, i64)
        # ---- softmax ---------------------------------------------------------------------------------
        ks = softmax._kernels(dt, softmax.BLOCK)
        add(f"softmax.softmax_forward {n}", ks["softmax_forward"], a2, a2)
        add(f"softmax.softmax_backward {n}", ks["softmax_backward"], a2, a2, a2)
        add(f"softmax.log_softmax_forward {n}", ks["log_softmax_forward"], a2, a2)
        add(f"softmax.log_softmax_backward {n}", ks["log_softmax_backward"], a2, a2, a2)
        # ---- attention: (q, k, v, bias, has_bias, causal, window, offset, scale, ...) -------------------
        fwd, delta, dq, dkdv = attention._kernels(dt, attention.ROWS, attention.BLOCK_K)
        mask = (a3, b1, b1, i64, i64, s)
        add(f"attention.forward {n}", fwd, a3, a3, a3, *mask, a3, a2)
        add(f"attention.delta {n}", delta, a3, a3, a2)
        add(f"attention.dq_kernel {n}", dq, a3, a3, a3, *mask, a2, a2, a3, a3)
        add(f"attention.dkdv_kernel {n}", dkdv, a3, a3, a3, *mask, a2, a2, a3, a3, a3)
        # ---- layer norm ------------------------------------------------------------------------------
        lf, ldx, ldw = layer_norm._kernels(dt, layer_norm.BLOCK)
        add(f"layer_norm.forward {n}", lf, a2, a1, a1, s, a2, a2, a1)
        add(f"layer_norm.dx_kernel {n}", ldx, a2, a2, a1, a1, a2)
        add(f"layer_norm.dw_db_kernel {n}", ldw, a2, a2, a1, a1)
        # ---- GELU ------------------------------------------------------------------------------------
        gf, gb = activations._kernels(dt)
        add(f"activations.gelu_forward {n}", gf, a1, a1)
        add(f"activations.gelu_backward {n}", gb, a1, a1, a1)
        # ---- embedding -------------------------------------------------------------------------------
        for it in (I64, I32):
            add(f"embedding._gather {n}, index {name(it)}", embedding._gather, a2, arr(it), a2)
            add(f"embedding._scatter_add {n}, index {name(it)}", embedding._scatter_add, arr(it), a2, a2)
        add(f"embedding._zero {n}", embedding._zero, a2)
        # ---- optimiser: (w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2) -----------------
        add(f"optim._adam {n}", optim._adam, a1, a1, a1, a1, *(s,) * 7)
    return out


def _probe(a):
    a[0] = 1


def _no_device(cc):
    """Let device functions compile with no GPU. compile_ptx takes cc for the kernel, but a
    @cuda.jit(device=True) function that the kernel calls is compiled by its dispatcher for
    get_current_device().compute_capability, which needs a driver; answer that with `cc` instead."""
    from numba.cuda import dispatcher

    fake = types_ns.SimpleNamespace(compute_capability=cc)
    dispatcher.get_current_device = lambda: fake


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="8.0", help="compute capability to compile for (default 8.0)")
    parser.add_argument("-k", default="", help="only checks whose label contains this text")
    parser.add_argument("-v", action="store_true", help="print the full traceback of each failure")
    args = parser.parse_args()
    cc = tuple(int(p) for p in args.cc.split("."))
    _no_device(cc)

    try:  # is the toolkit there at all? (one clear message instead of one failure per kernel)
        cuda.compile_ptx(_probe, (arr(F32),), cc=cc)
    except Exception as e:  # noqa: BLE001
        sys.exit(f"check_cuda_compile: cannot compile even a trivial kernel ({type(e).__name__}: {e}).\n"
                 "Install the CUDA toolkit's NVVM/NVRTC, e.g. pip install 'numba-cuda[cu12]' (module docstring).")

    failed = 0
    todo = [c for c in checks() if args.k in c[0]]
    width = max(len(label) for label, _, _ in todo)
    for label, fn, sig in todo:
        try:
            cuda.compile_ptx(fn, sig, cc=cc)
            result = "ok"
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            result = "FAIL " + (traceback.format_exc() if args.v else
                                f"{type(e).__name__}: " + " | ".join(
                                    ln.strip() for ln in str(e).splitlines() if ln.strip())[:400])
        print(f"{label:<{width}}  {result}", flush=True)
    print(f"{len(todo) - failed}/{len(todo)} compiled for cc {args.cc}" + (f", {failed} FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
