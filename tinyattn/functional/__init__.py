"""Every differentiable op of tinyattn, one `Function` each, grouped by kind:

    elementwise    arithmetic, activations, maximum/where/masked_fill, comparisons
    reduction      sum, mean, amax/amin, var
    selection      max/min (values and indices along a dim), argmax/argmin, sort/argsort, topk, clamp/clip
    rounding       floor_divide (//), remainder (%)
    logical        bitwise and/or/xor/not (& | ^ ~), logical_*, all, any
    triangular     tril, triu
    einsum         einsum over any number of operands
    shape          reshape, permute/transpose, expand, indexing, unbind, cat, stack
    linalg         matmul, linear
    softmax        softmax, log_softmax (fused Numba kernels)
    normalization  layer_norm
    sparse         embedding
    dropout        dropout
    device         to_device (.to('cuda') / .cpu(); used by Tensor, not exported here)
    inplace        add_, mul_, x[i] = v, ... (version counters, PyTorch's in-place rules)
    loss           cross_entropy, nll_loss, mse_loss, l1_loss, smooth_l1_loss, huber_loss, binary_cross_entropy
                   (_with_logits), kl_div
    attention      scaled_dot_product_attention (fused) and its composite reference
    attention_variants  the lecture's additive relevance and sigmoid/relu normalisers
"""
from .attention import (
    CausalBias, CausalVariant, attention_composite, causal_lower_right, causal_upper_left,
    scaled_dot_product_attention,
)
from .attention_variants import additive_relevance, allowed_positions, apply_mask, normalize_scores
from .dropout import dropout
from .inplace import (
    add_, bitwise_and_, bitwise_or_, bitwise_xor_, clamp_, copy_, div_, fill_, floor_divide_, masked_fill_, mul_,
    pow_, remainder_, setitem, sub_, zero_,
)
from .elementwise import (
    abs, add, cast, div, eq, exp, ge, gelu, gt, le, log, lt, masked_fill, maximum, minimum, mul, ne, neg, pow,
    relu, sigmoid, sqrt, sub, tanh, where,
)
from .einsum import einsum
from .linalg import linear, matmul
from .loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_composite, huber_loss,
    kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss,
)
from .normalization import layer_norm, layer_norm_composite
from .logical import (
    all, any, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, logical_and, logical_not, logical_or, logical_xor,
)
from .reduction import amax, amin, mean, sum, var
from .rounding import floor_divide, remainder
from .selection import argmax, argmin, argsort, clamp, clip, max, min, sort, topk
from .shape import (
    cat, contiguous, expand, flatten, getitem, permute, reshape, squeeze, stack, transpose, unbind, unsqueeze, view,
)
from .softmax import log_softmax, softmax, softmax_composite
from .sparse import embedding
from .triangular import tril, triu
from .compare import allclose, equal, isclose, isfinite, isinf, isnan, isneginf, isposinf, nan_to_num
from .indexing import (
    argwhere, gather, index_add, index_copy, index_fill, index_select, masked_select, nonzero, scatter, scatter_add,
    take, take_along_dim,
)
from .inplace import index_add_, index_copy_, index_fill_, scatter_, scatter_add_
from .linalg import addmm, baddbmm, bmm, dot, ger, mm, mv, outer, vdot
from .nn_ops import cosine_similarity, one_hot, normalize, pad, pairwise_distance
from .reduction import count_nonzero, cumprod, cumsum, logsumexp, norm, prod, std, std_mean, var_mean, vector_norm
from .shape_ops import (
    chunk, diag, diagonal, flip, fliplr, flipud, moveaxis, movedim, narrow, repeat, repeat_interleave, reshape_as, roll,
    split, swapaxes, swapdims, t, tensor_split, tile, unflatten, view_as,
)
from .unary import (
    acos, asin, atan, ceil, cos, cosh, elu, erf, exp2, expm1, fix, floor, frac, hardtanh, leaky_relu, log1p, log2,
    log10, logsigmoid, mish, reciprocal, relu6, round, rsqrt, sign, signbit, silu, sin, sinh, softplus, square, tan,
    trunc,
)
from .counting import (
    bincount, bucketize, histc, histogram, meshgrid, searchsorted, tril_indices, triu_indices, unique,
    unique_consecutive,
)
from .pointwise import (
    addcdiv, addcdiv_, addcmul, addcmul_, arctan2, atan2, diff, fmod, hypot, lerp, lerp_, logaddexp, median, relu_,
    sigmoid_, tanh_,
)
from .linalg import cdist
from .shape import cat as concat, cat as concatenate  # noqa: F401  (PyTorch's aliases)
from .shape_ops import (
    atleast_1d, atleast_2d, atleast_3d, column_stack, dstack, hstack, row_stack, trace, vstack,
)
from .indexing import index_put, masked_scatter, scatter_reduce
from .pointwise import clamp_max, clamp_min, fill_diagonal_, inplace_ops
from .reduction import (
    aminmax, cummax, cummin, kthvalue, logcumsumexp, nanmean, nanquantile, nansum, quantile,
)
from .shape_ops import broadcast_to, diag_embed, diagflat, inner, kron, ravel, rot90, select, unfold
from .unary import (
    absolute, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctanh, asinh, atanh, deg2rad, logit, positive,
    rad2deg, sgn, xlogy,
)
from .inplace import index_put_, masked_scatter_, scatter_reduce_
from .misc import (
    block_diag, broadcast_shapes, broadcast_tensors, can_cast, cartesian_prod, clone, combinations, copysign, detach,
    dist, dsplit, erfc, float_power, fmax, fmin, heaviside, hsplit, isin, logaddexp2, promote_types, result_type,
    rsub, scalar_tensor, sinc, split_with_sizes, tensordot, unravel_index, vsplit,
)
from .linalg import det, inverse, logdet, matrix_power, slogdet


__all__ = [
    "abs", "absolute", "acos", "acosh", "add", "add_", "addcdiv", "addcdiv_", "addcmul", "addcmul_",
    "additive_relevance", "addmm", "all", "allclose", "allowed_positions", "amax", "amin", "aminmax", "any",
    "apply_mask", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "argmax", "argmin",
    "argsort", "argwhere", "asin", "asinh", "atan", "atan2", "atanh", "atleast_1d", "atleast_2d", "atleast_3d",
    "attention_composite", "baddbmm", "binary_cross_entropy", "binary_cross_entropy_with_logits", "bincount",
    "bitwise_and", "bitwise_and_", "bitwise_not", "bitwise_or", "bitwise_or_", "bitwise_xor", "bitwise_xor_",
    "block_diag", "bmm", "broadcast_shapes", "broadcast_tensors", "broadcast_to", "bucketize", "can_cast",
    "cartesian_prod", "cast", "cat", "causal_lower_right", "causal_upper_left", "CausalBias", "CausalVariant", "cdist",
    "ceil", "chunk", "clamp", "clamp_", "clamp_max", "clamp_min", "clip", "clone", "column_stack", "combinations",
    "concat", "concatenate", "contiguous", "copy_", "copysign", "cos", "cosh", "cosine_similarity", "count_nonzero",
    "cross_entropy", "cross_entropy_composite", "cummax", "cummin", "cumprod", "cumsum", "deg2rad", "det", "detach",
    "diag", "diag_embed", "diagflat", "diagonal", "diff", "dist", "div", "div_", "dot", "dropout", "dsplit", "dstack",
    "einsum", "elu", "embedding", "eq", "equal", "erf", "erfc", "exp", "exp2", "expand", "expm1", "fill_",
    "fill_diagonal_", "fix", "flatten", "flip", "fliplr", "flipud", "float_power", "floor", "floor_divide",
    "floor_divide_", "fmax", "fmin", "fmod", "frac", "gather", "ge", "gelu", "ger", "getitem", "gt", "hardtanh",
    "heaviside", "histc", "histogram", "hsplit", "hstack", "huber_loss", "hypot", "index_add", "index_add_",
    "index_copy", "index_copy_", "index_fill", "index_fill_", "index_put", "index_put_", "index_select", "inner",
    "inplace_ops", "inverse", "isclose", "isfinite", "isin", "isinf", "isnan", "isneginf", "isposinf", "kl_div", "kron",
    "kthvalue", "l1_loss", "layer_norm", "layer_norm_composite", "le", "leaky_relu", "lerp", "lerp_", "linear", "log",
    "log10", "log1p", "log2", "log_softmax", "logaddexp", "logaddexp2", "logcumsumexp", "logdet", "logical_and",
    "logical_not", "logical_or", "logical_xor", "logit", "logsigmoid", "logsumexp", "lt", "masked_fill", "masked_fill_",
    "masked_scatter", "masked_scatter_", "masked_select", "matmul", "matrix_power", "max", "maximum", "mean", "median",
    "meshgrid", "min", "minimum", "mish", "mm", "moveaxis", "movedim", "mse_loss", "mul", "mul_", "mv", "nan_to_num",
    "nanmean", "nanquantile", "nansum", "narrow", "ne", "neg", "nll_loss", "nonzero", "norm", "normalize",
    "normalize_scores", "one_hot", "outer", "pad", "pairwise_distance", "permute", "positive", "pow", "pow_", "prod",
    "promote_types", "quantile", "rad2deg", "ravel", "reciprocal", "relu", "relu6", "relu_", "remainder", "remainder_",
    "repeat", "repeat_interleave", "reshape", "reshape_as", "result_type", "roll", "rot90", "round", "row_stack",
    "rsqrt", "rsub", "scalar_tensor", "scaled_dot_product_attention", "scatter", "scatter_", "scatter_add",
    "scatter_add_", "scatter_reduce", "scatter_reduce_", "searchsorted", "select", "setitem", "sgn", "sigmoid",
    "sigmoid_", "sign", "signbit", "silu", "sin", "sinc", "sinh", "slogdet", "smooth_l1_loss", "softmax",
    "softmax_composite", "softplus", "sort", "split", "split_with_sizes", "sqrt", "square", "squeeze", "stack", "std",
    "std_mean", "sub", "sub_", "sum", "swapaxes", "swapdims", "t", "take", "take_along_dim", "tan", "tanh", "tanh_",
    "tensor_split", "tensordot", "tile", "topk", "trace", "transpose", "tril", "tril_indices", "triu", "triu_indices",
    "trunc", "unbind", "unflatten", "unfold", "unique", "unique_consecutive", "unravel_index", "unsqueeze", "var",
    "var_mean", "vdot", "vector_norm", "view", "view_as", "vsplit", "vstack", "where", "xlogy", "zero_",
]
