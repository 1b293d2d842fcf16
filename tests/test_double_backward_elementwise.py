"""Double backward (create_graph=True) of the elementwise ops: functional/elementwise.py, unary.py, pointwise.py,
rounding.py, compare.py, misc.py and inplace.py's SetItem. Each op's differentiable_backward is checked by
gradgradcheck (the create_graph gradient against the plain one, then its own gradient against finite differences)
on small float64 inputs kept away from kinks; a few second derivatives are compared with PyTorch's."""
import math

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as NF
from tinyattn import autograd
from tinyattn.functional import cast
from tinyattn.testing import GradcheckError, gradgradcheck


def uniform(shape, lo=-1.0, hi=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return ta.tensor(rng.uniform(lo, hi, shape), dtype=ta.float64, requires_grad=True)


def away_from_integers(shape, lo, hi, seed=0):
    """Values in [lo, hi] at least 0.2 from an integer (kinks of floor, round, frac, fmod, remainder)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(lo, hi, shape) + rng.uniform(0.2, 0.8, shape)
    return ta.tensor(v, dtype=ta.float64, requires_grad=True)


# (name, function, low, high): the input is uniform in [low, high], where the op is smooth
UNARY = [
    ("neg", lambda x: -x, -1, 1),
    ("exp", ta.exp, -1, 1),
    ("log", ta.log, 0.5, 2),
    ("sqrt", ta.sqrt, 0.5, 2),
    ("abs", ta.abs, 0.2, 1),  # kept off 0; the sign is checked negative too below
    ("tanh", ta.tanh, -1, 1),
    ("sigmoid", ta.sigmoid, -2, 2),
    ("relu", ta.relu, 0.1, 1),
    ("gelu", NF.gelu, -2, 2),
    ("gelu_tanh", lambda x: NF.gelu(x, approximate="tanh"), -2, 2),
    ("pow_3", lambda x: x**3, -1, 1),
    ("pow_2.5", lambda x: x**2.5, 0.5, 2),
    ("pow_-2", lambda x: x**-2, 0.5, 2),
    ("pow_1", lambda x: x**1, -1, 1),
    ("pow_0", lambda x: x**0 * x, -1, 1),
    ("sin", ta.sin, -2, 2),
    ("cos", ta.cos, -2, 2),
    ("tan", ta.tan, -1, 1),
    ("sinh", ta.sinh, -1, 1),
    ("cosh", ta.cosh, -1, 1),
    ("atan", ta.atan, -2, 2),
    ("asin", ta.asin, -0.8, 0.8),
    ("acos", ta.acos, -0.8, 0.8),
    ("asinh", ta.asinh, -2, 2),
    ("acosh", ta.acosh, 1.5, 3),
    ("atanh", ta.atanh, -0.8, 0.8),
    ("log1p", ta.log1p, -0.5, 2),
    ("log2", ta.log2, 0.5, 2),
    ("log10", ta.log10, 0.5, 2),
    ("expm1", ta.expm1, -1, 1),
    ("exp2", ta.exp2, -1, 1),
    ("rsqrt", ta.rsqrt, 0.5, 2),
    ("reciprocal", ta.reciprocal, 0.5, 2),
    ("square", ta.square, -1, 1),
    ("erf", ta.erf, -1.5, 1.5),
    ("erfc", ta.erfc, -1.5, 1.5),
    ("sinc", ta.sinc, 0.2, 1.5),
    ("silu", NF.silu, -2, 2),
    ("leaky_relu", lambda x: NF.leaky_relu(x, 0.2) * x, -1, 1),  # * x: a nonzero second derivative
    ("elu", lambda x: NF.elu(x, alpha=1.5), -1, 1),
    ("softplus", lambda x: NF.softplus(x, beta=2.0), -1, 1),
    ("softplus_linear_region", lambda x: NF.softplus(x, beta=2.0, threshold=1.0) * x, -1, 1),
    ("hardtanh", lambda x: NF.hardtanh(x, -0.5, 0.5) * x, -1, 1),
    ("relu6", lambda x: NF.relu6(x) * x, -1, 1),
    ("logsigmoid", NF.logsigmoid, -2, 2),
    ("mish", NF.mish, -2, 2),
    ("logit", ta.logit, 0.2, 0.8),
    ("logit_eps", lambda x: ta.logit(x, eps=0.3) * x, 0.1, 0.9),
    ("rad2deg", ta.rad2deg, -1, 1),
    ("nan_to_num", lambda x: ta.nan_to_num(x) * x, -1, 1),
]


@pytest.mark.parametrize("name,fn,lo,hi", UNARY, ids=[u[0] for u in UNARY])
def test_unary_double_backward(name, fn, lo, hi):
    x = uniform((2, 3), lo, hi)
    if name == "abs":
        x = ta.tensor(x.detach().numpy() * np.array([1, -1, 1]), requires_grad=True)
    if name in ("leaky_relu", "hardtanh", "relu6", "elu"):  # both sides of the kink
        x = ta.tensor(np.array([[-0.9, -0.6, -0.3], [0.2, 0.4, 0.8]]) * (1 if name != "relu6" else 8),
                      requires_grad=True)
    assert gradgradcheck(fn, [x], name=name)


PIECEWISE = [("floor", ta.floor), ("ceil", ta.ceil), ("round", ta.round), ("trunc", ta.trunc), ("sign", ta.sign),
             ("frac", ta.frac)]


@pytest.mark.parametrize("name,fn", PIECEWISE, ids=[p[0] for p in PIECEWISE])
def test_piecewise_ops_double_backward(name, fn):
    x = away_from_integers((2, 3), -2, 2)
    assert gradgradcheck(lambda t: fn(t) * t * t, [x], name=name)  # a product, so the piecewise factor matters


def test_nan_to_num_passes_no_second_derivative_where_it_replaced():
    x = ta.tensor([0.5, np.nan, np.inf, -np.inf, -0.3], dtype=ta.float64, requires_grad=True)
    y = ta.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-2.0)
    (g,) = autograd.grad((y * y).sum(), x, create_graph=True)
    (h,) = autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g.detach().numpy(), [1.0, 0, 0, 0, -0.6])
    np.testing.assert_allclose(h.numpy(), [2.0, 0, 0, 0, 2.0])


# (name, function, (shape, low, high) of a, of b): shapes that broadcast, both ways
BINARY = [
    ("div", lambda a, b: a / b, ((2, 3), -1, 1), ((3,), 0.5, 2)),
    ("div_broadcast_a", lambda a, b: a / b, ((2, 1), -1, 1), ((2, 3), 0.5, 2)),
    ("maximum", ta.maximum, ((2, 3), -1, 1), ((3,), -1, 1)),
    ("minimum", ta.minimum, ((2, 1), -1, 1), ((2, 3), -1, 1)),
    ("where", lambda a, b: ta.where(a > b, a * a, b), ((2, 3), -1, 1), ((3,), -1, 1)),
    ("pow_tensor", ta.pow, ((2, 3), 0.5, 2), ((3,), -1, 2)),
    ("pow_tensor_broadcast_base", ta.pow, ((3,), 0.5, 2), ((2, 3), -1, 2)),
    ("xlogy", ta.xlogy, ((2, 3), -1, 1), ((3,), 0.5, 2)),
    ("atan2", ta.atan2, ((2, 3), -1, 1), ((3,), 0.5, 2)),
    ("logaddexp", ta.logaddexp, ((2, 3), -1, 1), ((2, 1), -1, 1)),
    ("logaddexp2", ta.logaddexp2, ((3,), -1, 1), ((2, 3), -1, 1)),
    ("fmax", lambda a, b: ta.fmax(a, b) * a, ((2, 3), -1, 1), ((3,), -1, 1)),
    ("fmin", lambda a, b: ta.fmin(a, b) * b, ((2, 3), -1, 1), ((2, 1), -1, 1)),
    ("hypot", ta.hypot, ((2, 3), 0.5, 1), ((3,), -1, -0.5)),
    ("lerp", lambda a, b: ta.lerp(a, b, a * b), ((2, 3), -1, 1), ((3,), -1, 1)),
    ("addcdiv", lambda a, b: ta.addcdiv(a, a, b, value=0.5), ((2, 3), -1, 1), ((3,), 0.5, 2)),
]


@pytest.mark.parametrize("name,fn,sa,sb", BINARY, ids=[b[0] for b in BINARY])
def test_binary_double_backward_with_broadcasting(name, fn, sa, sb):
    a, b = uniform(*sa, seed=1), uniform(*sb, seed=2)
    assert gradgradcheck(fn, [a, b], name=name)


def test_fmod_and_remainder_double_backward():
    a = away_from_integers((2, 3), -3, 3)
    b = ta.tensor([1.0, 1.0, 1.0], dtype=ta.float64, requires_grad=True)  # a / b away from integers
    assert gradgradcheck(lambda a, b: ta.fmod(a, b) * a * b, [a, b], name="fmod")
    assert gradgradcheck(lambda a, b: ta.remainder(a, b) * a * b, [a, b], name="remainder")


def test_one_operand_without_grad_and_a_number_operand():
    a = uniform((2, 3), 0.5, 2, seed=3)
    c = uniform((3,), 0.5, 2, seed=4).detach()  # a constant tensor: its saved value is used
    cases = {
        "div_by_number": lambda a: a / 3.0,
        "number_div": lambda a: 2.0 / a,
        "div_by_constant": lambda a: a / c,
        "constant_div": lambda a: c / a,
        "number_pow": lambda a: 2.0 ** a,
        "constant_pow": lambda a: c ** a,
        "pow_constant": lambda a: a ** c,
        "maximum_number": lambda a: ta.maximum(a, 1.0) * a,
        "xlogy_number": lambda a: ta.xlogy(2.0, a),
        "atan2_constant": lambda a: ta.atan2(c, a),
        "logaddexp_constant": lambda a: ta.logaddexp(c, a),
        "fmod_number": lambda a: ta.fmod(a, 0.7) * a,
        "remainder_number": lambda a: ta.remainder(a, 0.7) * a,
        "where_number": lambda a: ta.where(a > 1.0, a * a, 0.5),
        "masked_fill": lambda a: ta.masked_fill(a * a, a > 1.0, 2.0),
        "rsub": lambda a: ta.rsub(a, 1.0) * a,
    }
    for name, fn in cases.items():
        assert gradgradcheck(fn, [a], name=name)
    assert gradgradcheck(lambda c: ta.fmod(2.5, c) * c, [uniform((3,), 0.6, 0.9, seed=5)], name="fmod_of_number")


def test_cast_double_backward():
    x = uniform((2, 3), seed=6)
    y = cast(x, ta.float32)
    (g,) = autograd.grad((cast(y, ta.float64) ** 3).sum(), x, create_graph=True)
    assert g.dtype == ta.float64
    (h,) = autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.detach().numpy().astype(np.float32), rtol=1e-6)
    # float32 rounding makes finite differences at eps=1e-6 useless: a larger step for this one
    assert gradgradcheck(lambda t: cast(cast(t, ta.float32), ta.float64) ** 3, [x], eps=1e-2, atol=1e-3)


def test_sinc_second_derivative_at_zero():
    x = ta.tensor([0.0, 0.5], dtype=ta.float64, requires_grad=True)
    (g,) = autograd.grad(ta.sinc(x).sum(), x, create_graph=True)
    (h,) = autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g.detach().numpy()[0], 0.0)
    np.testing.assert_allclose(h.numpy()[0], -math.pi**2 / 3)  # sinc''(0), not the masked branch's 0 or nan
    assert np.isfinite(h.numpy()).all()


def test_floor_divide_double_backward_raises_as_its_backward_does():
    a = uniform((3,), 1, 2)
    with pytest.raises(RuntimeError, match="floor_divide"):
        autograd.grad((a // 0.5).sum(), a, create_graph=True)


def test_inplace_chains_double_backward():
    def mul_div_exp(x, y):
        t = x.clone().mul_(y)
        t.div_(y + 2)
        return t.exp_() * x

    def pow_sub_sigmoid(x, y):
        t = x.clone()
        t.pow_(2).sub_(y, alpha=0.5)
        return t.sigmoid_().add_(x * y)

    def addcmul_lerp(x, y):
        t = (x * 1.0).addcmul_(x, y, value=0.5)
        return t.lerp_(y.expand(2, 3), 0.25).tanh_()

    def through_a_view(x, y):
        t = x * 1.0
        t[1].mul_(y).sin_()  # changes t's row 1 through a view: t becomes a SetItem node
        return t * x

    x, y = uniform((2, 3), seed=7), uniform((3,), 0.5, 1, seed=8)
    for fn in (mul_div_exp, pow_sub_sigmoid, addcmul_lerp, through_a_view):
        assert gradgradcheck(fn, [x, y], name=fn.__name__)


def test_setitem_and_fills_double_backward():
    def assign(x, v):
        t = x * x
        t[0, 1:] = v * v  # value broadcast over a slice
        t[np.array([1, 1]), np.array([0, 2])] = v[0] * x[0, 0]  # integer-array index
        return t * x

    def fills(x, v):
        t = x * x
        t.masked_fill_(x > 0, 0.5)
        t.fill_diagonal_(2.0)
        u = (x * 2).copy_(v * v)
        return t * u + ta.zeros(2, 3, dtype=ta.float64).fill_(v[1] * x[1, 2])

    x = uniform((2, 3), seed=9)
    assert gradgradcheck(assign, [x, uniform((2,), seed=10)], name="setitem")
    assert gradgradcheck(fills, [x, uniform((3,), seed=11)], name="masked_fill_/fill_/copy_")


def test_a_wrong_differentiable_backward_is_caught(monkeypatch):
    from tinyattn.functional.elementwise import Tanh

    monkeypatch.setattr(Tanh, "differentiable_backward",
                        staticmethod(lambda ctx, inputs, dy: dy * (1 - ctx.saved[0] ** 2)))  # detached: the raw y
    with pytest.raises(GradcheckError):
        gradgradcheck(ta.tanh, [uniform((3,))])


# ---- against PyTorch ---------------------------------------------------------------------------------------


def _hvp_both(fn_ta, fn_torch, arrays, v_arrays):
    """Hessian-vector products of Σ fn(inputs) in both frameworks: d/dinputs (dΣfn/dinputs · v)."""
    torch = pytest.importorskip("torch")
    xs = [ta.tensor(a, requires_grad=True) for a in arrays]
    gs = autograd.grad(fn_ta(*xs).sum(), xs, create_graph=True)
    ours = autograd.grad(sum((g * ta.tensor(v)).sum() for g, v in zip(gs, v_arrays)), xs, allow_unused=True)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    tg = torch.autograd.grad(fn_torch(torch, *ts).sum(), ts, create_graph=True)
    theirs = torch.autograd.grad(sum((g * torch.tensor(v)).sum() for g, v in zip(tg, v_arrays)), ts, allow_unused=True)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-9, atol=1e-12)


def test_second_derivatives_match_torch_unary_chain():
    rng = np.random.default_rng(11)
    x = rng.uniform(0.2, 0.8, (2, 3))

    def ours(x):
        return (ta.tanh(x) * ta.sigmoid(x) + ta.log1p(x) * ta.rsqrt(x) + NF.gelu(x) * NF.mish(x)
                + ta.atan(x) ** 3 + NF.softplus(x, beta=2.0) * ta.erf(x) + ta.sinc(x) + ta.logit(x) * ta.exp2(x))

    def theirs(torch, x):
        F = torch.nn.functional
        return (torch.tanh(x) * torch.sigmoid(x) + torch.log1p(x) * torch.rsqrt(x) + F.gelu(x) * F.mish(x)
                + torch.atan(x) ** 3 + F.softplus(x, beta=2.0) * torch.erf(x) + torch.sinc(x)
                + torch.logit(x) * torch.exp2(x))

    _hvp_both(ours, theirs, [x], [rng.standard_normal((2, 3))])


def test_second_derivatives_match_torch_binary_broadcast_and_inplace():
    rng = np.random.default_rng(12)
    a, b = rng.uniform(0.5, 1.5, (2, 3)), rng.uniform(0.5, 1.5, (3,))

    def ours(a, b):
        t = a.clone().mul_(b)
        t.div_(a + b)
        t[0].mul_(b).sin_()  # in place through a view
        return (t * ta.pow(a, b) + ta.atan2(a, b) * ta.xlogy(a, b) + ta.logaddexp(a, b) * ta.maximum(a, b * 1.1)
                + NF.elu(a - 1.0) * b)

    def theirs(torch, a, b):
        t = a.clone().mul_(b)
        t.div_(a + b)
        t[0].mul_(b).sin_()
        return (t * torch.pow(a, b) + torch.atan2(a, b) * torch.xlogy(a, b)
                + torch.logaddexp(a, b) * torch.maximum(a, b * 1.1) + torch.nn.functional.elu(a - 1.0) * b)

    _hvp_both(ours, theirs, [a, b], [rng.standard_normal((2, 3)), rng.standard_normal((3,))])


@pytest.mark.background(order=1)  # the simulator: no kernel shared with the rest (tests/background.py)
@pytest.mark.skipif(not ta.cuda.is_available(), reason="no CUDA GPU and no numba-cuda simulator")
def test_double_backward_on_the_gpu_with_host_computed_ops():
    """on_host ops save host copies; their differentiable backwards must move what they use to the GPU."""
    def on_gpu(values):
        return ta.tensor(np.array(values, dtype=np.float64)).to("cuda").requires_grad_(True)

    x, y = on_gpu([0.3, -0.6, 0.8]), on_gpu([0.7, 1.2, 0.9])
    assert gradgradcheck(ta.sinc, [x], name="sinc (cuda)")
    assert gradgradcheck(lambda a, b: ta.fmax(a, b) * ta.atan2(a, b), [x, y], name="fmax, atan2 (cuda)")
    assert gradgradcheck(lambda a, b: ta.remainder(a, b) * a * ta.where(a > 0, b, a * a), [x, y], name="cuda")
    (g,) = autograd.grad(ta.tan(x).sum(), x, create_graph=True)
    assert g.is_cuda and g.grad_fn is not None


def test_second_derivatives_match_torch_more_ops():
    rng = np.random.default_rng(13)
    x = np.array([[-0.7, -0.3, 0.4], [0.6, 0.2, -0.5]]) + rng.uniform(-0.05, 0.05, (2, 3))
    y = rng.uniform(0.5, 1.5, (3,))

    def ours(x, y):
        return (NF.elu(x, 1.5) * x + NF.leaky_relu(x, 0.1) * y + NF.silu(x) * NF.logsigmoid(y) + ta.abs(x) * y
                + ta.relu(x) * x + NF.hardtanh(x, -0.5, 0.5) * y + NF.softplus(x, 2.0, 0.5) * x + ta.tan(x) * ta.cosh(y)
                + ta.asin(x) * ta.sinh(x) + ta.acosh(y + 1) * ta.atanh(x) + ta.log2(y) * ta.log10(y + 1)
                + ta.expm1(x) * ta.reciprocal(y) + ta.square(x) * ta.sqrt(y) + x ** 3 / y + 2.0 ** x * y ** 2.5
                + ta.fmod(x * 3, y) * x + ta.remainder(x * 3, y) * y + ta.fmax(x, y - 1) * ta.fmin(x, 0.1) * x
                + ta.where(x > 0, x * y, y / 2) * x + ta.masked_fill(x * y, x < 0, 0.5) * y + ta.floor(x * 3) * x * y
                + ta.frac(x * 3) * x + NF.gelu(x, approximate="tanh") * y + ta.sin(x) * ta.cos(y) - ta.exp(-x * y))

    def theirs(torch, x, y):
        F = torch.nn.functional
        return (F.elu(x, 1.5) * x + F.leaky_relu(x, 0.1) * y + F.silu(x) * F.logsigmoid(y) + torch.abs(x) * y
                + torch.relu(x) * x + F.hardtanh(x, -0.5, 0.5) * y + F.softplus(x, 2.0, 0.5) * x
                + torch.tan(x) * torch.cosh(y) + torch.asin(x) * torch.sinh(x) + torch.acosh(y + 1) * torch.atanh(x)
                + torch.log2(y) * torch.log10(y + 1) + torch.expm1(x) * torch.reciprocal(y) + torch.square(x) * torch.sqrt(y)
                + x ** 3 / y + 2.0 ** x * y ** 2.5 + torch.fmod(x * 3, y) * x + torch.remainder(x * 3, y) * y
                + torch.fmax(x, y - 1) * torch.fmin(x, torch.tensor(0.1, dtype=x.dtype)) * x
                + torch.where(x > 0, x * y, y / 2) * x + torch.masked_fill(x * y, x < 0, 0.5) * y
                + torch.floor(x * 3) * x * y + torch.frac(x * 3) * x + F.gelu(x, approximate="tanh") * y
                + torch.sin(x) * torch.cos(y) - torch.exp(-x * y))

    _hvp_both(ours, theirs, [x, y], [rng.standard_normal((2, 3)), rng.standard_normal((3,))])
