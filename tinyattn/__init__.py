"""tinyattn: a tiny deep-learning framework for self-attention, with Numba kernels.

    import tinyattn as ta
    x = ta.randn(4, 8, requires_grad=True)
    y = (x @ x.T).softmax(dim=-1).sum()
    y.backward()            # x.grad now holds dy/dx
"""
from . import kernel_cache  # first: the kernels' Numba cache tolerates a full or unwritable disk (kernel_cache.py)
from . import cuda, functional, nn, optim, profiler, testing, viz
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .cuda import device
from .creation import (
    arange, from_numpy, full, ones, ones_like, rand, randint, randn, tensor, zeros, zeros_like,
)
from .dtypes import double, float32, float64, int32, int64, long
from .functional import (
    abs, cat, exp, log, matmul, max, maximum, relu, sigmoid, sqrt, stack, tanh, where,
)
from .functional import (  # noqa: E402  (the everyday ops; some shadow builtins only in this namespace)
    all, amax, amin, any, argmax, argmin, argsort, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, clamp, clip,
    einsum, floor_divide, log_softmax, logical_and, logical_not, logical_or, logical_xor, min, minimum, remainder,
    softmax, sort, topk, tril, triu,
)
from .generation import generate
from .random import (  # noqa: E402
    Generator, default_generator, fork_rng, get_rng_state, initial_seed, manual_seed, seed, set_rng_state,
)
from .creation import (  # noqa: E402  (random sampling; each takes generator=)
    bernoulli, multinomial, normal, rand_like, randint_like, randn_like, randperm,
)
from . import random, utils  # noqa: E402
from .serialization import load, save
from .tensor import Tensor
from .dtypes import bool_ as bool  # noqa: E402  (torch.bool; shadows the builtin only in this namespace)

# What PyTorch programs set or call around the model: mixed precision, backend flags, threads, compile.
from . import amp, backends, settings  # noqa: E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402
from .autograd import inference_mode  # noqa: E402
from .settings import (  # noqa: E402
    are_deterministic_algorithms_enabled, compile, get_float32_matmul_precision, get_num_threads,
    set_float32_matmul_precision, set_num_threads, use_deterministic_algorithms,
)

# The composition root tells the runtime when a backward may follow a forward (whether a cold start compiles
# attention's backward ahead, in a second process): whenever gradients are being recorded.
from . import runtime as _runtime  # noqa: E402
_runtime.set_backward_expected(is_grad_enabled)
_runtime.limit_omp_spin()  # before anything (ta.set_num_threads, a first kernel) makes Numba load its OpenMP

__version__ = "0.1.0"

# ---- PyTorch's dtypes, Size, and the wider op set (functional/*) --------------------------------------
from .dtypes import (  # noqa: E402
    bfloat16, float16, get_default_dtype, half, int8, int16, set_default_dtype, short, uint8,
)
from .dtypes import float32 as float, int32 as int  # noqa: E402,F811  (torch.float / torch.int)
from .size import Size  # noqa: E402
from .creation import (  # noqa: E402
    as_tensor, asarray, empty, empty_like, eye, full_like, linspace, logspace,
)
from .functional import (  # noqa: E402
    acos, addmm, allclose, argwhere, asin, atan, baddbmm, bmm, ceil, chunk, cos, cosh, count_nonzero, cumprod,
    cumsum, diag, diagonal, dot, equal, erf, exp2, expm1, fix, flip, fliplr, flipud, floor, frac, gather, ger,
    index_add, index_copy, index_fill, index_select, isclose, isfinite, isinf, isnan, isneginf, isposinf, log1p,
    log2, log10, logsumexp, masked_select, mm, moveaxis, movedim, mv, nan_to_num, narrow, neg, nonzero, norm,
    outer, pow, prod, reciprocal, repeat_interleave, reshape, roll, round, rsqrt, scatter, scatter_add, sign,
    signbit, sin, sinh, split, square, std, std_mean, swapaxes, swapdims, t, take, take_along_dim, tan,
    tensor_split, tile, trunc, unbind, unflatten, var, var_mean, vdot, mean, sum, transpose, permute, squeeze,
    unsqueeze, flatten, masked_fill, mul, add, sub, div,
)
from .functional import neg as negative, mul as multiply, sub as subtract, div as divide, div as true_divide  # noqa: E402
from .functional import eq, ne, lt, le, gt, ge  # noqa: E402
from .functional import gt as greater, ge as greater_equal, lt as less, le as less_equal, ne as not_equal  # noqa: E402
from .functional import (  # noqa: E402
    bincount, bucketize, histc, histogram, meshgrid, searchsorted, tril_indices, triu_indices, unique,
    unique_consecutive,
)
from .functional import (  # noqa: E402
    addcdiv, addcmul, arctan2, atan2, diff, fmod, hypot, lerp, logaddexp, median,
)
from .creation import (  # noqa: E402  (PyTorch's legacy typed constructors)
    BoolTensor, ByteTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor, LongTensor,
)
from .functional import (  # noqa: E402
    atleast_1d, atleast_2d, atleast_3d, cdist, column_stack, concat, concatenate, dstack, hstack, row_stack, trace,
    vstack,
)
from .functional import (  # noqa: E402
    absolute, acosh, aminmax, arccos, arccosh, arcsin, arcsinh, arctan, arctanh, asinh, atanh, broadcast_to,
    clamp_max, clamp_min, cummax, cummin, deg2rad, diag_embed, diagflat, index_put, inner, kron, kthvalue, logit,
    logcumsumexp, masked_scatter, nanmean, nanquantile, nansum, positive, quantile, rad2deg, ravel, rot90,
    scatter_reduce, select, sgn, xlogy,
)
from .functional import (  # noqa: E402
    block_diag, broadcast_shapes, broadcast_tensors, can_cast, cartesian_prod, clone, combinations, copysign,
    cosine_similarity, detach, dist, dsplit, erfc, float_power, fmax, fmin, heaviside, hsplit, isin, logaddexp2,
    pairwise_distance, promote_types, result_type, rsub, scalar_tensor, sinc, split_with_sizes, tensordot,
    unravel_index, vsplit,
)
from .functional import det, inverse, logdet, matrix_power, slogdet  # noqa: E402
from .dtypes import finfo, iinfo  # noqa: E402
from math import e, inf, nan, pi  # noqa: E402  (torch.pi, torch.e, torch.inf, torch.nan)
from . import linalg  # noqa: E402
from .dtypes import is_floating_point, is_tensor, numel  # noqa: E402


__all__ = [
    "abs", "absolute", "acos", "acosh", "add", "addcdiv", "addcmul", "addmm", "all", "allclose", "amax", "amin",
    "aminmax", "any", "arange", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh",
    "are_deterministic_algorithms_enabled", "argmax", "argmin", "argsort", "argwhere", "as_tensor", "asarray", "asin",
    "asinh", "atan", "atan2", "atanh", "atleast_1d", "atleast_2d", "atleast_3d", "autocast", "baddbmm", "bernoulli",
    "bfloat16", "bincount", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "block_diag", "bmm", "bool",
    "BoolTensor", "broadcast_shapes", "broadcast_tensors", "broadcast_to", "bucketize", "ByteTensor", "can_cast",
    "cartesian_prod", "cat", "cdist", "ceil", "chunk", "clamp", "clamp_max", "clamp_min", "clip", "clone",
    "column_stack", "combinations", "compile", "concat", "concatenate", "copysign", "cos", "cosh", "cosine_similarity",
    "count_nonzero", "cummax", "cummin", "cumprod", "cumsum", "default_generator", "deg2rad", "det", "detach", "device",
    "diag", "diag_embed", "diagflat", "diagonal", "diff", "dist", "div", "divide", "dot", "double", "DoubleTensor",
    "dsplit", "dstack", "einsum", "empty", "empty_like", "enable_grad", "eq", "equal", "erf", "erfc", "exp", "exp2",
    "expm1", "eye", "finfo", "fix", "flatten", "flip", "fliplr", "flipud", "float", "float16", "float32", "float64",
    "float_power", "FloatTensor", "floor", "floor_divide", "fmax", "fmin", "fmod", "fork_rng", "frac", "from_numpy",
    "full", "full_like", "Function", "gather", "ge", "generate", "Generator", "ger", "get_autocast_dtype",
    "get_default_dtype", "get_float32_matmul_precision", "get_num_threads", "get_rng_state", "greater", "greater_equal",
    "gt", "half", "HalfTensor", "heaviside", "histc", "histogram", "hsplit", "hstack", "hypot", "iinfo", "index_add",
    "index_copy", "index_fill", "index_put", "index_select", "inference_mode", "initial_seed", "inner", "int", "int16",
    "int32", "int64", "int8", "IntTensor", "inverse", "is_autocast_enabled", "is_floating_point", "is_grad_enabled",
    "is_tensor", "isclose", "isfinite", "isin", "isinf", "isnan", "isneginf", "isposinf", "kron", "kthvalue", "le",
    "lerp", "less", "less_equal", "linspace", "load", "log", "log10", "log1p", "log2", "log_softmax", "logaddexp",
    "logaddexp2", "logcumsumexp", "logdet", "logical_and", "logical_not", "logical_or", "logical_xor", "logit",
    "logspace", "logsumexp", "long", "LongTensor", "lt", "manual_seed", "masked_fill", "masked_scatter",
    "masked_select", "matmul", "matrix_power", "max", "maximum", "mean", "median", "meshgrid", "min", "minimum", "mm",
    "moveaxis", "movedim", "mul", "multinomial", "multiply", "mv", "nan_to_num", "nanmean", "nanquantile", "nansum",
    "narrow", "ne", "neg", "negative", "no_grad", "nonzero", "norm", "normal", "not_equal", "numel", "ones",
    "ones_like", "outer", "pairwise_distance", "permute", "positive", "pow", "prod", "promote_types", "quantile",
    "rad2deg", "rand", "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm", "ravel", "reciprocal",
    "relu", "remainder", "repeat_interleave", "reshape", "result_type", "roll", "rot90", "round", "row_stack", "rsqrt",
    "rsub", "save", "scalar_tensor", "scatter", "scatter_add", "scatter_reduce", "searchsorted", "seed", "select",
    "set_default_dtype", "set_float32_matmul_precision", "set_grad_enabled", "set_num_threads", "set_rng_state", "sgn",
    "short", "sigmoid", "sign", "signbit", "sin", "sinc", "sinh", "Size", "slogdet", "softmax", "sort", "split",
    "split_with_sizes", "sqrt", "square", "squeeze", "stack", "std", "std_mean", "sub", "subtract", "sum", "swapaxes",
    "swapdims", "t", "take", "take_along_dim", "tan", "tanh", "Tensor", "tensor", "tensor_split", "tensordot", "tile",
    "topk", "trace", "transpose", "tril", "tril_indices", "triu", "triu_indices", "true_divide", "trunc", "uint8",
    "unbind", "unflatten", "unique", "unique_consecutive", "unravel_index", "unsqueeze", "use_deterministic_algorithms",
    "var", "var_mean", "vdot", "vsplit", "vstack", "where", "xlogy", "zeros", "zeros_like",
]
__all__ += ["e", "inf", "nan", "pi"]  # torch.e, torch.inf, torch.nan, torch.pi: in torch.__all__ too
