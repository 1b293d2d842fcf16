"""nn.TransformerEncoderLayer/Encoder/DecoderLayer/Decoder/Transformer against PyTorch: signatures, defaults,
state_dict keys, outputs with copied weights (masks of both kinds, key padding), the fused decode step's guard."""
import inspect

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.nn import transformer as _transformer
from tinyattn.testing import gradcheck

torch = pytest.importorskip("torch")


def _params(sig):
    return [(p.name, p.default) for p in sig.parameters.values() if p.kind != p.KEYWORD_ONLY]


@pytest.mark.parametrize("name", ["TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
                                  "TransformerDecoder", "Transformer"])
def test_constructor_and_forward_signatures_are_pytorchs(name):
    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    a, b = _params(inspect.signature(ours)), _params(inspect.signature(theirs))
    assert [n for n, _ in a] == [n for n, _ in b]
    for (n, d1), (_, d2) in zip(a, b):
        if d2 is not inspect.Parameter.empty and callable(d2):  # activation=F.relu: the same function, each library's own
            assert d1 is ta.nn.functional.relu and d2 is torch.nn.functional.relu, n
        else:
            assert d1 == d2, n
    fa = _params(inspect.signature(ours.forward))
    fb = _params(inspect.signature(theirs.forward))
    assert [n for n, _ in fa] == [n for n, _ in fb]
    assert [d for _, d in fa] == [d if name != "TransformerEncoderLayer" or n != "is_causal" else None
                                  for n, d in fb]  # None: the layer's own causal flag (False unless set)


def _copy(ours, ref):
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})


def _close(a, b, tol=1e-9):
    np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_defaults_match_pytorch(norm_first, activation):
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, norm_first=norm_first,
                                           dtype=torch.float64)
    ours = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, norm_first=norm_first,
                                      dtype=ta.float64)
    _copy(ours, ref)
    x = np.random.default_rng(0).standard_normal((5, 2, 8))  # (S, N, E): batch_first=False is the default
    pad = np.zeros((2, 5), bool)
    pad[1, 3:] = True
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    _close(ours(ta.tensor(x)), ref(torch.tensor(x)))
    _close(ours(ta.tensor(x), src_mask=ta.tensor(mask.numpy()), src_key_padding_mask=ta.tensor(pad)),
           ref(torch.tensor(x), src_mask=mask, src_key_padding_mask=torch.tensor(pad)))


def test_default_encoder_layer_is_post_norm_relu():
    layer = nn.TransformerEncoderLayer(8, 2)
    assert layer.norm_first is False and layer.activation is ta.nn.functional.relu
    assert layer.linear1.weight.shape == (2048, 8) and layer.dropout.p == 0.1 and layer.self_attn.batch_first is False
    assert layer.norm1.eps == 1e-5
    no_bias = nn.TransformerEncoderLayer(8, 2, 16, bias=False)
    assert [k for k in no_bias.state_dict() if "bias" in k] == []
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")


def test_callable_activation_and_stack_match_pytorch():
    torch.manual_seed(1)
    act_t = lambda t: torch.nn.functional.gelu(t, approximate="tanh")  # noqa: E731
    ref = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0, act_t, batch_first=True, dtype=torch.float64), 2,
        norm=torch.nn.LayerNorm(8, dtype=torch.float64), enable_nested_tensor=False)
    ours = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, 0.0, nn.GELU(approximate="tanh"), batch_first=True, dtype=ta.float64), 2,
        norm=nn.LayerNorm(8, dtype=ta.float64))
    _copy(ours, ref)
    assert ours.layers[0] is not ours.layers[1] and ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    x = np.random.default_rng(1).standard_normal((2, 4, 8))
    mask = np.triu(np.ones((4, 4), bool), 1)  # bool: True = NOT allowed (PyTorch's nn.Transformer* convention)
    _close(ours(ta.tensor(x), mask=ta.tensor(mask)), ref(torch.tensor(x), mask=torch.tensor(mask)))


def test_transformer_encoder_matches_torch():
    ta.manual_seed(1)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="relu", batch_first=True,
                                       norm_first=True, dtype=ta.float64)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8, dtype=ta.float64))
    for i, m in enumerate(enc.layers):  # make the copies differ, so a wrong order of layers would show
        with ta.no_grad():
            m.linear1.weight.data[...] *= 1 + i
    t_layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="relu", batch_first=True,
                                               norm_first=True, dtype=torch.float64)
    t_enc = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(8, dtype=torch.float64),
                                        enable_nested_tensor=False)
    state = {k: torch.tensor(v.numpy()) for k, v in enc.state_dict().items()}
    assert set(state) == set(t_enc.state_dict())
    t_enc.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    pad = np.array([[False] * 5, [False, False, False, True, True]])
    mask = np.triu(np.ones((5, 5), dtype=bool), 1)
    out = enc(ta.tensor(x), mask=ta.tensor(mask), src_key_padding_mask=ta.tensor(pad))
    expected = t_enc(torch.tensor(x), mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(pad))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_pytorch_with_masks(norm_first):
    torch.manual_seed(2)
    ref = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first, batch_first=True,
                                           dtype=torch.float64)
    ours = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=norm_first, batch_first=True,
                                      dtype=ta.float64)
    _copy(ours, ref)
    rng = np.random.default_rng(2)
    tgt, mem = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, 8))
    tgt_mask = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    mem_mask = np.zeros((4, 6), bool)
    mem_mask[:, 5] = True
    tkpm = np.zeros((2, 4), bool)
    tkpm[0, 3] = True
    mkpm = np.zeros((2, 6), bool)
    mkpm[1, :2] = True
    got = ours(ta.tensor(tgt), ta.tensor(mem), tgt_mask=ta.tensor(tgt_mask.numpy()), memory_mask=ta.tensor(mem_mask),
               tgt_key_padding_mask=ta.tensor(tkpm), memory_key_padding_mask=ta.tensor(mkpm), tgt_is_causal=True)
    want = ref(torch.tensor(tgt), torch.tensor(mem), tgt_mask=tgt_mask, memory_mask=torch.tensor(mem_mask),
               tgt_key_padding_mask=torch.tensor(tkpm), memory_key_padding_mask=torch.tensor(mkpm), tgt_is_causal=True)
    _close(got, want)
    # without masks, and the masked keys really are ignored (a different masked memory row gives the same output)
    _close(ours(ta.tensor(tgt), ta.tensor(mem)), ref(torch.tensor(tgt), torch.tensor(mem)))
    mem2 = mem.copy()
    mem2[:, 5] += 10
    again = ours(ta.tensor(tgt), ta.tensor(mem2), memory_mask=ta.tensor(mem_mask))
    np.testing.assert_allclose(again.numpy(), ours(ta.tensor(tgt), ta.tensor(mem), memory_mask=ta.tensor(mem_mask))
                               .numpy(), rtol=1e-12)


def test_transformer_matches_pytorch():
    torch.manual_seed(3)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=12, dropout=0.0)
    ref = torch.nn.Transformer(**kw, dtype=torch.float64)
    ours = nn.Transformer(**kw, dtype=ta.float64)
    _copy(ours, ref)
    rng = np.random.default_rng(3)
    src, tgt = rng.standard_normal((5, 2, 8)), rng.standard_normal((3, 2, 8))
    mask = nn.Transformer.generate_square_subsequent_mask(3, dtype=ta.float64)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(3, dtype=torch.float64)
    np.testing.assert_array_equal(mask.numpy(), tmask.numpy())
    assert nn.Transformer.generate_square_subsequent_mask(2).dtype == ta.float32
    spad = np.zeros((2, 5), bool)
    spad[0, 4] = True
    got = ours(ta.tensor(src), ta.tensor(tgt), tgt_mask=mask, src_key_padding_mask=ta.tensor(spad),
               memory_key_padding_mask=ta.tensor(spad))
    want = ref(torch.tensor(src), torch.tensor(tgt), tgt_mask=tmask, src_key_padding_mask=torch.tensor(spad),
               memory_key_padding_mask=torch.tensor(spad))
    _close(got, want)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        ours(ta.tensor(src), ta.tensor(tgt[:, :1]))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal to d_model"):
        ours(ta.tensor(src[..., :4]), ta.tensor(tgt[..., :4]))


def test_transformer_init_is_xavier_on_matrices():
    ta.manual_seed(0)
    m = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=64)
    w = m.encoder.layers[0].linear1.weight.numpy()  # (64, 16): xavier bound √(6/80), not Linear's 1/4
    bound = np.sqrt(6 / 80)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(m.encoder.norm.weight.numpy() == 1)


def test_decoder_layer_gradcheck():
    ta.manual_seed(0)
    layer = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, batch_first=True, dtype=ta.float64)
    rng = np.random.default_rng(4)
    tgt = ta.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    mem = ta.tensor(rng.standard_normal((2, 2, 4)), requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(3, dtype=ta.float64)
    assert gradcheck(lambda t, m, *ps: layer(t, m, tgt_mask=mask), [tgt, mem, *layer.parameters()],
                     name="TransformerDecoderLayer")


@pytest.mark.parametrize("activation,fused", [("relu", True), (None, True), ("gelu", True), ("lambda", False)])
@pytest.mark.parametrize("norm_first", [False, True])
def test_fused_decode_only_for_what_it_implements(activation, fused, norm_first, monkeypatch):
    act = {"relu": "relu", None: nn.GELU(approximate="tanh"), "gelu": "gelu",
           "lambda": lambda t: ta.nn.functional.relu(t) * 1.0}[activation]
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, act, batch_first=True, norm_first=norm_first, causal=True,
                                       dtype=ta.float64).eval()
    calls = []
    original = _transformer.TransformerEncoderLayer._decode
    monkeypatch.setattr(_transformer.TransformerEncoderLayer, "_decode",
                        lambda self, *a: calls.append(1) or original(self, *a))
    x = ta.tensor(np.random.default_rng(5).standard_normal((1, 4, 8)))
    with ta.no_grad():
        cache = nn.LayerKVCache()
        steps = [layer(x[:, :2], kv_cache=cache), layer(x[:, 2:3], kv_cache=cache), layer(x[:, 3:], kv_cache=cache)]
        full = layer(x)
    assert len(calls) == (3 if fused else 0)
    np.testing.assert_allclose(ta.cat(steps, dim=1).numpy(), full.numpy(), rtol=1e-10, atol=1e-12)
