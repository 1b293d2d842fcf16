"""Sampling text from a causal language model, one token at a time, with a key/value cache.

    ids = ta.generate(model, prompt, max_new_tokens=200, temperature=0.8, top_k=40)

Why causal attention can be cached: with the causal mask, position p's output in every layer
depends on positions <= p only, so the keys and values a layer computed for the first S positions
never change when tokens are appended. Each step then only has to embed the new token, project its
query, key and value, append the key and value to the cache and attend the one query to all S + 1
cached positions: O(S) work per token and layer, where re-running the window costs O(S²) attention
and O(S) projections of tokens already seen.

The model contract: model(tokens) -> logits (N, T, vocab) for tokens (N, T) (int64) (or a tuple whose
first item they are, as nanoGPT's (logits, loss), or an object with a .logits Tensor), and, for the
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
from .random import RandomArgumentError, numpy_rng
from .tensor import Tensor

__all__ = [
    "filter_logits", "generate", "model_context_length", "sample_from_logits",
]

_OP = "generate"
_OVERFLOW = ("slide", "reprime")


def filter_logits(logits, top_k=None, top_p=None):
    """logits (N, V) -> float64 copy with -inf wherever top_k / top_p remove a token (HF's warpers).

    top_k keeps the k largest logits of each row (ties at the boundary: the lower token ids, as a stable
    sort orders them); k larger than V keeps all. top_p (nucleus) keeps the smallest set of most probable
    tokens whose probability (softmax of the logits) sums to at least top_p: a token is kept when the
    tokens ranked above it sum to less than top_p, so the most probable one always stays. top_k is
    applied first, then top_p on what is left (renormalised), as Hugging Face's generate does.
    -inf logits (tokens already removed) stay -inf; NaN or +inf logits raise RandomArgumentError (a
    ValueError and a RuntimeError), as PyTorch's multinomial does for the probabilities they give.
    """
    top_k, top_p = _check_top(top_k, top_p)
    x = np.array(_as_numpy(logits), dtype=np.float64)  # (N, V), a copy
    if x.ndim != 2:
        raise ValueError(f"{_OP}: logits must be (N, vocab), got shape {x.shape}")
    _check_logits(x, allow_empty_rows=True)
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

    temperature == 0 is greedy (argmax; the first of equal maxima; top_k / top_p cannot change it), as
    common generate() code treats it. Otherwise the logits are divided by temperature, filtered by
    top_k / top_p (filter_logits) and one token is drawn from their softmax by inverse CDF with one
    uniform number per row from `generator`: None (the global generator that manual_seed reseeds, so
    the same seed gives the same tokens), a tinyattn.Generator or a numpy.random.Generator.

    Each row's largest logit is subtracted before dividing by temperature, so no temperature > 0
    overflows: a temperature so small that logit / temperature would overflow (e.g. 1e-320) gives the
    limit of softmax(logits / T) as T -> 0, i.e. the largest logit's token (equal maxima: one of them,
    equally likely), not the NaN that the plain division gives. A row with a NaN or +inf logit, or
    with only -inf logits (no token left), raises RandomArgumentError (a ValueError and a RuntimeError)
    with PyTorch multinomial's message, whatever the temperature: never a silent token 0.
    """
    temperature = _check_temperature(temperature)
    _check_top(top_k, top_p)  # (greedy ignores them, but bad values are refused all the same)
    numpy_rng(generator, _OP)  # a bad generator is refused before anything else
    return _sample(np.asarray(_as_numpy(logits), dtype=np.float64), temperature, top_k, top_p, generator)


def _sample(x, temperature, top_k, top_p, generator):
    """sample_from_logits for a float64 array x and a checked temperature (generate's loop: no checks twice)."""
    if x.ndim != 2 or x.shape[-1] == 0:
        raise ValueError(f"{_OP}: logits must be (N, vocab) with vocab > 0, got shape {x.shape}")
    _check_logits(x)
    if temperature == 0.0:
        return np.argmax(x, axis=-1).astype(np.int64)
    with np.errstate(over="ignore"):  # (x - max) / T <= 0: an overflow can only reach -inf, the T -> 0 limit
        x = (x - x.max(axis=-1, keepdims=True)) / temperature  # each row's max -> 0 (finite: checked above)
    if top_k is not None or top_p is not None:  # (with neither, filter_logits would only copy x)
        x = filter_logits(x, top_k, top_p)
    p = np.exp(x)  # (N, V); the max is exp(0) = 1, so every row sums to >= 1 and nothing is NaN
    rng = numpy_rng(generator, _OP)
    u = rng.random(len(p))[:, None]  # (N, 1) in [0, 1)
    cdf = np.cumsum(p, axis=-1)
    # the first token whose cdf exceeds u·total; were u·total to round up to the total, the last token of
    # probability > 0 (a token of probability 0 is never drawn)
    token = (cdf <= u * cdf[:, -1:]).sum(axis=-1)
    last_possible = p.shape[-1] - 1 - np.argmax(p[:, ::-1] > 0, axis=-1)
    return np.minimum(token, last_possible).astype(np.int64)


def generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, top_p=None, *, use_cache=True,
             context_length=None, generator=None, return_logits=False, context_overflow="slide"):
    """Continue `prompt` by `max_new_tokens` tokens sampled from `model`, under no_grad.

    prompt: int tokens (T,) or (N, T) (a Tensor, array or list of equally long rows); returns an int64
    Tensor with the prompt followed by the new tokens, (T + max_new_tokens,) or (N, T + max_new_tokens),
    on the prompt's device. The model runs in eval mode (no dropout) and is put back in its previous
    mode afterwards.

    temperature, top_k, top_p: as in sample_from_logits. temperature=0 is greedy (argmax), as common
    generate() code treats it; a temperature so small that logits / temperature would overflow (e.g.
    1e-320) samples from the T -> 0 limit (the largest logit's token), never from NaN. Logits holding
    NaN or +inf, or a row of only -inf, raise RandomArgumentError (a ValueError and a RuntimeError,
    PyTorch multinomial's "probability tensor contains either `inf`, `nan` or element < 0").
    generator: None (the global generator that ta.manual_seed reseeds), a tinyattn.Generator or a
    numpy.random.Generator; anything else is a TypeError.

    context_length: the most positions the model can take; by default the smallest max_len of the
    model's positional encodings (none: unlimited). The model always sees the last context_length
    tokens at most (as nanoGPT's generate crops its input): a longer prompt is cropped for the model
    (the returned ids keep all of it), and once the sequence is longer the window slides by one token
    per step.

    use_cache=True (default) feeds the prompt once and then one token per step with an nn.KVCache
    (a model that takes kv_cache but leaves it unfilled is refused with a ValueError: it would see one
    token per step); use_cache=False re-runs the window at every step (the reference). With the default
    context_overflow="slide" both give the same tokens (and the same logits, to float rounding): a
    cache cannot drop its oldest position (every later key was computed with it in view), so once the
    window is full the cached path re-runs the last context_length tokens at every step as
    use_cache=False does (no cache speed-up from then on). context_overflow="reprime" is the faster
    approximation instead: when the window is full it starts a new cache from the last
    max(1, context_length // 2) tokens (one forward over them) and appends to it until it is full
    again; its logits then equal a forward over the tokens kept, not over the last context_length,
    so its tokens differ from use_cache=False (use_cache=False ignores context_overflow).

    return_logits=True also returns the logits each new token was drawn from (before temperature and
    filtering), a float64 numpy array (N, max_new_tokens, vocab) (or (max_new_tokens, vocab) for a
    1-D prompt); (N, 0, vocab) for max_new_tokens=0.
    """
    if not isinstance(model, Module):
        raise TypeError(f"{_OP}: model must be an nn.Module, got {type(model).__name__}")
    max_new_tokens = _count("max_new_tokens", max_new_tokens)
    temperature = _check_temperature(temperature)
    _check_top(top_k, top_p)
    numpy_rng(generator, _OP)  # a TypeError naming the argument for anything but a generator, before the model runs
    if context_overflow not in _OVERFLOW:
        raise ValueError(f"{_OP}: context_overflow must be one of {_OVERFLOW}, got {context_overflow!r}")
    ids, device, one_d = _prompt(prompt)  # (N, T) int64 numpy
    if context_length is None:
        context_length = model_context_length(model)
    else:
        context_length = _count("context_length", context_length, minimum=1)
    if use_cache:
        _check_takes_cache(model)
    was_training = model.training
    model.eval()
    steps = []
    try:
        with no_grad():
            run = (_cached(model, ids, context_length, device, context_overflow) if use_cache
                   else _uncached(model, ids, context_length, device))
            logits = next(run)
            vocab = logits.shape[-1]
            for _ in range(max_new_tokens):
                if logits.shape[0] != ids.shape[0]:
                    raise ValueError(f"{_OP}: the model returned logits for {logits.shape[0]} rows (shape "
                                     f"{logits.shape}) for a batch of {ids.shape[0]} prompts")
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
    scores = np.stack(steps, axis=1) if steps else np.zeros((ids.shape[0], 0, vocab))
    return out, (scores[0] if one_d else scores)


def model_context_length(model):
    """The smallest max_len of the model's positional encodings, or None when it has none."""
    lengths = [m.max_len for m in model.modules()
               if isinstance(m, (SinusoidalPositionalEncoding, LearnedPositionalEncoding, RotaryEmbedding))]
    return min(lengths) if lengths else None


def _cached(model, ids, context, device, overflow):
    """Generator: yields the last position's logits (N, V), is sent the token ids after each sample."""
    if context is not None and ids.shape[1] >= context and overflow == "slide":
        yield from _uncached(model, ids, context, device)  # the window is full already: nothing to cache
        return
    cache = KVCache()
    start = 0 if context is None else max(0, ids.shape[1] - context)  # a prompt longer than the window: its end
    logits = _cached_forward(model, tensor(ids[:, start:], device=device), cache)
    while True:
        ids = yield logits
        if context is None or cache.seq_len < context:  # the newest token fits: one cached step
            logits = _cached_forward(model, _tokens(ids[:, -1:], device), cache)
        elif overflow == "slide":  # from now on every step is a forward over the last `context` tokens
            yield from _uncached(model, ids, context, device)
            return
        else:  # "reprime": a new cache from the newest max(1, context // 2) tokens (never ids[:, -0:])
            cache = KVCache()
            keep = max(1, context // 2)
            logits = _cached_forward(model, tensor(ids[:, -keep:], device=device), cache)


def _cached_forward(model, tokens, cache):
    """model(tokens, kv_cache=cache)'s last logits, after checking that the model did fill the cache: a
    model that takes kv_cache but does not hand it to its layers would otherwise see one token per step."""
    before = cache.seq_len
    logits = _last(model(tokens, kv_cache=cache))
    if cache.seq_len != before + tokens.shape[1]:
        raise ValueError(f"{_OP}: after a forward over {tokens.shape[1]} new token(s) with kv_cache, the cache holds "
                         f"{cache.seq_len} position(s) instead of {before + tokens.shape[1]}: "
                         f"{type(model).__name__}.forward must hand kv_cache to its causal attention layers "
                         "(cache[i] to layer i, or the whole cache to an nn.TransformerEncoder), or pass "
                         "use_cache=False")
    return logits


def _uncached(model, ids, context, device):
    """Generator: the last position's logits of a forward over the last `context` tokens, at every step."""
    while True:
        window = ids if context is None else ids[:, -context:]
        ids = yield _last(model(tensor(window, device=device)))


def _tokens(ids, device):
    """Token ids (N, T) (int64 numpy) as a new tensor on `device`; on the CPU without tensor()'s checks."""
    return from_numpy(ids.copy()) if device == "cpu" else tensor(ids, device=device)


def _last(logits):
    if isinstance(logits, (tuple, list)) and logits:  # (logits, loss) as nanoGPT's and minGPT's models return
        logits = logits[0]
    elif not isinstance(logits, Tensor) and isinstance(getattr(logits, "logits", None), Tensor):  # HF's outputs
        logits = logits.logits
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
    rows = None
    if isinstance(prompt, (list, tuple)):  # rows of different lengths: name them (not numpy's "inhomogeneous")
        try:
            rows = [np.asarray(_as_numpy(row)) for row in prompt]  # (rows may be Tensors)
        except ValueError:  # a row that is itself ragged: the error below
            rows = None
        if rows is not None and len({row.shape for row in rows}) > 1:
            lengths = [len(row) if row.ndim else "a single id" for row in rows]
            raise ValueError(f"{_OP}: the prompt's rows have different lengths {lengths}; a batch needs rows of "
                             "one length (pad them, or generate row by row)")
    try:
        ids = np.asarray(rows if rows is not None else _as_numpy(prompt))
    except ValueError as e:
        raise ValueError(f"{_OP}: the prompt must be (T,) or (N, T) token ids of one length per row: {e}") from None
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
    """Row softmax of float64 logits whose rows hold no NaN / +inf; a row of only -inf gives zeros."""
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - np.where(m == -np.inf, 0.0, m))
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total == 0, 1.0, total)


def _check_logits(x, allow_empty_rows=False):
    """Refuse rows (of float64 logits (N, V)) that no probability distribution comes from: a NaN or +inf
    logit, or (unless allow_empty_rows) only -inf logits. PyTorch's softmax turns each into NaN, which
    its multinomial refuses with this message; numpy's argmax and cumsum would silently give token 0."""
    if np.isfinite(x).all():
        return
    problems = []
    for what, rows in (("a NaN logit", np.isnan(x).any(axis=-1)), ("a +inf logit", np.isposinf(x).any(axis=-1)),
                       ("only -inf logits (no token left to draw)",
                        None if allow_empty_rows else ~(x > -np.inf).any(axis=-1))):
        if rows is not None and rows.any():
            problems.append(f"row(s) {np.flatnonzero(rows)[:8].tolist()}{' ...' if rows.sum() > 8 else ''} "
                            f"hold {what}")
    if problems:
        raise RandomArgumentError(f"{_OP}: probability tensor contains either `inf`, `nan` or element < 0: the "
                                  f"logits (N={x.shape[0]}, vocab={x.shape[1]}) in " + "; ".join(problems))


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
