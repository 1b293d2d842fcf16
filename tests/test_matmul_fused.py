"""The matmul package's direct path for C-contiguous products (matmul_nt with a bias, matmul_nn, matmul_tn with the
fused bias-gradient sums go straight to `_gemm_outer`) and the fused sums' layout that path reads: row 0 of
`sums` holds the whole sum, whatever the task grid (k blocks, column blocks sharing the rows)."""
import numpy as np
import pytest

from tinyattn.kernels.cpu import matmul as mm

OUTER = mm.KERNEL != "portable"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_path_matches_strided_path(rng, dtype):
    """The same products through the direct path (C-contiguous operands) and through `_operands` (the same
    values as views of wider arrays): equal results, and float64 integer products exact."""
    M, K, N = 40, 70, 50                                  # M*N*K above SMALL_WORK: the outer kernel
    assert M * N * K > mm.SMALL_WORK
    x = rng.integers(-20, 20, size=(1, M, K)).astype(dtype)
    w = rng.integers(-20, 20, size=(1, N, K)).astype(dtype)
    dy = rng.integers(-20, 20, size=(1, M, N)).astype(dtype)
    bias = rng.integers(-20, 20, size=N).astype(dtype)

    def wide(a):                                          # the same values, not C-contiguous
        out = np.zeros(a.shape[:-1] + (a.shape[-1] + 3,), dtype)
        out[..., :a.shape[-1]] = a
        return out[..., :a.shape[-1]]

    x64, w64, dy64 = (v[0].astype(np.float64) for v in (x, w, dy))
    y = mm.matmul_nt(x, w, None, bias)
    np.testing.assert_array_equal(y, mm.matmul_nt(wide(x), wide(w), None, bias))
    np.testing.assert_array_equal(y[0], x64 @ w64.T + bias)
    dx = mm.matmul_nn(dy, w)
    np.testing.assert_array_equal(dx, mm.matmul_nn(wide(dy), wide(w)))
    np.testing.assert_array_equal(dx[0], dy64 @ w64)
    dw, db = mm.matmul_tn(dy, x, None, True)
    dw2, db2 = mm.matmul_tn(wide(dy), wide(x), None, True)
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)
    np.testing.assert_array_equal(dw[0], dy64.T @ x64)
    np.testing.assert_array_equal(db[0], dy64.sum(axis=0))
    assert db.shape == (1, N) and dw.shape == (1, N, K)


@pytest.mark.skipif(not OUTER, reason="the outer-product kernel needs AVX2 or AVX-512")
@pytest.mark.parametrize("nth", [2, 3])
@pytest.mark.parametrize("M,N,K", [(20, 200, 45), (13, 96, 1100)])    # column blocks; k blocks
def test_fused_sums_in_row_zero(rng, nth, M, N, K):
    """Every task grid leaves the whole sum in row 0 of `sums` and zeros elsewhere (matmul_tn reads row 0):
    column blocks each sum their share of the rows, k blocks are added into row 0 after the parallel loop."""
    a = rng.integers(-1000, 1000, size=(1, K, M)).astype(np.float64)     # A read as a^T (matmul_tn's strides)
    b = rng.integers(-1000, 1000, size=(1, N, K)).astype(np.float64)
    sums = np.zeros((nth, M))
    out = mm.gemm_outer(a.ravel(), 1, K * M, 1, M, b.ravel(), 1, N * K, K, 1, M, N, K, mm.KERNEL == "avx512",
                         nth, np.empty(0), sums, mm._NO_OFFS, mm._NO_OFFS)
    np.testing.assert_array_equal(out[0], a[0].T @ b[0].T)
    np.testing.assert_array_equal(sums[0], a[0].sum(axis=0))
    assert not sums[1:].any()


@pytest.mark.skipif(not OUTER, reason="the outer-product kernel needs AVX2 or AVX-512")
def test_ukernel_strided_loop_every_kc():
    """The micro-kernel over a row-major A read in place (a_rs rows apart): its unrolled main loop (a_ks == 1,
    kc >= 4) and single steps for the rest of kc, or for any other layout (a_ks == 2), float64 exact."""
    from numba import njit

    from tinyattn.kernels.cpu import microkernel as uk

    kern, MR, lanes = (uk.ukernel_w64, 12, 8) if mm.KERNEL == "avx512" else (uk.ukernel_w32, 6, 4)
    NR = 2 * lanes

    @njit
    def tile(kc, a, a_rs, a_ks, b, c, acc):
        kern(kc, a, 1, a_rs, a_ks, b, 0, NR, c, 0, NR, acc)

    rng = np.random.default_rng(3)
    for kc in (0, 1, 3, 4, 5, 9):
        for a_ks in (1, 2):
            a_rs = 2 * kc + 3
            a = rng.integers(-50, 50, size=1 + MR * a_rs + 2 * kc).astype(np.float64)
            b = rng.integers(-50, 50, size=max(kc, 1) * NR).astype(np.float64)
            A = np.array([[a[1 + r * a_rs + k * a_ks] for k in range(kc)] for r in range(MR)]).reshape(MR, kc)
            ref = A @ b[:kc * NR].reshape(kc, NR)
            c = np.full(MR * NR, 7.0)
            tile(kc, a, a_rs, a_ks, b, c, False)
            np.testing.assert_array_equal(c.reshape(MR, NR), ref)
            tile(kc, a, a_rs, a_ks, b, c, True)
            np.testing.assert_array_equal(c.reshape(MR, NR), 2 * ref)
