"""Higher-order gradients: the create_graph walk (autograd/graph_walk.py) and gradgradcheck itself.
The double backward of each op is checked in the test file of its subject."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import autograd
from tinyattn.functional.elementwise import Mul
from tinyattn.testing import GradcheckError, gradgradcheck


def leaf(values):
    return ta.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_grad_with_create_graph_gives_a_differentiable_gradient():
    x = leaf([1.0, -2.0, 3.0])
    (g,) = autograd.grad((x * x * x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.numpy() ** 2)
    assert g.requires_grad and g.grad_fn is not None
    (h,) = autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


def test_backward_with_create_graph_accumulates_out_of_place_and_retains_the_graph():
    x = leaf([1.0, 2.0])
    y = (x * x * x).sum()
    y.backward(create_graph=True)
    first = x.grad
    y.backward(create_graph=True)  # retain_graph defaulted to True: a second walk works
    assert x.grad is not first  # out of place, as PyTorch under create_graph
    np.testing.assert_allclose(x.grad.detach().numpy(), 6 * x.numpy() ** 2)
    np.testing.assert_allclose(first.detach().numpy(), 3 * x.numpy() ** 2)  # the earlier .grad is unchanged
    g = x.grad
    x.grad = None
    g.sum().backward()  # through both walks' graphs: d/dx Σ 6x² = 12x
    np.testing.assert_allclose(x.grad.numpy(), 12 * x.numpy())


def test_plain_backward_into_a_grad_that_has_a_graph_does_not_write_into_it():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward(create_graph=True)
    g = x.grad
    (x * 3).sum().backward()
    np.testing.assert_allclose(g.detach().numpy(), [2.0, 4.0])  # the graphed tensor is untouched
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])


def test_gradient_penalty_trains_through_the_second_derivative():
    w = leaf([0.5, -1.0])
    x = leaf([1.0, 2.0])
    out = (w * x * x).sum()
    (gx,) = autograd.grad(out, x, create_graph=True)  # 2 w x
    penalty = (gx * gx).sum()  # Σ 4 w² x²
    penalty.backward()
    np.testing.assert_allclose(w.grad.numpy(), 8 * w.numpy() * x.numpy() ** 2)


def test_hooks_and_retained_grads_see_gradient_tensors_with_a_graph():
    x = leaf([1.0, 2.0])
    h = x * x
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(g.requires_grad) or g * 2)
    y = (h * x).sum()
    (gx,) = autograd.grad(y, x, create_graph=True)
    assert seen == [True]
    np.testing.assert_allclose(h.grad.detach().numpy(), 2 * x.numpy())  # dy/dh = x, doubled by the hook
    np.testing.assert_allclose(gx.detach().numpy(), 2 * x.numpy() * 2 * x.numpy() + x.numpy() ** 2)


def test_a_gradient_given_with_a_graph_stays_in_it():
    x = leaf([1.0, 2.0])
    v = leaf([3.0, 4.0])
    (g,) = autograd.grad(x * x, x, grad_outputs=v, create_graph=True)  # 2 x v
    (dv,) = autograd.grad(g.sum(), v)
    np.testing.assert_allclose(dv.numpy(), 2 * x.numpy())


def test_an_op_without_a_differentiable_backward_is_named_not_detached(monkeypatch):
    monkeypatch.setattr(Mul, "differentiable_backward", None)
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="create_graph=True: Mul has no differentiable backward"):
        autograd.grad((x * x).sum(), x, create_graph=True)


def test_an_input_changed_in_place_after_use_is_an_error_under_create_graph():
    x = leaf([1.0, 2.0])
    h = x * 1.0
    y = (h * 3.0).sum()  # Mul saved nothing of h (3.0 needs no gradient)
    h.add_(1.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        autograd.grad(y, x, create_graph=True)


def test_gradgradcheck_passes_a_right_double_backward_and_fails_a_wrong_one(monkeypatch):
    x, w = leaf(np.linspace(-1, 1, 6).reshape(2, 3)), leaf([0.5, -1.5, 2.0])
    assert gradgradcheck(lambda a, b: (a * b * a - b).sum(dim=0), [x, w])

    def wrong(ctx, inputs, dy):  # right first derivative's shape, wrong value
        a, b = inputs
        return (None if a is None else dy * 1.0, None if b is None else dy * 1.0)

    monkeypatch.setattr(Mul, "differentiable_backward", staticmethod(wrong))
    with pytest.raises(GradcheckError, match="differs from the plain backward"):
        gradgradcheck(lambda a: a * a, [x])


def test_gradgradcheck_fails_a_second_derivative_that_is_wrong_only_in_its_graph(monkeypatch):
    x = leaf([0.3, -0.7, 1.1])

    def detached_b(ctx, inputs, dy):  # right value, but b's dependence is cut: d²/dx² comes out wrong
        a, b = inputs
        sa, sb = ctx.saved
        return (None if a is None else dy * (b.detach() if b is not None else sb),
                None if b is None else dy * (a.detach() if a is not None else sa))

    monkeypatch.setattr(Mul, "differentiable_backward", staticmethod(detached_b))
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda a: a * a, [x])


def _all_functions():
    import tinyattn.distributed.ddp  # noqa: F401  (its Function too)
    from tinyattn.autograd import Function

    seen, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("tinyattn") and cls not in seen:
            seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_function_of_the_library_has_a_differentiable_backward():
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in _all_functions() if c.differentiable_backward is None)
    assert not missing, f"no differentiable_backward (create_graph=True would raise): {missing}"


def test_an_input_changed_under_no_grad_after_use_is_an_error_not_a_wrong_second_derivative():
    x = leaf([1.0, 2.0])
    y = x.exp().sum()  # Exp saves its output, not x: only the recorded version can tell x moved
    with ta.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="input 0 of Exp .* changed in place"):
        autograd.grad(y, x, create_graph=True)
    (g,) = autograd.grad(y, x)  # the plain backward needs only the saved output: still right
    np.testing.assert_allclose(g.numpy(), np.exp([1.0, 2.0]))
    x = leaf([1.0, 2.0])
    h = x * 1.0
    y = (ta.softmax(h, 0) * ta.tensor([1.0, 3.0], dtype=ta.float64)).sum()
    with ta.no_grad():
        h.mul_(3.0)  # a non-leaf changed without a new node
    with pytest.raises(RuntimeError, match="input 0 of Softmax .* changed in place"):
        autograd.grad(y, x, create_graph=True)
