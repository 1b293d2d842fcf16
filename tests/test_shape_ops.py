"""Shape, indexing and bookkeeping ops against PyTorch: split/chunk/narrow/flip/..., gather/scatter/index_*,
Size, dtypes and their names, .type()/.to(), Python-protocol behaviour (__index__, iteration), creation."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.testing import gradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(1)
BASE = RNG.standard_normal((2, 3, 4))


def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def _against_torch(fa, ft, a=BASE):
    x = ta.tensor(a, dtype=ta.float64, requires_grad=True)
    tx = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    ya, yt = _as_tuple(fa(x)), _as_tuple(ft(tx))
    assert len(ya) == len(yt)
    weights = [RNG.standard_normal(tuple(b.shape)) for b in yt]
    for p, q in zip(ya, yt):
        assert tuple(p.shape) == tuple(q.shape)
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), atol=1e-12)
    sum((p * ta.tensor(w)).sum() for p, w in zip(ya, weights)).backward()
    sum((q * torch.tensor(w)).sum() for q, w in zip(yt, weights)).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-12)
    assert gradcheck(fa, [ta.tensor(a, dtype=ta.float64, requires_grad=True)])


IDX = np.array([[[0, 1, 2, 0], [1, 2, 0, 2]]])  # (1, 2, 4), values < 3, no place twice along dim 1
SHAPES = {
    "split_int": (lambda x: x.split(3, dim=2), lambda x: x.split(3, dim=2)),
    "split_list": (lambda x: x.split([1, 2], dim=1), lambda x: x.split([1, 2], dim=1)),
    "split_fn_neg_dim": (lambda x: ta.split(x, 2, -1), lambda x: torch.split(x, 2, -1)),
    "split_used_once": (lambda x: x.split(1, 1)[1], lambda x: x.split(1, 1)[1]),
    "chunk": (lambda x: x.chunk(3, 2), lambda x: x.chunk(3, 2)),
    "chunk_fn": (lambda x: ta.chunk(x, 2, dim=1), lambda x: torch.chunk(x, 2, dim=1)),
    "tensor_split": (lambda x: ta.tensor_split(x, 3, dim=2), lambda x: torch.tensor_split(x, 3, dim=2)),
    "tensor_split_idx": (lambda x: x.tensor_split([1, 3], dim=2), lambda x: x.tensor_split([1, 3], dim=2)),
    "unbind": (lambda x: ta.unbind(x, 1), lambda x: torch.unbind(x, 1)),
    "narrow": (lambda x: x.narrow(2, 1, 2), lambda x: x.narrow(2, 1, 2)),
    "flip": (lambda x: x.flip(0, 2), lambda x: x.flip((0, 2))),
    "flip_fn": (lambda x: ta.flip(x, [-1]), lambda x: torch.flip(x, [-1])),
    "t": (lambda x: x[0].t(), lambda x: x[0].t()),
    "T_mT": (lambda x: x.mT + x[0].T, lambda x: x.mT + x[0].T),
    "movedim": (lambda x: x.movedim(0, -1), lambda x: x.movedim(0, -1)),
    "movedim_tuple": (lambda x: ta.movedim(x, (0, 1), (2, 0)), lambda x: torch.movedim(x, (0, 1), (2, 0))),
    "swapaxes": (lambda x: x.swapaxes(0, 2), lambda x: x.swapaxes(0, 2)),
    "roll": (lambda x: x.roll(2, 1), lambda x: x.roll(2, 1)),
    "roll_dims": (lambda x: x.roll((1, -2), (0, 2)), lambda x: x.roll((1, -2), (0, 2))),
    "roll_flat": (lambda x: ta.roll(x, 5), lambda x: torch.roll(x, 5)),
    "repeat": (lambda x: x.repeat(2, 1, 1, 2), lambda x: x.repeat(2, 1, 1, 2)),
    "tile": (lambda x: x.tile((2,)), lambda x: x.tile((2,))),
    "repeat_interleave": (lambda x: x.repeat_interleave(2, dim=1), lambda x: x.repeat_interleave(2, dim=1)),
    "repeat_interleave_flat": (lambda x: x.repeat_interleave(2), lambda x: x.repeat_interleave(2)),
    "repeat_interleave_counts": (lambda x: x.repeat_interleave(ta.tensor([0, 2, 1]), dim=1),
                                 lambda x: x.repeat_interleave(torch.tensor([0, 2, 1]), dim=1)),
    "unflatten": (lambda x: x.unflatten(2, (2, -1)), lambda x: x.unflatten(2, (2, -1))),
    "view_as_reshape_as": (lambda x: x.reshape_as(x[0, 0].unsqueeze(0).expand(6, 4)).view_as(x),
                           lambda x: x.reshape_as(x[0, 0].unsqueeze(0).expand(6, 4)).view_as(x)),
    "squeeze_tuple": (lambda x: x[:1, :, :1].squeeze((0, 2)), lambda x: x[:1, :, :1].squeeze((0, 2))),
    "flatten": (lambda x: x.flatten(1), lambda x: x.flatten(1)),
    "diag": (lambda x: x[0].diag(1), lambda x: x[0].diag(1)),
    "diag_embed": (lambda x: ta.diag(x[0, 0], -1), lambda x: torch.diag(x[0, 0], -1)),
    "diagonal": (lambda x: x.diagonal(0, 1, 2), lambda x: x.diagonal(0, 1, 2)),
    "list_index": (lambda x: x[:, [-1], :], lambda x: x[:, [-1], :]),
    "gather": (lambda x: x.gather(1, ta.tensor(IDX)), lambda x: x.gather(1, torch.tensor(IDX))),
    "gather_last": (lambda x: ta.gather(x, -1, ta.tensor([[[3], [0], [1]]])),
                    lambda x: torch.gather(x, -1, torch.tensor([[[3], [0], [1]]]))),
    "take_along_dim": (lambda x: ta.take_along_dim(x, ta.tensor([[[3, 0]]]), 2),
                       lambda x: torch.take_along_dim(x, torch.tensor([[[3, 0]]]), 2)),
    "take": (lambda x: x.take(ta.tensor([[0, 5], [23, 5]])), lambda x: x.take(torch.tensor([[0, 5], [23, 5]]))),
    "index_select": (lambda x: x.index_select(2, ta.tensor([3, 0, 3])), lambda x: x.index_select(2, torch.tensor([3, 0, 3]))),
    "masked_select": (lambda x: x.masked_select(ta.tensor([True, False, True, True])),
                      lambda x: x.masked_select(torch.tensor([True, False, True, True]))),
    "scatter_src": (lambda x: ta.zeros(2, 3, 4, dtype=ta.float64).scatter(1, ta.tensor(IDX[:, :, :3]), x[:1, :2, :3]),
                    lambda x: torch.zeros(2, 3, 4, dtype=torch.float64).scatter(1, torch.tensor(IDX[:, :, :3]),
                                                                                 x[:1, :2, :3])),
    "scatter_into_x": (lambda x: x.scatter(2, ta.tensor([[[1, 3]]]), 0.5),
                       lambda x: x.scatter(2, torch.tensor([[[1, 3]]]), 0.5)),
    "scatter_add": (lambda x: x[:, :2].scatter_add(1, ta.tensor(IDX[:, :, :3] % 2), x[:1, :2, :3]),
                    lambda x: x[:, :2].scatter_add(1, torch.tensor(IDX[:, :, :3] % 2), x[:1, :2, :3])),
    "index_add": (lambda x: x.index_add(1, ta.tensor([2, 0, 2]), x * 3, alpha=0.5),
                  lambda x: x.index_add(1, torch.tensor([2, 0, 2]), x * 3, alpha=0.5)),
    "index_copy": (lambda x: x.index_copy(2, ta.tensor([3, 1]), x[:, :, :2] * 2),
                   lambda x: x.index_copy(2, torch.tensor([3, 1]), x[:, :, :2] * 2)),
    "index_fill": (lambda x: x.index_fill(1, ta.tensor([0, 2]), -1.5),
                   lambda x: x.index_fill(1, torch.tensor([0, 2]), -1.5)),
    "where_scalar": (lambda x: ta.where(x > 0, x, 0.0), lambda x: torch.where(x > 0, x, 0.0)),
    "where_method": (lambda x: x.where(x > 0, -x), lambda x: x.where(x > 0, -x)),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_shape_op_against_torch(name):
    _against_torch(*SHAPES[name])


def test_scatter_with_a_larger_src_and_reduce():
    """src larger than index: only index's block of src is read; its gradient is zero elsewhere (PyTorch's
    backward raises a shape error here). reduce='add'/'multiply' values match PyTorch's."""
    x = ta.zeros(2, 3, dtype=ta.float64)
    src = ta.tensor(BASE[0], requires_grad=True)
    idx = ta.tensor([[2, 0]])
    y = x.scatter(1, idx, src)
    expected = torch.zeros(2, 3, dtype=torch.float64).scatter(1, torch.tensor([[2, 0]]), torch.tensor(BASE[0]))
    np.testing.assert_array_equal(y.detach().numpy(), expected.numpy())
    (y * ta.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=ta.float64)).sum().backward()
    assert src.grad.numpy()[0, :2].tolist() == [3.0, 1.0] and src.grad.numpy().sum() == 4.0
    assert gradcheck(lambda s: ta.zeros(2, 3, dtype=ta.float64).scatter_add(1, idx, s),
                     [ta.tensor(BASE[0], requires_grad=True)])
    base, tbase = ta.tensor(BASE[0]), torch.tensor(BASE[0])
    index = [[0, 1, 0], [1, 1, 2]]
    for reduce in ("add", "multiply"):
        got = base.scatter(1, ta.tensor(index), ta.tensor(BASE[1]), reduce=reduce)
        want = tbase.scatter(1, torch.tensor(index), torch.tensor(BASE[1]), reduce=reduce)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_nanogpt_masked_fill_and_generate_indexing():
    """att.masked_fill(bias[:, :, :T, :T] == 0, -inf) with a float (1, 1, T, T) buffer; logits[:, [-1], :]."""
    T = 3
    bias = ta.tril(ta.ones(4, 4)).view(1, 1, 4, 4)
    att = ta.randn(2, 2, T, T, requires_grad=True)
    y = att.masked_fill(bias[:, :, :T, :T] == 0, float("-inf")).softmax(dim=-1)
    y.sum().backward()
    assert np.isinf(y.detach().numpy()).sum() == 0 and (y.detach().numpy()[..., 0, 1:] == 0).all()
    assert (att.grad.numpy()[..., 0, 1:] == 0).all()
    filled = ta.zeros(2, 3).masked_fill(ta.tensor([True, False, True]), ta.tensor(2.0))
    assert filled.tolist() == [[2.0, 0.0, 2.0]] * 2
    logits = ta.randn(2, 5, 7, requires_grad=True)
    last = logits[:, [-1], :]
    assert tuple(last.shape) == (2, 1, 7)
    last.sum().backward()
    assert logits.grad.numpy()[:, -1].sum() == 14 and logits.grad.numpy()[:, :-1].sum() == 0


def test_split_and_chunk_are_views_sharing_versions():
    x = ta.arange(12.0).reshape(3, 4)
    a, b = x.split([1, 3], dim=1)
    b[0, 0] = 100.0
    assert x[0, 1].item() == 100.0 and b._version == x._version == 1
    assert [tuple(c.shape) for c in ta.arange(6).chunk(4)] == [(2,), (2,), (2,)]
    assert [tuple(c.shape) for c in ta.arange(5).chunk(3)] == [(2,), (2,), (1,)]
    assert [tuple(c.shape) for c in torch.arange(13).split(5)] == [tuple(c.shape) for c in ta.arange(13).split(5)]
    n = x.narrow(0, 1, 1)
    n.fill_(0.0)
    assert x[1].tolist() == [0.0] * 4
    f = x.flip(0)
    f.fill_(7.0)  # a copy, as in PyTorch
    assert x[0, 0].item() == 0.0
    q, k, v = ta.randn(2, 3, 12, requires_grad=True).split(4, dim=2)
    (q * 2 + v).sum().backward()  # k gets no gradient: zeros in its slice


def test_unbinding_or_iterating_a_vector_gives_views():
    # as in PyTorch: each element is a 0-d view of the vector (an in-place change shows through)
    x = ta.arange(3.0)
    x.unbind(0)[0].add_(5)
    for v in x:
        v.mul_(2)
    assert x.tolist() == [10.0, 2.0, 4.0] and x._version == 4
    z = ta.arange(3.0, requires_grad=True)
    a, _, c = z * 1
    (a * 2 + c).backward()
    assert z.grad.tolist() == [2.0, 0.0, 1.0]


def test_shape_op_errors():
    x = ta.ones(2, 3)
    with pytest.raises(ValueError, match=r"split: split sizes \[1, 1\] must .* sum to the size 3"):
        x.split([1, 1], dim=1)
    with pytest.raises(ValueError, match="chunk: chunks must be greater than 0"):
        x.chunk(0)
    with pytest.raises(ValueError, match="narrow: start \\(2\\) \\+ length \\(2\\) exceeds"):
        x.narrow(1, 2, 2)
    with pytest.raises(ValueError, match="t: expects a tensor with <= 2 dimensions"):
        ta.ones(2, 2, 2).t()
    with pytest.raises(ValueError, match="repeat: the number of repeat dims"):
        x.repeat(2)
    with pytest.raises(ValueError, match="unflatten"):
        x.unflatten(1, (2, 2))
    with pytest.raises(ValueError, match="is out of range"):
        x.flip(2)


def test_index_op_errors_and_dtypes():
    x = ta.zeros(2, 3)
    with pytest.raises(ValueError, match=r"gather: index value 3 is out of range \[0, 3\)"):
        x.gather(1, ta.tensor([[3]]))
    with pytest.raises(TypeError, match="gather: index must be an integer"):
        x.gather(1, ta.tensor([[1.0]]))
    with pytest.raises(ValueError, match="gather: index .* must have as many dims"):
        x.gather(1, ta.tensor([1]))
    with pytest.raises(ValueError, match="larger than the input"):
        x.gather(1, ta.zeros(3, 1, dtype=ta.long))
    with pytest.raises(ValueError, match="index_select: index must be 1-d"):
        x.index_select(0, ta.zeros(1, 1, dtype=ta.long))
    with pytest.raises(TypeError, match="scatter: expected src"):
        x.scatter(0, ta.zeros(1, 1, dtype=ta.long))
    assert ta.tensor([[0, 1], [2, 0]]).nonzero().tolist() == [[0, 1], [1, 0]]
    rows, cols = ta.tensor([[0, 1], [2, 0]]).nonzero(as_tuple=True)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0] and rows.dtype == ta.int64
    assert [t.tolist() for t in ta.where(ta.tensor([False, True, True]))] == [[1, 2]]
    assert ta.argwhere(ta.tensor([0, 3])).tolist() == [[1]]
    assert ta.where(ta.tensor([True, False]), 1, 0).dtype == ta.int64
    assert ta.where(ta.tensor([True, False]), 1.0, 0).dtype == ta.float32
    assert ta.repeat_interleave(ta.tensor([1, 2])).tolist() == [0, 1, 1]


def test_inplace_index_ops_follow_inplace_rules():
    x = ta.zeros(2, 3)
    out = x.scatter_(1, ta.tensor([[2], [0]]), 1.0)
    assert out is x and x.tolist() == [[0, 0, 1], [1, 0, 0]] and x._version == 1
    x.index_fill_(0, ta.tensor([1]), 5.0)
    assert x[1].tolist() == [5.0] * 3
    x.index_add_(1, ta.tensor([0, 0]), ta.ones(2, 2))
    assert x[:, 0].tolist() == [2.0, 7.0]
    x.scatter_add_(0, ta.tensor([[1, 1, 1]]), ta.ones(1, 3))
    assert x[1].tolist() == [8.0, 6.0, 6.0]
    leaf = ta.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scatter_: a leaf tensor that requires grad"):
        leaf.scatter_(0, ta.tensor([0]), 1.0)
    # recorded: the gradient flows to src and to the elements of the old value that were kept
    src = ta.tensor([2.0, 3.0], requires_grad=True)
    base = ta.ones(4, requires_grad=True)
    y = base * 1
    y.index_copy_(0, ta.tensor([1, 3]), src)
    (y * ta.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert src.grad.tolist() == [2.0, 4.0] and base.grad.tolist() == [1.0, 0.0, 3.0, 0.0]


def test_size_type():
    x = ta.zeros(2, 3)
    s = x.size()
    assert isinstance(s, ta.Size) and isinstance(x.shape, ta.Size) and isinstance(s, tuple)
    assert s == (2, 3) and s == torch.Size([2, 3]) and s.numel() == 6 and ta.Size([]).numel() == 1
    assert isinstance(s[1:], ta.Size) and isinstance(s + (4,), ta.Size) and isinstance((1,) + s, ta.Size)
    assert repr(s) == "tinyattn.Size([2, 3])" and str(s) == "(2, 3)"
    assert x.size(-1) == 3 and x.size(0) == 2
    B, T = x.size()
    assert (B, T) == (2, 3)
    with pytest.raises(IndexError, match="size: dimension out of range"):
        x.size(2)
    assert ta.zeros(s).shape == s and ta.ones(ta.Size([4])).shape == (4,) and ta.zeros([2, 1]).shape == (2, 1)
    assert x.dim() == x.ndimension() == 2 and x.numel() == x.nelement() == ta.numel(x) == 6
    assert x.element_size() == 4 and x.double().element_size() == 8 and ta.zeros(2, dtype=ta.int8).element_size() == 1


def test_dtype_aliases_and_names():
    assert ta.float is ta.float32 or ta.float == ta.float32
    assert ta.double == ta.float64 and ta.long == ta.int64 and ta.int == ta.int32 and ta.half == ta.float16
    assert ta.short == ta.int16 and ta.uint8 == np.uint8 and ta.bool == np.bool_
    for dtype, name in [(ta.float32, "torch.FloatTensor"), (ta.float64, "torch.DoubleTensor"),
                        (ta.float16, "torch.HalfTensor"), (ta.int64, "torch.LongTensor"), (ta.int32, "torch.IntTensor"),
                        (ta.int16, "torch.ShortTensor"), (ta.int8, "torch.CharTensor"), (ta.uint8, "torch.ByteTensor"),
                        (ta.bool, "torch.BoolTensor")]:
        t = ta.zeros(2, dtype=dtype)
        assert t.type() == name
        assert ta.zeros(2).type(name).dtype == dtype
    x = ta.tensor([1.5, -2.5])
    assert x.int().dtype == ta.int32 and x.half().dtype == ta.float16 and x.bool().tolist() == [True, True]
    assert x.short().dtype == ta.int16 and x.byte().dtype == ta.uint8 and x.char().dtype == ta.int8
    assert x.type(ta.float64).dtype == ta.float64 and x.type(ta.float32) is x
    assert x.is_floating_point() and not x.long().is_floating_point() and ta.is_floating_point(x)
    assert ta.is_tensor(x) and not ta.is_tensor([1.0])
    with pytest.raises(TypeError, match="bfloat16 is not supported"):
        ta.zeros(2, dtype=ta.bfloat16)
    with pytest.raises(TypeError, match="bfloat16 is not supported"):
        x.to(ta.bfloat16)
    with pytest.raises(ValueError, match="invalid type"):
        x.type("torch.NoSuchTensor")
    assert ta.zeros(1, dtype="torch.float64").dtype == ta.float64


def test_default_dtype():
    assert ta.get_default_dtype() == ta.float32
    try:
        ta.set_default_dtype(ta.float64)
        assert ta.tensor([1.5]).dtype == ta.float64 and ta.zeros(2).dtype == ta.float64
        assert ta.arange(0, 1, 0.5).dtype == ta.float64 and ta.linspace(0, 1, 3).dtype == ta.float64
        assert ta.tensor([1]).dtype == ta.int64
        with pytest.raises(TypeError, match="set_default_dtype"):
            ta.set_default_dtype(ta.int64)
    finally:
        ta.set_default_dtype(ta.float32)
    assert ta.zeros(1).dtype == ta.float32


def test_to_and_memory_methods():
    x = ta.tensor([1.0, 2.0])
    assert x.to("cpu") is x and x.to("cpu", non_blocking=True) is x
    c = x.to("cpu", copy=True)
    assert c is not x and c.tolist() == x.tolist()
    assert x.to("cpu", ta.float64, non_blocking=True).dtype == ta.float64
    assert x.to(dtype=ta.int64, copy=True).dtype == ta.int64
    assert x.pin_memory() is x and x.is_pinned() is False and x.share_memory_() is x and x.cpu().tolist() == [1.0, 2.0]
    y = ta.ones(2, requires_grad=True) * 2
    assert y.detach_() is y and not y.requires_grad and y.grad_fn is None
    assert ta.ones(2).requires_grad_().requires_grad
    assert ta.tensor(3.5).item() == 3.5 and ta.tensor([[1, 2]]).tolist() == [[1, 2]]


def test_python_protocols():
    assert [10, 20, 30][ta.tensor(2)] == 30 and list(range(ta.tensor(3))) == [0, 1, 2]
    assert "ab"[ta.tensor([1])] == "b"
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][ta.tensor(1.0)]
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][ta.tensor([0, 1])]
    rows = list(ta.tensor([[1, 2], [3, 4]]))
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(ta.tensor(1.0))
    a, b = ta.tensor([1.0, 2.0], requires_grad=True) * 1
    (a * 3 + b).backward()
    assert 2 in ta.tensor([1, 2]) and 5 not in ta.tensor([1, 2]) and ta.tensor(1) in ta.tensor([1, 2])
    assert len(ta.zeros(4, 2)) == 4


def test_creation_functions_against_torch():
    for fa, ft in [
        (lambda m: m.empty(2, 3).shape, None),
        (lambda m: m.linspace(0, 1, 5), "same"), (lambda m: m.linspace(-1, 1, 1), "same"),
        (lambda m: m.linspace(0, 10, 4, dtype=m.long), "same"),
        (lambda m: m.logspace(0, 2, 3), "same"),
        (lambda m: m.arange(0, 1, 0.25), "same"), (lambda m: m.arange(5, 0, -2), "same"),
        (lambda m: m.arange(m.tensor(3)), "same"),
        (lambda m: m.eye(2, 3), "same"), (lambda m: m.eye(3), "same"),
        (lambda m: m.full_like(m.ones(2, dtype=m.float64), 7), "same"),
        (lambda m: m.empty_like(m.ones(2, 2)).shape, None),
        (lambda m: m.ones(2, 2).new_zeros(3), "same"), (lambda m: m.ones(2, dtype=m.long).new_ones((2, 1)), "same"),
        (lambda m: m.ones(2).new_full((2,), 3), "same"), (lambda m: m.ones(2).new_tensor([1, 2]), "same"),
        (lambda m: m.ones(2).new_empty(3).shape, None),
        (lambda m: m.as_tensor([1, 2], dtype=m.float32), "same"),
        (lambda m: m.tensor([1, 2], dtype=m.float64, requires_grad=True).requires_grad, None),
    ]:
        a, t = fa(ta), fa(torch)
        if ft is None:
            assert tuple(a) == tuple(t) if isinstance(a, tuple) else a == t
        else:
            assert str(a.dtype) == str(t.dtype).replace("torch.", "")
            np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-6)
    arr = np.arange(3.0)
    shared = ta.as_tensor(arr)
    arr[0] = 9
    assert shared[0].item() == 9.0
    with pytest.raises(NotImplementedError, match="out="):
        ta.zeros(2, out=ta.zeros(2))
    with pytest.raises(TypeError, match="eye: n must be an int"):
        ta.eye(2.0)


def test_counting_ops_against_torch():
    a = [3, 1, 3, 2, 1, 1]
    for kw in ({}, {"return_inverse": True}, {"return_counts": True}, {"return_inverse": True, "return_counts": True}):
        got, want = _as_tuple(ta.unique(ta.tensor(a), **kw)), _as_tuple(torch.unique(torch.tensor(a), **kw))
        assert [g.tolist() for g in got] == [w.tolist() for w in want]
    got = ta.unique_consecutive(ta.tensor([1, 1, 2, 2, 3, 1]), return_inverse=True, return_counts=True)
    want = torch.unique_consecutive(torch.tensor([1, 1, 2, 2, 3, 1]), return_inverse=True, return_counts=True)
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert ta.bincount(ta.tensor([0, 2, 2]), minlength=4).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="bincount: input must contain non-negative"):
        ta.bincount(ta.tensor([-1]))
    for off in (-1, 0, 1):
        assert ta.tril_indices(3, 4, off).tolist() == torch.tril_indices(3, 4, off).tolist()
        assert ta.triu_indices(3, 4, off).tolist() == torch.triu_indices(3, 4, off).tolist()
    seq, vals = [1, 3, 5, 7], [3, 6, 0, 9]
    for right in (False, True):
        assert ta.searchsorted(ta.tensor(seq), ta.tensor(vals), right=right).tolist() == \
            torch.searchsorted(torch.tensor(seq), torch.tensor(vals), right=right).tolist()
        assert ta.bucketize(ta.tensor(vals), ta.tensor(seq), right=right).tolist() == \
            torch.bucketize(torch.tensor(vals), torch.tensor(seq), right=right).tolist()


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid_against_torch(indexing):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0])
    x, y = ta.tensor(a, dtype=ta.float64, requires_grad=True), ta.tensor(b, dtype=ta.float64, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    got, want = ta.meshgrid(x, y, indexing=indexing), torch.meshgrid(tx, ty, indexing=indexing)
    w = RNG.standard_normal(tuple(want[0].shape))
    for g, t in zip(got, want):
        np.testing.assert_array_equal(g.detach().numpy(), t.detach().numpy())
    (got[0] * ta.tensor(w) + got[1] * 2 * ta.tensor(w)).sum().backward()
    (want[0] * torch.tensor(w) + want[1] * 2 * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy())


def test_histogram_and_histc_against_torch():
    a = RNG.standard_normal(40).astype(np.float32)
    for kw in ({}, {"density": True}, {"range": (-1.0, 1.0)}):
        got, want = ta.histogram(ta.tensor(a), 6, **kw), torch.histogram(torch.tensor(a), 6, **kw)
        np.testing.assert_allclose(got.hist.numpy(), want.hist.numpy(), rtol=1e-5)
        np.testing.assert_allclose(got.bin_edges.numpy(), want.bin_edges.numpy(), rtol=1e-6, atol=1e-6)
        assert got.hist.dtype == ta.float32
    for args in ((5,), (4, -0.5, 0.5)):
        np.testing.assert_array_equal(ta.histc(ta.tensor(a), *args).numpy(), torch.histc(torch.tensor(a), *args).numpy())
    with pytest.raises(TypeError, match="histogram: expected a floating-point"):
        ta.histogram(ta.tensor([1, 2]))


JOINS = {
    "hstack": (lambda x: ta.hstack([x[0], x[1]]), lambda x: torch.hstack([x[0], x[1]])),
    "hstack_1d": (lambda x: ta.hstack([x[0, 0], x[1, 1]]), lambda x: torch.hstack([x[0, 0], x[1, 1]])),
    "vstack": (lambda x: ta.vstack([x[0], x[1, 0]]), lambda x: torch.vstack([x[0], x[1, 0]])),
    "dstack": (lambda x: ta.dstack([x[0], x[1]]), lambda x: torch.dstack([x[0], x[1]])),
    "column_stack": (lambda x: ta.column_stack([x[0, 0], x[1, 1]]), lambda x: torch.column_stack([x[0, 0], x[1, 1]])),
    "concat": (lambda x: ta.concat([x, x], -1) + ta.concatenate([x, x], dim=2),
               lambda x: torch.concat([x, x], -1) + torch.concatenate([x, x], dim=2)),
    "atleast": (lambda x: ta.atleast_3d(x[0]) + ta.atleast_2d(x[0, 0]).sum(), lambda x: torch.atleast_3d(x[0]) + torch.atleast_2d(x[0, 0]).sum()),
    "trace": (lambda x: x[0].trace(), lambda x: x[0].trace()),
    "cdist": (lambda x: ta.cdist(x[0], x[1] + 0.1), lambda x: torch.cdist(x[0], x[1] + 0.1)),
    "cdist_p1_batched": (lambda x: ta.cdist(x, x.flip(1) + 0.1, p=1), lambda x: torch.cdist(x, x.flip(1) + 0.1, p=1)),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_join_ops_against_torch(name):
    _against_torch(*JOINS[name])


def test_type_with_a_legacy_constructor():
    x = ta.tensor([1.5, 2.5])
    assert x.type(ta.LongTensor).dtype == ta.int64 and x.type(ta.DoubleTensor).dtype == ta.float64


def test_keyword_spellings():
    x = ta.arange(6).view(2, 3)
    t = torch.arange(6).view(2, 3)
    assert x.flip(dims=[0]).tolist() == t.flip(dims=[0]).tolist()
    assert [p.tolist() for p in x.split(split_size=2, dim=1)] == [p.tolist() for p in t.split(split_size=2, dim=1)]
    assert ta.gather(x, dim=1, index=ta.tensor([[2], [0]])).tolist() == \
        torch.gather(t, dim=1, index=torch.tensor([[2], [0]])).tolist()
    assert x.roll(shifts=1, dims=1).tolist() == t.roll(shifts=1, dims=1).tolist()
    assert x.movedim(source=0, destination=1).tolist() == t.movedim(source=0, destination=1).tolist()


def test_finfo_iinfo_and_constants():
    for dtype, tdtype in ((ta.float32, torch.float32), (ta.float64, torch.float64), (ta.float16, torch.float16)):
        f, t = ta.finfo(dtype), torch.finfo(tdtype)
        assert (f.min, f.max, f.eps, f.tiny, f.bits, f.resolution) == (t.min, t.max, t.eps, t.tiny, t.bits, t.resolution)
    assert ta.finfo().eps == torch.finfo().eps
    for dtype, tdtype in ((ta.int64, torch.int64), (ta.int32, torch.int32), (ta.uint8, torch.uint8)):
        i, t = ta.iinfo(dtype), torch.iinfo(tdtype)
        assert (i.min, i.max, i.bits) == (t.min, t.max, t.bits)
    with pytest.raises(TypeError, match="finfo"):
        ta.finfo(ta.int64)
    x = ta.zeros(2).masked_fill(ta.tensor([True, False]), ta.finfo(ta.float32).min)
    assert x[0].item() == torch.finfo(torch.float32).min
    assert (ta.pi, ta.e, ta.inf) == (torch.pi, torch.e, torch.inf) and ta.nan != ta.nan


def test_unary_plus_and_reversed():
    x = ta.tensor([1.0, 2.0, 3.0])
    assert (+x).tolist() == [1.0, 2.0, 3.0] and reversed(x).tolist() == [3.0, 2.0, 1.0]
    assert reversed(ta.tensor([[1, 2], [3, 4]])).tolist() == torch.tensor([[1, 2], [3, 4]]).__reversed__().tolist()


def test_one_element_integer_tensors_as_sizes():
    x = ta.arange(6)
    n = ta.tensor(2)
    assert x.view(n, -1).shape == (2, 3) and x.reshape(3, n).shape == (3, 2)
    with pytest.raises(TypeError, match="reshape: shape arguments must be ints"):
        x.reshape(ta.tensor(2.0), 3)


def test_scatter_reduce_in_place_keeps_the_old_values_for_backward():
    """amax's backward compares with the values before the write: scatter_reduce_ must not let it read the new ones."""
    a = np.array([[1.0, 5.0, 2.0], [3.0, 0.0, 4.0]])
    w = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    grads = []
    for m in (ta, torch):
        base = m.tensor(a, requires_grad=True, dtype=m.float64)
        src = m.tensor([[4.0, 1.0, 9.0]], requires_grad=True, dtype=m.float64)
        x = base * 1
        x.scatter_reduce_(0, m.tensor([[1, 0, 1]]), src, "amax")
        (x * m.tensor(w, dtype=m.float64)).sum().backward()
        grads.append((x.tolist(), base.grad.tolist(), src.grad.tolist()))
    assert grads[0] == grads[1]
