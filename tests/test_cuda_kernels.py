"""CUDA kernels (kernels/cuda) against the CPU kernels (kernels/cpu), under Numba's CUDA simulator.

The simulator is chosen when numba is imported (NUMBA_ENABLE_CUDASIM is read then, and setting it later
has no effect), and other test modules import numba first in the same pytest process. So each test runs
this file as a script in a subprocess with NUMBA_ENABLE_CUDASIM=1; the script compares one kernel group,
prints every mismatch and exits non-zero on any. Shapes are tiny and tiles small (the simulator runs each
GPU thread as a Python thread), with one launch per group at the default tile/block size.

    NUMBA_ENABLE_CUDASIM=1 python tests/test_cuda_kernels.py matmul     # one group by hand
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ---------------------------------------------------------------------------------------------------------
# pytest side: one subprocess per group
# ---------------------------------------------------------------------------------------------------------
def _run_group(group):
    import pytest

    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (pip install numba-cuda): no CUDA simulator")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), group], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{group} kernels differ from the CPU ones:\n{proc.stdout}\n{proc.stderr}"
    assert "checked" in proc.stdout, proc.stdout   # the comparisons really ran


def test_cuda_matmul_matches_cpu():
    _run_group("matmul")


def test_cuda_softmax_matches_cpu():
    _run_group("softmax")


def test_cuda_attention_matches_cpu():
    _run_group("attention")


# ---------------------------------------------------------------------------------------------------------
# subprocess side (NUMBA_ENABLE_CUDASIM=1): the comparisons
# ---------------------------------------------------------------------------------------------------------
class _Checker:
    def __init__(self):
        self.failures = []
        self.count = 0

    def close(self, name, got, want, dtype):
        """got (device array) == want (host array) within dtype tolerance, same dtype and shape."""
        self.count += 1
        got = got.copy_to_host()
        if got.dtype != want.dtype or got.shape != want.shape:
            self.failures.append(f"{name}: got {got.dtype} {got.shape}, want {want.dtype} {want.shape}")
        elif not np.allclose(got, want, equal_nan=True, **TOL[dtype]):
            err = np.abs(got.astype(np.float64) - want)
            idx = np.unravel_index(np.nanargmax(err), err.shape)
            self.failures.append(f"{name}: max |diff| {err[idx]:.3g} at {idx}: got {got[idx]!r}, want {want[idx]!r}")


def _check_matmul(ck, rng):
    from tinyattn.kernels.cpu import matmul as cpu
    from tinyattn.kernels.cuda import matmul as gpu

    # (Ba, Bb, M, K, N, tile): partial tiles in every dimension, several k-tiles, batch broadcast both ways
    cases = [(2, 1, 5, 6, 3, 4), (1, 2, 3, 9, 6, 4), (3, 3, 1, 1, 2, 2), (2, 2, 2, 3, 5, gpu.TILE)]
    for dt in (np.float32, np.float64):
        for Ba, Bb, M, K, N, tile in cases:
            a = rng.standard_normal((Ba, M, K)).astype(dt)
            b = rng.standard_normal((Bb, K, N)).astype(dt)
            bt = np.ascontiguousarray(b.transpose(0, 2, 1))     # (Bb, N, K)
            at = np.ascontiguousarray(a.transpose(0, 2, 1))     # (Ba, K, M)
            tag = f"{dt.__name__} Ba={Ba} Bb={Bb} M={M} K={K} N={N} tile={tile}"
            ck.close(f"matmul_nn {tag}", gpu.matmul_nn(a, b, tile), cpu.matmul_nn(a, b), dt)
            ck.close(f"matmul_nt {tag}", gpu.matmul_nt(a, bt, tile), cpu.matmul_nt(a, bt), dt)
            ck.close(f"matmul_tn {tag}", gpu.matmul_tn(at, b, tile), cpu.matmul_tn(at, b), dt)
        # device arrays in, K = 0 (all zeros out)
        from numba import cuda
        a = cuda.to_device(np.ones((1, 3, 0), dt))
        b = cuda.to_device(np.ones((2, 0, 2), dt))
        ck.close(f"matmul_nn {dt.__name__} K=0", gpu.matmul_nn(a, b, 2), np.zeros((2, 3, 2), dt), dt)
    # errors are raised before any launch
    for bad, kind in [((np.ones((1, 2, 3)), np.ones((1, 4, 2))), ValueError),
                      ((np.ones((2, 2, 3)), np.ones((3, 3, 2))), ValueError),
                      ((np.ones((1, 2, 3)), np.ones((1, 3, 2), np.float32)), TypeError)]:
        ck.count += 1
        try:
            gpu.matmul_nn(*bad)
            ck.failures.append(f"matmul_nn{tuple(x.shape for x in bad)}: no {kind.__name__}")
        except kind:
            pass


def _check_softmax(ck, rng):
    from tinyattn.kernels.cpu import softmax as cpu
    from tinyattn.kernels.cuda import softmax as gpu

    # (R, C, block): C below, equal to and above the block, one column, the default block
    cases = [(3, 1, 4), (2, 7, 4), (2, 8, 8), (2, 21, 8), (1, 130, gpu.BLOCK)]
    for dt in (np.float32, np.float64):
        for R, C, block in cases:
            x = (3 * rng.standard_normal((R, C))).astype(dt)
            x[0, 0] += 40                           # a dominant entry: the max subtraction matters
            dy = rng.standard_normal((R, C)).astype(dt)
            y = cpu.softmax_forward(x)
            ly = cpu.log_softmax_forward(x)
            tag = f"{dt.__name__} R={R} C={C} block={block}"
            ck.close(f"softmax_forward {tag}", gpu.softmax_forward(x, block), y, dt)
            ck.close(f"softmax_backward {tag}", gpu.softmax_backward(y, dy, block), cpu.softmax_backward(y, dy), dt)
            ck.close(f"log_softmax_forward {tag}", gpu.log_softmax_forward(x, block), ly, dt)
            ck.close(f"log_softmax_backward {tag}", gpu.log_softmax_backward(ly, dy, block),
                     cpu.log_softmax_backward(ly, dy), dt)


def _check_attention(ck, rng):
    from tinyattn.kernels.cpu import attention as cpu
    from tinyattn.kernels.cuda import attention as gpu

    # (BH, L, S, E, Ev, rows, block_k): several query blocks and key tiles with partial ones, L > S
    # (causal rows that see every key), S = 0 (every row fully masked: out 0, lse -inf, zero grads),
    # and the default launch sizes once
    cases = [(2, 5, 7, 3, 4, 4, 3), (1, 6, 3, 2, 2, 4, 2), (1, 3, 0, 2, 2, 2, 2),
             (1, 4, 5, 3, 2, gpu.ROWS, gpu.BLOCK_K)]
    for dt in (np.float32, np.float64):
        for BH, L, S, E, Ev, rows, block_k in cases:
            for causal in (False, True):
                q = rng.standard_normal((BH, L, E)).astype(dt)
                k = rng.standard_normal((BH, S, E)).astype(dt)
                v = rng.standard_normal((BH, S, Ev)).astype(dt)
                dout = rng.standard_normal((BH, L, Ev)).astype(dt)
                scale = 0.7
                out, lse = cpu.attention_forward(q, k, v, None, False, causal, -1, scale)
                grads = cpu.attention_backward(q, k, v, None, False, causal, -1, scale, out, lse, dout)
                tag = f"{dt.__name__} BH={BH} L={L} S={S} E={E} Ev={Ev} causal={causal} rows={rows}"
                g_out, g_lse = gpu.attention_forward(q, k, v, causal, scale, rows=rows, block_k=block_k)
                ck.close(f"attention_forward out {tag}", g_out, out, dt)
                ck.close(f"attention_forward lse {tag}", g_lse, lse, dt)
                g_grads = gpu.attention_backward(q, k, v, causal, scale, out, lse, dout, rows=rows)
                for name, got, want in zip(("dq", "dk", "dv"), g_grads, grads):
                    ck.close(f"attention_backward {name} {tag}", got, want, dt)


def _main(group):
    from numba import config

    if not config.ENABLE_CUDASIM:
        print("run with NUMBA_ENABLE_CUDASIM=1 (set before numba is imported)")
        return 2
    ck = _Checker()
    globals()[f"_check_{group}"](ck, np.random.default_rng(0))
    for f in ck.failures:
        print("MISMATCH", f)
    print(f"{group}: checked {ck.count} results, {len(ck.failures)} mismatches")
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
