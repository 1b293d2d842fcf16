"""Inputs that look odd but that PyTorch accepts are accepted here too: numpy scalars as sizes, zero-size
layers and batches, mixed float dtypes in mse_loss, negative seeds, every dtype a tensor holds, zero-element
inits. Each row of ACCEPTED is such a call with its result written out here and, where torch is installed,
compared with PyTorch's. (Input that is wrong is a clear error: tests/test_errors.py.)
"""
import math
import warnings

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.testing import gradcheck


def r(*shape, dtype=np.float32, seed=0):
    """A tensor of fixed random values."""
    return ta.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# (id, call, expected): `call(L)` runs with L = tinyattn or torch (their names agree); `expected` is the
# result as numpy data, a shape tuple, or a dtype name; with torch installed, PyTorch's result must agree.

X24 = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
Y3 = np.random.default_rng(4).standard_normal(3).astype(np.float32)
Y31 = np.random.default_rng(5).standard_normal((3, 1)).astype(np.float32)
LOGITS = np.random.default_rng(6).standard_normal((3, 5)).astype(np.float32)


def _np_layer_norm(x, eps=1e-5):
    x = x.astype(np.float64)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def _np_cross_entropy(logits, target, ignore_index=-100):
    z = logits.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    keep = target != ignore_index
    return -logp[np.arange(len(target))[keep], target[keep]].mean()


def _sdpa_empty_batch_grads(L):
    q, k, v = (L.zeros(0, 3, 4, requires_grad=True) for _ in range(3))
    L.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward()
    return tuple(t.grad.shape for t in (q, k, v))


def _mse_mixed_dtypes(L):
    x = L.tensor(Y3, requires_grad=True)
    loss = L.nn.functional.mse_loss(x, L.tensor(Y3.astype(np.float64) * 2))
    loss.backward()
    return loss, x.grad


def _linear_zero_in_backward(L):
    x = L.zeros(2, 0, requires_grad=True)
    layer = L.nn.Linear(0, 3)
    layer(x).sum().backward()
    return tuple(x.grad.shape), tuple(layer.weight.grad.shape), layer.bias.grad


Q = np.random.default_rng(7).standard_normal((2, 3, 4)).astype(np.float32)


def _np_attention(q, scale):
    s = scale * q.astype(np.float64) @ q.astype(np.float64).swapaxes(-1, -2)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ q


def _mse_broadcast(L):
    with pytest.warns(UserWarning, match=r"target size .*\(3,\).* input size .*\(3, 1\)|\[3\].*\[3, 1\]"):
        return L.nn.functional.mse_loss(L.tensor(Y31), L.tensor(Y3))


def _kaiming_zero_element(L):
    w = L.zeros(0, 3)
    with pytest.warns(UserWarning, match=r"Initializing zero-element tensors is a no-op"):
        out = L.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert out is w
    return tuple(out.shape)


def _gradcheck_one_tensor(L):
    check = L.autograd.gradcheck if L.__name__ == "torch" else L.testing.gradcheck
    x = L.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)  # float64
    return check(lambda t: t * t, x)


def _seed_reproducible(L, seed):
    L.manual_seed(seed)
    first = L.rand(4)
    L.manual_seed(seed)
    return bool((L.rand(4) == first).all())


ACCEPTED = [
    ("zeros-numpy-int", lambda L: L.zeros(np.int64(3)), np.zeros(3, np.float32)),
    ("zeros-numpy-ints-in-tuple", lambda L: L.zeros((np.int64(2), np.int32(1))), np.zeros((2, 1), np.float32)),
    ("zeros-size-0", lambda L: L.zeros(0, 3).shape, (0, 3)),
    ("zeros-python-float-dtype", lambda L: str(L.zeros(2, dtype=float).dtype).replace("torch.", ""), "float64"),
    ("full-numpy-value", lambda L: L.full((2,), np.float32(1.5)), np.full(2, 1.5, np.float32)),
    ("arange-numpy-int", lambda L: L.arange(np.int64(3)), np.arange(3)),
    ("arange-float", lambda L: L.arange(0.5), np.zeros(1, np.float32)),
    ("arange-empty", lambda L: L.arange(2, 2).shape, (0,)),
    ("tensor-range", lambda L: L.tensor(range(3)), np.arange(3)),
    ("tensor-nested-tuples", lambda L: L.tensor(((1.5, 2.0), (3.0, 4.0))), np.array([[1.5, 2.0], [3.0, 4.0]])),
    ("randint-numpy-ints", lambda L: L.randint(np.int64(5), size=(np.int64(2),)).shape, (2,)),
    ("Linear-0-in", lambda L: L.nn.Linear(0, 3)(L.zeros(2, 0)), np.zeros((2, 3), np.float32)),
    ("Linear-0-out", lambda L: L.nn.Linear(3, 0)(L.zeros(2, 3)).shape, (2, 0)),
    ("Linear-numpy-ints", lambda L: L.nn.Linear(np.int64(4), np.int64(3)).weight.shape, (3, 4)),
    ("LayerNorm-numpy-int", lambda L: L.nn.LayerNorm(np.int64(4))(L.tensor(X24)), _np_layer_norm(X24)),
    ("LayerNorm-numpy-eps", lambda L: L.nn.LayerNorm(4, eps=np.float32(1e-5))(L.tensor(X24)), _np_layer_norm(X24)),
    ("layer_norm-numpy-shape", lambda L: L.nn.functional.layer_norm(L.tensor(X24), (np.int64(4),)), _np_layer_norm(X24)),
    ("LayerNorm-size-0", lambda L: L.nn.LayerNorm(0)(L.zeros(2, 0)).shape, (2, 0)),
    ("Embedding-0-rows", lambda L: L.nn.Embedding(0, 3).weight.shape, (0, 3)),
    ("Embedding-numpy-ints", lambda L: L.nn.Embedding(np.int64(5), np.int64(2)).weight.shape, (5, 2)),
    ("MHA-numpy-ints", lambda L: L.nn.MultiheadAttention(np.int64(8), np.int64(2)).in_proj_weight.shape, (24, 8)),
    ("MHA-zero-kdim", lambda L: L.nn.MultiheadAttention(8, 2, kdim=0, vdim=8).k_proj_weight.shape, (8, 0)),
    ("Dropout-numpy-p", lambda L: L.nn.Dropout(np.float64(0.0))(L.tensor(Y3)), Y3),
    ("dropout-numpy-p", lambda L: L.nn.functional.dropout(L.tensor(Y3), np.float32(0.0)), Y3),
    ("sdpa-empty-batch-backward", _sdpa_empty_batch_grads, ((0, 3, 4),) * 3),
    ("sdpa-no-queries", lambda L: L.nn.functional.scaled_dot_product_attention(
        L.zeros(2, 0, 4), L.zeros(2, 3, 4), L.zeros(2, 3, 4)).shape, (2, 0, 4)),
    ("cross_entropy-numpy-ignore-index", lambda L: L.nn.functional.cross_entropy(
        L.tensor(LOGITS), L.tensor(np.array([1, 2, 3])), ignore_index=np.int64(2)),
     _np_cross_entropy(LOGITS, np.array([1, 2, 3]), ignore_index=2)),
    ("mse_loss-float32-float64", _mse_mixed_dtypes,
     (np.mean((Y3 - 2.0 * Y3.astype(np.float64)) ** 2), 2 * (Y3 - 2.0 * Y3.astype(np.float64)) / 3)),
    ("mse_loss-int-target", lambda L: L.nn.functional.mse_loss(L.tensor(Y3), L.tensor(np.array([1, 2, 3]))),
     np.mean((Y3.astype(np.float64) - np.array([1, 2, 3])) ** 2)),
    ("mse_loss-broadcast-warns", _mse_broadcast, np.mean((Y31.astype(np.float64) - Y3) ** 2)),
    ("softmax-numpy-dim", lambda L: L.tensor(X24).softmax(dim=np.int64(-1)).shape, (2, 4)),
    ("sum-numpy-dim", lambda L: L.tensor(X24).sum(dim=np.int64(0)), X24.sum(0)),
    ("index-numpy-int", lambda L: L.tensor(X24)[np.int64(1)], X24[1]),
    ("reshape-numpy-int", lambda L: L.tensor(X24).reshape(np.int64(8)), X24.reshape(8)),
    ("permute-negative-dims", lambda L: L.tensor(X24).permute(-1, 0), X24.T),
    ("permute-0d", lambda L: L.tensor(1.5).permute(()).shape, ()),
    ("flatten-0d", lambda L: L.tensor(1.5).flatten(-1, 0).shape, (1,)),
    ("flatten-one-dim", lambda L: L.tensor(X24).flatten(1, 1).shape, (2, 4)),
    ("flatten-negative-dims", lambda L: L.tensor(X24).flatten(-2, -1), X24.reshape(8)),
    ("expand-minus-one-existing", lambda L: L.tensor(Y3).reshape(1, 3).expand(2, -1), np.stack([Y3, Y3])),
    ("expand-numpy-ints", lambda L: L.tensor(Y3).expand(np.int64(2), np.int64(3)).shape, (2, 3)),
    ("kaiming-zero-element-warns", _kaiming_zero_element, (0, 3)),
    ("xavier-zero-rows", lambda L: L.nn.init.xavier_uniform_(L.zeros(0, 3)).shape, (0, 3)),
    ("gradcheck-one-tensor", _gradcheck_one_tensor, True),
    ("dropout-bool-p", lambda L: L.nn.functional.dropout(L.tensor(Y3), True), np.zeros(3)),
    ("dropout-tensor-p", lambda L: L.nn.functional.dropout(L.tensor(Y3), L.tensor(0.0)), Y3),
    ("Conv1d-1-tuples", lambda L: L.nn.Conv1d(2, 3, (3,), stride=(2,), padding=(1,))(L.zeros(1, 2, 7)).shape, (1, 3, 4)),
    ("Conv1d-numpy-ints", lambda L: L.nn.Conv1d(np.int64(2), np.int64(3), np.int64(3)).weight.shape, (3, 2, 3)),
    ("manual_seed-negative", lambda L: _seed_reproducible(L, -1), True),
    ("manual_seed-numpy-int", lambda L: _seed_reproducible(L, np.int64(7)), True),
    ("manual_seed-bool", lambda L: _seed_reproducible(L, True), True),
    ("manual_seed-uint64-max", lambda L: _seed_reproducible(L, 2**64 - 1), True),
    ("LayerNorm-empty-batch", lambda L: L.nn.LayerNorm(4)(L.zeros(0, 4)).shape, (0, 4)),
    ("MHA-empty-batch", lambda L: L.nn.MultiheadAttention(8, 2, batch_first=True)(
        L.zeros(0, 3, 8), L.zeros(0, 3, 8), L.zeros(0, 3, 8))[0].shape, (0, 3, 8)),
    ("Linear-0-in-backward", _linear_zero_in_backward, ((2, 0), (3, 0), np.full(3, 2.0))),
    ("full-tensor-value", lambda L: L.full((2,), L.tensor(1.5)), np.full(2, 1.5)),
    ("cross_entropy-empty-batch", lambda L: L.nn.functional.cross_entropy(L.zeros(0, 5), L.tensor(np.zeros(0, np.int64))),
     np.nan),
    ("sdpa-numpy-scale", lambda L: L.nn.functional.scaled_dot_product_attention(
        L.tensor(Q), L.tensor(Q), L.tensor(Q), scale=np.float32(0.5)), _np_attention(Q, 0.5)),
]


def _as_numpy(result):
    if isinstance(result, tuple) and not all(isinstance(n, (int, np.integer)) for n in result):
        return tuple(_as_numpy(x) for x in result)
    if hasattr(result, "detach"):
        return result.detach().numpy()
    if hasattr(result, "numpy"):
        return result.numpy()
    return result


def _assert_same(got, want):
    if isinstance(want, str) or (isinstance(want, tuple) and all(isinstance(n, (int, np.integer)) for n in want)):
        assert tuple(got) == want if isinstance(want, tuple) else got == want
    elif isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, expected", [pytest.param(c, e, id=i) for i, c, e in ACCEPTED])
def test_accepted_like_pytorch(call, expected):
    _assert_same(_as_numpy(call(ta)), expected)


@pytest.mark.parametrize("call, expected", [pytest.param(c, e, id=i) for i, c, e in ACCEPTED])
def test_accepted_by_pytorch_too(call, expected):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns on zero-element inits
        _assert_same(_as_numpy(call(torch)), expected)


def test_accepted_ids_are_unique():
    ids = [row[0] for row in ACCEPTED]
    assert len(ids) == len(set(ids))


def test_mse_loss_mixed_dtypes_result_and_grad_dtypes():
    loss, grad = _mse_mixed_dtypes(ta)
    assert loss.dtype == ta.float64  # promoted, as in PyTorch
    assert grad.dtype == ta.float32  # a gradient has its tensor's dtype


def test_mse_loss_same_shapes_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(r(3, 1), r(3, 1))


def test_negative_seeds_wrap_into_uint64_as_in_pytorch():
    """PyTorch seeds with seed mod 2**64: -1 and 2**64 - 1 are one seed, and differ from 1."""
    def draw(seed):
        ta.manual_seed(seed)
        return ta.rand(5).numpy()

    np.testing.assert_array_equal(draw(-1), draw(2**64 - 1))
    np.testing.assert_array_equal(draw(-(2**63)), draw(2**63))
    assert not np.array_equal(draw(-1), draw(1))


@pytest.mark.parametrize("dtype", [ta.float32, ta.float64, ta.int32, ta.int64, ta.bool, "float32", float, int, bool,
                                   np.float16, np.uint8, np.int8])
def test_every_tensor_dtype_passes_the_dtype_check(dtype):
    """as_dtype refuses only what no tensor holds: the factories, .to, Tensor() and cast take the rest."""
    want = np.dtype(dtype)
    assert ta.zeros(2, dtype=dtype).dtype == want
    assert ta.tensor([1, 0], dtype=dtype).dtype == want
    assert ta.Tensor([1, 0], dtype=dtype).dtype == want
    if not isinstance(dtype, str):  # .to("...") names a device
        assert r(2).to(dtype).dtype == want
    assert r(2).to(dtype=dtype).dtype == want
    assert ta.functional.cast(r(2), dtype).dtype == want


def test_xavier_on_an_empty_square_weight_warns_and_does_nothing():
    """A (0, 0) weight has no fan: PyTorch divides by zero; tinyattn warns, as kaiming_uniform_ does."""
    w = ta.zeros(0, 0)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert nn.init.xavier_uniform_(w) is w
    assert w.shape == (0, 0)


def test_zero_element_inits_are_silent_for_nonempty_tensors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = nn.init.kaiming_uniform_(ta.zeros(3, 4), a=math.sqrt(5))
        nn.init.xavier_uniform_(ta.zeros(3, 4))
    assert np.all(np.abs(w.numpy()) <= 1 / 2) and np.any(w.numpy() != 0)  # U(-1/√4, 1/√4)


def test_conv1d_without_input_channels_gives_its_bias():
    """in_channels=0 (PyTorch allows it): no weight to draw, the bias bound is 0, so the output is 0."""
    conv = nn.Conv1d(0, 3, 3)
    y = conv(ta.zeros(2, 0, 5))
    assert y.shape == (2, 3, 3)
    np.testing.assert_array_equal(y.numpy(), 0)


def test_gradcheck_takes_one_tensor_as_its_only_input():
    """Not its rows: a wrong backward for the whole tensor is still caught."""
    from tinyattn.testing import GradcheckError

    x = r(2, 3, dtype=np.float64).requires_grad_()
    assert gradcheck(lambda t: t.exp(), x)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(2, 3\)\)"):
        gradcheck(lambda t: t.detach() * t, x)  # the gradient misses one factor
