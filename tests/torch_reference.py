"""Helpers for the tests that hold tinyattn to PyTorch (imported by test files; holds no tests)."""
import numpy as np
import pytest

import tinyattn as ta


def both_grads(fn_ta, fn_torch, *arrays, weight_seed=0):
    """fn_ta and fn_torch on the same float64 inputs (every one differentiable), their outputs contracted with the
    same random weight: both outputs and every input's gradient held to 1e-12."""
    torch = pytest.importorskip("torch")
    xs = [ta.tensor(a, dtype=ta.float64, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y, yt = fn_ta(*xs), fn_torch(*ts)
    w = np.random.default_rng(weight_seed).standard_normal(y.shape)
    y.backward(ta.tensor(w, dtype=ta.float64))
    yt.backward(torch.tensor(w))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    for x, t in zip(xs, ts):
        expected = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        got = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
