"""Generation with a key/value cache: positional encodings at an offset, nn.KVCache through
MultiheadAttention / TransformerEncoderLayer / TransformerEncoder, ta.generate's sampling, and the fused
decode step. The bottom-right causal alignment the cache relies on is tested in tests/test_kernels_attention.py
(the kernels' query offset) and tests/test_attention.py (SDPA's CausalBias)."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn import backend
from tinyattn.generation import filter_logits, sample_from_logits
from tinyattn.testing import gradcheck

V, C, D, H = 11, 12, 16, 2  # vocab, context, d_model, heads of the tiny test models
ENCODINGS = ("sinusoidal", "learned", "rotary")


# ---------------------------------------------------------------------------------------------------------
# positional encodings at an offset
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: nn.SinusoidalPositionalEncoding(8, 10, dtype=ta.float64),
                                  lambda: nn.LearnedPositionalEncoding(8, 10, dtype=ta.float64)])
def test_additive_encodings_take_an_offset(make):
    pe = make()
    x = ta.tensor(np.random.default_rng(9).standard_normal((2, 10, 8)))
    full = pe(x).numpy()
    np.testing.assert_array_equal(pe(x[:, 4:7], offset=4).numpy(), full[:, 4:7])
    with pytest.raises(ValueError, match=r"PositionalEncoding: positions 8 \.\. 10 \(offset 8 \+ sequence length 3\) "
                                         r"exceed max_len 10"):
        pe(x[:, :3], offset=8)
    with pytest.raises(ValueError, match="offset must be a non-negative int"):
        pe(x[:, :3], offset=-1)


def test_rotary_takes_an_offset():
    rope = nn.RotaryEmbedding(4, max_len=10)
    x = ta.tensor(np.random.default_rng(10).standard_normal((2, 10, 4)))
    np.testing.assert_array_equal(rope.rotate(x[:, 6:9], offset=6).numpy(), rope.rotate(x).numpy()[:, 6:9])
    q, k = rope(x[:, 6:9], x[:, 6:9], offset=6)
    assert not np.allclose(q.numpy(), rope.rotate(x[:, 6:9]).numpy())  # the offset changes the rotation
    with pytest.raises(ValueError, match="RotaryEmbedding: positions 9 .. 11"):
        rope.rotate(x[:, :3], offset=9)


# ---------------------------------------------------------------------------------------------------------
# the cache through the modules
# ---------------------------------------------------------------------------------------------------------
class TinyLM(nn.Module):
    """The char_lm shape: embedding, positional encoding (or RoPE in the attention), causal layers, head."""

    def __init__(self, encoding, dtype=ta.float64, stack=True):
        super().__init__()
        self.embed = nn.Embedding(V, D, dtype=dtype)
        rope = nn.RotaryEmbedding(D // H, max_len=C) if encoding == "rotary" else None
        self.pos = {"sinusoidal": nn.SinusoidalPositionalEncoding(D, C, dtype=dtype),
                    "learned": nn.LearnedPositionalEncoding(D, C, dtype=dtype), "rotary": None}[encoding]
        layer = nn.TransformerEncoderLayer(D, H, 24, dropout=0.0, batch_first=True, causal=True, dtype=dtype,
                                           rotary=rope, activation=nn.GELU(approximate="tanh"), norm_first=True)
        self.stack = stack
        if stack:
            self.encoder = nn.TransformerEncoder(layer, 2)
        else:  # a ModuleList the model walks itself, handing cache[i] to layer i
            self.layers = nn.ModuleList([layer, nn.TransformerEncoderLayer(D, H, 24, dropout=0.0, batch_first=True,
                                                                           causal=True, dtype=dtype, rotary=rope,
                                                                           activation=nn.GELU(approximate="tanh"), norm_first=True)])
        self.head = nn.Linear(D, V, dtype=dtype)

    def forward(self, tokens, kv_cache=None):
        x = self.embed(tokens)
        if self.pos is not None:
            x = self.pos(x, offset=0 if kv_cache is None else kv_cache.seq_len)
        if self.stack:
            x = self.encoder(x, kv_cache=kv_cache)
        else:
            for i, layer in enumerate(self.layers):
                x = layer(x, kv_cache=None if kv_cache is None else kv_cache[i])
        return self.head(x)


def _model(encoding, dtype=ta.float64, seed=0, stack=True):
    ta.manual_seed(seed)
    return TinyLM(encoding, dtype, stack).eval()


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("dtype,tol", [(ta.float64, 1e-10), (ta.float32, 1e-5)])
def test_cached_logits_equal_full_recompute(encoding, dtype, tol):
    model = _model(encoding, dtype, stack=encoding != "learned")
    ids = np.random.default_rng(11).integers(0, V, (2, C))
    with ta.no_grad():
        full = model(ta.tensor(ids)).numpy()  # (2, C, V)
        cache = nn.KVCache()
        steps = [model(ta.tensor(ids[:, :3]), kv_cache=cache).numpy()]  # a 3-token prompt
        for t in range(3, C):
            assert cache.seq_len == t
            steps.append(model(ta.tensor(ids[:, t : t + 1]), kv_cache=cache).numpy())
    assert len(cache) == 2 and cache[0].key.shape == (2, H, C, D // H)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=tol, atol=tol)
    ta.manual_seed(5)  # and generate's logits, step by step, both paths, the same seed
    tokens, cached = ta.generate(model, ids[:, :3], C - 3, use_cache=True, return_logits=True)
    ta.manual_seed(5)
    tokens_plain, plain = ta.generate(model, ids[:, :3], C - 3, use_cache=False, return_logits=True)
    np.testing.assert_array_equal(tokens.numpy(), tokens_plain.numpy())
    np.testing.assert_allclose(cached, plain, rtol=tol, atol=tol)


def test_cache_keeps_the_bottom_right_alignment():
    # a chunk of 3 new tokens after 4 cached ones: each new token sees exactly the positions up to its own
    model = _model("sinusoidal")
    ids = np.random.default_rng(12).integers(0, V, (1, 7))
    with ta.no_grad():
        full = model(ta.tensor(ids)).numpy()
        cache = nn.KVCache()
        model(ta.tensor(ids[:, :4]), kv_cache=cache)
        chunk = model(ta.tensor(ids[:, 4:]), kv_cache=cache).numpy()
    np.testing.assert_allclose(chunk, full[:, 4:], rtol=1e-10, atol=1e-10)


def test_mha_cache_with_weights_and_masks():
    ta.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=True, dtype=ta.float64)
    x = ta.tensor(np.random.default_rng(13).standard_normal((2, 5, 8)))
    pad = np.zeros((2, 5), bool)
    pad[1, 1] = True  # batch row 1 may not attend to position 1
    with ta.no_grad():
        full, w_full = mha(x, x, x, is_causal=True, key_padding_mask=ta.tensor(pad))
        cache = nn.LayerKVCache()
        mha(x[:, :2], x[:, :2], x[:, :2], is_causal=True, kv_cache=cache, key_padding_mask=ta.tensor(pad[:, :2]))
        out, w = mha(x[:, 2:], x[:, 2:], x[:, 2:], is_causal=True, kv_cache=cache, key_padding_mask=ta.tensor(pad))
        out2, none = mha(x[:, 2:], x[:, 2:], x[:, 2:], is_causal=True, kv_cache=nn.LayerKVCache(), need_weights=False)
    assert w.shape == (2, 3, 5) and none is None
    np.testing.assert_allclose(out.numpy(), full.numpy()[:, 2:], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), w_full.numpy()[:, 2:], rtol=1e-10, atol=1e-12)
    assert w.numpy()[1, :, 1].max() == 0.0 and w.numpy()[0, 0, 3] == 0.0 and w.numpy()[0, 0, 4] == 0.0


def test_gradients_flow_through_the_cache():
    # a cached forward is differentiable: the cached keys' gradient reaches the earlier input
    ta.manual_seed(2)
    mha = nn.MultiheadAttention(4, 2, batch_first=True, dtype=ta.float64,
                                rotary=nn.RotaryEmbedding(2, max_len=8))
    rng = np.random.default_rng(14)
    a = ta.tensor(rng.standard_normal((1, 2, 4)), requires_grad=True)
    b = ta.tensor(rng.standard_normal((1, 2, 4)), requires_grad=True)

    def cached(a, b):
        cache = nn.LayerKVCache()
        out_a, _ = mha(a, a, a, is_causal=True, kv_cache=cache, need_weights=False)
        out_b, _ = mha(b, b, b, is_causal=True, kv_cache=cache, need_weights=False)
        return ta.cat([out_a, out_b], dim=1)

    assert gradcheck(cached, [a, b])
    ab = ta.cat([a, b], dim=1)
    np.testing.assert_allclose(cached(a, b).numpy(), mha(ab, ab, ab, is_causal=True)[0].numpy(), rtol=1e-10)


def test_cache_errors():
    model, other = _model("sinusoidal"), _model("sinusoidal", seed=1)
    ids = ta.tensor(np.zeros((2, 3), np.int64))
    cache = nn.KVCache()
    with ta.no_grad():
        model(ids, kv_cache=cache)
        with pytest.raises(ValueError, match="MultiheadAttention: kv_cache was filled by another module"):
            other(ids[:, :1], kv_cache=cache)
        with pytest.raises(ValueError, match="MultiheadAttention: kv_cache holds 3 positions for a batch of 2, but "
                                             "the input is a batch of 1"):
            model(ids[:1, :1], kv_cache=cache)
        layer = model.encoder.layers[0]
        x = ta.zeros(2, 1, D, dtype=ta.float64)
        with pytest.raises(TypeError, match="TransformerEncoderLayer: kv_cache must be this layer's nn.LayerKVCache"):
            layer(x, kv_cache=cache)
        with pytest.raises(ValueError, match="TransformerEncoderLayer: kv_cache needs a causal layer"):
            layer(x, kv_cache=nn.LayerKVCache(), is_causal=False)
        with pytest.raises(ValueError, match="MultiheadAttention: kv_cache needs is_causal=True"):
            layer.self_attn(x, x, x, kv_cache=nn.LayerKVCache())
        with pytest.raises(TypeError, match="MultiheadAttention: kv_cache must be one layer's cache"):
            layer.self_attn(x, x, x, kv_cache=cache, is_causal=True)
        with pytest.raises(ValueError, match=r"SinusoidalPositionalEncoding: positions 12 \.\. 12"):
            full = nn.KVCache()
            model(ta.tensor(np.zeros((2, C), np.int64)), kv_cache=full)
            model(ids[:, :1], kv_cache=full)
    with pytest.raises(ValueError, match="MultiheadAttention: rotary has head_dim 4"):
        nn.MultiheadAttention(8, 4, rotary=nn.RotaryEmbedding(4))


# ---------------------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------------------
def test_greedy_limits():
    model = _model("learned")
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    greedy = ta.generate(model, prompt, 8, temperature=0)
    _, logits = ta.generate(model, prompt, 8, temperature=0, return_logits=True)
    assert greedy.shape == (2, 11) and greedy.dtype == ta.int64
    np.testing.assert_array_equal(greedy.numpy()[:, :3], prompt)
    np.testing.assert_array_equal(greedy.numpy()[:, 3:], logits.argmax(-1))  # each token: argmax of its logits
    ta.manual_seed(0)
    np.testing.assert_array_equal(ta.generate(model, prompt, 8, temperature=1e-6).numpy(), greedy.numpy())
    ta.manual_seed(0)
    np.testing.assert_array_equal(ta.generate(model, prompt, 8, temperature=3.0, top_k=1).numpy(), greedy.numpy())
    ta.manual_seed(0)
    np.testing.assert_array_equal(ta.generate(model, prompt, 8, top_p=1e-9).numpy(), greedy.numpy())


def test_same_seed_same_text_and_training_mode_restored():
    model = _model("rotary").train()
    ta.manual_seed(42)
    a = ta.generate(model, [1, 2], 9).numpy()
    ta.manual_seed(42)
    b = ta.generate(model, [1, 2], 9).numpy()
    ta.manual_seed(43)
    c = ta.generate(model, [1, 2], 9).numpy()
    d = ta.generate(model, [1, 2], 9, generator=np.random.default_rng(42)).numpy()
    e = ta.generate(model, [1, 2], 9, generator=np.random.default_rng(42)).numpy()
    assert a.shape == (11,) and a.tolist() == b.tolist() and a.tolist() != c.tolist() and d.tolist() == e.tolist()
    assert model.training


def test_temperature_top_k_top_p_semantics():
    logits = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_k=2)), [[1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_k=9)), [[1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.49)), [[1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.51)), [[1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.84)), [[1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.86)), [[1, 1, 1, 1, 0]])
    # top_k first, then top_p on the renormalised rest: 0.5/0.85 = 0.59 < 0.6 keeps the second too
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_k=3, top_p=0.6)), [[1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(np.isfinite(filter_logits(logits[:, ::-1], top_k=2)), [[0, 0, 0, 1, 1]])
    # frequencies of 40000 draws follow softmax(logits / T) restricted to the kept tokens
    n = 40000
    rows = np.repeat(logits, n, axis=0)
    for temperature, top_k, top_p in ((1.0, None, None), (0.5, None, None), (2.0, 3, None), (1.0, None, 0.7)):
        draws = sample_from_logits(rows, temperature, top_k, top_p, generator=np.random.default_rng(0))
        freq = np.bincount(draws, minlength=5) / n
        p = np.exp(filter_logits(logits / temperature, top_k, top_p)[0])
        p /= p.sum()
        assert np.all(freq[p == 0] == 0)
        np.testing.assert_allclose(freq, p, atol=0.01)


def test_window_full_reprimes_the_cache():
    model = _model("learned")
    prompt = np.random.default_rng(15).integers(0, V, (2, 5))
    ta.manual_seed(3)
    ids, cached = ta.generate(model, prompt, 14, temperature=0, return_logits=True, context_overflow="reprime")
    _, plain = ta.generate(model, prompt, 14, temperature=0, use_cache=False, return_logits=True)
    ids = ids.numpy()
    assert ids.shape == (2, 19)
    with ta.no_grad():
        for step in range(14):  # token 5 + step is drawn from the logits after ids[:, :5 + step]
            n = 5 + step
            window = ids[:, max(0, n - C) : n]  # the uncached path: the last C tokens
            np.testing.assert_allclose(plain[:, step], model(ta.tensor(window)).numpy()[:, -1], rtol=1e-10, atol=1e-10)
        # the cached path: exact while it fits (n <= C); at n = 13 the cache is full and re-primes from the
        # last C // 2 = 6 tokens, then appends until it is full again
        np.testing.assert_allclose(cached[:, : C - 4], plain[:, : C - 4], rtol=1e-10, atol=1e-10)
        for n in (13, 14, 18):
            start = n - 6 - (n - 13)  # re-primed at n = 13 from ids[:, 7:13]
            want = model(ta.tensor(ids[:, start:n])).numpy()[:, -1]
            np.testing.assert_allclose(cached[:, n - 5], want, rtol=1e-10, atol=1e-10)
        assert np.abs(cached[:, 8] - plain[:, 8]).max() > 1e-6  # the two paths do differ there


def test_generate_bad_arguments():
    model = _model("sinusoidal")
    for top_p in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"generate: top_p must be in \(0, 1\]"):
            ta.generate(model, [1], 1, top_p=top_p)
    with pytest.raises(ValueError, match="generate: top_k must be >= 1"):
        ta.generate(model, [1], 1, top_k=0)
    with pytest.raises(ValueError, match="generate: temperature must be finite and >= 0"):
        ta.generate(model, [1], 1, temperature=-1.0)
    with pytest.raises(TypeError, match="generate: prompt must hold integer token ids"):
        ta.generate(model, [1.5], 1)
    with pytest.raises(ValueError, match="generate: the prompt must hold at least one token"):
        ta.generate(model, np.zeros((2, 0), np.int64), 1)
    with pytest.raises(TypeError, match="generate: max_new_tokens must be an int"):
        ta.generate(model, [1], 2.0)

    class NoCache(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, tokens):
            return self.inner(tokens)

    with pytest.raises(TypeError, match="generate: NoCache.forward takes no kv_cache argument"):
        ta.generate(NoCache(), [1], 1)
    assert ta.generate(NoCache(), [1], 2, use_cache=False).shape == (3,)


def test_char_lm_sample_flag_uses_the_checkpoint(tmp_path, capsys):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "char_lm.py")
    spec = importlib.util.spec_from_file_location("char_lm_for_generation", path)
    char_lm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(char_lm)
    flags = ["--context", "8", "--d-model", "8", "--heads", "2", "--layers", "1", "--ff", "16",
             "--out-dir", str(tmp_path)]
    char_lm.main(["--chars", "5000", "--max-steps", "2", "--eval-every", "100", "--eval-batches", "1",
                  "--sample-chars", "5", "--no-progress"] + flags)
    capsys.readouterr()
    texts = []
    for _ in range(2):
        assert char_lm.main(["--sample", "20", "--prompt", "for ", "--top-k", "5"] + flags) is None
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and texts[0].startswith("for ") and len(texts[0]) == 4 + 20 + 1  # + print's "\n"


def test_generate_on_cuda_matches_cpu():
    # the cache's device buffers, RoPE at an offset and the CUDA kernel's bottom-right alignment, end to end
    # (Numba's CUDA simulator without a GPU: tiny shapes)
    pytest.importorskip("numba_cuda")
    model = _model("rotary")
    prompt = np.array([[1, 2, 3]])
    _, cpu_logits = ta.generate(model, prompt, 3, temperature=0, return_logits=True)
    model.to("cuda")
    ids, gpu_logits = ta.generate(model, ta.tensor(prompt, device="cuda"), 3, temperature=0, return_logits=True)
    assert ids.device == ta.device("cuda") and ids.shape == (1, 6)
    np.testing.assert_allclose(gpu_logits, cpu_logits, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------
# the fused decode step (TransformerEncoderLayer with a cache, eval mode, no_grad: one kernel call)
# ---------------------------------------------------------------------------------------------------------
from tinyattn.nn import transformer as _transformer  # noqa: E402


def _fused_layer(norm_first, activation, bias, dtype, batch_first=True, dropout=0.0):
    """A causal layer (d_model D, H heads, ff 24); bias=False: no biases anywhere, norm1 without affine
    parameters and norm2 without bias, so every missing-parameter branch of the fused step runs."""
    if activation == "gelu_tanh":  # the tanh form ("gelu" is PyTorch's exact one, F.gelu)
        activation = nn.GELU(approximate="tanh")
    layer = nn.TransformerEncoderLayer(D, H, 24, dropout, activation, batch_first=batch_first,
                                       norm_first=norm_first, causal=True, dtype=dtype)
    if not bias:
        layer.self_attn = nn.MultiheadAttention(D, H, dropout=dropout, bias=False, batch_first=batch_first,
                                                dtype=dtype)
        layer.linear1, layer.linear2 = nn.Linear(D, 24, bias=False, dtype=dtype), nn.Linear(24, D, bias=False,
                                                                                             dtype=dtype)
        layer.norm1 = nn.LayerNorm(D, elementwise_affine=False, dtype=dtype)
        layer.norm2 = nn.LayerNorm(D, bias=False, dtype=dtype)
    for p in layer.parameters():  # away from LayerNorm's ones/zeros, so a swapped norm parameter shows
        with ta.no_grad():
            p += 0.1 * ta.tensor(np.random.default_rng(p.numel()).standard_normal(p.shape), dtype=dtype)
    return layer


class _FusedLM(nn.Module):
    def __init__(self, layers, dtype):
        super().__init__()
        self.embed = nn.Embedding(V, D, dtype=dtype)
        self.pos = nn.LearnedPositionalEncoding(d_model=D, max_len=C, dtype=dtype)
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(D, V, dtype=dtype)

    def forward(self, tokens, kv_cache=None):
        x = self.pos(self.embed(tokens), offset=0 if kv_cache is None else kv_cache.seq_len)
        for i, layer in enumerate(self.layers):
            x = layer(x, kv_cache=None if kv_cache is None else kv_cache[i])
        return self.head(x)


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the fused decode steps taken (the switch is on: the default)."""
    calls = []
    original = _transformer.TransformerEncoderLayer._decode

    def counted(self, *args):
        calls.append(self)
        return original(self, *args)

    monkeypatch.setattr(_transformer.TransformerEncoderLayer, "_decode", counted)
    return calls


def _generate_both(model, prompt, n, monkeypatch, **kw):
    out = []
    for fused in (True, False):
        monkeypatch.setattr(_transformer, "_FUSED_DECODE", fused)
        ta.manual_seed(9)
        out.append(ta.generate(model, prompt, n, return_logits=True, **kw))
    monkeypatch.setattr(_transformer, "_FUSED_DECODE", True)
    return out


@pytest.mark.parametrize("dtype,tol", [(ta.float64, 1e-10), (ta.float32, 1e-5)])
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["gelu_tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_decode_equals_op_by_op(dtype, tol, norm_first, activation, bias, monkeypatch, fused_calls):
    # 24 new tokens from a 3-token prompt, batch 2, context C = 12, context_overflow="reprime": the cache
    # re-primes twice (at 12 and at 18 positions), so the fused step also runs on 3- and 6-token chunks, on an
    # empty and on a grown cache
    ta.manual_seed(1)
    model = _FusedLM([_fused_layer(norm_first, activation, bias, dtype) for _ in range(2)], dtype).eval()
    prompt = np.random.default_rng(4).integers(0, V, (2, 3))
    (ids, fused), (ids_plain, plain) = _generate_both(model, prompt, 24, monkeypatch, context_overflow="reprime")
    assert len(fused_calls) == 2 * 24  # every step of both layers, the prompt and the re-primes included
    np.testing.assert_allclose(fused, plain, rtol=tol, atol=tol)
    np.testing.assert_array_equal(ids.numpy(), ids_plain.numpy())
    assert np.abs(fused[:, 1:] - fused[:, :-1]).max() > 1e-3  # the logits do move from step to step


@pytest.mark.parametrize("dtype,tol,norm_first,spelling", [(ta.float64, 1e-10, True, "gelu"),
                                                             (ta.float32, 1e-5, False, "F.gelu"),
                                                             (ta.float64, 1e-10, False, "nn.GELU()")])
def test_fused_decode_exact_gelu_equals_op_by_op(dtype, tol, norm_first, spelling, monkeypatch, fused_calls):
    # PyTorch's exact GELU (activation="gelu", the default form of F.gelu and nn.GELU) takes the fused step too,
    # and computes x Φ(x) there, not the tanh form: the logits of the two differ by ~1e-4, above 10 tol
    activation = {"gelu": "gelu", "F.gelu": F.gelu, "nn.GELU()": nn.GELU()}[spelling]
    ta.manual_seed(1)
    model = _FusedLM([_fused_layer(norm_first, activation, True, dtype) for _ in range(2)], dtype).eval()
    prompt = np.random.default_rng(4).integers(0, V, (2, 3))
    (ids, fused), (ids_plain, plain) = _generate_both(model, prompt, 8, monkeypatch)
    assert len(fused_calls) == 2 * 8
    np.testing.assert_allclose(fused, plain, rtol=tol, atol=tol)
    np.testing.assert_array_equal(ids.numpy(), ids_plain.numpy())
    for layer in model.layers:  # the same weights with the tanh form: other logits
        layer.activation = nn.GELU(approximate="tanh")
    _, tanh_form = _generate_both(model, prompt, 8, monkeypatch)[0]
    assert np.abs(tanh_form - plain).max() > 10 * tol


@pytest.mark.parametrize("layout", ["batch_first", "seq_first", "unbatched"])
def test_fused_decode_layouts_and_cache_contents(layout, monkeypatch, fused_calls):
    # the layer on its own: outputs and the cached keys/values equal the op-by-op path's, for (N, T, E),
    # (T, N, E) and (T, E) inputs; the cache is first filled op by op with grad on (F.cat, no buffers), then
    # the fused steps copy it into their buffers and go on
    layer = _fused_layer(True, "gelu_tanh", True, ta.float64, batch_first=layout == "batch_first").eval()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 9, D) if layout == "batch_first" else (9, 3, D) if layout == "seq_first" else (9, D))

    def chunk(a, b):
        return ta.tensor(x[:, a:b] if layout == "batch_first" else x[a:b])

    results = []
    for fused in (True, False):
        monkeypatch.setattr(_transformer, "_FUSED_DECODE", fused)
        cache = nn.LayerKVCache()
        ys = [layer(chunk(0, 2), kv_cache=cache).detach().numpy()]  # grad on: op by op, recorded
        with ta.no_grad():
            ys += [layer(chunk(t, t + 1), kv_cache=cache).numpy() for t in range(2, 6)]
            ys.append(layer(chunk(6, 9), kv_cache=cache).numpy())
        axis = 1 if layout == "batch_first" else 0
        results.append((np.concatenate(ys, axis=axis), cache.key.numpy(), cache.value.numpy(), cache.seq_len))
    assert len(fused_calls) == 5
    (y, k, v, s), (y_ref, k_ref, v_ref, s_ref) = results
    assert s == s_ref == 9 and k.shape == k_ref.shape == ((1,) if layout == "unbatched" else (3,)) + (H, 9, D // H)
    for got, want in ((y, y_ref), (k, k_ref), (v, v_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_fused_decode_falls_back_where_it_would_change_the_result(fused_calls):
    ta.manual_seed(2)
    layer = _fused_layer(True, "gelu_tanh", True, ta.float64, dropout=0.5).eval()
    x = ta.tensor(np.random.default_rng(3).standard_normal((2, 4, D)))

    def run(new=x[:, 3:], grad=False, **kw):
        cache = nn.LayerKVCache()
        with ta.no_grad():
            layer(x[:, :3], kv_cache=cache)
        n = len(fused_calls)
        with ta.enable_grad() if grad else ta.no_grad():
            y = layer(new, kv_cache=cache, **kw)
        return y, len(fused_calls) - n

    want, used = run()
    assert used == 1
    # a forward hook on a submodule runs (the fused step would skip it), and can change the result
    seen = []
    handle = layer.self_attn.register_forward_hook(lambda m, args, out: seen.append(out[0].shape))
    got, used = run()
    assert used == 0 and seen == [(2, 3, D), (2, 1, D)]  # the prompt's call and the step's
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    handle.remove()
    handle = layer.linear2.register_forward_hook(lambda m, args, out: out * 0)  # the FF block's output zeroed
    got, used = run()
    assert used == 0 and np.abs(got.numpy() - want.numpy()).max() > 1e-3
    handle.remove()
    handle = layer.norm1.register_forward_pre_hook(lambda m, args: None)
    assert run()[1] == 0
    handle.remove()
    # the layer's own hooks wrap forward: they run either way, so the fused step stays
    handle = layer.register_forward_hook(lambda m, args, out: seen.append("layer"))
    assert run()[1] == 1 and seen[-1] == "layer"
    handle.remove()
    # grad mode on: a graph, op by op
    w = ta.tensor(x.numpy()[:, 3:], requires_grad=True)
    got, used = run(w, grad=True)
    assert used == 0 and got.requires_grad
    got.sum().backward()
    assert w.grad is not None and np.abs(w.grad.numpy()).max() > 0
    np.testing.assert_allclose(got.detach().numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    # masks go the normal way (a zero additive mask: the same numbers)
    got, used = run(src_mask=ta.zeros(1, 4, dtype=ta.float64))
    assert used == 0
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    got, used = run(src_key_padding_mask=ta.tensor(np.zeros((2, 4), bool)))
    assert used == 0
    # training mode with dropout 0.5: op by op (random); with every p = 0 training mode is the same computation
    layer.train()
    assert run()[1] == 0
    for m in (layer.dropout, layer.dropout1, layer.dropout2):
        m.p = 0.0
    assert run()[1] == 0  # the attention's own dropout is still 0.5
    layer.self_attn.dropout = 0.0
    got, used = run()
    assert used == 1
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    layer.eval()
    # a profiler watching: every op must show up in it
    from tinyattn.profiler import profile

    with profile() as prof:
        got, used = run()
    assert used == 0 and any("Linear" in row.name for row in prof.key_averages())
    # a norm over another size (no parameters to give it away): the op-by-op path's error, not a result
    norm1 = layer.norm1
    layer.norm1 = nn.LayerNorm(D // 2, elementwise_affine=False, dtype=ta.float64)
    with pytest.raises(ValueError, match="layer_norm: input shape"):
        run()
    layer.norm1 = norm1
    # more new rows than the fused step takes (a long prompt): op by op
    long = ta.tensor(np.random.default_rng(4).standard_normal((1, _transformer._DECODE_MAX_ROWS + 1, D)))
    n = len(fused_calls)
    with ta.no_grad():
        layer(long, kv_cache=nn.LayerKVCache())
        assert len(fused_calls) == n
        layer(long[:, :_transformer._DECODE_MAX_ROWS], kv_cache=nn.LayerKVCache())
        assert len(fused_calls) == n + 1
    # the switch off: op by op
    _transformer._FUSED_DECODE = False
    try:
        assert run()[1] == 0
    finally:
        _transformer._FUSED_DECODE = True


def test_fused_decode_never_bypasses_overridden_code_and_keeps_the_cache_on_failure(monkeypatch, fused_calls):
    # the fused step must never compute something other than the op-by-op path, nor leave a bad cache:
    # a cache subclass with its own update(), replaced methods on the layer or on Linear, a kernel that
    # raises (the cache keeps its old buffers), and a constant row with eps = 0 (NaN, not an exception)
    layer = _fused_layer(True, "gelu_tanh", True, ta.float64).eval()
    x = ta.tensor(np.random.default_rng(5).standard_normal((1, 4, D)))

    def step(cache):
        with ta.no_grad():
            layer(x[:, :3], kv_cache=cache)
            return layer(x[:, 3:], kv_cache=cache).numpy()

    n = len(fused_calls)
    want = step(nn.LayerKVCache())
    assert len(fused_calls) == n + 2

    # a LayerKVCache subclass may change update() (e.g. a sliding window): the fused step would not call it
    class Window(nn.LayerKVCache):
        def update(self, key, value, owner=None):
            k, v = super().update(key, value, owner)
            return k[:, :, -2:], v[:, :, -2:]

    n = len(fused_calls)
    got = step(Window())
    assert len(fused_calls) == n and np.abs(got - want).max() > 1e-6

    # instance-level and class-level replacements of what the op-by-op path calls
    layer._ff_block = lambda h: h * 0
    n = len(fused_calls)
    got = step(nn.LayerKVCache())
    assert len(fused_calls) == n and np.abs(got - want).max() > 1e-6
    del layer._ff_block
    with monkeypatch.context() as patch:
        patch.setattr(nn.Linear, "forward", lambda self, h: F.linear(h, self.weight, self.bias) * 2)
        n = len(fused_calls)
        assert np.abs(step(nn.LayerKVCache()) - want).max() > 1e-6 and len(fused_calls) == n

    # a kernel that fails leaves the cache as it was: no half-adopted buffers for a later step to read
    cache = nn.LayerKVCache()
    with ta.no_grad():
        layer(x[:, :1], kv_cache=cache)  # buffers of capacity 16 adopted
        buffers = cache._buffers

        def broken(*args):
            raise RuntimeError("planted")

        with monkeypatch.context() as patch:
            patch.setattr(type(backend.cpu()), "encoder_layer_decode", broken)
            fresh = nn.LayerKVCache()
            with pytest.raises(RuntimeError, match="planted"):
                layer(x[:, 1:3], kv_cache=fresh)
            assert fresh.seq_len == 0 and fresh._buffers is None
            long = ta.tensor(np.random.default_rng(6).standard_normal((1, 16, D)))
            with pytest.raises(RuntimeError, match="planted"):
                layer(long, kv_cache=cache)  # 17 positions: new buffers of capacity 34, not adopted
        assert cache.seq_len == 1 and cache._buffers is buffers
        layer(x[:, 1:3], kv_cache=cache)
        got = layer(x[:, 3:], kv_cache=cache).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    # a constant row with eps = 0: NaN, as op by op, not a ZeroDivisionError
    flat = nn.TransformerEncoderLayer(D, H, 24, 0.0, layer_norm_eps=0.0, batch_first=True, causal=True,
                                      dtype=ta.float64, activation=nn.GELU(approximate="tanh"), norm_first=True).eval()
    ys = []
    for fused in (True, False):
        monkeypatch.setattr(_transformer, "_FUSED_DECODE", fused)
        with ta.no_grad():
            ys.append(flat(ta.ones(1, 1, D, dtype=ta.float64), kv_cache=nn.LayerKVCache()).numpy())
    assert np.isnan(ys[0]).all() and np.isnan(ys[1]).all()
