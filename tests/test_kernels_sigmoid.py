"""The fused sigmoid and SiLU (kernels/cpu/sigmoid.py, the CPU backend's sigmoid and silu): against σ in
float64 and against PyTorch, both tails, special values, strided inputs, and the ops that use them."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.kernels.cpu import sigmoid as ks
from tinyattn.testing import gradcheck


def _sigma64(x):
    x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _inputs(dtype):
    rng = np.random.default_rng(0)  # an odd length: chunks of ks.CHUNK and a partial last one
    x = np.concatenate([rng.standard_normal(3 * ks.CHUNK + 7) * 8, [0.0, -0.0, 1e-30, -1e-30, -20.0, 20.0, -60.0,
                                                                    60.0, -80.0, 1e4, -1e4]])
    return x.astype(dtype), rng.standard_normal(x.size).astype(dtype)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 4e-7), (np.float64, 1e-15)])
def test_kernels_against_sigma_in_float64(dtype, rtol):
    """σ to a few ulp, relative, down to x = -80 (the lower tail included: σ(-20) = 2.1e-9 in float32, where
    (1 + tanh(x/2)) / 2 gave 0; below -87 in float32 the kernel gives 0); SiLU likewise; the backward formulas
    to rounding."""
    x, dy = _inputs(dtype)
    s = _sigma64(x)
    y = ks.sigmoid_forward(x, np.empty_like(x))
    normal = s > np.finfo(dtype).tiny
    np.testing.assert_allclose(y[normal], s[normal], rtol=rtol * 8, atol=0)
    assert y[x == 0].tolist() == [0.5, 0.5] and y[x == 1e4][0] == 1 and y[x == -1e4][0] == 0
    if dtype == np.float32:
        assert y[x == 20][0] == 1  # 1 - 2e-9 rounds to 1
    silu = ks.silu_forward(x, np.empty_like(x))
    np.testing.assert_allclose(silu[normal], (x * s)[normal], rtol=rtol * 8, atol=np.finfo(dtype).tiny)
    d = ks.silu_backward(x, dy, np.empty_like(x))
    np.testing.assert_allclose(d, dy * s * (1 + x * (1 - s)), rtol=rtol * 16, atol=rtol * 16)
    ys = s.astype(dtype)
    d = ks.sigmoid_backward(ys, dy, np.empty_like(x))
    np.testing.assert_array_equal(d, dy * ys * (1 - ys))  # NumPy's order, no contraction: the same rounding


def test_special_values():
    """±inf gives 0 and 1 (SiLU: inf, and NaN at -inf as x σ(x) = -inf · 0), NaN stays NaN."""
    for dtype in (np.float32, np.float64):
        x = np.array([np.inf, -np.inf, np.nan], dtype)
        y = ks.sigmoid_forward(x, np.empty_like(x))
        assert y[0] == 1 and y[1] == 0 and np.isnan(y[2])
        y = ks.silu_forward(x, np.empty_like(x))
        assert y[0] == np.inf and np.isnan(y[1]) and np.isnan(y[2])


def test_ops_take_the_kernels_and_match_pytorch():
    """ta.sigmoid, F.silu, nn.SiLU on a strided view, forward and backward, against PyTorch (float32 to a few
    ulp, float64 to rounding); the results do not alias the input."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for dtype, rtol in ((np.float32, 2e-6), (np.float64, 1e-14)):
        base = (rng.standard_normal((6, 40)) * 6).astype(dtype)
        dy = rng.standard_normal((6, 20)).astype(dtype)
        for ours, theirs in ((ta.sigmoid, torch.sigmoid), (F.silu, torch.nn.functional.silu),
                             (ta.nn.SiLU(), torch.nn.SiLU())):
            x = ta.tensor(base, requires_grad=True)
            y = ours(x[:, ::2])
            y.backward(ta.tensor(dy))
            xt = torch.tensor(base, requires_grad=True)
            yt = theirs(xt[:, ::2])
            yt.backward(torch.tensor(dy))
            np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=1e-30)
            np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=rtol * 4, atol=rtol)
            assert not np.shares_memory(y.detach().numpy(), base)


def test_gradcheck_through_the_kernels():
    """Both ops' kernel backward against finite differences (float64), and twice (create_graph: the
    differentiable backward in tensor ops)."""
    from tinyattn.testing import gradgradcheck

    x = ta.tensor(np.random.default_rng(2).standard_normal((3, 7)) * 4, requires_grad=True)
    for f in (ta.sigmoid, F.silu):
        assert gradcheck(f, [x])
        assert gradgradcheck(f, [x])


def test_array_expression_form_keeps_the_lower_tail():
    """The form the CUDA backend (and dtypes without a kernel) use, e^-|x| in array expressions, agrees with
    the kernel in float32 where (1 + tanh(x/2)) / 2 lost the tail."""
    from tinyattn.backend import _sigmoid_numpy

    x = np.array([-10.0, -17.0, -20.0, -40.0, 0.0, 3.0, np.inf, -np.inf], np.float32)
    want = _sigma64(x)
    got = _sigmoid_numpy(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    np.testing.assert_allclose(ks.sigmoid_forward(x, np.empty_like(x)), want, rtol=1e-6, atol=0)
    assert np.isnan(_sigmoid_numpy(np.array([np.nan], np.float32)))[0]
