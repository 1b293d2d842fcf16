"""Kernel-level tests of tinyattn.kernels.cpu.matmul and .softmax against NumPy (float64 references)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyattn.kernels.cpu import matmul as mm
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


def check_all_variants(a, b):
    """a (Ba, M, K), b (Bb, K, N): nn, nt and tn agree with the float64 numpy product."""
    ref = a.astype(np.float64) @ b.astype(np.float64)           # (B, M, N), broadcast batch
    bt = np.ascontiguousarray(np.swapaxes(b, 1, 2))              # (Bb, N, K)
    at = np.ascontiguousarray(np.swapaxes(a, 1, 2))              # (Ba, K, M)
    k = a.shape[2]
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    for name, out in [("nn", mm.matmul_nn(a, b)), ("nt", mm.matmul_nt(a, bt)), ("tn", mm.matmul_tn(at, b))]:
        assert out.dtype == a.dtype, name
        assert out.shape == ref.shape, name
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol(a.dtype, k) * scale, err_msg=name)


# Sizes around the micro-tile (3 x 3), the small-problem cut-off, the row block (<= 96) and the
# k-slice (512), none of them multiples of the blocks.
SHAPES = [
    (1, 1, 1, 1, 1),
    (1, 1, 3, 5, 7),
    (1, 1, 2, 1, 2),
    (1, 1, 67, 129, 33),
    (2, 2, 97, 41, 100),      # more than one row block, edge tiles in both directions
    (1, 1, 40, 700, 8),       # two k-slices: the second one accumulates
    (3, 3, 8, 16, 8),         # small-problem path, batched
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matmul_variants_match_numpy(rng, dtype, shape):
    a, b = operands(rng, dtype, *shape)
    check_all_variants(a, b)


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


def test_matmul_propagates_nan_and_inf():
    a = np.ones((1, 6, 20), np.float64)
    b = np.ones((1, 20, 6), np.float64)
    a[0, 1, 3] = np.nan
    a[0, 4, 7] = np.inf
    out = mm.matmul_nn(a, b)
    assert np.all(np.isnan(out[0, 1])) and np.all(np.isposinf(out[0, 4]))
    assert np.all(out[0, [0, 2, 3, 5]] == 20)


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
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 130)])
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
