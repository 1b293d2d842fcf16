"""The fused GELU kernels against the formula evaluated in float64 with numpy."""
import numpy as np
import pytest

from tinyattn.kernels.cpu.activations import gelu_backward, gelu_forward

C = np.sqrt(2 / np.pi)


def reference(x):
    x = x.astype(np.float64)
    u = C * (x + 0.044715 * x**3)
    with np.errstate(over="ignore"):  # exp(huge) = inf gives s = 0, as it should
        s = 1 / (1 + np.exp(-2 * u))  # = (1 + tanh u) / 2, precise in both tails
    y = x * s
    dydx = s + 2 * x * s * (1 - s) * C * (1 + 3 * 0.044715 * x**2)
    return y, dydx


# exp(z) carries a relative error ~|z|·eps, so deep in the negative tail (|z| up to 80) the
# tolerance is a few hundred ulp of the dtype
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 2e-14)])
def test_gelu_forward_and_backward(dtype, rtol):
    rng = np.random.default_rng(0)
    # odd length (not a multiple of the chunk), both tails, zero, and huge values
    x = np.concatenate([rng.standard_normal(10001) * 3, [0.0, -9.0, 9.0, -30.0, 30.0, -1e4, 1e4]]).astype(dtype)
    dy = rng.standard_normal(x.size).astype(dtype)
    y_ref, d_ref = reference(x)
    y, dx = gelu_forward(x), gelu_backward(x, dy)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(dx, dy.astype(np.float64) * d_ref, rtol=rtol * 10, atol=1e-6 if dtype == np.float32 else 1e-15)
    assert abs(y[-2]) < 1e-30 and y[-1] == dtype(1e4)  # saturated tails
    # far in the negative tail (x³ overflowing included) σ is 0, not e^-80: gelu is 0 there and NaN at -inf, as
    # PyTorch's (v·e^-80 gave -1.8e-15 at -1e20 and -1.8e265 at -1e300)
    far = gelu_forward(np.array([-1e20 if dtype == np.float32 else -1e300, -np.inf, np.inf], dtype))
    assert far[0] == 0 and np.isnan(far[1]) and far[2] == np.inf


def test_gelu_backward_matches_finite_differences():
    x = np.linspace(-6, 6, 97)
    eps = 1e-6
    numeric = (gelu_forward(x + eps) - gelu_forward(x - eps)) / (2 * eps)
    np.testing.assert_allclose(gelu_backward(x, np.ones_like(x)), numeric, rtol=1e-7, atol=1e-9)


def test_erf_kernel_float32_within_a_few_ulp_and_float64_exact():
    """ta.erf's kernel (kernels/cpu/special.py): float32 branch-free, within 4 ulp of erf in float64 over
    [-9, 9] (both sides of the switch at |x| = 1/2 included), ±0 and tiny values keep their sign and size, ±inf
    gives ±1, NaN stays NaN; float64 is libm's erf exactly."""
    import math

    from tinyattn.kernels.cpu.special import erf_flat

    x = np.concatenate([np.linspace(-9, 9, 200_001), np.linspace(-0.55, 0.55, 20_001),
                        [0.5, -0.5, np.nextafter(0.5, 0)]]).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])
    y = erf_flat(x)
    assert y.dtype == np.float32
    ulp = np.maximum(np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64), 1e-45)
    assert (np.abs(y - ref) / ulp).max() <= 4.5
    special = np.array([0.0, -0.0, 1e-30, -1e-38, np.inf, -np.inf, np.nan], np.float32)
    got = erf_flat(special)
    np.testing.assert_array_equal(np.signbit(got[:4]), [False, True, False, True])
    np.testing.assert_allclose(got[2:4], special[2:4] * np.float32(2 / math.sqrt(math.pi)), rtol=1e-6)
    assert got[4] == 1 and got[5] == -1 and np.isnan(got[6])
    x64 = np.linspace(-7, 7, 1001)
    np.testing.assert_array_equal(erf_flat(x64), [math.erf(v) for v in x64])
