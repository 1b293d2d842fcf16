"""Tensor hooks, retain_grad, autograd.grad and module hooks, with PyTorch's semantics."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import autograd


def leaf(values, dtype=np.float64):
    return ta.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---- Tensor.register_hook ------------------------------------------------------------------------

def test_a_hook_that_doubles_a_gradient_doubles_grad():
    x = leaf([1.0, 2.0, 3.0])
    h = x * x  # dL/dx = 2x * 3 without hooks
    h.register_hook(lambda g: g * 2)
    (h * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 6 * np.array([1.0, 2.0, 3.0]))

    y = leaf([1.0, 2.0])
    y.register_hook(lambda g: g * 2)  # on a leaf: before accumulation into .grad
    (y * 5).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [10.0, 10.0])


def test_hooks_see_the_gradient_run_in_order_and_chain_replacements():
    x = leaf([1.0, -2.0])
    h = x.tanh()
    seen = []
    h.register_hook(lambda g: seen.append(("first", g.numpy().copy())))
    h.register_hook(lambda g: g + 1)
    h.register_hook(lambda g: seen.append(("third", g.numpy().copy())))
    (h * ta.tensor([3.0, 4.0], dtype=ta.float64)).sum().backward()
    assert [name for name, _ in seen] == ["first", "third"]
    np.testing.assert_allclose(seen[0][1], [3.0, 4.0])
    np.testing.assert_allclose(seen[1][1], [4.0, 5.0])
    t = np.tanh([1.0, -2.0])
    np.testing.assert_allclose(x.grad.numpy(), np.array([4.0, 5.0]) * (1 - t ** 2))


def test_remove_takes_a_hook_off():
    x = leaf([1.0])
    handle = x.register_hook(lambda g: g * 10)
    (x * 1).sum().backward()
    handle.remove()
    handle.remove()  # twice is harmless
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [11.0])
    h = x * 2
    with h.register_hook(lambda g: g * 0):  # a handle is a context manager
        pass
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [13.0])


def test_a_leaf_hook_runs_once_on_the_sum_before_grad_changes():
    x = leaf([1.0, 2.0])
    calls = []

    def hook(g):
        calls.append((g.numpy().copy(), None if x.grad is None else x.grad.numpy().copy()))

    x.register_hook(hook)
    (x * x + x).sum().backward()  # x reaches the loss three times
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0][0], [3.0, 5.0])  # 2x + 1, summed before the hook
    assert calls[0][1] is None  # the hook ran before the accumulation into .grad
    (x * 1).sum().backward()
    assert len(calls) == 2 and calls[1][1] is not None
    np.testing.assert_allclose(calls[1][1], [3.0, 5.0])


def test_a_hook_may_not_change_its_argument_and_must_return_a_fitting_tensor():
    x = leaf([1.0, 2.0])
    h = x * 2
    h.register_hook(lambda g: g.add_(1))
    with pytest.raises(ValueError, match="read-only"):
        h.sum().backward()
    x2 = leaf([1.0, 2.0])
    (x2 * 2).register_hook(lambda g: None)
    h2 = x2 * 2
    h2.register_hook(lambda g: ta.ones(3, dtype=ta.float64))
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*shape \(2,\)"):
        h2.sum().backward()
    h3 = leaf([1.0]) * 2
    h3.register_hook(lambda g: np.ones(1))
    with pytest.raises(TypeError, match="returns None or a tensor"):
        h3.sum().backward()
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        ta.ones(2).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        x.register_hook(3)


def test_in_place_changes_follow_pytorchs_hook_rules():
    # PyTorch: a hook registered before an in-place op gets the gradient of the old value, one
    # registered after gets the new value's; retain_grad follows the tensor to its new value.
    x = leaf([1.0, 2.0])
    h = x * 2
    seen = {}
    h.register_hook(lambda g: seen.__setitem__("before", g.numpy().copy()))
    h.retain_grad()
    h.mul_(3)
    h.register_hook(lambda g: seen.__setitem__("after", g.numpy().copy()))
    (h * h).sum().backward()
    np.testing.assert_allclose(seen["after"], [12.0, 24.0])  # d(h²)/dh at h = 6x
    np.testing.assert_allclose(seen["before"], [36.0, 72.0])  # through the *3
    np.testing.assert_allclose(h.grad.numpy(), [12.0, 24.0])
    np.testing.assert_allclose(x.grad.numpy(), [72.0, 144.0])


def test_in_place_hook_rules_match_torch():
    torch = pytest.importorskip("torch")
    results = []
    for lib in (ta, torch):
        x = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        h = x * 2.0
        seen = []
        h.register_hook(lambda g: seen.append(g.numpy().copy()))
        h.register_hook(lambda g: g * 3)
        h.retain_grad()
        h.add_(x * x)
        h.register_hook(lambda g: seen.append(g.numpy().copy()))
        (h.tanh() * h).sum().backward()
        results.append((seen, h.grad.numpy().copy(), x.grad.numpy().copy()))
    (ours_seen, ours_h, ours_x), (their_seen, their_h, their_x) = results
    assert len(ours_seen) == len(their_seen) == 2
    for a, b in zip(ours_seen, their_seen):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(ours_h, their_h)
    np.testing.assert_allclose(ours_x, their_x)


def test_retain_grad():
    x = leaf([1.0, 2.0])
    h = x * 3
    assert not h.retains_grad and not x.retains_grad
    h.retain_grad()
    h.retain_grad()  # twice: still one accumulation per backward
    x.retain_grad()  # a leaf keeps its gradient anyway: nothing changes
    assert h.retains_grad and not x.retains_grad
    h.register_hook(lambda g: g * 10)  # registered after retain_grad, still runs before it (PyTorch)
    y = (h * h).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(h.grad.numpy(), 10 * 2 * np.array([3.0, 6.0]))
    y.backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * 10 * 2 * np.array([3.0, 6.0]))  # accumulates
    other = x * 3  # not retained
    other.sum().backward()
    assert other.grad is None
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        ta.ones(2).retain_grad()


def test_retain_grad_on_both_outputs_of_a_tuple_op():
    x = leaf([[3.0, 1.0], [0.5, 2.0]])
    values, indices = x.max(dim=1)
    values.retain_grad()
    (values * ta.tensor([2.0, 5.0], dtype=ta.float64)).sum().backward()
    np.testing.assert_allclose(values.grad.numpy(), [2.0, 5.0])
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [0.0, 5.0]])


# ---- autograd.grad -------------------------------------------------------------------------------

def composite(lib, a, w, b):
    h = (a @ w + b).tanh()
    s = lib.softmax(h * 2.0, dim=-1)
    return h, (s * s.log()).sum() + (h ** 2).mean()


def test_grad_equals_pytorch_on_a_composite_expression():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=s) for s in ((4, 3), (3, 5), (5,))]
    ours = [ta.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    h_ours, y_ours = composite(ta, *ours)
    h_theirs, y_theirs = composite(torch, *theirs)
    got = autograd.grad(y_ours, [ours[1], h_ours, ours[0]], retain_graph=True)
    want = torch.autograd.grad(y_theirs, [theirs[1], h_theirs, theirs[0]], retain_graph=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-10, atol=1e-12)
    assert all(t.grad is None for t in ours)  # grad() touches no .grad
    # with grad_outputs for several outputs
    v = rng.normal(size=(4, 5))
    got = autograd.grad([h_ours, y_ours], ours[2], grad_outputs=[ta.tensor(v), None])
    want = torch.autograd.grad([h_theirs, y_theirs], theirs[2], grad_outputs=[torch.tensor(v), None])
    np.testing.assert_allclose(got[0].numpy(), want[0].numpy(), rtol=1e-10)


def test_grad_runs_only_the_part_that_leads_to_the_inputs():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    blocked = (b // 2.0).sum()  # // has no gradient: its backward raises
    y = (a * a).sum() + blocked * 0.0
    (ga,) = autograd.grad(y, a)
    np.testing.assert_allclose(ga.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError):
        autograd.grad((a * a).sum() + (b // 2.0).sum(), b)


def test_grad_unused_inputs_retain_graph_and_errors():
    a, unused = leaf([1.0, 2.0]), leaf([5.0])
    y = (a * 3).sum()
    with pytest.raises(RuntimeError, match="input 1 .* not used"):
        autograd.grad(y, [a, unused], retain_graph=True)
    ga, gu = autograd.grad(y, [a, unused], allow_unused=True, retain_graph=True)
    assert gu is None and np.allclose(ga.numpy(), 3.0)
    ga, gu = autograd.grad(y, [a, unused], materialize_grads=True)  # retain_graph defaults to False
    np.testing.assert_array_equal(gu.numpy(), [0.0])
    with pytest.raises(RuntimeError, match="second time"):
        autograd.grad(y, a)
    with pytest.raises(RuntimeError, match="does not require grad"):
        autograd.grad((a * 2).sum(), ta.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        autograd.grad(ta.ones(1), a)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        autograd.grad(a * 2, a)
    (g,) = autograd.grad((a * 2).sum(), a, create_graph=True)  # a constant gradient: no graph needed
    np.testing.assert_array_equal(g.numpy(), [2.0, 2.0])
    assert not g.requires_grad
    with pytest.raises(TypeError, match="must be a tensor"):
        autograd.grad((a * 2).sum(), [a, 3.0])


def test_grad_with_respect_to_an_intermediate_a_repeated_input_and_hooks():
    x = leaf([1.0, 2.0])
    h = x * 2
    h.retain_grad()
    h.register_hook(lambda g: g * 10)
    x.register_hook(lambda g: g + 1)
    y = (h ** 3).sum()
    gh, gx, gx_again = autograd.grad(y, [h, x, x])
    np.testing.assert_allclose(gh.numpy(), 10 * 3 * np.array([2.0, 4.0]) ** 2)  # after h's hook
    np.testing.assert_allclose(gx.numpy(), 2 * gh.numpy() + 1)  # after x's leaf hook
    np.testing.assert_allclose(gx_again.numpy(), gx.numpy())
    assert x.grad is None  # grad() fills no leaf's .grad, but the retained one, as PyTorch's does
    np.testing.assert_allclose(h.grad.numpy(), gh.numpy())


def test_grad_of_an_intermediate_changed_in_place_is_that_of_its_new_value():
    x = leaf([1.0, 2.0])
    h = x * x
    h.add_(x)  # h = x² + x now
    (gh,) = autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 2 * np.array([2.0, 6.0]))
    (gx,) = autograd.grad((h * h).sum(), x)
    np.testing.assert_allclose(gx.numpy(), 2 * np.array([2.0, 6.0]) * (2 * np.array([1.0, 2.0]) + 1))


# ---- module hooks --------------------------------------------------------------------------------

def test_forward_pre_hooks_and_forward_hooks():
    ta.manual_seed(0)
    lin = nn.Linear(3, 2, dtype=ta.float64)
    x = ta.tensor(np.arange(6.0).reshape(2, 3))
    order = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (order.append("pre1"), (args[0] * 2,))[1])
    h2 = lin.register_forward_pre_hook(lambda m, args: order.append("pre0"), prepend=True)
    h3 = lin.register_forward_hook(lambda m, args, out: (order.append("post"), out + 1)[1])
    expected = (2 * x.numpy()) @ lin.weight.numpy().T + lin.bias.numpy() + 1
    np.testing.assert_allclose(lin(x).numpy(), expected)
    assert order == ["pre0", "pre1", "post"]
    for h in (h1, h2, h3):
        h.remove()
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T + lin.bias.numpy())
    assert not (lin._forward_pre_hooks or lin._forward_hooks or lin._forward_hooks_with_kwargs)


def test_forward_hooks_with_kwargs_and_always_call():
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    x = ta.randn(1, 3, 4)
    seen = {}

    def pre(module, args, kwargs):
        return args, {**kwargs, "need_weights": False}

    def post(module, args, kwargs, output):
        seen["kwargs"], seen["weights"] = dict(kwargs), output[1]

    mha.register_forward_pre_hook(pre, with_kwargs=True)
    mha.register_forward_hook(post, with_kwargs=True)
    out, weights = mha(x, x, x, need_weights=True)
    assert weights is None and seen["weights"] is None and seen["kwargs"]["need_weights"] is False

    lin = nn.Linear(4, 2)
    called = []
    lin.register_forward_hook(lambda m, a, o: called.append(o), always_call=True)
    lin.register_forward_hook(lambda m, a, o: called.append("not always"))
    with pytest.raises(ValueError):
        lin(ta.randn(3, 5))
    assert called == [None]


def test_full_backward_hook_matches_torch_and_can_replace_grad_input():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w, b, xs = rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(4, 3))
    ours = nn.Linear(3, 2, dtype=ta.float64)
    theirs = torch.nn.Linear(3, 2, dtype=torch.float64)
    with ta.no_grad():
        ours.weight.copy_(ta.tensor(w))
        ours.bias.copy_(ta.tensor(b))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w))
        theirs.bias.copy_(torch.tensor(b))
    results = []
    for lib, module in ((ta, ours), (torch, theirs)):
        calls = []

        def hook(m, grad_input, grad_output):
            calls.append(([g.numpy().copy() for g in grad_input], [g.numpy().copy() for g in grad_output]))
            return (grad_input[0] * 3,)

        handle = module.register_full_backward_hook(hook)
        x = lib.tensor(xs, requires_grad=True)
        (module(x) ** 2).sum().backward()
        handle.remove()
        results.append((calls, x.grad.numpy().copy(), module.weight.grad.numpy().copy()))
    (oc, ox, ow), (tc, tx, tw) = results
    assert len(oc) == len(tc) == 1
    np.testing.assert_allclose(oc[0][0][0], tc[0][0][0])  # grad_input
    np.testing.assert_allclose(oc[0][1][0], tc[0][1][0])  # grad_output
    np.testing.assert_allclose(ox, tx)  # the replacement flowed on: 3x
    np.testing.assert_allclose(ow, tw)  # parameters are not inputs: untouched


def test_full_backward_hook_without_input_grads_and_with_tuple_outputs():
    emb = nn.Embedding(5, 3)
    calls = []
    emb.register_full_backward_hook(lambda m, gi, go: calls.append((gi, [tuple(g.shape) for g in go])))
    (emb(ta.tensor([[1, 2]])) * 2).sum().backward()
    assert calls == [((None,), [(1, 2, 3)])]  # tokens need no gradient: grad_input is (None,)

    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    seen = []
    mha.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    x = ta.randn(1, 3, 4, requires_grad=True)
    out, weights = mha(x, x, x)
    (out * 2).sum().backward()
    (grad_input, grad_output), = seen
    assert len(grad_input) == 3 and len(grad_output) == 2 and grad_output[1] is None  # weights had no gradient
    np.testing.assert_allclose(grad_output[0].numpy(), 2.0)
    # x was passed three times: each argument's gradient separately, summing to x.grad
    np.testing.assert_allclose(sum(g.numpy() for g in grad_input), x.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_backward_hook_identity_shares_the_version_counter():
    relu = nn.ReLU()
    relu.register_full_backward_hook(lambda m, gi, go: None)
    x = ta.randn(4, requires_grad=True)
    y = relu(x * 1)  # ReLU saves its output for backward
    y.add_(1)  # y is BackwardHookFunction's output over the same memory
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


def test_modules_without_hooks_add_nothing_to_the_graph():
    lin = nn.Linear(3, 2)
    y = lin(ta.randn(2, 3, requires_grad=True))
    assert y.grad_fn.name == "Linear"
    handle = lin.register_full_backward_hook(lambda *a: None)
    assert lin(ta.randn(2, 3, requires_grad=True)).grad_fn.name == "BackwardHookFunction"
    handle.remove()
    assert lin(ta.randn(2, 3, requires_grad=True)).grad_fn.name == "Linear"
    with ta.no_grad():
        lin.register_full_backward_hook(lambda *a: None)
        assert lin(ta.randn(2, 3)).grad_fn is None


def test_a_hook_may_not_change_the_gradients_dtype():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g.double())
    with pytest.raises(RuntimeError, match="changed the type of the gradient"):
        y.sum().backward()
    x.register_hook(lambda g: g.long())
    with pytest.raises(RuntimeError, match="changed the type"):
        (x * 3).sum().backward()
    assert x.grad is None
