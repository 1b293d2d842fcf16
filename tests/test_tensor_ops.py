"""Math, reduction, comparison and product ops against PyTorch: values, dtypes, gradients (gradcheck on small
float64 inputs, and the gradient PyTorch computes), errors."""
import math

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as TF
from tinyattn.testing import gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
BASE = RNG.standard_normal((2, 3, 4))
POS = np.abs(BASE) + 0.5


def _both(a):
    return (ta.tensor(a, dtype=ta.float64, requires_grad=True), torch.tensor(a, dtype=torch.float64,
                                                                            requires_grad=True))


def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def _against_torch(fa, ft, a=BASE, atol=1e-10):
    """Values, shapes, dtypes and gradients of fa (tinyattn) and ft (torch) on the same float64 input;
    then gradcheck of fa."""
    x, tx = _both(a)
    ya, yt = _as_tuple(fa(x)), _as_tuple(ft(tx))
    assert len(ya) == len(yt)
    weights = [RNG.standard_normal(tuple(b.shape)) for b in yt]
    for p, q in zip(ya, yt):
        assert tuple(p.shape) == tuple(q.shape)
        assert str(p.dtype) == str(q.dtype).replace("torch.", "")
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), atol=atol, rtol=1e-7)
    if any(p.requires_grad for p in ya):
        sum(((p * ta.tensor(w)).sum() for p, w in zip(ya, weights) if p.requires_grad)).backward()
        sum(((q * torch.tensor(w)).sum() for q, w in zip(yt, weights) if q.requires_grad)).backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-9, rtol=1e-7)
        assert gradcheck(fa, [ta.tensor(a, dtype=ta.float64, requires_grad=True)])


UNARY = {
    "sin": (lambda x: x.sin(), lambda x: x.sin(), BASE),
    "cos": (lambda x: ta.cos(x), lambda x: torch.cos(x), BASE),
    "tan": (lambda x: ta.tan(x * 0.3), lambda x: torch.tan(x * 0.3), BASE),
    "sinh_cosh": (lambda x: x.sinh() + x.cosh(), lambda x: x.sinh() + x.cosh(), BASE),
    "atan": (lambda x: x.atan(), lambda x: x.atan(), BASE),
    "asin_acos": (lambda x: (x * 0.3).asin() + (x * 0.2).acos(), lambda x: (x * 0.3).asin() + (x * 0.2).acos(), BASE),
    "log1p": (lambda x: x.log1p(), lambda x: x.log1p(), POS),
    "log2_log10": (lambda x: x.log2() * x.log10(), lambda x: x.log2() * x.log10(), POS),
    "expm1": (lambda x: ta.expm1(x), lambda x: torch.expm1(x), BASE),
    "exp2": (lambda x: ta.exp2(x), lambda x: torch.exp2(x), BASE),
    "rsqrt": (lambda x: x.rsqrt(), lambda x: x.rsqrt(), POS),
    "reciprocal": (lambda x: x.reciprocal(), lambda x: x.reciprocal(), POS),
    "square": (lambda x: x.square(), lambda x: x.square(), BASE),
    "erf": (lambda x: ta.erf(x), lambda x: torch.erf(x), BASE),
    "sign_floor_ceil": (lambda x: x.sign() + x.floor() * x + x.ceil() + x.trunc() + x.round() + x.frac(),
                        lambda x: x.sign() + x.floor() * x + x.ceil() + x.trunc() + x.round() + x.frac(), BASE),
    "neg": (lambda x: ta.neg(x) + x.negative(), lambda x: torch.neg(x) + x.negative(), BASE),
    "silu": (lambda x: ta.functional.silu(x), lambda x: torch.nn.functional.silu(x), BASE),
    "leaky_relu": (lambda x: ta.functional.leaky_relu(x, 0.2), lambda x: torch.nn.functional.leaky_relu(x, 0.2), BASE),
    "elu": (lambda x: TF.elu(x, 0.7), lambda x: torch.nn.functional.elu(x, 0.7), BASE),
    "softplus": (lambda x: TF.softplus(x * 8, beta=2, threshold=5),
                 lambda x: torch.nn.functional.softplus(x * 8, beta=2, threshold=5), BASE),
    "hardtanh": (lambda x: TF.hardtanh(x, -0.5, 0.5) + TF.relu6(x * 4),
                 lambda x: torch.nn.functional.hardtanh(x, -0.5, 0.5) + torch.nn.functional.relu6(x * 4), BASE),
    "logsigmoid": (lambda x: TF.logsigmoid(x), lambda x: torch.nn.functional.logsigmoid(x), BASE),
    "mish": (lambda x: TF.mish(x), lambda x: torch.nn.functional.mish(x), BASE),
    "nan_to_num": (lambda x: (x * 1e308 * 10).nan_to_num(posinf=3.0) + x,
                   lambda x: (x * 1e308 * 10).nan_to_num(posinf=3.0) + x, BASE),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_against_torch(name):
    fa, ft, a = UNARY[name]
    with np.errstate(over="ignore"):
        _against_torch(fa, ft, a)


def test_float_valued_ops_promote_integers_and_keep_integer_ops_integral():
    i = ta.tensor([1, 2, 3])
    ti = torch.tensor([1, 2, 3])
    for name in ("sin", "cos", "log1p", "rsqrt", "reciprocal", "expm1"):
        out = getattr(i, name)()
        assert out.dtype == ta.float32
        np.testing.assert_allclose(out.numpy(), getattr(ti, name)().numpy(), rtol=1e-6)
    assert i.square().dtype == ta.int64 and i.square().tolist() == [1, 4, 9]
    assert i.sign().tolist() == [1, 1, 1] and i.sign().dtype == ta.int64
    with pytest.raises(TypeError, match="leaky_relu"):
        ta.functional.leaky_relu(i)


POWS = {
    "tensor_tensor": (lambda x: (x.abs() + 0.5) ** x, lambda x: (x.abs() + 0.5) ** x),
    "number_tensor": (lambda x: 2.0 ** x, lambda x: 2.0 ** x),
    "zero_base": (lambda x: 0.0 ** x.abs(), lambda x: 0.0 ** x.abs()),
    "broadcast": (lambda x: ta.pow(x[0].abs() + 1, x[1, :, :1]), lambda x: torch.pow(x[0].abs() + 1, x[1, :, :1])),
    "top_level_scalar": (lambda x: ta.pow(x, 3.0), lambda x: torch.pow(x, 3.0)),
    "method": (lambda x: x.pow(2), lambda x: x.pow(2)),
}


@pytest.mark.parametrize("name", list(POWS))
def test_pow_against_torch(name):
    _against_torch(*POWS[name])


def test_pow_integer_dtypes():
    a, ta_b = torch.tensor([1, 2, 3]), ta.tensor([1, 2, 3])
    assert (2 ** ta_b).tolist() == (2 ** a).tolist() and (2 ** ta_b).dtype == ta.int64
    assert (ta_b ** ta.tensor([2, 0, 1])).tolist() == [1, 1, 3]
    assert (ta_b ** 0.5).dtype == ta.float32
    assert (2.5 ** ta_b).dtype == ta.float32
    with pytest.raises(ValueError, match="negative"):
        ta_b ** ta.tensor([-1, 1, 1])


REDUCTIONS = {
    "std": (lambda x: x.std(1), lambda x: x.std(1)),
    "std_tuple": (lambda x: x.std(dim=(0, 2), unbiased=False, keepdim=True),
                  lambda x: x.std(dim=(0, 2), unbiased=False, keepdim=True)),
    "std_all_correction": (lambda x: ta.std(x, correction=0), lambda x: torch.std(x, correction=0)),
    "var_tuple": (lambda x: x.var((0, 1), correction=2), lambda x: x.var((0, 1), correction=2)),
    "var_mean": (lambda x: ta.var_mean(x, 1), lambda x: torch.var_mean(x, 1)),
    "std_positional_unbiased_keepdim": (lambda x: x.std(0, False, True) + x.var(0, True, True),
                                        lambda x: x.std(0, False, True) + x.var(0, True, True)),
    "std_unbiased_only": (lambda x: x.std(False), lambda x: x.std(False)),
    "std_mean": (lambda x: ta.std_mean(x, (0, 2), keepdim=True), lambda x: torch.std_mean(x, (0, 2), keepdim=True)),
    "mean_tuple": (lambda x: x.mean((0, -1)), lambda x: x.mean((0, -1))),
    "sum_tuple_keepdim": (lambda x: x.sum((1, 2), keepdim=True), lambda x: x.sum((1, 2), keepdim=True)),
    "prod_dim": (lambda x: x.prod(1), lambda x: x.prod(1)),
    "prod_all": (lambda x: x.prod(), lambda x: x.prod()),
    "prod_with_zero": (lambda x: (x * (x > 0.3)).prod(-1, keepdim=True),
                       lambda x: (x * (x > 0.3)).prod(-1, keepdim=True)),
    "cumsum": (lambda x: x.cumsum(1), lambda x: x.cumsum(1)),
    "cumsum_neg_dim": (lambda x: ta.cumsum(x, -1), lambda x: torch.cumsum(x, -1)),
    "cumprod": (lambda x: x.cumprod(2), lambda x: x.cumprod(2)),
    "logsumexp": (lambda x: x.logsumexp(-1), lambda x: x.logsumexp(-1)),
    "logsumexp_tuple": (lambda x: ta.logsumexp(x, (0, 1), keepdim=True), lambda x: torch.logsumexp(x, (0, 1), keepdim=True)),
    "norm": (lambda x: x.norm(), lambda x: x.norm()),
    "norm_p1_dim": (lambda x: x.norm(p=1, dim=1), lambda x: x.norm(p=1, dim=1)),
    "norm_p3": (lambda x: x.norm(p=3, dim=-1, keepdim=True), lambda x: x.norm(p=3, dim=-1, keepdim=True)),
    "vector_norm_inf": (lambda x: ta.linalg.vector_norm(x, float("inf"), dim=1),
                        lambda x: torch.linalg.vector_norm(x, float("inf"), dim=1)),
    "vector_norm_tuple": (lambda x: ta.linalg.vector_norm(x, dim=(0, 2)), lambda x: torch.linalg.vector_norm(x, dim=(0, 2))),
    "linalg_norm": (lambda x: ta.linalg.norm(x), lambda x: torch.linalg.norm(x)),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_against_torch(name):
    _against_torch(*REDUCTIONS[name])


def test_reduction_dtypes_and_keywords():
    i = ta.tensor([[1, 2], [3, 4]])
    ti = torch.tensor([[1, 2], [3, 4]])
    assert ta.tensor([True, False, True]).sum().item() == 2
    assert ta.tensor([True, False]).sum().dtype == ta.int64
    assert ta.tensor([1, 2], dtype=ta.int32).sum().dtype == ta.int64
    assert i.prod(1).tolist() == ti.prod(1).tolist() and i.prod().dtype == ta.int64
    assert i.cumsum(0).tolist() == ti.cumsum(0).tolist() and i.cumsum(1).dtype == ta.int64
    s = ta.tensor([1.5, 2.25], dtype=ta.float32).sum(dtype=ta.float64)
    assert s.dtype == ta.float64 and s.item() == 3.75
    assert i.mean(dtype=ta.float32).item() == 2.5
    with pytest.raises(TypeError, match="mean"):
        i.mean()
    with pytest.raises(TypeError, match="cumsum.*dim"):
        ta.cumsum(i)
    with pytest.raises(TypeError, match="correction or unbiased"):
        ta.std(ta.ones(3), correction=1, unbiased=True)
    z = ta.zeros(3, requires_grad=True)
    z.norm().backward()  # PyTorch's subgradient at 0: zeros, not nan
    assert z.grad.tolist() == [0.0, 0.0, 0.0]


def test_comparisons_and_tests():
    a = ta.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0])
    t = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0])
    for name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit"):
        assert getattr(ta, name)(a).tolist() == getattr(torch, name)(t).tolist(), name
    assert ta.isfinite(ta.tensor([1, 2])).tolist() == [True, True]
    assert ta.isnan(ta.tensor([1, 2])).tolist() == [False, False]
    x = ta.tensor([1.0, 2.0])
    assert ta.allclose(x, x + 1e-9) is True and ta.allclose(x, x + 1e-3) is False
    assert x.isclose(ta.tensor([1.0, 2.1]), atol=0.05).tolist() == [True, False]
    assert ta.isclose(a, a, equal_nan=True).tolist() == [True] * 5
    assert ta.equal(x, x.clone()) is True and ta.equal(x, ta.tensor([1.0])) is False
    assert (x == 1.0).dtype == ta.bool and (x >= x).tolist() == [True, True]
    assert x.eq(1).tolist() == [True, False] and ta.greater(x, 1.5).tolist() == [False, True]
    assert x.nan_to_num().tolist() == [1.0, 2.0]
    big = ta.tensor([float("inf"), -float("inf"), float("nan")]).nan_to_num()
    assert big.tolist() == torch.tensor([float("inf"), -float("inf"), float("nan")]).nan_to_num().tolist()


PRODUCTS = {
    "mm": (lambda x: x[0].mm(x[1].t()), lambda x: x[0].mm(x[1].t())),
    "bmm": (lambda x: ta.bmm(x, x.transpose(1, 2)), lambda x: torch.bmm(x, x.transpose(1, 2))),
    "mv": (lambda x: x[0].mv(x[1, 0]), lambda x: x[0].mv(x[1, 0])),
    "dot": (lambda x: x[0, 0].dot(x[1, 1]), lambda x: x[0, 0].dot(x[1, 1])),
    "outer": (lambda x: ta.outer(x[0, 0], x[1, 1, :3]), lambda x: torch.outer(x[0, 0], x[1, 1, :3])),
    "addmm": (lambda x: ta.addmm(x[1, 0, :3], x[0], x[1].t(), beta=0.5, alpha=2),
              lambda x: torch.addmm(x[1, 0, :3], x[0], x[1].t(), beta=0.5, alpha=2)),
    "baddbmm": (lambda x: ta.baddbmm(x[:, :, :3], x, x.transpose(1, 2), alpha=0.5),
                lambda x: torch.baddbmm(x[:, :, :3], x, x.transpose(1, 2), alpha=0.5)),
}


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_products_against_torch(name):
    _against_torch(*PRODUCTS[name])


def test_product_shape_errors():
    with pytest.raises(ValueError, match=r"mm: .*\(2, 3\).*\(2, 3\)"):
        ta.mm(ta.ones(2, 3), ta.ones(2, 3, 1)[..., 0])
    with pytest.raises(ValueError, match="mm: both arguments must be matrices"):
        ta.mm(ta.ones(2, 3, 4), ta.ones(4, 2))
    with pytest.raises(ValueError, match="bmm: batch sizes differ"):
        ta.bmm(ta.ones(2, 3, 4), ta.ones(3, 4, 2))
    with pytest.raises(ValueError, match="dot: 1D tensors expected"):
        ta.dot(ta.ones(2, 2), ta.ones(2))
    with pytest.raises(ValueError, match="dot: inconsistent"):
        ta.dot(ta.ones(2), ta.ones(3))
    assert ta.dot(ta.tensor([1, 2]), ta.tensor([3, 4])).item() == 11


def test_nn_functional_helpers_against_torch():
    _against_torch(lambda x: TF.normalize(x, dim=-1), lambda x: torch.nn.functional.normalize(x, dim=-1))
    _against_torch(lambda x: TF.normalize(x, p=1, dim=0), lambda x: torch.nn.functional.normalize(x, p=1, dim=0))
    _against_torch(lambda x: TF.cosine_similarity(x[0], x[1], dim=-1),
                   lambda x: torch.nn.functional.cosine_similarity(x[0], x[1], dim=-1))
    _against_torch(lambda x: TF.pairwise_distance(x[0], x[1]),
                   lambda x: torch.nn.functional.pairwise_distance(x[0], x[1]))
    labels = ta.tensor([[0, 2], [1, 1]])
    oh = TF.one_hot(labels)
    assert oh.dtype == ta.int64 and oh.tolist() == torch.nn.functional.one_hot(torch.tensor([[0, 2], [1, 1]])).tolist()
    assert TF.one_hot(ta.tensor([1]), 4).tolist() == [[0, 1, 0, 0]]
    with pytest.raises(ValueError, match=r"one_hot: class values must be in \[0, 3\)"):
        TF.one_hot(ta.tensor([3]), 3)
    with pytest.raises(TypeError, match="one_hot"):
        TF.one_hot(ta.tensor([1.0]))


PADS = {
    "constant": ((1, 2, 0, 1), "constant", 3.0),
    "crop": ((-1, 2), "constant", None),
    "reflect": ((2, 1), "reflect", None),
    "replicate": ((2, 1, 1, 0), "replicate", None),
    "circular": ((2, 1), "circular", None),
}


@pytest.mark.parametrize("name", list(PADS))
def test_pad_against_torch(name):
    pad, mode, value = PADS[name]
    kw = {} if value is None else {"value": value}
    _against_torch(lambda x: TF.pad(x, pad, mode=mode, **kw),
                   lambda x: torch.nn.functional.pad(x, pad, mode=mode, **kw))


def test_pad_errors():
    with pytest.raises(ValueError, match="pad: padding length must be even"):
        TF.pad(ta.ones(2, 3), (1, 2, 3))
    with pytest.raises(ValueError, match="pad: reflect padding"):
        TF.pad(ta.ones(2, 3), (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="pad: mode"):
        TF.pad(ta.ones(2, 3), (1, 1), mode="wrap")
    assert TF.pad(ta.tensor([[1, 2]]), (1, 0), value=7).tolist() == [[7, 1, 2]]


def test_gelu_stays_tanh_form_here_and_nn_functional_names_exist():
    for name in ("pad", "one_hot", "normalize", "softplus", "elu", "cosine_similarity"):
        assert callable(getattr(TF, name))
    assert math.isclose(ta.functional.silu(ta.tensor([1.0])).item(), 1 / (1 + math.exp(-1)), rel_tol=1e-6)


def test_inplace_activations_follow_inplace_rules():
    x = ta.tensor([-1.0, 2.0])
    y = ta.functional.leaky_relu(x, 0.5, inplace=True)
    assert y is x and x.tolist() == [-0.5, 2.0]
    leaf = ta.tensor([-1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        TF.elu(leaf, inplace=True)


def test_add_sub_alpha_against_torch():
    _against_torch(lambda x: ta.add(x, x[0], alpha=3) - x.sub(x * x, alpha=0.5),
                   lambda x: torch.add(x, x[0], alpha=3) - x.sub(x * x, alpha=0.5))
    assert ta.tensor([1, 2]).add(ta.tensor([1, 1]), alpha=2).tolist() == [3, 4]


def test_reductions_take_numpy_keywords_as_pytorch_does():
    """makemore's P.sum(1, keepdims=True): keepdims= and axis= are PyTorch's aliases too."""
    a = RNG.standard_normal((2, 3))
    x, t = ta.tensor(a), torch.tensor(a)
    for call in (lambda m: m.sum(1, keepdims=True), lambda m: m.mean(axis=0, keepdims=True),
                 lambda m: m.max(1, keepdims=True)[0], lambda m: m.std(1, keepdims=True),
                 lambda m: m.argmax(axis=1, keepdims=True), lambda m: m.logsumexp(1, keepdims=True),
                 lambda m: m.prod(axis=1), lambda m: m.amin(1, keepdims=True), lambda m: (m > 0).any(1, keepdims=True)):
        got, want = call(x), call(t)
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_allclose(got.numpy(), want.numpy())
    with pytest.raises(TypeError, match="keepdim or keepdims"):
        x.sum(1, keepdim=True, keepdims=True)


POINTWISE = {
    "addcmul": (lambda x: ta.addcmul(x, x[0], x * 2, value=0.5), lambda x: torch.addcmul(x, x[0], x * 2, value=0.5)),
    "addcdiv": (lambda x: x.addcdiv(x, x.abs() + 1, value=-2), lambda x: x.addcdiv(x, x.abs() + 1, value=-2)),
    "lerp_number": (lambda x: x.lerp(x.exp(), 0.3), lambda x: x.lerp(x.exp(), 0.3)),
    "lerp_tensor": (lambda x: ta.lerp(x, x * 3, x.sigmoid()), lambda x: torch.lerp(x, x * 3, x.sigmoid())),
    "atan2": (lambda x: ta.atan2(x, x[0].flip(-1) + 0.1), lambda x: torch.atan2(x, x[0].flip(-1) + 0.1)),
    "hypot": (lambda x: ta.hypot(x, x.exp()), lambda x: torch.hypot(x, x.exp())),
    "logaddexp": (lambda x: ta.logaddexp(x, x[1] * 2), lambda x: torch.logaddexp(x, x[1] * 2)),
    "fmod": (lambda x: ta.fmod(x * 3, x[0, 0].abs() + 0.7), lambda x: torch.fmod(x * 3, x[0, 0].abs() + 0.7)),
    "diff": (lambda x: ta.diff(x, dim=1), lambda x: torch.diff(x, dim=1)),
    "diff_n2_append": (lambda x: x.diff(2, -1, append=x[..., :1] * 2), lambda x: x.diff(2, -1, append=x[..., :1] * 2)),
    "median_dim": (lambda x: x.median(1), lambda x: x.median(1)),
    "median_keepdim": (lambda x: x.median(-1, keepdim=True)[0], lambda x: x.median(-1, keepdim=True)[0]),
    "median_all": (lambda x: x.median(), lambda x: x.median()),
}


@pytest.mark.parametrize("name", list(POINTWISE))
def test_pointwise_against_torch(name):
    _against_torch(*POINTWISE[name])


def test_inplace_pointwise_and_legacy_constructors():
    x = ta.tensor([1.0, 2.0])
    assert x.addcmul_(x, x, value=2) is x and x.tolist() == [3.0, 10.0]
    x.addcdiv_(ta.tensor([2.0, 4.0]), ta.tensor([2.0, 2.0]))
    assert x.tolist() == [4.0, 12.0]
    x.lerp_(ta.zeros(2), 0.25)
    assert x.tolist() == [3.0, 9.0] and x._version == 3
    y = ta.tensor([-1.0, 2.0])
    assert y.relu_() is y and y.tolist() == [0.0, 2.0]
    leaf = ta.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="tanh_: a leaf"):
        leaf.tanh_()
    h = leaf * 1
    h.sigmoid_()
    h.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), [0.19661193] * 2, rtol=1e-6)
    assert ta.LongTensor([1, 2]).dtype == ta.int64 and ta.FloatTensor((2, 3)).tolist() == [2.0, 3.0]
    assert ta.FloatTensor(2, 3).shape == (2, 3) and ta.FloatTensor().shape == (0,)
    assert ta.BoolTensor([True]).dtype == ta.bool and ta.DoubleTensor([1]).dtype == ta.float64
    assert ta.fmod(ta.tensor([-7, 7]), 3).tolist() == torch.fmod(torch.tensor([-7, 7]), 3).tolist()
    v, i = ta.tensor([[1.0, 3.0], [2.0, 2.0]]).median(1)
    tv, ti = torch.tensor([[1.0, 3.0], [2.0, 2.0]]).median(1)
    assert v.tolist() == tv.tolist() and i.tolist() == ti.tolist()


MORE = {
    "asinh_acosh_atanh": (lambda x: x.asinh() + (x.abs() + 1.5).acosh() + (x * 0.3).atanh(),
                          lambda x: x.asinh() + (x.abs() + 1.5).acosh() + (x * 0.3).atanh()),
    "logit": (lambda x: ta.logit(x.sigmoid()) + x.sigmoid().logit(eps=0.3),
              lambda x: torch.logit(x.sigmoid()) + x.sigmoid().logit(eps=0.3)),
    "xlogy": (lambda x: ta.xlogy(x, x.abs() + 0.5) + x.xlogy(2.0), lambda x: torch.xlogy(x, x.abs() + 0.5) + x.xlogy(2.0)),
    "deg_rad": (lambda x: ta.deg2rad(x) * ta.rad2deg(x), lambda x: torch.deg2rad(x) * torch.rad2deg(x)),
    "aminmax": (lambda x: ta.aminmax(x, dim=1), lambda x: torch.aminmax(x, dim=1)),
    "nansum_nanmean": (lambda x: x.nansum(1) + x.nanmean((0, 2), keepdim=True).sum(),
                       lambda x: x.nansum(1) + x.nanmean((0, 2), keepdim=True).sum()),
    "kthvalue": (lambda x: x.kthvalue(2, 1), lambda x: x.kthvalue(2, 1)),
    "cummax": (lambda x: x.cummax(2), lambda x: x.cummax(2)),
    "cummin": (lambda x: ta.cummin(x, 0), lambda x: torch.cummin(x, 0)),
    "logcumsumexp": (lambda x: x.logcumsumexp(1), lambda x: x.logcumsumexp(1)),
    "quantile": (lambda x: x.quantile(0.3, dim=1), lambda x: x.quantile(0.3, dim=1)),
    "quantile_q_tensor": (lambda x: ta.quantile(x, ta.tensor([0.25, 0.9], dtype=ta.float64), dim=-1, keepdim=True),
                          lambda x: torch.quantile(x, torch.tensor([0.25, 0.9], dtype=torch.float64), dim=-1, keepdim=True)),
    "quantile_all": (lambda x: x.quantile(0.6), lambda x: x.quantile(0.6)),
    "scatter_reduce_sum": (lambda x: x.scatter_reduce(1, ta.tensor([[[0, 2, 2, 1]]]), x[:1, :1] * 2, "sum"),
                           lambda x: x.scatter_reduce(1, torch.tensor([[[0, 2, 2, 1]]]), x[:1, :1] * 2, "sum")),
    "scatter_reduce_mean": (lambda x: x.scatter_reduce(2, ta.tensor([[[0, 0, 3]]]), x[:1, :1, :3] * 2, "mean",
                                                       include_self=False),
                            lambda x: x.scatter_reduce(2, torch.tensor([[[0, 0, 3]]]), x[:1, :1, :3] * 2, "mean",
                                                       include_self=False)),
    "scatter_reduce_amax": (lambda x: x.scatter_reduce(0, ta.tensor([[[1, 0, 1, 1]]]), x[1:, :1] * 3, "amax"),
                            lambda x: x.scatter_reduce(0, torch.tensor([[[1, 0, 1, 1]]]), x[1:, :1] * 3, "amax")),
    "index_put": (lambda x: x.index_put((ta.tensor([0, 1]), ta.tensor([2, 0])), x[0, 0, :4] * 2),
                  lambda x: x.index_put((torch.tensor([0, 1]), torch.tensor([2, 0])), x[0, 0, :4] * 2)),
    "index_put_accumulate": (lambda x: x.index_put((ta.tensor([0, 0]),), x[1] * 2, accumulate=True),
                             lambda x: x.index_put((torch.tensor([0, 0]),), x[1] * 2, accumulate=True)),
    "masked_scatter": (lambda x: x.masked_scatter(x > 0, x.flip(0) * 2), lambda x: x.masked_scatter(x > 0, x.flip(0) * 2)),
    "unfold": (lambda x: x.unfold(2, 2, 1) * 1 + x.unfold(2, 2, 1), lambda x: x.unfold(2, 2, 1) * 1 + x.unfold(2, 2, 1)),
    "unfold_step": (lambda x: x.unfold(1, 2, 2), lambda x: x.unfold(1, 2, 2)),
    "select_ravel_broadcast": (lambda x: x.select(1, -1).ravel() + ta.broadcast_to(x[0, 0, :1], (8,)),
                               lambda x: x.select(1, -1).ravel() + torch.broadcast_to(x[0, 0, :1], (8,))),
    "rot90": (lambda x: x.rot90(1, (1, 2)) * 2 + ta.rot90(x, -1, [1, 2]),
              lambda x: x.rot90(1, (1, 2)) * 2 + torch.rot90(x, -1, [1, 2])),
    "diag_embed": (lambda x: ta.diag_embed(x, 1) + 0, lambda x: torch.diag_embed(x, 1) + 0),
    "diagflat": (lambda x: x[0, :2, :2].diagflat(-1), lambda x: x[0, :2, :2].diagflat(-1)),
    "inner": (lambda x: x.inner(x[0]), lambda x: x.inner(x[0])),
    "kron": (lambda x: ta.kron(x[0], x[1, :2]), lambda x: torch.kron(x[0], x[1, :2])),
    "sum_to_size": (lambda x: x.sum_to_size(3, 1), lambda x: x.sum_to_size(3, 1)),
}


@pytest.mark.parametrize("name", list(MORE))
def test_more_ops_against_torch(name):
    _against_torch(*MORE[name])


def test_inplace_method_forms():
    for name in ("sin", "log1p", "square", "floor", "erf", "tril", "cumsum", "atan2", "clamp_min", "xlogy"):
        args = {"tril": (), "cumsum": (0,), "atan2": (ta.tensor([[1.0, 2.0], [3.0, 4.0]]),), "clamp_min": (0.7,),
                "xlogy": (2.0,)}.get(name, ())
        x = ta.tensor([[0.5, 1.5], [2.5, 3.5]])
        want = getattr(torch.tensor([[0.5, 1.5], [2.5, 3.5]]), name + "_")(
            *(torch.tensor(a.numpy()) if isinstance(a, ta.Tensor) else a for a in args))
        out = getattr(x, name + "_")(*args)
        assert out is x and x._version == 1, name
        np.testing.assert_allclose(x.numpy(), want.numpy(), rtol=1e-6, err_msg=name)
    leaf = ta.ones(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="sin_: a leaf"):
        leaf.sin_()
    h = leaf * 2
    h.fill_diagonal_(0.0)
    h.exp2_()
    h.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), [[0, 8 * np.log(2)], [8 * np.log(2), 0]], rtol=1e-6)
    m = ta.zeros(3, 2)
    m.fill_diagonal_(5.0, wrap=True)
    assert m.tolist() == torch.zeros(3, 2).fill_diagonal_(5.0, wrap=True).tolist()
    x = ta.zeros(2, 2)
    assert x.get_device() == -1 and x.is_signed() and not x.is_complex() and x.is_same_size(ta.ones(2, 2))
    assert ta.tensor([3]).is_nonzero() and x.data_ptr() == x[0].data_ptr()


MISC = {
    "tensordot_pairs": (lambda x: ta.tensordot(x, x[0].T, dims=([1, 2], [1, 0])),
                        lambda x: torch.tensordot(x, x[0].T, dims=([1, 2], [1, 0]))),
    "tensordot_n": (lambda x: ta.tensordot(x, x[0], 2), lambda x: torch.tensordot(x, x[0], 2)),
    "broadcast_tensors": (lambda x: ta.broadcast_tensors(x[:, :1], x[0]), lambda x: torch.broadcast_tensors(x[:, :1], x[0])),
    "rsub": (lambda x: ta.rsub(x, 2.0) + ta.rsub(x, x[0], alpha=3), lambda x: torch.rsub(x, 2.0) + torch.rsub(x, x[0], alpha=3)),
    "float_power": (lambda x: x.float_power(2) + ta.float_power(x.abs() + 1, x), lambda x: x.float_power(2) + torch.float_power(x.abs() + 1, x)),
    "fmax_fmin": (lambda x: ta.fmax(x, x[0]) + x.fmin(x[1] * 2), lambda x: torch.fmax(x, x[0]) + x.fmin(x[1] * 2)),
    "copysign": (lambda x: x.copysign(x[1]), lambda x: x.copysign(x[1])),
    "sinc_erfc": (lambda x: x.sinc() + ta.erfc(x), lambda x: x.sinc() + torch.erfc(x)),
    "logaddexp2": (lambda x: x.logaddexp2(x[0] * 3), lambda x: x.logaddexp2(x[0] * 3)),
    "dist": (lambda x: x.dist(x.exp()) + ta.dist(x, x * 2, 3), lambda x: x.dist(x.exp()) + torch.dist(x, x * 2, 3)),
    "splits": (lambda x: ta.hsplit(x, 3) + x[0].vsplit([1]) + x.dsplit(2) + x.split_with_sizes([1, 2], 1),
               lambda x: torch.hsplit(x, 3) + x[0].vsplit([1]) + x.dsplit(2) + x.split_with_sizes([1, 2], 1)),
    "cartesian_prod": (lambda x: ta.cartesian_prod(x[0, 0], x[1, 1, :2]), lambda x: torch.cartesian_prod(x[0, 0], x[1, 1, :2])),
    "block_diag": (lambda x: ta.block_diag(x[0], x[1, 0], x[0, 0, 0]), lambda x: torch.block_diag(x[0], x[1, 0], x[0, 0, 0])),
    "combinations": (lambda x: ta.combinations(x[0, 0], 2) + ta.combinations(x[1, 1], 2, with_replacement=True)[:6],
                     lambda x: torch.combinations(x[0, 0], 2) + torch.combinations(x[1, 1], 2, with_replacement=True)[:6]),
}


@pytest.mark.parametrize("name", list(MISC))
def test_misc_ops_against_torch(name):
    _against_torch(*MISC[name])


def test_misc_non_differentiable():
    assert ta.isin(ta.tensor([0, 5, 3]), ta.tensor([3, 4])).tolist() == [False, False, True]
    assert ta.tensor([1, 2]).isin(ta.tensor([2]), invert=True).tolist() == [True, False]
    assert [t.tolist() for t in ta.unravel_index(ta.tensor([0, 5, 3]), (2, 3))] == [[0, 1, 1], [0, 2, 0]]
    assert ta.broadcast_shapes((2, 1), (3,)) == (2, 3) and isinstance(ta.broadcast_shapes((1,), (2,)), ta.Size)
    assert ta.result_type(ta.tensor([1]), 1.0) == ta.float32 and ta.promote_types(ta.int32, ta.float32) == ta.float32
    assert ta.can_cast(ta.int64, ta.float32) and not ta.can_cast(ta.float32, ta.int32)
    assert ta.scalar_tensor(3).dtype == ta.float32 and ta.scalar_tensor(3).ndim == 0
    h = ta.heaviside(ta.tensor([-1.0, 0.0, 2.0]), ta.tensor(0.5))
    assert h.tolist() == torch.heaviside(torch.tensor([-1.0, 0.0, 2.0]), torch.tensor(0.5)).tolist()
    x = ta.ones(2, requires_grad=True)
    assert ta.clone(x).requires_grad and not ta.detach(x).requires_grad


SPD = np.array([[[2.5, 0.3, 0.1], [0.2, 3.0, 0.4], [0.0, 0.5, 2.0]], [[1.5, -0.3, 0.2], [0.1, 2.0, 0.0], [0.3, 0.2, 1.8]]])
LINALG = {
    "inv": (lambda x: ta.linalg.inv(x) + x.inverse(), lambda x: torch.linalg.inv(x) + x.inverse()),
    "det": (lambda x: ta.linalg.det(x) + x.det(), lambda x: torch.linalg.det(x) + x.det()),
    "slogdet": (lambda x: ta.linalg.slogdet(x), lambda x: torch.linalg.slogdet(x)),
    "logdet": (lambda x: x.logdet(), lambda x: x.logdet()),
    "solve_matrix": (lambda x: ta.linalg.solve(x, x[:, :, :2] * 2), lambda x: torch.linalg.solve(x, x[:, :, :2] * 2)),
    "solve_vector_broadcast": (lambda x: ta.linalg.solve(x, x[0, 0]), lambda x: torch.linalg.solve(x, x[0, 0])),
    "matrix_power": (lambda x: ta.linalg.matrix_power(x, 3) + x.matrix_power(-2),
                     lambda x: torch.linalg.matrix_power(x, 3) + x.matrix_power(-2)),
}


@pytest.mark.parametrize("name", list(LINALG))
def test_linalg_against_torch(name):
    _against_torch(*LINALG[name], a=SPD)


def test_linalg_errors():
    with pytest.raises(ValueError, match="linalg.inv: the matrix .* is singular"):
        ta.linalg.inv(ta.zeros(2, 2))
    with pytest.raises(ValueError, match="square matrices"):
        ta.linalg.det(ta.ones(2, 3))
    assert ta.linalg.matrix_power(ta.ones(2, 2), 0).tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "hardtanh", "silu"])
def test_inplace_activation_on_a_non_leaf_against_torch(name):
    out = []
    for m, f in ((ta, ta.functional), (torch, torch.nn.functional)):
        a = m.tensor([-1.0, 2.0, 0.25], requires_grad=True)
        h = a * 3
        y = getattr(f, name)(h, inplace=True)
        (y * m.tensor([1.0, 2.0, 3.0])).sum().backward()
        out.append((y is h, y.detach().numpy().copy(), a.grad.numpy().copy()))
    assert out[0][0] and out[1][0]
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-6)
    np.testing.assert_allclose(out[0][2], out[1][2], rtol=1e-6)


@pytest.mark.parametrize("name", ["exp_", "sqrt_", "abs_"])
def test_inplace_methods_on_a_non_leaf_against_torch(name):
    out = []
    for m in (ta, torch):
        a = m.tensor([1.0, 2.0, 0.75], requires_grad=True)
        h = a * 3 - 2
        y = getattr(h, name)()
        (y * m.tensor([1.0, 2.0, 3.0])).sum().backward()
        out.append((y is h, y.detach().numpy().copy(), a.grad.numpy().copy()))
    assert out[0][0] and out[1][0]
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-6)
    np.testing.assert_allclose(out[0][2], out[1][2], rtol=1e-6)


def test_abs_of_a_bool_tensor_is_pytorchs_error():
    with pytest.raises(NotImplementedError, match="abs: not implemented for bool"):
        ta.abs(ta.tensor([True, False]))
    with pytest.raises(NotImplementedError):
        ta.tensor([True]).abs()
