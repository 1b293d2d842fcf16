"""Sampling: no wrong token, ever.

ta.generate with its key/value cache against the recompute path (use_cache=False) token for token at every
context length (1, 2, 3, ... and prompts longer than the context), greedy and seeded; the re-prime
approximation (context_overflow="reprime") against a forward over the tokens it keeps; non-finite logits and
temperatures that overflow; clear errors for a bad generator and a ragged prompt; return_logits with no new
token."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.generation import filter_logits, sample_from_logits

V, C, D, H = 7, 6, 8, 2  # vocab, the model's context (max_len), d_model, heads
NONFINITE = "probability tensor contains either `inf`, `nan` or element < 0"


class TinyLM(nn.Module):
    """Embedding, positional encoding (or RoPE), two causal layers, head: the kv_cache contract of generate."""

    def __init__(self, encoding):
        super().__init__()
        self.embed = nn.Embedding(V, D, dtype=ta.float64)
        rope = nn.RotaryEmbedding(D // H, max_len=C) if encoding == "rotary" else None
        self.pos = {"sinusoidal": nn.SinusoidalPositionalEncoding(D, C, dtype=ta.float64),
                    "learned": nn.LearnedPositionalEncoding(D, C, dtype=ta.float64), "rotary": None}[encoding]
        layer = nn.TransformerEncoderLayer(D, H, 16, dropout=0.0, batch_first=True, causal=True, dtype=ta.float64,
                                           rotary=rope, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(D, V, dtype=ta.float64)

    def forward(self, tokens, kv_cache=None):
        x = self.embed(tokens)
        if self.pos is not None:
            x = self.pos(x, offset=0 if kv_cache is None else kv_cache.seq_len)
        return self.head(self.encoder(x, kv_cache=kv_cache)) * 3.0  # * 3: peaked enough that tokens vary


def _model(encoding="learned", seed=0):
    ta.manual_seed(seed)
    return TinyLM(encoding).eval()


class Const(nn.Module):
    """A model whose last position's logits are `row` (one per batch row): the sampler alone under test."""

    def __init__(self, rows):
        super().__init__()
        self.rows = np.asarray(rows, dtype=np.float64)

    def forward(self, tokens):
        n, t = tokens.shape
        return ta.tensor(np.broadcast_to(self.rows[:, None, :], (n, t, self.rows.shape[-1])).copy())


def _both(model, prompt, n, **kw):
    """generate with and without the cache from the same generator state: (ids, logits) of each."""
    out = []
    for use_cache in (True, False):
        gen = ta.Generator().manual_seed(123)
        ids, logits = ta.generate(model, prompt, n, use_cache=use_cache, generator=gen, return_logits=True, **kw)
        out.append((ids.numpy(), logits))
    return out


# ---------------------------------------------------------------------------------------------------------
# the cached path gives the recompute path's tokens at every context length
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["learned", "rotary"])
@pytest.mark.parametrize("context", [1, 2, 3, 4, C])
@pytest.mark.parametrize("prompt_len", [1, 3, 8])
def test_cached_tokens_equal_recompute_token_for_token(encoding, context, prompt_len):
    model = _model(encoding)
    prompt = np.random.default_rng(prompt_len).integers(0, V, (2, prompt_len))
    n = 2 * C + 1  # fills the window and slides it well past
    for temperature in (0, 1.0):
        (ids_c, log_c), (ids_u, log_u) = _both(model, prompt, n, temperature=temperature, context_length=context,
                                                top_k=5 if temperature else None)
        np.testing.assert_array_equal(ids_c, ids_u)
        np.testing.assert_allclose(log_c, log_u, rtol=1e-10, atol=1e-10)
        assert ids_c.shape == (2, prompt_len + n)
        np.testing.assert_array_equal(ids_c[:, :prompt_len], prompt)  # the whole prompt is returned
    # and both are what a forward over the last `context` tokens gives (the window the model can take)
    with ta.no_grad():
        for step in range(n):
            m = prompt_len + step
            want = model(ta.tensor(ids_u[:, max(0, m - context) : m])).numpy()[:, -1]
            np.testing.assert_allclose(log_u[:, step], want, rtol=1e-10, atol=1e-10)
    assert len(set(ids_u[:, prompt_len:].ravel().tolist())) > 1  # sampling did vary (the check has teeth)


def test_prompt_longer_than_the_context_is_cropped_for_the_model():
    model = _model("sinusoidal")
    prompt = np.random.default_rng(1).integers(0, V, 2 * C + 1)  # a 1-D prompt, longer than max_len
    (ids_c, log_c), (ids_u, log_u) = _both(model, prompt, 4, temperature=0)
    np.testing.assert_array_equal(ids_c, ids_u)
    np.testing.assert_array_equal(ids_c[: len(prompt)], prompt)
    with ta.no_grad():
        first = model(ta.tensor(prompt[None, -C:])).numpy()[0, -1]
    np.testing.assert_allclose(log_c[0], first, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("context", [1, 2, 3, 5])
def test_reprime_keeps_at_least_one_token_and_matches_a_forward_over_what_it_keeps(context):
    model = _model("learned")
    prompt = np.random.default_rng(2).integers(0, V, (2, 2))
    n = 3 * C
    ids, logits = ta.generate(model, prompt, n, temperature=0, context_length=context, return_logits=True,
                              context_overflow="reprime")
    ids = ids.numpy()
    keep = max(1, context // 2)
    start = max(0, prompt.shape[1] - context)  # the window the cache holds: ids[:, start:m]
    with ta.no_grad():
        for step in range(n):
            m = prompt.shape[1] + step
            want = model(ta.tensor(ids[:, start:m])).numpy()[:, -1]
            np.testing.assert_allclose(logits[:, step], want, rtol=1e-10, atol=1e-10)
            assert 1 <= m - start <= context
            start = m + 1 - keep if m - start >= context else start  # full: a new cache from the last `keep`
    if context == 1:  # one kept token is the whole window: exactly the recompute path
        plain = ta.generate(model, prompt, n, temperature=0, context_length=1, use_cache=False)
        np.testing.assert_array_equal(ids, plain.numpy())
    with pytest.raises(ValueError, match=r"generate: context_overflow must be one of \('slide', 'reprime'\)"):
        ta.generate(model, prompt, 1, context_overflow="drop")


# ---------------------------------------------------------------------------------------------------------
# non-finite probabilities, temperatures that overflow
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature,top_k,top_p", [(0, None, None), (1.0, None, None), (0.7, 3, 0.9)])
def test_nonfinite_logits_raise_instead_of_token_zero(temperature, top_k, top_p):
    good = [0.1, 2.0, -1.0, 0.5]
    bad_rows = {"NaN": [np.nan, 2.0, -1.0, 0.5], r"\+inf": [0.1, np.inf, -1.0, 0.5],
                "only -inf": [-np.inf] * 4}
    for what, bad in bad_rows.items():
        with pytest.raises(ta.random.RandomArgumentError, match=rf"generate: {NONFINITE}.*row\(s\) \[1\] hold .*{what}"):
            sample_from_logits(np.array([good, bad]), temperature, top_k, top_p)
        # the error is PyTorch's type too, and generate restores the model's mode after it
        model = Const([good, bad]).train()
        with pytest.raises(RuntimeError, match=NONFINITE):
            ta.generate(model, [[1], [2]], 3, temperature=temperature, top_k=top_k, top_p=top_p, use_cache=False)
        assert model.training
    # -inf for some tokens is masking, not an error: they are never drawn
    masked = np.array([[-np.inf, 0.3, -np.inf, 0.2]] * 2000)
    assert set(sample_from_logits(masked, 1.0, generator=np.random.default_rng(0)).tolist()) == {1, 3}


def test_nonfinite_message_is_pytorchs():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        torch.multinomial(torch.softmax(torch.tensor([[float("nan"), 1.0]]), -1), 1)
    with pytest.raises(RuntimeError) as ours:
        sample_from_logits(np.array([[np.nan, 1.0]]))
    assert str(theirs.value) in str(ours.value)


def test_filter_logits_refuses_nan_and_keeps_masked_rows():
    with pytest.raises(ValueError, match=NONFINITE):
        filter_logits(np.array([[0.0, np.nan, 1.0]]), top_k=2)
    out = filter_logits(np.array([[-np.inf, -np.inf], [0.0, 1.0]]), top_k=1, top_p=0.5)  # no NaN, no warning
    np.testing.assert_array_equal(out, [[-np.inf, -np.inf], [-np.inf, 1.0]])


@pytest.mark.parametrize("temperature", [1e-320, 5e-324, 1e-300, 1e-200])
def test_temperature_that_overflows_the_logits_is_the_greedy_limit(temperature):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((64, 9))
    logits[:, 0] = logits.min(axis=-1) - 1.0  # token 0 (what NaN used to give) is never the argmax
    for top_k, top_p in ((None, None), (3, None), (None, 0.5), (4, 0.9)):
        draws = sample_from_logits(logits, temperature, top_k, top_p, generator=np.random.default_rng(1))
        np.testing.assert_array_equal(draws, logits.argmax(-1))
    # huge finite logits at an ordinary temperature: x / T would overflow, x - max does not
    huge = np.array([[1e308, -1e308, 1.7e308, 0.0]])
    assert sample_from_logits(huge, 0.5).tolist() == [2]
    # equal maxima: the limit draws each of them (never a lower token)
    tied = np.repeat([[0.0, 5.0, 5.0, 4.999999]], 400, axis=0)
    assert set(sample_from_logits(tied, temperature, generator=np.random.default_rng(2)).tolist()) == {1, 2}
    # through generate: the greedy tokens, with or without the cache
    model = _model("rotary")
    greedy = ta.generate(model, [[1, 2], [3, 4]], 5, temperature=0).numpy()
    for use_cache in (True, False):
        out = ta.generate(model, [[1, 2], [3, 4]], 5, temperature=temperature, top_k=4, use_cache=use_cache)
        np.testing.assert_array_equal(out.numpy(), greedy)


def test_temperature_zero_is_greedy_whatever_top_k_top_p():
    logits = np.random.default_rng(4).standard_normal((32, 6))
    for top_k, top_p in ((None, None), (1, None), (6, 0.3), (2, 1e-9)):
        np.testing.assert_array_equal(sample_from_logits(logits, 0, top_k, top_p), logits.argmax(-1))
    with pytest.raises(ValueError, match="generate: temperature must be finite and >= 0"):
        sample_from_logits(logits, float("nan"))
    with pytest.raises(ValueError, match="generate: top_k must be >= 1"):
        sample_from_logits(logits, 0, top_k=0)  # checked even where greedy would not use it


# ---------------------------------------------------------------------------------------------------------
# clear errors instead of foreign ones
# ---------------------------------------------------------------------------------------------------------
def test_generator_argument():
    model = _model("learned")
    for bad in (42, "seed", ta.tensor([1])):
        with pytest.raises(TypeError, match=r"generate\(\): argument 'generator' must be a tinyattn.Generator, not"):
            ta.generate(model, [1, 2], 0, generator=bad)  # refused even when nothing is drawn
        with pytest.raises(TypeError, match=r"generate\(\): argument 'generator'"):
            sample_from_logits(np.zeros((1, 3)), generator=bad)
    runs = [ta.generate(model, [1, 2], 12, generator=ta.Generator().manual_seed(s)).numpy().tolist()
            for s in (7, 7, 8)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    g = ta.Generator().manual_seed(7)  # the generator's state advances: a second run continues its stream
    assert ta.generate(model, [1, 2], 12, generator=g).numpy().tolist() == runs[0]
    assert ta.generate(model, [1, 2], 12, generator=g).numpy().tolist() != runs[0]
    numpy_gen = ta.generate(model, [1, 2], 12, generator=np.random.default_rng(7)).numpy()  # still accepted
    assert numpy_gen.shape == (14,)


def test_ragged_prompt_names_the_lengths():
    model = _model("learned")
    with pytest.raises(ValueError, match=r"generate: the prompt's rows have different lengths \[3, 2\]"):
        ta.generate(model, [[1, 2, 3], [4, 5]], 2)
    with pytest.raises(ValueError, match=r"different lengths \[2, 1, 2\]"):
        ta.generate(model, [ta.tensor([1, 2]), ta.tensor([3]), ta.tensor([4, 5])], 2)
    with pytest.raises(ValueError, match=r"different lengths \[2, 'a single id'\]"):
        ta.generate(model, [[1, 2], 3], 2)
    # rows as tensors of one length are a batch
    out = ta.generate(model, [ta.tensor([1, 2]), ta.tensor([3, 4])], 2, temperature=0)
    np.testing.assert_array_equal(out.numpy(), ta.generate(model, [[1, 2], [3, 4]], 2, temperature=0).numpy())


def test_return_logits_with_zero_new_tokens_has_the_vocab():
    model = _model("learned")
    ids, logits = ta.generate(model, [[1, 2], [3, 4], [5, 6]], 0, return_logits=True)
    assert ids.shape == (3, 2) and logits.shape == (3, 0, V) and logits.dtype == np.float64
    ids, logits = ta.generate(model, [1, 2], 0, return_logits=True, use_cache=False)
    assert ids.shape == (2,) and logits.shape == (0, V)
    _, logits = ta.generate(model, [1, 2], 3, return_logits=True)
    assert logits.shape == (3, V)


def test_a_model_that_ignores_its_cache_is_refused_not_fed_one_token():
    inner = _model("learned")

    class Ignores(nn.Module):  # takes kv_cache (via **kwargs) but never hands it on: would see one token a step
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, tokens, **kwargs):
            return self.inner(tokens)

    with pytest.raises(ValueError, match=r"generate: after a forward over 2 new token\(s\) with kv_cache, the cache "
                                         r"holds 0 position\(s\) instead of 2: Ignores.forward must hand kv_cache"):
        ta.generate(Ignores(), [1, 2], 3)
    np.testing.assert_array_equal(ta.generate(Ignores(), [1, 2], 3, temperature=0, use_cache=False).numpy(),
                                  ta.generate(inner, [1, 2], 3, temperature=0).numpy())


def test_tuple_outputs_and_batch_mismatch():
    inner = _model("learned")

    class NanoStyle(nn.Module):  # nanoGPT / minGPT: forward(idx, targets=None) -> (logits, loss)
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, idx, targets=None, kv_cache=None):
            return self.inner(idx, kv_cache=kv_cache), None

    for use_cache in (True, False):
        np.testing.assert_array_equal(ta.generate(NanoStyle(), [[1, 2]], 4, temperature=0, use_cache=use_cache).numpy(),
                                      ta.generate(inner, [[1, 2]], 4, temperature=0).numpy())
    class FirstRowOnly(nn.Module):
        def forward(self, idx):
            return inner(idx)[:1]

    with pytest.raises(ValueError, match=r"generate: the model returned logits for 1 rows \(shape \(1, 7\)\) for a "
                                         r"batch of 2 prompts"):
        ta.generate(FirstRowOnly(), [[1], [2]], 2, use_cache=False)
