"""SelfAttention (the lecture's head), MultiheadAttention (PyTorch's) and positional encodings,
gradchecked in float64 for their inputs and every parameter."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.testing import gradcheck

from conftest import leaf, module_gradcheck


# ---- SelfAttention ------------------------------------------------------------------------


@pytest.mark.parametrize("relevance", ["dot", "additive"])
@pytest.mark.parametrize("normalizer", ["softmax", "sigmoid", "relu"])
@pytest.mark.parametrize("opts", [dict(), dict(causal=True), dict(window=1), dict(causal=True, window=1)],
                         ids=["plain", "causal", "window", "causal+window"])
def test_self_attention_variants_gradcheck(rng, relevance, normalizer, opts):
    ta.manual_seed(0)
    layer = nn.SelfAttention(3, 2, 4, relevance=relevance, normalizer=normalizer, dtype=ta.float64, **opts)
    a = leaf(rng, 2, 4, 3)
    assert layer(a).shape == (2, 4, 4)
    assert module_gradcheck(layer, a, name=f"SelfAttention[{relevance},{normalizer}]")


def test_self_attention_with_masks_gradcheck(rng):
    layer = nn.SelfAttention(3, 2, 2, dtype=ta.float64)
    a = leaf(rng, 4, 3)
    bool_mask = ta.tensor(np.tril(np.ones((4, 4), dtype=bool)))
    float_mask = ta.tensor(rng.standard_normal((4, 4)))
    for mask in (bool_mask, float_mask):
        assert module_gradcheck(layer, a, name="SelfAttention-mask", call=lambda x: layer(x, attn_mask=mask))
        fused = layer(a, attn_mask=mask)
        composite, weights = layer(a, attn_mask=mask, need_weights=True)
        np.testing.assert_allclose(fused.numpy(), composite.numpy(), rtol=1e-10)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0)


def test_self_attention_matches_the_lecture_formulas(rng):
    layer = nn.SelfAttention(3, 2, 4, dtype=ta.float64)
    a = rng.standard_normal((5, 3))
    wq, wk, wv = (layer.w_q.weight.numpy(), layer.w_k.weight.numpy(), layer.w_v.weight.numpy())
    Q, K, V = a @ wq.T, a @ wk.T, a @ wv.T
    alpha = Q @ K.T / np.sqrt(2)
    alpha_prime = np.exp(alpha - alpha.max(1, keepdims=True))
    alpha_prime /= alpha_prime.sum(1, keepdims=True)
    b, weights = layer(ta.tensor(a), need_weights=True)
    np.testing.assert_allclose(weights.numpy(), alpha_prime, rtol=1e-10)
    np.testing.assert_allclose(b.numpy(), alpha_prime @ V, rtol=1e-10)
    np.testing.assert_allclose(layer(ta.tensor(a)).numpy(), alpha_prime @ V, rtol=1e-10)


def test_sigmoid_and_relu_normalizers(rng):
    a = ta.tensor(rng.standard_normal((6, 3)))
    sig = nn.SelfAttention(3, 2, 2, normalizer="sigmoid", causal=True, dtype=ta.float64)
    _, w = sig(a, need_weights=True)
    q, k = sig.w_q(a).numpy(), sig.w_k(a).numpy()
    ref = 1 / (1 + np.exp(-(q @ k.T / np.sqrt(2) - np.log(6))))
    np.testing.assert_allclose(w.numpy(), np.tril(ref), rtol=1e-10)
    relu = nn.SelfAttention(3, 2, 2, normalizer="relu", window=1, dtype=ta.float64)
    _, w = relu(a, need_weights=True)
    q, k = relu.w_q(a).numpy(), relu.w_k(a).numpy()
    band = np.abs(np.arange(6)[:, None] - np.arange(6)[None, :]) <= 1
    np.testing.assert_allclose(w.numpy(), np.where(band, np.maximum(q @ k.T / np.sqrt(2), 0), 0), rtol=1e-10)


def test_self_attention_bad_arguments():
    with pytest.raises(ValueError, match="normalizer must be one of"):
        nn.SelfAttention(3, 2, 2, normalizer="tanh")
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., N, 3\), got \(2, 4\)"):
        nn.SelfAttention(3, 2, 2)(ta.randn(2, 4))


# ---- MultiheadAttention -------------------------------------------------------------------


def test_mha_parameters_state_dict_and_init():
    ta.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4)
    assert list(mha.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert mha.in_proj_weight.shape == (48, 16)
    bound = np.sqrt(6 / (16 + 48))  # xavier-uniform over the packed (3E, E) matrix, as PyTorch
    w = mha.in_proj_weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(mha.in_proj_bias.numpy() == 0) and np.all(mha.out_proj.bias.numpy() == 0)
    kv = nn.MultiheadAttention(8, 2, kdim=3, vdim=5)
    assert set(kv.state_dict()) == {"q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                                    "out_proj.weight", "out_proj.bias"}
    assert kv.k_proj_weight.shape == (8, 3) and kv.v_proj_weight.shape == (8, 5)
    with pytest.raises(ValueError, match="embed_dim 10 is not divisible by num_heads 4"):
        nn.MultiheadAttention(10, 4)


def _mha_reference(mha, q, k, v, allowed=None):
    """PyTorch's documented computation in plain numpy, sequence-first (L, N, E)."""
    e, h = mha.embed_dim, mha.num_heads
    d = e // h
    w, b = mha.in_proj_weight.numpy(), mha.in_proj_bias.numpy()
    Q = q @ w[:e].T + b[:e]
    K = k @ w[e:2 * e].T + b[e:2 * e]
    V = v @ w[2 * e:].T + b[2 * e:]
    L, N, _ = Q.shape
    S = K.shape[0]
    Qh = Q.reshape(L, N, h, d).transpose(1, 2, 0, 3)
    Kh = K.reshape(S, N, h, d).transpose(1, 2, 0, 3)
    Vh = V.reshape(S, N, h, d).transpose(1, 2, 0, 3)
    s = Qh @ Kh.transpose(0, 1, 3, 2) / np.sqrt(d)
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = (p @ Vh).transpose(2, 0, 1, 3).reshape(L, N, e)
    return o @ mha.out_proj.weight.numpy().T + mha.out_proj.bias.numpy(), p.mean(1)


def test_mha_matches_the_reference_and_masks_mean_not_allowed(rng):
    mha = nn.MultiheadAttention(8, 2, dtype=ta.float64)
    q, k, v = rng.standard_normal((3, 2, 8)), rng.standard_normal((5, 2, 8)), rng.standard_normal((5, 2, 8))
    out, w = mha(ta.tensor(q), ta.tensor(k), ta.tensor(v))
    ref, ref_w = _mha_reference(mha, q, k, v)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-10)
    pad = np.zeros((2, 5), dtype=bool)
    pad[1, 3:] = True  # batch 1 ignores its last two keys
    attn = np.zeros((3, 5), dtype=bool)
    attn[0, 0] = True
    out, w = mha(ta.tensor(q), ta.tensor(k), ta.tensor(v), key_padding_mask=ta.tensor(pad), attn_mask=ta.tensor(attn))
    allowed = ~(pad[:, None, None, :] | attn[None, None])
    ref, ref_w = _mha_reference(mha, q, k, v, allowed)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-10)
    fast, none = mha(ta.tensor(q), ta.tensor(k), ta.tensor(v), key_padding_mask=ta.tensor(pad),
                     attn_mask=ta.tensor(attn), need_weights=False)
    assert none is None
    np.testing.assert_allclose(fast.numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("mask_kind", [None, "attn-bool", "attn-float", "padding", "causal"])
def test_mha_gradcheck(rng, mask_kind):
    mha = nn.MultiheadAttention(4, 2, dtype=ta.float64)
    x = leaf(rng, 3, 2, 4)  # (L, N, E), self-attention
    kwargs = {}
    if mask_kind == "attn-bool":
        kwargs["attn_mask"] = ta.tensor(~np.tril(np.ones((3, 3), dtype=bool)))
    elif mask_kind == "attn-float":
        kwargs["attn_mask"] = ta.tensor(rng.standard_normal((3, 3)))
    elif mask_kind == "padding":
        kwargs["key_padding_mask"] = ta.tensor(np.array([[False, False, True], [False, False, False]]))
    elif mask_kind == "causal":
        kwargs["is_causal"] = True
    for need_weights in (False, True):
        assert module_gradcheck(mha, x, name=f"MHA[{mask_kind}]",
                                call=lambda t: mha(t, t, t, need_weights=need_weights, **kwargs)[0])


def test_mha_kdim_vdim_batch_first_and_unbatched(rng):
    mha = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, batch_first=True, dtype=ta.float64)  # L=3 != S=4
    q, k, v = leaf(rng, 2, 3, 4), leaf(rng, 2, 4, 3), leaf(rng, 2, 4, 5)
    out, w = mha(q, k, v, average_attn_weights=False)
    assert out.shape == (2, 3, 4) and w.shape == (2, 2, 3, 4)
    assert gradcheck(lambda q, k, v, *p: mha(q, k, v, need_weights=False)[0], [q, k, v, *mha.parameters()], name="MHA-kv")
    single, w1 = mha(q[0], k[0], v[0])
    np.testing.assert_allclose(single.numpy(), out.numpy()[0], rtol=1e-10)
    assert w1.shape == (3, 4)


def test_multihead_attention_takes_pytorch_positional_arguments():
    mha = nn.MultiheadAttention(8, 2, 0.0, True, False, False, 3, 5)  # ..., add_bias_kv, add_zero_attn, kdim, vdim
    assert mha.k_proj_weight.shape == (8, 3) and mha.v_proj_weight.shape == (8, 5)
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        nn.MultiheadAttention(8, 2, add_bias_kv=True)
    with pytest.raises(ValueError, match="num_heads must be positive"):
        nn.MultiheadAttention(8, 0)


def test_multihead_self_attention_uses_one_packed_projection_when_sequence_first():
    mha = nn.MultiheadAttention(4, 2)  # batch_first=False: the inputs are transposed first
    x = ta.randn(3, 2, 4)
    out, _ = mha(x, x, x, need_weights=False)
    kinds, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        kinds.add(node.name)
        stack.extend(p.grad_fn for p in node.parents if p is not None and p.grad_fn is not None)
    assert "Unbind" in kinds and "GetItem" not in kinds


def test_mha_bad_inputs():
    mha = nn.MultiheadAttention(4, 2)
    x = ta.randn(3, 2, 4)
    with pytest.raises(ValueError, match=r"key feature size 5 != 4"):
        mha(x, ta.randn(3, 2, 5), x)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 3\) should be \(3, 3\) or \(4, 3, 3\)"):
        mha(x, x, x, attn_mask=ta.ones(2, 3))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(3, 3\) should be \(2, 3\)"):
        mha(x, x, x, key_padding_mask=ta.tensor(np.zeros((3, 3), dtype=bool)))
    with pytest.raises(TypeError, match="masks must be bool or float, got dtype int64"):
        mha(x, x, x, attn_mask=ta.tensor(np.zeros((3, 3), dtype=np.int64)))


def test_mha_matches_pytorch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    mha = nn.MultiheadAttention(8, 2, batch_first=True, dtype=ta.float64)
    mha.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    pad = np.zeros((2, 5), dtype=bool)
    pad[0, -2:] = True
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    for kwargs in (dict(), dict(key_padding_mask=pad, attn_mask=causal)):
        t_out, t_w = ref(*(torch.tensor(x),) * 3, **{k: torch.tensor(v) for k, v in kwargs.items()})
        out, w = mha(*(ta.tensor(x),) * 3, **{k: ta.tensor(v) for k, v in kwargs.items()})
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(w.numpy(), t_w.detach().numpy(), rtol=1e-10, atol=1e-12)


# ---- positional encodings -----------------------------------------------------------------


def test_sinusoidal_values_and_gradient(rng):
    pe = nn.SinusoidalPositionalEncoding(6, max_len=10, dtype=ta.float64)
    x = leaf(rng, 2, 4, 6)
    y = pe(x).numpy() - x.numpy()
    pos, i = 3, 2  # feature 2i = 4 is sin, 2i + 1 = 5 is cos
    assert y[0, pos, 2 * i] == pytest.approx(np.sin(pos / 10000 ** (2 * i / 6)))
    assert y[1, pos, 2 * i + 1] == pytest.approx(np.cos(pos / 10000 ** (2 * i / 6)))
    assert list(pe.parameters()) == []
    assert gradcheck(pe, [x], name="SinusoidalPositionalEncoding")
    with pytest.raises(ValueError, match=r"sequence length 11 exceeds max_len 10"):
        pe(ta.randn(11, 6, dtype=ta.float64))


def test_learned_positional_encoding(rng):
    pe = nn.LearnedPositionalEncoding(d_model=3, max_len=8, dtype=ta.float64)
    x = leaf(rng, 2, 5, 3)
    np.testing.assert_allclose(pe(x).numpy() - x.numpy(), np.broadcast_to(pe.weight.numpy()[:5], (2, 5, 3)))
    assert module_gradcheck(pe, x, name="LearnedPositionalEncoding")
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        pe(ta.randn(9, 3, dtype=ta.float64))


def test_learned_positional_encoding_takes_d_model_then_max_len():
    pe = nn.LearnedPositionalEncoding(16, 10)
    assert pe.weight.shape == (10, 16) and (pe.d_model, pe.max_len) == (16, 10)
    assert pe(ta.zeros(2, 7, 16)).shape == (2, 7, 16)
    assert tuple(nn.LearnedPositionalEncoding(d_model=16, max_len=10).weight.shape) == (10, 16)
    assert tuple(nn.SinusoidalPositionalEncoding(16, 10).pe.shape) == tuple(pe.weight.shape)
    old_order = nn.LearnedPositionalEncoding(10, 16)  # (max_len, d_model) from before: caught at forward
    with pytest.raises(ValueError, match=r"LearnedPositionalEncoding\(d_model=10, max_len=16\): the input's last "
                                         r"axis has size 16, not d_model=10.*\(d_model, max_len\)"):
        old_order(ta.zeros(2, 7, 16))
    with pytest.raises(ValueError, match=r"SinusoidalPositionalEncoding\(d_model=8, max_len=5000\).*size 6"):
        nn.SinusoidalPositionalEncoding(8)(ta.zeros(3, 6))
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        nn.LearnedPositionalEncoding(16, 0)


def test_rotary_is_relative_and_gradchecks(rng):
    rope = nn.RotaryEmbedding(4, max_len=16)
    q1 = rng.standard_normal(4)
    k1 = rng.standard_normal(4)
    # the same q and k placed at positions (i, j) give a score that depends only on i - j
    Q = ta.tensor(np.tile(q1, (16, 1)))
    K = ta.tensor(np.tile(k1, (16, 1)))
    rq, rk = rope(Q, K)
    scores = rq.numpy() @ rk.numpy().T
    assert scores[5, 2] == pytest.approx(scores[9, 6])
    assert scores[3, 3] == pytest.approx(q1 @ k1)  # no rotation at equal positions
    assert not scores[5, 2] == pytest.approx(scores[5, 3])
    # pairing: feature 0 rotates with feature 2 (half split)
    x = np.zeros((2, 4))
    x[1, 0] = 1.0
    y = rope.rotate(ta.tensor(x)).numpy()
    np.testing.assert_allclose(y[1], [np.cos(1), 0, np.sin(1), 0], atol=1e-12)
    q, k = leaf(rng, 2, 5, 4), leaf(rng, 2, 5, 4)
    assert gradcheck(lambda q, k: rope(q, k)[0] * rope(q, k)[1], [q, k], name="RotaryEmbedding")
    with pytest.raises(ValueError, match="sequence length 17 exceeds max_len 16"):
        rope.rotate(ta.randn(17, 4))
