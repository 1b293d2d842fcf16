"""Kernel-level tests of tinyattn.kernels.cpu.matmul and .softmax against NumPy (float64 references)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyattn as ta
from tinyattn.kernels.cpu import matmul as mm
from tinyattn.kernels.cpu import policy
from tinyattn.kernels.cpu import softmax as sm

DTYPES = [np.float32, np.float64]


def tol(dtype, k=1):
    """Absolute tolerance for a sum of k products of O(1) numbers in `dtype`."""
    eps = np.finfo(dtype).eps
    return 8 * eps * max(1, k) ** 0.5 * 4


def operands(rng, dtype, Ba, Bb, M, K, N):
    a = rng.standard_normal((Ba, M, K)).astype(dtype)
    b = rng.standard_normal((Bb, K, N)).astype(dtype)
    return a, b


def check_all_variants(a, b, kernel=None):
    """a (Ba, M, K), b (Bb, K, N): nn, nt and tn agree with the float64 numpy product, computed with
    `kernel` ('avx512', 'avx2', 'portable'; None: the one chosen for this host)."""
    ref = a.astype(np.float64) @ b.astype(np.float64)           # (B, M, N), broadcast batch
    bt = np.ascontiguousarray(np.swapaxes(b, 1, 2))              # (Bb, N, K)
    at = np.ascontiguousarray(np.swapaxes(a, 1, 2))              # (Ba, K, M)
    k = a.shape[2]
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    for name, out in [("nn", mm.matmul_nn(a, b, kernel)), ("nt", mm.matmul_nt(a, bt, kernel)),
                      ("tn", mm.matmul_tn(at, b, kernel))]:
        assert out.dtype == a.dtype, name
        assert out.shape == ref.shape, name
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol(a.dtype, k) * scale, err_msg=name)


# Every kernel runs on any x86-64 CPU (a 64-byte shape on a smaller register file is only slower), so
# each is tested here whatever the host; 'portable' is the path for CPUs without AVX2/FMA.
KERNELS = ["avx512", "avx2", "portable"]

# Sizes around the micro-tiles (portable 3 x 3; outer 12 x 2 vectors and its 4-row tail, 6 x 2 vectors
# and its 2-row tail), the small-problem cut-off, the row blocks and the k-slices (portable 512, outer
# 256), none of them multiples of the blocks.
SHAPES = [
    (1, 1, 1, 1, 1),
    (1, 1, 3, 5, 7),
    (1, 1, 2, 1, 2),
    (1, 1, 67, 129, 33),
    (2, 2, 97, 41, 100),      # more than one row block, edge tiles in both directions
    (1, 1, 40, 700, 8),       # two k-slices: the second one accumulates
    (3, 3, 8, 16, 8),         # small-problem path, batched (dot products along k)
    (3, 3, 6, 6, 16),         # small-problem path along j (N = 16)
    (3, 1, 16, 6, 6),         # small-problem path along i (M the longest: out.T stored), broadcast b
    (1, 3, 6, 16, 6),         # small-problem path along k, broadcast a
    (1, 1, 61, 300, 77),      # 12-row panels + a 1-row tail (4-row tail kernel, zero-padded), 2 outer k-slices
    (1, 1, 64, 64, 64),       # 12-row panels + one full 4-row tail panel; full column panels
    (2, 1, 131, 257, 96),     # k-slice + 1; 96 = 3 x 32 / 6 x 16 columns; broadcast b
    (1, 2, 36, 33, 130),      # three full 12-row panels, a column tail of 2; broadcast a
    (1, 1, 30, 20, 1030),     # rows of b >= 4 KiB apart: b packed even where it could be read in place
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matmul_variants_match_numpy(rng, dtype, shape, kernel):
    a, b = operands(rng, dtype, *shape)
    check_all_variants(a, b, kernel)


@pytest.mark.parametrize("kernel", ["avx512", "avx2"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,Kin,Nout", [(1024, 64, 192), (2048, 512, 128)])
def test_matmul_outer_kernel_at_model_shapes(rng, dtype, kernel, M, Kin, Nout):
    """The three products of a Linear layer at the training benchmarks' sizes: forward x @ W^T (B packed
    by transposition, A read in place), input gradient dy @ W (both in place) and weight gradient
    dy^T @ x (A copied panel by panel, B in place), against float64 numpy."""
    x = rng.standard_normal((1, M, Kin)).astype(dtype)
    w = rng.standard_normal((1, Nout, Kin)).astype(dtype)
    dy = rng.standard_normal((1, M, Nout)).astype(dtype)
    x64, w64, dy64 = x[0].astype(np.float64), w[0].astype(np.float64), dy[0].astype(np.float64)
    for name, out, ref, k in [("x @ W^T", mm.matmul_nt(x, w, kernel), x64 @ w64.T, Kin),
                              ("dy @ W", mm.matmul_nn(dy, w, kernel), dy64 @ w64, Nout),
                              ("dy^T @ x", mm.matmul_tn(dy, x, kernel), dy64.T @ x64, M)]:
        assert out.dtype == dtype
        np.testing.assert_allclose(out[0], ref, rtol=0, atol=tol(dtype, k) * np.abs(ref).max(), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nth", [1, 2, 3, 8])
@pytest.mark.parametrize("M,N", [(20, 200), (150, 70), (13, 33)])
def test_matmul_outer_task_grid(rng, dtype, nth, M, N):
    """`_gemm_outer` splits rows (and, for few rows, columns) into about `nth` tasks: every split gives the
    same product. Called directly so that the grids exist whatever this machine's thread count."""
    K = 45
    for wide in (True, False):
        a = rng.standard_normal((2, M, K)).astype(dtype)
        b = rng.standard_normal((1, N, K)).astype(dtype)
        out = mm.gemm_outer(a.ravel(), 2, M * K, K, 1, b.ravel(), 1, N * K, K, 1, M, N, K, wide, nth,
                              np.empty(0, dtype), np.empty((0, 0), dtype), mm._NO_OFFS, mm._NO_OFFS)
        ref = a.astype(np.float64) @ np.swapaxes(b, 1, 2)
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype, K) * np.abs(ref).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nth", [1, 2, 3])
@pytest.mark.parametrize("B,Bb,M,N", [(7, 7, 13, 5), (6, 1, 16, 16), (5, 5, 3, 40)])
def test_matmul_outer_batch_runs_and_edge_tiles(rng, dtype, nth, B, Bb, M, N):
    """A batch of at least `nth` products: each task takes a run of whole products and packs each B itself.
    Edge tiles (rows past M, columns past N) are computed in full but stored under masks: the values that
    follow each row of B in memory (NaN here, read by the full-width panel copies) never reach the output."""
    K = 21
    for wide in (True, False):
        a = rng.standard_normal((B, M, K)).astype(dtype)
        wider = np.full((Bb, K, N + 3), np.nan, dtype)           # B = wider[..., :N]: NaN past column N
        wider[..., :N] = rng.standard_normal((Bb, K, N))
        ref = a.astype(np.float64) @ wider[..., :N]
        for b_rs, b_ks, bf in ((1, N + 3, wider.ravel()),        # dy @ W: B read in place / last panel packed
                               (K, 1, np.ascontiguousarray(np.swapaxes(wider[..., :N], 1, 2)).ravel())):   # x @ W^T
            out = mm.gemm_outer(a.ravel(), B, M * K, K, 1, bf, Bb, bf.size // Bb, b_rs, b_ks, M, N, K, wide, nth,
                                 np.empty(0, dtype), np.empty((0, 0), dtype), mm._NO_OFFS, mm._NO_OFFS)
            assert out.shape == (B, M, N) and not np.isnan(out).any()
            np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype, K) * np.abs(ref).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_outer_every_remainder_of_rows(rng, dtype):
    """A task's last rows, whatever their number (one tail panel, or a full-height panel with the rows past the
    end masked), with A row-major or with contiguous rows (dy^T, copied) and B packed or in place, on one
    thread and on two (then each task packs its own columns of B): the same product."""
    K, N = 70, 45
    for wide in (True, False):
        MR = policy.MICRO_ROWS_W64 if wide else policy.MICRO_ROWS_W32
        for M in range(MR, 2 * MR + 1):
            a = rng.standard_normal((M, K)).astype(dtype)
            b = rng.standard_normal((N, K)).astype(dtype)
            ref = a.astype(np.float64) @ b.T.astype(np.float64)
            at, bt = np.ascontiguousarray(a.T).ravel(), np.ascontiguousarray(b.T).ravel()
            for nth in (1, 2):
                for af, a_rs, a_ks in ((a.ravel(), K, 1), (at, 1, M)):
                    for bf, b_rs, b_ks in ((b.ravel(), K, 1), (bt, 1, N)):
                        out = mm.gemm_outer(af, 1, 0, a_rs, a_ks, bf, 1, 0, b_rs, b_ks, M, N, K, wide, nth,
                                             np.empty(0, dtype), np.empty((0, 0), dtype), mm._NO_OFFS, mm._NO_OFFS)
                        np.testing.assert_allclose(out[0], ref, rtol=0, atol=tol(dtype, K) * np.abs(ref).max())


@pytest.mark.parametrize("nth", [2, 3, 8])
@pytest.mark.parametrize("M,N,K,Ba,b_in_place", [(20, 30, 1100, 1, False), (7, 40, 1300, 2, False),
                                                 (13, 5, 2000, 1, False), (20, 30, 1100, 1, True),
                                                 (128, 100, 800, 1, True), (30, 77, 790, 2, True)])
def test_matmul_outer_k_split(rng, nth, M, N, K, Ba, b_in_place):
    """A long reduction into a small output (a weight gradient) is split along k into partial products
    that a second pass adds: the same product, the bias added once, the sums of A's rows (a Linear's
    bias gradient) over every k block, float64 integers still exact. B packed (contiguous along k): blocks
    of whole k-slices; B read in place (x in dy^T x): blocks of multiples of 16, from fewer k (800 and 790:
    blocks that start inside a k-slice, and B's partial last micro-panel with 77 and 100 columns)."""
    if b_in_place:   # the split's condition
        assert K >= mm.OUTER_SPLIT_K_IN_PLACE and K >= max(M, N)
    else:
        assert K >= mm.OUTER_SPLIT_K * mm.OUTER_KC and K >= 2 * max(M, N)

    def product(a, b, bias, sums):   # A read as a^T (matmul_tn's strides); B as b (N, K) or b^T (K, N) in memory
        bf, b_rs, b_ks = (np.ascontiguousarray(np.swapaxes(b, 1, 2)).ravel(), 1, N) if b_in_place else (b.ravel(), K, 1)
        return mm.gemm_outer(a.ravel(), Ba, K * M, 1, M, bf, 1, N * K, b_rs, b_ks, M, N, K, wide, nth, bias, sums,
                             mm._NO_OFFS, mm._NO_OFFS)

    for wide in (True, False):
        for dtype in DTYPES:
            a = rng.standard_normal((Ba, K, M)).astype(dtype)
            b = rng.standard_normal((1, N, K)).astype(dtype)
            bias = rng.standard_normal(N).astype(dtype)
            sums = np.zeros((nth, Ba * M), dtype)
            out = product(a, b, bias, sums)
            ref = np.swapaxes(a, 1, 2).astype(np.float64) @ np.swapaxes(b, 1, 2) + bias
            np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype, K) * np.abs(ref).max())
            ref_sums = a.astype(np.float64).sum(axis=1).reshape(-1)
            np.testing.assert_allclose(sums.sum(axis=0), ref_sums, rtol=0, atol=4 * np.finfo(dtype).eps * K * np.abs(a).max())
        a = rng.integers(-1000, 1000, size=(Ba, K, M)).astype(np.float64)
        b = rng.integers(-1000, 1000, size=(1, N, K)).astype(np.float64)
        sums = np.zeros((nth, Ba * M))
        out = product(a, b, np.empty(0), sums)
        np.testing.assert_array_equal(out, np.swapaxes(a, 1, 2) @ np.swapaxes(b, 1, 2))
        np.testing.assert_array_equal(sums.sum(axis=0), a.sum(axis=1).reshape(-1))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("Ba,Bb,K,M,N", [(1, 1, 2048, 96, 128), (1, 1, 300, 40, 70), (1, 1, 300, 128, 100),
                                         (1, 1, 300, 100, 200), (2, 1, 50, 13, 33),
                                         (1, 3, 64, 5, 7), (1, 1, 3, 2, 4), (1, 1, 5, 3, 0), (1, 1, 0, 3, 4)])
def test_matmul_tn_with_the_sums_of_a(rng, kernel, Ba, Bb, K, M, N):
    """matmul_tn(a, b, a_sums=True) = (a^T b, a.sum over k): a Linear's dW and db from one call, whichever
    kernel runs (the outer-product kernel sums inside; the others leave it to NumPy) and whichever task grid
    (2048 x 96: k blocks; 300 x 128 and 300 x 100: row blocks of a copied A, on two or more threads)."""
    for dtype in DTYPES:
        a = rng.standard_normal((Ba, K, M)).astype(dtype)
        b = rng.standard_normal((Bb, K, N)).astype(dtype)
        out, s = mm.matmul_tn(a, b, kernel, a_sums=True)
        ref = np.swapaxes(a, 1, 2).astype(np.float64) @ b
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype, K) * np.abs(ref).max(initial=0))
        assert s.shape == (max(Ba, Bb), M) and s.dtype == dtype
        ref_s = np.broadcast_to(a.astype(np.float64).sum(axis=1), s.shape)
        np.testing.assert_allclose(s, ref_s, rtol=0, atol=4 * np.finfo(dtype).eps * K * np.abs(a).max(initial=0))


@pytest.mark.parametrize("kernel", KERNELS)
def test_matmul_float64_is_as_exact_as_a_dot_product(rng, kernel):
    """float64 keeps its precision: on integers (exact in float64, sums below 2^53) the result is exact,
    and on random data it is within a few ulps of the float64 reference."""
    a = rng.integers(-1000, 1000, size=(1, 53, 301)).astype(np.float64)
    b = rng.integers(-1000, 1000, size=(1, 301, 47)).astype(np.float64)
    np.testing.assert_array_equal(mm.matmul_nn(a, b, kernel), a @ b)
    a = rng.standard_normal((1, 53, 301))
    b = rng.standard_normal((1, 301, 47))
    ref = a @ b
    np.testing.assert_allclose(mm.matmul_nn(a, b, kernel), ref, rtol=0, atol=1e-13 * np.abs(ref).max())


@pytest.mark.parametrize("kernel", KERNELS)
def test_matmul_non_contiguous_inputs_through_the_backend(rng, kernel, monkeypatch):
    """The backend makes strided / transposed views contiguous before the kernel: the product of views
    equals numpy's, for every kernel."""
    from tinyattn import backend

    monkeypatch.setattr(mm, "KERNEL", kernel)
    be = backend.cpu()
    base_a = rng.standard_normal((3, 90, 140)).astype(np.float32)
    base_b = rng.standard_normal((3, 100, 130)).astype(np.float32)
    a = base_a[:, ::2, 1:101:2]                       # (3, 45, 50), strided both ways
    b = np.swapaxes(base_b[:, :50, :70], 1, 2)        # (3, 70, 50) as a transposed view
    ref = a.astype(np.float64) @ np.swapaxes(b, 1, 2).astype(np.float64)
    for out in (be.matmul(a, np.swapaxes(b, 1, 2)), be.matmul_nt(a, b),
                be.matmul_tn(np.swapaxes(a, 1, 2), np.swapaxes(b, 1, 2))):
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol(np.float32, 50) * np.abs(ref).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("Ba,Bb", [(1, 4), (4, 1)])
@pytest.mark.parametrize("M,K,N", [(5, 3, 4), (50, 70, 40)])   # small path and blocked path
def test_matmul_batch_broadcast(rng, dtype, Ba, Bb, M, K, N):
    a, b = operands(rng, dtype, Ba, Bb, M, K, N)
    out = mm.matmul_nn(a, b)
    assert out.shape == (4, M, N)
    # every output batch uses the single batch of the broadcast operand
    for p in range(4):
        ref = a[p if Ba > 1 else 0].astype(np.float64) @ b[p if Bb > 1 else 0]
        np.testing.assert_allclose(out[p], ref, rtol=0, atol=tol(dtype, K) * max(1, np.abs(ref).max()))
    check_all_variants(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_empty_inner_dimension_gives_zeros(dtype):
    a = np.ones((2, 3, 0), dtype)
    b = np.ones((2, 0, 4), dtype)
    out = mm.matmul_nn(a, b)
    assert out.shape == (2, 3, 4) and out.dtype == dtype
    assert np.all(out == 0)


@given(
    Ba=st.sampled_from([1, 2]), bcast=st.booleans(),
    M=st.integers(1, 40), K=st.integers(1, 40), N=st.integers(1, 40),
    dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
)
def test_matmul_random_shapes(Ba, bcast, M, K, N, dtype, seed):
    rng = np.random.default_rng(seed)
    Bb = 1 if bcast else Ba
    a, b = operands(rng, dtype, Ba, Bb, M, K, N)
    check_all_variants(a, b)


@given(
    M=st.integers(1, 80), K=st.integers(1, 300), N=st.integers(1, 80),
    kernel=st.sampled_from(KERNELS), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
)
def test_matmul_random_shapes_every_kernel(M, K, N, kernel, dtype, seed):
    """Above the small-problem cut-off (so the blocked kernels run), any sizes, every kernel."""
    rng = np.random.default_rng(seed)
    a, b = operands(rng, dtype, 1, 1, M, K, N)
    check_all_variants(a, b, kernel)


def test_matmul_fastmath_keeps_float32_accuracy(rng):
    """The micro-kernel is compiled with reassoc/contract: its float32 error must stay at the level of a
    plain float32 dot product (it is usually smaller: split accumulators), checked on a long k."""
    K = 2048
    a = rng.standard_normal((1, 9, K)).astype(np.float32)
    b = rng.standard_normal((1, K, 9)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for out in (mm.matmul_nn(a, b), mm.matmul_nt(a, np.ascontiguousarray(np.swapaxes(b, 1, 2)))):
        err = np.abs(out - ref).max()
        # a sequential float32 dot of length K is off by about eps*sqrt(K)*|terms|; allow that, no more
        assert err <= np.finfo(np.float32).eps * np.sqrt(K) * np.abs(ref).max() * 2


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_propagates_nan_and_inf(kernel, dtype):
    for M, K, N in [(6, 20, 6), (30, 40, 50)]:          # small path, blocked path
        a = np.ones((1, M, K), dtype)
        b = np.ones((1, K, N), dtype)
        a[0, 1, 3] = np.nan
        a[0, 4, 7] = np.inf
        for out in (mm.matmul_nn(a, b, kernel), mm.matmul_nt(a, np.ascontiguousarray(np.swapaxes(b, 1, 2)), kernel)):
            assert np.all(np.isnan(out[0, 1])) and np.all(np.isposinf(out[0, 4]))
            rest = [i for i in range(M) if i not in (1, 4)]
            assert np.all(out[0, rest] == K)


@pytest.mark.parametrize("dtype", DTYPES)
def test_register_transpose_blocks(dtype):
    """microkernel.transpose_w64 / _w32 (matmul packs x @ W^T's W with them): a V x V block, V the lanes of
    a 64- / 32-byte register, moved exactly to its transpose at any offsets and row strides, and nothing
    around it touched."""
    from numba import njit

    from tinyattn.kernels.cpu import microkernel as uk

    @njit
    def both(src, so, srs, d64, d32, do, drs):
        uk.transpose_w64(src, so, srs, d64, do, drs)
        uk.transpose_w32(src, so, srs, d32, do, drs)

    src = np.random.default_rng(0).standard_normal((50, 41)).astype(dtype)
    d64, d32 = np.full((30, 37), -7.0, dtype), np.full((30, 37), -7.0, dtype)
    both(src.ravel(), 3 * 41 + 5, 41, d64.ravel(), d32.ravel(), 2 * 37 + 1, 37)
    for dst, vbytes in ((d64, 64), (d32, 32)):
        V = vbytes // np.dtype(dtype).itemsize
        want = np.full_like(dst, -7.0)
        want[2:2 + V, 1:1 + V] = src[3:3 + V, 5:5 + V].T
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_micro_kernel_edge_masks(dtype):
    """The micro-kernels with edge arguments (mr, nr) store or add C[r, j] for r < mr, j < nr only: every
    other value of C, inside the tile and around it, keeps its sentinel."""
    from numba import njit

    from tinyattn.kernels.cpu import microkernel as uk

    @njit
    def tile(wide, kc, a, bp, c, ldc, acc, mr, nr):
        if wide:
            uk.ukernel_w64e(kc, a, 0, kc, 1, bp, 0, bp.size // kc, c, ldc + 1, ldc, acc, mr, nr)
        else:
            uk.ukernel_w32e(kc, a, 0, kc, 1, bp, 0, bp.size // kc, c, ldc + 1, ldc, acc, mr, nr)

    rng = np.random.default_rng(3)
    for wide, MR, vbytes in ((True, 12, 64), (False, 6, 32)):
        NR = 2 * vbytes // np.dtype(dtype).itemsize
        kc = 7
        a = rng.standard_normal((MR, kc)).astype(dtype)
        bp = rng.standard_normal((kc, NR)).astype(dtype)
        prod = a.astype(np.float64) @ bp
        for mr, nr, acc in ((MR, NR, False), (MR, NR, True), (MR - 1, NR // 2 + 1, False), (1, 1, True),
                            (MR, 3, True), (2, NR, False)):
            c0 = rng.standard_normal((MR + 2, NR + 2)).astype(dtype)   # the tile at (1, 1), ldc = NR + 2
            c = c0.copy()
            tile(wide, kc, a.ravel(), bp.ravel(), c.ravel(), NR + 2, acc, mr, nr)
            want = c0.astype(np.float64)
            want[1:1 + mr, 1:1 + nr] = (want[1:1 + mr, 1:1 + nr] if acc else 0) + prod[:mr, :nr]
            np.testing.assert_allclose(c, want, rtol=0, atol=tol(dtype, kc) * 4, err_msg=f"{wide} {mr} {nr} {acc}")
            untouched = np.ones(c.shape, bool)
            untouched[1:1 + mr, 1:1 + nr] = False
            np.testing.assert_array_equal(c[untouched], c0[untouched])


def test_outer_micro_kernel_compiles_to_vector_fmas():
    """The micro-kernel's IR is vector IR whatever Numba's SLP setting (off by default), so a build, cached
    or not, is the vector one: a function calling it compiles to packed FMAs on zmm (ymm) registers when
    the CPU has AVX-512 (AVX2 + FMA)."""
    from numba import njit

    from tinyattn.kernels.cpu import microkernel as uk

    feats = uk.host_features()
    if not {"avx2", "fma"} <= feats:
        pytest.skip("no AVX2/FMA on this CPU: the portable kernel is the one used")
    kern, reg = (uk.ukernel_w64, "zmm") if "avx512f" in feats else (uk.ukernel_w32, "ymm")

    @njit
    def tile(a, b, c):
        kern(a.size // 12, a, 0, 1, 12, b, 0, c.shape[1], c.ravel(), 0, c.shape[1], False)

    a = np.arange(24, dtype=np.float32)                        # kc = 2 for the 12-row shape
    nr = 32 if reg == "zmm" else 16
    b = np.ones(2 * nr, np.float32)
    c = np.empty((12 if reg == "zmm" else 6, nr), np.float32)
    tile(a, b, c)
    asm = next(iter(tile.inspect_asm().values()))
    assert "vfmadd" in asm and reg in asm
    # A[r, k] = a[12 k + r], B[k, j] = 1: C[r, j] = A[r, 0] + A[r, 1] = 2 r + 12
    np.testing.assert_array_equal(c, np.broadcast_to(2 * np.arange(c.shape[0])[:, None] + 12.0, c.shape))


def test_host_kernel_choice(monkeypatch):
    """The kernel follows the features of the CPU Numba targets; TINYATTN_MATMUL_KERNEL overrides it."""
    from numba.core import config

    from tinyattn.kernels.cpu import microkernel as uk

    monkeypatch.delenv("TINYATTN_MATMUL_KERNEL", raising=False)
    assert mm.KERNEL in uk.KERNELS
    monkeypatch.setattr(config, "CPU_NAME", "generic")
    for feats, want in [("", "portable"), ("+sse2,+avx", "portable"), ("+avx2,+fma", "avx2"),
                        ("+avx2,-fma", "portable"), ("+avx2,+fma,+avx512f", "avx512")]:
        monkeypatch.setattr(config, "CPU_FEATURES", feats)
        assert uk.host_kernel() == want, feats
    monkeypatch.setenv("TINYATTN_MATMUL_KERNEL", "portable")
    assert uk.host_kernel() == "portable"
    monkeypatch.setenv("TINYATTN_MATMUL_KERNEL", "sse9")
    with pytest.raises(ValueError, match="TINYATTN_MATMUL_KERNEL"):
        uk.host_kernel()


# ----------------------------------------------------------------------------- softmax

def softmax_ref(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax_ref(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def stol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 130), (70, 5)])  # (70, 5): blocks of one and of two rows
def test_softmax_and_log_softmax_forward(rng, dtype, shape):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = sm.softmax_forward(x)
    ly = sm.log_softmax_forward(x)
    assert y.dtype == dtype and ly.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, softmax_ref(x), **stol(dtype))
    np.testing.assert_allclose(ly, log_softmax_ref(x), **stol(dtype))
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=0, atol=10 * np.finfo(dtype).eps * shape[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_values(dtype):
    x = np.array([[1e4, -1e4, 0.0, 1e4],
                  [-1e4, -1e4, -1e4, -1e4],
                  [1e4, 1e4 - 1, -1e4, 3.0]], dtype=dtype)
    y = sm.softmax_forward(x)
    ly = sm.log_softmax_forward(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ly))
    np.testing.assert_allclose(y, softmax_ref(x), **stol(dtype))
    np.testing.assert_allclose(ly, log_softmax_ref(x), **stol(dtype))
    np.testing.assert_allclose(y[1], 0.25)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_all_minus_inf_row_is_nan_like_pytorch(dtype):
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]], dtype=dtype)
    y = sm.softmax_forward(x)
    assert np.all(np.isnan(y[0]))
    np.testing.assert_allclose(y[1], [0.5, 0.0, 0.5])
    assert np.all(np.isnan(sm.log_softmax_forward(x)[0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [5, 64, 1031])
def test_softmax_nan_or_inf_anywhere_makes_only_its_row_nan(rng, dtype, cols):
    # the row maximum is a vectorised reduction without NaN handling (kernels/cpu/softmax.py `_row_max`): a NaN
    # or +inf at the start, in the vector body or in the scalar tail must still give a NaN row, as in PyTorch
    x = rng.standard_normal((8, cols)).astype(dtype)
    for row, col, value in ((1, 0, np.nan), (2, cols // 2, np.nan), (3, cols - 1, np.nan), (4, 0, np.inf),
                            (5, cols - 1, np.inf), (6, cols // 3, -np.inf)):
        x[row, col] = value
    want = softmax_ref(x[[0, 6, 7]])
    for f in (sm.softmax_forward, sm.log_softmax_forward):
        y = f(x)
        assert np.isnan(y[1:6]).all(), f.__name__
        assert np.isfinite(y[[0, 7]]).all() and not np.isnan(y[6]).any()
    np.testing.assert_allclose(sm.softmax_forward(x)[[0, 6, 7]], want, **stol(dtype))
    assert sm.softmax_forward(x)[6, cols // 3] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 9), (13, 200)])
def test_softmax_backward_matches_jacobian(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y = sm.softmax_forward(x)
    dx = sm.softmax_backward(y, dy)
    # explicit Jacobian per row: J = diag(y) - y yᵀ, dx = J dy
    y64 = y.astype(np.float64)
    ref = np.stack([(np.diag(r) - np.outer(r, r)) @ g for r, g in zip(y64, dy.astype(np.float64))])
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref, **stol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 9), (13, 200)])
def test_log_softmax_backward_matches_jacobian(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ly = sm.log_softmax_forward(x)
    dx = sm.log_softmax_backward(ly, dy)
    # J = I - 1 pᵀ with p = softmax(x): dx = dy - p * sum(dy)
    p = softmax_ref(x)
    ref = np.stack([(np.eye(shape[1]) - np.outer(np.ones(shape[1]), r)).T @ g
                    for r, g in zip(p, dy.astype(np.float64))])
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref, **stol(dtype))


def test_softmax_backward_by_central_differences(rng):
    """float64 finite differences of L = sum(w * softmax(x)) against the kernel's backward."""
    x = rng.standard_normal((3, 6))
    w = rng.standard_normal((3, 6))
    dx = sm.softmax_backward(sm.softmax_forward(x), w)
    h = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = (np.sum(w * sm.softmax_forward(xp)) - np.sum(w * sm.softmax_forward(xm))) / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vectorised_exp_is_within_two_ulp(dtype):
    """vexp, the polynomial exp behind the softmax, attention and GELU kernels: <= 2 ulp on its domain
    (x <= 80, results above the smallest normal), 0 below it, exact at 0, NaN for NaN (a wrong
    exponent-bit trick, a missing clamp or a swallowed NaN fails here)."""
    from tinyattn.kernels.cpu.vexp import vexp_array

    lo = -110.0 if dtype == np.float32 else -760.0
    z = np.concatenate([np.linspace(lo, 80.0, 20011), -np.logspace(-30, 2, 2000), [np.nan, -np.inf, 0.0, -0.0]])
    z = z.astype(dtype)[None, :]
    out = np.empty_like(z)
    vexp_array(z, out)
    ref = np.exp(z.astype(np.float64))
    normal = ref >= 4 * np.finfo(dtype).tiny
    rel = np.abs(out[normal].astype(np.float64) - ref[normal]) / ref[normal]
    assert rel.max() <= 2 * np.finfo(dtype).eps
    assert np.all(out[~normal & ~np.isnan(z)] <= 4 * np.finfo(dtype).tiny) and np.all(out[~np.isnan(z)] >= 0)
    assert np.isnan(out[0, -4]) and out[0, -3] == 0 and out[0, -2] == 1 and out[0, -1] == 1


def test_compile_notice_names_the_outermost_tinyattn_kernel(capsys, monkeypatch):
    """A first run says which kernel is compiling: Numba's 'numba:compile' event (sent only on a cache
    miss) for a tinyattn kernel prints one line naming it and its dtype; helpers compiling inside it and
    functions outside tinyattn print nothing."""
    import sys

    from numba import njit, types
    from numba.core import event

    from tinyattn import backend, runtime

    backend.cpu()                                  # installs the listener (once per process)
    assert runtime.CompileNotice.installed
    monkeypatch.delitem(sys.modules, "tqdm", raising=False)   # plain stderr, not tqdm.write

    @njit
    def user_function(x):
        return x

    arr = types.Array(types.float32, 1, "C")
    with event.trigger_event("numba:compile", data={"dispatcher": mm._gemm_outer, "args": (arr, types.int64)}):
        with event.trigger_event("numba:compile", data={"dispatcher": mm._panel, "args": (arr,)}):
            pass
    with event.trigger_event("numba:compile", data={"dispatcher": user_function, "args": (arr,)}):
        pass
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "tinyattn: compiling matmul.outer._gemm_outer (float32) (first run only: Numba caches it on disk)"]



@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_malloc_thresholds_are_set_unless_the_user_chose(tmp_path):
    """The CPU backend sets glibc's mmap/trim thresholds (runtime.tune_malloc) at its creation, so that a
    training step's large temporaries reuse heap pages instead of faulting in new ones every step; not
    when TINYATTN_MALLOC_TUNING=0 or when the user set malloc's own variables. Each case in a new process
    (the backend is made once per process)."""
    import os
    import subprocess
    import sys

    code = "from tinyattn import backend; print(backend.cpu().malloc_tuned)"
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                                              "GLIBC_TUNABLES", "MALLOC_TOP_PAD_")}

    def tuned(**extra):
        out = subprocess.run([sys.executable, "-c", code], env=dict(env, **extra), capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    try:
        __import__("ctypes").CDLL("libc.so.6").gnu_get_libc_version
    except (OSError, AttributeError):
        assert tuned() == "False"  # not glibc: nothing to set
        return
    assert tuned() == "True"
    assert tuned(TINYATTN_MALLOC_TUNING="0") == "False"
    assert tuned(MALLOC_TRIM_THRESHOLD_="1000000") == "False"

# ---- few-row products: `_gemm_rows` (kernel="rows"), which the backend picks for M <= ROWS_MAX_NT / _NN ----

ROWS_SHAPES = [
    (1, 1, 1, 1, 1),
    (1, 1, 1, 128, 384),      # one token through a Linear while generating
    (1, 1, 3, 37, 11),        # odd sizes
    (2, 1, 5, 129, 33),       # batched a, broadcast b
    (1, 3, 16, 7, 1030),      # broadcast a, the largest M the backend sends here, rows of b >= 4 KiB apart
    (1, 1, 2, 0, 5),          # K = 0: zeros
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROWS_SHAPES)
def test_matmul_rows_kernel_matches_numpy(rng, dtype, shape):
    a, b = operands(rng, dtype, *shape)
    check_all_variants(a, b, "rows")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_rows_kernel_float64_exact_and_nan(rng, dtype):
    """Integers give the exact product; NaN and inf in a row of a reach that whole output row only."""
    a = rng.integers(-100, 100, size=(1, 3, 77)).astype(dtype)
    b = rng.integers(-100, 100, size=(1, 77, 19)).astype(dtype)
    np.testing.assert_array_equal(mm.matmul_nn(a, b, "rows"), a @ b)
    np.testing.assert_array_equal(mm.matmul_nt(a, np.ascontiguousarray(np.swapaxes(b, 1, 2)), "rows"), a @ b)
    a[0, 0, 5], a[0, 2, 9] = np.nan, np.inf
    b = np.ones_like(b)
    for out in (mm.matmul_nn(a, b, "rows"), mm.matmul_nt(a, np.ascontiguousarray(np.swapaxes(b, 1, 2)), "rows")):
        assert np.all(np.isnan(out[0, 0])) and np.all(np.isposinf(out[0, 2]))
        np.testing.assert_array_equal(out[0, 1], a[0, 1].sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 2, 5, 16, 17])
def test_matmul_few_rows_through_the_backend(rng, dtype, M, monkeypatch):
    """The backend sends few-row products to `_gemm_rows` (and more rows to the blocked kernels); non-contiguous
    views are made contiguous first; every variant equals numpy's float64 product."""
    from tinyattn import backend

    be = backend.cpu()
    calls = []
    real = mm._gemm_rows

    def spy(*args):
        calls.append(args[-3])  # M
        return real(*args)

    monkeypatch.setattr(mm, "_gemm_rows", spy)
    K, N = 45, 70
    base_a = rng.standard_normal((2, 2 * M, 2 * K)).astype(dtype)
    base_b = rng.standard_normal((2, N + 3, 2 * K)).astype(dtype)
    a = base_a[:, ::2, ::2]                            # (2, M, K), strided both ways
    bt = base_b[:, 3:, 1::2]                           # (2, N, K), strided
    b = np.swapaxes(bt, 1, 2)                          # (2, K, N) as a transposed view
    ref = a.astype(np.float64) @ b.astype(np.float64)
    atol = tol(dtype, K) * np.abs(ref).max()
    np.testing.assert_allclose(be.matmul_nt(a, bt), ref, rtol=0, atol=atol)
    np.testing.assert_allclose(be.matmul(a, b), ref, rtol=0, atol=atol)
    np.testing.assert_allclose(be.matmul_tn(np.swapaxes(a, 1, 2), b), ref, rtol=0, atol=atol)
    assert calls == [M] * ((M <= mm.ROWS_MAX_NT) + 2 * (M <= mm.ROWS_MAX_NN))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS + ["rows", None])
@pytest.mark.parametrize("M,K,N", [(150, 45, 70), (3, 20, 33), (40, 0, 37), (13, 64, 96)])
def test_matmul_nt_bias_is_added_to_every_row(rng, dtype, kernel, M, K, N):
    """matmul_nt(a, b, bias=...) = a @ b^T + bias, the bias added after the k sum (a Linear's forward): every
    kernel (the outer kernel adds it inside, per tile), the tiny-product path, K = 0 (the bias alone), two
    batch elements; float64 integers stay exact."""
    a = rng.integers(-50, 50, size=(2, M, K)).astype(dtype)
    b = rng.integers(-50, 50, size=(1, N, K)).astype(dtype)
    bias = rng.integers(-50, 50, size=N).astype(dtype)
    out = mm.matmul_nt(a, b, kernel, bias)
    ref = a.astype(np.float64) @ np.swapaxes(b, 1, 2).astype(np.float64) + bias
    assert out.shape == (2, M, N) and out.dtype == dtype
    if dtype == np.float64:
        np.testing.assert_array_equal(out, ref)
    else:
        np.testing.assert_allclose(out, ref, rtol=1e-6)
    np.testing.assert_array_equal(mm.matmul_nt(a, b, kernel, bias), mm.matmul_nt(a, b, kernel) + bias)


def test_backend_sums_of_whole_arrays(rng):
    """CPUBackend.add / add_ (residual connections, gradient accumulation): NumPy's result bit for bit,
    from the parallel kernel for large arrays of one shape and dtype, NumPy's own sum for the rest
    (broadcasting, mixed dtypes, strided views, small arrays); add_ writes into its first argument."""
    from tinyattn import backend as backend_mod

    be = backend_mod.cpu()
    n = backend_mod.PARALLEL_SUM
    for dtype in DTYPES:
        a = rng.standard_normal((3, n // 2 + 5)).astype(dtype)   # large: the kernel (on >1 thread)
        b = rng.standard_normal(a.shape).astype(dtype)
        got = be.add(a, b)
        np.testing.assert_array_equal(got, a + b)
        assert got.dtype == dtype and not np.shares_memory(got, a)
        want = a + b
        same = be.add_(a, b)
        assert same is a
        np.testing.assert_array_equal(a, want)
    a = rng.standard_normal((4, n)).astype(np.float32)
    for b in (np.float32(2.0), rng.standard_normal(n).astype(np.float32),           # broadcast
              rng.standard_normal((4, n)),                                           # float64
              rng.standard_normal((n, 4)).astype(np.float32).T,                      # a strided view
              ):
        np.testing.assert_array_equal(be.add(a, b), a + b)
    small = rng.standard_normal(10).astype(np.float32)
    np.testing.assert_array_equal(be.add(small, small), small + small)
    for dtype in (np.float16, np.dtype(">f4"), np.longdouble):   # no kernel for these: NumPy's sum
        a = rng.standard_normal(n).astype(dtype)
        want = a + a
        np.testing.assert_array_equal(be.add(a, a), want)
        assert be.add(a, a).dtype == want.dtype
        np.testing.assert_array_equal(be.add_(a, a.copy()), want)


def test_large_sums_through_the_public_api_keep_every_float_dtype():
    """A residual sum and a backward's gradient sum of >= PARALLEL_SUM elements, for the dtypes the parallel
    kernel takes and for those it does not (float16, big-endian float32): NumPy's values and dtypes."""
    from tinyattn.backend import PARALLEL_SUM

    for dtype in (np.float32, np.float64, np.float16, np.dtype(">f4")):
        x0 = np.linspace(-1, 1, PARALLEL_SUM).astype(dtype)
        x = ta.tensor(x0, requires_grad=True)
        y = x * 2
        out = y * y + y * 3          # y's two gradients are summed in the backward
        np.testing.assert_array_equal((x + x).numpy(), x0 + x0)
        out.backward(ta.tensor(np.ones_like(x0)))   # (a float16 .sum() would overflow)
        want = (2 * (2 * x0) + 3) * 2
        np.testing.assert_allclose(x.grad.numpy().astype(np.float64), want.astype(np.float64), rtol=1e-3)
