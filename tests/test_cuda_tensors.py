"""Tensors, ops, layers and a training step on the GPU, each held to the same computation on the CPU.

Without a GPU these run under Numba's CUDA simulator (tests/conftest.py turns it on before numba is
imported), on tiny shapes, since the simulator runs GPU threads as Python threads. On a machine with a
GPU the same tests run on it, several at larger sizes (SCALE).
"""
import numpy as np
import pytest
from conftest import WrongSquare
from hypothesis import given, settings, strategies as st
from numba import config

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.device_array import DeviceArray

# In the background worker (tests/background.py) beside the CPU tests: under the simulator these are
# mostly Python threads standing in for GPU threads, on one core.
pytestmark = [pytest.mark.skipif(not ta.cuda.is_available(), reason="no CUDA GPU and no numba-cuda simulator"),
              pytest.mark.background(order=1)]

ON_GPU = not config.ENABLE_CUDASIM
SCALE = 8 if ON_GPU else 1  # sizes grow on a real GPU


def both(fn, *arrays, grad=True, dtype=ta.float64, rtol=1e-9, atol=1e-10, seed=0):
    """Run fn on CPU tensors and on the same values on the GPU; compare outputs and input gradients.

    Each float array becomes a leaf tensor (requiring grad when `grad`); integer/bool arrays become
    constant tensors. The backward starts from a fixed random weighting of the output(s).
    """
    results = []
    for device in ("cpu", "cuda"):
        ins = [ta.tensor(a, dtype=dtype if a.dtype.kind == "f" else None, device=device,
                         requires_grad=grad and a.dtype.kind == "f") for a in arrays]
        outs = fn(*ins)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for o in outs:
            assert o.device == device, (fn, o.device)
        if grad:
            w_rng = np.random.default_rng(seed + 99)
            loss = None
            for o in outs:
                term = (o * ta.tensor(w_rng.standard_normal(o.shape), dtype=o.dtype, device=device)).sum()
                loss = term if loss is None else loss + term
            loss.backward()
        results.append(([o.numpy() for o in outs], [t.grad.numpy() if t.requires_grad else None for t in ins]))
    (cpu_outs, cpu_grads), (gpu_outs, gpu_grads) = results
    for c, g in zip(cpu_outs, gpu_outs):
        np.testing.assert_allclose(g, c, rtol=rtol, atol=atol)
    for c, g in zip(cpu_grads, gpu_grads):
        if c is not None:
            np.testing.assert_allclose(g, c, rtol=rtol, atol=atol)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---- the array layer ------------------------------------------------------------------------------------
def test_device_array_follows_numpy(rng):
    a = rng.standard_normal((2, 3, 4))
    b = rng.standard_normal((3, 1)).astype(np.float32)
    A, B = ta.device_array.asarray(a), ta.device_array.asarray(b)
    cases = {
        "broadcast add, mixed dtypes": (A + B, a + b),
        "scalar on the left": (1 - A, 1 - a),
        "true division of ints": (ta.device_array.arange(5) / 2, np.arange(5) / 2),
        "ufuncs": (np.tanh(np.exp(A) * np.sign(A)), np.tanh(np.exp(a) * np.sign(a))),
        "maximum": (np.maximum(A, 0.1), np.maximum(a, 0.1)),
        "compare and where": (np.where(A > 0, A, B), np.where(a > 0, a, b)),
        "sum over axes": (A.sum(axis=(0, 2), keepdims=True), a.sum(axis=(0, 2), keepdims=True)),
        "mean, max, argmax": (np.stack([A.mean(-1), A.max(-1), A.argmax(-1)]), np.stack([a.mean(-1), a.max(-1), a.argmax(-1)])),
        "count of trues": ((A > 0).sum(), (a > 0).sum()),
        "transposed view": (A.transpose(2, 0, 1)[1:, :, ::2] * 1, a.transpose(2, 0, 1)[1:, :, ::2]),
        "none and ellipsis": (A[None, 0, ..., 1], a[None, 0, ..., 1]),
        "integer-array index": (A[:, [2, 0, 2]], a[:, [2, 0, 2]]),
        "take along axis": (np.take_along_axis(A[0], ta.device_array.asarray([[1], [3], [0]]), 1),
                            np.take_along_axis(a[0], np.array([[1], [3], [0]]), 1)),
        "concatenate, split": (np.concatenate(np.split(A, [1], axis=2)[::-1], axis=2),
                               np.concatenate(np.split(a, [1], axis=2)[::-1], axis=2)),
        "astype": (A.astype(np.float32), a.astype(np.float32)),
    }
    for name, (got, want) in cases.items():
        got = got.get()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)

    z, Z = np.zeros((3, 4)), ta.device_array.zeros((3, 4), np.float64)
    np.add.at(z, ([0, 2, 0], [1, 1, 1]), a[0, 0, :3])  # repeated positions add up
    np.add.at(Z, ([0, 2, 0], [1, 1, 1]), A[0, 0, :3])
    np.testing.assert_allclose(Z.get(), z)
    C, c = A.copy(), a.copy()
    C[:, 1] = 5.0
    c[:, 1] = 5.0
    C += B
    c += b
    np.testing.assert_allclose(C.get(), c, rtol=1e-6)


def test_device_arrays_never_reach_the_host_implicitly():
    x = ta.device_array.zeros((2, 3))
    with pytest.raises(TypeError, match="copy it to the host with .get()"):
        np.asarray(x)
    with pytest.raises(ValueError, match="cpu .numpy. array of shape .2, 3.: both operands must be on the same device"):
        x + np.ones((2, 3))


# ---- tensors and devices ----------------------------------------------------------------------------------
def test_to_cuda_and_back(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x = ta.tensor(a, requires_grad=True)
    g = x.to("cuda")
    assert g.device == "cuda" and g.device == ta.cuda.device("cuda:0") and str(g.device) == "cuda:0" and g.is_cuda
    assert isinstance(g._array, DeviceArray) and g.to("cuda") is g and g.cuda() is g
    assert "device='cuda:0'" in repr(g)
    np.testing.assert_array_equal(g.numpy(), a)  # .numpy() copies to the host
    back = g.cpu()
    assert back.device == "cpu" and isinstance(back._array, np.ndarray)
    (back * 3).sum().backward()  # .to(device) is differentiable: the gradient comes back to x
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 3.0))
    assert g.to(ta.float64).dtype == ta.float64 and g.to("cpu", ta.float64).device == "cpu"


def test_factories_make_tensors_on_the_device():
    ta.manual_seed(3)
    host = ta.randn(2, 3)
    ta.manual_seed(3)
    dev = ta.randn(2, 3, device="cuda")
    np.testing.assert_array_equal(dev.numpy(), host.numpy())  # one generator: the same values
    for t, want in ((ta.zeros(2, 2, device="cuda"), 0), (ta.ones(3, device="cuda", dtype=ta.float64), 1),
                    (ta.full((2,), 7, device="cuda"), 7), (ta.zeros_like(dev), 0)):
        assert t.device == "cuda"
        np.testing.assert_array_equal(t.numpy(), np.full(t.shape, want))
    assert ta.arange(4, device="cuda").numpy().tolist() == [0, 1, 2, 3]
    assert ta.tensor([[1, 2]], device="cuda").dtype == ta.int64


def test_mixing_devices_is_an_error_naming_both():
    x, y = ta.randn(2, 3, device="cuda"), ta.randn(2, 3)
    for call in (lambda: x + y, lambda: y * x, lambda: ta.matmul(x, y.T)):
        with pytest.raises(RuntimeError, match="same device, got one on (cuda|cpu) .* one on (cpu|cuda)"):
            call()
    with pytest.raises(RuntimeError, match="same device"):
        F.cross_entropy(x, ta.tensor([0, 1]))


def test_no_gpu_raises_a_clear_error_that_mentions_the_simulator(monkeypatch):
    from tinyattn import backend

    monkeypatch.setattr(ta.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backend, "_cuda", None)
    with pytest.raises(RuntimeError, match="CUDA is not available.*simulator.*NUMBA_ENABLE_CUDASIM=1"):
        ta.randn(2).to("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        nn.Linear(2, 2).to("cuda")


# ---- every op: GPU = CPU, forward and backward --------------------------------------------------------------
def _ops(rng):
    n = 2 * SCALE
    x = rng.standard_normal((n, 3, 5))
    y = rng.standard_normal((3, 1))
    pos = 0.5 + np.abs(rng.standard_normal((n, 5)))
    mask = rng.standard_normal((n, 3, 5)) > 0
    return {
        "arithmetic, broadcast": (lambda a, b: (a + b) * (a - b) / (b * b + 1) - 2 * a, x, y),
        "pow, neg, abs": (lambda a: -(a**2) + abs(a) ** 3, x),
        "exp, log, sqrt": (lambda a: a.exp() + a.log() + a.sqrt(), pos),
        "tanh, sigmoid, relu, gelu": (lambda a: a.tanh() + a.sigmoid() + F.relu(a) + F.gelu(a), x),
        "maximum with ties": (lambda a, b: ta.maximum(a, b), np.round(x), np.round(y)),
        "where, masked_fill": (lambda a, b: ta.where(ta.tensor(mask, device=a.device), a, b).masked_fill(
            ta.tensor(~mask, device=a.device), 1.5), x, y),
        "sum, mean, var": (lambda a: (a.sum(1, keepdim=True) * a.mean((0, 1))).sum(-1) + a.var(2).sum(0), x),
        "amax, max(dim)": (lambda a: a.amax(1, keepdim=True) + ta.max(a, dim=-1).values.unsqueeze(-1), np.round(x, 1)),
        "softmax, log_softmax": (lambda a: a.softmax(1) * 2 + a.log_softmax(-1), x),
        "layer_norm": (lambda a, w, b: F.layer_norm(a, (5,), w, b), x, rng.standard_normal(5), rng.standard_normal(5)),
        "matmul, batched and broadcast": (lambda a, b: a @ b, x, rng.standard_normal((5, 4))),
        "matmul, batch broadcast": (lambda a, b: a @ b, x[:, None], rng.standard_normal((2, 1, 5, 3))),
        "linear": (lambda a, w, b: F.linear(a, w, b), x, rng.standard_normal((4, 5)), rng.standard_normal(4)),
        "linear after gelu and relu (their backward inside the product)": (
            lambda a, w1, w2: F.linear(F.gelu(F.linear(a, w1)), w2) + F.linear(F.relu(F.linear(a, w1)), w2),
            x, rng.standard_normal((4, 5)), rng.standard_normal((6, 4))),
        "reshape, permute, expand": (lambda a: a.permute(2, 0, 1).reshape(5, -1).T.unsqueeze(0).expand(2, -1, -1) * 1, x),
        "indexing": (lambda a: (a[1:, ::2, [4, 0, 4]], a[..., 2:3][[0, 1, 0]]), x),
        "cat, stack, unbind": (lambda a, b: ta.cat([a, ta.stack(a.unbind(1), 1)], 0) * b, x, y),
        "dropout (one host generator: the same mask)": (lambda a: (ta.manual_seed(5), F.dropout(a, 0.4))[1], x),
        "mse_loss": (lambda a, b: F.mse_loss(a, b), x, x[::-1].copy()),
    }


@pytest.mark.parametrize("name", list(_ops(np.random.default_rng(0))))
def test_op_on_gpu_matches_cpu(name):
    fn, *arrays = _ops(np.random.default_rng(1))[name]
    both(fn, *arrays)


def test_float32_ops_on_gpu_match_cpu(rng):
    x = rng.standard_normal((4, 6))
    both(lambda a, w: F.gelu(F.layer_norm(a @ w, (3,))).softmax(-1), x, rng.standard_normal((6, 3)),
         dtype=ta.float32, rtol=1e-5, atol=1e-6)


def test_embedding_and_cross_entropy_on_gpu(rng):
    V, D = 7, 4
    idx = rng.integers(0, V, size=(3, 5))
    target = rng.integers(0, V, size=(15,))
    target[2] = -100  # ignored
    both(lambda w, i, t: F.cross_entropy(F.embedding(i, w).reshape(-1, V // 7 * D) @ w.T, t),
         rng.standard_normal((V, D)), idx, target)
    with pytest.raises(ValueError, match="embedding: index value 9 is out of range"):
        F.embedding(ta.tensor([[9]], device="cuda"), ta.randn(V, D, device="cuda"))


@pytest.mark.parametrize("case", ["plain", "causal", "window", "bool mask", "key padding", "float mask", "composite"])
def test_attention_on_gpu_matches_cpu(case, rng):
    B, H, L, S, E = 2, 2, 3 * SCALE, 5 * SCALE, 4
    q, k, v = rng.standard_normal((B, H, L, E)), rng.standard_normal((B, H, S, E)), rng.standard_normal((B, H, S, 3))
    masks = {
        "bool mask": rng.standard_normal((L, S)) > -0.5,
        "key padding": np.arange(S)[None, None, None, :] < np.array([S, 0]).reshape(B, 1, 1, 1),  # a dead batch
        "float mask": rng.standard_normal((1, H, L, S)),
    }

    def attend(q, k, v):
        kwargs = dict(is_causal=case == "causal", window=1 if case == "window" else None)
        mask = masks.get(case)
        if case == "composite":
            return ta.functional.attention_composite(q, k, v, **kwargs)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kwargs)

    both(attend, q, k, v)


def test_multihead_attention_forward_backward_on_gpu(rng):
    E, H, B, L = 8, 2, 2, 3 * SCALE
    x = rng.standard_normal((B, L, E))
    ta.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=True, dtype=ta.float64)
    padding = np.zeros((B, L), bool)
    padding[1, -1] = True
    results = []
    for device in ("cpu", "cuda"):
        mha.to(device)
        mha.zero_grad()
        t = ta.tensor(x, device=device, requires_grad=True)
        out, weights = mha(t, t, t, key_padding_mask=ta.tensor(padding, device=device), need_weights=False)
        assert weights is None and out.device == device
        (out * out).sum().backward()
        results.append([out.numpy(), t.grad.numpy()] + [p.grad.numpy() for p in mha.parameters()])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-9, atol=1e-10)


def _reverse_model():
    import examples.reverse as reverse

    ta.manual_seed(0)
    return reverse.ReverseTransformer(vocab=5, seq_len=4, d_model=8, nhead=2, num_layers=1, dim_feedforward=16)


def _train(model, device, steps, rng, vocab=5, seq_len=4, batch=3):
    model.to(device, ta.float64)  # float64: Adam's m/√v would blow float32 rounding noise up to ±lr
    opt = ta.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x = rng.integers(0, vocab, size=(batch, seq_len))
        logits = model(ta.tensor(x, device=device))
        loss = F.cross_entropy(logits.reshape(-1, vocab), ta.tensor(x[:, ::-1].reshape(-1), device=device))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss)
    return [l.item() for l in losses], [p.numpy() for p in model.parameters()]


def test_reverse_model_trains_the_same_on_gpu_and_cpu():
    cpu_losses, cpu_params = _train(_reverse_model(), "cpu", 3, np.random.default_rng(0))
    gpu_losses, gpu_params = _train(_reverse_model(), "cuda", 3, np.random.default_rng(0))
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    for c, g in zip(cpu_params, gpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_a_training_step_copies_nothing_to_the_host(monkeypatch):
    """Device to host: only the index range checks of embedding and cross_entropy, one flag each.
    Host to device, once the first step has cached its constants: nothing (the batch is uploaded by
    the caller; the Adam update takes its changing scalars as kernel arguments)."""
    from numba import cuda

    model = _reverse_model().to("cuda")
    opt = ta.optim.Adam(model.parameters(), lr=1e-2)
    x = np.random.default_rng(0).integers(0, 5, size=(3, 4))
    tokens, target = ta.tensor(x, device="cuda"), ta.tensor(x[:, ::-1].reshape(-1), device="cuda")

    def step():
        loss = F.cross_entropy(model(tokens).reshape(-1, 5), target)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    reads, uploads = [], []
    real_get, real_to_device = DeviceArray.get, cuda.to_device

    def counting_get(self):
        reads.append(self.shape)
        return real_get(self)

    def counting_to_device(array, *args, **kwargs):
        uploads.append(np.shape(array))
        return real_to_device(array, *args, **kwargs)

    monkeypatch.setattr(DeviceArray, "get", counting_get)
    monkeypatch.setattr(cuda, "to_device", counting_to_device)
    step()
    assert reads == [(), ()], reads
    assert uploads == [], uploads


def test_elementwise_launches_merge_contiguous_axes():
    """The kernels divide once per axis per element to find it: contiguous views launch as one axis."""
    from tinyattn.device_array import _launch_args

    x = ta.device_array.zeros((2, 3, 4))
    assert _launch_args(x.shape, x, x)[-1] == (24,)
    t = x.transpose(1, 0, 2)  # steps (4, 12, 1): no two axes join
    assert _launch_args(t.shape, t)[-1] == (3, 2, 4)
    row = ta.device_array.zeros((1, 3, 1)).broadcast_to((2, 3, 4))  # steps (0, 1, 0)
    assert _launch_args(row.shape, row, x)[-1] == (2, 3, 4)
    assert _launch_args((2, 1, 4), x[:, :1])[-1] == (2, 4)  # size-1 axes dropped
    assert _launch_args((), ta.device_array.zeros(()))[-1] == (1,)


# ---- real sizes: only on a GPU (the simulator would take hours) ---------------------------------------------
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="real-size CUDA tests need a GPU; the simulator runs the tiny versions above")


@needs_gpu
@pytest.mark.parametrize("M, K, N", [(512, 384, 640), (1000, 64, 257), (33, 1024, 65)])
def test_gpu_matmul_real_sizes(M, K, N, rng):
    both(lambda a, b: a @ b, rng.standard_normal((2, M, K)), rng.standard_normal((K, N)), rtol=1e-9, atol=1e-9)
    both(lambda a, b: a @ b, rng.standard_normal((M, K)), rng.standard_normal((K, N)),
         dtype=ta.float32, rtol=2e-4, atol=2e-4)


@needs_gpu
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_attention_real_sizes(causal, rng):
    B, H, L, E = 2, 4, 300, 64
    q, k, v = (rng.standard_normal((B, H, L, E)) for _ in range(3))
    both(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), q, k, v, rtol=1e-8, atol=1e-9)


@needs_gpu
def test_gpu_softmax_layer_norm_real_sizes(rng):
    x = rng.standard_normal((1000, 777))
    both(lambda a: F.layer_norm(a, (777,)).softmax(-1).log(), x, rtol=1e-8, atol=1e-9)


@needs_gpu
def test_gpu_reverse_model_full_size_steps():
    import examples.reverse as reverse

    results = []
    for device in ("cpu", "cuda"):
        ta.manual_seed(0)
        model = reverse.ReverseTransformer()  # the example's full size: vocab 16, T 32, d_model 64
        results.append(_train(model, device, 3, np.random.default_rng(0), vocab=16, seq_len=32, batch=32))
    (cpu_losses, cpu_params), (gpu_losses, gpu_params) = results
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-9)
    for c, g in zip(cpu_params, gpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("make", [
    lambda ps: ta.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: ta.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
], ids=["SGD momentum", "AdamW"])
def test_optimizer_updates_on_gpu_match_cpu(make, rng):
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    results = []
    for device in ("cpu", "cuda"):
        ta.manual_seed(1)
        model = nn.Linear(3, 2, dtype=ta.float64).to(device)
        opt = make(model.parameters())
        for _ in range(3):
            loss = F.mse_loss(model(ta.tensor(x, device=device)), ta.tensor(y, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert all(isinstance(p._array, DeviceArray) == (device == "cuda") for p in model.parameters())
        state = opt.state_dict()  # host copies, so a checkpoint saves the same from either device
        results.append([p.numpy() for p in model.parameters()]
                       + [v for i in sorted(state["state"], key=int) for _, v in sorted(state["state"][i].items())])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12)


def test_optimizer_checkpoint_with_two_groups_resumes_on_the_gpu(rng):
    """A CPU run's optimizer state_dict loads into an optimizer over the GPU model: its state lands on
    the GPU and the next steps match the CPU run's."""
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    models, opts = [], []
    for device in ("cpu", "cuda"):
        ta.manual_seed(1)
        model = nn.Linear(3, 2, dtype=ta.float64).to(device)
        models.append(model)
        opts.append(ta.optim.AdamW([{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0,
                                                                  "lr": 0.01}], lr=0.05))

    def step(model, opt, device):
        loss = F.mse_loss(model(ta.tensor(x, device=device)), ta.tensor(y, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(models[0], opts[0], "cpu")
    models[1].load_state_dict(models[0].state_dict())
    opts[1].load_state_dict(opts[0].state_dict())
    assert all(isinstance(v, DeviceArray) for s in opts[1].state.values() for k, v in s.items() if k != "step")
    for _ in range(2):
        for model, opt, device in zip(models, opts, ("cpu", "cuda")):
            version = model.weight._version
            step(model, opt, device)
            assert model.weight._version > version
    for c, g in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(g.numpy(), c.numpy(), rtol=1e-10, atol=1e-12)


def test_checkpoint_moves_between_devices(tmp_path):
    ta.manual_seed(2)
    gpu_model = nn.Linear(3, 2).to("cuda")
    ta.save({"model": gpu_model.state_dict()}, tmp_path / "ckpt.npz")  # host copies in the file
    cpu_model = nn.Linear(3, 2)
    cpu_model.load_state_dict(ta.load(tmp_path / "ckpt.npz")["model"])
    back = nn.Linear(3, 2).to("cuda")
    back.load_state_dict(cpu_model.state_dict())  # a CPU state dict into a GPU model: copied over
    assert back.weight.device == "cuda"
    for a, b, c in zip(gpu_model.parameters(), cpu_model.parameters(), back.parameters()):
        np.testing.assert_array_equal(b.numpy(), a.numpy())
        np.testing.assert_array_equal(c.numpy(), a.numpy())


# ---- edge cases of the GPU paths: float masks in the composite attention, NaN/empty/overlapping device
# arrays, layers and initialisers, uint8 targets, optimizer state that follows its model, batched matmul
# past the grid's z limit ----------------------------------------------------------------------------------
def test_float_attention_masks_in_the_composite_paths_on_gpu(rng):
    x = rng.standard_normal((2, 3, 4))
    mask = rng.standard_normal((3, 3))

    def mha(t, m):
        ta.manual_seed(0)
        layer = nn.MultiheadAttention(4, 2, batch_first=True, dtype=ta.float64).to(t.device)
        out, weights = layer(t, t, t, attn_mask=m)  # need_weights=True: the composite path
        return out, weights

    def self_attention(t, m):
        ta.manual_seed(0)
        return nn.SelfAttention(4, 4, 4, dtype=ta.float64).to(t.device)(t, attn_mask=m, need_weights=True)

    both(lambda t: mha(t, mask), x)  # a host (numpy) mask is copied to the layer's device
    both(lambda t: self_attention(t, mask), x)


def test_device_array_edge_cases_nan_empty_overlap_views_and_errors():
    nan = ta.tensor([float("nan"), 1.0], device="cuda")
    assert np.isnan(nan.exp().numpy()[0])
    empty = ta.zeros(0, 3, device="cuda")
    assert empty.exp().shape == (0, 3) and (-empty).shape == (0, 3)
    assert ta.zeros(2, 0, device="cuda").shape == (2, 0) and ta.ones(3, 0, 2, device="cuda").sum().item() == 0
    d = ta.device_array.asarray(np.arange(10.0))
    d[1:] = d[:-1]  # overlapping source and destination: a shift, as in numpy
    np.testing.assert_array_equal(d.get(), np.r_[0.0, np.arange(9.0)])
    d[:] = d[::-1]
    np.testing.assert_array_equal(d.get(), np.r_[np.arange(8.0, -1, -1), 0.0])
    u8 = ta.device_array.asarray(np.array([1, 200], np.uint8))
    assert (u8 == -100).get().tolist() == [False, False] and (u8 < 300).get().tolist() == [True, True]
    x = ta.device_array.asarray(np.arange(24.0).reshape(2, 3, 4))
    h = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(np.take(x, [2, 0], axis=2).get(), np.take(h, [2, 0], axis=2))
    idx = np.array([[[-1], [0], [-2]]] * 2)
    np.testing.assert_array_equal(np.take_along_axis(x, ta.device_array.asarray(idx), 2).get(), np.take_along_axis(h, idx, 2))
    assert x[True].shape == (1, 2, 3, 4) and ta.ones(2, device="cuda")[True].shape == (1, 2)
    flat = x.flatten()
    flat[0] = -1.0  # flatten copies
    assert x[0, 0, 0].item() == 0.0
    view = np.expand_dims(x.transpose(2, 0, 1), 1)  # a view, even of a non-contiguous array
    assert view.buf is x.buf
    with pytest.raises(ValueError, match="broadcast view, which is read-only"):
        ta.ones(1, 3, device="cuda").expand(2, 3).zero_()
    b = ta.device_array.asarray(np.array([True, False]))
    assert (True ^ b).get().tolist() == [False, True] and b.max().item() and not b.min().item()
    with pytest.raises(TypeError, match="bool arrays only"):
        ta.device_array.arange(3) & 1
    with pytest.raises(np.exceptions.AxisError):
        x.sum(axis=3)
    with pytest.raises(TypeError, match="cannot cast"):
        ints = ta.device_array.arange(3)
        ints += 1.5
    assert [p.shape for p in np.split(x, 2, axis=2)] == [(2, 3, 2), (2, 3, 2)]


def test_conv1d_rnn_and_xavier_init_on_gpu_match_cpu(rng):
    x = rng.standard_normal((2, 3, 5))

    def conv(t):
        ta.manual_seed(0)
        return nn.Conv1d(3, 2, 2, padding=1, dtype=ta.float64).to(t.device)(t)

    def rnn(t):
        ta.manual_seed(0)
        return nn.RNN(5, 4, batch_first=True, dtype=ta.float64).to(t.device)(t)[0]

    both(conv, x)
    both(rnn, x)
    w = nn.Parameter(ta.zeros(4, 3, device="cuda"))
    ta.manual_seed(4)
    nn.init.xavier_uniform_(w)
    ta.manual_seed(4)
    assert np.array_equal(w.numpy(), nn.init.xavier_uniform_(nn.Parameter(ta.zeros(4, 3))).numpy())


def test_masked_fill_with_a_tensor_value_and_uint8_targets_on_gpu(rng):
    x = rng.standard_normal((2, 3))
    mask = x > 0
    both(lambda t: t.masked_fill(ta.tensor(mask, device=t.device), ta.tensor(5.0, device=t.device, dtype=t.dtype)), x)
    target = np.array([0, 2], np.uint8)
    both(lambda t: F.cross_entropy(t, ta.tensor(target, device=t.device)), x)


def test_optimizer_state_follows_its_model_to_the_gpu_and_to_takes_non_blocking():
    model = nn.Linear(2, 1)
    opt = ta.optim.Adam(model.parameters(), lr=0.1)
    for device in ("cpu", "cuda"):
        model.to(device, non_blocking=True)
        loss = model(ta.ones(3, 2, device=device)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()  # the state made on the CPU moves with the model instead of failing half-way
    assert all(p.device == "cuda" for p in model.parameters())
    assert opt.state[model.weight]["step"] == 2


def test_matmul_batches_beyond_the_grid_z_limit(monkeypatch, rng):
    from tinyattn.kernels.cuda import matmul

    monkeypatch.setattr(matmul, "MAX_GRID_Z", 2)  # the real limit, 65535, is too big to reach here
    both(lambda a, b: a @ b, rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 4, 2)))


@st.composite
def _views(draw):
    """A host array and a non-contiguous view of it: permuted axes, a stepped slice, a broadcast partner."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    base = np.arange(np.prod(shape) * 2, dtype=np.float64).reshape(shape[:-1] + (shape[-1] * 2,)) / 7 - 1
    perm = draw(st.permutations(range(ndim)))
    partner_shape = tuple(1 if draw(st.booleans()) else n for n in np.transpose(base[..., ::2], perm).shape)
    return base, tuple(perm), partner_shape[draw(st.integers(0, ndim - 1)):]


@settings(max_examples=15, deadline=None)
@given(_views(), st.sampled_from(["add", "mul", "div", "maximum", "where", "sum", "max", "setitem"]))
def test_device_views_match_numpy(case, op):
    base, perm, partner_shape = case
    host = np.transpose(base[..., ::2], perm)  # a stepped, permuted view
    dev = np.transpose(ta.device_array.asarray(base)[..., ::2], perm)
    other = np.cos(np.arange(int(np.prod(partner_shape)))).reshape(partner_shape)
    dev_other = ta.device_array.asarray(other)
    if op == "setitem":
        host, dev = host.copy(), dev.copy()
        host[...] = other
        dev[...] = dev_other
        want, got = host, dev
    elif op == "where":
        want, got = np.where(host > 0, host, other), np.where(dev > 0, dev, dev_other)
    elif op in ("sum", "max"):
        axis = tuple(range(0, host.ndim, 2))
        want, got = getattr(host, op)(axis=axis, keepdims=True), getattr(dev, op)(axis=axis, keepdims=True)
    else:
        fn = {"add": np.add, "mul": np.multiply, "div": np.divide, "maximum": np.maximum}[op]
        want, got = fn(host, other + 2), fn(dev, dev_other + 2)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.get(), want, rtol=1e-12, atol=1e-12)


def test_gradcheck_runs_on_gpu_tensors(rng):
    """The GPU backward passes, checked against finite differences on the GPU itself."""
    def leaf(*shape):
        return ta.tensor(rng.standard_normal(shape), dtype=ta.float64, device="cuda", requires_grad=True)

    q, k, v = leaf(1, 2, 3, 4), leaf(1, 2, 4, 4), leaf(1, 2, 4, 2)
    mask = ta.tensor(rng.standard_normal((3, 4)) > -0.5, device="cuda")
    ta.testing.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), [q, k, v], name="sdpa")
    x, w, b = leaf(3, 5), leaf(5), leaf(5)
    ta.testing.gradcheck(lambda x, w, b: F.gelu(F.layer_norm(x, (5,), w, b)).log_softmax(-1), [x, w, b], name="ln")
    with pytest.raises(ta.testing.GradcheckError, match="gradient of input 0"):
        ta.testing.gradcheck(WrongSquare.apply, [leaf(2, 3)], name="wrong")
