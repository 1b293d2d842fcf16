"""The causal mask's alignment: a query offset (query row i sits at key position i + offset) in the CPU and
CUDA attention kernels, and SDPA's CausalBias (causal_lower_right / causal_upper_left) against the same
float64 reference, its composite, gradcheck and PyTorch. Generation with a key/value cache relies on the
bottom-right alignment: its decode steps are queries at the end of a longer key sequence
(tests/test_generation.py)."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.kernels.cpu import attention as cpu_attn
from tinyattn.testing import gradcheck


def _reference(q, k, v, causal, window, offset, scale):
    """float64 attention with P materialised; query row i at key position i + offset; dead rows -> 0."""
    s = scale * q @ np.swapaxes(k, -1, -2)
    L, S = s.shape[-2:]
    pos, j = np.arange(L)[:, None] + offset, np.arange(S)[None, :]
    masked = np.zeros((L, S), bool)
    if causal:
        masked |= j > pos
    if window >= 0:
        masked |= np.abs(pos - j) > window
    s = np.where(masked, -np.inf, s)
    m = s.max(-1, keepdims=True)
    dead = m == -np.inf
    e = np.exp(s - np.where(dead, 0.0, m))
    p = np.where(dead, 0.0, e / np.where(dead, 1.0, e.sum(-1, keepdims=True)))
    return p @ v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L,S,offset", [(1, 13, 12), (3, 10, 7), (70, 140, 70), (5, 5, 0), (6, 4, -2), (4, 9, 2)])
@pytest.mark.parametrize("causal,window", [(True, -1), (True, 2), (False, 3)])
def test_cpu_kernel_offset_matches_reference(dtype, L, S, offset, causal, window):
    rng = np.random.default_rng(L * 100 + S)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((2, L, 8), (2, S, 8), (2, S, 5)))
    out, lse = cpu_attn.attention_forward(q, k, v, np.zeros((1, 1, 1), dtype), False, causal, window, 0.4, offset)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    want = _reference(*(a.astype(np.float64) for a in (q, k, v)), causal, window, offset, 0.4)
    np.testing.assert_allclose(out, want, **tol)
    # the alignment matters: top-left (offset 0) gives another result whenever offset != 0
    if offset > 0 and causal:
        top_left = _reference(*(a.astype(np.float64) for a in (q, k, v)), causal, window, 0, 0.4)
        assert np.abs(top_left - want).max() > 1e-3


def test_cpu_kernel_offset_backward_matches_reference():
    # dq, dk, dv of the kernel against the same attention in float64 autograd-free algebra (finite-size check)
    rng = np.random.default_rng(3)
    q, k, v, dout = (rng.standard_normal(s) for s in ((1, 70, 8), (1, 140, 8), (1, 140, 6), (1, 70, 6)))
    dummy = np.zeros((1, 1, 1))
    out, lse = cpu_attn.attention_forward(q, k, v, dummy, False, True, -1, 0.3, 70)
    dq, dk, dv = cpu_attn.attention_backward(q, k, v, dummy, False, True, -1, 0.3, out, lse, dout, 70)
    eps = 1e-6  # directional derivatives along random directions
    for grad, idx in ((dq, 0), (dk, 1), (dv, 2)):
        d = rng.standard_normal(grad.shape)
        args = [q, k, v]
        plus = [a + eps * d if i == idx else a for i, a in enumerate(args)]
        minus = [a - eps * d if i == idx else a for i, a in enumerate(args)]
        num = ((_reference(*plus, True, -1, 70, 0.3) - _reference(*minus, True, -1, 70, 0.3)) * dout).sum() / (2 * eps)
        assert abs((grad * d).sum() - num) < 1e-6 * max(1.0, abs(num))


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
    np.testing.assert_allclose(fused.numpy(), _reference(q.numpy(), k.numpy(), v.numpy(), True, -1, S - L,
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
    np.testing.assert_allclose(w.numpy(), _reference(q.numpy(), k.numpy(), v.numpy(), True, 1, 5, 0.5), rtol=1e-12)


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


def test_cuda_kernel_offset_matches_cpu():
    pytest.importorskip("numba_cuda")
    from tinyattn.kernels.cuda import attention as gpu

    rng = np.random.default_rng(8)
    q, k, v, dout = (rng.standard_normal(s) for s in ((1, 3, 4), (1, 6, 4), (1, 6, 3), (1, 3, 3)))
    dummy = np.zeros((1, 1, 1))
    for offset, window in ((3, -1), (1, 1), (-1, -1)):
        out, lse = cpu_attn.attention_forward(q, k, v, dummy, False, True, window, 0.5, offset)
        grads = cpu_attn.attention_backward(q, k, v, dummy, False, True, window, 0.5, out, lse, dout, offset)
        g_out, g_lse = gpu.attention_forward(q, k, v, True, 0.5, window=window, rows=4, block_k=2, offset=offset)
        np.testing.assert_allclose(g_out.copy_to_host(), out, rtol=1e-12, atol=1e-12)
        g_grads = gpu.attention_backward(q, k, v, True, 0.5, out, lse, dout, window=window, rows=4, offset=offset)
        for g, c in zip(g_grads, grads):
            np.testing.assert_allclose(g.copy_to_host(), c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, _reference(q, k, v, True, -1, -1, 0.5), atol=1e-12)

