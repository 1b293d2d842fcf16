"""tinyattn.nn's layers against torch.nn: constructor and forward signatures (names, order, defaults), state_dict
keys and shapes, initialisation ranges, outputs with copied weights, containers' list/dict behaviour."""
import inspect
from collections import OrderedDict

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.testing import gradcheck

torch = pytest.importorskip("torch")

LAYERS = ["Linear", "LayerNorm", "Embedding", "Dropout", "Flatten", "Unflatten", "GELU", "ReLU", "Tanh", "Sigmoid",
          "SiLU", "LeakyReLU", "Softmax", "LogSoftmax", "Conv1d", "MultiheadAttention", "ModuleList", "ModuleDict",
          "ParameterList", "ParameterDict", "ELU", "Softplus", "Mish", "Hardtanh", "ReLU6", "LogSigmoid"]


def _sig(obj):
    return [(p.name, p.default) for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


@pytest.mark.parametrize("name", LAYERS)
def test_constructor_signature_is_pytorchs(name):
    assert _sig(getattr(nn, name)) == _sig(getattr(torch.nn, name))


@pytest.mark.parametrize("name", ["Linear", "LayerNorm", "Embedding", "Dropout", "Flatten", "Unflatten", "GELU", "ReLU",
                                  "Tanh", "Sigmoid", "SiLU", "LeakyReLU", "Softmax", "LogSoftmax", "Conv1d",
                                  "MultiheadAttention"])
def test_forward_argument_names_are_pytorchs(name):
    ours = [n for n, _ in _sig(getattr(nn, name).forward)]
    theirs = [n for n, _ in _sig(getattr(torch.nn, name).forward)]
    assert ours == theirs


@pytest.mark.parametrize("make", [
    lambda m: m.Linear(3, 4), lambda m: m.Linear(3, 4, bias=False), lambda m: m.LayerNorm((2, 3)),
    lambda m: m.LayerNorm(3, bias=False), lambda m: m.LayerNorm(3, elementwise_affine=False),
    lambda m: m.Embedding(5, 3, padding_idx=1), lambda m: m.Conv1d(4, 6, 3, groups=2),
    lambda m: m.Conv1d(2, 3, 2, bias=False), lambda m: m.MultiheadAttention(4, 2, bias=False),
    lambda m: m.MultiheadAttention(4, 2, kdim=3, vdim=5),
    lambda m: m.Sequential(OrderedDict([("fc", m.Linear(2, 3)), ("act", m.Tanh()), ("out", m.Linear(3, 1))])),
])
def test_state_dict_keys_and_shapes_match(make):
    ours, theirs = make(nn), make(torch.nn)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert repr(ours).replace("NonDynamicallyQuantizableLinear", "Linear") == \
        repr(theirs).replace("NonDynamicallyQuantizableLinear", "Linear") or "MultiheadAttention" in repr(ours)


def test_initialisation_ranges():
    ta.manual_seed(0)
    lin = nn.Linear(64, 32)
    b = 1 / 8
    assert np.abs(lin.weight.numpy()).max() <= b and np.abs(lin.weight.numpy()).max() > 0.95 * b
    assert np.abs(lin.bias.numpy()).max() <= b
    emb = nn.Embedding(200, 50, padding_idx=3)
    w = emb.weight.numpy()
    assert np.all(w[3] == 0) and abs(w.std() - 1) < 0.05 and abs(w.mean()) < 0.05  # N(0, 1)
    conv = nn.Conv1d(4, 6, 5, groups=2)  # fan_in = 4/2 · 5 = 10
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(10)
    assert np.abs(conv.weight.numpy()).max() > 0.8 / np.sqrt(10)


def test_layers_accept_device_and_dtype():
    for layer in (nn.Linear(2, 3, device="cpu", dtype=ta.float64), nn.LayerNorm(3, device="cpu", dtype=ta.float64),
                  nn.Embedding(4, 3, device="cpu", dtype=ta.float64), nn.Conv1d(2, 2, 1, device="cpu", dtype=ta.float64),
                  nn.LSTM(2, 2, device="cpu", dtype=ta.float64), nn.TransformerEncoderLayer(4, 2, 8, device="cpu",
                                                                                       dtype=ta.float64)):
        assert {p.dtype for p in layer.parameters()} == {np.dtype(np.float64)}


@pytest.mark.parametrize("name,kw", [("GELU", {}), ("GELU", {"approximate": "tanh"}), ("SiLU", {}),
                                     ("LeakyReLU", {"negative_slope": 0.2}), ("Tanh", {}), ("Sigmoid", {}),
                                     ("ReLU", {}), ("Softmax", {"dim": 1}), ("LogSoftmax", {"dim": 0}),
                                     ("ELU", {"alpha": 0.5}), ("Softplus", {"beta": 2.0}), ("Mish", {}),
                                     ("Hardtanh", {"min_val": -0.5}), ("ReLU6", {}), ("LogSigmoid", {})])
def test_activations_match_torch_and_gradcheck(name, kw):
    x = np.random.default_rng(0).standard_normal((3, 4)) * 2
    ours, theirs = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
    xt = torch.tensor(x, requires_grad=True)
    xo = ta.tensor(x, requires_grad=True)
    np.testing.assert_allclose(ours(xo).numpy(), theirs(xt).detach().numpy(), rtol=1e-12, atol=1e-14)
    w = np.random.default_rng(1).standard_normal(x.shape)
    (ours(xo) * ta.tensor(w)).sum().backward()
    (theirs(xt) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    assert gradcheck(lambda t: ours(t), [ta.tensor(x, requires_grad=True)], name=name)


def test_gelu_default_is_exact_and_softmax_implicit_dim_warns():
    assert nn.GELU().approximate == "none"
    x = ta.tensor([1.0])
    assert abs(nn.GELU()(x).item() - 0.8413447460685429) < 1e-7  # Φ(1), not the tanh form's 0.8411920
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = nn.Softmax()(ta.zeros(2, 3))
    np.testing.assert_allclose(y.numpy(), np.full((2, 3), 1 / 3), rtol=1e-6)  # dim 1 for a 2-D input


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1}, {"padding": "same", "dilation": 2},
                                {"groups": 2, "padding": 2, "padding_mode": "reflect"},
                                {"padding": 3, "padding_mode": "circular"},
                                {"padding": 1, "padding_mode": "replicate", "bias": False, "groups": 4}])
def test_conv1d_matches_torch(kw):
    ref = torch.nn.Conv1d(4, 8, 3, dtype=torch.float64, **kw)
    ours = nn.Conv1d(4, 8, 3, dtype=ta.float64, **kw)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert repr(ours) == repr(ref)
    x = np.random.default_rng(0).standard_normal((2, 4, 7))
    xo, xt = ta.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), ref(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    yo.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours(ta.tensor(x[0])).numpy(), ref(torch.tensor(x[0])).detach().numpy(), rtol=1e-10,
                               atol=1e-12)  # unbatched (C, L)


def test_conv1d_positional_arguments_are_pytorchs():
    c = nn.Conv1d(2, 3, 3, 2)  # the fourth positional argument is stride, as in PyTorch
    assert c.stride == 2 and c.padding == 0
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv1d(2, 3, 3, 2, "same")


def test_embedding_padding_idx_and_max_norm_match_torch():
    ref = torch.nn.Embedding(6, 3, padding_idx=2, max_norm=1.0, dtype=torch.float64)
    ours = nn.Embedding(6, 3, padding_idx=2, max_norm=1.0, dtype=ta.float64)
    with torch.no_grad():
        ref.weight.mul_(3)
        ref.weight[2] = 5.0  # a non-zero padding row: looked up as it is, but never learns
    ours.load_state_dict({"weight": ref.weight.detach().numpy().copy()})
    idx = np.array([[0, 2, 4], [2, 2, 1]])
    yo, yt = ours(ta.tensor(idx)), ref(torch.tensor(idx))
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-7)
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), rtol=1e-7)  # renormed in place
    w = np.random.default_rng(0).standard_normal(yo.shape)
    (yo * ta.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert np.all(ours.weight.grad.numpy()[2] == 0)
    frozen = nn.Embedding.from_pretrained(ta.tensor(np.eye(3)))
    assert not frozen.weight.requires_grad and frozen(ta.tensor([1])).numpy().tolist() == [[0.0, 1.0, 0.0]]


def test_flatten_unflatten_dropout():
    x = ta.arange(24.0).reshape(2, 3, 4)
    assert nn.Flatten()(x).shape == (2, 12) and nn.Flatten(0, 1)(x).shape == (6, 4)
    assert nn.Unflatten(1, (3, 1))(x).shape == (2, 3, 1, 4) and nn.Unflatten(-1, (2, -1))(x).shape == (2, 3, 2, 2)
    with pytest.raises(RuntimeError, match="Unflatten"):
        nn.Unflatten(1, (2, 2))(x)
    d = nn.Dropout(0.5, inplace=False)
    assert repr(d) == repr(torch.nn.Dropout(0.5))
    d.eval()
    assert d(x) is x or np.array_equal(d(x).numpy(), x.numpy())


def test_containers_behave_like_pytorchs():
    layers = [nn.Linear(2, 2) for _ in range(4)]
    ml = nn.ModuleList(layers[:2])
    ml.extend(layers[2:3])
    ml.insert(0, layers[3])
    assert list(ml) == [layers[3], layers[0], layers[1], layers[2]]
    assert isinstance(ml[1:], nn.ModuleList) and list(ml[1:]) == layers[:3] and ml[-1] is layers[2]
    del ml[0]
    assert list(ml) == layers[:3] and [k.split(".")[0] for k in ml.state_dict()][::2] == ["0", "1", "2"]
    seq = nn.Sequential(OrderedDict([("a", nn.Linear(2, 3)), ("b", nn.Tanh()), ("c", nn.Linear(3, 1))]))
    assert list(seq.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and head(ta.zeros(1, 2)).shape == (1, 3) and seq.b is seq[1]
    pl = nn.ParameterList([ta.zeros(2), nn.Parameter(ta.ones(3))])
    pl.append(ta.zeros(1))
    assert isinstance(pl[0], nn.Parameter) and len(pl) == 3
    assert list(pl.state_dict()) == list(torch.nn.ParameterList([torch.zeros(2), torch.ones(3), torch.zeros(1)])
                                          .state_dict())
    pd = nn.ParameterDict({"w": ta.zeros(2), "b": ta.ones(1)})
    assert list(pd.keys()) == ["w", "b"] and isinstance(pd["w"], nn.Parameter) and "b" in pd
    holder = nn.Module()
    holder.params = pd
    assert [k for k, _ in holder.named_parameters()] == ["params.w", "params.b"]


def test_embedding_scale_grad_by_freq_matches_torch():
    ref = torch.nn.Embedding(5, 2, scale_grad_by_freq=True, padding_idx=4, dtype=torch.float64)
    ours = nn.Embedding(5, 2, scale_grad_by_freq=True, padding_idx=4, dtype=ta.float64)
    ours.load_state_dict({"weight": ref.weight.detach().numpy().copy()})
    idx = np.array([[1, 1, 3], [1, 4, 0]])
    w = np.random.default_rng(2).standard_normal((2, 3, 2))
    (ours(ta.tensor(idx)) * ta.tensor(w)).sum().backward()
    (ref(torch.tensor(idx)) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-12)
    assert np.all(ours(ta.tensor(idx)).numpy() == ref(torch.tensor(idx)).detach().numpy())
