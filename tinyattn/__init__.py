"""tinyattn: a tiny deep-learning framework for self-attention, with Numba kernels.

    import tinyattn as ta
    x = ta.randn(4, 8, requires_grad=True)
    y = (x @ x.T).softmax(dim=-1).sum()
    y.backward()            # x.grad now holds dy/dx
"""
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
from .random import manual_seed
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

__version__ = "0.1.0"
