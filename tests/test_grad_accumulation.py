"""Gradient accumulation in the backward walk adds in place only into arrays it made itself.

A backward may hand one array to several inputs (Add gives the same dy to both), so a gradient as it
arrives may be shared with another input's pending gradient: adding a later gradient into it in place
would change that other input's gradient too. These graphs make the shared array arrive first.
"""
import numpy as np

import tinyattn as ta


def test_shared_gradient_is_not_summed_into():
    x = ta.tensor(np.ones(3), requires_grad=True)
    p, q = x * 2, x * 3
    b = p * 5             # made before a, so a's backward runs first and hands one dy to both p and q
    a = p + q
    (a + b).sum().backward()
    # dL/dp = 1 + 5, dL/dq = 1: dL/dx = 2 * 6 + 3 * 1 (a sum written into the shared dy would give q 6, x 30)
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 15.0))


def test_shared_gradient_reaching_a_hooked_leaf_first():
    x = ta.tensor(np.ones(3), requires_grad=True)
    w = ta.tensor(np.ones(3), requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    b = x * 5
    a = x + w             # one dy for x (a leaf with a hook: summed with b's gradient) and for w
    (a + b).sum().backward()
    np.testing.assert_array_equal(seen[0], np.full(3, 6.0))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 6.0))
    np.testing.assert_array_equal(w.grad.numpy(), np.ones(3))


def test_repeated_sums_into_one_gradient():
    x = ta.tensor(np.arange(4.0), requires_grad=True)
    h = x * 1
    total = h
    for k in range(2, 6):  # h reaches the loss five times: the later sums go into accumulation's own array
        total = total + h * k
    total.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 15.0))
    h = x * 1
    gx, = ta.autograd.grad((h + h + h).sum(), x)  # grad(): the sums are its result, copied out
    np.testing.assert_array_equal(gx.numpy(), np.full(4, 3.0))


def test_fresh_gradients_become_the_leaf_grads_unshared(monkeypatch):
    """Linear, LayerNorm and Embedding hand back new arrays (Function.fresh_grads): a parameter's first
    gradient is taken as it is, so no two .grad arrays share memory, each equals what the copying path
    gives, and a second backward still adds into it."""
    ta.manual_seed(0)
    emb, norm, lin = ta.nn.Embedding(7, 4), ta.nn.LayerNorm(4), ta.nn.Linear(4, 3)
    idx = ta.tensor(np.array([[1, 2, 2], [0, 6, 1]]))
    params = [p for m in (emb, norm, lin) for p in m.parameters()]

    def grads():
        for p in params:
            p.grad = None
        (lin(norm(emb(idx))) ** 2).sum().backward()
        return [p.grad.numpy() for p in params]

    first = grads()
    for i, g in enumerate(first):
        for h in first[i + 1:]:
            assert not np.shares_memory(g, h)
    (lin(norm(emb(idx))) ** 2).sum().backward()  # accumulates: twice the first gradient
    for p, g in zip(params, first):
        assert p.grad.numpy() is g
    for cls in (ta.functional.linalg.Linear, ta.functional.normalization.LayerNorm, ta.functional.sparse.Embedding):
        monkeypatch.setattr(cls, "fresh_grads", False)
    copied = grads()
    for g, c in zip(first, copied):
        np.testing.assert_array_equal(g, 2 * c)


def test_softmax_gradients_on_leaves_along_any_dim():
    """softmax and log_softmax hand their kernel's dx to a leaf as it is (fresh_grads), also along a dim that is
    not the last (a view of the kernel's array); a second backward adds into it; PyTorch's values."""
    torch = __import__("pytest").importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4))
    w = rng.standard_normal((3, 5, 4))
    for fn in ("softmax", "log_softmax"):
        for dim in (0, 1, -1):
            a, b = ta.tensor(x, requires_grad=True), ta.tensor(x, requires_grad=True)
            for _ in range(2):
                (getattr(ta.nn.functional, fn)(a, dim) * ta.tensor(w)).sum().backward()
            (getattr(ta.nn.functional, fn)(b, dim) * ta.tensor(w)).sum().backward()
            assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
            t = torch.tensor(x, requires_grad=True)
            (getattr(torch.nn.functional, fn)(t, dim) * torch.tensor(w)).sum().backward()
            np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(a.grad.numpy(), 2 * t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_attention_gradients_on_leaves_are_taken_as_they_are():
    """The fused attention hands its new dq, dk, dv to leaves without a copy (fresh_grads), also when the leaves
    are equal slices of one buffer, whose gradients the kernel lays out side by side in one new buffer: each leaf
    keeps its own elements, a second backward adds into them, and a tensor used as query and key sums both."""
    rng = np.random.default_rng(2)
    F = ta.nn.functional
    base = ta.tensor(rng.standard_normal((3, 2, 2, 6, 4)))
    w = ta.tensor(rng.standard_normal((2, 2, 6, 4)))
    q, k, v = (base[i].detach().requires_grad_() for i in range(3))  # leaves sharing base's memory
    for _ in range(2):
        (F.scaled_dot_product_attention(q, k, v, is_causal=True) * w).sum().backward()
    grads = [t.grad.numpy() for t in (q, k, v)]
    assert grads[0].base is grads[1].base  # side by side, as the kernel wrote them
    ref = [ta.tensor(base[i].numpy(), requires_grad=True) for i in range(3)]
    a, b, c = ref
    att = F.softmax((a @ b.transpose(-2, -1) / 2.0).masked_fill(ta.tensor(np.triu(np.ones((6, 6), bool), 1)),
                                                                float("-inf")), dim=-1)
    (att @ c * w).sum().backward()
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, 2 * r.grad.numpy(), atol=1e-12)
    x = ta.tensor(rng.standard_normal((2, 6, 4)), requires_grad=True)
    F.scaled_dot_product_attention(x, x, x).sum().backward()
    y = ta.tensor(x.detach().numpy(), requires_grad=True)
    (F.softmax(y @ y.transpose(-2, -1) / 2.0, dim=-1) @ y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), atol=1e-12)


def test_matmul_and_indexing_gradients_on_leaves():
    """Matmul and indexing hand back new arrays (fresh_grads): a leaf takes its first gradient as it is, also when
    its slices meet in one product (hand-written attention on a fused qkv), and a second backward adds into it;
    the values are the copying path's."""
    rng = np.random.default_rng(3)
    t0, a0 = rng.standard_normal((2, 5, 12)), rng.standard_normal((2, 5, 5))
    g0 = rng.standard_normal((2, 5, 5))

    def run(t, a, times=1):
        for _ in range(times):
            q, k, v = t[..., :4], t[..., 4:8], t[..., 8:]
            ((q @ k.transpose(-2, -1)) * ta.tensor(g0) + a @ v @ k.transpose(-2, -1)).sum().backward()

    t, a = ta.tensor(t0, requires_grad=True), ta.tensor(a0, requires_grad=True)
    run(t, a)
    first = t.grad.numpy(), a.grad.numpy()
    run(t, a)
    assert t.grad.numpy() is first[0] and a.grad.numpy() is first[1]
    assert not np.shares_memory(first[0], first[1])
    with __import__("pytest").MonkeyPatch.context() as mp:
        for cls in (ta.functional.linalg.Matmul, ta.functional.shape.GetItem):
            mp.setattr(cls, "fresh_grads", False)
        u, b = ta.tensor(t0, requires_grad=True), ta.tensor(a0, requires_grad=True)
        run(u, b)
    np.testing.assert_allclose(first[0], 2 * u.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first[1], 2 * b.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_fresh_gradient_of_an_inner_tensor_is_summed_into_once_it_is_ours():
    """A fresh gradient (a product's) reaching an inner tensor first is where the later ones are added, in place;
    hooks and retain_grad see the whole sum, and what a hook keeps is not changed by later sums."""
    rng = np.random.default_rng(4)
    x = ta.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = ta.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    seen = []
    h = x @ w
    h.retain_grad()
    h.register_hook(lambda g: seen.append(g.numpy()))
    y = h @ w       # made first, so its backward runs last: Add's shared dy arrives at h after this product's
    loss = (y + h * 2.0 + h).sum()
    loss.backward()
    ones = np.ones((4, 3))
    expected = ones @ w.detach().numpy().T + 3.0
    np.testing.assert_allclose(seen[0], expected, rtol=1e-12)
    np.testing.assert_allclose(h.grad.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), expected @ w.detach().numpy().T, rtol=1e-12)


def test_slices_of_one_tensor_add_into_its_gradient():
    """A slice's gradient is added into the sum the walk already owns for the sliced tensor (GetItem's
    accumulate_into), for a leaf and an inner tensor, basic and advanced indices (repeats add up), and with
    the walk's other paths around it: a shared gradient arriving first, hooks, retain_grad, grad()."""
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal((4, 6))
    w = [ta.tensor(rng.standard_normal(s)) for s in ((4, 3), (4, 3), (3, 6), (4, 6))]

    def loss(x):
        h = x * 2.0
        h.retain_grad()
        parts = (x[:, :3] * w[0] + x[:, 3:] * w[1]).sum() + (x[[0, 2, 0]] * w[2]).sum()
        inner = (h[:, 1:4] * w[0]).sum() + (h[1:3, ::2] ** 2).sum() + (h[[3, 3]] * w[2][:2]).sum()
        return parts + inner + (h + x).mul(w[3]).sum(), h

    def grads(accumulate):
        with __import__("pytest").MonkeyPatch.context() as mp:
            if not accumulate:
                mp.setattr(ta.functional.shape.GetItem, "accumulate_into", None)
            x = ta.tensor(x0, requires_grad=True)
            seen = []
            x.register_hook(lambda g: seen.append(g.numpy().copy()))
            out, h = loss(x)
            out.backward()
            x2 = ta.tensor(x0, requires_grad=True)
            gx, = ta.autograd.grad(loss(x2)[0], x2)
            return x.grad.numpy(), seen[0], h.grad.numpy(), gx.numpy()

    fast, slow = grads(True), grads(False)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast[0], fast[1])
    np.testing.assert_allclose(fast[0], fast[3])
    # by hand: x's own slices, then h = 2x
    dx = np.concatenate([w[0].numpy(), w[1].numpy()], axis=1) + w[3].numpy()
    np.add.at(dx, [0, 2, 0], w[2].numpy())
    dh = w[3].numpy().copy()
    dh[:, 1:4] += w[0].numpy()
    dh[1:3, ::2] += 2 * (2 * x0[1:3, ::2])
    dh[3] += w[2].numpy()[:2].sum(axis=0)
    np.testing.assert_allclose(fast[2], dh, rtol=1e-12)
    np.testing.assert_allclose(fast[0], dx + 2 * dh, rtol=1e-12)


def test_fresh_gradient_arriving_second_takes_the_sum():
    """A shared gradient (Add's dy, also handed to q) reaches h first, then a Linear's fresh one: the sum is made
    in the fresh array, and the shared one, which q's gradient still is, stays as it was."""
    rng = np.random.default_rng(6)
    x = ta.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    q = ta.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    lin = ta.nn.Linear(4, 4).double()
    h = x * 1.0
    b = lin(h)        # made before a: a's Add runs first and hands one dy to h and to q
    a = h + q
    (a * 2.0 + b).sum().backward()
    w = lin.weight.detach().numpy()
    np.testing.assert_allclose(q.grad.numpy(), np.full((3, 4), 2.0))
    np.testing.assert_allclose(x.grad.numpy(), 2.0 + np.ones((3, 4)) @ w, rtol=1e-12)


def test_a_gradient_a_leaf_hook_saw_is_not_changed_later():
    """A fresh gradient (a product's) that a leaf hook saw becomes .grad as a copy, as in PyTorch: a second
    backward adds into .grad, zero_() clears it, and what the hook kept stays as it was."""
    x = ta.tensor(np.ones((3, 4)), requires_grad=True)
    w = ta.tensor(np.full((4, 2), 2.0))
    seen = []
    x.register_hook(lambda g: seen.append(g))
    (x @ w).sum().backward()
    first = seen[0].numpy().copy()
    (x @ w).sum().backward()
    x.grad.zero_()
    np.testing.assert_array_equal(seen[0].numpy(), first)
    np.testing.assert_array_equal(first, np.full((3, 4), 4.0))
    assert not np.shares_memory(x.grad.numpy(), seen[0].numpy())


def test_adding_into_grad_is_an_in_place_change():
    """A second backward adds into .grad in place, so a graph that saved .grad's old value refuses to backward
    (PyTorch's error), instead of using the new one silently."""
    x = ta.tensor(np.ones(3), requires_grad=True)
    w = ta.tensor(np.ones(3), requires_grad=True)
    (x * 2).sum().backward()
    y = (x.grad * w).sum()  # saves x.grad for w's gradient
    (x * 2).sum().backward()
    with __import__("pytest").raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()
