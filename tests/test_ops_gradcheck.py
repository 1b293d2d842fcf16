"""Every differentiable op, gradchecked in float64 against central differences.

Covers broadcast pairs, non-contiguous inputs (transposed and sliced views made inside
the checked function) and batched shapes; hypothesis draws the shapes.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.testing import gradcheck

from conftest import leaf

small_shapes = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
broadcast_pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


def randt(shape, seed, low=None):
    return leaf(np.random.default_rng(seed), *shape, low=low)


# ---- binary elementwise ops with broadcasting ------------------------------------

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": ta.maximum,
}


@pytest.mark.parametrize("op", sorted(BINARY))
@given(shapes=broadcast_pairs, seed=st.integers(0, 2**16))
def test_binary_broadcast(op, shapes, seed):
    sa, sb = shapes.input_shapes
    a = randt(sa, seed)
    b = randt(sb, seed + 1, low=0.5 if op == "div" else None)  # keep division away from 0
    out = BINARY[op](a, b)
    assert out.shape == shapes.result_shape
    assert gradcheck(BINARY[op], [a, b], name=op)


@pytest.mark.parametrize("op", ["radd", "rsub", "rmul", "rdiv"])
def test_python_scalars_on_either_side(rng, op):
    x = leaf(rng, 3, 2, low=0.5)
    f = {"radd": lambda t: 2.0 + t - 1, "rsub": lambda t: 3 - t, "rmul": lambda t: 0.5 * t * 4,
         "rdiv": lambda t: 2.0 / t / 3}[op]
    assert f(x).dtype == np.float64
    assert gradcheck(f, [x], name=op)


# ---- unary elementwise ops -----------------------------------------------------------

UNARY = {
    "neg": (lambda x: -x, None),
    "exp": (ta.exp, None),
    "log": (ta.log, 0.2),
    "sqrt": (ta.sqrt, 0.2),
    "abs": (ta.abs, 0.1),  # kinks at 0 are not differentiable: stay away
    "tanh": (ta.tanh, None),
    "sigmoid": (ta.sigmoid, None),
    "relu": (F.relu, 0.1),
    "gelu": (F.gelu, None),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), None),
    "pow3": (lambda x: x**3, None),
    "pow_half": (lambda x: x**0.5, 0.2),
    "pow_neg": (lambda x: x**-2, 0.5),
    "rpow": (lambda x: 2.0**x, None),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@given(shape=small_shapes, seed=st.integers(0, 2**16))
def test_unary(op, shape, seed):
    f, low = UNARY[op]
    x = randt(shape, seed, low=low)
    if op in ("abs", "relu"):  # both signs, but away from the kink
        x.data *= np.random.default_rng(seed).choice([-1.0, 1.0], size=shape)
    assert gradcheck(f, [x], name=op)


def test_unary_values_match_numpy(rng):
    x = rng.standard_normal(50)
    t = ta.tensor(x, dtype=ta.float64)
    np.testing.assert_allclose(ta.sigmoid(t).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-12)
    gelu_tanh = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(F.gelu(t, approximate="tanh").numpy(), gelu_tanh, rtol=1e-12)
    gelu_exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))
    np.testing.assert_allclose(F.gelu(t).numpy(), gelu_exact, rtol=1e-12)
    assert np.all(np.isfinite(ta.sigmoid(ta.tensor([-1e4, 1e4])).numpy()))


def test_pow_zero_has_zero_gradient_and_rpow_of_a_negative_base_is_pytorchs():
    x = ta.tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    y = (-2) ** ta.tensor([0.0, 2.0, 0.5], requires_grad=True)  # PyTorch: 1, 4, nan, and a NaN gradient (log(-2))
    np.testing.assert_array_equal(y.detach().numpy(), [1.0, 4.0, np.nan])


# ---- selection -----------------------------------------------------------------------


@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=1, max_dims=3, max_side=3), seed=st.integers(0, 2**16))
def test_where(shapes, seed):
    sc, sa, sb = shapes.input_shapes
    cond = ta.tensor(np.random.default_rng(seed).random(sc) > 0.5)
    a, b = randt(sa, seed), randt(sb, seed + 1)
    assert gradcheck(lambda a, b: ta.where(cond, a, b), [a, b], name="where")


def test_masked_fill(rng):
    x = leaf(rng, 2, 3, 4)
    mask = ta.tensor(rng.random((3, 1)) > 0.5)
    y = x.masked_fill(mask, -7.0)
    np.testing.assert_array_equal(y.numpy(), np.where(mask.numpy(), -7.0, x.numpy()))
    assert gradcheck(lambda t: t.masked_fill(mask, -7.0), [x], name="masked_fill")


def test_maximum_ties_share_the_gradient():
    a = ta.tensor([1.0, 2.0], requires_grad=True)
    b = ta.tensor([1.0, 0.0], requires_grad=True)
    ta.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0])



def test_max_of_two_tensors_is_elementwise_and_max_of_one_is_the_overall_max():
    x, y = ta.randn(2, 3), ta.randn(2, 3)
    np.testing.assert_array_equal(x.max(y).numpy(), np.maximum(x.numpy(), y.numpy()))
    assert ta.max(x).item() == x.numpy().max()


# ---- reductions ------------------------------------------------------------------------

dims_strategy = st.one_of(st.none(), st.integers(-3, 2), st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "var"])
@given(dims=dims_strategy, keepdim=st.booleans(), seed=st.integers(0, 2**16))
def test_reductions(op, dims, keepdim, seed):
    x = randt((2, 3, 4), seed)
    f = lambda t: getattr(t, op)(dims, keepdim=keepdim)  # noqa: E731
    ref = getattr(np, {"amax": "max"}.get(op, op))
    kwargs = {"ddof": 1} if op == "var" else {}
    axis = None if dims is None else (tuple(dims) if isinstance(dims, list) else dims)
    np.testing.assert_allclose(f(x).numpy(), ref(x.numpy(), axis=axis, keepdims=keepdim, **kwargs), rtol=1e-12)
    assert gradcheck(f, [x], name=op)


def test_max_with_dim_returns_values_and_indices(rng):
    x = leaf(rng, 3, 5)
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(indices.numpy(), np.argmax(x.numpy(), axis=1))
    np.testing.assert_array_equal(values.numpy(), np.max(x.numpy(), axis=1))
    assert indices.dtype == np.int64
    assert gradcheck(lambda t: t.max(dim=0, keepdim=True).values, [x], name="max")
    assert x.max().shape == ()


def test_reductions_accept_axis_and_correction(rng):
    x = leaf(rng, 3, 4)
    np.testing.assert_allclose(x.sum(axis=1).numpy(), x.numpy().sum(axis=1))
    np.testing.assert_allclose(x.var(dim=0, correction=0).numpy(), x.numpy().var(axis=0))
    np.testing.assert_allclose(x.var(dim=0, unbiased=False).numpy(), x.numpy().var(axis=0))
    assert gradcheck(lambda t: t.var(dim=1, correction=0), [x], name="var")


def test_var_backward_with_too_few_elements_is_nan_not_an_exception():
    x = ta.tensor([2.0], requires_grad=True)
    y = x.var()
    assert np.isnan(y.item())
    y.backward()
    assert np.isnan(x.grad.numpy()).all()


# ---- shape ops --------------------------------------------------------------------------


def test_reshape_view_flatten_squeeze(rng):
    x = leaf(rng, 2, 3, 4)
    assert gradcheck(lambda t: t.reshape(4, -1) * ta.arange(6).double(), [x], name="reshape")
    assert gradcheck(lambda t: t.view(6, 4)[1:], [x], name="view")
    assert gradcheck(lambda t: t.unsqueeze(1).squeeze(1).flatten(1), [x], name="flatten")
    assert x.flatten().shape == (24,)
    assert x.unsqueeze(-1).shape == (2, 3, 4, 1)


@given(perm=st.permutations([0, 1, 2]), seed=st.integers(0, 2**16))
def test_permute_and_transpose(perm, seed):
    x = randt((2, 3, 4), seed)
    np.testing.assert_array_equal(x.permute(*perm).numpy(), np.transpose(x.numpy(), perm))
    w = ta.tensor(np.random.default_rng(seed).standard_normal(np.transpose(x.numpy(), perm).shape))
    assert gradcheck(lambda t: t.permute(perm) * w, [x], name="permute")
    assert gradcheck(lambda t: t.transpose(0, 2).exp(), [x], name="transpose")
    assert gradcheck(lambda t: t.transpose(-1, 1) * 1.5, [x], name="transpose, negative dims")


def test_transpose_and_permute_of_a_0d_tensor():
    """A 0-d tensor takes dims 0 and -1 (PyTorch): itself, as a view; other dims are an error naming the op."""
    x = ta.tensor(2.0, requires_grad=True)
    assert x.transpose(0, -1).shape == () and x.permute().shape == ()
    (x.transpose(-1, 0) * 3.0).backward()
    assert x.grad.item() == 3.0
    with pytest.raises(ValueError, match="transpose"):
        x.transpose(0, 1)


def test_expand(rng):
    x = leaf(rng, 3, 1)
    assert x.expand(2, 3, 4).shape == (2, 3, 4)
    assert gradcheck(lambda t: t.expand(2, -1, 4) * 1.5, [x], name="expand")


INDICES = [
    1,
    -1,
    slice(None, None, 2),
    (slice(1, None), None, Ellipsis, 0),
    (Ellipsis, slice(0, 3)),
    np.array([0, 2, 0, 1]),  # repeats: the gradient scatter-adds
    (np.array([[0, 1], [1, 1]]), slice(None), np.array([2, 0])),
    (slice(None), np.array([True, False, True])),
]


@pytest.mark.parametrize("index", INDICES, ids=[repr(i)[:40] for i in INDICES])
def test_getitem(rng, index):
    x = leaf(rng, 3, 3, 4)
    np.testing.assert_array_equal(x[index].numpy(), x.numpy()[index])
    assert gradcheck(lambda t: t[index], [x], name="getitem")


def test_getitem_with_tensor_index_scatter_adds(rng):
    x = ta.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    idx = ta.tensor([0, 0, 3])
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[:, 0], [2.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack(rng, dim):
    a, b = leaf(rng, 2, 3), leaf(rng, 2, 3)
    c = leaf(rng, 2, 3)
    np.testing.assert_array_equal(ta.cat([a, b], dim).numpy(), np.concatenate([a.numpy(), b.numpy()], dim))
    np.testing.assert_array_equal(ta.stack([a, b], dim).numpy(), np.stack([a.numpy(), b.numpy()], dim))
    assert gradcheck(lambda *t: ta.cat(t, dim) ** 2, [a, b, c], name="cat")
    assert gradcheck(lambda *t: ta.stack(t, dim) ** 2, [a, b, c], name="stack")


def test_cat_uneven_sizes(rng):
    a, b = leaf(rng, 2, 1), leaf(rng, 2, 3)
    assert ta.cat([a, b], 1).shape == (2, 4)
    assert gradcheck(lambda a, b: ta.cat([a, b], 1).exp(), [a, b], name="cat")
