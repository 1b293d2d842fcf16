"""Module bookkeeping, layers and gradient clipping (optimisers: test_optim.py; checkpoints:
test_serialization.py)."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.testing import gradcheck

from conftest import leaf, module_gradcheck


class TwoLayer(nn.Module):
    def __init__(self, dtype=None):
        super().__init__()
        self.fc1 = nn.Linear(3, 4, dtype=dtype)
        self.norm = nn.LayerNorm(4, dtype=dtype)
        self.fc2 = nn.Linear(4, 2, dtype=dtype)
        self.drop = nn.Dropout(0.5)
        self.scale = nn.Parameter(ta.ones(1, dtype=dtype or ta.float32))

    def forward(self, x):
        return self.fc2(self.drop(nn.functional.gelu(self.norm(self.fc1(x))))) * self.scale


def test_registration_and_state_dict_keys():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight", "fc2.bias"]
    assert sum(p.numel() for p in m.parameters()) == 1 + 16 + 8 + 10
    assert set(m.state_dict()) == set(names)
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and len(ml) == 3


def test_train_eval_switches_dropout():
    m = TwoLayer()
    x = ta.randn(5, 3)
    m.eval()
    assert not m.drop.training
    np.testing.assert_array_equal(m(x).numpy(), m(x).numpy())
    m.train()
    assert m.drop.training


def test_dropout_module_drops_about_p_in_training_and_nothing_in_eval():
    ta.manual_seed(0)
    layer = nn.Dropout(0.5)
    x = ta.ones(1000)
    assert (layer(x).numpy() == 0).mean() > 0.4
    assert (layer.eval()(x).numpy() == 1).all()


def test_layers_gradcheck_as_a_whole(rng):
    ta.manual_seed(0)
    m = TwoLayer(dtype=ta.float64).eval()
    x = leaf(rng, 5, 3)
    assert gradcheck(lambda x, *p: m(x), [x, *m.parameters()], name="TwoLayer")
    emb = nn.Embedding(5, 3, dtype=ta.float64)
    idx = ta.tensor([[0, 4], [4, 1]])
    assert gradcheck(lambda w: emb(idx), [emb.weight], name="Embedding")


def test_load_state_dict_checks_keys_and_shapes_before_copying():
    a, b = TwoLayer(), TwoLayer()
    b.load_state_dict(a.state_dict())
    x = ta.randn(2, 3)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    state = a.state_dict()
    missing = {k: v for k, v in state.items() if k != "fc2.bias"}
    with pytest.raises(RuntimeError, match=r"missing keys \['fc2.bias'\]"):
        b.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r"unexpected keys \['extra'\]"):
        b.load_state_dict({**state, "extra": ta.zeros(1)})
    before = b.fc1.weight.numpy().copy()
    bad = {**state, "fc1.weight": state["fc1.weight"] * 2, "fc2.weight": ta.zeros(3, 3)}
    with pytest.raises(ValueError, match=r"key 'fc2.weight' has shape \(3, 3\), the model expects \(2, 4\)"):
        b.load_state_dict(bad)
    np.testing.assert_array_equal(b.fc1.weight.numpy(), before)  # nothing half-loaded
    result = b.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["fc2.bias"]


def test_module_to_dtype_and_zero_grad():
    m = TwoLayer()
    m(ta.randn(2, 3)).sum().backward()
    assert m.fc1.weight.grad is not None
    m.zero_grad()
    assert m.fc1.weight.grad is None
    m.to(ta.float64)
    assert all(p.dtype == ta.float64 for p in m.parameters())


def test_identity_returns_its_input_and_takes_any_arguments():
    x = ta.randn(2, 3)
    assert nn.Identity(54, unused="x")(x) is x
    assert list(nn.Identity().parameters()) == []


def test_module_dict_keeps_order_registers_and_refuses_bad_keys():
    md = nn.ModuleDict({"enc": nn.Linear(3, 4), "dec": nn.Linear(4, 2)})
    assert list(md.keys()) == ["enc", "dec"] and len(md) == 2 and "enc" in md
    assert md["enc"] is md.enc
    assert [k for k, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    md["act"] = nn.ReLU()
    md.update([("out", nn.Linear(2, 1))])
    assert list(md) == ["enc", "dec", "act", "out"]
    replacement = nn.Linear(3, 4, bias=False)
    md["enc"] = replacement  # keeps its place
    assert list(md) == ["enc", "dec", "act", "out"] and md.enc is replacement
    assert "enc.bias" not in md.state_dict()
    popped = md.pop("act")
    assert isinstance(popped, nn.ReLU) and "act" not in md and not hasattr(md, "act")
    del md["out"]
    assert list(md.keys()) == ["enc", "dec"]
    x = ta.randn(5, 3)
    assert md["dec"](md["enc"](x)).shape == (5, 2)
    outer = nn.ModuleDict({"inner": md})
    assert "inner.dec.bias" in outer.state_dict()
    md.clear()
    assert len(md) == 0 and list(md.parameters()) == []
    with pytest.raises(KeyError, match=r"no module under 'nope'; keys are \[\]"):
        md["nope"]
    with pytest.raises(KeyError, match="would shadow the attribute ModuleDict.keys"):
        md["keys"] = nn.ReLU()
    with pytest.raises(KeyError, match="without '.'"):
        md["a.b"] = nn.ReLU()
    with pytest.raises(TypeError, match="keys must be strings"):
        md[1] = nn.ReLU()
    with pytest.raises(TypeError, match="expected a Module under 'x', got int"):
        md["x"] = 3
    with pytest.raises(TypeError, match="element 0 should be a \\(key, module\\) pair"):
        md.update([nn.ReLU()])


def test_linear_init_matches_pytorch_bounds():
    ta.manual_seed(0)
    lin = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    assert np.abs(lin.weight.numpy()).max() <= bound and np.abs(lin.weight.numpy()).max() > 0.95 * bound
    assert np.abs(lin.bias.numpy()).max() <= bound


# ---- gradient clipping (the optimisers and schedules are in test_optim.py) ----------------


def test_clip_grad_norm():
    a, b = nn.Parameter(ta.zeros(2)), nn.Parameter(ta.zeros(1))
    a.grad, b.grad = ta.tensor([3.0, 0.0]), ta.tensor([4.0])
    norm = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert norm.item() == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad.numpy(), b.grad.numpy()]), [0.6, 0.0, 0.8], rtol=1e-5)
    assert nn.utils.clip_grad_norm_([a, b], max_norm=10.0).item() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.0], rtol=1e-5)


def test_clip_grad_norm_accepts_a_single_tensor():
    p = nn.Parameter(ta.tensor([3.0, 4.0]))
    p.grad = ta.tensor([30.0, 40.0])
    assert nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(50.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)


def test_clip_grad_norm_of_huge_float32_gradients_scales_them_instead_of_zeroing():
    # Σ g² overflows float32 here (1e50): the norm is then summed in float64, as before the BLAS fast path
    p, q = nn.Parameter(ta.zeros(2)), nn.Parameter(ta.zeros(1))
    p.grad, q.grad = ta.tensor([3e25, 0.0]), ta.tensor([4e25])
    assert nn.utils.clip_grad_norm_([p, q], max_norm=1.0).item() == pytest.approx(5e25, rel=1e-6)
    np.testing.assert_allclose(np.concatenate([p.grad.numpy(), q.grad.numpy()]), [0.6, 0.0, 0.8], rtol=1e-5)


# ---- the lecture's baselines, the encoder layer and the encoder stack -----------------------


def test_conv1d_matches_a_direct_loop_and_gradchecks(rng):
    conv = nn.Conv1d(2, 3, kernel_size=3, padding=1, dtype=ta.float64)
    x = leaf(rng, 2, 2, 5)
    w, b = conv.weight.numpy(), conv.bias.numpy()
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1)))
    ref = np.zeros((2, 3, 5))
    for n in range(2):
        for o in range(3):
            for t in range(5):
                ref[n, o, t] = b[o] + np.sum(w[o] * xp[n, :, t : t + 3])
    np.testing.assert_allclose(conv(x).numpy(), ref, rtol=1e-12)
    assert module_gradcheck(conv, x, name="Conv1d")
    strided = nn.Conv1d(2, 1, kernel_size=2, stride=2, dtype=ta.float64)
    assert strided(x).shape == (2, 1, 2)
    assert module_gradcheck(strided, x, name="Conv1d-stride")


def test_rnn_matches_the_recurrence_and_gradchecks(rng):
    rnn = nn.RNN(3, 4, batch_first=True, dtype=ta.float64)
    x = leaf(rng, 2, 5, 3)
    out, h = rnn(x)
    hs = np.zeros((2, 4))
    p = {n: t.numpy() for n, t in rnn.named_parameters()}
    for t in range(5):
        hs = np.tanh(x.numpy()[:, t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + hs @ p["weight_hh_l0"].T + p["bias_hh_l0"])
        np.testing.assert_allclose(out.numpy()[:, t], hs, rtol=1e-12)
    np.testing.assert_allclose(h.numpy()[0], hs, rtol=1e-12)
    h0 = leaf(rng, 1, 2, 4)
    assert gradcheck(lambda x, h0, *ps: rnn(x, h0)[0], [x, h0, *rnn.parameters()], name="RNN")


def test_rnn_matches_pytorch():
    torch = pytest.importorskip("torch")
    ref = torch.nn.RNN(3, 4, batch_first=True, dtype=torch.float64)
    rnn = nn.RNN(3, 4, batch_first=True, dtype=ta.float64)
    rnn.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out, h = rnn(ta.tensor(x))
    t_out, t_h = ref(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(h.numpy(), t_h.detach().numpy(), rtol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_encoder_layer_gradchecks(rng, causal):
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True, causal=causal,
                                       activation=nn.GELU(approximate="tanh"), norm_first=True, dtype=ta.float64)
    x = leaf(rng, 2, 3, 4)
    assert module_gradcheck(layer, x, name=f"TransformerEncoderLayer[causal={causal}]")
    if causal:  # position 0 must not see later positions
        y1 = layer(x).numpy()
        x2 = ta.tensor(x.numpy().copy())
        x2.data[:, 1:] += 1.0
        np.testing.assert_allclose(layer(x2).numpy()[:, 0], y1[:, 0], rtol=1e-12)


def test_transformer_encoder_layer_matches_pytorch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
                                           batch_first=True, norm_first=True, dtype=torch.float64).eval()
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, activation=nn.GELU(approximate="tanh"), norm_first=True,
                                       dtype=ta.float64)
    layer.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    np.testing.assert_allclose(layer(ta.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer(ta.tensor(x), is_causal=True).numpy(),
                               ref(torch.tensor(x), src_mask=mask, is_causal=True).detach().numpy(), rtol=1e-9, atol=1e-12)


def test_transformer_encoder_is_a_stack_of_deep_copies():
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, activation=nn.GELU(approximate="tanh"), norm_first=True)
    enc = nn.TransformerEncoder(layer, num_layers=3, norm=nn.LayerNorm(8))
    names = [k for k, _ in enc.named_parameters()]
    assert names[0] == "layers.0.self_attn.in_proj_weight" and "layers.2.linear2.bias" in names
    assert names[-2:] == ["norm.weight", "norm.bias"]
    assert len(names) == 3 * len(list(layer.parameters())) + 2
    first, second = enc.layers[0], enc.layers[1]
    assert first is not layer and first.linear1.weight is not second.linear1.weight
    np.testing.assert_array_equal(first.linear1.weight.numpy(), layer.linear1.weight.numpy())
    x = ta.randn(2, 5, 8)
    expected = x
    for m in enc.layers:
        expected = m(expected)
    np.testing.assert_allclose(enc(x).numpy(), enc.norm(expected).numpy(), rtol=1e-6)
    with ta.no_grad():
        first.linear1.weight.data[...] = 0  # the copies are independent
    assert not np.all(second.linear1.weight.numpy() == 0)
    bare = nn.TransformerEncoder(layer, 2)
    assert bare.norm is None and not any(k.startswith("norm") for k in bare.state_dict())
    with pytest.raises(ValueError, match="num_layers must be a non-negative int"):
        nn.TransformerEncoder(layer, -1)
    with pytest.raises(TypeError, match="encoder_layer must be a Module"):
        nn.TransformerEncoder("layer", 2)


def test_transformer_encoder_gradcheck_with_masks(rng):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, activation="relu", norm_first=True,
                                       dtype=ta.float64)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(4, dtype=ta.float64))
    x = leaf(rng, 2, 3, 4)
    pad = ta.tensor([[False, False, True], [False, False, False]])
    assert gradcheck(lambda t: enc(t, src_key_padding_mask=pad, is_causal=True), [x], name="TransformerEncoder")
    causal = enc(x, is_causal=True).numpy()
    mask = ta.tensor(np.triu(np.ones((3, 3), dtype=bool), 1))
    np.testing.assert_allclose(enc(x, mask=mask).numpy(), causal, rtol=1e-10)
