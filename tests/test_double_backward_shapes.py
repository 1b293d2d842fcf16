"""Double backward (create_graph=True) of the reductions, shape ops, indexing/selection ops, tril/triu,
embedding and the device move: gradgradcheck of every Function of reduction.py, shape.py, shape_ops.py,
indexing.py, selection.py, triangular.py, sparse.py and device.py on small float64 inputs, a few exact
second-derivative values, and comparisons with PyTorch."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import autograd
from tinyattn.functional.device import ToDevice
from tinyattn.functional.sparse import EmbeddingBackward
from tinyattn.testing import gradgradcheck


def leaf(shape, seed=0, spread=False):
    """float64 leaf of `shape`; spread: well-separated values (no ties, no element near another)."""
    rng = np.random.default_rng(100 + seed)  # not gradcheck's default_rng(0) draws: with x equal to its weights w,
    n = int(np.prod(shape))                   # H·w = H·x = 0 for a norm (degree-1 homogeneous), hiding its Hessian
    if spread:
        values = rng.permutation(n) * 0.37 - n * 0.15 + rng.uniform(0.02, 0.05, n)
    else:
        values = rng.standard_normal(n)
    return ta.tensor(values.reshape(shape), requires_grad=True)


def idx(values):
    return ta.tensor(np.asarray(values, dtype=np.int64))


# (name, fn of the inputs, input shapes, spread) for one-input ops
UNARY = [
    # reduction.py
    ("sum_dims_keepdim", lambda x: x.sum((0, 2), keepdim=True), (2, 2, 3), False),
    ("mean_dim", lambda x: x.mean(1), (2, 3, 2), False),
    ("mean_all_keepdim", lambda x: x.mean((0, 1), keepdim=True), (3, 3), False),
    ("amax_dims", lambda x: x.amax((0, 2)), (2, 2, 3), True),
    ("amin_keepdim", lambda x: x.amin(1, keepdim=True), (3, 4), True),
    ("max_all", lambda x: x.max(), (3, 3), True),
    ("var_dim", lambda x: x.var(1), (3, 4), False),
    ("var_all_biased", lambda x: ta.var(x, correction=0), (3, 3), False),
    ("std_keepdim", lambda x: x.std(0, keepdim=True), (3, 3), False),
    ("prod_dim", lambda x: x.prod(1), (3, 4), False),
    ("prod_all", lambda x: x.prod(), (2, 3), False),
    ("prod_keepdim_with_a_zero", lambda x: (x * ta.tensor([[1.0, 0.0, 1.0]], dtype=ta.float64)).prod(1, keepdim=True), (3, 3), False),
    ("cumsum", lambda x: ta.cumsum(x, 1), (3, 4), False),
    ("cumprod", lambda x: ta.cumprod(x, 0), (4, 2), False),
    ("logsumexp", lambda x: ta.logsumexp(x, (0, 1)), (2, 3, 2), False),
    ("logcumsumexp", lambda x: ta.logcumsumexp(x, 1), (2, 4), False),
    ("vector_norm_2", lambda x: ta.linalg.vector_norm(x, 2, 1), (3, 4), False),
    ("vector_norm_3", lambda x: ta.linalg.vector_norm(x, 3, (0, 1), keepdim=True), (3, 3), True),
    ("vector_norm_1", lambda x: ta.linalg.vector_norm(x, 1, 0), (3, 3), True),
    ("vector_norm_inf", lambda x: ta.linalg.vector_norm(x, float("inf"), 1), (3, 3), True),
    ("vector_norm_0", lambda x: ta.linalg.vector_norm(x, 0, 1) + x.sum(), (3, 3), True),
    # selection.py
    ("max_dim", lambda x: x.max(1).values, (3, 4), True),
    ("min_dim_keepdim", lambda x: x.min(0, keepdim=True).values, (3, 4), True),
    ("sort_descending", lambda x: x.sort(1, descending=True).values * ta.tensor([1.0, 2.0, 3.0], dtype=ta.float64), (3, 3), True),
    ("topk", lambda x: x.topk(2, 0).values, (4, 3), True),
    ("kthvalue", lambda x: x.kthvalue(2, 1).values, (3, 4), True),
    ("cummax", lambda x: x.cummax(1).values, (2, 5), True),
    ("clamp_numbers", lambda x: x.clamp(-0.5, 0.6) * x, (3, 4), True),
    # triangular.py
    ("tril", lambda x: x.tril(-1), (2, 3, 3), False),
    ("triu", lambda x: x.triu(1) * x, (3, 4), False),
    # shape.py
    ("getitem_int_slice", lambda x: x[1, ::2], (3, 4), False),
    ("getitem_all_ints", lambda x: x[2, 1] * x, (3, 4), False),
    ("getitem_none_ellipsis", lambda x: x[None, ..., 1:], (2, 3), False),
    ("getitem_fancy_repeated", lambda x: x[[0, 2, 0, 0], 1:], (3, 3), False),
    ("getitem_two_arrays", lambda x: x[idx([1, 1, 0]), idx([2, 2, 3])], (2, 4), False),
    ("getitem_bool_mask", lambda x: x[ta.tensor([[True, False, True], [False, True, True]])], (2, 3), False),
    ("getitem_bool_rows", lambda x: x[ta.tensor([True, False, True])], (3, 3), False),
    ("contiguous", lambda x: x.t().contiguous() * x.t(), (3, 3), False),
    # shape_ops.py
    ("flip", lambda x: x.flip(0, 1), (3, 4), False),
    ("roll", lambda x: x.roll((1, -1), (0, 1)), (3, 4), False),
    ("roll_flat", lambda x: x.roll(2), (3, 3), False),
    ("repeat", lambda x: x.repeat(2, 1, 2), (2, 3), False),
    ("diagonal", lambda x: x.diagonal(1, 0, 2), (3, 2, 4), False),
    ("diagonal_below", lambda x: x.diagonal(-1), (4, 3), False),
    ("diag_of_vector", lambda x: ta.diag(x, 1), (3,), False),
    ("diag_embed", lambda x: ta.diag_embed(x, -1), (2, 3), False),
    ("unfold", lambda x: x.unfold(1, 3, 2), (2, 6), False),
    ("unfold_overlapping", lambda x: x.unfold(0, 2, 1) * 2.0, (4, 2), False),
    ("chunk_second_only", lambda x: x.chunk(3, 1)[1] * x[:, :2], (3, 6), False),
    # indexing.py
    ("gather_repeated", lambda x: ta.gather(x, 1, idx([[0, 0], [3, 1], [2, 2]])), (3, 4), False),
    ("take", lambda x: ta.take(x, idx([[0, 5], [5, 11]])), (3, 4), False),
    ("take_along_dim", lambda x: ta.take_along_dim(x, idx([[1], [0]]), 1), (2, 3), False),
    ("index_select_repeated", lambda x: ta.index_select(x, 0, idx([2, 0, 2])), (3, 3), False),
    ("masked_select", lambda x: ta.masked_select(x, ta.tensor([True, False, True, True])), (3, 4), False),
    ("index_fill", lambda x: ta.index_fill(x, 1, idx([0, 2]), -1.0) * x, (2, 3), False),
]


@pytest.mark.parametrize("name, fn, shape, spread", UNARY, ids=[u[0] for u in UNARY])
def test_double_backward_of_one_input_ops(name, fn, shape, spread):
    gradgradcheck(fn, [leaf(shape, spread=spread)], name=name)


def test_split_stack_cat_unbind_with_unused_pieces():
    x, y = leaf((2, 4)), leaf((2, 2), seed=1)
    gradgradcheck(lambda x: x.split([1, 3], 1), [x], name="split")
    gradgradcheck(lambda x: x.split(3, 1)[1] * x[:, :1], [x], name="split, a piece unused")
    gradgradcheck(lambda x: x.unbind(1)[2] * x.unbind(1)[0], [x], name="unbind, pieces unused")
    gradgradcheck(lambda x, y: ta.cat([y, x, y * y], 1), [x, y], name="cat")
    gradgradcheck(lambda x, y: ta.stack([x[:, :2], y * x[:, 2:]], 2), [x, y], name="stack")


def test_scatter_family_with_both_inputs():
    x, src = leaf((3, 4)), leaf((3, 3), seed=1)  # src larger than index: the rest gets zero gradient
    index = idx([[1, 0], [3, 3], [0, 2]])  # a place written twice (scatter_add adds up)
    gradgradcheck(lambda x, s: ta.scatter(x * x, 1, idx([[1, 0], [3, 2], [0, 2]]), s), [x, src], name="scatter")
    gradgradcheck(lambda x, s: ta.scatter_add(x, 1, index, s * s), [x, src], name="scatter_add")
    gradgradcheck(lambda x: ta.scatter(x, 0, idx([[2, 0, 1, 1]]), value=1.5) * x, [x], name="scatter value")
    s = leaf((3, 2), seed=2)
    for reduce, include_self in [("sum", True), ("sum", False), ("mean", True), ("mean", False)]:
        gradgradcheck(lambda x, s: ta.scatter_reduce(x * x, 1, index, s * s, reduce, include_self=include_self),
                      [x, s], name=f"scatter_reduce {reduce} {include_self}")
    xs, ss = leaf((3, 4), spread=True), leaf((3, 2), seed=2, spread=True)
    for reduce in ("amax", "amin"):
        gradgradcheck(lambda x, s: ta.scatter_reduce(x * x, 1, index, s * s, reduce), [xs, ss], name=reduce)


def test_index_put_family_with_both_inputs():
    x = leaf((4, 2))
    src = leaf((3, 2), seed=1)
    rows = idx([3, 0, 3])
    gradgradcheck(lambda x, s: ta.index_add(x, 0, rows, s * s, alpha=2.0), [x, src], name="index_add")
    gradgradcheck(lambda x, s: ta.index_copy(x * x, 0, idx([3, 0, 1]), s), [x, src], name="index_copy")
    v = leaf((3,), seed=2)
    gradgradcheck(lambda x, v: ta.index_put(x * x, (rows, idx([1, 0, 1])), v * v, accumulate=True), [x, v],
                  name="index_put accumulate")
    gradgradcheck(lambda x, v: ta.index_put(x * x, (idx([3, 0, 2]), idx([1, 0, 1])), v), [x, v], name="index_put")
    gradgradcheck(lambda x, v: ta.index_put(x, (idx([1, 2]),), v[:2].reshape(2, 1) * v[2]), [x, v],
                  name="index_put broadcast values")


def test_masked_scatter_with_both_inputs():
    x, src = leaf((2, 3)), leaf((5,), seed=1)  # 3 of src's 5 elements are used
    mask = ta.tensor([[True, False, True], [False, False, True]])
    gradgradcheck(lambda x, s: ta.masked_scatter(x * x, mask, s * s), [x, src], name="masked_scatter")


def test_clamp_with_tensor_bounds():
    x = leaf((3, 3), spread=True)
    lo = ta.tensor([[-1.0], [0.2], [-5.0]], dtype=ta.float64, requires_grad=True)
    hi = ta.tensor([0.5, 3.0, 1.1], dtype=ta.float64, requires_grad=True)
    gradgradcheck(lambda x, lo, hi: ta.clamp(x, lo, hi) * x, [x, lo, hi], name="clamp tensors")


def test_embedding_and_its_backward_op():
    w = leaf((4, 3))
    index = idx([[1, 3], [1, 0]])  # row 1 twice
    gradgradcheck(lambda w: ta.nn.functional.embedding(index, w) * w[:2].reshape(2, 1, 3), [w], name="embedding")
    g = leaf((2, 2, 3), seed=1)
    gradgradcheck(lambda g: EmbeddingBackward.apply(g * g, index._array, 4), [g], name="EmbeddingBackward")


def test_to_device_on_the_host():
    x = leaf((2, 3))
    assert x.to("cpu") is x
    gradgradcheck(lambda x: ToDevice.apply(x * x, "cpu"), [x], name="ToDevice")


CUDA_CASES = [  # the ops whose double backward builds constants from arrays saved on the host (on_host ops)
    ("prod", lambda x, i: x.prod(1)),
    ("cumprod", lambda x, i: ta.cumprod(x, 1)),
    ("logcumsumexp", lambda x, i: ta.logcumsumexp(x, 1)),
    ("getitem_fancy", lambda x, i: x[[1, 0, 1]] * x[0]),
    ("gather_scatter", lambda x, i: ta.scatter(x * x, 1, i, ta.gather(x, 1, i))),
    ("masked_scatter", lambda x, i: ta.masked_scatter(x * x, x > 0, x.flip(0))),
]


@pytest.mark.background(order=1)  # the simulator: no kernel shared with the rest (tests/background.py)
@pytest.mark.skipif(not ta.cuda.is_available(), reason="no CUDA GPU and no numba-cuda simulator")
@pytest.mark.parametrize("name, fn", CUDA_CASES, ids=[c[0] for c in CUDA_CASES])
def test_double_backward_on_cuda(name, fn):
    x = leaf((2, 3)).detach().to("cuda").requires_grad_(True)
    i = idx([[0, 2], [1, 1]]).to("cuda")
    gradgradcheck(lambda x: fn(x, i), [x], name=f"{name} on cuda")


def test_second_derivative_of_a_repeated_index_reaches_dy():
    """x[idx] with a repeated index: g = scatter-add of v; d(w·g)/dv = w read at idx (the GetItem of the
    IndexAccumulate in the double backward), d(w·g)/dx = 0."""
    x = leaf((4,))
    v = ta.tensor([1.0, 2.0, 3.0], dtype=ta.float64, requires_grad=True)
    (g,) = autograd.grad(x[[2, 0, 2]], x, v, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [2.0, 0.0, 4.0, 0.0])
    w = ta.tensor([10.0, 20.0, 30.0, 40.0], dtype=ta.float64)
    (dv,) = autograd.grad((g * w).sum(), v)
    np.testing.assert_allclose(dv.numpy(), [30.0, 10.0, 30.0])


def test_third_derivative_through_indexing_and_reductions():
    """The differentiable backwards are made of ops that have one too: a third derivative works.
    f = Σ x[[0, 0, 2]]³ + Σ_i cumsum(x)_i²: d³f/dx³ contracted with ones is 6 per read of x_j."""
    x = ta.tensor([0.5, -1.0, 2.0], dtype=ta.float64, requires_grad=True)
    f = (x[[0, 0, 2]] ** 3).sum() + (ta.cumsum(x, 0) ** 2).sum()
    (g1,) = autograd.grad(f, x, create_graph=True)
    (g2,) = autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = autograd.grad(g2.sum(), x)
    np.testing.assert_allclose(g3.numpy(), [12.0, 0.0, 6.0])


def test_amax_ties_share_the_gradient_under_create_graph_too():
    x = ta.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], dtype=ta.float64, requires_grad=True)
    v = ta.tensor([1.0, 4.0], dtype=ta.float64, requires_grad=True)
    (g,) = autograd.grad(x.amax(1), x, v, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [[0.0, 0.5, 0.5], [2.0, 0.0, 2.0]])
    (dv,) = autograd.grad((g * ta.tensor([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]], dtype=ta.float64)).sum(), v)
    np.testing.assert_allclose(dv.numpy(), [3.0, 20.0])  # the shares, read back through dy


def test_second_derivative_of_prod_and_var_by_hand():
    x = ta.tensor([2.0, 3.0, 5.0], dtype=ta.float64, requires_grad=True)
    (g,) = autograd.grad(x.prod(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [15.0, 10.0, 6.0])
    (h0,) = autograd.grad(g[0], x)  # d/dx (x1 x2) = (0, x2, x1)
    np.testing.assert_allclose(h0.numpy(), [0.0, 5.0, 3.0])
    (g,) = autograd.grad(x.var(), x, create_graph=True)  # 2 (x - x̄) / (n - 1) = x - x̄
    (h,) = autograd.grad(g[1], x)  # d/dx (x1 - x̄) = e1 - 1/3
    np.testing.assert_allclose(h.numpy(), [-1 / 3, 2 / 3, -1 / 3])


TORCH_CASES = [
    ("prod", lambda m, x: m.prod(x, 1)),
    ("var", lambda m, x: m.var(x, 0)),
    ("logsumexp", lambda m, x: m.logsumexp(x, 1)),
    ("cumprod", lambda m, x: m.cumprod(x, 1)),
    ("logcumsumexp", lambda m, x: m.logcumsumexp(x, 0)),
    ("norm3", lambda m, x: m.linalg.vector_norm(x, 3, 1)),
    ("gather_squared", lambda m, x: m.gather(x * x, 1, m.tensor([[0, 0], [2, 1]]))),
    ("getitem_repeated_cubed", lambda m, x: x[[1, 1, 0]] ** 3),
    ("sort_times_x", lambda m, x: m.sort(x, 1).values * x),
    ("unfold_squared", lambda m, x: (x * x).unfold(1, 2, 1)),
]


@pytest.mark.parametrize("name, fn", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_hessian_vector_products_match_torch(name, fn):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xv = rng.uniform(0.5, 1.5, (2, 3)) * np.array([1.0, -1.0, 1.0])
    ours_x = ta.tensor(xv, requires_grad=True)
    theirs_x = torch.tensor(xv, requires_grad=True)
    ours_y, theirs_y = fn(ta, ours_x), fn(torch, theirs_x)
    v = rng.standard_normal(tuple(ours_y.shape))
    u = rng.standard_normal(xv.shape)
    (g,) = autograd.grad(ours_y, ours_x, ta.tensor(v), create_graph=True)
    (h,) = autograd.grad((g * ta.tensor(u)).sum(), ours_x)
    (tg,) = torch.autograd.grad(theirs_y, theirs_x, torch.tensor(v), create_graph=True)
    (th,) = torch.autograd.grad((tg * torch.tensor(u)).sum(), theirs_x)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-9, atol=1e-12)
