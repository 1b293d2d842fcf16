"""In-place ops and version counters: PyTorch's rules, and no silent wrong gradient.

What a wrong implementation would do here: leave a stale saved value in a backward (x.grad
silently 0), replace a Parameter behind a module's back, route a gradient to the wrong node
after an in-place op, or half-apply an op that then fails.
"""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.testing import gradcheck

from conftest import leaf


# ---- values, dtypes and shapes ------------------------------------------------------------------


@pytest.mark.parametrize("op, fn", [
    ("add_", lambda a, b: a + b), ("sub_", lambda a, b: a - b),
    ("mul_", lambda a, b: a * b), ("div_", lambda a, b: a / b),
])
def test_arithmetic_in_place_changes_the_same_array(rng, op, fn):
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32) + 3
    t = ta.tensor(a)
    alias = t.numpy()  # shares memory: an in-place op must show through it
    out = getattr(t, op)(ta.tensor(b))
    assert out is t and t._version == 1
    np.testing.assert_allclose(t.numpy(), fn(a, b), rtol=1e-6)
    np.testing.assert_allclose(alias, fn(a, b), rtol=1e-6)


def test_augmented_assignment_keeps_the_object_and_alpha(rng):
    t = ta.ones(2, 3)
    before = t
    t += 2
    t -= ta.ones(3)
    t *= 4
    t /= 2
    assert t is before and t._version == 4
    np.testing.assert_allclose(t.numpy(), np.full((2, 3), 4.0))
    t.add_(ta.ones(3), alpha=-2).sub_(1, alpha=0.5)
    np.testing.assert_allclose(t.numpy(), np.full((2, 3), 1.5))


def test_fill_zero_copy_clamp_masked_fill_values():
    t = ta.arange(6, dtype=ta.float32).reshape(2, 3)
    t = t.clone()
    t.clamp_(1, 4)
    np.testing.assert_array_equal(t.numpy(), [[1, 1, 2], [3, 4, 4]])
    t.clip_(max=3)
    np.testing.assert_array_equal(t.numpy(), [[1, 1, 2], [3, 3, 3]])
    t.masked_fill_(ta.tensor([True, False, True]), -1)
    np.testing.assert_array_equal(t.numpy(), [[-1, 1, -1], [-1, 3, -1]])
    t.copy_(ta.tensor([7.0, 8.0, 9.0], dtype=ta.float64))  # broadcast and converted to t's dtype
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), [[7, 8, 9], [7, 8, 9]])
    t.fill_(2.5)
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 2.5))
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), np.zeros((2, 3)))
    assert t._version == 6
    i = ta.zeros(3, dtype=ta.int64)
    i.fill_(2.7)  # fill_ and copy_ convert any dtype, as in PyTorch
    i.copy_(ta.tensor([1.9, -1.9, 3.0]))
    np.testing.assert_array_equal(i.numpy(), [1, -1, 3])


def test_setitem_values_and_broadcasting():
    t = ta.zeros(3, 4)
    t[0] = 1
    t[1, 1:3] = ta.tensor([2.0, 3.0])
    t[:, -1] = ta.tensor([[5.0, 6.0, 7.0]])  # a leading size-1 axis is allowed, as in numpy and PyTorch
    t[ta.tensor([2, 2])] += 1  # read, add, write back: repeated rows get one +1
    t[t == 6] = -6
    expected = np.zeros((3, 4))
    expected[0] = 1
    expected[1, 1:3] = [2, 3]
    expected[:, -1] = [5, 6, 7]
    expected[2] += 1
    expected[expected == 6] = -6
    np.testing.assert_array_equal(t.numpy(), expected)


def test_integer_results_do_not_fit_an_integer_tensor():
    t = ta.tensor([1, 2, 3])
    with pytest.raises(TypeError, match=r"add_.*float32.*int64"):
        t += 0.5
    with pytest.raises(TypeError, match=r"div_.*int64"):
        t /= 2
    t *= 2
    np.testing.assert_array_equal(t.numpy(), [2, 4, 6])
    assert t.dtype == np.int64


def test_a_failed_in_place_op_changes_nothing():
    t = ta.ones(3)
    with pytest.raises(ValueError, match=r"add_.*\(2, 3\).*\(3,\)"):
        t += ta.ones(2, 3)  # the result would not fit
    with pytest.raises(ValueError, match=r"setitem.*\(2,\).*\(3,\)"):
        t[:] = ta.ones(2)
    with pytest.raises(ValueError, match="copy_"):
        t.copy_(ta.ones(4))
    with pytest.raises(ValueError, match="read-only"):
        ta.ones(1).expand(3).add_(1)
    with pytest.raises(IndexError, match="getitem"):
        t[5] = 1.0
    np.testing.assert_array_equal(t.numpy(), np.ones(3))
    assert t._version == 0


# ---- the version counter -------------------------------------------------------------------------


def test_zeroing_a_saved_tensor_in_place_raises_at_backward_instead_of_a_silent_zero_gradient():
    # h * h saved h for its gradient; h.zero_() afterwards would turn that gradient into zeros without a word
    x = ta.randn(3, requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    h.zero_()
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*Mul.*in-place"):
        y.backward()


def test_an_optimiser_step_between_forward_and_backward_raises():
    model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2))
    opt = ta.optim.SGD(model.parameters(), lr=0.1)
    loss = (model(ta.randn(4, 3)) ** 2).sum()
    loss.backward(retain_graph=True)
    opt.step()  # changes the second weight, which the second layer saved for its input's gradient
    with pytest.raises(RuntimeError, match=r"\(2, 5\).*modified by an in-place operation"):
        loss.backward()


def test_ops_save_only_what_their_backward_needs():
    # as in PyTorch: x @ W with a constant x keeps x (for dW), not W, so changing W afterwards is fine
    w = nn.Parameter(ta.randn(3, 2))
    x = ta.randn(4, 3)
    loss = (x @ w).sum()
    with ta.no_grad():
        w.mul_(2)
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), np.repeat(x.numpy().sum(0)[:, None], 2, axis=1), rtol=1e-6)
    h = ta.randn(2, 3, requires_grad=True) * 1
    y = h.relu()  # ReLU keeps its output, not its input
    h.add_(1)
    z = h * 3  # a constant factor: Mul keeps nothing of h
    h.add_(1)
    (y.sum() + z.sum()).backward()


def test_a_change_through_a_view_or_a_detached_alias_is_seen():
    w = nn.Parameter(ta.randn(4, 3))
    x = ta.randn(5, 4, requires_grad=True)  # x's gradient needs w: the product keeps it
    out = (x @ w).sum()
    with ta.no_grad():
        w.view(-1)[0] = 1.0  # a view of the weight
    with pytest.raises(RuntimeError, match="Matmul|matmul|in-place"):
        out.backward()
    g = nn.LayerNorm(3)
    y = g(ta.randn(2, 3, requires_grad=True)).sum()
    g.state_dict()["weight"].mul_(2)  # state_dict entries are detached aliases of the parameters
    with pytest.raises(RuntimeError, match="LayerNorm"):
        y.backward()


def test_loading_weights_or_initialising_counts_as_an_in_place_change():
    lin = nn.Linear(3, 2)
    state = {k: v.numpy().copy() for k, v in lin.state_dict().items()}
    loss = lin(ta.randn(4, 3, requires_grad=True)).sum()  # the input's gradient needs the weight
    lin.load_state_dict(state)
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()
    before = lin.weight._version
    nn.init.zeros_(lin.weight)
    nn.init.normal_(lin.bias)
    assert lin.weight._version == before + 1 and lin.bias._version > 0
    assert not lin.weight.numpy().any()


def test_ops_that_save_nothing_tolerate_later_changes():
    x = ta.randn(3, requires_grad=True)
    h = x * 1
    y = (h + 1).sum()  # Add saves nothing: changing h afterwards is fine, as in PyTorch
    with ta.no_grad():
        h.add_(5)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))


def test_out_of_place_ops_do_not_bump_versions():
    x = ta.randn(3)
    _ = x + 1, x * 2, x.reshape(3, 1), x[0], x.detach()
    assert x._version == 0


# ---- leaves and Parameters --------------------------------------------------------------------------


def test_a_leaf_that_requires_grad_cannot_change_in_place_in_grad_mode():
    w = ta.randn(3, requires_grad=True)
    for change in (lambda: w.add_(1), lambda: w.zero_(), lambda: w.__setitem__(0, 1.0), lambda: w.copy_(w.detach())):
        with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*no_grad"):
            change()
    with pytest.raises(RuntimeError, match=r"view of a leaf tensor \(shape \(3,\)\)"):
        w[:2].mul_(2)
    assert w._version == 0
    with ta.no_grad():
        w[:2].mul_(0)
    assert w._version == 1 and w.numpy()[:2].tolist() == [0, 0]


def test_the_learners_update_loop_keeps_parameters_registered():
    ta.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    weight = model[0].weight
    x, y = ta.randn(8, 3), ta.randn(8, 1)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(model(x), y)
        model.zero_grad()
        loss.backward()
        with ta.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
            model[0].weight -= 0.0 * model[0].weight.grad  # attribute form: setattr gets the same Parameter back
        losses.append(loss.item())
    assert model[0].weight is weight and isinstance(weight, nn.Parameter)
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert losses[-1] < 0.5 * losses[0]


def test_module_setattr_refuses_to_replace_a_parameter_with_a_tensor():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"Linear.*'weight'.*Parameter"):
        lin.weight = lin.weight * 2
    assert isinstance(lin.weight, nn.Parameter) and "weight" in lin.state_dict()
    lin.weight = nn.Parameter(ta.zeros(2, 2))  # a new Parameter is fine
    assert "weight" in dict(lin.named_parameters())
    lin.bias = None  # None keeps the slot, as in PyTorch
    assert lin.bias is None and list(dict(lin.named_parameters())) == ["weight"]
    lin.bias = nn.Parameter(ta.zeros(2))
    assert list(dict(lin.named_parameters())) == ["weight", "bias"]
    seq = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="submodule"):
        seq.__setattr__("0", "not a module")


def test_containers_reject_what_is_not_a_module():
    with pytest.raises(TypeError, match=r"Sequential.*int.*index 1"):
        nn.Sequential(nn.Linear(2, 2), 3)
    with pytest.raises(TypeError, match=r"ModuleList.*function"):
        nn.ModuleList([lambda x: x])
    ml = nn.ModuleList()
    with pytest.raises(TypeError, match="ModuleList"):
        ml.append(ta.zeros(2))
    assert len(ml) == 0


# ---- recorded in-place ops: gradients ----------------------------------------------------------------


def test_recorded_in_place_ops_gradcheck(rng):
    def f(x, a):
        h = x * 1.0
        h *= a
        h += a * a
        h -= 0.5
        h /= 1.5 + a * a
        h[0] = a[1] * 3  # differentiable setitem
        h[1:3] += x[1:3]
        h.masked_fill_(ta.tensor([False, False, False, True, False]), 0.25)
        h.clamp_(-1.0, 1.0)
        return h

    x, a = leaf(rng, 5), leaf(rng, 5)
    assert gradcheck(f, [x, a], name="in-place chain")


def test_setitem_and_copy_send_gradients_to_the_value(rng):
    x, v = leaf(rng, 4, 3), leaf(rng, 3)
    assert gradcheck(lambda x, v: _set(x * 1, (slice(1, 3),), v), [x, v], name="setitem broadcast")
    assert gradcheck(lambda x, v: (x * 1).copy_(v), [x, v], name="copy_")
    s = leaf(rng)
    assert gradcheck(lambda x, s: (x * 1).fill_(s), [x, s], name="fill_ with a 0-d tensor")
    assert gradcheck(lambda x, s: (x * 1).masked_fill_(x > 0, s), [x, s], name="masked_fill_ with a 0-d tensor")


def _set(t, index, value):
    t[index] = value
    return t


def test_a_constant_tensor_becomes_part_of_the_graph(rng):
    w = leaf(rng, 3)
    buf = ta.zeros(2, 3, dtype=ta.float64)  # a plain tensor, no grad
    buf[0] = w * 2
    buf += w
    assert buf.requires_grad and not buf.is_leaf
    buf.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full(3, 4.0))


def test_earlier_consumers_keep_the_old_value_in_the_graph(rng):
    x, w = leaf(rng, 3), leaf(rng, 3)
    h = x * 2
    y = h + 3  # consumed h before the in-place op
    h.mul_(w)
    (y.sum() + h.sum()).backward()
    # y = 2x + 3, h' = 2x·w: dx = 2 + 2w, dw = 2x; w must get nothing through y
    np.testing.assert_allclose(x.grad.numpy(), 2 + 2 * w.numpy())
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.numpy())


def test_views_stay_consistent_through_in_place_changes(rng):
    x, w = leaf(rng, 4), leaf(rng, 2)

    def through_view(x, w):
        h = x * 2
        v = h[1:3]  # a live view of h
        v.mul_(w)  # changes h too: h must carry w's gradient
        u = h[::2]  # made after the change
        h.add_(1)  # changes v and u too: both must carry it
        return h.sum() + (v * v).sum() + u.sum()

    def out_of_place(x, w):
        h = x * 2
        h = ta.cat([h[:1], h[1:3] * w, h[3:]]) + 1
        return h.sum() + (h[1:3] * h[1:3]).sum() + h[::2].sum()

    np.testing.assert_allclose(through_view(x, w).item(), out_of_place(x, w).item())
    assert gradcheck(through_view, [x, w], name="in-place through views")


def test_augmented_assignment_on_an_indexed_slice(rng):
    x, w = leaf(rng, 3, 4), leaf(rng, 4)
    assert gradcheck(lambda x, w: _add_rows(x * 1, w), [x, w], name="h[1:] += w")
    with ta.no_grad():  # nothing recorded: views change the base directly
        base = ta.zeros(4)
        base[1:3].add_(1)
    np.testing.assert_array_equal(base.numpy(), [0, 1, 1, 0])


def _add_rows(h, w):
    h[1:] += w  # Python: v = h[1:]; v += w; h[1:] = v
    h[:, 0] *= 3
    return h


@pytest.mark.skipif(not ta.cuda.is_available(), reason="needs a GPU or the CUDA simulator")
def test_in_place_ops_on_the_gpu(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    t = ta.tensor(a, device="cuda")
    t += 1
    t.mul_(2)
    t[0] = ta.tensor([1.0, 2.0, 3.0], device="cuda")
    t.masked_fill_(t > 100, 0)
    expected = (a + 1) * 2
    expected[0] = [1, 2, 3]
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)
    x = ta.tensor(a, device="cuda", requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    h.zero_()
    with pytest.raises(RuntimeError, match="Mul"):
        y.backward()


# ---- grad mode switches ------------------------------------------------------------------------------


def test_no_grad_as_a_decorator_is_reentrant():
    @ta.no_grad()
    def countdown(n):
        assert not ta.is_grad_enabled()
        return n if n == 0 else countdown(n - 1)

    countdown(4)
    assert ta.is_grad_enabled()

    @ta.enable_grad()
    def inner(n):
        return ta.is_grad_enabled() if n == 0 else inner(n - 1)

    with ta.no_grad():
        assert inner(3)
        assert not ta.is_grad_enabled()
    assert ta.is_grad_enabled()


def test_set_grad_enabled_as_call_context_and_decorator():
    with ta.set_grad_enabled(False):
        assert not ta.is_grad_enabled()
        assert not (ta.randn(2, requires_grad=True) * 2).requires_grad
    assert ta.is_grad_enabled()
    ta.set_grad_enabled(False)
    try:
        assert not ta.is_grad_enabled()
    finally:
        ta.set_grad_enabled(True)

    @ta.set_grad_enabled(False)
    def f():
        return ta.is_grad_enabled()

    assert ta.is_grad_enabled() and f() is False and ta.is_grad_enabled()


# ---- custom Functions and grad_fn ---------------------------------------------------------------------


class WrongShape(ta.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, dy):
        return dy.sum(axis=0)  # one axis short


class TooManyGradients(ta.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, dy):
        return dy, dy


def test_a_custom_function_with_a_wrong_gradient_is_a_clear_error():
    x = ta.randn(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongShape.backward returned a gradient of shape \(3,\).*\(2, 3\)"):
        WrongShape.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match=r"TooManyGradients.backward returned 2 gradients.*1 argument"):
        TooManyGradients.apply(x).sum().backward()


def test_grad_fn_names_the_op():
    x = ta.randn(2, requires_grad=True)
    y = (x * 2).sum()
    assert repr(y.grad_fn) == "<SumBackward>"
    assert "grad_fn=<SumBackward>" in repr(y)
    assert y.grad_fn.next_functions[0][0].name == "Mul"


# ---- what a later in-place change must not reach -----------------------------------------------------


def test_index_mask_and_condition_tensors_are_read_at_forward_time():
    # each op keeps its own copy of integer/bool operands, so changing them afterwards changes nothing
    x = ta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    idx = ta.tensor([0, 0])
    y = x[idx] * ta.tensor([1.0, 10.0])
    idx[1] = 2
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [11, 0, 0])
    for make, kept in ((lambda x, m: ta.where(m, x, ta.zeros(3)), [1, 0, 3]),
                       (lambda x, m: x.masked_fill(m, 0.0), [0, 2, 0])):
        x.grad = None
        mask = ta.tensor([True, False, True])
        out = make(x, mask) * ta.tensor([1.0, 2.0, 3.0])
        mask.fill_(False)
        out.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), kept)
    emb, i = nn.Embedding(4, 2), ta.tensor([1, 1])
    out = emb(i).sum()
    i.zero_()
    out.backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [0, 2, 0, 0])


def test_returned_indices_are_not_the_array_backward_reads():
    x = ta.tensor([3.0, 1.0, 2.0], requires_grad=True)
    values, indices = x.sort()
    indices[0] = 2
    (values * ta.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 1, 2])


def test_a_float_attention_mask_is_read_at_forward_time(rng):
    q = ta.tensor(rng.standard_normal((1, 1, 3, 4)), dtype=ta.float32, requires_grad=True)
    mask = ta.tensor(rng.standard_normal((3, 3)), dtype=ta.float32)
    F.scaled_dot_product_attention(q, q, q, attn_mask=mask).sum().backward()
    expected = q.grad.numpy().copy()
    q.grad = None
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
    mask.mul_(5)
    out.sum().backward()
    np.testing.assert_allclose(q.grad.numpy(), expected, rtol=1e-6)


def test_a_view_made_under_no_grad_keeps_its_base_in_the_graph(rng):
    w = leaf(rng, 2, 2)

    def through_view(w):
        h = w * 1
        with ta.no_grad():
            v = h[0]
        v.mul_(w[1])
        return (h * h).sum()

    def out_of_place(w):
        h = ta.stack([w[0] * w[1], w[1]])
        return (h * h).sum()

    np.testing.assert_allclose(through_view(w).item(), out_of_place(w).item())
    assert gradcheck(through_view, [w], name="in-place on a view made under no_grad")


def test_unbind_outputs_stay_consistent(rng):
    w = leaf(rng, 1, 3)

    def f(w):
        h = w * 1
        (a,) = h.unbind(0)  # a size-1 dim: one output, still a view
        h.mul_(2)
        a.add_(w[0])
        return (a * a).sum() + h.sum()

    assert gradcheck(f, [w], name="unbind of a size-1 dim, then in-place")
    x = leaf(rng, 4, 3)

    def g(x):
        h = x * 1
        rows = h.unbind(0)
        h.mul_(3)  # every row is re-made from h's new node
        return sum(((r * r).sum() for r in rows), rows[0].sum() * 0)

    assert gradcheck(g, [x], name="unbind rows after an in-place change")


def test_in_place_on_0d_results_and_single_elements(rng):
    w = ta.randn(3, requires_grad=True)
    loss = w.sum()
    loss += 1.0
    loss *= 2
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2, 2, 2])
    h = ta.zeros(2, 3)
    h[0, 1] += 1
    h[1, 2].mul_(0).add_(5)  # a 0-d view: the change reaches h, as in PyTorch
    assert h[1, 2].item() == 5 and h[0, 1].item() == 1 and h.sum().item() == 6


def test_in_place_floor_division_remainder_power_and_bitwise_keep_the_object():
    a = ta.tensor([7, -7, 5])
    alias = a.numpy()
    a //= 2
    a %= 3
    np.testing.assert_array_equal(alias, np.array([7, -7, 5]) // 2 % 3)
    b = ta.tensor([True, False, True])
    same = b
    b &= ta.tensor([True, True, False])
    b |= ta.tensor([False, True, False])
    b ^= ta.tensor([True, False, False])
    assert b is same
    np.testing.assert_array_equal(b.numpy(), [False, True, False])
    with pytest.raises(TypeError, match="bitwise_and"):
        f = ta.ones(2)
        f &= ta.ones(2)
    x = ta.randn(3, dtype=ta.float64, requires_grad=True)
    h = x * 1
    h **= 3
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.numpy() ** 2)


def test_view_never_copies_and_contiguous_makes_row_major():
    x = ta.arange(6, dtype=ta.float32).reshape(2, 3)
    with pytest.raises(RuntimeError, match=r"view: a tensor of shape \(3, 2\).*\.reshape"):
        x.T.view(-1)
    flat = x.view(-1)
    flat[0] = 100  # a view: the change reaches x
    assert x[0, 0].item() == 100
    y = x.T.contiguous()
    assert y.numpy().flags.c_contiguous and x.contiguous() is x
    np.testing.assert_array_equal(y.view(-1).numpy(), x.numpy().T.reshape(-1))


# ---- grad mode decorators -----------------------------------------------------------------------------


def test_no_grad_decorates_without_parentheses_and_generators():
    x = ta.randn(2, requires_grad=True)

    @ta.no_grad
    def bare(x):
        return x * 2

    @ta.no_grad()
    def gen(x):
        for i in range(3):
            yield x * i

    assert not bare(x).requires_grad
    assert [t.requires_grad for t in gen(x)] == [False, False, False]
    assert ta.is_grad_enabled() and (x * 2).requires_grad
