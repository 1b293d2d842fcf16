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


def _act_grad(x, y, act):
    """y · f'(x) by the activation's own backward kernel (what the fused product must equal)."""
    from tinyattn.kernels.cpu import activations as act_k
    from tinyattn.kernels.cpu import pointwise

    x, y = x.reshape(-1), np.ascontiguousarray(y).reshape(-1)
    if act == "relu":
        return pointwise.relu_backward(x, y, np.empty_like(x), 2)
    return act_k.gelu_backward(x, y) if act == "gelu_tanh" else act_k.gelu_erf_backward(x, y, np.empty_like(x))


@pytest.mark.skipif(not OUTER, reason="the outer-product kernel needs AVX2 or AVX-512")
@pytest.mark.parametrize("act", ["gelu_tanh", "gelu_erf", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,M,K,N", [(1, 77, 40, 45), (2, 30, 33, 64), (1, 64, 200, 130)])
def test_activation_factor_is_the_activations_backward(rng, act, dtype, B, M, K, N):
    """matmul_nn_act_grad(dy, W, act, h) = the activation's backward on dy @ W: edge tiles (rows past a micro-panel, columns
    past NR), a batch, several column blocks. To the bit, except float32's exact form: its reciprocal
    (vexp.recip_finite) is an estimate and a Newton step in vector code and a division in the loops' scalar
    remainders, which fall on other elements in a tile's rows than in the kernel's flat chunks (a few ulp)."""
    dy = rng.standard_normal((B, M, K)).astype(dtype)
    w = rng.standard_normal((B, K, N)).astype(dtype)
    h = (3 * rng.standard_normal((B, M, N))).astype(dtype)
    h.reshape(-1)[:5] = [0, -12, 12, 40, np.nan]          # the formulas' clamps and tails, NaN
    out = mm.matmul_nn_act_grad(dy, w, act, h)
    assert out is not None and out.shape == (B, M, N)
    expected = _act_grad(h, mm.matmul_nn(dy, w), act)
    if dtype == np.float32 and act == "gelu_erf":
        np.testing.assert_allclose(out.reshape(-1), expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    else:
        np.testing.assert_array_equal(out.reshape(-1), expected)


@pytest.mark.skipif(not OUTER, reason="the outer-product kernel needs AVX2 or AVX-512")
@pytest.mark.parametrize("nth", [1, 2, 3])
@pytest.mark.parametrize("M,N,K", [(20, 40, 1100), (13, 96, 0)])   # a k-split (the factor after the partials); K 0
def test_activation_factor_after_a_k_split_and_for_an_empty_reduction(rng, nth, M, N, K):
    """A k-split product's tiles are partial sums: the factor is applied once, after they are added; with K = 0
    the product is zeros and the factor still multiplies it (NaN where gelu'(h) is NaN, as unfused)."""
    a = rng.standard_normal((1, M, K))                    # dy (M, K), read in place
    b = rng.standard_normal((1, K, N))                    # W (K, N): B[j, k] = b[k, j], read in place
    h = rng.standard_normal((1, M, N))
    h[0, 0, 0] = np.nan
    out = mm.gemm_outer(a.ravel(), 1, 0, K, 1, b.ravel(), 1, 0, 1, N, M, N, K, mm.KERNEL == "avx512", nth,
                        np.empty(0), np.zeros((0, 0)), mm._NO_OFFS, mm._NO_OFFS, h.ravel(), mm.ACT_GELU_TANH)
    expected = _act_grad(h, a[0] @ b[0], "gelu_tanh").reshape(1, M, N)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert np.isnan(out[0, 0, 0])


def test_activation_factor_refuses_a_mismatched_operand():
    a = np.ones((1, 40, 30), np.float32)
    b = np.ones((1, 30, 50), np.float32)
    args = (a.ravel(), 1, 0, 30, 1, b.ravel(), 1, 0, 1, 50, 40, 50, 30, True, 2, np.empty(0, np.float32),
            np.zeros((0, 0), np.float32), mm._NO_OFFS, mm._NO_OFFS)
    with pytest.raises(ValueError, match="activation factor"):
        mm.gemm_outer(*args, np.ones(40 * 49, np.float32), mm.ACT_GELU_TANH)      # one row short
    with pytest.raises(ValueError, match="activation factor"):
        mm.gemm_outer(*args, np.ones(40 * 50, np.float64), mm.ACT_GELU_ERF)       # another dtype
    assert mm.matmul_nn_act_grad(a, b, "gelu_tanh", np.ones((1, 40, 49), np.float32)) is None  # the caller's 2 steps
