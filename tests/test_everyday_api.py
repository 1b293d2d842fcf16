"""The everyday API a PyTorch user reaches for first: formatting, bitwise and rounding operators,
selection (max/min/argmax/sort/topk/clamp), tril/triu, einsum, softmax, the Tensor methods, and the same ops
on the GPU. (The loss modules: test_nn_ops.py and test_losses.py; Identity, ModuleDict, TransformerEncoder:
test_nn.py and test_transformer_layers.py; the positional encodings: test_attention_modules.py.)

Every differentiable op is gradchecked; where torch is installed, values and gradients are held to
torch's (those tests skip cleanly without it).
"""
import copy

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import nn
from tinyattn.testing import gradcheck

from conftest import leaf
from torch_reference import both_grads


def _torch():
    return pytest.importorskip("torch")


def distinct(rng, *shape):
    """A float64 leaf whose elements are well apart (no ties: orderings are differentiable there)."""
    n = int(np.prod(shape))
    data = rng.permutation(n).reshape(shape) * 0.37 + rng.uniform(-0.05, 0.05, shape)
    return ta.tensor(data, dtype=ta.float64, requires_grad=True)


# ---- f"{loss:.4f}" ----------------------------------------------------------------------


def test_format_one_element_tensors_as_numbers():
    loss = ta.tensor(1.234567)
    assert f"{loss:.4f}" == "1.2346"
    assert f"{loss}" == "1.234567" or f"{loss}" == format(loss.item(), "")  # 0-d: the number, as in PyTorch
    assert f"{ta.tensor(3):>4d}" == "   3"
    assert f"{ta.tensor([2.5]):.1f}" == "2.5"  # one element of any shape
    x = ta.tensor([1.0, 2.0])
    assert f"{x}" == str(x)  # an empty spec gives str()
    with pytest.raises(TypeError, match=r"Tensor.__format__.*shape \(2,\)"):
        f"{x:.4f}"


# ---- & | ^ ~ --------------------------------------------------------------------------------


def test_bitwise_on_bool_and_int_tensors():
    a, b = ta.tensor([True, True, False, False]), ta.tensor([True, False, True, False])
    assert (a & b).tolist() == [True, False, False, False]
    assert (a | b).tolist() == [True, True, True, False]
    assert (a ^ b).tolist() == [False, True, True, False]
    assert (~a).tolist() == [False, False, True, True]
    assert (a & b).dtype == np.bool_
    assert (a & True).dtype == np.bool_ and (True & a).tolist() == [True, True, False, False]
    i = ta.tensor([12, 10, -3])
    assert (i & 6).tolist() == [4, 2, 4] and (i | 1).tolist() == [13, 11, -3] and (i ^ 5).tolist() == [9, 15, -8]
    assert (~i).tolist() == [-13, -11, 2]
    assert (i & a[:3]).dtype == np.int64  # integer with bool: integer
    assert (a & 1).dtype == np.int64  # a Python int with a bool tensor makes int64, as in PyTorch
    np_mask = np.array([True, False, True, False])
    assert (np_mask & a).tolist() == [True, False, False, False]  # numpy defers to the tensor


@pytest.mark.parametrize("op", ["&", "|", "^"])
def test_bitwise_on_floats_is_a_type_error(op):
    x = ta.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"bitwise_(and|or|xor): only bool and integer tensors.*float32"):
        eval(f"x {op} x")
    with pytest.raises(TypeError, match=r"only bool and integer operands.*float"):
        eval(f"ta.tensor([1, 2]) {op} 1.5")
    with pytest.raises(TypeError, match=r"bitwise_not: ~ is only implemented for bool and integer.*float32"):
        ~x


def test_bitwise_and_logical_match_torch():
    torch = _torch()
    rng = np.random.default_rng(0)
    ints = rng.integers(-50, 50, (3, 4))
    bools = rng.random((3, 4)) > 0.5
    for x, y in [(ints, ints[::-1].copy()), (bools, bools[::-1].copy()), (ints, bools)]:
        a, b, ta_, tb = ta.tensor(x), ta.tensor(y), torch.tensor(x), torch.tensor(y)
        for f in (lambda p, q: p & q, lambda p, q: p | q, lambda p, q: p ^ q, lambda p, q: ~p,
                  lambda p, q: p & 3, lambda p, q: 7 ^ q):
            out, expected = f(a, b), f(ta_, tb)
            assert out.tolist() == expected.tolist()
            assert str(out.dtype) == str(expected.dtype).replace("torch.", "")
    floats = rng.standard_normal((3, 4)) * (rng.random((3, 4)) > 0.4)
    a, b = ta.tensor(floats), ta.tensor(ints % 2)
    ta_, tb = torch.tensor(floats), torch.tensor(ints % 2)
    for name in ("logical_and", "logical_or", "logical_xor"):
        assert getattr(ta, name)(a, b).tolist() == getattr(torch, name)(ta_, tb).tolist()
    assert ta.logical_not(a).tolist() == torch.logical_not(ta_).tolist()


def test_all_any_with_dim_and_keepdim():
    x = ta.tensor([[1.0, 0.0, 2.0], [3.0, 4.0, 5.0]])
    assert ta.all(x).item() is False and ta.any(x).item() is True
    assert x.all(dim=1).tolist() == [False, True] and x.any(0).tolist() == [True, True, True]
    assert x.all(dim=1, keepdim=True).shape == (2, 1) and x.any(dim=(0, 1)).shape == ()
    assert (x > -1).all().dtype == np.bool_
    torch = pytest.importorskip("torch")
    t = torch.tensor(x.numpy())
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            assert x.all(dim, keepdim).tolist() == t.all(dim, keepdim).tolist()
            assert x.any(dim, keepdim).tolist() == t.any(dim, keepdim).tolist()


# ---- // and % -------------------------------------------------------------------------------


def test_floor_divide_and_remainder_follow_python():
    a = ta.tensor([5, -5, 5, -5, 7])
    b = ta.tensor([3, 3, -3, -3, 7])
    assert (a // b).tolist() == [5 // 3, -5 // 3, 5 // -3, -5 // -3, 1]
    assert (a % b).tolist() == [5 % 3, -5 % 3, 5 % -3, -5 % -3, 0]
    assert (a // b).dtype == np.int64 and (a % 2).dtype == np.int64
    assert (a // 2.5).dtype == np.float32 and (7 // ta.tensor([2])).tolist() == [3]
    assert (7.5 % ta.tensor([2])).tolist() == [1.5]
    x = ta.tensor([5.5, -5.5, 5.5, -5.5])
    y = ta.tensor([2.0, 2.0, -2.0, -2.0])
    assert (x // y).tolist() == [5.5 // 2, -5.5 // 2, 5.5 // -2, -5.5 // -2]
    assert (x % y).tolist() == [5.5 % 2, -5.5 % 2, 5.5 % -2, -5.5 % -2]
    with pytest.raises(ZeroDivisionError, match="floor_divide: integer division by zero"):
        a // ta.tensor([1, 0, 1, 1, 1])
    with pytest.raises(ZeroDivisionError, match="remainder: integer division by zero"):
        a % 0
    with pytest.raises(TypeError, match="floor_divide: not implemented for bool"):
        ta.tensor([True]) // ta.tensor([True])


def test_remainder_gradient(rng):
    a = ta.tensor(rng.uniform(-5, 5, (3, 4)), dtype=ta.float64, requires_grad=True)
    b = ta.tensor(rng.choice([-1, 1], (1, 4)) * rng.uniform(0.7, 2.0, (1, 4)), dtype=ta.float64, requires_grad=True)
    # stay away from the jumps of a % b (where a / b is an integer)
    ratio = a.numpy() / b.numpy()
    assert np.min(np.abs(ratio - np.round(ratio))) > 1e-3
    assert gradcheck(lambda p, q: p % q, [a, b], name="remainder")
    assert gradcheck(lambda p: 3.7 % p, [b], name="rmod")
    a.grad = b.grad = None
    out = a % b
    out.backward(ta.ones_like(out))
    np.testing.assert_allclose(a.grad.numpy(), np.ones((3, 4)))
    np.testing.assert_allclose(b.grad.numpy(), -np.floor(ratio).sum(0, keepdims=True))


def test_floor_divide_gradient_raises_like_torch():
    x = ta.tensor([5.0, -3.0], requires_grad=True)
    q = x // 2
    assert q.tolist() == [2.0, -2.0]
    with pytest.raises(RuntimeError, match="floor_divide: the derivative of a // b is not implemented"):
        q.sum().backward()
    with ta.no_grad():
        assert not (x // 2).requires_grad


def test_rounding_matches_torch():
    torch = _torch()
    rng = np.random.default_rng(3)
    a = rng.uniform(-9, 9, (4, 5))
    b = rng.choice([-1, 1], (4, 5)) * rng.uniform(0.5, 3, (4, 5))
    both_grads(lambda x, y: x % y, lambda x, y: x % y, a, b)
    assert np.array_equal((ta.tensor(a) // ta.tensor(b)).numpy(), (torch.tensor(a) // torch.tensor(b)).numpy())
    ia, ib = rng.integers(-20, 20, 30), rng.choice([-7, -3, 2, 5], 30)
    assert (ta.tensor(ia) // ta.tensor(ib)).tolist() == (torch.tensor(ia) // torch.tensor(ib)).tolist()
    assert (ta.tensor(ia) % ta.tensor(ib)).tolist() == (torch.tensor(ia) % torch.tensor(ib)).tolist()
    # division by zero in floats: inf/nan where PyTorch has them
    z = np.array([3.0, -3.0, 0.0])
    np.testing.assert_array_equal((ta.tensor(z) // 0.0).numpy(), (torch.tensor(z) // 0.0).numpy())
    np.testing.assert_array_equal((ta.tensor(z) % 0.0).numpy(), (torch.tensor(z) % 0.0).numpy())


# ---- argmax, argmin, max/min with a dim ---------------------------------------------------


def test_argmax_argmin():
    x = ta.tensor([[1.0, 3.0, 3.0], [2.0, -1.0, -1.0]])
    assert ta.argmax(x).item() == 1 and ta.argmin(x).item() == 4  # flattened, first of ties
    assert ta.argmax(x, keepdim=True).shape == (1, 1)
    assert x.argmax(1).tolist() == [1, 0] and x.argmin(dim=1).tolist() == [0, 1]
    assert x.argmin(0, keepdim=True).tolist() == [[0, 1, 1]]
    assert x.argmax(-1).dtype == np.int64
    assert ta.argmax(ta.tensor([1.0, float("nan"), 3.0])).item() == 1  # NaN counts as the largest
    assert ta.argmin(ta.tensor([1.0, float("nan"), -3.0])).item() == 1
    assert ta.argmax(ta.tensor(5.0), 0).item() == 0
    with pytest.raises(ValueError, match="argmax: dim 2 is out of range"):
        x.argmax(2)
    with pytest.raises(ValueError, match=r"argmin: cannot reduce over dim 1 of size 0"):
        ta.zeros(2, 0).argmin(1)
    with pytest.raises(TypeError, match="argmax: bool tensors"):
        (x > 1).argmax()


def test_max_min_along_a_dim_return_values_and_indices(rng):
    x = distinct(rng, 3, 4, 2)
    for fn, ref, arg in ((ta.max, np.max, np.argmax), (ta.min, np.min, np.argmin)):
        for dim in (0, 1, -1):
            for keepdim in (False, True):
                out = fn(x, dim, keepdim)
                values, indices = out
                assert out.values is values and out.indices is indices
                np.testing.assert_array_equal(values.numpy(), ref(x.numpy(), axis=dim, keepdims=keepdim))
                np.testing.assert_array_equal(indices.numpy(), arg(x.numpy(), axis=dim, keepdims=keepdim))
                assert not indices.requires_grad
                assert gradcheck(lambda t: fn(t, dim, keepdim).values, [x], name=f"{fn.__name__}(dim={dim})")
    m = x.min(dim=1)
    assert type(m).__name__ == "MinResult" and m.values.shape == (3, 2)


def test_max_with_ties_sends_the_gradient_to_the_returned_index_amax_splits_it():
    x = ta.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    values, indices = x.max(1)
    assert indices.tolist() == [1, 0]
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.amax(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0.5, 0.5, 0]])
    x.grad = None
    x.min(1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0, 0], [0, 0, 1]])
    x.grad = None
    x.max().backward()  # no dim: ties share, as in PyTorch
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    ta.amin(x, 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0, 0], [0, 1, 1]])
    x.grad = None
    ta.amin(ta.tensor([[3.0, 1.0, 1.0]]) * x[:1], 1).sum().backward()  # [3, 3, 3]: a three-way tie, shared
    np.testing.assert_allclose(x.grad.numpy(), [[1, 1 / 3, 1 / 3], [0, 0, 0]], rtol=1e-6)


def test_max_min_ties_and_elementwise_match_torch():
    torch = _torch()
    a = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 0.0, 2.0], [-1.0, -1.0, -1.0, -1.0]])
    for dim in (0, 1):
        both_grads(lambda x: x.max(dim).values, lambda x: x.max(dim).values, a)
        both_grads(lambda x: x.min(dim, keepdim=True).values, lambda x: x.min(dim, keepdim=True).values, a)
        assert ta.tensor(a).max(dim).indices.tolist() == torch.tensor(a).max(dim).indices.tolist()
        assert ta.tensor(a).min(dim).indices.tolist() == torch.tensor(a).min(dim).indices.tolist()
        both_grads(lambda x: x.amax(dim), lambda x: x.amax(dim), a)
        both_grads(lambda x: x.amin(dim), lambda x: x.amin(dim), a)
    both_grads(lambda x: x.max(), lambda x: x.max(), a)
    both_grads(lambda x: x.min(), lambda x: x.min(), a)
    b = a[::-1].copy()
    both_grads(lambda x, y: ta.minimum(x, y), lambda x, y: torch.minimum(x, y), a, b)
    both_grads(lambda x, y: ta.min(x, y), lambda x, y: torch.min(x, y), a, b)


# ---- sort, argsort, topk ----------------------------------------------------------------


def test_sort_and_argsort(rng):
    x = distinct(rng, 3, 5)
    for dim in (0, 1, -1):
        for descending in (False, True):
            values, indices = ta.sort(x, dim=dim, descending=descending)
            expected = np.sort(x.numpy(), axis=dim)
            if descending:
                expected = np.flip(expected, axis=dim)
            np.testing.assert_array_equal(values.numpy(), expected)
            np.testing.assert_array_equal(np.take_along_axis(x.numpy(), indices.numpy(), dim), expected)
            assert x.argsort(dim, descending).tolist() == indices.tolist()
            assert gradcheck(lambda t: t.sort(dim, descending=descending).values, [x], name="sort")
    # stable, NaN largest, as PyTorch
    y = ta.tensor([3.0, 1.0, 3.0, float("nan"), 2.0])
    assert y.sort().indices.tolist() == [1, 4, 0, 2, 3]
    assert y.sort(descending=True).indices.tolist() == [3, 0, 2, 4, 1]
    s = ta.tensor(4.0).sort()
    assert s.values.item() == 4.0 and s.indices.item() == 0
    assert type(ta.sort(x)).__name__ == "SortResult"


def test_topk(rng):
    x = distinct(rng, 4, 6)
    for k in (1, 3, 6):
        for largest in (True, False):
            values, indices = x.topk(k, dim=1, largest=largest)
            order = np.sort(x.numpy(), axis=1)
            expected = order[:, ::-1][:, :k] if largest else order[:, :k]
            np.testing.assert_array_equal(values.numpy(), expected)
            np.testing.assert_array_equal(np.take_along_axis(x.numpy(), indices.numpy(), 1), expected)
            assert gradcheck(lambda t: ta.topk(t, k, 1, largest).values, [x], name=f"topk(k={k})")
    values, indices = ta.topk(x, 2, dim=0)
    assert values.shape == indices.shape == (2, 6)
    assert ta.topk(x, 0).values.shape == (4, 0)
    with pytest.raises(ValueError, match=r"topk: k=7 is out of range for dim -1 of size 6"):
        x.topk(7)
    with pytest.raises(TypeError, match="topk: k must be an int"):
        x.topk(2.0)


def test_topk_sort_gradient_goes_to_the_chosen_elements():
    x = ta.tensor([[0.5, 2.0, -1.0, 2.0]], requires_grad=True)
    v, i = x.topk(2)
    assert sorted(i.tolist()[0]) == [1, 3]
    v.backward(ta.tensor([[10.0, 20.0]]))
    g = np.zeros((1, 4))
    g[0, i.numpy()[0]] = [10.0, 20.0]
    np.testing.assert_array_equal(x.grad.numpy(), g)


def test_sort_topk_match_torch():
    torch = _torch()
    a = np.random.default_rng(5).standard_normal((3, 7))
    for dim in (0, 1):
        for descending in (False, True):
            both_grads(lambda x: x.sort(dim, descending).values, lambda x: x.sort(dim, descending).values, a)
            assert (ta.tensor(a).sort(dim, descending).indices.tolist()
                    == torch.tensor(a).sort(dim, descending).indices.tolist())
        both_grads(lambda x: x.topk(3, dim).values, lambda x: x.topk(3, dim).values, a)
        both_grads(lambda x: x.topk(2, dim, largest=False).values,
                   lambda x: x.topk(2, dim, largest=False).values, a)


# ---- clamp / clip -------------------------------------------------------------------------


def test_clamp_values_and_boundary_gradient():
    x = ta.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = x.clamp(0, 1)
    assert y.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # the boundary passes the gradient, as PyTorch
    assert ta.clip(x, max=0.5).tolist() == [-1.0, 0.0, 0.5, 0.5, 0.5]
    assert x.clip(min=0.5).tolist() == [0.5, 0.5, 0.5, 1.0, 2.0]
    assert x.clamp(min=1, max=0).tolist() == [0.0] * 5  # min > max: max everywhere
    ints = ta.tensor([1, 5, -3])
    assert ints.clamp(min=0).tolist() == [1, 5, 0] and ints.clamp(min=0).dtype == np.int64
    assert ints.clamp(min=2.5).dtype == np.float32 and ints.clamp(min=2.5).tolist() == [2.5, 5.0, 2.5]
    with pytest.raises(ValueError, match="clamp: at least one of min and max must be given"):
        x.clamp()
    with pytest.raises(ValueError, match=r"clamp: shapes \(5,\) and \(3,\) do not broadcast"):
        x.clamp(min=ta.zeros(3))
    with pytest.raises(TypeError, match="clamp: min and max must be numbers or tensors"):
        x.clamp(min="0")


def test_clamp_gradcheck_with_tensor_bounds(rng):
    x = ta.tensor(rng.uniform(-2, 2, (3, 4)), dtype=ta.float64, requires_grad=True)
    lo = ta.tensor(rng.uniform(-1.5, 0, (1, 4)), dtype=ta.float64, requires_grad=True)
    hi = ta.tensor(rng.uniform(0, 1.5, (3, 1)), dtype=ta.float64, requires_grad=True)
    gaps = np.abs(np.concatenate([(x.numpy() - lo.numpy()).ravel(), (x.numpy() - hi.numpy()).ravel()]))
    assert gaps.min() > 1e-3  # away from the kinks
    assert gradcheck(lambda a, b, c: ta.clamp(a, b, c), [x, lo, hi], name="clamp(tensors)")
    assert gradcheck(lambda a, b: a.clamp(min=b), [x, lo], name="clamp(min tensor)")
    assert gradcheck(lambda a, c: a.clamp(max=c), [x, hi], name="clamp(max tensor)")
    assert gradcheck(lambda a: a.clamp(-0.5, 0.7), [x], name="clamp(numbers)")


def test_clamp_matches_torch_including_boundaries_and_crossed_bounds():
    torch = _torch()
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 0.5, 3.0])
    lo = np.array([0.0, 0.0, 3.0, 0.0, 0.0, 0.5, 1.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1.0])
    both_grads(lambda a, b, c: ta.clamp(a, b, c), lambda a, b, c: torch.clamp(a, b, c), x, lo, hi)
    both_grads(lambda a, b: ta.clamp(a, min=b), lambda a, b: torch.clamp(a, min=b), x, lo)
    both_grads(lambda a, c: ta.clamp(a, max=c), lambda a, c: torch.clamp(a, max=c), x, hi)
    both_grads(lambda a: a.clamp(0.0, 1.0), lambda a: a.clamp(0.0, 1.0), x)
    both_grads(lambda a: a.clip(1.0, 0.0), lambda a: a.clip(1.0, 0.0), x)


# ---- requires_grad_ ---------------------------------------------------------------------


def test_requires_grad_returns_self():
    x = ta.zeros(2, 3)
    assert x.requires_grad_() is x and x.requires_grad
    assert x.requires_grad_(False) is x and not x.requires_grad
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        ta.tensor([1, 2]).requires_grad_()


# ---- tril, triu, softmax ------------------------------------------------------------------


def test_tril_triu(rng):
    x = leaf(rng, 2, 3, 4)
    for diagonal in (-1, 0, 2):
        np.testing.assert_array_equal(ta.tril(x, diagonal).numpy(), np.tril(x.numpy(), diagonal))
        np.testing.assert_array_equal(x.triu(diagonal=diagonal).numpy(), np.triu(x.numpy(), diagonal))
        assert gradcheck(lambda t: ta.tril(t, diagonal), [x], name="tril")
        assert gradcheck(lambda t: t.triu(diagonal), [x], name="triu")
    assert ta.tril(ta.ones(3, 3, dtype=ta.int64)).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert ta.triu(ta.ones(2, 2) > 0, 1).tolist() == [[False, True], [False, False]]
    with pytest.raises(ValueError, match=r"tril: the input must have at least 2 dimensions, got shape \(3,\)"):
        ta.tril(ta.ones(3))


def test_top_level_softmax_and_log_softmax(rng):
    x = leaf(rng, 2, 5)
    np.testing.assert_allclose(ta.softmax(x, -1).numpy(), x.softmax(-1).numpy())
    np.testing.assert_allclose(ta.log_softmax(x, dim=0).numpy(), np.log(ta.softmax(x, 0).numpy()), rtol=1e-12)
    assert gradcheck(lambda t: ta.softmax(t, 1), [x], name="ta.softmax")
    assert gradcheck(lambda t: ta.log_softmax(t, 0), [x], name="ta.log_softmax")
    assert ta.softmax(ta.tensor([[1, 2, 3]]), 1, dtype=ta.float64).dtype == np.float64


# ---- einsum -------------------------------------------------------------------------------

EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (2,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->i", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->j", [(2, 2, 3)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 4)]),
    ("ab,bc,ca->", [(2, 3), (3, 2), (2, 2)]),
    ("ij,jk->ik", [(2, 3), (1, 4)]),  # j broadcasts: summed over a alone
    ("...ij,...jk", [(2, 1, 2, 3), (4, 3, 2)]),
    ("b...d,bd->b...", [(2, 3, 4), (2, 4)]),
    ("i...->i", [(2, 3, 2)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 2, 4)]),
    ("ijk,jl,ki->l", [(2, 3, 2), (3, 2), (2, 2)]),
    ("Ab,bC->AC", [(2, 3), (3, 2)]),
    ("ij,j", [(2, 3), (3,)]),
    (" ba ", [(2, 3)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_values_and_gradcheck(rng, equation, shapes):
    xs = [leaf(rng, *s) for s in shapes]
    out = ta.einsum(equation, *xs)
    arrays = [x.numpy() for x in xs]
    if equation == "i...->i":  # summing "..." away: PyTorch does, numpy's einsum refuses
        expected = arrays[0].sum(axis=(1, 2))
    else:
        expected = np.einsum(equation.replace(" ", ""), *arrays)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda *ts: ta.einsum(equation, *ts), xs, name=f"einsum({equation!r})")


@pytest.mark.parametrize("equation,shapes", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_matches_torch(equation, shapes):
    torch = _torch()
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(s) for s in shapes]
    both_grads(lambda *ts: ta.einsum(equation, *ts), lambda *ts: torch.einsum(equation, *ts), *arrays)


def test_einsum_list_form_and_non_differentiable_operands(rng):
    a, b = leaf(rng, 2, 3), ta.tensor(rng.standard_normal((3, 2)))
    out = ta.einsum("ij,jk", [a, b])
    np.testing.assert_allclose(out.numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    assert gradcheck(lambda t: ta.einsum("ij,jk->ik", t, b), [a], name="einsum(const)")
    assert ta.einsum("ij->j", ta.ones(2, 3, dtype=ta.float32)).dtype == np.float32


@pytest.mark.parametrize("call,error,match", [
    (lambda: ta.einsum("ij,jk->ik", ta.ones(2, 3)), ValueError, r"names 2 operand\(s\), got 1"),
    (lambda: ta.einsum("ij", ta.ones(2, 3, 4)), ValueError, r"operand 0 has 3 dimensions \(shape \(2, 3, 4\)\)"),
    (lambda: ta.einsum("ij,jk->ik", ta.ones(2, 3), ta.ones(4, 5)), ValueError,
     r"subscript 'j' .* has size 4 in operand 1 \(shape \(4, 5\)\) but 3"),
    (lambda: ta.einsum("ii->i", ta.ones(2, 3)), ValueError, r"subscript 'i' is repeated in operand 0 .*sizes 2 and 3"),
    (lambda: ta.einsum("ij->ii", ta.ones(2, 2)), ValueError, r"output subscript 'i' appears more than once"),
    (lambda: ta.einsum("ij->k", ta.ones(2, 2)), ValueError, r"output subscript 'k' .* appears in no operand"),
    (lambda: ta.einsum("i1", ta.ones(2, 2)), ValueError, r"invalid subscript '1'"),
    (lambda: ta.einsum("...i...", ta.ones(2, 2)), ValueError, r"more than one ellipsis"),
    (lambda: ta.einsum("ij,jk", ta.ones(2, 3), ta.ones(3, 2, dtype=ta.float64)), TypeError, r"different dtypes"),
    (lambda: ta.einsum("ij", np.ones((2, 2))), TypeError, r"operand 0 must be a tensor, got ndarray"),
    (lambda: ta.einsum(["i"], ta.ones(2)), TypeError, r"the equation must be a string"),
    (lambda: ta.einsum("...ij,...jk", ta.ones(2, 2, 3), ta.ones(3, 3, 2)), ValueError, r"an axis under '...'"),
])
def test_einsum_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---- methods on Tensor ------------------------------------------------------------------------


def test_tensor_methods_exist_and_agree_with_the_functions(rng):
    x = distinct(rng, 3, 4)
    assert x.min().item() == ta.min(x).item() and x.amin(1).tolist() == ta.amin(x, 1).tolist()
    assert x.argmax(1).tolist() == ta.argmax(x, 1).tolist()
    assert x.sort(0).indices.tolist() == ta.sort(x, 0).indices.tolist()
    assert x.topk(2).indices.tolist() == ta.topk(x, 2).indices.tolist()
    assert x.clip(0, 1).tolist() == ta.clamp(x, 0, 1).tolist()
    assert x.tril(1).tolist() == ta.tril(x, 1).tolist()
    assert x.floor_divide(2).tolist() == (x // 2).tolist() and x.remainder(2).tolist() == (x % 2).tolist()
    b = x > 1
    assert b.logical_not().tolist() == (~b).tolist() and b.bitwise_xor(b).any().item() is False


# ---- on the GPU (Numba's simulator without one): the same results as on the CPU --------------------

needs_cuda = pytest.mark.skipif(not ta.cuda.is_available(), reason="no CUDA GPU and no numba-cuda simulator")

GPU_CASES = {
    "max(dim)": (lambda x, y: x.max(1).values, True),
    "min(dim, keepdim)": (lambda x, y: x.min(0, keepdim=True).values, True),
    "argmin/argmax": (lambda x, y: ta.stack([x.argmin(1), x.argmax(-1)]), False),
    "amin": (lambda x, y: x.amin(1), True),
    "sort": (lambda x, y: x.sort(1, descending=True).values, True),
    "topk": (lambda x, y: x.topk(2, dim=1, largest=False).values, True),
    "clamp tensors": (lambda x, y: ta.clamp(x, y * 0.1 - 0.5, 0.6), True),
    "remainder": (lambda x, y: x % (y + 2.5), True),
    "floor_divide": (lambda x, y: (x * 3).detach() // 0.7, False),
    "tril/triu": (lambda x, y: ta.tril(x, -1) + ta.triu(x * y, 1), True),
    "einsum": (lambda x, y: ta.einsum("ij,ik,jk->", x, y, x.mT @ y), True),
    "einsum diagonal": (lambda x, y: ta.einsum("ii->i", x[:, :3]), True),
    "bool ops": (lambda x, y: ((x > 0) & (y < 0)) | ~(x > y) ^ (x > 0.5), False),
    "all/any": (lambda x, y: ta.stack([(x > -1).all(1), (x > 1).any(1)]), False),
    "cross_entropy smoothing": (lambda x, y: ta.nn.functional.cross_entropy(
        x * y, ta.tensor([0, 2, -100], device=x.device), label_smoothing=0.2), True),
}


@needs_cuda
@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_ops_on_the_gpu_match_the_cpu(case):
    fn, differentiable = GPU_CASES[case]
    rng = np.random.default_rng(4)
    arrays = [rng.permutation(12).reshape(3, 4) * 0.3 - 1.6, rng.standard_normal((3, 4))]
    results = []
    for device in ("cpu", "cuda"):
        xs = [ta.tensor(a, dtype=ta.float64, device=device, requires_grad=differentiable) for a in arrays]
        out = fn(*xs)
        assert out.device == device
        if differentiable:
            w = np.random.default_rng(9).standard_normal(out.shape)
            out.backward(ta.tensor(w, dtype=ta.float64, device=device))
        results.append((out.numpy(), [x.grad.numpy() if x.grad is not None else None for x in xs]))
    (cpu, cpu_grads), (gpu, gpu_grads) = results
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-12)
    for c, g in zip(cpu_grads, gpu_grads):
        assert (c is None) == (g is None)
        if c is not None:
            np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12)


@needs_cuda
def test_transformer_encoder_copies_a_layer_on_the_gpu():
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True, activation=nn.GELU(approximate="tanh"), norm_first=True).to("cuda")
    enc = nn.TransformerEncoder(layer, 2)
    p0, p1 = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert p0.is_cuda and p0._array is not p1._array and p0._array is not layer.linear1.weight._array
    np.testing.assert_array_equal(p0.numpy(), layer.linear1.weight.numpy())
    copied = copy.deepcopy(ta.tensor([1.0, 2.0], device="cuda"))
    assert copied.is_cuda and copied.tolist() == [1.0, 2.0]


def test_einsum_result_never_aliases_its_operand():
    x = ta.zeros(3, 3)
    for equation in ("ij->ij", "ii->i", "ij->ji", "ij"):
        y = ta.einsum(equation, x)
        y.data[...] = 7  # numpy's einsum returns views for these; ours are copies, as a new tensor must be
        assert x.numpy().max() == 0
