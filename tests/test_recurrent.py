"""nn.RNN / LSTM / GRU and their cells against PyTorch: names, shapes, init, outputs, gradients, errors."""
import inspect

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.testing import gradcheck

torch = pytest.importorskip("torch")

LAYERS = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("LSTM", {"proj_size": 2}), ("GRU", {}),
]


def _pair(name, kw, **common):
    ref = getattr(torch.nn, name)(3, 4, dtype=torch.float64, **kw, **common)
    ours = getattr(nn, name)(3, 4, dtype=ta.float64, **kw, **common)
    return ref, ours


def _state(h):
    return h if isinstance(h, tuple) else (h,)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_signature_is_pytorchs(name):
    ours = inspect.signature(getattr(nn, name))
    theirs = inspect.signature(getattr(torch.nn, name))
    if name in ("RNN", "LSTM", "GRU"):
        # torch's are (*args, **kwargs) wrappers: compare with the documented signature
        expected = {"RNN": ["input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
                            "dropout", "bidirectional", "device", "dtype"],
                    "LSTM": ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                             "bidirectional", "proj_size", "device", "dtype"],
                    "GRU": ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                            "bidirectional", "device", "dtype"]}[name]
        assert list(ours.parameters) == expected
        defaults = {k: v.default for k, v in ours.parameters.items() if v.default is not inspect.Parameter.empty}
        assert defaults == {k: v for k, v in {"num_layers": 1, "nonlinearity": "tanh", "bias": True,
                                              "batch_first": False, "dropout": 0.0, "bidirectional": False,
                                              "proj_size": 0, "device": None, "dtype": None}.items() if k in expected}
    else:
        assert [(p.name, p.default) for p in ours.parameters.values()] == \
               [(p.name, p.default) for p in theirs.parameters.values()]


@pytest.mark.parametrize("name,kw", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_matches_pytorch_outputs_and_gradients(name, kw, batch_first):
    ref, ours = _pair(name, kw, num_layers=2, bidirectional=True, batch_first=batch_first)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in ref.state_dict().values()]
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3) if batch_first else (5, 2, 3))
    out_size = kw.get("proj_size") or 4
    h0 = rng.standard_normal((4, 2, out_size))
    c0 = rng.standard_normal((4, 2, 4))
    hx_t = (torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True))
    hx_o = (ta.tensor(h0, requires_grad=True), ta.tensor(c0, requires_grad=True))
    if name != "LSTM":
        hx_t, hx_o = hx_t[0], hx_o[0]
    xt, xo = torch.tensor(x, requires_grad=True), ta.tensor(x, requires_grad=True)
    to, th = ref(xt, hx_t)
    oo, oh = ours(xo, hx_o)
    np.testing.assert_allclose(oo.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(_state(oh), _state(th)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal(to.shape)
    wh = [rng.standard_normal(t.shape) for t in _state(th)]
    ((to * torch.tensor(w)).sum() + sum((t * torch.tensor(v)).sum() for t, v in zip(_state(th), wh))).backward()
    ((oo * ta.tensor(w)).sum() + sum((t * ta.tensor(v)).sum() for t, v in zip(_state(oh), wh))).backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for a, b in zip(_state(hx_o), _state(hx_t)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)
    for (k, p), (k2, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert k == k2
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name,kw", LAYERS)
def test_our_weights_into_torch_and_unbatched_input(name, kw):
    ref, ours = _pair(name, kw, num_layers=1)
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((6, 3))  # unbatched (T, F)
    oo, oh = ours(ta.tensor(x))
    to, th = ref(torch.tensor(x))
    assert oo.shape == tuple(to.shape)
    np.testing.assert_allclose(oo.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(_state(oh), _state(th)):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kw", [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("LSTM", {"proj_size": 1})])
def test_gradcheck(name, kw):
    ta.manual_seed(0)
    m = getattr(nn, name)(2, 2, num_layers=2, bidirectional=True, dtype=ta.float64, **kw)
    rng = np.random.default_rng(2)
    x = ta.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    out_size = kw.get("proj_size") or 2
    h0 = ta.tensor(rng.standard_normal((4, 2, out_size)), requires_grad=True)
    if name == "LSTM":
        c0 = ta.tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
        fn = lambda x, h0, c0, *ps: (lambda o: (o[0], *o[1]))(m(x, (h0, c0)))  # noqa: E731
        assert gradcheck(fn, [x, h0, c0, *m.parameters()], name=name)
    else:
        assert gradcheck(lambda x, h0, *ps: m(x, h0), [x, h0, *m.parameters()], name=name)


def test_init_distribution_is_uniform_over_one_over_sqrt_hidden():
    ta.manual_seed(0)
    m = nn.LSTM(50, 25)
    bound = 1 / np.sqrt(25)
    for p in m.parameters():
        a = p.numpy()
        assert a.min() >= -bound and a.max() <= bound
        assert a.max() > 0.9 * bound and a.min() < -0.9 * bound  # not a narrower or one-sided range


def test_default_layout_is_sequence_first():
    m = nn.GRU(3, 4)
    out, h = m(ta.randn(7, 2, 3))
    assert out.shape == (7, 2, 4) and h.shape == (1, 2, 4)


def test_dropout_between_layers_only_in_training():
    ta.manual_seed(0)
    m = nn.RNN(3, 4, num_layers=2, dropout=1.0, dtype=ta.float64)
    x = ta.tensor(np.random.default_rng(0).standard_normal((4, 2, 3)))
    train_out, _ = m(x)
    # dropout 1 zeroes the second layer's input: its output is the input-free recurrence
    b = m.bias_ih_l1.numpy() + m.bias_hh_l1.numpy()
    h = np.zeros((2, 4))
    for t in range(4):
        h = np.tanh(b + h @ m.weight_hh_l1.numpy().T)
        np.testing.assert_allclose(train_out.numpy()[t], h, rtol=1e-12)
    m.eval()
    eval_out, _ = m(x)
    assert not np.allclose(eval_out.numpy(), train_out.numpy())
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.5)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_pytorch(name):
    ref = getattr(torch.nn, name)(3, 4, dtype=torch.float64)
    ours = getattr(nn, name)(3, 4, dtype=ta.float64)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3))
    h = rng.standard_normal((2, 4))
    if name == "LSTMCell":
        c = rng.standard_normal((2, 4))
        got = ours(ta.tensor(x), (ta.tensor(h), ta.tensor(c)))
        want = ref(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
        unb = ours(ta.tensor(x[0]))
        unb_want = ref(torch.tensor(x[0]))
    else:
        got, want = (ours(ta.tensor(x), ta.tensor(h)),), (ref(torch.tensor(x), torch.tensor(h)),)
        unb, unb_want = (ours(ta.tensor(x[0])),), (ref(torch.tensor(x[0])),)
    for a, b in zip(list(got) + list(unb), list(want) + list(unb_want)):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    xs = ta.tensor(x, requires_grad=True)
    hs = ta.tensor(h, requires_grad=True)
    if name == "LSTMCell":
        assert gradcheck(lambda x, h, *ps: ours(x, (h, h * 0.5)), [xs, hs, *ours.parameters()], name=name)
    else:
        assert gradcheck(lambda x, h, *ps: ours(x, h), [xs, hs, *ours.parameters()], name=name)


def test_errors_are_pytorchs():
    m = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        m(ta.randn(1, 2, 3, 3))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 5"):
        m(ta.randn(4, 2, 5))
    with pytest.raises(RuntimeError, match="Expected hidden size \\(2, 2, 4\\), got \\[1, 2, 4\\]"):
        m(ta.randn(4, 2, 3), (ta.zeros(1, 2, 4), ta.zeros(2, 2, 4)))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx\\[0\\] should also be 3-D"):
        m(ta.randn(4, 2, 3), (ta.zeros(2, 4), ta.zeros(2, 4)))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(3, 4, dropout=2.0)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
