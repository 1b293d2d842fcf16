"""cross_entropy's two host paths (no target ignored: one range check, no mask; some ignored: the mask) and
the fused backward above FUSED_BACKWARD logits, each against PyTorch, forward and gradient."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.functional.loss import FUSED_BACKWARD

torch = pytest.importorskip("torch")


def _both(x, t, **kw):
    xt = ta.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, ta.tensor(t), **kw)
    g = np.random.default_rng(1).standard_normal(loss.shape) if loss.ndim else 1.0
    loss.backward(ta.tensor(g) if loss.ndim else None)
    xo = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(xo, torch.tensor(t), **kw)
    ref.backward(torch.tensor(g) if ref.ndim else None)
    return loss.detach().numpy(), xt.grad.numpy(), ref.detach().numpy(), xo.grad.numpy()


@pytest.mark.parametrize("ignored", ["none", "some", "all"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("rows", [5, FUSED_BACKWARD // 8 + 3])  # the NumPy backward and the fused kernel's
def test_cross_entropy_paths_match_pytorch(ignored, reduction, rows):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 8)) * 3
    t = rng.integers(0, 8, rows)
    if ignored == "some":
        t[::3] = -100
    elif ignored == "all":
        t[:] = -100
    for smoothing in (0.0, 0.2):
        got, dx, want, dx_ref = _both(x, t, reduction=reduction, label_smoothing=smoothing)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12, equal_nan=True)
    if ignored == "all" and reduction == "mean":
        assert np.isnan(got)


def test_cross_entropy_spatial_and_unbatched_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3, 4))  # (N, C, d1, d2)
    t = rng.integers(0, 5, (2, 3, 4))
    for reduction in ("mean", "none"):
        got, dx, want, dx_ref = _both(x, t, reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    got, dx, want, dx_ref = _both(rng.standard_normal(5), np.array(3))  # (C,) with a scalar target
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10)


@pytest.mark.parametrize("bad", [8, -1, -101])
def test_cross_entropy_target_out_of_range_names_the_value(bad):
    t = np.array([0, 3, bad, 1])
    for ignore in (-100, 3):  # nothing ignored (the one-check path) and some ignored (the masked path)
        with pytest.raises(ValueError, match=f"cross_entropy: target value {bad} is out of range"):
            F.cross_entropy(ta.tensor(np.zeros((4, 8))), ta.tensor(t), ignore_index=ignore)
