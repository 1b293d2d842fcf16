"""Factory functions with PyTorch's names and defaults (floats are float32 unless told).

Each takes device= ("cpu" by default, or "cuda"). Constant fills are made on the device itself;
random numbers come from a generator on the host (generator=, or the default one: see
tinyattn/random.py) and are then copied, so a seed gives the same values on either device.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend
from .autograd import Variable
from .cuda import device as Device
from .dtypes import KINDS, as_dtype, default_dtype_for, float32, get_default_dtype, int64
from .random import RandomArgumentError, numpy_rng
from .tensor import Tensor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._typing import Device as DeviceLike, DType, Number, Shape
    from .random import Generator

__all__ = [
    "arange", "as_tensor", "asarray", "bernoulli", "bernoulli_", "BoolTensor", "ByteTensor", "cauchy_", "DoubleTensor",
    "empty", "empty_like", "empty_parameter_data", "exponential_", "eye", "FloatTensor", "from_numpy", "full",
    "full_like", "geometric_", "HalfTensor", "IntTensor", "linspace", "log_normal_", "logspace", "LongTensor",
    "multinomial", "normal", "normal_", "ones", "ones_like", "rand", "rand_like", "randint", "randint_like", "randn",
    "randn_like", "random_", "randperm", "tensor", "uniform_", "zeros", "zeros_like",
]


def _is_int(n):
    """A Python or numpy integer, not a bool (PyTorch refuses zeros(True))."""
    return isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))


def _size(op, size):
    """The shape from `*size` (ints, or one tuple/list of ints), checked as PyTorch does."""
    shown = size[0] if len(size) == 1 else size
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(_is_int(s) for s in size):
        raise TypeError(f"{op}: size must be a tuple of ints, got {shown!r}")
    size = tuple(int(s) for s in size)
    for s in size:
        if s < 0:
            raise ValueError(f"{op}: negative dimension {s} in size {size}")
    return size


def _dtype(op, dtype, default):
    """`dtype` (a tinyattn/numpy dtype, its name, or float/int/bool) as np.dtype; `default` when None."""
    return default if dtype is None else as_dtype(dtype, op)


def _device(device):
    return "cpu" if device is None else Device(device).type


def _check_grad(op, dtype, requires_grad):
    if requires_grad and dtype.kind != "f":
        raise TypeError(f"{op}: only floating-point tensors can require gradients, got dtype {dtype}")


def _make(array, requires_grad, device=None):
    t = Tensor._wrap(backend.move(array, _device(device)))
    t.requires_grad = requires_grad  # the setter rejects integer tensors
    return t


def _filled(op, size, value, dtype, requires_grad, device):
    size = _size(op, size)
    _check_grad(op, dtype, requires_grad)
    xp = backend.get(_device(device)).xp
    return _make(xp.full(size, value, dtype=dtype), requires_grad, device)


def tensor(data: Any, requires_grad: bool = False, dtype: DType = None, device: DeviceLike = None) -> Tensor:
    """A new tensor holding a copy of `data` (a number, nested lists, an ndarray or a Tensor)."""
    dtype = as_dtype(dtype, "tensor")  # then Tensor() checks the data (dtypes.check_data)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array`, keeping its dtype."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(array).__name__}")
    if array.dtype.kind not in KINDS:
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype}; a tensor holds bool, integer or "
                        "floating-point data")
    return Tensor._wrap(array)


def _no_out(op, out):
    if out is not None:
        raise NotImplementedError(f"{op}: out= is not supported by tinyattn; assign the result instead")


def zeros(*size: Any, out: Tensor | None = None, dtype: DType = None, layout: Any = None, device: DeviceLike = None,
          requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Zeros of shape `size` (ints, or one tuple/list/Size), of the default dtype (float32) unless told."""
    _no_out("zeros", out)
    return _filled("zeros", size, 0, _dtype("zeros", dtype, get_default_dtype()), requires_grad, device)


def ones(*size: Any, out: Tensor | None = None, dtype: DType = None, layout: Any = None, device: DeviceLike = None,
         requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    _no_out("ones", out)
    return _filled("ones", size, 1, _dtype("ones", dtype, get_default_dtype()), requires_grad, device)


def full(size: Shape, fill_value: Number, *, out: Tensor | None = None, dtype: DType = None, layout: Any = None,
         device: DeviceLike = None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A tensor filled with fill_value; its dtype follows the value (int64, bool or float32) unless told."""
    if isinstance(fill_value, Variable):
        fill_value = fill_value.item()  # a one-element tensor, as PyTorch allows
    if not isinstance(fill_value, (numbers.Number, np.bool_)) or isinstance(fill_value, complex):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    _no_out("full", out)
    dtype = _dtype("full", dtype, None) or default_dtype_for(np.asarray(fill_value))
    return _filled("full", (size,), fill_value, dtype, requires_grad, device)


def _like(op, t):
    if not isinstance(t, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(t).__name__}")
    return t


def zeros_like(t: Tensor, *, dtype: DType = None, layout: Any = None, device: DeviceLike = None,
               requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """Zeros of t's shape, on t's device and of t's dtype unless told."""
    t = _like("zeros_like", t)
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def ones_like(t: Tensor, *, dtype: DType = None, layout: Any = None, device: DeviceLike = None,
              requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    t = _like("ones_like", t)
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


# ---- random numbers (every function takes generator=; see tinyattn/random.py) ------------------------


def _random_size(op, sizes, size):
    """The shape from `*size` varargs or the size= keyword (PyTorch accepts either)."""
    if size is not None:
        if sizes:
            raise TypeError(f"{op}: size given both positionally {sizes!r} and as size={size!r}")
        sizes = (size,)
    if not sizes:
        raise TypeError(f"{op}: missing the size (ints, or one tuple/list of ints)")
    return _size(op, sizes)


def _random_float(op, size, dtype, requires_grad):
    size, dtype = _size(op, size), _dtype(op, dtype, float32)
    if dtype.kind != "f":
        raise TypeError(f"{op}: dtype must be a floating-point type (float32 or float64), got {dtype}")
    _check_grad(op, dtype, requires_grad)
    return size, dtype


def randn(*sizes: Any, size: Shape | None = None, generator: Generator | None = None, dtype: DType = None,
          device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (float32 unless told) from `generator` or the default generator."""
    size, dtype = _random_float("randn", _random_size("randn", sizes, size), dtype, requires_grad)
    rng = numpy_rng(generator, "randn")
    return _make(rng.standard_normal(size).astype(dtype), requires_grad, device)


def rand(*sizes: Any, size: Shape | None = None, generator: Generator | None = None, dtype: DType = None,
         device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) (float32 unless told) from `generator` or the default generator."""
    size, dtype = _random_float("rand", _random_size("rand", sizes, size), dtype, requires_grad)
    rng = numpy_rng(generator, "rand")
    return _make(rng.random(size).astype(dtype), requires_grad, device)


def _int_bound(op, name, v):
    if not _is_int(v):
        raise TypeError(f"{op}: {name} must be an int, got {v!r}")
    return int(v)


_INT64_END = 1 << 63  # randint's high may be at most this for int64 (high - 1 is int64's largest)


def _draw_integers(op, rng, low, high, size, dtype):
    """Integers uniform in [low, high) as `dtype`, checked as PyTorch does."""
    low, high = _int_bound(op, "low", low), _int_bound(op, "high", high)
    if not low < high:
        raise RandomArgumentError(f"{op}: low {low} must be less than high {high} (random_ expects 'from' to be "
                                  f"less than 'to', but got from={low} >= to={high})")
    if dtype.kind in "iub":
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        lo, hi = (0, 1) if info is None else (info.min, info.max)
        if low < lo or high - 1 > hi:
            raise RandomArgumentError(f"{op}: the range [{low}, {high}) does not fit dtype {dtype}")
    return rng.integers(low, high, size=size).astype(dtype)


def randint(*args: Any, low: int | None = None, high: int | None = None, size: Shape | None = None,
            generator: Generator | None = None, dtype: DType = None, device: DeviceLike = None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high), int64 unless told: randint(high, size) or randint(low, high, size).

    As in PyTorch, size is a tuple (or list / torch.Size) of ints, positional (last) or size=; low
    defaults to 0.
    """
    if (len(args) == 2 and size is None and low is None and high is None and dtype is None and device is None
            and not requires_grad):  # randint(high, size), the commonest call: the same draw, fewer checks
        bound, shape = args
        if type(bound) is int and 0 < bound <= _INT64_END and isinstance(shape, tuple):
            for n in shape:
                if type(n) is not int or n < 0:
                    break
            else:  # what the general path draws: int64 already, so no conversion
                return Tensor._wrap(numpy_rng(generator, "randint").integers(0, bound, size=shape))
    args = list(args)
    if size is None:
        if not args or (len(args) == 1 and high is None):
            raise TypeError("randint: missing the size argument: randint(high, size) or randint(low, high, size), "
                            "size a tuple of ints")
        size = args.pop()
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"randint: size must be a tuple of ints, got {size!r}")
    if len(args) > 2:
        raise TypeError(f"randint: expected randint(high, size) or randint(low, high, size), got {len(args) + 1} "
                        "positional arguments")
    if len(args) == 2:
        if low is not None or high is not None:
            raise TypeError("randint: low and high given both positionally and by keyword")
        low, high = args
    elif len(args) == 1:
        if high is None:
            high = args[0]
        elif low is None:
            low = args[0]
        else:
            raise TypeError("randint: low and high given both positionally and by keyword")
    if high is None:
        raise TypeError("randint: missing the high argument")
    low = 0 if low is None else low
    size, dtype = _size("randint", (size,)), _dtype("randint", dtype, int64)
    _check_grad("randint", dtype, requires_grad)
    values = _draw_integers("randint", numpy_rng(generator, "randint"), low, high, size, dtype)
    return _make(values, requires_grad, device)


def randperm(n, *, generator=None, dtype=int64, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1 (int64 unless told)."""
    n = _int_bound("randperm", "n", n)
    if n < 0:
        raise RandomArgumentError(f"randperm: n must be non-negative, got {n}")
    dtype = _dtype("randperm", dtype, int64)
    _check_grad("randperm", dtype, requires_grad)
    if dtype.kind in "iu" and n > 0 and n - 1 > np.iinfo(dtype).max:
        raise RandomArgumentError(f"randperm: n is too large for result tensor type {dtype}, got n={n}")
    values = numpy_rng(generator, "randperm").permutation(n).astype(dtype)
    return _make(values, requires_grad, device)


def _host(op, t):
    """A tensor's values as a host float64 array (for the samplers' bookkeeping)."""
    if not isinstance(t, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(t).__name__}")
    return np.asarray(backend.move(t._array, "cpu"))


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn from the categories of each row of `input` (1-D (K,) or 2-D (N, K), non-negative
    weights that need not sum to 1): int64 (num_samples,) or (N, num_samples).

    With replacement, each draw is independent (inverse CDF); without, each row's indices are distinct
    (num_samples <= K), drawn one after another in proportion to the weights left (exponential keys:
    the smallest num_samples of E_k / w_k, E_k ~ Exp(1)); categories of weight 0 come last.
    Errors as PyTorch's (RuntimeError).
    """
    p = _host("multinomial", input)
    if p.dtype.kind != "f":
        raise RandomArgumentError(f"multinomial only supports floating-point dtypes for input, got: {p.dtype}")
    if p.ndim not in (1, 2):
        raise RandomArgumentError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {tuple(p.shape)}")
    if not _is_int(num_samples):
        raise TypeError(f"multinomial: num_samples must be an int, got {num_samples!r}")
    num_samples = int(num_samples)
    if num_samples <= 0:
        raise RandomArgumentError(f"multinomial: cannot sample n_sample <= 0 samples (got {num_samples})")
    rows = p.reshape(-1, p.shape[-1]).astype(np.float64)  # (N, K)
    n, k = rows.shape
    if k == 0:
        raise RandomArgumentError("multinomial: the number of categories cannot be 0")
    if not replacement and num_samples > k:
        raise RandomArgumentError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) samples without "
                                  f"replacement (n_sample={num_samples}, categories={k})")
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise RandomArgumentError("probability tensor contains either `inf`, `nan` or element < 0")
    totals = rows.sum(axis=1)
    if (totals <= 0).any() or not np.isfinite(totals).all():
        raise RandomArgumentError("invalid multinomial distribution (sum of probabilities <= 0)")
    rng = numpy_rng(generator, "multinomial")
    if replacement:
        cdf = np.cumsum(rows, axis=1) / totals[:, None]  # (N, K), each row ends at 1
        cdf[:, -1] = 1.0
        u = rng.random((n, num_samples))  # (N, S) in [0, 1)
        offset = np.arange(n, dtype=np.float64)[:, None]  # rows laid end to end: one sorted array, one search
        flat = np.searchsorted((cdf + offset).ravel(), (u + offset).ravel(), side="right")
        out = np.minimum(flat.reshape(n, num_samples) - np.arange(n)[:, None] * k, k - 1)
    else:
        with np.errstate(divide="ignore"):
            keys = rng.standard_exponential((n, k)) / rows  # (N, K); weight 0 gives inf: chosen last
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64).reshape(p.shape[:-1] + (num_samples,))
    return _make(out, False, input.device)


def _float_arg(op, name, v):
    if isinstance(v, Variable):
        if v.numel() != 1:
            raise TypeError(f"{op}: {name} must be a number, got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a number, got {v!r}")
    return float(v)


def _check_std(op, std):
    if np.any(np.asarray(std) < 0):
        shown = std if np.isscalar(std) else np.asarray(std).min()
        raise RandomArgumentError(f"{op} expects std >= 0.0, but found std {shown:g}")


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Normal samples N(mean, std²), PyTorch's forms: normal(mean_tensor, std_tensor) (broadcast),
    normal(mean_tensor, std=1.0), normal(mean, std_tensor), normal(mean, std, size) (float32 unless told).
    The result is a sample that does not require grad (PyTorch's records a node whose gradient for
    mean and std is zero: the same gradients)."""
    rng = numpy_rng(generator, "normal")
    if isinstance(mean, Variable) or isinstance(std, Variable):
        if size is not None:
            raise TypeError("normal: size is only taken with a number mean and std; with tensors the shape "
                            "is theirs")
        arrays = [_host("normal", v) for v in (mean, std) if isinstance(v, Variable)]
        for a in arrays:
            if a.dtype.kind != "f":
                raise TypeError(f"normal: mean and std must be floating-point tensors, got dtype {a.dtype}")
        m = _host("normal", mean) if isinstance(mean, Variable) else _float_arg("normal", "mean", mean)
        s = _host("normal", std) if isinstance(std, Variable) else _float_arg("normal", "std", std)
        _check_std("normal", s)
        shape = np.broadcast_shapes(*(np.shape(m), np.shape(s)))
        out_dtype = np.result_type(*arrays) if dtype is None else _dtype("normal", dtype, None)
        values = (m + s * rng.standard_normal(shape)).astype(out_dtype)
        dev = next(v for v in (mean, std) if isinstance(v, Variable)).device if device is None else device
        return _make(values, requires_grad, dev)
    if size is None:
        raise TypeError("normal: with a number mean and std, give size: normal(mean, std, size)")
    m, s = _float_arg("normal", "mean", mean), _float_arg("normal", "std", std)
    _check_std("normal", s)
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"normal: size must be a tuple of ints, got {size!r}")
    size, dtype = _random_float("normal", (size,), dtype, requires_grad)
    return _make((m + s * rng.standard_normal(size)).astype(dtype), requires_grad, device)


def _check_p(op, p):
    if not np.all((p >= 0) & (p <= 1)):  # (nan fails both)
        raise RandomArgumentError(f"{op} expects p to be in [0, 1], got values outside it (min {np.min(p)}, "
                                  f"max {np.max(p)})")


def bernoulli(input, p=None, *, generator=None):
    """1 with probability input (elementwise, in [0, 1]) else 0, in input's dtype and shape; or with
    probability p everywhere when p (a number) is given."""
    a = _host("bernoulli", input)
    if a.dtype.kind != "f":
        raise TypeError(f"bernoulli: input must be a floating-point tensor of probabilities, got dtype {a.dtype}")
    if p is None:
        probs = a
    else:
        probs = _float_arg("bernoulli", "p", p)
    _check_p("bernoulli", probs)
    values = (numpy_rng(generator, "bernoulli").random(a.shape) < probs).astype(a.dtype)
    return _make(values, False, input.device)


def _like_args(op, input, dtype, device, requires_grad):
    t = _like(op, input)
    return t.shape, dtype or t.dtype, device or t.device


def rand_like(input: Tensor, *, generator: Generator | None = None, dtype: DType = None, device: DeviceLike = None,
              requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like_args("rand_like", input, dtype, device, requires_grad)
    return rand(shape, generator=generator, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(input: Tensor, *, generator: Generator | None = None, dtype: DType = None, device: DeviceLike = None,
               requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like_args("randn_like", input, dtype, device, requires_grad)
    return randn(shape, generator=generator, dtype=dtype, device=device, requires_grad=requires_grad)


_NO_HIGH = object()


def randint_like(input, low=0, high=_NO_HIGH, *, generator=None, dtype=None, device=None, requires_grad=False):
    """randint_like(input, high) or randint_like(input, low, high): input's shape, dtype and device."""
    if high is _NO_HIGH:
        low, high = 0, low
    shape, dtype, device = _like_args("randint_like", input, dtype, device, requires_grad)
    return randint(low, high, shape, generator=generator, dtype=dtype, device=device, requires_grad=requires_grad)


# ---- in-place random fills (Tensor.normal_, uniform_, ...): values drawn on the host, then written like
# x.copy_(values) (leaf rules, version counter, the device) under the op's own name --------------------------


def _fill_random(op, x, values):
    from .functional.inplace import replace_values
    return replace_values(op, x, values)


def _float_target(op, x):
    if not isinstance(x, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: only floating-point tensors can be filled with {op[:-1]} samples, got dtype {x.dtype}")


def normal_(x, mean=0.0, std=1.0, *, generator=None):
    _float_target("normal_", x)
    mean, std = _float_arg("normal_", "mean", mean), _float_arg("normal_", "std", std)
    _check_std("normal_", std)
    values = mean + std * numpy_rng(generator, "normal_").standard_normal(x.shape)
    return _fill_random("normal_", x, values)


def uniform_(x, a=0.0, b=1.0, *, generator=None, **bounds):
    """Uniform in [a, b) (PyTorch's keywords `from` and `to` work too: uniform_(**{'from': 0, 'to': 2}))."""
    a, b = bounds.pop("from", a), bounds.pop("to", b)
    if bounds:
        raise TypeError(f"uniform_: unexpected keyword argument(s) {sorted(bounds)}")
    _float_target("uniform_", x)
    a, b = _float_arg("uniform_", "from", a), _float_arg("uniform_", "to", b)
    if a > b:
        raise RandomArgumentError(f"uniform_ expects to return a [from, to) range, but found from={a:g} > to={b:g}")
    values = numpy_rng(generator, "uniform_").uniform(a, b, x.shape)
    return _fill_random("uniform_", x, values)


def bernoulli_(x, p=0.5, *, generator=None):
    if not isinstance(x, Variable):
        raise TypeError(f"bernoulli_: expected a tensor, got {type(x).__name__}")
    probs = _host("bernoulli_", p) if isinstance(p, Variable) else _float_arg("bernoulli_", "p", p)
    if isinstance(probs, np.ndarray) and not _broadcasts_to(probs.shape, x.shape):
        raise ValueError(f"bernoulli_: p of shape {tuple(probs.shape)} does not broadcast to the tensor's shape "
                         f"{tuple(x.shape)}")
    _check_p("bernoulli_", probs)
    values = numpy_rng(generator, "bernoulli_").random(x.shape) < probs
    return _fill_random("bernoulli_", x, values)


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def random_(x, *args, generator=None, **bounds):
    """Integers uniform in [from, to): random_() covers [0, 2**mantissa] for floats and [0, max] for
    integers; random_(to); random_(from, to) (to=None: up to the dtype's max)."""
    if not isinstance(x, Variable):
        raise TypeError(f"random_: expected a tensor, got {type(x).__name__}")
    if len(args) > 2:
        raise TypeError(f"random_: expected at most 2 positional arguments (from, to), got {len(args)}")
    if len(args) == 1 and not bounds:
        low, high = 0, args[0]  # random_(to)
    else:
        low = args[0] if len(args) > 0 else 0
        high = args[1] if len(args) > 1 else None
        low, high = bounds.pop("from", low), bounds.pop("to", high)
    if bounds:
        raise TypeError(f"random_: unexpected keyword argument(s) {sorted(bounds)}")
    dtype = x.dtype
    if high is None:
        if dtype.kind == "f":
            top = 2 ** (np.finfo(dtype).nmant + 1)
        elif dtype.kind == "b":
            top = 1
        else:
            top = int(np.iinfo(dtype).max)
        high = top + 1
    values = _draw_integers("random_", numpy_rng(generator, "random_"), low, high, x.shape,
                            np.dtype(np.int64) if dtype.kind in "fb" or high - 1 > np.iinfo(np.int64).max else dtype)
    return _fill_random("random_", x, values)


def exponential_(x, lambd=1.0, *, generator=None):
    _float_target("exponential_", x)
    lambd = _float_arg("exponential_", "lambd", lambd)
    if not lambd > 0:
        raise RandomArgumentError(f"exponential_ expects lambda > 0.0, but found lambda={lambd:g}")
    values = numpy_rng(generator, "exponential_").standard_exponential(x.shape) / lambd
    return _fill_random("exponential_", x, values)


def geometric_(x, p, *, generator=None):
    if not isinstance(x, Variable):
        raise TypeError(f"geometric_: expected a tensor, got {type(x).__name__}")
    p = _float_arg("geometric_", "p", p)
    if not 0 < p < 1:
        raise RandomArgumentError(f"geometric_ expects p to be in (0, 1), but got p={p:g}")
    return _fill_random("geometric_", x, numpy_rng(generator, "geometric_").geometric(p, x.shape))


def log_normal_(x, mean=1.0, std=2.0, *, generator=None):
    _float_target("log_normal_", x)
    mean, std = _float_arg("log_normal_", "mean", mean), _float_arg("log_normal_", "std", std)
    if not std > 0:
        raise RandomArgumentError(f"log_normal_ expects std > 0.0, but found std={std:g}")
    return _fill_random("log_normal_", x, numpy_rng(generator, "log_normal_").lognormal(mean, std, x.shape))


def cauchy_(x, median=0.0, sigma=1.0, *, generator=None):
    _float_target("cauchy_", x)
    median, sigma = _float_arg("cauchy_", "median", median), _float_arg("cauchy_", "sigma", sigma)
    if not sigma > 0:
        raise RandomArgumentError(f"cauchy_ expects sigma > 0.0, but found sigma={sigma:g}")
    values = median + sigma * numpy_rng(generator, "cauchy_").standard_cauchy(x.shape)
    return _fill_random("cauchy_", x, values)


def arange(start: Number, end: Number | None = None, step: Number = 1, *, out: Tensor | None = None,
           dtype: DType = None, layout: Any = None, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Values from start to end (excluded); int64 for integer arguments, the default dtype (float32)
    otherwise. Numbers may be 0-d tensors."""
    _no_out("arange", out)
    start, end, step = (v.item() if isinstance(v, Variable) else v for v in (start, end, step))
    if end is None:
        start, end = 0, start
    for v in (start, end, step):
        if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
            raise TypeError(f"arange: start, end and step must be numbers, got {v!r}")
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise ValueError(f"arange: unsupported range {start} -> {end} (step {step}): the bounds must be finite")
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: the range {start} -> {end} goes against step {step} (upper and lower bound "
                         "inconsistent with the step's sign)")
    integral = all(_is_int(v) for v in (start, end, step))
    dtype = _dtype("arange", dtype, int64 if integral else get_default_dtype())
    _check_grad("arange", dtype, requires_grad)
    return _make(np.arange(start, end, step).astype(dtype), requires_grad, device)


def empty_parameter_data(shape, dtype=None):
    """Uninitialised storage for a parameter (float32 by default), on a cache line (backend.host_empty), as a
    tensor, which Parameter(...) shares (an array would be copied); an init fills it."""
    return Tensor._wrap(backend.host_empty(shape, as_dtype(dtype, "parameter") or float32))


# ---- more factories (PyTorch's names and keywords) -------------------------------------------------


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False,
          memory_format=None):
    """A tensor of shape `size` whose values are unspecified (here: zeros, so nothing uninitialised leaks)."""
    _no_out("empty", out)
    return _filled("empty", size, 0, _dtype("empty", dtype, get_default_dtype()), requires_grad, device)


def empty_like(t: Tensor, *, dtype: DType = None, layout: Any = None, device: DeviceLike = None,
               requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    t = _like("empty_like", t)
    return empty(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def full_like(t: Tensor, fill_value: Number, *, dtype: DType = None, layout: Any = None, device: DeviceLike = None,
              requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """A tensor of t's shape filled with fill_value, of t's dtype and device unless told."""
    t = _like("full_like", t)
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def _number(op, name, v):
    if isinstance(v, Variable):
        v = v.item()
    if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a number, got {v!r}")
    return v


def linspace(start: Number, end: Number, steps: int, *, out: Tensor | None = None, dtype: DType = None,
             layout: Any = None, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included (the default dtype unless told)."""
    _no_out("linspace", out)
    start, end = _number("linspace", "start", start), _number("linspace", "end", end)
    if not _is_int(steps):
        raise TypeError(f"linspace: steps must be an int, got {steps!r}")
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    dtype = _dtype("linspace", dtype, get_default_dtype())
    _check_grad("linspace", dtype, requires_grad)
    values = np.linspace(start, end, int(steps))
    if dtype.kind in "iu":
        values = np.trunc(values)
    return _make(values.astype(dtype), requires_grad, device)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps)."""
    _no_out("logspace", out)
    start, end = _number("logspace", "start", start), _number("logspace", "end", end)
    if not _is_int(steps) or steps < 0:
        raise ValueError(f"logspace: steps must be a non-negative int, got {steps!r}")
    dtype = _dtype("logspace", dtype, get_default_dtype())
    _check_grad("logspace", dtype, requires_grad)
    return _make(np.power(float(base), np.linspace(start, end, int(steps))).astype(dtype), requires_grad, device)


def eye(n: int, m: int | None = None, *, out: Tensor | None = None, dtype: DType = None, layout: Any = None,
        device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (m = n by default)."""
    _no_out("eye", out)
    m = n if m is None else m
    for name, v in (("n", n), ("m", m)):
        if not _is_int(v):
            raise TypeError(f"eye: {name} must be an int, got {v!r}")
        if v < 0:
            raise ValueError(f"eye: {name} must be greater or equal to 0, got {v}")
    dtype = _dtype("eye", dtype, get_default_dtype())
    _check_grad("eye", dtype, requires_grad)
    return _make(np.eye(int(n), int(m), dtype=dtype), requires_grad, device)


def as_tensor(data: Any, dtype: DType = None, device: DeviceLike = None) -> Tensor:
    """`data` as a tensor, sharing memory where it can: a tensor of the same dtype and device comes back as
    it is, a NumPy array of a supported dtype is wrapped without a copy (CPU); anything else is copied."""
    dt = as_dtype(dtype, "as_tensor")
    if isinstance(data, Variable):
        out = data if dt is None else data.to(dt)
        return out if device is None else out.to(device)
    if isinstance(data, np.ndarray) and data.dtype.kind in KINDS and (dt is None or dt == data.dtype) \
            and _device(device) == "cpu":
        return Tensor._wrap(data)
    return tensor(data, dtype=dt, device=device)


asarray = as_tensor


def _typed_constructor(name, dtype):
    def make(*args, device=None):
        """torch.<name>(data) copies data into a tensor of this dtype; torch.<name>(*sizes) gives one of that
        shape (zeros here; PyTorch leaves it uninitialised)."""
        from .size import Size

        if not args:
            return tensor([], dtype=dtype, device=device)
        if len(args) == 1 and not _is_int(args[0]) and not isinstance(args[0], Size):  # data (a tuple too)
            return tensor(args[0], dtype=dtype, device=device)
        return zeros(*args, dtype=dtype, device=device)

    make.__name__ = make.__qualname__ = name
    return make


FloatTensor = _typed_constructor("FloatTensor", np.float32)
DoubleTensor = _typed_constructor("DoubleTensor", np.float64)
HalfTensor = _typed_constructor("HalfTensor", np.float16)
LongTensor = _typed_constructor("LongTensor", np.int64)
IntTensor = _typed_constructor("IntTensor", np.int32)
ByteTensor = _typed_constructor("ByteTensor", np.uint8)
BoolTensor = _typed_constructor("BoolTensor", np.bool_)
