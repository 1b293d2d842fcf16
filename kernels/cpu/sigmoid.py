"""The logistic sigmoid and SiLU, forward and backward, one pass each over flat C-contiguous arrays.

    σ(x) = 1 / (1 + e^-x),  computed from e = e^-|x| ∈ [0, 1]:  σ(x) = 1 / (1 + e) for x >= 0,  e / (1 + e) below
    sigmoid_forward:   y = σ(x)                       sigmoid_backward:  dx = dy · y · (1 - y)   (y saved)
    silu_forward:      y = x σ(x)                     silu_backward:     dx = dy · s · (1 + x (1 - s)),  s = σ(x)
                                                                          (s recomputed: only x is saved)

e^-|x| never overflows, and e / (1 + e) keeps full relative precision in the lower tail (σ(-20) = 2.1e-9 in
float32; (1 + tanh(x/2)) / 2 is off by 2e-4 relative at x = -10 and 0 from about -18), down to the
exponential's floor: σ is 0 below -87 in float32, -708 in float64. ±inf gives 0 or 1, NaN gives NaN. The
exponential is branch-free (float32: the GELU's degree-5 form, about 2 ulp; float64: `vexp`, about 1 ulp; 0
below float32's -87, float64's -708), so LLVM vectorises the loops. NumPy's expressions of these formulas take
three to six passes over memory: at 2048 x 512 float32 on this 2-core machine the forward took 1.24 ms
(sigmoid) and 1.72 ms (SiLU) against PyTorch's 0.20-0.22 ms; one pass takes 0.20-0.25 ms. The backward's
products keep the NumPy expressions' order, without contraction (no fastmath), so they round as those do.

Loop nest of each: prange over chunks of CHUNK elements; each chunk through slices, its loop from 0
(over computed offsets Numba's negative-index handling keeps LLVM from vectorising it).
"""
import math

from numba import njit, prange, types
from numba.extending import overload, register_jitable

from .activations import _exp_neg_f32
from .vexp import vexp, wide_vectors

CHUNK = 4096  # elements per parallel work item


def _exp_nonpositive(x):
    """e^x for x <= 0: float32 through the GELU's degree-5 form (about 2 ulp, 0 for NaN), float64 through vexp."""
    return math.exp(x)


@overload(_exp_nonpositive)
def _exp_nonpositive_impl(x):
    if x == types.float32:
        return lambda x: _exp_neg_f32(x)
    if x == types.float64:
        return lambda x: vexp(x)
    return None


@register_jitable(inline="always")
def _sigma(v):
    """σ(v) in v's dtype, from e^-|v| (see the module's note); NaN for NaN."""
    T = type(v)
    e = _exp_nonpositive(-abs(v))
    r = T(1) / (T(1) + e)      # a true division: σ(0) = 0.5 exactly, σ(x) rounds to 1 where it should
    return r if v >= T(0) else (e * r if v == v else v)


@njit(parallel=True, cache=True, error_model="numpy")
def sigmoid_forward(x, y):
    """y = σ(x) (y allocated by the caller, of x's size); returns y."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()  # 512-bit vectors (vexp.py)
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        xs, ys = x[lo:hi], y[lo:hi]
        for i in range(xs.size):
            ys[i] = _sigma(xs[i])
    return y


@njit(parallel=True, cache=True, error_model="numpy")
def sigmoid_backward(y, dy, dx):
    """dx = dy · y · (1 - y) from the forward's output y; returns dx."""
    n = y.size
    one = y.dtype.type(1)
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        ys, gs, ds = y[lo:hi], dy[lo:hi], dx[lo:hi]
        for i in range(ys.size):
            ds[i] = gs[i] * ys[i] * (one - ys[i])
    return dx


@njit(parallel=True, cache=True, error_model="numpy")
def silu_forward(x, y):
    """y = x σ(x); returns y."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        xs, ys = x[lo:hi], y[lo:hi]
        for i in range(xs.size):
            v = xs[i]
            ys[i] = v * _sigma(v)
    return y


@njit(parallel=True, cache=True, error_model="numpy")
def silu_backward(x, dy, dx):
    """dx = dy · s · (1 + x (1 - s)), s = σ(x) recomputed from the forward's input x; returns dx."""
    n = x.size
    one = x.dtype.type(1)
    for c in prange((n + CHUNK - 1) // CHUNK):
        wide_vectors()
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        xs, gs, ds = x[lo:hi], dy[lo:hi], dx[lo:hi]
        for i in range(xs.size):
            v = xs[i]
            s = _sigma(v)
            ds[i] = gs[i] * s * (one + v * (one - s))
    return dx
