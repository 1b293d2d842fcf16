"""cross_entropy's fused CPU kernels (kernels/cpu/softmax.py cross_entropy_forward / cross_entropy_backward, taken
from loss.FUSED_BACKWARD logit elements): values and gradients against PyTorch, the edges of the row blocks, huge
and non-finite logits, and a strided input."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.functional import loss
from tinyattn.kernels.cpu import softmax as sm

torch = pytest.importorskip("torch")


@pytest.fixture
def fused_everywhere(monkeypatch):
    monkeypatch.setattr(loss, "FUSED_BACKWARD", 1)


def _check(x, t, dtype, **kw):
    xt = ta.tensor(x.astype(dtype), requires_grad=True)
    out = F.cross_entropy(xt, ta.tensor(t), **kw)
    g = np.linspace(0.5, 1.5, out.numel()).reshape(out.shape).astype(dtype)
    (out * ta.tensor(g)).sum().backward()
    xo = torch.tensor(x.astype(dtype), requires_grad=True)
    ref = torch.nn.functional.cross_entropy(xo, torch.tensor(t), **kw)
    (ref * torch.tensor(g)).sum().backward()
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), **tol, equal_nan=True)
    np.testing.assert_allclose(xt.grad.numpy(), xo.grad.numpy(), **tol)
    return out, xt.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_kernels_match_pytorch_across_row_blocks(fused_everywhere, dtype):
    rng = np.random.default_rng(0)
    rows = sm.ROW_BLOCK * 4 + 1  # blocks of 2-3 rows: a block's last row must not take the next block's max
    for c in (1, 5, 33):
        x = rng.standard_normal((rows, c)) * 4
        t = rng.integers(0, c, rows)
        t[::7] = -100
        for kw in ({}, {"label_smoothing": 0.3, "reduction": "none"}):
            _check(x, t, dtype, **kw)
        _check(x, np.where(t < 0, 0, t), dtype, reduction="sum", ignore_index=0)


def test_fused_forward_saves_row_max_and_log_sum():
    x = np.array([[1.0, 2.0, 3.0], [-1e4, 0.0, 1e4]])
    loss_rows, m, ls = sm.cross_entropy_forward(x, np.array([2, 0]), 0.0)
    np.testing.assert_allclose(m, [3.0, 1e4])
    np.testing.assert_allclose(ls, [np.log(np.exp([-2.0, -1.0, 0.0]).sum()), 0.0], rtol=1e-15)
    np.testing.assert_allclose(loss_rows, [ls[0], 2e4], rtol=1e-15)  # finite for logits of ±1e4


def test_fused_path_nan_row_and_strided_logits(fused_everywhere):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 40)).astype(np.float32)
    x = ta.tensor(base)[:, ::2]  # a strided view: the kernel reads a contiguous copy
    t = rng.integers(0, 20, 6)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(base[:, ::2].copy()), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(F.cross_entropy(x, ta.tensor(t), reduction="none").numpy(), want.numpy(), rtol=2e-6)
    bad = base[:, :20].copy()
    bad[2, 3] = np.nan
    xt = ta.tensor(bad, requires_grad=True)
    out = F.cross_entropy(xt, ta.tensor(t), reduction="none")
    out.sum().backward()
    assert np.isnan(out.numpy()[2]) and np.isfinite(np.delete(out.numpy(), 2)).all()
    assert np.isnan(xt.grad.numpy()[2]).all() and np.isfinite(np.delete(xt.grad.numpy(), 2, axis=0)).all()
