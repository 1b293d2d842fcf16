"""The short paths of the per-op hot spots (issue 22: integer scalars, iteration, view/reshape, stack, randint,
small kernels on one thread) give what the general paths give: values, dtypes, errors, version counters and
gradients."""
import numba
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import backend
from tinyattn.functional.shape import Unbind, _resolved_shape
from tinyattn.testing import gradcheck

INT_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_tensor_with_python_int_matches_the_general_path(dtype):
    """`i + 1` takes the short path; a numpy scalar operand takes the general one: same values and dtype."""
    for shape in ((), (3,)):
        t = ta.tensor(np.arange(1, 1 + int(np.prod(shape))).reshape(shape).astype(dtype))
        for op in (lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: b - a,
                   lambda a, b: a // b, lambda a, b: a < b, lambda a, b: a == b):
            fast, general = op(t, 2), op(t, np.int64(2))
            assert fast.dtype == general.dtype == op(t._array, np.asarray(2, dtype)).dtype
            np.testing.assert_array_equal(fast.numpy(), general.numpy())
            assert fast.shape == shape
        assert (t / 2).dtype == np.float32  # true division of integers is float32, as before
        assert (t + 0.5).dtype == np.float32  # an int tensor and a float: the general path's float32


def test_int_short_path_keeps_errors_and_other_kinds():
    t = ta.tensor(np.array([1, 2], dtype=np.int8))
    with pytest.raises(OverflowError):  # 300 does not fit int8 (NumPy's error, on both paths)
        t + 300
    with pytest.raises(OverflowError):
        t + np.asarray(300).item()
    b = ta.tensor([True, False])
    assert (b + 1).dtype == (b + np.int64(1)).dtype  # bool tensors stay on the general path
    f = ta.tensor([1.5], requires_grad=True)
    y = (f + 2) * 3
    y.sum().backward()
    assert y.dtype == np.float32 and f.grad.numpy().tolist() == [3.0]


def test_zero_d_index_tensor_as_python_index():
    data = np.arange(100, dtype=np.uint16)
    i = ta.randint(50, (4,))[2]
    np.testing.assert_array_equal(data[i:i + 8], data[int(i):int(i) + 8])
    assert isinstance((i + 8).__index__(), int)


def test_iteration_values_dtypes_and_views():
    t = ta.tensor(np.array([5, -3, 7], dtype=np.int32))
    items = list(t)
    assert [x.item() for x in items] == [5, -3, 7] and all(x.dtype == np.int32 and x.shape == () for x in items)
    m = ta.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    rows = list(m)
    rows[1].add_(1)  # a row is a view: the change is seen by m and counted on m's counter
    assert m.numpy()[1].tolist() == [4.0, 5.0, 6.0] and m._version == 1
    with pytest.raises(TypeError):
        list(ta.tensor(1.0))
    assert ta.unbind(m, -1)[2].numpy().tolist() == [2.0, 6.0]
    with pytest.raises(ValueError):
        ta.unbind(m, 2)


def test_unbind_memory_order_matches_argsort():
    """Unbind's memory order (a stable sort of the strides) is what np.argsort(kind='stable') gave."""
    from tinyattn.autograd.graph import Context

    for a in (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)).transpose(2, 0, 1), np.zeros((3, 1, 1)), np.zeros((4, 3))[:, ::2],
              np.zeros((2, 3, 4))[:, ::-1]):
        ctx = Context((False, False))
        Unbind.forward(ctx, a, 0)
        order = tuple(np.argsort([-abs(s) for s in a.strides], kind="stable"))
        assert Unbind._memory_order(ctx.strides) == (None if order == tuple(range(a.ndim)) else order)


def test_unbind_gradient_of_a_permuted_tensor():
    x = ta.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda x: ta.unbind(x.permute(2, 0, 1), 0)[1] * 2, (x,))
    assert gradcheck(lambda x: sum(r * (i + 1) for i, r in enumerate(x)), (x,))


@pytest.mark.parametrize("shape,new", [((2, 3, 4), (-1,)), ((2, 3, 4), (6, -1)), ((2, 3, 4), (4, 6)),
                                       ((0, 3), (3, 0)), ((0, 3), (-1, 3)), ((0, 3), (3, -1)), ((1,), ()),
                                       ((2, 3), (3, -1, 1)), ((), (1, 1)), ((2, 3, 4), (-2, 12))])
def test_reshape_shape_resolution_matches_numpy(shape, new):
    want = np.empty(shape).reshape(new).shape
    got = _resolved_shape(shape, new)
    assert got is None or got == want
    assert ta.zeros(*shape).reshape(new).shape == want


@pytest.mark.parametrize("new", [(5,), (-1, -1), (-1, 0), (2, -1, 5), (-2, -1)])
def test_reshape_errors_unchanged(new):
    with pytest.raises(ValueError):
        ta.zeros(2, 3, 4).reshape(new)


def test_view_shares_counter_and_refuses_a_copy():
    x = ta.zeros(2, 3, 4)
    v = x.view(-1)
    vv = v.view(4, 6)
    vv.add_(1)
    assert x._version == v._version == vv._version == 1 and x.numpy().sum() == 24
    with pytest.raises(RuntimeError, match="view"):
        x.transpose(0, 2).view(-1)
    s = x[:, 1]  # a view (not contiguous): flattening it needs a copy
    with pytest.raises(RuntimeError, match="view"):
        s.view(-1)
    assert x.view(2, 3, 4) is x
    with pytest.raises(TypeError):
        x.view(2.0, 12)
    assert x.view(True, 24).shape == (1, 24)  # bools count as ints, as before


def test_stack_of_memmap_rows(tmp_path):
    path = tmp_path / "d.bin"
    np.arange(200, dtype=np.uint16).tofile(path)
    data = np.memmap(path, dtype=np.uint16, mode="r")
    rows = [ta.from_numpy(data[k:k + 8].astype(np.int64)) for k in (3, 50, 7)]
    out = ta.stack(rows)
    want = np.stack([r.numpy() for r in rows])
    assert type(out._array) is np.ndarray and out.dtype == np.int64 and out.shape == (3, 8)
    np.testing.assert_array_equal(out.numpy(), want)
    assert out._array.base is None  # a fresh array, not a view of a row
    with pytest.raises(TypeError, match="dtypes differ"):
        ta.stack([rows[0], rows[1].float()])
    with pytest.raises(ValueError, match="same shape"):
        ta.stack([rows[0], rows[1][:4]])


def test_stack_gradient_and_dims():
    rng = np.random.default_rng(1)
    a, b = (ta.tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(2))
    assert gradcheck(lambda a, b: ta.stack([a, b * 2]), (a, b))
    assert gradcheck(lambda a, b: ta.stack([a, b], dim=-1), (a, b))
    s = ta.stack([ta.tensor(1.0), ta.tensor(2.0)])
    assert s.shape == (2,) and s.numpy().tolist() == [1.0, 2.0]


def test_randint_short_path_draws_what_the_general_path_draws():
    ta.manual_seed(7)
    fast = ta.randint(1000, (3, 4))
    ta.manual_seed(7)
    general = ta.randint(0, 1000, (3, 4))
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert fast.dtype == general.dtype == np.int64 and not fast.requires_grad and fast.is_leaf
    g1, g2 = ta.Generator().manual_seed(3), ta.Generator().manual_seed(3)
    np.testing.assert_array_equal(ta.randint(2**63, (5,), generator=g1).numpy(),
                                  ta.randint(0, 2**63, (5,), generator=g2).numpy())
    for bad, err in (((0, (3,)), ValueError), ((2**63 + 1, (3,)), ValueError), ((5, (-1,)), ValueError),
                     ((5, (2.0,)), TypeError), ((True, (3,)), TypeError), ((5, 3), TypeError)):
        with pytest.raises(err):
            ta.randint(*bad)


def test_run_switches_to_one_thread_and_restores():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    before = ta.get_num_threads()
    try:
        ta.set_num_threads(2)
        seen = []
        backend._run(10, lambda: seen.append(numba.get_num_threads()))
        assert seen == [1] and numba.get_num_threads() == 2
        backend._run(backend.SERIAL_WORK, lambda: seen.append(numba.get_num_threads()))
        assert seen == [1, 2]

        def fails():
            raise KeyError("kernel")

        with pytest.raises(KeyError):
            backend._run(10, fails)
        assert numba.get_num_threads() == 2  # restored after a kernel that raised
        ta.set_num_threads(1)
        backend._run(10, lambda: seen.append(numba.get_num_threads()))
        assert seen[-1] == 1 and ta.get_num_threads() == 1
    finally:
        ta.set_num_threads(before)


def test_ops_without_a_gradient_match_function_apply():
    """add/sub/mul of operands none of which needs a gradient skip Function.apply: same values, dtypes, shapes,
    fresh results, and the study tools still see every op."""
    from tinyattn.autograd.function import observe
    from tinyattn.functional import elementwise as E

    rng = np.random.default_rng(2)
    x = ta.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    r = ta.tensor(rng.standard_normal((3,)).astype(np.float32))
    i = ta.tensor(np.array(4, dtype=np.int64))
    for op, fn in ((E.add, E.Add), (E.sub, E.Sub), (E.mul, E.Mul)):
        for a, b in ((x, r), (x, 2), (3, x), (i, 1), (5, i), (i, i), (i, 0.5)):
            fast = op(a, b)
            general = fn.apply(*E.operands(op.__name__, a, b))
            assert fast.dtype == general.dtype and fast.shape == general.shape and type(fast._array) is np.ndarray
            np.testing.assert_array_equal(fast.numpy(), general.numpy())
            assert fast.is_leaf and not fast.requires_grad
    y = i + 1
    y.add_(1)  # the result is its own memory
    assert i.item() == 4 and y.item() == 6 and y.shape == ()
    w = ta.tensor([1.0, 2.0], requires_grad=True)
    out = (w * 3 + x[0, :2]) - 1  # a tensor that needs a gradient still records
    out.sum().backward()
    assert out.grad_fn is not None and w.grad.numpy().tolist() == [3.0, 3.0]

    seen = []

    class Watch:
        def on_apply(self, cls, args, out, start, end):
            seen.append(cls.__name__)

        def on_backward(self, node, grad, start, end):
            pass

    handle = observe(Watch())
    try:
        i + 1, x * 2, x - r
    finally:
        handle.remove()
    assert seen == ["Add", "Mul", "Sub"]
