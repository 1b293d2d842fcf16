"""CUDA kernels (kernels/cuda) against the CPU kernels (kernels/cpu).

Each test compares one kernel group and lists every mismatch. They run in the background worker
(tests/background.py): minutes of single-threaded simulator time on the second core, beside the rest of
the suite. They use what tests/conftest.py chose before numba was imported: Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1) on a machine without an NVIDIA driver, the real GPU otherwise. Run as a script,
this file checks one group and exits non-zero on any mismatch. Shapes are tiny and tiles small (the
simulator runs each GPU thread as a Python thread), with one launch per group at the default tile/block
size.

    NUMBA_ENABLE_CUDASIM=1 python tests/test_cuda_kernels.py matmul     # one group by hand
"""
import importlib.util
import sys

import numpy as np
import pytest

# In the background worker, after the kernel-variant tests: by then this process has usually compiled and
# cached the CPU kernels that these groups compare against, so the two processes do not compile them twice.
pytestmark = pytest.mark.background(order=1)

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ---------------------------------------------------------------------------------------------------------
# pytest side: one test per group, in the background worker (tests/background.py)
# ---------------------------------------------------------------------------------------------------------
def _run_group(group):
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (pip install numba-cuda): no CUDA simulator")
    ck = _Checker()
    globals()[f"_check_{group}"](ck, np.random.default_rng(0))
    assert not ck.failures, f"{group} kernels differ from the CPU ones:\n" + "\n".join(ck.failures)
    assert ck.count > 0  # the comparisons really ran


def test_cuda_embedding_matches_cpu():
    _run_group("embedding")


def test_cuda_activations_match_cpu():
    _run_group("activations")


def test_cuda_layer_norm_matches_cpu():
    _run_group("layer_norm")


def test_cuda_softmax_matches_cpu():
    _run_group("softmax")


def test_cuda_matmul_matches_cpu():
    _run_group("matmul")


def test_cuda_attention_matches_cpu():
    _run_group("attention")


def test_cuda_attention_bias_window_matches_cpu():
    _run_group("attention_masked")


# ---------------------------------------------------------------------------------------------------------
# the comparisons
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

    # (Ba, Bb, M, K, N, tile, regs): partial block tiles and partial thread tiles in every dimension,
    # several k-slices, batch broadcast both ways, one output per thread (regs=1), the default sizes
    cases = [(2, 1, 5, 6, 3, 4, 1), (1, 2, 3, 9, 6, 2, 2), (3, 3, 1, 1, 2, 2, 1), (1, 1, 7, 5, 9, 2, 3),
             (2, 1, 9, 11, 10, 4, 2), (1, 1, 5, 3, 17, gpu.TILE, gpu.REGS)]
    for dt in (np.float32, np.float64):
        for Ba, Bb, M, K, N, tile, regs in cases:
            a = rng.standard_normal((Ba, M, K)).astype(dt)
            b = rng.standard_normal((Bb, K, N)).astype(dt)
            bt = np.ascontiguousarray(b.transpose(0, 2, 1))     # (Bb, N, K)
            at = np.ascontiguousarray(a.transpose(0, 2, 1))     # (Ba, K, M)
            tag = f"{dt.__name__} Ba={Ba} Bb={Bb} M={M} K={K} N={N} tile={tile} regs={regs}"
            ck.close(f"matmul_nn {tag}", gpu.matmul_nn(a, b, tile, regs), cpu.matmul_nn(a, b), dt)
            ck.close(f"matmul_nt {tag}", gpu.matmul_nt(a, bt, tile, regs), cpu.matmul_nt(a, bt), dt)
            ck.close(f"matmul_tn {tag}", gpu.matmul_tn(at, b, tile, regs), cpu.matmul_tn(at, b), dt)
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


def _expect_error(ck, name, kind, fn, *args, **kw):
    """fn(*args, **kw) raises kind (checked before any launch)."""
    ck.count += 1
    try:
        fn(*args, **kw)
        ck.failures.append(f"{name}: no {kind.__name__}")
    except kind:
        pass


def _check_attention_masked(ck, rng):
    from numba import cuda

    from tinyattn.kernels.cpu import attention as cpu
    from tinyattn.kernels.cuda import attention as gpu

    BH, L, S, E, Ev = 2, 5, 7, 3, 2
    ninf = -np.inf

    def biases(dt):
        """(label, bias) of every broadcast shape, with -inf entries and fully masked rows."""
        pad = np.zeros((1, 1, S))
        pad[..., [1, 5]] = ninf                           # key padding
        rowmask = rng.standard_normal((1, L, S))
        rowmask[0, 2] = ninf                              # query 2 sees no key: out 0, lse -inf
        rowmask[0, 0, 3:] = ninf
        per_head = rng.standard_normal((BH, 1, S))
        per_head[1, 0, :4] = ninf
        per_query = rng.standard_normal((BH, L, 1))
        per_query[0, 4, 0] = ninf                         # one -inf broadcast over a whole row
        full = rng.standard_normal((BH, L, S))
        full[rng.random((BH, L, S)) < 0.3] = ninf
        full[1, 1] = ninf
        scalar = np.full((1, 1, 1), 0.5)
        return [(f"bias{b.shape}", b.astype(dt)) for b in (pad, rowmask, per_head, per_query, full, scalar)]

    def compare(tag, dt, q, k, v, bias, causal, window, rows, block_k, device_bias=False):
        scale = 0.6
        dout = rng.standard_normal(q.shape[:2] + (v.shape[2],)).astype(dt)
        args = (q, k, v, bias, bias is not None, causal, window, scale)
        out, lse = cpu.attention_forward(*args)
        grads = cpu.attention_backward(*args, out, lse, dout)
        gb = cuda.to_device(bias) if device_bias else bias
        tag = f"{dt.__name__} {tag} causal={causal} window={window} rows={rows} block_k={block_k}"
        g_out, g_lse = gpu.attention_forward(q, k, v, causal, scale, bias=gb, window=window,
                                             rows=rows, block_k=block_k)
        ck.close(f"attention_forward out {tag}", g_out, out, dt)
        ck.close(f"attention_forward lse {tag}", g_lse, lse, dt)
        g_grads = gpu.attention_backward(q, k, v, causal, scale, out, lse, dout, bias=gb, window=window, rows=rows)
        for name, got, want in zip(("dq", "dk", "dv"), g_grads, grads):
            ck.close(f"attention_backward {name} {tag}", got, want, dt)

    for dt in (np.float32, np.float64):
        q = rng.standard_normal((BH, L, E)).astype(dt)
        k = rng.standard_normal((BH, S, E)).astype(dt)
        v = rng.standard_normal((BH, S, Ev)).astype(dt)
        # every bias shape, causal or not; device bias once per shape (host bias is copied)
        for i, (label, bias) in enumerate(biases(dt)):
            compare(label, dt, q, k, v, bias, i % 2 == 0, -1, 4, 3, device_bias=i % 3 == 0)
        # windows (0 = the diagonal only, a window wider than S), with causal and with a bias
        for window, causal in [(0, False), (1, False), (2, True), (9, True)]:
            compare("no bias", dt, q, k, v, None, causal, window, 2, 2)
        compare("full bias", dt, q, k, v, biases(dt)[4][1], True, 1, 4, 3)
        # L > S with causal + window: the last queries see no key at all (out 0, lse -inf, zero grads)
        q6 = rng.standard_normal((1, 6, E)).astype(dt)
        compare("L=6 S=3", dt, q6, k[:1, :3], v[:1, :3], None, True, 1, 4, 2)
    # bias of a wrong shape or (on the device) dtype is refused before any launch
    q = np.zeros((BH, L, E))
    k = np.zeros((BH, S, E))
    for bias, kind in [(np.zeros((3, L, S)), ValueError), (np.zeros((1, 2, S)), ValueError),
                       (np.zeros((L, S)), ValueError), (cuda.to_device(np.zeros((1, 1, S), np.float32)), TypeError)]:
        _expect_error(ck, f"attention_forward bias {bias.shape} {bias.dtype}", kind,
                      gpu.attention_forward, q, k, k, False, 1.0, bias=bias)


def _check_layer_norm(ck, rng):
    from tinyattn.kernels.cpu import layer_norm as cpu
    from tinyattn.kernels.cuda import layer_norm as gpu

    # (R, N, block): N above the block with a partial stride (and 2 column blocks for dw/db), N below the
    # block, N = 1 (x̂ = 0), R > block (the dw/db threads loop over several rows); the default block once
    # (the simulator spends ~10 ms per thread of a block that synchronises)
    cases = [(3, 7, 4), (2, 3, 8), (2, 1, 2), (5, 3, 2)]
    for dt in (np.float32, np.float64):
        for R, N, block in cases + ([(1, 6, gpu.BLOCK)] if dt is np.float64 else []):
            x = (10 + 3 * rng.standard_normal((R, N))).astype(dt)     # an offset: the mean matters
            w = rng.standard_normal(N).astype(dt)
            b = rng.standard_normal(N).astype(dt)
            dy = rng.standard_normal((R, N)).astype(dt)
            eps = 1e-5
            y, mean, rstd = cpu.layer_norm_forward(x, w, b, eps)
            tag = f"{dt.__name__} R={R} N={N} block={block}"
            got = gpu.layer_norm_forward(x, w, b, eps, block)
            for name, got, want in zip(("y", "mean", "rstd"), got, (y, mean, rstd)):
                ck.close(f"layer_norm_forward {name} {tag}", got, want, dt)
            got = gpu.layer_norm_backward(dy, x, mean, rstd, w, block)
            for name, got, want in zip(("dx", "dw", "db"), got, cpu.layer_norm_backward(dy, x, mean, rstd, w)):
                ck.close(f"layer_norm_backward {name} {tag}", got, want, dt)
    x = np.ones((2, 3))
    _expect_error(ck, "layer_norm_forward w (4,)", ValueError, gpu.layer_norm_forward, x, np.ones(4), np.ones(3), 1e-5)
    _expect_error(ck, "layer_norm_forward float32 w", TypeError, gpu.layer_norm_forward, x,
                  np.ones(3, np.float32), np.ones(3), 1e-5)
    v3 = np.ones(3)
    _expect_error(ck, "layer_norm_backward mean (3,)", ValueError, gpu.layer_norm_backward, x, x, v3, np.ones(2), v3)
    _expect_error(ck, "layer_norm_forward block 3", ValueError, gpu.layer_norm_forward, x, v3, v3, 1e-5, 3)


def _check_activations(ck, rng):
    from tinyattn.kernels.cpu import activations as cpu
    from tinyattn.kernels.cuda import activations as gpu

    # (n, block, blocks): grid-stride loops of several turns and a partial last one, one element,
    # the default launch once
    cases = [(50, 4, 3), (1, 4, None), (23, gpu.BLOCK, None)]
    tails = np.array([-100.0, -30.0, -8.0, -1e-3, 0.0, 1e-3, 8.0, 30.0, 100.0])  # both clamps and σ's tails
    for dt in (np.float32, np.float64):
        for n, block, blocks in cases:
            x = (3 * rng.standard_normal(n)).astype(dt)
            x[: len(tails)] = tails[:n]
            dy = rng.standard_normal(n).astype(dt)
            tag = f"{dt.__name__} n={n} block={block} blocks={blocks}"
            ck.close(f"gelu_forward {tag}", gpu.gelu_forward(x, block, blocks), cpu.gelu_forward(x), dt)
            ck.close(f"gelu_backward {tag}", gpu.gelu_backward(x, dy, block, blocks), cpu.gelu_backward(x, dy), dt)
    _expect_error(ck, "gelu_forward 2-D", ValueError, gpu.gelu_forward, np.ones((2, 2)))
    _expect_error(ck, "gelu_backward float32 dy", TypeError, gpu.gelu_backward, np.ones(3), np.ones(3, np.float32))


def _check_embedding(ck, rng):
    from tinyattn.kernels.cpu import embedding as cpu
    from tinyattn.kernels.cuda import embedding as gpu

    # (V, D, index, block, blocks): repeated indices (atomic adds), unused rows (stay 0), grid-stride
    # loops of several turns, an int32 index, the default launch once
    cases = [(6, 5, np.array([3, 0, 3, 5, 3, 0, 1, 5, 3]), 4, 2), (4, 3, np.array([2, 2], np.int32), 4, None),
             (3, 2, np.array([1]), gpu.BLOCK, None)]
    for dt in (np.float32, np.float64):
        for V, D, index, block, blocks in cases:
            weight = rng.standard_normal((V, D)).astype(dt)
            dy = rng.standard_normal((len(index), D)).astype(dt)
            tag = f"{dt.__name__} V={V} D={D} n={len(index)} {index.dtype} block={block} blocks={blocks}"
            ck.close(f"embedding_forward {tag}", gpu.embedding_forward(weight, index, block, blocks), weight[index], dt)
            ck.close(f"embedding_backward {tag}", gpu.embedding_backward(index, dy, V, block, blocks),
                     cpu.embedding_backward(index.astype(np.int64), dy, V), dt)
        # no indices: an empty gather, an all-zero gradient
        empty = np.zeros(0, np.int64)
        ck.close(f"embedding_forward {dt.__name__} n=0", gpu.embedding_forward(np.ones((3, 2), dt), empty),
                 np.zeros((0, 2), dt), dt)
        ck.close(f"embedding_backward {dt.__name__} n=0", gpu.embedding_backward(empty, np.ones((0, 2), dt), 3),
                 np.zeros((3, 2), dt), dt)
    _expect_error(ck, "embedding_forward float index", TypeError, gpu.embedding_forward, np.ones((3, 2)), np.ones(2))
    _expect_error(ck, "embedding_backward lengths", ValueError, gpu.embedding_backward, np.zeros(2, np.int64),
                  np.ones((3, 2)), 4)


def _main(group):
    ck = _Checker()
    globals()[f"_check_{group}"](ck, np.random.default_rng(0))
    for f in ck.failures:
        print("MISMATCH", f)
    print(f"{group}: checked {ck.count} results, {len(ck.failures)} mismatches")
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
