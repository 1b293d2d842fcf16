"""Fused ops: matmul, linear, softmax, log_softmax, layer_norm, embedding, dropout, losses (and the
CrossEntropyLoss/MSELoss modules over them).

Each is gradchecked, compared with a NumPy reference, and the fused ones with the same
math built from primitive ops. (The other losses, against PyTorch: test_losses.py.)
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.functional import cross_entropy_composite, layer_norm_composite, softmax_composite
from tinyattn.testing import gradcheck

from conftest import leaf

# ---- matmul ----------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),  # batched
    ((2, 3, 4), (4, 5)),  # x @ W: batch folded into rows
    ((4,), (4, 5)),  # vector @ matrix
    ((3, 4), (4,)),  # matrix @ vector
    ((4,), (4,)),  # dot product
    ((2, 1, 3, 4), (5, 4, 2)),  # broadcast batch dims on both sides
    ((1, 3, 4), (2, 4, 2)),  # batch 1 against batch 2
    ((3, 4), (2, 4, 2)),  # 2-D @ batched
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_values_and_gradients(rng, sa, sb):
    a, b = leaf(rng, *sa), leaf(rng, *sb)
    np.testing.assert_allclose((a @ b).numpy(), np.matmul(a.numpy(), b.numpy()), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda a, b: a @ b, [a, b], name="matmul")


def test_matmul_on_transposed_and_sliced_views(rng):
    a, b = leaf(rng, 5, 3), leaf(rng, 6, 4)
    assert gradcheck(lambda a, b: a.T[:, :3] @ b[:3, ::2], [a, b], name="matmul-views")  # (3, 3) @ (3, 2)
    assert gradcheck(lambda a, b: a[1:4].T @ b[::2, 1:], [a, b], name="matmul-views")  # (3, 3) @ (3, 3)
    assert gradcheck(lambda a, b: a.T @ b[:5, :2], [a, b], name="matmul-views")  # (3, 5) @ (5, 2)


@given(m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9), batch=st.integers(1, 3))
def test_matmul_float32_matches_numpy(m, k, n, batch):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.standard_normal((batch, m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = ta.tensor(a) @ ta.tensor(b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, x_shape, bias):
    x, w = leaf(rng, *x_shape), leaf(rng, 3, 4)
    b = leaf(rng, 3) if bias else None
    expected = x.numpy() @ w.numpy().T + (b.numpy() if bias else 0)
    np.testing.assert_allclose(F.linear(x, w, b).numpy(), expected, rtol=1e-12)
    inputs = [x, w] + ([b] if bias else [])
    assert gradcheck(lambda x, w, *b: F.linear(x, w, *b), inputs, name="linear")


def test_zero_sized_dimensions_in_matmul_softmax_attention_and_sum(rng):
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


# ---- softmax family ----------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_fused_matches_composite_and_gradchecks(rng, dim):
    x = leaf(rng, 3, 4, 5)
    fused, composite = F.softmax(x, dim), softmax_composite(x, dim)
    np.testing.assert_allclose(fused.numpy(), composite.numpy(), rtol=1e-12)
    w = rng.standard_normal(fused.shape)
    (fused * ta.tensor(w)).sum().backward()
    g_fused = x.grad.numpy().copy()
    x.grad = None
    (composite * ta.tensor(w)).sum().backward()
    np.testing.assert_allclose(g_fused, x.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda t: F.softmax(t, dim), [x], name="softmax")
    assert gradcheck(lambda t: F.log_softmax(t, dim), [x], name="log_softmax")


def test_softmax_on_a_non_contiguous_view(rng):
    x = leaf(rng, 4, 6)
    assert gradcheck(lambda t: F.softmax(t.T[1:, ::2], dim=-1), [x], name="softmax-view")


def test_log_softmax_is_finite_for_huge_logits():
    x = ta.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    y = F.log_softmax(x, dim=-1).numpy()
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0], [0.0, -2e4, -1e4], rtol=1e-6)
    np.testing.assert_allclose(np.exp(y).sum(-1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(F.softmax(x, -1).numpy()[0], [1.0, 0.0, 0.0])


# ---- layer_norm --------------------------------------------------------------------------


def test_layer_norm_matches_numpy_and_gradchecks(rng):
    x, w, b = leaf(rng, 2, 3, 5), leaf(rng, 5), leaf(rng, 5)
    y = F.layer_norm(x, (5,), w, b, eps=1e-5).numpy()
    xn = x.numpy()
    ref = (xn - xn.mean(-1, keepdims=True)) / np.sqrt(xn.var(-1, keepdims=True) + 1e-5) * w.numpy() + b.numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-10)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 5, w, b), [x, w, b], name="layer_norm")
    assert gradcheck(lambda x: F.layer_norm(x, (3, 5)), [x], name="layer_norm-2d-no-affine")


def test_layer_norm_float32_kernel_across_row_blocks(rng):
    # 150 rows cross the backward's 64-row blocks, whose dw/db partials are summed at the end
    x = rng.standard_normal((150, 7)).astype(np.float32) * 3 + 1
    w, b = rng.standard_normal(7).astype(np.float32), rng.standard_normal(7).astype(np.float32)
    tx, tw, tb = (ta.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.layer_norm(tx, 7, tw, tb)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(ta.tensor(dy))
    x64 = x.astype(np.float64)
    xhat = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.numpy(), xhat * w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tw.grad.numpy(), (dy * xhat).sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tb.grad.numpy(), dy.sum(0), rtol=1e-4, atol=1e-4)
    g = dy * w
    dx = (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(tx.grad.numpy(), dx, rtol=1e-4, atol=1e-4)


def test_layer_norm_with_only_a_bias_over_a_2d_normalized_shape_gradchecks(rng):
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


# ---- embedding -----------------------------------------------------------------------------


def test_embedding_lookup_and_scatter_add_gradient(rng):
    w = leaf(rng, 6, 3)
    idx = ta.tensor([[0, 5, 0], [2, 2, 2]])
    np.testing.assert_array_equal(F.embedding(idx, w).numpy(), w.numpy()[idx.numpy()])
    F.embedding(idx, w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[:, 0], [2, 0, 3, 0, 0, 1])
    w.grad = None
    assert gradcheck(lambda w: F.embedding(idx, w), [w], name="embedding")


# ---- dropout -------------------------------------------------------------------------------


def test_dropout_train_and_eval(rng):
    ta.manual_seed(0)
    x = ta.ones(200, 50, requires_grad=True)
    y = F.dropout(x, p=0.3, training=True)
    kept = y.numpy() != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.7, 0.0), rtol=1e-6)
    assert F.dropout(x, p=0.3, training=False) is x
    assert np.all(F.dropout(x, p=1.0).numpy() == 0)
    x64 = leaf(rng, 4, 5)
    ta.manual_seed(3)
    mask_run = F.dropout(x64, 0.5).numpy() / np.where(x64.numpy() == 0, 1, x64.numpy())

    def f(t):
        ta.manual_seed(3)  # the same mask on every evaluation
        return F.dropout(t, 0.5)

    assert gradcheck(f, [x64], name="dropout")
    assert set(np.round(np.unique(mask_run), 6)) <= {0.0, 2.0}


# ---- losses --------------------------------------------------------------------------------


def _ce_reference(logits, target, ignore_index=-100):
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    valid = target != ignore_index
    return -logp[np.arange(len(target))[valid], target[valid]].mean()


def test_cross_entropy_matches_reference_and_gradchecks(rng):
    logits = leaf(rng, 6, 4)
    target = ta.tensor([0, 3, 1, -100, 2, 3])
    np.testing.assert_allclose(F.cross_entropy(logits, target).item(), _ce_reference(logits.numpy(), target.numpy()), rtol=1e-12)
    assert gradcheck(lambda z: F.cross_entropy(z, target), [logits], name="cross_entropy")
    other = ta.tensor([0, 3, 1, 2, 2, 3])
    assert gradcheck(lambda z: F.cross_entropy(z, other, ignore_index=3, reduction="sum"), [logits], name="ce-sum")
    assert gradcheck(lambda z: F.cross_entropy(z, ta.tensor([0, 3, 1, 1, 2, 3]), reduction="none"), [logits], name="ce-none")


def test_cross_entropy_with_class_axis_one_and_single_sample(rng):
    logits = leaf(rng, 2, 4, 3)  # (N, C, d1)
    target = ta.tensor([[0, 3, 1], [2, 2, 0]])
    flat = np.moveaxis(logits.numpy(), 1, -1).reshape(-1, 4)
    np.testing.assert_allclose(F.cross_entropy(logits, target).item(), _ce_reference(flat, target.numpy().ravel()), rtol=1e-12)
    assert gradcheck(lambda z: F.cross_entropy(z, target), [logits], name="ce-nd")
    single = leaf(rng, 5)
    assert gradcheck(lambda z: F.cross_entropy(z, ta.tensor(2)), [single], name="ce-1d")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_fused_backward_equals_the_formula(rng, dtype, monkeypatch):
    """Large logits (>= loss.FUSED_BACKWARD elements) take the fused cross-entropy kernels: the same
    gradient as the NumPy formula smaller ones use, with ignored rows, label smoothing and every reduction;
    gradcheck through the fused path in float64."""
    from tinyattn.functional import loss

    target = rng.integers(0, 7, size=40)
    target[[3, 17]] = -100
    logits = rng.standard_normal((40, 7)).astype(dtype) * 3
    for kwargs in ({}, {"label_smoothing": 0.1}, {"reduction": "sum"}, {"reduction": "none", "label_smoothing": 0.2}):
        grads = []
        for threshold in (1 << 40, 1):  # the formula, then the fused kernel
            monkeypatch.setattr(loss, "FUSED_BACKWARD", threshold)
            z = ta.tensor(logits, requires_grad=True)
            out = F.cross_entropy(z, ta.tensor(target), **kwargs)
            (out * ta.tensor(np.linspace(0.5, 1.5, out.numel()).astype(dtype).reshape(out.shape))).sum().backward()
            grads.append(z.grad.numpy())
        np.testing.assert_allclose(grads[1], grads[0], rtol=0, atol=30 * np.finfo(dtype).eps, err_msg=str(kwargs))
    monkeypatch.setattr(loss, "FUSED_BACKWARD", 1)
    z = leaf(rng, 6, 4)
    assert gradcheck(lambda t: F.cross_entropy(t, ta.tensor([0, 3, 1, -100, 2, 3]), label_smoothing=0.1), [z],
                     name="ce fused backward")


def test_cross_entropy_is_finite_for_logits_of_1e4():
    logits = ta.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]], requires_grad=True)
    loss = F.cross_entropy(logits, ta.tensor([1, 1]))
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(1e4, rel=1e-6)  # row 0: -log softmax = 2e4, row 1: 0
    loss.backward()
    assert np.all(np.isfinite(logits.grad.numpy()))


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


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(rng, reduction):
    x, y = leaf(rng, 3, 4), leaf(rng, 4)
    ref = (x.numpy() - y.numpy()) ** 2
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    # y (4,) broadcasts against x (3, 4) on purpose: PyTorch warns about that, and so does tinyattn
    warning = r"mse_loss: using a target size \(4,\) that is different to the input size \(3, 4\)"
    with pytest.warns(UserWarning, match=warning):
        np.testing.assert_allclose(F.mse_loss(x, y, reduction=reduction).numpy(), ref, rtol=1e-12)
    with pytest.warns(UserWarning, match=warning):
        assert gradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), [x, y], name="mse_loss")


def test_cross_entropy_loss_module(rng):
    logits = leaf(rng, 5, 4)
    target = ta.tensor([0, 3, -100, 1, 2])
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.2):
            loss = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
            out = loss(logits, target)
            assert out.shape == ((5,) if reduction == "none" else ())
            assert gradcheck(lambda z: loss(z, target), [logits], name=f"CrossEntropyLoss({reduction}, {smoothing})")
    custom = nn.CrossEntropyLoss(ignore_index=3)
    assert gradcheck(lambda z: custom(z, ta.tensor([0, 3, 3, 1, 2])), [logits], name="ce-ignore-3")
    assert custom.ignore_index == 3 and repr(custom) == "CrossEntropyLoss()"  # PyTorch's repr


def test_cross_entropy_label_smoothing_matches_the_composite_reference(rng):
    logits = leaf(rng, 6, 5)
    target = ta.tensor([0, 4, -100, 1, 2, 2])
    for eps in (0.0, 0.1, 1.0):
        fused = ta.nn.functional.cross_entropy(logits, target, label_smoothing=eps)
        ref = ta.functional.cross_entropy_composite(logits, target, label_smoothing=eps)
        np.testing.assert_allclose(fused.item(), ref.item(), rtol=1e-12)
        fused.backward()
        g = logits.grad.numpy().copy()
        logits.grad = None
        ref.backward()
        np.testing.assert_allclose(g, logits.grad.numpy(), rtol=1e-10, atol=1e-14)
        logits.grad = None


def test_mse_loss_module(rng):
    p, q = leaf(rng, 3, 4), leaf(rng, 3, 4)
    for reduction in ("mean", "sum", "none"):
        loss = nn.MSELoss(reduction=reduction)
        expected = (p.numpy() - q.numpy()) ** 2
        expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
        np.testing.assert_allclose(loss(p, q).numpy(), expected, rtol=1e-12)
        assert gradcheck(lambda a, b: loss(a, b), [p, q], name=f"MSELoss({reduction})")


def test_loss_modules_reject_what_they_do_not_implement():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: reduction must be one of .*'avg'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: label_smoothing must be a number in \[0, 1\], got 1.5"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert nn.MSELoss(size_average=True).reduction == "mean"  # PyTorch's legacy mapping
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], got -0.1"):
        ta.nn.functional.cross_entropy(ta.zeros(2, 3), ta.tensor([0, 1]), label_smoothing=-0.1)
