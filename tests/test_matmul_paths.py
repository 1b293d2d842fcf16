"""Every matmul path on strided operands: transposed, sliced and permuted views, batch views of a wider array,
broadcast batches, read-only arrays, through the kernels (kernels/cpu/matmul: read in place, no copy), the
backend, the public operator (`@`, mm, bmm, matmul), F.linear with any weight layout and einsum's two-operand
contractions, forward and backward, against NumPy (float64 to 1e-12) and PyTorch."""
import sys

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.functional.linalg import _merge, _merge_axes
from tinyattn.kernels.cpu import matmul as mm
from tinyattn.testing import gradcheck

einsum_module = sys.modules["tinyattn.functional.einsum"]


@pytest.fixture
def rng():
    return np.random.default_rng(12)


def layout(rng, shape, kind, dtype=np.float64):
    """A (batch, rows, cols) array of `shape` laid out as `kind`: "c" C-contiguous, "t" a transposed view
    (columns contiguous), "s" a view with a step along columns (no unit stride), "p" batch axis inside
    (a permuted view: the batch of a (rows, batch, cols) array), "b" the batch a stride-0 broadcast,
    "r" read-only."""
    Bn, R, C = shape
    if kind == "c":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "t":
        return np.swapaxes(rng.standard_normal((Bn, C, R)).astype(dtype), 1, 2)
    if kind == "s":
        return rng.standard_normal((Bn, R, 2 * C + 1)).astype(dtype)[:, :, 1::2]
    if kind == "p":
        return np.swapaxes(rng.standard_normal((R, Bn, C)).astype(dtype), 0, 1)
    if kind == "b":
        return np.broadcast_to(rng.standard_normal((1, R, C)).astype(dtype), shape)
    x = rng.standard_normal(shape).astype(dtype)
    x.flags.writeable = False
    return x


KINDS = "ctspbr"


def close(out, ref, dtype, k):
    tol = 1e-12 if dtype == np.float64 else 2e-5 * max(1, k) ** 0.5
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max(initial=0)))


# ---- kernels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [None, "avx2", "portable", "rows"])
@pytest.mark.parametrize("shape", [(3, 13, 40, 29), (2, 2, 300, 40), (3, 27, 9, 1)])
def test_every_layout_of_both_operands_matches_numpy(rng, kernel, shape):
    """nn, nt and tn on operands of every layout pair (6 x 6), against float64 numpy; the 300-long k crosses
    the outer kernel's k-slice; "rows" only with few rows (its own layout rules)."""
    B, M, K, N = shape
    if kernel == "rows":
        M = 2
    for ka in KINDS:
        for kb in KINDS:
            a = layout(rng, (B, M, K), ka)
            b = layout(rng, (B, K, N), kb)
            ref = a @ b
            bt = np.swapaxes(layout(rng, (B, N, K), kb), 1, 2)     # b's transpose laid out as kb, seen as (K, N)
            ref_t = a @ bt
            at = np.swapaxes(layout(rng, (B, K, M), ka), 1, 2)
            ref_tn = at @ b
            close(mm.matmul_nn(a, b, kernel), ref, np.float64, K)
            close(mm.matmul_nt(a, np.swapaxes(bt, 1, 2), kernel), ref_t, np.float64, K)
            out, s = mm.matmul_tn(np.swapaxes(at, 1, 2), b, kernel, a_sums=True)
            close(out, ref_tn, np.float64, K)
            close(s, np.broadcast_to(at.sum(axis=2), (B, M)), np.float64, K)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_broadcast_batches(rng, dtype):
    """float32 on strided operands; batches of 1 against B (either side), both batches broadcast."""
    a = layout(rng, (1, 50, 70), "t", dtype)
    b = layout(rng, (4, 70, 33), "p", dtype)
    close(mm.matmul_nn(a, b), a.astype(np.float64) @ b, dtype, 70)
    c = layout(rng, (4, 20, 50), "p", dtype)
    close(mm.matmul_nn(c, a), c.astype(np.float64) @ a, dtype, 50)
    a4 = layout(rng, (4, 50, 70), "b", dtype)
    b4 = np.broadcast_to(layout(rng, (1, 70, 33), "t", dtype), (4, 70, 33))
    out = mm.matmul_nn(a4, b4)
    assert out.shape == (4, 50, 33) and out.flags.c_contiguous and out.flags.writeable
    close(out, a4.astype(np.float64) @ b4, dtype, 70)


def test_views_are_read_in_place(rng):
    """The operands the kernels get are views of the caller's memory for transposed, permuted-batch and
    layouts (nothing copied), and copies only for what no kernel path reads: a matrix with no unit stride and a
    read-only array (np.broadcast_to's too: of a broadcast batch `_matmul` passes one matrix, so one is copied)."""
    seen = []
    real = mm._operands
    mm_ops = lambda a, *rest: seen.append(a.shape) or real(a, *rest)  # noqa: E731
    for kind, copied in (("c", False), ("t", False), ("p", False), ("s", True), ("r", True)):
        a = layout(rng, (3, 20, 30), kind)
        b = layout(rng, (3, 40, 30), "t")
        args = mm._operands(a, 1, 2, b, 1, 2)
        assert np.shares_memory(args[0], a) != copied, kind
        assert np.shares_memory(args[5], b)
        assert args[0].flags.c_contiguous and args[0].flags.writeable and args[0].ndim == 1
    try:
        mm._operands = mm_ops
        mm.matmul_nn(layout(rng, (3, 20, 30), "b"), layout(rng, (3, 30, 40), "t"))
    finally:
        mm._operands = real
    assert seen == [(1, 20, 30)]


def test_empty_and_degenerate_operands(rng):
    a = layout(rng, (2, 5, 7), "t")
    assert np.array_equal(mm.matmul_nn(a, np.zeros((2, 7, 0))), np.zeros((2, 5, 0)))
    assert np.array_equal(mm.matmul_nn(np.zeros((2, 5, 0)), np.ones((2, 0, 3))), np.zeros((2, 5, 3)))
    x = layout(rng, (2, 1, 7), "t")
    y = layout(rng, (2, 7, 1), "t")
    close(mm.matmul_nn(x, y), x @ y, np.float64, 7)
    close(mm.matmul_nn(y, x), y @ x, np.float64, 1)


# ---- the merge helpers ----------------------------------------------------------------------------------


def test_merge_axes_is_a_view_exactly_when_the_strides_allow(rng):
    a = np.arange(2 * 3 * 5 * 7.0).reshape(2, 3, 5, 7)
    for x, shape, view in ((a, (6, 5, 7), True), (a[:, :, ::2], (6, 3, 7), True), (a[None], (6, 5, 7), True),
                           (np.swapaxes(a, 0, 1), (6, 5, 7), False), (np.swapaxes(a, -1, -2), (6, 7, 5), True),
                           (np.swapaxes(a, 1, 2), (10, 3, 7), False), (a, (1, 30, 7), True)):
        v = _merge_axes(x, shape)
        assert (v is not None) == view, (x.strides, shape)
        m = _merge(x, shape)
        assert np.array_equal(m, x.reshape(shape))
        assert np.shares_memory(m, a) == view
    q = np.swapaxes(np.swapaxes(a, 0, 1), -1, -2)      # permuted batch and transposed matrices: the copy
    m = _merge(q, (6, 7, 5))                           # keeps the matrices transposed (no transposing copy)
    assert np.array_equal(m, q.reshape(6, 7, 5)) and m.strides[1] < m.strides[2]
    for x in (q, np.swapaxes(a, -1, -2)):              # rows folded with the batch (x @ W): same, transposed
        m = _merge(x, (1, 6 * 7, 5))
        assert np.array_equal(m, x.reshape(1, 42, 5)) and m.strides[1] < m.strides[2]


# ---- the public operator, forward and backward ----------------------------------------------------------


def heads(t, B, T, H, D, i):
    """nanoGPT's c_attn(x).split(C, 2)[i].view(B, T, H, D).transpose(1, 2), for torch and tinyattn."""
    C = H * D
    return t[..., i * C:(i + 1) * C].reshape(B, T, H, D).transpose(1, 2)


B_, T_, H_, D_ = 2, 5, 3, 4

CASES = {
    "dy.T @ x": ([(9, 6), (9, 4)], lambda d, x: d.T @ x),
    "x @ W.T": ([(7, 5), (6, 5)], lambda x, w: x @ w.T),
    "a.T @ b.T": ([(5, 7), (4, 5)], lambda a, b: a.T @ b.T),
    "sliced @ batch view": ([(7, 6), (3, 5, 6, 4)], lambda a, b: a[::2] @ b.transpose(0, 1)),
    "permuted 3-D @ 2-D": ([(4, 5, 6), (6, 3)], lambda a, b: a.transpose(0, 1) @ b),
    "q @ k^T (views)": ([(B_, T_, 3 * H_ * D_)],
                        lambda t: heads(t, B_, T_, H_, D_, 0) @ heads(t, B_, T_, H_, D_, 1).transpose(-2, -1)),
    "att @ v (v a view)": ([(B_, H_, T_, T_), (B_, T_, 3 * H_ * D_)], lambda a, t: a @ heads(t, B_, T_, H_, D_, 2)),
    "broadcast batch views": ([(1, 4, 6), (3, 2, 4, 5)], lambda a, b: a.transpose(-2, -1) @ b.transpose(0, 1)),
    "mm(a.t(), b)": ([(6, 5), (6, 4)], lambda a, b: (ta if isinstance(a, ta.Tensor) else torch).mm(a.t(), b)),
    "bmm(a, b.transpose(1, 2))": ([(3, 4, 5), (3, 6, 5)],
                                  lambda a, b: (ta if isinstance(a, ta.Tensor) else torch).bmm(a, b.transpose(1, 2))),
    "linear(x, W.t())": ([(2, 3, 5), (5, 4), (4,)], lambda x, w, c: FN(x).linear(x, w.t(), c)),
    "linear(x.transpose(0, 1), W)": ([(3, 2, 5), (4, 5)], lambda x, w: FN(x).linear(x.transpose(0, 1), w)),
    "linear(x.mT of a batch view, W)": ([(5, 2, 3), (4, 5)],
                                        lambda x, w: FN(x).linear(x.transpose(0, 1).transpose(-2, -1), w)),
    "x.mT of a batch view @ W": ([(5, 2, 3), (5, 4)], lambda x, w: x.transpose(0, 1).transpose(-2, -1) @ w),
    "x.mT @ W, 3-D": ([(2, 5, 3), (5, 4)], lambda x, w: x.transpose(-2, -1) @ w),
    "linear(x[:, ::2], W[::2].t())": ([(3, 10), (10, 4)], lambda x, w: FN(x).linear(x[:, ::2], w[::2].t())),
}
torch = None


def FN(x):
    return F if isinstance(x, ta.Tensor) else torch.nn.functional


@pytest.mark.parametrize("name", list(CASES))
def test_public_products_on_views_match_torch_and_gradcheck(rng, name):
    """Values and gradients (through the views, to the leaves) equal PyTorch's to 1e-12 in float64, with an
    upstream gradient of every element different; and gradcheck."""
    global torch
    torch = pytest.importorskip("torch")
    shapes, fn = CASES[name]
    base = [rng.standard_normal(s) for s in shapes]
    xs = [ta.tensor(x, requires_grad=True) for x in base]
    ts = [torch.tensor(x, requires_grad=True) for x in base]
    y, yt = fn(*xs), fn(*ts)
    assert tuple(y.shape) == tuple(yt.shape)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(tuple(yt.shape))
    y.backward(ta.tensor(g))
    yt.backward(torch.tensor(g))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    gradcheck(fn, [ta.tensor(x, requires_grad=True) for x in base], name=name)


def test_sum_backward_through_transposed_product(rng):
    """out.sum().backward(): the upstream gradient is a read-only broadcast of one value (every stride 0)."""
    a = ta.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    b = ta.tensor(rng.standard_normal((4, 6)), requires_grad=True)
    (a.T @ b.T).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(b.numpy().sum(axis=0)[:, None], (6, 5)), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.broadcast_to(a.numpy().sum(axis=1)[None, :], (4, 6)), rtol=1e-12)


def test_float32_attention_views_against_numpy(rng):
    B, T, H, D = 2, 33, 3, 16
    qkv = rng.standard_normal((B, T, 3 * H * D)).astype(np.float32)
    t = ta.tensor(qkv)
    q, k, v = (heads(t, B, T, H, D, i) for i in range(3))
    nq, nk, nv = (qkv.astype(np.float64)[..., i * H * D:(i + 1) * H * D].reshape(B, T, H, D).swapaxes(1, 2)
                  for i in range(3))
    att = q @ k.transpose(-2, -1)
    close(att.numpy(), nq @ np.swapaxes(nk, -1, -2), np.float32, D)
    close((att @ v).numpy(), (nq @ np.swapaxes(nk, -1, -2)) @ nv, np.float32, T * D)


def test_head_views_are_read_in_place_through_batch_offsets(rng, monkeypatch):
    """q @ k^T and att @ v on nanoGPT's head views (batch axes (B, H) that no single stride spans), large enough
    for the outer kernel: the kernel reads them through a table of batch offsets (no copy), forward and backward;
    values and gradients equal PyTorch's to 1e-12 in float64, and an in-place change to qkv before backward
    raises, as in PyTorch."""
    torch = pytest.importorskip("torch")
    B, T, H, D = 2, 20, 3, 16
    seen = []
    real = mm.gemm_outer

    def spy(*args):
        seen.append((args[-2].size, args[-1].size))
        return real(*args)

    monkeypatch.setattr(mm, "gemm_outer", spy)

    def attend(t, a):
        q, k, v = (heads(t, B, T, H, D, i) for i in range(3))
        return (q @ k.transpose(-2, -1)) * a @ v

    base = [rng.standard_normal((B, T, 3 * H * D)), rng.standard_normal((B, H, T, T))]
    xs = [ta.tensor(x, requires_grad=True) for x in base]
    ts = [torch.tensor(x, requires_grad=True) for x in base]
    y, yt = attend(*xs), attend(*ts)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert seen[0] == (B * H, B * H) and seen[1][1] == B * H       # q, k^T; then v
    g = rng.standard_normal(tuple(yt.shape))
    y.backward(ta.tensor(g))
    yt.backward(torch.tensor(g))
    # backward: d(scores) = dy v^T and dv = p^T dy (p contiguous: merged), dq = d(q k^T) k and dk^T = q^T d(q k^T)
    assert sorted(seen[2:]) == [(0, 0), (0, B * H), (0, B * H), (B * H, 0)]
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    # einsum's pairs hand the same views to the kernels
    seen.clear()
    x, t = ta.tensor(base[0], requires_grad=True), torch.tensor(base[0], requires_grad=True)
    s, st = ((lib.einsum("bhtd,bhsd->bhts", heads(u, B, T, H, D, 0), heads(u, B, T, H, D, 1)) * lib.tensor(base[1]))
             .sum() for lib, u in ((ta, x), (torch, t)))
    s.backward()
    st.backward()
    assert seen[0] == (B * H, B * H)
    np.testing.assert_allclose(s.item(), st.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    qkv = ta.tensor(base[0], requires_grad=True) * 1
    out = attend(qkv, ta.tensor(base[1])).sum()
    with ta.no_grad():
        qkv.mul_(2)
    with pytest.raises(RuntimeError, match="in-place|Matmul"):
        out.backward()


# ---- einsum ---------------------------------------------------------------------------------------------


EINSUMS = [
    ("bhtd,bhsd->bhts", [(2, 3, 9, 16), (2, 3, 11, 16)]),
    ("bij,bjk->bik", [(3, 12, 10), (3, 10, 11)]),
    ("ij,kj->ik", [(30, 40), (20, 40)]),
    ("bti,oi->bto", [(2, 12, 10), (9, 10)]),
    ("ik,kj->ji", [(12, 10), (10, 13)]),
    ("abc,cd->dba", [(3, 4, 12), (12, 11)]),
    ("bij,bjk->ik", [(3, 12, 10), (3, 10, 11)]),
    ("ijk,jl->il", [(12, 8, 10), (8, 12)]),            # k in one operand only: summed first
]


@pytest.mark.parametrize("eq,shapes", EINSUMS)
def test_einsum_pairs_run_on_the_matmul_kernels(rng, eq, shapes, monkeypatch):
    """Two-operand contractions go through `_pair` (forward and both gradients), on transposed views of the
    operands too, and match PyTorch's values and gradients to 1e-12; gradcheck."""
    torch_ = pytest.importorskip("torch")
    calls = []
    pair = einsum_module._pair
    monkeypatch.setattr(einsum_module, "_pair", lambda *a: calls.append(pair(*a)) or calls[-1])
    for transposed in (False, True):
        base = [rng.standard_normal(s[::-1] if transposed else s) for s in shapes]
        view = (lambda x: x.permute(*reversed(range(x.ndim)))) if transposed else (lambda x: x)
        xs = [ta.tensor(x, requires_grad=True) for x in base]
        ts = [torch_.tensor(x, requires_grad=True) for x in base]
        y = ta.einsum(eq, *[view(x) for x in xs])
        yt = torch_.einsum(eq, *[view(x) for x in ts])
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(tuple(yt.shape))
        y.backward(ta.tensor(g))
        yt.backward(torch_.tensor(g))
        for x, t in zip(xs, ts):
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert len(calls) == 6 and all(c is not None for c in calls)
    gradcheck(lambda a, b: ta.einsum(eq, a, b), [ta.tensor(rng.standard_normal(s), requires_grad=True)
                                                  for s in shapes], name=eq)


def test_einsum_forms_the_kernels_do_not_take_stay_numpy(rng):
    """Repeated labels, elementwise products, integer operands, three operands: numpy's einsum, same results."""
    a = rng.standard_normal((20, 20))
    b = rng.standard_normal((20, 30))
    assert einsum_module._pair((a, b), ((0, 0), (0, 1)), (1,)) is None
    assert einsum_module._pair((a, a), ((0, 1), (0, 1)), (0, 1)) is None
    for eq, ops in (("ii,ij->j", (a, b)), ("ij,ij->ij", (a, a)), ("ij,jk,kl->il", (a, b, b.T)),
                    ("bij,bkj->bj", (b.reshape(2, 10, 30), b.reshape(2, 10, 30)))):
        np.testing.assert_allclose(ta.einsum(eq, *[ta.tensor(x) for x in ops]).numpy(), np.einsum(eq, *ops),
                                   rtol=1e-12, atol=1e-12)
    ints = np.arange(12).reshape(3, 4)
    assert np.array_equal(ta.einsum("ij,kj->ik", ta.tensor(ints), ta.tensor(ints)).numpy(), ints @ ints.T)


def test_an_in_place_change_to_a_copied_operand_is_still_seen(rng):
    """A batch view that does not merge is copied for the kernels; backward still checks the operand's version
    (PyTorch raises here too)."""
    a = ta.tensor(rng.standard_normal((2, 3, 4, 5)), requires_grad=True) * 1
    b = ta.tensor(rng.standard_normal((5, 2)), requires_grad=True)
    out = (a.transpose(0, 1) @ b).sum()
    with ta.no_grad():
        a.mul_(2)
    with pytest.raises(RuntimeError, match="in-place|Matmul"):
        out.backward()


def _sum_to(g, shape):
    """g summed over the broadcast axes of an operand of `shape` (as autograd does)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1), keepdims=True)


def test_random_views_of_random_shapes():
    """Random shapes; each operand a permuted and sliced view of a bigger leaf, its batch axes broadcast at
    random: `@` and the leaves' gradients (through the views) against numpy in float64."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(st.data())
    def check(data):
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
        M, K, N = (data.draw(st.integers(1, 40)) for _ in range(3))
        batch = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))

        def operand(shape):
            if data.draw(st.booleans()):
                shape = tuple(1 if data.draw(st.booleans()) else n for n in batch) + shape
            perm = [int(p) for p in r.permutation(len(shape))]
            step = data.draw(st.sampled_from([1, 1, 2]))
            big = r.standard_normal(tuple(shape[p] for p in perm[:-1]) + (shape[perm[-1]] * step,))
            leaf = ta.tensor(big, requires_grad=True)
            inv = [int(i) for i in np.argsort(perm)]
            t = leaf[..., ::step].permute(*inv)
            return leaf, t, np.transpose(big[..., ::step], inv), perm, step

        (la, a, an, pa, sa), (lb, b, bn, pb, sb) = operand((M, K)), operand((K, N))
        y = a @ b
        ref = an @ bn
        np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
        g = r.standard_normal(ref.shape)
        y.backward(ta.tensor(g))
        for leaf, x, perm, step, gx in ((la, an, pa, sa, g @ np.swapaxes(bn, -1, -2)),
                                        (lb, bn, pb, sb, np.swapaxes(an, -1, -2) @ g)):
            want = np.zeros(leaf.shape)
            want[..., ::step] = np.transpose(_sum_to(gx, x.shape), perm)
            np.testing.assert_allclose(leaf.grad.numpy(), want, rtol=1e-12, atol=1e-12)

    check()
