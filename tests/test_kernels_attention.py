"""The fused CPU attention kernel against a plain numpy reference that materialises P (float64), and the
causal mask's alignment (a query offset) in the CPU and CUDA kernels."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyattn.backend_contract import attention_backward_reference, attention_reference
from tinyattn.kernels.cpu import attention as A
from tinyattn.kernels.cpu.attention import BLOCK_K, BLOCK_Q, attention_backward, attention_forward

DUMMY = np.zeros((1, 1, 1))
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def reference(q, k, v, bias, causal, window, scale, dout):
    """out, lse, (dq, dk, dv) in float64 from the one reference definition of the masking rule and the math
    (tinyattn.backend_contract.attention_reference / attention_backward_reference: P materialised; the
    kernels' window -1 is the contract's None). A fully masked row: out = 0, lse = -inf, P row = 0."""
    window = None if window < 0 else window
    out, lse = attention_reference(q, k, v, bias, causal, window, scale)
    return out, lse, attention_backward_reference(q, k, v, bias, causal, window, scale, dout)


def make(rng, BH, L, S, E, Ev, dtype, spread=1.0):
    q = (spread * rng.standard_normal((BH, L, E))).astype(dtype)
    k = (spread * rng.standard_normal((BH, S, E))).astype(dtype)
    v = rng.standard_normal((BH, S, Ev)).astype(dtype)
    dout = rng.standard_normal((BH, L, Ev)).astype(dtype)
    return q, k, v, dout


def check(q, k, v, dout, bias=None, causal=False, window=-1, scale=None, groups=None, tol=None):
    dtype = q.dtype.type
    tol = TOL[dtype] if tol is None else tol
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    has_bias = bias is not None
    b = bias if has_bias else DUMMY
    out, lse = attention_forward(q, k, v, b, has_bias, causal, window, scale)
    dq, dk, dv = A._backward_impl(q, k, v, b, has_bias, causal, window, scale, out, lse, dout, groups)
    r_out, r_lse, r_grads = reference(q, k, v, bias, causal, window, scale, dout)
    assert out.dtype == lse.dtype == dq.dtype == dk.dtype == dv.dtype == q.dtype
    assert out.shape == r_out.shape and dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    for a in (out, dq, dk, dv):
        assert np.isfinite(a).all()
    np.testing.assert_allclose(out, r_out, **tol)
    np.testing.assert_array_equal(np.isinf(lse), np.isinf(r_lse))
    fin = np.isfinite(r_lse)
    np.testing.assert_allclose(lse[fin], r_lse[fin], **tol)
    for name, got, want in zip(("dq", "dk", "dv"), (dq, dk, dv), r_grads):
        np.testing.assert_allclose(got, want, err_msg=name, **tol)
    return out, lse, (dq, dk, dv)


SHAPES = [  # (BH, L, S, E, Ev): tiny, crossing tiles, L > S, exact tile multiples
    (2, 7, 13, 5, 3),
    (2, 70, 130, 16, 8),
    (1, 130, 70, 8, 12),
    (1, BLOCK_Q, 2 * BLOCK_K, 8, 8),
]
MASKS = [(False, -1), (True, -1), (False, 5), (True, 3)]  # (causal, window)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal,window", MASKS)
def test_matches_reference(dtype, shape, causal, window):
    BH, L, S, E, Ev = shape
    rng = np.random.default_rng(hash((shape, causal, window)) % 2**32)
    check(*make(rng, BH, L, S, E, Ev, dtype), causal=causal, window=window)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_scores_are_stable(dtype):
    # scores up to ~1e3: an unshifted exp would overflow; the running max must keep everything finite.
    # (float32 scores that large carry absolute rounding errors ~1e-4, hence its looser tolerance)
    rng = np.random.default_rng(1)
    q, k, v, dout = make(rng, 2, 70, 130, 16, 8, dtype, spread=8.0)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == np.float64 else dict(rtol=1e-2, atol=2e-3)
    check(q, k, v, dout, scale=1.0, tol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boolean_mask_bias_with_fully_masked_rows(dtype):
    BH, L, S = 2, 70, 130
    rng = np.random.default_rng(2)
    q, k, v, dout = make(rng, BH, L, S, 8, 6, dtype)
    keep = rng.random((BH, L, S)) < 0.7
    keep[0, 3, :] = False  # a fully masked row
    keep[1, 65, :] = False  # one in the second query tile
    keep[:, :, 100] = False  # a key nobody sees
    bias = np.where(keep, 0.0, -np.inf).astype(dtype)
    out, lse, (dq, dk, dv) = check(q, k, v, dout, bias=bias)
    for p, i in ((0, 3), (1, 65)):
        assert np.all(out[p, i] == 0) and lse[p, i] == -np.inf and np.all(dq[p, i] == 0)
    assert np.all(dk[:, 100] == 0) and np.all(dv[:, 100] == 0)


def test_window_and_causal_leave_rows_fully_masked():
    # L > S with a window: query rows i > S - 1 + window see no key at all
    rng = np.random.default_rng(3)
    q, k, v, dout = make(rng, 1, 90, 20, 4, 4, np.float64)
    out, lse, (dq, dk, dv) = check(q, k, v, dout, causal=True, window=2)
    assert np.all(out[0, 22:] == 0) and np.all(np.isneginf(lse[0, 22:])) and np.all(dq[0, 22:] == 0)
    assert np.isfinite(lse[0, :22]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_bias(dtype):
    rng = np.random.default_rng(4)
    q, k, v, dout = make(rng, 3, 70, 75, 8, 8, dtype)
    bias = (2.0 * rng.standard_normal((3, 70, 75))).astype(dtype)
    check(q, k, v, dout, bias=bias, causal=True)


@pytest.mark.parametrize("view_shape", [(1, 70, 75), (3, 1, 75), (1, 1, 75)])
def test_broadcast_zero_stride_bias(view_shape):
    rng = np.random.default_rng(5)
    q, k, v, dout = make(rng, 3, 70, 75, 8, 8, np.float32)
    small = np.where(rng.random(view_shape) < 0.8, 0.5 * rng.standard_normal(view_shape), -np.inf)
    bias = np.broadcast_to(small.astype(np.float32), (3, 70, 75))
    assert 0 in bias.strides and not bias.flags.writeable and not bias.flags.c_contiguous
    check(q, k, v, dout, bias=bias)
    check(q, k, v, dout, bias=small.astype(np.float32))  # the kernel broadcasts a 3-D bias itself too


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_dq_split_over_key_tile_groups(groups):
    # BH = 1, several key tiles: G groups of key tiles own separate dq slabs that are summed afterwards
    rng = np.random.default_rng(6)
    q, k, v, dout = make(rng, 1, 100, 4 * BLOCK_K + 9, 8, 8, np.float64)
    check(q, k, v, dout, causal=True, groups=groups)


def test_gradients_by_finite_differences():
    # verifies the backward formulas themselves (the reference uses the same ones)
    rng = np.random.default_rng(7)
    q, k, v, _ = make(rng, 1, 5, 6, 3, 2, np.float64)
    bias = np.where(rng.random((1, 5, 6)) < 0.8, rng.standard_normal((1, 5, 6)), -np.inf)
    bias[0, 2, :] = -np.inf  # fully masked row
    w = rng.standard_normal((1, 5, 2))
    causal, window, scale = True, 3, 0.7

    def loss(q, k, v):
        return np.sum(attention_forward(q, k, v, bias, True, causal, window, scale)[0] * w)

    out, lse = attention_forward(q, k, v, bias, True, causal, window, scale)
    grads = attention_backward(q, k, v, bias, True, causal, window, scale, out, lse, w)
    args = [q, k, v]
    h = 1e-6
    for n, g in enumerate(grads):
        num = np.zeros_like(g)
        for idx in np.ndindex(g.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[n][idx] += h
            minus[n][idx] -= h
            num[idx] = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8, err_msg="qkv"[n])


@settings(max_examples=25, deadline=None)
@given(
    L=st.integers(1, 140), S=st.integers(1, 140), E=st.integers(1, 9), Ev=st.integers(1, 9),
    causal=st.booleans(), window=st.integers(-1, 20), seed=st.integers(0, 2**16),
)
def test_random_shapes(L, S, E, Ev, causal, window, seed):
    rng = np.random.default_rng(seed)
    check(*make(rng, 2, L, S, E, Ev, np.float64), causal=causal, window=window)


def kernels(*names):
    """Parametrize values for the kernels `names`: the ones this CPU does not run compile only in these tests
    (about 10 s each, cold), so they go to the background worker (tests/background.py)."""
    return [pytest.param(k, marks=() if k == A.KERNEL else pytest.mark.background) for k in names]


@pytest.mark.parametrize("kernel", kernels("portable", "avx2", "avx512"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_host_kernel_matches_reference(kernel, dtype, monkeypatch):
    # the register-blocked tile products (both micro-kernel shapes, whichever the host runs; a shape wider
    # than the host's vectors is still correct, only slower) and the portable loops: row counts that leave
    # full, tail and single-row micro-tiles (E = 13, Ev = 7, partial query/key tiles), bias, causal, window
    monkeypatch.setattr(A, "KERNEL", kernel)
    rng = np.random.default_rng(8)
    q, k, v, dout = make(rng, 2, 150, 141, 13, 7, dtype)
    bias = np.where(rng.random((2, 150, 141)) < 0.9, rng.standard_normal((2, 150, 141)), -np.inf).astype(dtype)
    check(q, k, v, dout, bias=bias, causal=True, window=90)
    check(q, k, v, dout, groups=2)
    q, k, v, dout = make(rng, 1, 2 * BLOCK_Q, 2 * BLOCK_K, 64, 64, dtype)
    check(q, k, v, dout, causal=True)


@pytest.mark.parametrize("kernel", kernels("avx512", "avx2"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_key_tile_takes_its_row_dots_from_the_tile(kernel, dtype, monkeypatch):
    # S <= BLOCK_K: D_i = sum_j P_ij dP_ij from the tile, equal to rowsum(dO_i * O_i) without reading O (the
    # forward's out does not reach the kernel's arithmetic: NaN there changes nothing); more key tiles read it
    monkeypatch.setattr(A, "KERNEL", kernel)
    rng = np.random.default_rng(12)
    for L, S, causal in ((BLOCK_K, BLOCK_K, True), (70, 37, False)):  # (L > BLOCK_Q: two query tiles)
        q, k, v, dout = make(rng, 3, L, S, 16, 8, dtype)
        check(q, k, v, dout, causal=causal)
        out, lse = attention_forward(q, k, v, DUMMY, False, causal, -1, 0.25)
        want = attention_backward(q, k, v, DUMMY, False, causal, -1, 0.25, out, lse, dout)
        got = attention_backward(q, k, v, DUMMY, False, causal, -1, 0.25, np.full_like(out, np.nan), lse, dout)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    q, k, v, dout = make(rng, 2, 20, BLOCK_K + 1, 16, 8, dtype)
    out, lse = attention_forward(q, k, v, DUMMY, False, False, -1, 0.25)
    assert np.isnan(attention_backward(q, k, v, DUMMY, False, False, -1, 0.25, np.full_like(out, np.nan), lse,
                                       dout)[0]).all()


@pytest.mark.parametrize("kernel", kernels("avx512", "avx2"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_sequences_compute_only_the_columns_they_use(kernel, dtype, monkeypatch):
    # sequences shorter than a tile (the reverse model's L = S = 32, E = 16; odd lengths just above and
    # below a micro-tile width) take narrower tile products than BLOCK_Q x BLOCK_K: same results as the
    # reference, with a bias, causal (both alignments of L != S) and a window
    monkeypatch.setattr(A, "KERNEL", kernel)
    rng = np.random.default_rng(10)
    for BH, L, S, E, Ev in ((4, 32, 32, 16, 16), (2, 17, 33, 8, 5), (2, 40, 9, 13, 7)):
        q, k, v, dout = make(rng, BH, L, S, E, Ev, dtype)
        bias = rng.standard_normal((BH, L, S)).astype(dtype)
        check(q, k, v, dout)
        check(q, k, v, dout, bias=bias, causal=True, window=5)
        check(q, k, v, dout, causal=True, groups=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_row_exp(dtype):
    # the forward's and backward's exp passes (16-lane vector IR for float32, _exp loops for float64):
    # exp(x - c) within ~2 ulp of numpy, 0 for -inf and below the underflow clamp, NaN kept; l += rows
    from numba import njit

    @njit
    def run(sT, nk, c, l, s, lse, lo):
        A._exp_fwd(sT, 0, nk, c, l, 0, BLOCK_Q)
        for i in range(s.shape[0]):
            A._exp_bwd(s, i, lse, lo, BLOCK_K)

    rng = np.random.default_rng(9)
    x = (-30 * rng.random((BLOCK_K, BLOCK_Q))).astype(dtype)
    x[0, :6] = [-np.inf, np.nan, -100.0, -87.5, 0.0, -1e-30]
    x[5, 7] = -800.0
    c = rng.standard_normal(BLOCK_Q).astype(dtype)
    l0 = rng.random(BLOCK_Q).astype(dtype)
    sT, l = x.copy(), l0.copy()
    s = x[:3, :BLOCK_K].copy()
    lse = rng.standard_normal((2, 40)).astype(dtype)
    run(sT, BLOCK_K - 1, c, l, s, lse, 41)
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.exp((x - c).astype(np.float64))  # the difference rounded in dtype, as the kernel does
        want_s = np.exp((x[:3, :BLOCK_K] - lse[1, 1]).astype(np.float64))
    want[-1] = x[-1]  # row nk untouched
    tol = dict(rtol=3e-7, atol=0) if dtype == np.float32 else dict(rtol=1e-15, atol=0)
    fin = want > np.finfo(dtype).tiny * 2**24
    np.testing.assert_allclose(sT[fin], want[fin], **tol)
    np.testing.assert_allclose(s[want_s > 1e-30], want_s[want_s > 1e-30], **tol)
    assert np.isnan(sT[0, 1]) and sT[0, 0] == 0 and s[0, 0] == 0 and np.isnan(s[0, 1])
    assert sT[5, 7] == 0
    np.testing.assert_allclose(l, l0 + want[:-1].sum(0), rtol=1e-5 if dtype == np.float32 else 1e-12)


# ----------------------------------------------------------------------------------------------------------
# strided inputs: read in place through (flat view, per-batch-head offsets, row stride), or copied
# ----------------------------------------------------------------------------------------------------------
def qkv_views(rng, B, H, L, E, dtype):
    """q, k, v (B, H, L, E) as a nanoGPT block makes them: views of one (B, L, 3, H, E) buffer (rows of E
    adjacent, 3 H E apart), and a dout (B, H, L, E) that is the transpose of a (B, L, H, E) buffer."""
    qkv = rng.standard_normal((B, L, 3, H, E)).astype(dtype)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)
    dout = rng.standard_normal((B, L, H, E)).astype(dtype).transpose(0, 2, 1, 3)
    return q, k, v, dout


def _laid_out(name, a, like):
    """Results are C-contiguous, except out for a (B, H, L, E) batch of several heads (stored (B, L, H, E)) and
    the gradients of sibling views (laid out like them: test_sibling_gradients_share_one_buffer)."""
    if name == "out" and a.ndim == 4 and a.shape[1] > 1:
        return a.transpose(0, 2, 1, 3).flags.c_contiguous
    return a.flags.c_contiguous or (name[0] == "d" and a.strides == like.strides)


def test_multi_head_output_is_stored_with_the_heads_innermost():
    """out (B, H, L, Ev) of several heads lies in memory as (B, L, H, Ev) (PyTorch's CPU flash layout), so
    joining the heads is a view; the backward reads it in place. Same values as every other batch shape."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        q, k, v, dout = qkv_views(rng, 2, 3, 70, 8, dtype)
        out, lse = attention_forward(q, k, v, DUMMY.astype(dtype), False, True, -1, 0.3, 0)
        joined = out.transpose(0, 2, 1, 3).reshape(2, 70, 24)
        assert np.shares_memory(joined, out)
        flat, _ = attention_forward(*(a.reshape(6, 70, 8) for a in (q, k, v)), DUMMY.astype(dtype), False, True,
                                    -1, 0.3, 0)
        assert flat.flags.c_contiguous
        np.testing.assert_array_equal(out.reshape(6, 70, 8), flat)
        single, _ = attention_forward(q[:, :1], k[:, :1], v[:, :1], DUMMY.astype(dtype), False, True, -1, 0.3, 0)
        assert single.flags.c_contiguous  # one head: nothing to join, plain layout
        np.testing.assert_array_equal(single, out[:, :1])


def run_both(q, k, v, dout, bias=None, causal=False, window=-1, scale=0.3, offset=0, groups=None):
    """out, lse, dq, dk, dv of the kernels on the arrays as given."""
    b = bias if bias is not None else DUMMY.astype(q.dtype)
    out, lse = attention_forward(q, k, v, b, bias is not None, causal, window, scale, offset)
    grads = A._backward_impl(q, k, v, b, bias is not None, causal, window, scale, out, lse, dout, groups, offset)
    return (out, lse) + tuple(grads)


def assert_same_as_contiguous(q, k, v, dout, **kw):
    """The strided arrays give bit for bit what C-contiguous copies of them give (same kernel, same order of
    operations), with results shaped like the inputs."""
    got = run_both(q, k, v, dout, **kw)
    want = run_both(*(np.ascontiguousarray(a) for a in (q, k, v, dout)), **kw)
    for name, g, w, like in zip(("out", "lse", "dq", "dk", "dv"), got, want, (None, None, q, k, v)):
        assert g.shape == w.shape and _laid_out(name, g, like), name
        np.testing.assert_array_equal(g, w, err_msg=name)
    assert got[2].shape == q.shape and got[3].shape == k.shape and got[4].shape == v.shape
    return got


def test_strided_layouts_are_read_in_place_or_copied():
    rng = np.random.default_rng(20)
    q, k, v, dout = qkv_views(rng, 2, 3, 5, 4, np.float32)
    for a in (q, k, v, dout, q[1:], q[:, ::2], np.broadcast_to(q[:1], q.shape), q.reshape(6, 5, 4)[:, 1:]):
        flat, off, rs = A._strided(a, np.dtype(np.float32))
        assert np.shares_memory(flat, a) and not flat.flags.writeable and flat.flags.c_contiguous
        assert off.dtype == np.int64 and off.shape == (int(np.prod(a.shape[:-2])),)
        rows = a.reshape(-1, *a.shape[-2:])  # (a copy where the view's batch dims do not merge)
        idx = off[:, None, None] + np.arange(a.shape[-2])[None, :, None] * rs + np.arange(a.shape[-1])
        np.testing.assert_array_equal(flat[idx], rows)
    for a in (q[:, :, ::-1], q[::-1], q[..., ::2], q.astype(np.float64)):  # negative strides, strided E, dtype
        flat, off, rs = A._strided(a, np.dtype(np.float32))
        assert not np.shares_memory(flat, q) and flat.dtype == np.float32
        idx = off[:, None, None] + np.arange(a.shape[-2])[None, :, None] * rs + np.arange(a.shape[-1])
        np.testing.assert_array_equal(flat[idx], a.reshape(-1, *a.shape[-2:]).astype(np.float32))


@pytest.mark.parametrize("kernel", kernels("portable", "avx2", "avx512"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_qkv_views_and_transposed_dout_equal_contiguous(kernel, dtype, monkeypatch):
    # the fused-projection q, k, v and the transposed gradient, read in place: every kernel (the few-row
    # forward too, L <= ROWS_MAX_L), across tiles, with a bias, causal/window/offset and split key tiles
    monkeypatch.setattr(A, "KERNEL", kernel)
    rng = np.random.default_rng(21)
    q, k, v, dout = qkv_views(rng, 2, 3, 70, 8, dtype)
    assert not any(a.flags.c_contiguous for a in (q, k, v, dout))
    assert_same_as_contiguous(q, k, v, dout)
    assert_same_as_contiguous(q, k, v, dout, causal=True, window=20)
    assert_same_as_contiguous(q, k, v, dout, causal=True, groups=2)
    bias = np.where(rng.random((6, 70, 70)) < 0.9, rng.standard_normal((6, 70, 70)), -np.inf).astype(dtype)
    assert_same_as_contiguous(q, k, v, dout, bias=bias, causal=True)
    q1, k1, v1, dout1 = qkv_views(rng, 2, 3, 3, 8, dtype)  # three query rows: the few-row forward
    assert_same_as_contiguous(q1, k1, v1, dout1, causal=True, offset=0)
    _, k9, v9, _ = qkv_views(rng, 2, 3, 9, 8, dtype)
    assert_same_as_contiguous(q1, k9, v9, dout1, causal=True, offset=6)  # a key/value cache step


def test_sibling_gradients_share_one_buffer():
    """q, k, v that are equal slices of one buffer (qkv_views; k and v alone in a key/value cache step) get
    gradients laid out like them, side by side in one new buffer: their stack is a view with the buffer's layout.
    Gradients of anything else are C-contiguous arrays of their own."""
    rng = np.random.default_rng(23)
    q, k, v, dout = qkv_views(rng, 2, 3, 70, 8, np.float32)
    for groups in (1, 2):  # dq written straight by the kernel, or summed from the key-tile groups' slabs
        dq, dk, dv = run_both(q, k, v, dout, causal=True, groups=groups)[2:]
        assert dq.strides == q.strides and dk.strides == k.strides and dv.strides == v.strides
        assert dq.base is dk.base is dv.base and dq.base.flags.c_contiguous and dq.base.size == 3 * q.size
        stacked = np.lib.stride_tricks.as_strided(dq, (3,) + q.shape, (k.ctypes.data - q.ctypes.data,) + q.strides)
        np.testing.assert_array_equal(stacked, np.stack([dq, dk, dv]))
    q1 = qkv_views(rng, 2, 3, 3, 8, np.float32)[0]
    k9, v9 = rng.standard_normal((2, 9, 2, 3, 8)).astype(np.float32).transpose(2, 0, 3, 1, 4)  # a fused kv
    dq, dk, dv = run_both(q1, k9, v9, dout[:, :, :3], causal=True, offset=6)[2:]
    assert dq.flags.c_contiguous and dk.base is dv.base and dk.strides == k9.strides
    k2, v2 = qkv_views(rng, 2, 3, 9, 8, np.float32)[1:3]  # k, v of a q, k, v buffer: not a block of their own
    assert all(g.flags.c_contiguous for g in run_both(q1, k2, v2, dout[:, :, :3], causal=True, offset=6)[2:])
    for qs, ks, vs in ((q[:, ::2], k[:, ::2], v[:, ::2]), (q, k, q), (q, v, k)):  # gaps, a repeat, out of order
        assert all(g.flags.c_contiguous for g in run_both(qs, ks, vs, np.ascontiguousarray(dout[:, : qs.shape[1]]))[2:])


def test_sliced_broadcast_and_unbatched_inputs_equal_contiguous():
    rng = np.random.default_rng(22)
    q, k, v, dout = qkv_views(rng, 4, 2, 33, 5, np.float64)
    assert_same_as_contiguous(q[1::2], k[1::2], v[1::2], dout[::2], causal=True)  # a sliced batch
    kb = np.broadcast_to(k[:, :1], k.shape)  # one key/value head shared by every query head: zero strides
    vb = np.broadcast_to(v[:, :1], v.shape)
    out = assert_same_as_contiguous(q, kb, vb, dout, causal=True)
    assert out[3].shape == k.shape  # dk per (batch, head) as the view's shape says; the caller reduces it
    assert_same_as_contiguous(q[0, 0], k[0, 0], v[0, 0], dout[0, 0], causal=True)  # no batch dims at all
    assert_same_as_contiguous(q[:, :, ::-1], k, v[::-1], dout[..., ::-1])  # negative strides: copies


def test_backward_writes_every_gradient_element(monkeypatch):
    # dq, dk, dv start uninitialised (np.empty, here NaN-filled): key tiles no query sees (L << S, causal),
    # query tiles no key reaches (a window with L >> S), with and without split key-tile groups, must come
    # out exactly 0 -- and everything else written (check() also asserts every element finite)
    rng = np.random.default_rng(23)
    monkeypatch.setattr(np, "empty", lambda shape, dtype=float, **kw: np.full(shape, np.nan, dtype))
    for groups in (None, 3):
        q, k, v, dout = make(rng, 2, 10, 4 * BLOCK_K, 8, 4, np.float64)
        _, _, (dq, dk, dv) = check(q, k, v, dout, causal=True, groups=groups)
        assert np.all(dk[:, BLOCK_K:] == 0) and np.all(dv[:, BLOCK_K:] == 0)
        q, k, v, dout = make(rng, 2, 3 * BLOCK_Q, 20, 8, 4, np.float64)
        _, _, (dq, dk, dv) = check(q, k, v, dout, causal=True, window=2, groups=groups)
        assert np.all(dq[:, BLOCK_Q:] == 0)


def test_one_compiled_signature_per_dtype_whatever_the_layout():
    rng = np.random.default_rng(24)
    q, k, v, dout = qkv_views(rng, 2, 2, 20, 8, np.float32)
    kernel = A._backward_mk if A.KERNEL != "portable" else A._backward
    forward = A._forward_mk if A.KERNEL != "portable" else A._forward
    run_both(*(np.ascontiguousarray(a) for a in (q, k, v, dout)))
    before = (len(kernel.signatures), len(forward.signatures))
    for args in ((q, k, v, dout), (q[:1], k[:1], v[:1], dout[:1]), (q[0, 0], k[0, 0], v[0, 0], dout[0, 0]),
                 (q[:, :, ::-1], k, v, dout), (q, np.broadcast_to(k[:, :1], k.shape), v, dout)):
        bh = int(np.prod(args[0].shape[:-2]))
        run_both(*args, bias=rng.standard_normal((bh, 20, 20)).astype(np.float32))
        run_both(*args, causal=True)
    assert (len(kernel.signatures), len(forward.signatures)) == before


# ---- the causal mask's alignment: query row i at key position i + offset (0: PyTorch's top-left is_causal,
# S - L: the bottom-right alignment that generation's key/value-cache decode steps rely on) --------------------
def aligned_reference(q, k, v, causal, window, offset, scale):
    """float64 attention output of the contract's reference (P materialised, dead rows -> 0) with query row i at
    key position i + offset; window -1 is none, as in the kernels."""
    return attention_reference(q, k, v, None, causal, None if window < 0 else window, scale, offset)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L,S,offset", [(1, 13, 12), (3, 10, 7), (70, 140, 70), (5, 5, 0), (6, 4, -2), (4, 9, 2)])
@pytest.mark.parametrize("causal,window", [(True, -1), (True, 2), (False, 3)])
def test_cpu_kernel_offset_matchesaligned_reference(dtype, L, S, offset, causal, window):
    rng = np.random.default_rng(L * 100 + S)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((2, L, 8), (2, S, 8), (2, S, 5)))
    out, lse = A.attention_forward(q, k, v, np.zeros((1, 1, 1), dtype), False, causal, window, 0.4, offset)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    want = aligned_reference(*(a.astype(np.float64) for a in (q, k, v)), causal, window, offset, 0.4)
    np.testing.assert_allclose(out, want, **tol)
    # the alignment matters: top-left (offset 0) gives another result whenever offset != 0
    if offset > 0 and causal:
        top_left = aligned_reference(*(a.astype(np.float64) for a in (q, k, v)), causal, window, 0, 0.4)
        assert np.abs(top_left - want).max() > 1e-3


def test_cpu_kernel_offset_backward_matchesaligned_reference():
    # dq, dk, dv of the kernel against the same attention in float64 autograd-free algebra (finite-size check)
    rng = np.random.default_rng(3)
    q, k, v, dout = (rng.standard_normal(s) for s in ((1, 70, 8), (1, 140, 8), (1, 140, 6), (1, 70, 6)))
    dummy = np.zeros((1, 1, 1))
    out, lse = A.attention_forward(q, k, v, dummy, False, True, -1, 0.3, 70)
    dq, dk, dv = A.attention_backward(q, k, v, dummy, False, True, -1, 0.3, out, lse, dout, 70)
    eps = 1e-6  # directional derivatives along random directions
    for grad, idx in ((dq, 0), (dk, 1), (dv, 2)):
        d = rng.standard_normal(grad.shape)
        args = [q, k, v]
        plus = [a + eps * d if i == idx else a for i, a in enumerate(args)]
        minus = [a - eps * d if i == idx else a for i, a in enumerate(args)]
        num = ((aligned_reference(*plus, True, -1, 70, 0.3) - aligned_reference(*minus, True, -1, 70, 0.3)) * dout).sum() / (2 * eps)
        assert abs((grad * d).sum() - num) < 1e-6 * max(1.0, abs(num))


def test_cuda_kernel_offset_matches_cpu():
    pytest.importorskip("numba_cuda")
    from tinyattn.kernels.cuda import attention as gpu

    rng = np.random.default_rng(8)
    q, k, v, dout = (rng.standard_normal(s) for s in ((1, 3, 4), (1, 6, 4), (1, 6, 3), (1, 3, 3)))
    dummy = np.zeros((1, 1, 1))
    for offset, window in ((3, -1), (1, 1), (-1, -1)):
        out, lse = A.attention_forward(q, k, v, dummy, False, True, window, 0.5, offset)
        grads = A.attention_backward(q, k, v, dummy, False, True, window, 0.5, out, lse, dout, offset)
        g_out, g_lse = gpu.attention_forward(q, k, v, True, 0.5, window=window, rows=4, block_k=2, offset=offset)
        np.testing.assert_allclose(g_out.copy_to_host(), out, rtol=1e-12, atol=1e-12)
        g_grads = gpu.attention_backward(q, k, v, True, 0.5, out, lse, dout, window=window, rows=4, offset=offset)
        for g, c in zip(g_grads, grads):
            np.testing.assert_allclose(g.copy_to_host(), c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, aligned_reference(q, k, v, True, -1, -1, 0.5), atol=1e-12)
