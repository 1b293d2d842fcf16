"""Double backward (create_graph=True) of the neural-network ops: dropout, pad, rotary, the attention
normalisers and fused attention, matmul/linear/einsum and the linalg ops, softmax/log_softmax, layer_norm, the
losses, and the Functions of nn (module backward hooks, Embedding's scale_grad_by_freq, DDP's sync, which
refuses). gradgradcheck of each on small float64 inputs, second derivatives compared with PyTorch, and a
Hessian-vector product of a small attention model checked against finite differences of its gradient."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn import autograd, nn
from tinyattn.functional.attention import attention_composite
from tinyattn.functional.attention_variants import normalize_scores
from tinyattn.functional.rotary import apply_rotary, rotary_tables
from tinyattn.testing import gradgradcheck


def leaf(*shape, seed=0, requires_grad=True, shift=0.0):
    values = np.random.default_rng(seed).standard_normal(shape) + shift
    return ta.tensor(values, requires_grad=requires_grad)


def idx(values):
    return ta.tensor(np.asarray(values, dtype=np.int64))


# ---- dropout, pad, rotary, embedding ------------------------------------------------------------------

def test_dropout_double_backward_with_a_fixed_mask():
    def fn(x):
        ta.manual_seed(3)  # the same mask at every call: a constant of the op
        return F.dropout(x, 0.4) * x
    x = leaf(2, 3)
    assert gradgradcheck(fn, [x])
    ta.manual_seed(3)
    y = F.dropout(x, 0.4)
    (g,) = autograd.grad((y * y).sum(), x, create_graph=True)  # 2 m² x
    (h,) = autograd.grad(g.sum(), x)
    mask = y.detach().numpy() / x.detach().numpy()
    np.testing.assert_allclose(h.numpy(), 2 * mask ** 2, atol=1e-12)
    assert (mask == 0).any() and (mask != 0).any()


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_double_backward(mode):
    widths = (2, -1) if mode == "constant" else (2, 1)
    assert gradgradcheck(lambda x: F.pad(x, widths, mode=mode) ** 2, [leaf(1, 3)])


def test_rotary_double_backward():
    cos, sin = rotary_tables(3, 4, dtype=np.float64)
    assert gradgradcheck(lambda x: apply_rotary(x, cos, sin) * x, [leaf(1, 3, 4)])


def test_embedding_and_scale_grad_by_freq_double_backward():
    index = idx([[0, 2, 2], [1, 2, 0]])
    assert gradgradcheck(lambda w: F.embedding(index, w) ** 2, [leaf(3, 2)])
    # scale_grad_by_freq: the gradient is not the forward's derivative (no gradcheck); as PyTorch, the double
    # backward's gather ignores the scaling: each of the c uses of row r adds 2 w_r / c, so dW = 2 W, d²/dW² = 2,
    # and d(dW)/d(grad_output) is the plain gather
    emb = nn.Embedding(3, 2, scale_grad_by_freq=True).double()
    w = emb.weight
    (g,) = autograd.grad((emb(index) ** 2).sum(), w, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 2 * w.detach().numpy())
    (h,) = autograd.grad(g.sum(), w)
    np.testing.assert_allclose(h.numpy(), np.full((3, 2), 2.0))
    v = leaf(2, 3, 2)
    (g,) = autograd.grad(emb(index), w, v, create_graph=True)
    (hv,) = autograd.grad(g.sum(), v)
    np.testing.assert_allclose(hv.numpy(), np.ones((2, 3, 2)))


# ---- attention ----------------------------------------------------------------------------------------

def qkv(b=1, h=1, t=3, d=2, s=None, dv=None, seed=0):
    s = t if s is None else s
    return [leaf(b, h, t, d, seed=seed), leaf(b, h, s, d, seed=seed + 1), leaf(b, h, s, dv or d, seed=seed + 2)]


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_double_backward(causal):
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), qkv())


def test_sdpa_double_backward_masks_window_and_constants():
    rng = np.random.default_rng(5)
    bias = ta.tensor(rng.standard_normal((3, 4)))
    q, k, v = qkv(s=4, dv=1)
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.7),
                         [q, k, v])
    dead_row = ta.tensor(np.array([[True, False, True], [False, False, False], [True, True, False]]))
    q, k, v = qkv(h=2, seed=3)
    v.requires_grad = False  # a constant value: only dq and dk
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=dead_row), [q, k, v])
    padding = ta.tensor(np.array([[[[True, True, False]]], [[[True, False, False]]]]))  # (B, 1, 1, S)
    q, k, v = qkv(b=2, t=2, s=3, seed=6)
    k.requires_grad = False
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=padding), [q, k, v])
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, window=1),
                         qkv(t=3, s=3, seed=9))
    lower_right = F.causal_lower_right(2, 3)  # a key/value cache's alignment: the offset S - L
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=lower_right),
                         qkv(t=2, s=3, seed=12))


def test_sdpa_second_derivative_equals_the_composite_twins():
    q, k, v = qkv(h=2, seed=11)
    w = np.random.default_rng(1).standard_normal((1, 2, 3, 2))

    def hvp(attend):
        out = attend(q, k, v)
        grads = autograd.grad((out * w).sum(), [q, k, v], create_graph=True)
        penalty = sum((g * g).sum() for g in grads)
        return [t.numpy() for t in autograd.grad(penalty, [q, k, v])]
    fused = hvp(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    twin = hvp(lambda q, k, v: attention_composite(q, k, v, is_causal=True))
    for a, b in zip(fused, twin):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalizer", ["softmax", "sigmoid", "relu"])
def test_attention_normalizers_double_backward(normalizer):
    allowed = np.array([[True, False, True], [True, True, True]])
    fn = (lambda s: normalize_scores(s, allowed, normalizer) * s) if normalizer == "relu" else \
        (lambda s: normalize_scores(s, allowed, normalizer))
    assert gradgradcheck(fn, [leaf(2, 3, shift=0.05)])


# ---- products -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes, needs", [
    (((2, 3), (3, 2)), (True, True)),
    (((2, 1, 2, 3), (3, 3, 2)), (True, True)),  # broadcast batch on both sides
    (((2, 2, 3), (3, 2)), (True, False)),       # x @ W with W 2-D, W constant
    (((2, 2, 3), (3, 2)), (False, True)),
    (((3,), (2, 3, 2)), (True, True)),          # a 1-D operand
])
def test_matmul_double_backward(shapes, needs):
    inputs = [leaf(*s, seed=i, requires_grad=n) for i, (s, n) in enumerate(zip(shapes, needs))]
    assert gradgradcheck(ta.matmul, inputs)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_double_backward(bias):
    inputs = [leaf(2, 2, 3), leaf(2, 3, seed=1)] + ([leaf(2, seed=2)] if bias else [])
    assert gradgradcheck(F.linear, inputs)
    assert gradgradcheck(F.linear, [leaf(3), leaf(2, 3, seed=1, requires_grad=False), leaf(2, seed=2)])


@pytest.mark.parametrize("equation, shapes", [
    ("bij,bjk->bik", ((2, 2, 3), (2, 3, 2))),
    ("ii->i", ((3, 3),)),
    ("ij,k->i", ((2, 3), (2,))),         # a label summed inside one operand only
    ("iij,j->i", ((2, 2, 3), (3,))),     # a diagonal
    ("ij,jk,kl->il", ((2, 2), (2, 3), (3, 2))),
])
def test_einsum_double_backward(equation, shapes):
    inputs = [leaf(*s, seed=i) for i, s in enumerate(shapes)]
    fn = (lambda *ops: ta.einsum(equation, *ops) ** 2) if len(shapes) == 1 else \
        (lambda *ops: ta.einsum(equation, *ops))
    assert gradgradcheck(fn, inputs)


def well_conditioned(seed=0):
    a = np.random.default_rng(seed).standard_normal((2, 2)) + 3 * np.eye(2)
    return ta.tensor(a, requires_grad=True)


def test_linalg_double_backward():
    assert gradgradcheck(ta.linalg.inv, [well_conditioned()])
    assert gradgradcheck(ta.linalg.det, [well_conditioned(1)])
    assert gradgradcheck(lambda a: ta.linalg.slogdet(a).logabsdet, [well_conditioned(2)])
    assert gradgradcheck(ta.linalg.solve, [well_conditioned(3), leaf(2, 2)])
    assert gradgradcheck(ta.linalg.solve, [well_conditioned(4), leaf(2, requires_grad=False)])
    assert gradgradcheck(ta.linalg.solve, [well_conditioned(5).detach(), leaf(2, 1)])


# ---- softmax, layer_norm, losses ----------------------------------------------------------------------

@pytest.mark.parametrize("op, dim", [(F.softmax, -1), (F.softmax, 0), (F.log_softmax, -1), (F.log_softmax, 0)])
def test_softmax_double_backward(op, dim):
    assert gradgradcheck(lambda x: op(x, dim), [leaf(2, 3)])


def test_layer_norm_double_backward():
    assert gradgradcheck(lambda x, w, b: F.layer_norm(x, (3,), w, b), [leaf(2, 3), leaf(3, seed=1), leaf(3, seed=2)])
    assert gradgradcheck(lambda x: F.layer_norm(x, (2, 2), eps=0.1), [leaf(2, 2, 2)])
    x = leaf(2, 3, requires_grad=False)
    assert gradgradcheck(lambda x, w: F.layer_norm(x, (3,), w) * w, [x, leaf(3, seed=1)])


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                    {"ignore_index": 2, "label_smoothing": 0.2},
                                    {"label_smoothing": 0.1, "reduction": "none"}])
def test_cross_entropy_double_backward(kwargs):
    target = idx([0, 2, 1])
    assert gradgradcheck(lambda x: F.cross_entropy(x, target, **kwargs), [leaf(3, 3)])


def test_weighted_and_spatial_cross_entropy_and_nll_double_backward():
    target = idx([0, 2, 1])
    weight = ta.tensor(np.array([1.0, 2.0, 0.5]))
    assert gradgradcheck(lambda x: F.cross_entropy(x, target, weight=weight), [leaf(3, 3)])
    assert gradgradcheck(lambda x: F.cross_entropy(x, idx([[0, 2], [1, 1]]), ignore_index=1), [leaf(2, 3, 2)])
    for reduction in ("mean", "sum", "none"):
        assert gradgradcheck(lambda x: F.nll_loss(F.log_softmax(x, 1), target, reduction=reduction), [leaf(3, 3)])


def test_mse_loss_double_backward():
    for reduction in ("mean", "sum", "none"):
        assert gradgradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), [leaf(2, 3), leaf(2, 3, seed=1)])
    with pytest.warns(UserWarning, match="target size"):
        assert gradgradcheck(lambda x, y: F.mse_loss(x, y), [leaf(2, 3), leaf(3, seed=1, requires_grad=False)])
    assert gradgradcheck(lambda x, y: F.mse_loss(x, y), [leaf(2, 3, requires_grad=False), leaf(2, 3, seed=1)])


def _probabilities(*shape, seed=0):
    rng = np.random.default_rng(seed + 100)
    return ta.tensor(rng.uniform(0.1, 0.9, shape), requires_grad=True)


POINTWISE_LOSSES = {  # name: (loss, input maker); inputs are kept away from the losses' kinks
    "l1": (lambda x, y: F.l1_loss(x, y), None),
    "l1_weighted": (lambda x, y: F.l1_loss(x, y, weight=ta.tensor(np.linspace(0.5, 2, 6).reshape(2, 3))), None),
    "smooth_l1": (lambda x, y: F.smooth_l1_loss(x, y, beta=0.8, reduction="sum"), None),
    "huber": (lambda x, y: F.huber_loss(x, y, delta=0.7, reduction="none"), None),
    "mse_weighted": (lambda x, y: F.mse_loss(x, y, weight=ta.tensor(np.linspace(0.5, 2, 6).reshape(2, 3))), None),
    "bce": (lambda x, y: F.binary_cross_entropy(x, y), "probabilities"),
    "bce_logits": (lambda x, y: F.binary_cross_entropy_with_logits(
        x, y, pos_weight=ta.tensor([1.0, 2.0, 0.5]), weight=ta.tensor([0.3, 1.0, 2.0])), "targets"),
    "kl_div": (lambda x, y: F.kl_div(x, y, reduction="batchmean"), "probabilities"),
    "kl_div_log_target": (lambda x, y: F.kl_div(x, y, reduction="sum", log_target=True), None),
}


@pytest.mark.parametrize("name", sorted(POINTWISE_LOSSES))
def test_pointwise_losses_double_backward(name):
    loss, kind = POINTWISE_LOSSES[name]
    x = _probabilities(2, 3) if name == "bce" else leaf(2, 3)
    y = _probabilities(2, 3, seed=1) if kind else leaf(2, 3, seed=1)
    assert gradgradcheck(loss, [x, y])


def test_pointwise_loss_second_derivatives_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x0, y0, v0 = rng.standard_normal((3, 4)), rng.uniform(0.1, 0.9, (3, 4)), rng.standard_normal((3, 4))
    ours, theirs = [], []
    for lib, out in ((ta, ours), (torch, theirs)):
        fn = F if lib is ta else torch.nn.functional
        x = lib.tensor(x0, requires_grad=True)
        y = lib.tensor(y0, requires_grad=True)
        v = lib.tensor(v0)
        for loss in (fn.binary_cross_entropy_with_logits(x, y, pos_weight=lib.tensor([1.0, 2.0, 0.5, 1.5])),
                     fn.smooth_l1_loss(x, y, beta=0.5), fn.kl_div(x, y, reduction="batchmean")):
            gx, gy = lib.autograd.grad(loss, (x, y), create_graph=True)
            out.extend(t.detach().numpy() for t in lib.autograd.grad((gx * v).sum() + (gy * v).sum(), (x, y)))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ---- nn's Functions -----------------------------------------------------------------------------------

def test_full_backward_hook_sees_gradient_tensors_and_its_result_is_differentiated():
    lin = nn.Linear(3, 2).double()
    seen = []

    def hook(module, grad_input, grad_output):
        seen.append((grad_input[0].requires_grad, grad_output[0].requires_grad))
        return (grad_input[0] * 2,)
    lin.register_full_backward_hook(hook)
    x = leaf(2, 3)
    (g,) = autograd.grad((lin(x) ** 2).sum(), x, create_graph=True)
    assert seen == [(True, True)]
    W = lin.weight.detach().numpy()
    np.testing.assert_allclose(g.detach().numpy(), 2 * (2 * lin(x).detach().numpy()) @ W)
    # g = 4 (x Wᵀ + b) W; its backward passes the module's input again, where the hook (run again, as in
    # PyTorch, now on plain tensors) doubles once more: 8 (W 1)ᵀ W in every row, PyTorch's value too
    (h,) = autograd.grad(g.sum(), x)
    assert seen == [(True, True), (False, False)]
    np.testing.assert_allclose(h.numpy(), np.tile(8 * W.sum(axis=1) @ W, (2, 1)))
    watched = nn.Linear(3, 2).double()
    calls = []
    watched.register_full_backward_hook(lambda module, grad_input, grad_output: calls.append(1))
    assert gradgradcheck(lambda x: watched(x) ** 2, [leaf(2, 3, seed=1)]) and calls


def test_ddp_sync_refuses_create_graph_naming_ddp():
    from tinyattn.distributed.ddp import _SyncAfterBackward

    anchor = ta.tensor(np.zeros(()), requires_grad=True)
    out = leaf(2)
    (y,) = _SyncAfterBackward.apply(anchor, None, (out,), {"sync": False})
    with pytest.raises(RuntimeError, match="DistributedDataParallel is not supported"):
        autograd.grad(y.sum(), anchor, create_graph=True)


# ---- against PyTorch ----------------------------------------------------------------------------------

def test_second_derivatives_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(s) for s in ((3, 4), (4, 4), (4,), (4,), (4,))]
    target = np.array([0, 3, 1])
    v = [rng.standard_normal(s) for s in ((3, 4), (4, 4), (4,), (4,), (4,))]

    def ours():
        x, w, b, g, beta = (ta.tensor(a, requires_grad=True) for a in xs)
        h = F.log_softmax(F.layer_norm(F.linear(x, w, b), (4,), g, beta), -1)
        loss = F.cross_entropy(ta.matmul(h, w), idx(target), label_smoothing=0.1)
        grads = autograd.grad(loss, [x, w, b, g, beta], create_graph=True)
        dot = sum((gr * ta.tensor(vi)).sum() for gr, vi in zip(grads, v))
        return [t.numpy() for t in autograd.grad(dot, [x, w, b, g, beta])]

    def theirs():
        x, w, b, g, beta = (torch.tensor(a, requires_grad=True) for a in xs)
        tf = torch.nn.functional
        h = tf.log_softmax(tf.layer_norm(tf.linear(x, w, b), (4,), g, beta), -1)
        loss = tf.cross_entropy(h @ w, torch.tensor(target), label_smoothing=0.1)
        grads = torch.autograd.grad(loss, [x, w, b, g, beta], create_graph=True)
        dot = sum((gr * torch.tensor(vi)).sum() for gr, vi in zip(grads, v))
        return [t.numpy() for t in torch.autograd.grad(dot, [x, w, b, g, beta])]
    for a, b in zip(ours(), theirs()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_linalg_and_einsum_second_derivatives_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal((2, 2)) + 3 * np.eye(2), rng.standard_normal((2, 3)), rng.standard_normal((3, 2))]

    def run(lib, tensor, grad):
        a, b, c = (tensor(x, requires_grad=True) for x in arrays)
        x = lib.linalg.solve(a, lib.einsum("ij,jk->ik", b, c))
        loss = (x * x).sum() + lib.linalg.det(a) * lib.linalg.slogdet(a)[1] + (lib.linalg.inv(a) ** 2).sum()
        grads = grad(loss, [a, b, c], create_graph=True)
        dot = sum((g * tensor(np.cos(np.arange(g.numel())).reshape(g.shape))).sum() for g in grads)
        return [t.detach().numpy() for t in grad(dot, [a, b, c])]
    ours = run(ta, ta.tensor, autograd.grad)
    theirs = run(torch, torch.tensor, torch.autograd.grad)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_attention_second_derivative_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((1, 2, 3, 2)) for _ in range(3)]
    w = rng.standard_normal((1, 2, 3, 2))

    def torch_attention(q, k, v, is_causal):  # PyTorch's CPU SDPA kernel has no double backward: its math
        causal = torch.ones(3, 3, dtype=torch.bool).tril()
        scores = (q @ k.transpose(-2, -1) / np.sqrt(2)).masked_fill(~causal, -np.inf)
        return torch.softmax(scores, -1) @ v

    def run(sdpa, tensor, grad):
        q, k, v = (tensor(a, requires_grad=True) for a in arrays)
        out = sdpa(q, k, v, is_causal=True)
        gq, gk, gv = grad((out * tensor(w)).sum(), [q, k, v], create_graph=True)
        return [t.detach().numpy() for t in grad((gq * gk).sum() + (gv * gv).sum(), [q, k, v])]
    ours = run(F.scaled_dot_product_attention, ta.tensor, autograd.grad)
    theirs = run(torch_attention, torch.tensor, torch.autograd.grad)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ---- a whole model: Hessian-vector product against finite differences of the gradient -----------------

class TinyAttentionModel(nn.Module):
    def __init__(self, d=4, classes=3):
        super().__init__()
        self.inp = nn.Linear(d, d)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        h = self.norm(self.act(self.inp(x)))
        a, _ = self.attn(h, h, h, need_weights=False, is_causal=True)  # the fused attention kernel
        return self.head(a + h)


def test_model_hessian_vector_product_matches_finite_differences():
    ta.manual_seed(0)
    model = TinyAttentionModel().double()
    params = list(model.parameters())
    x = ta.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)))
    target = idx([[0, 2, 1], [1, 1, 0]])
    rng = np.random.default_rng(1)
    v = [rng.standard_normal(p.shape) for p in params]

    def loss():
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, 3), target.reshape(-1))

    grads = autograd.grad(loss(), params, create_graph=True)
    hv = autograd.grad(sum((g * ta.tensor(vi)).sum() for g, vi in zip(grads, v)), params)

    def grad_at(step):
        with ta.no_grad():
            for p, vi in zip(params, v):
                p._array += step * vi
        g = autograd.grad(loss(), params)
        with ta.no_grad():
            for p, vi in zip(params, v):
                p._array -= step * vi
        return [t.numpy() for t in g]
    eps = 1e-5
    plus, minus = grad_at(eps), grad_at(-eps)
    for h, a, b in zip(hv, plus, minus):
        np.testing.assert_allclose(h.numpy(), (a - b) / (2 * eps), rtol=1e-5, atol=1e-8)
    assert max(float(np.abs(h.numpy()).max()) for h in hv) > 1e-3  # a real curvature, not all zeros


def _layer_cases():
    ta.manual_seed(0)
    f64 = {"dtype": ta.float64}
    return {
        "Conv1d": (nn.Conv1d(2, 2, 3, padding=1, **f64), (1, 2, 4), lambda m, a: m(a)),
        "LSTM": (nn.LSTM(2, 2, batch_first=True, **f64), (1, 3, 2), lambda m, a: m(a)[0]),
        "GRU": (nn.GRU(2, 2, **f64), (3, 1, 2), lambda m, a: m(a)[0]),
        "RNN": (nn.RNN(2, 2, **f64), (3, 1, 2), lambda m, a: m(a)[0]),
        "TransformerEncoderLayer": (nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, **f64),
                                    (1, 3, 4), lambda m, a: m(a)),
        "MultiheadAttention": (nn.MultiheadAttention(4, 2, batch_first=True, **f64), (1, 3, 4),
                               lambda m, a: m(a, a, a)[0]),
        "SelfAttention additive": (nn.SelfAttention(3, 2, 2, relevance="additive", **f64), (3, 3), lambda m, a: m(a)),
    }


@pytest.mark.parametrize("name", sorted(_layer_cases()))
def test_layers_double_backward(name):
    module, shape, call = _layer_cases()[name]
    x = ta.tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    assert gradgradcheck(lambda a: call(module, a), [x])
