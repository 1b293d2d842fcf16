"""The backward walk runs an activation's backward inside the product after it (autograd/engine.py,
`_factor_producer`): a Linear after a GELU computes dh = (dy W) · gelu'(h) in one product (after a ReLU:
(dy W) · [y > 0]). The gradients must be
those of the unfused walk, and the walk must not pair the two wherever anything could see the gradient between
them (another consumer, a hook, retain_grad, grad() of it, a root) or a saved value changed."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn import backend
from tinyattn.functional.elementwise import Gelu, Relu
from tinyattn.testing import gradcheck


@pytest.fixture
def fused_calls(monkeypatch):
    """The activations each fused product was asked for, in order (the CPU backend's matmul_act_grad)."""
    calls = []
    real = backend.CPUBackend.matmul_act_grad

    def spy(self, a, b, act, x):
        calls.append(act)
        return real(self, a, b, act, x)

    monkeypatch.setattr(backend.CPUBackend, "matmul_act_grad", spy)
    return calls


def _mlp(dtype, bias=True):
    ta.manual_seed(0)
    return nn.Linear(24, 40, bias=bias).to(dtype), nn.Linear(40, 24, bias=bias).to(dtype)


def _grads(loss_of, tensors, fused):
    """The gradients of `tensors` after loss_of().backward(), the walk pairing nodes (fused) or not."""
    saved = Gelu.grad_factor, Relu.grad_factor
    if not fused:
        Gelu.grad_factor = Relu.grad_factor = None
    try:
        for t in tensors:
            t.grad = None
        loss_of().backward()
    finally:
        Gelu.grad_factor, Relu.grad_factor = saved
    return [t.grad.numpy().copy() for t in tensors]


ACTIVATIONS = {"gelu_erf": F.gelu, "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"), "relu": F.relu}


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_are_the_unfused_walks(fused_calls, act, dtype, bias):
    fc, proj = _mlp(dtype, bias)
    x = ta.randn(3, 70, 24, dtype=dtype, requires_grad=True)
    tensors = [x, *fc.parameters(), *proj.parameters()]

    def loss():
        return (proj(ACTIVATIONS[act](fc(x))) ** 2).sum()

    fused = _grads(loss, tensors, True)
    assert fused_calls == [act]
    plain = _grads(loss, tensors, False)
    assert len(fused_calls) == 1
    for f, p in zip(fused, plain):
        if dtype == np.float32 and act == "gelu_erf":   # (a few ulp: test_matmul_fused.py says why)
            np.testing.assert_allclose(f, p, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(f, p)


def test_gradcheck_through_the_fused_pair(fused_calls):
    fc, proj = _mlp(np.float64)
    x = ta.randn(2, 9, 24, dtype=np.float64, requires_grad=True)
    w1, w2 = fc.weight.detach().requires_grad_(), proj.weight.detach().requires_grad_()
    for act in ACTIVATIONS.values():
        gradcheck(lambda x, w1, w2: F.linear(act(F.linear(x, w1)), w2), [x, w1, w2])
    assert set(fused_calls) == set(ACTIVATIONS)


def _pairs_where(make_loss, fused_calls, tensors):
    """(whether the walk paired the nodes, whether the gradients equal the unfused walk's)."""
    fused = _grads(make_loss, tensors, True)
    paired = bool(fused_calls)
    plain = _grads(make_loss, tensors, False)
    return paired, all(np.array_equal(f, p) for f, p in zip(fused, plain))


def test_no_pairing_where_the_activation_has_another_consumer(fused_calls):
    fc, proj = _mlp(np.float64)
    x = ta.randn(5, 24, dtype=np.float64, requires_grad=True)
    tensors = [x, fc.weight, proj.weight]

    def two_consumers():
        a = F.gelu(fc(x))
        return (proj(a) ** 2).sum() + (a ** 3).sum()

    assert _pairs_where(two_consumers, fused_calls, tensors) == (False, True)

    def one_layer_twice():                        # one module, two nodes reading it
        a = F.gelu(fc(x))
        return (proj(a) * proj(a)).sum()

    assert _pairs_where(one_layer_twice, fused_calls, tensors) == (False, True)


def test_no_pairing_where_a_hook_or_retain_grad_sees_the_gradient(fused_calls):
    fc, proj = _mlp(np.float64)
    x = ta.randn(5, 24, dtype=np.float64, requires_grad=True)
    seen = []

    def hooked():
        a = F.gelu(fc(x))
        a.register_hook(lambda g: seen.append(g.numpy().copy()))
        return (proj(a) ** 2).sum()

    assert _pairs_where(hooked, fused_calls, [x, fc.weight]) == (False, True)
    assert len(seen) == 2 and seen[0].shape == (5, 40)

    kept = []

    def retained():
        a = F.gelu(fc(x))
        a.retain_grad()
        kept.append(a)
        return (proj(a) ** 2).sum()

    assert _pairs_where(retained, fused_calls, [x, fc.weight]) == (False, True)
    a = kept[-1]
    np.testing.assert_allclose(a.grad.numpy(), (2 * proj(a) @ proj.weight).numpy())


def test_grad_of_the_activations_output_and_a_second_root(fused_calls):
    fc, proj = _mlp(np.float64)
    x = ta.randn(5, 24, dtype=np.float64, requires_grad=True)
    a = F.gelu(fc(x))
    y = proj(a)
    (ga,) = ta.autograd.grad((y ** 2).sum(), [a], retain_graph=True)
    np.testing.assert_allclose(ga.numpy(), (2 * y @ proj.weight).numpy())
    (gx,) = ta.autograd.grad((y ** 2).sum(), [x], retain_graph=True)   # grad() never pairs: the plain walk
    assert fused_calls == []
    (y ** 2).sum().backward()
    assert fused_calls == ["gelu_erf"]
    np.testing.assert_allclose(x.grad.numpy(), gx.numpy(), rtol=1e-12)


def test_retain_graph_pairs_again_and_a_changed_input_raises(fused_calls):
    fc, proj = _mlp(np.float64)
    x = ta.randn(5, 24, dtype=np.float64, requires_grad=True)
    h = fc(x)
    loss = (proj(F.gelu(h)) ** 2).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-12)
    assert fused_calls == ["gelu_erf", "gelu_erf"]

    h = fc(x)
    loss = (proj(F.gelu(h)) ** 2).sum()
    with ta.no_grad():
        h.mul_(2)                                     # the GELU's saved input, changed after the forward
    with pytest.raises(RuntimeError, match="Gelu saved for its backward was modified"):
        loss.backward()


def test_double_backward(fused_calls):
    """create_graph=True walks with recorded ops (never paired); the backward through what it recorded is a plain
    walk, which may pair the forward's GELU and Linear again: the same second derivative either way."""
    fc, proj = _mlp(np.float64)
    x = ta.randn(4, 24, dtype=np.float64, requires_grad=True)

    def grad_norm():
        before = len(fused_calls)
        (gx,) = ta.autograd.grad((proj(F.gelu(fc(x))) ** 2).sum(), [x], create_graph=True)
        assert len(fused_calls) == before
        return (gx ** 2).sum()

    fused = _grads(grad_norm, [x, fc.weight], True)
    assert fused_calls == ["gelu_erf"]
    plain = _grads(grad_norm, [x, fc.weight], False)
    for f, p in zip(fused, plain):
        np.testing.assert_array_equal(f, p)


def test_frozen_weights_and_as_torch_modules(fused_calls):
    """Only dx wanted (a frozen consumer), and nn.GELU modules (PyTorch's layout of an MLP)."""
    fc, proj = _mlp(np.float32)
    proj.weight.requires_grad_(False)
    proj.bias.requires_grad_(False)
    mlp = nn.Sequential(fc, nn.GELU(approximate="tanh"), proj)
    x = ta.randn(8, 24, requires_grad=True)
    paired, equal = _pairs_where(lambda: (mlp(x) ** 2).sum(), fused_calls, [x, fc.weight, fc.bias])
    assert paired and equal
