"""tinyattn.autograd.functional (vjp, jvp, jacobian, hessian, hvp, vhp) against torch.autograd.functional."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.autograd import functional as AF

torch = pytest.importorskip("torch")
TF = torch.autograd.functional

rng = np.random.default_rng(7)
XA, YA = rng.standard_normal(3), rng.standard_normal(2)


def scalar(x, y):  # works on both frameworks' tensors
    return (x * x * y.sum() * x).sum() + (y * y * x.sum()).sum()


def vector(x, y):
    return x * x * y.sum(), y * y


def ours(*arrays):
    return tuple(ta.tensor(a) for a in arrays)


def theirs(*arrays):
    return tuple(torch.tensor(a) for a in arrays)


def close(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for p, q in zip(a, b):
            close(p, q)
    else:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_jacobian_and_hessian_nest_as_pytorch_and_match():
    close(AF.jacobian(vector, ours(XA, YA)), TF.jacobian(vector, theirs(XA, YA)))
    close(AF.jacobian(lambda x: x * x, ta.tensor(XA)), TF.jacobian(lambda x: x * x, torch.tensor(XA)))
    close(AF.hessian(scalar, ours(XA, YA)), TF.hessian(scalar, theirs(XA, YA)))
    cube = lambda x: (x * x * x).sum()  # noqa: E731
    close(AF.hessian(cube, ta.tensor(XA)), TF.hessian(cube, torch.tensor(XA)))


@pytest.mark.parametrize("name", ["vjp", "jvp", "hvp", "vhp"])
def test_products_match_pytorch(name):
    fn = vector if name in ("vjp", "jvp") else scalar
    shapes = [(3,), (2,)]
    va = tuple(rng.standard_normal(s) for s in shapes)
    out, prod = getattr(AF, name)(fn, ours(XA, YA), ours(*va))
    tout, tprod = getattr(TF, name)(fn, theirs(XA, YA), theirs(*va))
    close(out, tout)
    close(prod, tprod)


def test_inputs_are_left_alone_and_create_graph_keeps_a_graph():
    x = ta.tensor(XA, requires_grad=True)
    AF.hessian(lambda t: (t * t * t).sum(), x)
    assert x.grad is None
    _, (g,) = AF.vjp(lambda t: (t * t,), (x,), (ta.ones(3, dtype=ta.float64),), create_graph=True)
    assert g.requires_grad  # 2x, differentiable with respect to x itself
    (g.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])
    _, (plain,) = AF.vjp(lambda t: (t * t,), (x,), (ta.ones(3, dtype=ta.float64),))
    assert not plain.requires_grad


def test_strict_and_bad_arguments_raise_as_pytorch():
    x = ta.tensor(XA)
    independent = lambda t: ta.ones(2, dtype=ta.float64) * 2.0  # noqa: E731
    with pytest.raises(RuntimeError, match="strict=True"):
        AF.jacobian(independent, x, strict=True)
    j = AF.jacobian(independent, x)  # not strict: zeros, as PyTorch
    assert j.shape == (2, 3) and not j.numpy().any()
    with pytest.raises(RuntimeError, match="one element"):
        AF.hessian(lambda t: t * t, x)
    with pytest.raises(RuntimeError, match="shape"):
        AF.vjp(lambda t: t * t, x, ta.ones(2, dtype=ta.float64))
    with pytest.raises(RuntimeError, match="can be left out only"):
        AF.vjp(lambda t: t * t, x)
    with pytest.raises(NotImplementedError, match="vectorize"):
        AF.jacobian(lambda t: t, x, vectorize=True)
    with pytest.raises(TypeError, match="must be tensors"):
        AF.jacobian(lambda t: t, [1.0, 2.0])
