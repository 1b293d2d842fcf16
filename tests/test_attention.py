"""scaled_dot_product_attention: the fused kernel against the composite path, the lecture's
loop form, and central differences; masks, windows and fully masked rows."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
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
