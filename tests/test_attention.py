"""scaled_dot_product_attention: the fused kernel against the composite path, the lecture's
loop form, and central differences; masks, windows and fully masked rows; the causal mask's alignment
when L != S (CausalBias: causal_lower_right / causal_upper_left) against the float64 reference and PyTorch."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.backend_contract import attention_reference
from tinyattn.functional import attention_composite
from tinyattn.testing import gradcheck

from conftest import leaf

# (L, S, E, Ev): square, L != S, E != Ev, and lengths that cross the kernel's 64-row tiles
SHAPES = [(4, 4, 3, 3), (3, 5, 4, 2), (6, 2, 2, 5)]
BIG = (70, 130, 8, 6)


def make_mask(kind, L, S, rng, dtype=np.float64):
    if kind is None:
        return None
    if kind == "bool":
        m = rng.random((L, S)) > 0.3
        m[:, 0] = True  # every row keeps a key (fully masked rows are tested on their own)
        return ta.tensor(m)
    if kind == "float":
        return ta.tensor(rng.standard_normal((L, S)), dtype=dtype)
    if kind == "float-inf":
        m = np.where(rng.random((L, S)) > 0.3, 0.0, -np.inf)
        m[:, 0] = 0.0
        return ta.tensor(m, dtype=dtype)
    if kind == "batched-bool":  # (B, 1, 1, S): a key-padding mask broadcast over heads and queries
        m = np.ones((2, 1, 1, S), dtype=bool)
        m[0, ..., S - 1] = False
        return ta.tensor(m)
    raise AssertionError(kind)


MASKS = [None, "bool", "float", "float-inf", "batched-bool"]
OPTIONS = [dict(), dict(is_causal=True), dict(window=1), dict(is_causal=True, window=1)]


def _compare_paths(q, k, v, mask, opts, rtol=1e-9, atol=1e-10):
    fused = F.scaled_dot_product_attention(q, k, v, mask, **opts)
    ref = attention_composite(q, k, v, mask, **opts)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), rtol=rtol, atol=atol)
    w = ta.tensor(np.random.default_rng(0).standard_normal(fused.shape), dtype=fused.dtype)
    grads = []
    for out in (fused, ref):
        for t in (q, k, v):
            t.grad = None
        (out * w).sum().backward()
        grads.append([t.grad.numpy().copy() for t in (q, k, v)])
    for gf, gr in zip(*grads):
        np.testing.assert_allclose(gf, gr, rtol=rtol, atol=atol)


@pytest.mark.parametrize("L,S,E,Ev", SHAPES)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("opts", OPTIONS, ids=["plain", "causal", "window", "causal+window"])
def test_fused_equals_composite(rng, L, S, E, Ev, mask, opts):
    q, k, v = leaf(rng, 2, 2, L, E), leaf(rng, 2, 2, S, E), leaf(rng, 2, 2, S, Ev)
    _compare_paths(q, k, v, make_mask(mask, L, S, rng), opts)


@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("opts", OPTIONS, ids=["plain", "causal", "window", "causal+window"])
def test_fused_gradcheck(rng, mask, opts):
    L, S, E, Ev = 3, 4, 2, 3
    q, k, v = leaf(rng, 2, L, E), leaf(rng, 2, S, E), leaf(rng, 2, S, Ev)
    m = make_mask(mask, L, S, rng)
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, m, **opts), [q, k, v], name="sdpa")


def test_fused_equals_composite_across_tiles_in_float32(rng):
    L, S, E, Ev = BIG
    q = ta.tensor(rng.standard_normal((2, L, E)), dtype=ta.float32, requires_grad=True)
    k = ta.tensor(rng.standard_normal((2, S, E)), dtype=ta.float32, requires_grad=True)
    v = ta.tensor(rng.standard_normal((2, S, Ev)), dtype=ta.float32, requires_grad=True)
    for opts in OPTIONS:
        _compare_paths(q, k, v, make_mask("bool", L, S, rng), opts, rtol=1e-4, atol=1e-6)


def test_lecture_loop_form_equals_matrix_form(rng):
    """b_i = Σ_j α'_ij v_j with α_ij = q_i·k_j/√d and α'_ij = softmax over j, written as loops."""
    n, d_in, d_qk, d_v = 5, 4, 3, 2
    a = rng.standard_normal((n, d_in))
    wq, wk, wv = rng.standard_normal((d_qk, d_in)), rng.standard_normal((d_qk, d_in)), rng.standard_normal((d_v, d_in))
    q = [wq @ a[i] for i in range(n)]
    k = [wk @ a[i] for i in range(n)]
    v = [wv @ a[i] for i in range(n)]
    b = np.zeros((n, d_v))
    for i in range(n):
        alpha = [float(q[i] @ k[j]) / np.sqrt(d_qk) for j in range(n)]
        e = [np.exp(x - max(alpha)) for x in alpha]
        alpha_prime = [x / sum(e) for x in e]
        for j in range(n):
            b[i] += alpha_prime[j] * v[j]
    A = ta.tensor(a)
    Q, K, V = A @ ta.tensor(wq).T, A @ ta.tensor(wk).T, A @ ta.tensor(wv).T
    np.testing.assert_allclose(F.scaled_dot_product_attention(Q, K, V).numpy(), b, rtol=1e-12)
    np.testing.assert_allclose(attention_composite(Q, K, V).numpy(), b, rtol=1e-12)


def test_fully_masked_rows_give_zero_output_and_zero_gradient(rng):
    q, k, v = leaf(rng, 1, 3, 2), leaf(rng, 1, 4, 2), leaf(rng, 1, 4, 3)
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False  # query 1 may attend to nothing
    for path in (F.scaled_dot_product_attention, attention_composite):
        for t in (q, k, v):
            t.grad = None
        out = path(q, k, v, ta.tensor(mask))
        assert np.all(np.isfinite(out.numpy()))
        np.testing.assert_array_equal(out.numpy()[0, 1], 0.0)
        out.sum().backward()
        assert all(np.all(np.isfinite(t.grad.numpy())) for t in (q, k, v))
        np.testing.assert_array_equal(q.grad.numpy()[0, 1], 0.0)
    # a window with causal masking on L > S leaves late queries nothing: also zero, not NaN
    out = F.scaled_dot_product_attention(leaf(rng, 6, 2), leaf(rng, 2, 2), leaf(rng, 2, 2), is_causal=True, window=1)
    np.testing.assert_array_equal(out.numpy()[3:], 0.0)


def test_scale_and_broadcast_batch_dims(rng):
    q, k, v = leaf(rng, 2, 3, 3, 4), leaf(rng, 1, 3, 5, 4), leaf(rng, 3, 5, 2)
    out = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    ref = attention_composite(q, k, v, scale=0.3)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-10)
    assert out.shape == (2, 3, 3, 2)
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3), [q, k, v], name="sdpa-bcast")


def test_dropout_runs_the_composite_path_in_training(rng):
    q, k, v = leaf(rng, 2, 4, 3), leaf(rng, 2, 4, 3), leaf(rng, 2, 4, 3)
    ta.manual_seed(0)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    ta.manual_seed(0)
    b = attention_composite(q, k, v, dropout_p=0.5)
    np.testing.assert_allclose(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), F.scaled_dot_product_attention(q, k, v).numpy())


def test_bad_attention_inputs_name_the_shapes():
    q, k, v = ta.randn(2, 3, 4), ta.randn(2, 5, 4), ta.randn(2, 5, 6)
    with pytest.raises(ValueError, match=r"query and key head dims differ \(4 vs 3\).*query \(2, 3, 4\), key \(2, 5, 3\)"):
        F.scaled_dot_product_attention(q, ta.randn(2, 5, 3), v)
    with pytest.raises(ValueError, match=r"key and value lengths differ \(5 vs 4\)"):
        F.scaled_dot_product_attention(q, k, ta.randn(2, 4, 6))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast to \(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ta.ones(3, 4))
    with pytest.raises(TypeError, match="attn_mask must be bool or float, got dtype int64"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ta.tensor(np.ones((3, 5), dtype=np.int64)))
    with pytest.raises(TypeError, match=r"expected a float32 or float64 tensor"):
        F.scaled_dot_product_attention(q.long(), k, v)


# ---- strided q, k, v: the fused projection's views, read in place by the kernels -------------------------
def _qkv_block(x, H, **opts):
    """nanoGPT's attention core: x (B, T, 3 C) -> q, k, v views (B, H, T, D) -> SDPA -> (B, T, C)."""
    B, T, C3 = x.shape
    q, k, v = x.reshape(B, T, 3, H, C3 // (3 * H)).permute(2, 0, 3, 1, 4).unbind(0)
    y = F.scaled_dot_product_attention(q, k, v, **opts)
    return y.transpose(1, 2).reshape(B, T, C3 // 3)


@pytest.mark.parametrize("dtype", [ta.float32, ta.float64])
@pytest.mark.parametrize("opts", [dict(is_causal=True), dict(window=3), dict()], ids=["causal", "window", "plain"])
def test_qkv_views_give_what_contiguous_copies_give(rng, dtype, opts):
    # same kernel, same operations: bit for bit the result and the gradients of contiguous q, k, v
    B, T, H, D = 2, 70, 3, 8
    x = ta.tensor(rng.standard_normal((B, T, 3 * H * D)), dtype=dtype, requires_grad=True)
    g = ta.tensor(rng.standard_normal((B, T, H * D)), dtype=dtype)
    out = _qkv_block(x, H, **opts)
    out.backward(g)
    views = x.numpy().reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)
    q, k, v = (ta.tensor(np.ascontiguousarray(a), requires_grad=True) for a in views)
    ref = F.scaled_dot_product_attention(q, k, v, **opts)
    ref.backward(ta.tensor(np.ascontiguousarray(g.numpy().reshape(B, T, H, D).transpose(0, 2, 1, 3))))
    np.testing.assert_array_equal(out.numpy(), ref.numpy().transpose(0, 2, 1, 3).reshape(B, T, H * D))
    dx = np.stack([t.grad.numpy() for t in (q, k, v)]).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * H * D)
    np.testing.assert_array_equal(x.grad.numpy(), dx)


def test_qkv_views_gradcheck(rng):
    x = leaf(rng, 2, 5, 3 * 2 * 3)
    assert gradcheck(lambda x: _qkv_block(x, 2, is_causal=True), [x], name="sdpa-qkv-views")
    m = make_mask("float", 5, 5, rng)
    assert gradcheck(lambda x: _qkv_block(x, 2, attn_mask=m, window=2), [x], name="sdpa-qkv-views-mask")


def test_saved_views_are_version_checked(rng):
    # the forward keeps q, k, v as views of the projection's output, not copies: changing that output in
    # place before the backward must raise (as in PyTorch), not silently give gradients for the new values
    x = leaf(rng, 2, 4, 3 * 2 * 3)
    h = x * 1.0
    out = _qkv_block(h, 2, is_causal=True)
    h.mul_(2.0)
    with pytest.raises(RuntimeError, match="ScaledDotProductAttention saved for its backward was modified"):
        out.sum().backward()


# ---- causal alignment when L != S: SDPA's CausalBias (causal_lower_right / causal_upper_left) against the same
# float64 reference, its composite, gradcheck and PyTorch (the kernels' offset: tests/test_kernels_attention.py) ---
def aligned_reference(q, k, v, causal, window, offset, scale):
    """float64 attention output of the contract's reference (P materialised, dead rows -> 0) with query row i at
    key position i + offset; window -1 is none, as in the kernels."""
    return attention_reference(q, k, v, None, causal, None if window < 0 else window, scale, offset)[0]


def _qkv(rng, L, S, dtype=ta.float64, grad=True, E=4):
    return [ta.tensor(rng.standard_normal((2, 2, n, E)), dtype=dtype, requires_grad=grad) for n in (L, S, S)]


@pytest.mark.parametrize("L,S", [(3, 7), (1, 5), (5, 3)])
def test_sdpa_causal_lower_right_gradcheck_and_composite(L, S):
    rng = np.random.default_rng(L + 10 * S)
    q, k, v = _qkv(rng, L, S)
    mask = F.causal_lower_right(L, S)
    assert gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask), [q, k, v])
    assert gradcheck(lambda a, b, c: ta.functional.attention_composite(a, b, c, attn_mask=mask), [q, k, v])
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    explicit = F.scaled_dot_product_attention(q, k, v, attn_mask=ta.tensor(mask.materialize()))
    np.testing.assert_allclose(fused.numpy(), explicit.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.numpy(), aligned_reference(q.numpy(), k.numpy(), v.numpy(), True, -1, S - L,
                                                         1 / 2), rtol=1e-12, atol=1e-12)
    # and gradients of the fused path equal the composite's
    w = ta.tensor(rng.standard_normal(fused.shape))
    for fn in (F.scaled_dot_product_attention, ta.functional.attention_composite):
        for t in (q, k, v):
            t.grad = None
        (fn(q, k, v, attn_mask=mask) * w).sum().backward()
        grads = [t.grad.numpy().copy() for t in (q, k, v)]
        if fn is F.scaled_dot_product_attention:
            fused_grads = grads
    for a, b in zip(fused_grads, grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_causal_upper_left_is_is_causal_and_window_follows_the_alignment():
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng, 3, 8, grad=False)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=F.causal_upper_left(3, 8))
    b = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    table = F.causal_lower_right(3, 8).materialize()
    assert table.tolist()[0] == [True] * 6 + [False] * 2 and table[-1].all()
    assert F.causal_upper_left(3, 8).materialize().sum() == 1 + 2 + 3
    w = F.scaled_dot_product_attention(q, k, v, attn_mask=F.causal_lower_right(3, 8), window=1)
    np.testing.assert_allclose(w.numpy(), aligned_reference(q.numpy(), k.numpy(), v.numpy(), True, 1, 5, 0.5), rtol=1e-12)


def test_causal_bias_errors_name_the_op():
    rng = np.random.default_rng(6)
    q, k, v = _qkv(rng, 3, 8, grad=False)
    with pytest.raises(ValueError, match="scaled_dot_product_attention: attn_mask is a CausalBias.*is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=F.causal_lower_right(3, 8), is_causal=True)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: CausalBias\(LOWER_RIGHT.*query length 3"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=F.causal_lower_right(3, 9))
    with pytest.raises(ValueError, match="causal_lower_right: expected two sizes"):
        F.causal_lower_right(3)


def test_sdpa_matches_torchs_top_left_and_bottom_right_alignments():
    torch = pytest.importorskip("torch")
    from torch.nn.attention.bias import causal_lower_right

    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 2, n, 4)) for n in (3, 7, 7))
    tq, tk, tv = (torch.tensor(a) for a in (q, k, v))
    ours_tl = F.scaled_dot_product_attention(*(ta.tensor(a) for a in (q, k, v)), is_causal=True).numpy()
    ours_br = F.scaled_dot_product_attention(*(ta.tensor(a) for a in (q, k, v)),
                                             attn_mask=F.causal_lower_right(3, 7)).numpy()
    theirs_tl = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).numpy()
    theirs_br = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=causal_lower_right(3, 7)).numpy()
    np.testing.assert_allclose(ours_tl, theirs_tl, rtol=1e-10, atol=1e-12)  # is_causal: top-left in both
    np.testing.assert_allclose(ours_br, theirs_br, rtol=1e-10, atol=1e-12)
    assert np.abs(ours_tl - ours_br).max() > 1e-3
