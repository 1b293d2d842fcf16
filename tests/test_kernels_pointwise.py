"""The one-pass elementwise kernels (kernels/cpu/pointwise.py) and the ops that take them on large arrays:
NumPy's result bit for bit, on any thread count, and the same gradients as on small arrays."""
import numba
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.backend import PARALLEL_SUM, cpu
from tinyattn.kernels.cpu import pointwise as kp
from tinyattn.testing import gradcheck


def _cases(a, b, y, s):
    """(kernel, its arguments, the NumPy expression's result)."""
    return [
        (kp.mul, (a, b), a * b),
        (kp.mul_scalar, (a, s), a * s),
        (kp.add_scalar, (a, s), a + s),
        (kp.tanh_backward, (y, b), b * (1 - y * y)),
        (kp.cube, (a,), a * a * a),
        (kp.cube_backward, (a, b), b * (3 * (a * a))),
        (kp.relu, (a,), np.maximum(a, 0)),
        (kp.relu_backward, (np.maximum(a, 0), b), b * (np.maximum(a, 0) > 0)),
        (kp.relu_backward, (np.maximum(a, 0), a), a * (np.maximum(a, 0) > 0)),  # inf * 0: NaN, as NumPy
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_equal_the_numpy_expressions(dtype):
    """Every kernel against the NumPy expression it replaces, exactly, on 1 and on all threads, over an odd
    length (uneven chunks) with zeros, infinities and NaN among the values."""
    rng = np.random.default_rng(0)
    n = 3 * 4096 + 5
    a, b = (rng.standard_normal(n).astype(dtype) * 3 for _ in range(2))
    a[:5] = [0.0, -np.inf, np.inf, np.nan, -0.0]
    y = np.tanh(a)
    s = dtype(0.7)
    with np.errstate(invalid="ignore"):  # inf · 0 and NaN inputs, in the references as in the kernels
        cases = _cases(a, b, y, s)
    for nth in sorted({1, numba.get_num_threads()}):
        for kernel, args, want in cases:
            got = kernel(*args, np.empty_like(a), nth)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want, err_msg=kernel.__name__)


@pytest.mark.parametrize("mask_shape", [(64, 128), (1, 1, 64, 128), (3, 5, 64, 128), (5, 64, 128), (3, 1, 64, 128),
                                        (3, 5, 1, 128)])
def test_masked_fill_equals_numpys_where(mask_shape):
    """The backend's masked_fill (the kernel for a mask of x's trailing dims or of its whole shape, NumPy's
    where for other broadcasts) against np.where, forward value -inf and the backward's 0, on 1 and on all
    threads; the op's gradient is dy where the mask is False."""
    be = cpu()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 64, 128)).astype(np.float32)
    mask = rng.random(mask_shape) > 0.7
    assert be._large(x)
    threads = numba.get_num_threads()
    try:
        for nth in sorted({1, threads}):
            numba.set_num_threads(nth)
            for value in (np.float32(-np.inf), np.float32(0), np.float32(np.nan)):
                np.testing.assert_array_equal(be.masked_fill(x, mask, np.array(value)), np.where(mask, value, x))
    finally:
        numba.set_num_threads(threads)
    t = ta.tensor(x, requires_grad=True)
    y = t.masked_fill(ta.tensor(mask), float("-inf"))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(ta.tensor(dy))
    np.testing.assert_array_equal(y.detach().numpy(), np.where(mask, np.float32(-np.inf), x))
    np.testing.assert_array_equal(t.grad.numpy(), np.where(mask, np.float32(0), dy))


def test_ops_on_large_arrays_match_small_ones_and_numpy():
    """x * y, 0.5 * x, x * 0.5 + 2, tanh and x ** 3 (as minGPT's GELU writes them) on arrays large enough for
    the kernels: forward and gradients equal to NumPy's expressions; the same ops on a strided view (NumPy's
    path) agree."""
    be = cpu()
    rng = np.random.default_rng(1)
    n = PARALLEL_SUM + 7
    base = rng.standard_normal((2, n)).astype(np.float32)
    other = rng.standard_normal(n).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    for make in (lambda: base[0].copy(), lambda: base.T.copy().T[0]):  # contiguous, then a strided view
        x0 = make()
        assert be._large(x0) == x0.flags.c_contiguous
        x = ta.tensor(x0, requires_grad=True)
        o = ta.tensor(other, requires_grad=True)
        c = np.float32(np.sqrt(2 / np.pi))
        y = 0.5 * x * (1.0 + ta.tanh(c * (x + 0.044715 * ta.pow(x, 3.0)))) * o + 2
        y.backward(ta.tensor(dy))
        u = c * (x0 + np.float32(0.044715) * (x0 * x0 * x0))
        t = np.tanh(u)
        want = np.float32(0.5) * x0 * (np.float32(1) + t) * other + np.float32(2)
        np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-6, atol=1e-6)
        g = dy * other  # d/dx of 0.5 x (1 + tanh u), times o
        dx = g * np.float32(0.5) * (1 + t) + g * np.float32(0.5) * x0 * (1 - t * t) * c * (1 + 3 * 0.044715 * x0 * x0)
        np.testing.assert_allclose(x.grad.numpy(), dx, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(o.grad.numpy(), dy * np.float32(0.5) * x0 * (1 + t), rtol=1e-6, atol=1e-6)


def test_mul_keeps_numpys_promotion_and_broadcasting():
    """A float64 0-d operand with a float32 array promotes as NumPy does (no kernel), a broadcast operand
    takes NumPy's path, an integer array is multiplied as integers."""
    be = cpu()
    x = np.ones(PARALLEL_SUM, np.float32)
    assert be.mul(x, np.array(2.0)).dtype == np.float64
    assert be.mul(np.array(2.0, np.float32), x).dtype == np.float32
    np.testing.assert_array_equal(be.mul(x.reshape(-1, 8), np.arange(8, dtype=np.float32)),
                                  x.reshape(-1, 8) * np.arange(8, dtype=np.float32))
    i = np.arange(PARALLEL_SUM, dtype=np.int64)
    np.testing.assert_array_equal(be.mul(i, i), i * i)


def test_gradcheck_of_the_fused_backwards():
    """Tanh's and the cube's backward kernels (large float64 arrays) against finite differences on a few
    coordinates: gradcheck on a function that embeds a small input into a large constant array."""
    rng = np.random.default_rng(2)
    pad = ta.tensor(rng.standard_normal(PARALLEL_SUM))

    def f(v):
        big = ta.cat([v.reshape(-1), pad])
        return (ta.tanh(big) * ta.pow(big, 3) * big)[:5]

    assert cpu()._large(np.empty(PARALLEL_SUM + 5))
    assert gradcheck(f, [ta.tensor(rng.standard_normal(5), requires_grad=True)])
