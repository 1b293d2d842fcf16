"""The graph walk: topological order, accumulation, freeing, no_grad, custom Functions."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from conftest import WrongSquare
from tinyattn.autograd import Function


def test_diamond_graph_sums_gradients_before_visiting_the_shared_node():
    x = ta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * x  # used twice below
    y = (h * 2 + h.exp()).sum()
    y.backward()
    xs = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), 2 * xs * (2 + np.exp(xs**2)), rtol=1e-5)


def test_same_tensor_twice_in_one_op():
    x = ta.tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.item() == pytest.approx(6.0)
    y = ta.tensor([1.0, 2.0], requires_grad=True)
    (y + y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 2.0])


def test_leaf_gradients_accumulate_across_backward_calls():
    x = ta.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])


def test_leaf_grads_do_not_alias_each_other():
    a = ta.tensor([1.0, 2.0], requires_grad=True)
    b = ta.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()  # Add hands the same array to both inputs
    a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])


def test_second_backward_through_freed_graph_raises_and_retain_graph_allows_it():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_on_non_scalar_needs_a_gradient():
    x = ta.randn(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()
    y.backward(ta.ones(2, 3))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match output shape \(2, 3\)"):
        (x * 2).backward(ta.ones(3))


def test_no_grad_records_nothing_and_restores_state():
    x = ta.randn(3, requires_grad=True)
    with ta.no_grad():
        y = x * 2
        with ta.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    assert ta.is_grad_enabled()

    @ta.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        ta.tensor([1, 2], requires_grad=True)
    t = ta.arange(3)
    with pytest.raises(TypeError, match="int64"):
        t.requires_grad = True


def test_detach_cuts_the_graph():
    x = ta.randn(3, requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad
    z = (y * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), y.numpy())


def test_comparisons_carry_no_gradient():
    x = ta.randn(4, requires_grad=True)
    m = x > 0
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), x.numpy() > 0)
    np.testing.assert_array_equal((x == x).numpy(), np.ones(4, bool))


def test_gradients_keep_their_tensors_dtype_through_mixed_dtype_ops():
    lin = nn.Linear(4, 3)
    x = ta.randn(5, 4, requires_grad=True)
    seen = []

    class Spy(ta.Function):  # records the dtype of the gradient reaching it
        @staticmethod
        def forward(ctx, t):
            return t

        @staticmethod
        def backward(ctx, g):
            seen.append(g.dtype)
            return g

    h = Spy.apply(lin(x))
    (h.amax(-1).sum() + ta.maximum(h, 0.0).sum() + F.mse_loss(h, ta.zeros(5, 3, dtype=ta.float64))).backward()
    assert seen == [np.float32]
    assert x.grad.dtype == ta.float32 and lin.weight.grad.dtype == ta.float32


class Cube(Function):
    """A user-defined Function: y = x³, dx = 3x² dy."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x**3

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return ctx.scale * 3 * x**2 * dy, None


def test_user_defined_function():
    x = ta.tensor([1.0, 2.0], dtype=ta.float64, requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name == "Cube"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 24.0])
    assert ta.testing.gradcheck(lambda t: Cube.apply(t, 2.0), [x])


def test_gradcheck_catches_a_wrong_backward():
    x = ta.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=ta.float64, requires_grad=True)
    with pytest.raises(AssertionError, match=r"gradcheck\(WrongSquare\).*input 0.*element \(\d, \d\): analytic.*numeric"):
        ta.testing.gradcheck(WrongSquare.apply, [x], name="WrongSquare")


def test_gradcheck_catches_a_backward_that_permutes_output_elements():
    # With a plain .sum() this wrong backward (dy reversed) would pass: the weight catches it.
    class Reversed(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, dy):
            return 2 * dy[::-1]

    x = ta.tensor([1.0, 2.0, 3.0], dtype=ta.float64, requires_grad=True)
    with pytest.raises(AssertionError):
        ta.testing.gradcheck(Reversed.apply, [x])


def test_gradcheck_wants_float64():
    with pytest.raises(TypeError, match="float64"):
        ta.testing.gradcheck(lambda t: t * 2, [ta.randn(3, requires_grad=True)])


def test_multi_output_function_unbind():
    x = ta.tensor(np.arange(6.0).reshape(3, 2), dtype=ta.float64, requires_grad=True)
    a, b, c = x.unbind(0)
    assert a.shape == (2,) and a.grad_fn is b.grad_fn  # one node, three outputs
    (a * 2 + c * c).sum().backward()  # b gets no gradient: its slice of dx is zero
    np.testing.assert_array_equal(x.grad.numpy(), [[2, 2], [0, 0], [8, 10]])
    y = ta.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), dtype=ta.float64, requires_grad=True)
    assert ta.testing.gradcheck(lambda t: t.unbind(1), [y], name="unbind")  # a tuple of outputs
    assert ta.testing.gradcheck(lambda t: t.unbind(2)[1] * t.unbind(2)[3], [y], name="unbind-twice")
    with ta.no_grad():
        assert all(not t.requires_grad for t in y.unbind(0))


def test_unbind_gradient_keeps_the_input_layout():
    """q, k, v = qkv.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0) (a fused attention projection):
    the stacked gradient is laid out like qkv, so permuting and reshaping it back costs no copy; values and
    gradcheck as for any unbind, with and without a slice that gets no gradient."""
    B, T, H, D = 2, 3, 2, 4
    rng = np.random.default_rng(0)
    seen = []

    class Spy(ta.autograd.Function):  # records the gradient array unbind hands back
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, dy):
            seen.append(dy)
            return dy

    def split(t):
        return Spy.apply(t.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4)).unbind(0)

    qkv = ta.tensor(rng.standard_normal((B, T, 3 * H * D)), dtype=ta.float64, requires_grad=True)
    q, k, v = split(qkv)
    (q * 1 + k * 2 + v * 3).sum().backward()
    want = np.broadcast_to(np.array([1.0, 2.0, 3.0])[:, None, None], (3, H, D)).reshape(3 * H * D)
    np.testing.assert_array_equal(qkv.grad.numpy(), np.broadcast_to(want, (B, T, 3 * H * D)))
    assert seen[-1].transpose(1, 3, 0, 2, 4).flags.c_contiguous  # permuted back: qkv's row-major layout
    qkv.grad = None
    q, k, v = split(qkv)
    (k * k).sum().backward()  # q and v get no gradient: zeros in their slices
    g = qkv.grad.numpy().reshape(B, T, 3, H, D)
    np.testing.assert_array_equal(g[:, :, 1], 2 * k.detach().numpy().transpose(0, 2, 1, 3))
    assert not g[:, :, 0].any() and not g[:, :, 2].any()
    assert ta.testing.gradcheck(lambda t: [o * (i + 1) for i, o in enumerate(split(t))], [qkv], name="qkv unbind")
    seen.clear()
    r = ta.tensor(rng.standard_normal((6, 4)), dtype=ta.float64, requires_grad=True)
    a, b = Spy.apply(r[::-1]).unbind(1)[:2]   # a negative stride: laid out by its size, as in NumPy's order K
    (a * 2 + b).sum().backward()
    assert seen[-1].flags.c_contiguous
    np.testing.assert_array_equal(r.grad.numpy(), np.broadcast_to([2.0, 1.0, 0.0, 0.0], (6, 4)))



def test_side_by_side_gradients_are_joined_as_a_view(monkeypatch):
    """A fused attention's dq, dk, dv for q, k, v = qkv.unbind(...), or qkv.split(...) viewed as heads, lie side
    by side in one buffer laid out like qkv (kernels/cpu/attention); Unbind's and Split's backward hand that
    buffer back as qkv's gradient without a copy (shape.joined_view). Same gradient as composite attention."""
    from tinyattn.functional import shape, shape_ops

    B, T, H, D = 2, 5, 2, 4
    rng = np.random.default_rng(1)
    joined, join = [], shape.joined_view

    def spy(parts, dim, sizes=None):
        out = join(parts, dim, sizes)
        joined.append(out is not None)
        return out

    monkeypatch.setattr(shape, "joined_view", spy)
    monkeypatch.setattr(shape_ops, "joined_view", spy)
    heads = {"unbind": lambda x: x.reshape(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0),
             "split": lambda x: [t.view(B, T, H, D).transpose(1, 2) for t in x.split(H * D, dim=2)]}
    w = ta.tensor(rng.standard_normal((B, H, T, D)))
    for name, make in heads.items():
        x, x2 = (ta.tensor(a, requires_grad=True) for a in [rng.standard_normal((B, T, 3 * H * D))] * 2)
        (F.scaled_dot_product_attention(*make(x), is_causal=True) * w).sum().backward()
        q, k, v = make(x2)
        s = (q @ k.transpose(-2, -1) / D ** 0.5).masked_fill(ta.tensor(np.triu(np.ones((T, T), bool), 1)),
                                                              float("-inf"))
        (F.softmax(s, dim=-1) @ v * w).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-12, err_msg=name)
        assert joined[0] and not any(joined[1:]), (name, joined)  # the fused path's join only: a view
        joined.clear()

    buf = np.arange(24.0).reshape(2, 3, 4)
    stacked = join(tuple(buf.transpose(1, 0, 2)), 1)
    assert np.shares_memory(stacked, buf) and np.array_equal(stacked, buf)
    pieces = np.split(buf, [1, 3], axis=2)
    assert np.array_equal(join(pieces, 2, [1, 2, 1]), buf)
    assert join(pieces, 2, [2, 1, 1]) is None                   # lengths that do not match
    backwards = tuple(buf.transpose(1, 0, 2))[::-1]             # each before the one before: a negative step
    assert np.array_equal(join(backwards, 1), np.stack(backwards, 1))
    assert join([buf[0], buf[0]], 0) is None                     # the same slice twice
    assert join([np.zeros(4), np.zeros(4)], 0) is None           # two allocations, never one view
    assert join([buf[0], buf[1].astype(np.float32)], 0) is None  # dtypes differ


# ---- a backward that fails leaves no partial gradient --------------------------------------------------

def _raise(g):
    raise ValueError("stop here")


def test_a_hook_that_raises_leaves_every_leaf_gradient_as_it_was():
    x = ta.tensor([0.5, -1.0, 2.0], requires_grad=True)
    w = ta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x.exp()
    h.register_hook(_raise)
    with pytest.raises(ValueError, match="stop here"):
        (h * x * w).sum().backward()  # x's direct path and w's gradient are computed before the hook runs
    assert x.grad is None and w.grad is None  # PyTorch leaves None; a half-filled grad would be wrong later
    # and a later, complete backward gives exactly the gradient, not gradient + a leftover share
    (x * w).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), w.detach().numpy())


def test_a_failed_backward_keeps_existing_gradients_unchanged():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    before = x.grad.numpy().copy()
    h = x * 2
    h.register_hook(_raise)
    with pytest.raises(ValueError):
        (h + x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), before)


def test_an_interrupt_in_a_backward_leaves_no_partial_gradient():
    class Interrupted(ta.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            raise KeyboardInterrupt  # Ctrl-C while the walk runs

    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = Interrupted.apply(x * 2) + x  # x's direct share arrives first (the Add runs before Interrupted)
    with pytest.raises(KeyboardInterrupt):
        y.sum().backward()
    assert x.grad is None


# ---- PyTorch's keywords and checks on backward, grad() and .grad --------------------------------------

def test_backward_takes_pytorchs_keywords():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    w = ta.tensor([3.0, 4.0], requires_grad=True)
    y = x * w
    y.backward(gradient=ta.tensor([1.0, 10.0]), retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 40.0])
    x.grad = w.grad = None
    h = x * 2
    (h * w).sum().backward(inputs=[w, h])  # only these get .grad: x stays None, h (a non-leaf) gets one
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(h.grad.numpy(), [3.0, 4.0])
    x.grad = None
    (x * x).sum().backward(create_graph=True)  # the gradient has a graph of its own
    assert x.grad.requires_grad and x.grad.grad_fn is not None
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2.0, 4.0])


def test_grad_takes_a_generator_of_inputs_and_refuses_non_tensor_grad_outputs():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    (g,) = ta.autograd.grad((x * x).sum(), (t for t in [x]))
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])
    with pytest.raises(TypeError, match="Tensors or None, but got list"):
        ta.autograd.grad(x * 2, [x], grad_outputs=[[1.0, 1.0]])


def test_assigning_grad_checks_type_shape_dtype_as_pytorch():
    p = ta.nn.Parameter(ta.zeros(2, 3))
    p.grad = ta.ones(2, 3)
    with pytest.raises(TypeError, match="Tensor or None"):
        p.grad = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(RuntimeError, match="different size"):
        p.grad = ta.ones(3, 2)
    with pytest.raises(RuntimeError, match="different type"):
        p.grad = ta.ones(2, 3, dtype=ta.float64)
    np.testing.assert_array_equal(p.grad.numpy(), np.ones((2, 3)))  # the refused values changed nothing
    p.grad = None
    assert p.grad is None


def test_parameter_shares_the_memory_of_its_tensor():
    t = ta.zeros(3)
    p = ta.nn.Parameter(t)
    with ta.no_grad():
        p += 1.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 1.0, 1.0])
    assert ta.nn.Parameter().shape == (0,)
