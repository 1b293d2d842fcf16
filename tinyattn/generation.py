"""Sampling text from a causal language model, one token at a time, with a key/value cache.

    ids = ta.generate(model, prompt, max_new_tokens=200, temperature=0.8, top_k=40)

Why causal attention can be cached: with the causal mask, position p's output in every layer
depends on positions <= p only, so the keys and values a layer computed for the first S positions
never change when tokens are appended. Each step then only has to embed the new token, project its
query, key and value, append the key and value to the cache and attend the one query to all S + 1
cached positions: O(S) work per token and layer, where re-running the window costs O(S²) attention
and O(S) projections of tokens already seen.

The model contract: model(tokens) -> logits (N, T, vocab) for tokens (N, T) (int64), and, for the
cached path, model(tokens, kv_cache=cache) with an nn.KVCache that the model hands to its causal
layers (cache[i] to layer i, or the whole cache to an nn.TransformerEncoder) and whose seq_len, read
before the layers, is the position offset for its positional encoding (see examples/char_lm.py).
"""
import inspect
import numbers

import numpy as np

from .autograd import no_grad
from .creation import from_numpy, tensor
from .nn.attention import KVCache
from .nn.module import Module
from .nn.positional import LearnedPositionalEncoding, RotaryEmbedding, SinusoidalPositionalEncoding
from .random import default_generator
from .tensor import Tensor

_OP = "generate"


def filter_logits(logits, top_k=None, top_p=None):
    """logits (N, V) -> float64 copy with -inf wherever top_k / top_p remove a token (HF's warpers).

    top_k keeps the k largest logits of each row (ties at the boundary: the lower token ids, as a stable
    sort orders them); k larger than V keeps all. top_p (nucleus) keeps the smallest set of most probable
    tokens whose probability (softmax of the logits) sums to at least top_p: a token is kept when the
    tokens ranked above it sum to less than top_p, so the most probable one always stays. top_k is
    applied first, then top_p on what is left (renormalised), as Hugging Face's generate does.
    """
    top_k, top_p = _check_top(top_k, top_p)
    x = np.array(_as_numpy(logits), dtype=np.float64)  # (N, V), a copy
    if x.ndim != 2:
        raise ValueError(f"{_OP}: logits must be (N, vocab), got shape {x.shape}")
    order = np.argsort(-x, axis=-1, kind="stable")  # (N, V) token ids, most likely first
    if top_k is not None and top_k < x.shape[-1]:
        np.put_along_axis(x, order[:, top_k:], -np.inf, axis=-1)
    if top_p is not None and top_p < 1.0:
        p = _softmax(x)
        p_sorted = np.take_along_axis(p, order, axis=-1)
        above = np.cumsum(p_sorted, axis=-1) - p_sorted  # probability of the tokens ranked above each one
        drop_sorted = above >= top_p  # (N, V) in rank order; rank 0 has nothing above it, so it stays
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)  # back to token order
        x[drop] = -np.inf
    return x


def sample_from_logits(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One token per row of logits (N, V): int64 (N,).

    temperature == 0 is greedy (argmax; the first of equal maxima); otherwise the logits are divided by
    temperature, filtered by top_k / top_p (filter_logits) and one token is drawn from their softmax by
    inverse CDF with one uniform number per row from `generator` (default: the global generator that
    manual_seed reseeds, so the same seed gives the same tokens).
    """
    temperature = _check_temperature(temperature)
    return _sample(np.asarray(_as_numpy(logits), dtype=np.float64), temperature, top_k, top_p, generator)


def _sample(x, temperature, top_k, top_p, generator):
    """sample_from_logits for a float64 array x and a checked temperature (generate's loop: no checks twice)."""
    if x.ndim != 2 or x.shape[-1] == 0:
        raise ValueError(f"{_OP}: logits must be (N, vocab) with vocab > 0, got shape {x.shape}")
    if temperature == 0.0:
        return np.argmax(x, axis=-1).astype(np.int64)
    x = x / temperature
    if top_k is not None or top_p is not None:  # (with neither, filter_logits would only copy x)
        x = filter_logits(x, top_k, top_p)
    p = _softmax(x)  # (N, V)
    rng = default_generator() if generator is None else generator
    u = rng.random(len(p))[:, None]  # (N, 1) in [0, 1)
    cdf = np.cumsum(p, axis=-1)
    # the first token whose cdf exceeds u·total: never a token of probability 0
    return np.minimum((cdf <= u * cdf[:, -1:]).sum(axis=-1), p.shape[-1] - 1).astype(np.int64)


def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, top_p=None, *, use_cache=True,
             context_length=None, generator=None, return_logits=False):
    """Continue `prompt` by `max_new_tokens` tokens sampled from `model`, under no_grad.

    prompt: int tokens (T,) or (N, T) (a Tensor, array or list); returns an int64 Tensor with the prompt
    followed by the new tokens, (T + max_new_tokens,) or (N, T + max_new_tokens), on the prompt's device.
    temperature, top_k, top_p: as in sample_from_logits (temperature 0: greedy). The model runs in eval
    mode (no dropout) and is put back in its previous mode afterwards.

    use_cache=True (default) feeds the prompt once and then one token per step with an nn.KVCache;
    use_cache=False re-runs the last context_length tokens at every step (the reference; same logits
    while the sequence fits the window).

    context_length: the most positions the model can take; by default the smallest max_len of the
    model's positional encodings (none: unlimited). A longer prompt is an error. When the window is
    full, the uncached path slides it by one token per step. The cached path cannot drop a position
    from its cache (every later key was computed with the dropped token in view), so it starts a new
    cache from the last context_length // 2 tokens (one forward over them) and continues from there:
    from then on its logits equal a full forward over those kept tokens, not over the last
    context_length tokens, and this happens again every context_length - context_length // 2 tokens.

    return_logits=True also returns the logits each new token was drawn from (before temperature and
    filtering), float64 (N, max_new_tokens, vocab) (or (max_new_tokens, vocab) for a 1-D prompt).
    """
    if not isinstance(model, Module):
        raise TypeError(f"{_OP}: model must be an nn.Module, got {type(model).__name__}")
    max_new_tokens = _count("max_new_tokens", max_new_tokens)
    temperature = _check_temperature(temperature)
    _check_top(top_k, top_p)
    ids, device, one_d = _prompt(prompt)  # (N, T) int64 numpy
    if context_length is None:
        context_length = model_context_length(model)
    else:
        context_length = _count("context_length", context_length, minimum=1)
    if context_length is not None and ids.shape[1] > context_length:
        raise ValueError(f"{_OP}: the prompt has {ids.shape[1]} tokens but the model's context is {context_length} "
                         "positions (pass a shorter prompt, e.g. its last tokens)")
    if use_cache:
        _check_takes_cache(model)
    was_training = model.training
    model.eval()
    steps = []
    try:
        with no_grad():
            run = _cached(model, ids, context_length, device) if use_cache else _uncached(model, ids, context_length,
                                                                                             device)
            logits = next(run)
            for _ in range(max_new_tokens):
                steps.append(logits)
                token = _sample(logits, temperature, top_k, top_p, generator)  # (N,); checked above
                ids = np.concatenate([ids, token[:, None]], axis=1)
                if len(steps) < max_new_tokens:
                    logits = run.send(ids)
    finally:
        model.train(was_training)
    out = tensor(ids[0] if one_d else ids, device=device)
    if not return_logits:
        return out
    vocab = steps[0].shape[-1] if steps else 0
    scores = np.stack(steps, axis=1) if steps else np.zeros((ids.shape[0], 0, vocab))
    return out, (scores[0] if one_d else scores)


def model_context_length(model):
    """The smallest max_len of the model's positional encodings, or None when it has none."""
    lengths = [m.max_len for m in model.modules()
               if isinstance(m, (SinusoidalPositionalEncoding, LearnedPositionalEncoding, RotaryEmbedding))]
    return min(lengths) if lengths else None


def _cached(model, ids, context, device):
    """Generator: yields the last position's logits (N, V), is sent the token ids after each sample."""
    cache = KVCache()
    logits = _last(model(tensor(ids, device=device), kv_cache=cache))
    while True:
        ids = yield logits
        if context is not None and cache.seq_len >= context:  # window full: re-prime from the newest tokens
            cache = KVCache()
            logits = _last(model(tensor(ids[:, -(context // 2):], device=device), kv_cache=cache))
        else:
            logits = _last(model(_tokens(ids[:, -1:], device), kv_cache=cache))


def _uncached(model, ids, context, device):
    while True:
        window = ids if context is None else ids[:, -context:]
        ids = yield _last(model(tensor(window, device=device)))


def _tokens(ids, device):
    """Token ids (N, T) (int64 numpy) as a new tensor on `device`; on the CPU without tensor()'s checks."""
    return from_numpy(ids.copy()) if device == "cpu" else tensor(ids, device=device)


def _last(logits):
    if not isinstance(logits, Tensor) or logits.ndim != 3:
        raise ValueError(f"{_OP}: the model must return logits (N, T, vocab), got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    if type(logits._array) is np.ndarray:  # on the CPU: the array itself, no indexing op
        return logits._array[:, -1].astype(np.float64)  # (N, V), a copy
    return logits[:, -1].numpy().astype(np.float64)  # (N, V): only the last position leaves the device


def _check_takes_cache(model):
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return
    if "kv_cache" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise TypeError(f"{_OP}: {type(model).__name__}.forward takes no kv_cache argument; give it one (hand "
                        "kv_cache[i] to causal layer i and offset=kv_cache.seq_len to the positional encoding) "
                        "or pass use_cache=False")


def _prompt(prompt):
    device = prompt.device if isinstance(prompt, Tensor) else "cpu"
    ids = _as_numpy(prompt)
    ids = np.asarray(ids)
    if ids.dtype == np.bool_ or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise TypeError(f"{_OP}: prompt must hold integer token ids, got dtype {ids.dtype}")
    if ids.ndim not in (1, 2):
        raise ValueError(f"{_OP}: prompt must be (T,) or (N, T) token ids, got shape {ids.shape}")
    one_d = ids.ndim == 1
    ids = ids.astype(np.int64).reshape(1, -1) if one_d else ids.astype(np.int64)
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{_OP}: the prompt must hold at least one token per row, got shape {ids.shape}")
    return ids, device, one_d


def _as_numpy(x):
    if isinstance(x, Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _softmax(x):
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def _count(name, n, minimum=0):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{_OP}: {name} must be an int, got {n!r}")
    if n < minimum:
        raise ValueError(f"{_OP}: {name} must be >= {minimum}, got {n}")
    return int(n)


def _check_temperature(temperature):
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"{_OP}: temperature must be a number, got {temperature!r}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"{_OP}: temperature must be finite and >= 0 (0: greedy), got {temperature}")
    return float(temperature)


def _check_top(top_k, top_p):
    if top_k is not None:
        top_k = _count("top_k", top_k, minimum=1)
    if top_p is not None:
        if isinstance(top_p, (bool, np.bool_)) or not isinstance(top_p, numbers.Real):
            raise TypeError(f"{_OP}: top_p must be a number in (0, 1], got {top_p!r}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"{_OP}: top_p must be in (0, 1], got {top_p}")
        top_p = float(top_p)
    return top_k, top_p
