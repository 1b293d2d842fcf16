"""Regression tests for bugs found in review: each failed before its fix."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.functional import cross_entropy_composite, layer_norm_composite
from tinyattn.testing import gradcheck

from conftest import leaf


def test_integer_true_division_and_powers_give_float32():
    np.testing.assert_array_equal((ta.arange(6) / 2).numpy(), np.arange(6) / 2)
    assert (ta.arange(6) / 2).dtype == ta.float32
    assert (ta.arange(3) / ta.arange(1, 4)).dtype == ta.float32
    assert (ta.arange(3) ** 0.5).dtype == ta.float32
    assert ta.tensor(np.float64(1.5)).dtype == ta.float64
    assert ta.full((2,), 3).dtype == ta.int64 and ta.full((2,), 0.5).dtype == ta.float32


def test_pow_zero_has_zero_gradient_and_rpow_of_a_negative_base_is_pytorchs():
    x = ta.tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    y = (-2) ** ta.tensor([0.0, 2.0, 0.5], requires_grad=True)  # PyTorch: 1, 4, nan, and a NaN gradient (log(-2))
    np.testing.assert_array_equal(y.detach().numpy(), [1.0, 4.0, np.nan])


def test_layer_norm_bias_only_with_a_2d_normalized_shape(rng):
    x, b = leaf(rng, 2, 2, 3), leaf(rng, 2, 3)
    assert gradcheck(lambda x, b: F.layer_norm(x, (2, 3), None, b), [x, b], name="layer_norm-bias-only")


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_fused_equals_composite(rng, affine):
    x, w, b = leaf(rng, 3, 2, 5), leaf(rng, 2, 5), leaf(rng, 2, 5)
    args = (w, b) if affine else (None, None)
    fused, ref = F.layer_norm(x, (2, 5), *args), layer_norm_composite(x, (2, 5), *args)
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)
    g = ta.tensor(rng.standard_normal(fused.shape))
    grads = []
    for out in (fused, ref):
        for t in (x, w, b):
            t.grad = None
        out.backward(g)
        grads.append([None if t.grad is None else t.grad.numpy().copy() for t in (x, w, b)])
    for a, r in zip(*grads):
        if a is not None or r is not None:
            np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-12)


def test_cross_entropy_fused_equals_composite(rng):
    logits = leaf(rng, 6, 5)
    target = ta.tensor([4, 0, -100, 2, 2, 1])
    fused, ref = F.cross_entropy(logits, target), cross_entropy_composite(logits, target)
    assert fused.item() == pytest.approx(ref.item(), rel=1e-12)
    fused.backward()
    g_fused = logits.grad.numpy().copy()
    logits.grad = None
    ref.backward()
    np.testing.assert_allclose(g_fused, logits.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_var_backward_with_too_few_elements_is_nan_not_an_exception():
    x = ta.tensor([2.0], requires_grad=True)
    y = x.var()
    assert np.isnan(y.item())
    y.backward()
    assert np.isnan(x.grad.numpy()).all()


def test_gradients_keep_their_tensor_dtype():
    lin = nn.Linear(4, 3)
    x = ta.randn(5, 4, requires_grad=True)
    seen = []

    class Spy(ta.Function):  # records the dtype of the gradient reaching it
        @staticmethod
        def forward(ctx, t):
            return t

        @staticmethod
        def backward(ctx, g):
            seen.append(g.dtype)
            return g

    h = Spy.apply(lin(x))
    (h.amax(-1).sum() + ta.maximum(h, 0.0).sum() + F.mse_loss(h, ta.zeros(5, 3, dtype=ta.float64))).backward()
    assert seen == [np.float32]
    assert x.grad.dtype == ta.float32 and lin.weight.grad.dtype == ta.float32


def test_float16_is_rejected_with_a_clear_error():
    with pytest.raises(TypeError, match=r"matmul: expected a float32 or float64 tensor, got dtype float16"):
        ta.tensor(np.ones((2, 2), np.float16)) @ ta.tensor(np.ones((2, 2), np.float16))


def test_zero_sized_dimensions(rng):
    a = ta.randn(3, 0, requires_grad=True)
    b = ta.randn(0, 4, requires_grad=True)
    c = a @ b
    np.testing.assert_array_equal(c.numpy(), np.zeros((3, 4)))
    c.sum().backward()
    assert a.grad.shape == (3, 0) and b.grad.shape == (0, 4)
    assert F.softmax(ta.randn(3, 0), -1).shape == (3, 0)
    out = F.scaled_dot_product_attention(ta.randn(2, 4), ta.randn(0, 4), ta.randn(0, 3))
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 3)))  # no key at all: every row fully masked
    assert F.scaled_dot_product_attention(ta.randn(0, 4), ta.randn(3, 4), ta.randn(3, 2)).shape == (0, 2)
    with pytest.raises(ValueError, match="head dim E must be positive"):
        F.scaled_dot_product_attention(ta.randn(3, 0), ta.randn(3, 0), ta.randn(3, 2))
    assert ta.tensor(2.0).sum(0).item() == 2.0


def test_adam_counts_steps_per_parameter_like_pytorch():
    def run(make_opt, grad_of):
        p, q = nn.Parameter(ta.tensor([1.0], dtype=ta.float64)), nn.Parameter(ta.tensor([1.0], dtype=ta.float64))
        opt = make_opt([p, q])
        for step in range(3):
            opt.zero_grad()
            p.grad = ta.tensor([grad_of(step)], dtype=ta.float64)
            if step > 0:  # q has no gradient at the first step
                q.grad = ta.tensor([0.5], dtype=ta.float64)
            opt.step()
        return p.numpy()[0], q.numpy()[0]

    _, q = run(lambda ps: ta.optim.Adam(ps, lr=0.1), lambda s: 1.0)
    # q's first update is its own step 1: m̂/√v̂ = 1, so it moves by exactly lr; then again by lr
    assert q == pytest.approx(0.8, abs=1e-7)
    torch = pytest.importorskip("torch")
    for name in ("Adam", "AdamW"):
        tp, tq = torch.tensor([1.0], dtype=torch.float64, requires_grad=True), torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        topt = getattr(torch.optim, name)([tp, tq], lr=0.1, weight_decay=0.01)
        for step in range(3):
            topt.zero_grad(set_to_none=True)
            tp.grad = torch.tensor([1.0 + step], dtype=torch.float64)
            if step > 0:
                tq.grad = torch.tensor([0.5], dtype=torch.float64)
            topt.step()
        ours = run(lambda ps: getattr(ta.optim, name)(ps, lr=0.1, weight_decay=0.01), lambda s: 1.0 + s)
        np.testing.assert_allclose(ours, [tp.item(), tq.item()], rtol=1e-12)


def test_clip_grad_norm_accepts_a_single_tensor():
    p = nn.Parameter(ta.tensor([3.0, 4.0]))
    p.grad = ta.tensor([30.0, 40.0])
    assert nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(50.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)


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


def test_train_mode_dropout_actually_drops():
    ta.manual_seed(0)
    layer = nn.Dropout(0.5)
    x = ta.ones(1000)
    assert (layer(x).numpy() == 0).mean() > 0.4
    assert (layer.eval()(x).numpy() == 1).all()


def test_more_bad_inputs_get_clear_errors():
    x = ta.randn(2, 3)
    with pytest.raises(TypeError, match="mse_loss: target must be a tensor, got ndarray"):
        F.mse_loss(x, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="linear: input must be a tensor, got ndarray"):
        F.linear(np.zeros((2, 3)), ta.randn(4, 3))
    with pytest.raises(TypeError, match="shape arguments must be ints"):
        x.reshape(2.5, 2)
    with pytest.raises(ValueError, match="flatten: dim 5 is out of range"):
        x.flatten(5)
    with pytest.raises(TypeError, match="dropout: expected a float32 or float64 tensor"):
        F.dropout(ta.arange(4))
    with pytest.raises(ValueError, match="cat: zero-dimensional tensors cannot be concatenated"):
        ta.cat([ta.tensor(1.0), ta.tensor(2.0)])
    with pytest.raises(TypeError, match="sum: dim must be an int"):
        x.sum(dim="a")
    with pytest.raises(TypeError, match="layer_norm: eps must be a non-negative number"):
        F.layer_norm(x, 3, eps="a")
    y = ta.randn(2, 3)
    np.testing.assert_array_equal(x.max(y).numpy(), np.maximum(x.numpy(), y.numpy()))
    assert ta.max(x).item() == x.numpy().max()
