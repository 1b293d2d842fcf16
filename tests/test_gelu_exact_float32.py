"""The exact GELU's float32 kernels (kernels/cpu/activations.py: Φ = t Q(t) e^(-x²/2), one exponential shared with
the backward's φ) against float64 references: the error bounds that the kernel's note states, and the same
non-finite results as the float64 kernels."""
import math

import numpy as np

from tinyattn.kernels.cpu.activations import gelu_erf_backward, gelu_erf_forward


def _reference(x):
    x = x.astype(np.float64)
    cdf = 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2))  # erfc: no cancellation in the negative tail
    return x * cdf, cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def test_float32_error_against_float64():
    x = np.concatenate([np.linspace(-13, 9, 40_001), np.linspace(-1e-3, 1e-3, 101)]).astype(np.float32)
    y, dy = _reference(x)
    got = gelu_erf_forward(x, np.empty_like(x)).astype(np.float64)
    rel = np.abs(got - y) / np.abs(np.where(y == 0, 1, y))
    assert rel[x > -3].max() < 1.5e-6  # 5.7e-7 measured; PyTorch's float32 GELU: 2.3e-4
    assert rel[x <= -3].max() < 1e-5   # 4.2e-6 measured down to the underflow; PyTorch's: 1.0
    d = gelu_erf_backward(x, np.ones_like(x), np.empty_like(x)).astype(np.float64)
    assert np.abs(d - dy).max() < 5e-7  # 2.4e-7 measured
    far = x < -3
    assert (np.abs(d - dy)[far] / np.abs(dy[far])).max() < 1e-5


def test_float32_non_finite_like_float64():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 30.0, -30.0] * 5)  # vector lanes and the scalar tail
    for kernel, args in ((gelu_erf_forward, ()), (gelu_erf_backward, (np.ones(x.size),))):
        want = kernel(x, *args, np.empty_like(x))
        x32 = x.astype(np.float32)
        got = kernel(x32, *(a.astype(np.float32) for a in args), np.empty_like(x32))
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=3e-7, atol=0, equal_nan=True)
