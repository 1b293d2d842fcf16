"""layer_norm saves its input and each row's mean and rstd (not x̂): what that changes, and the parallel path."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.kernels.cpu.policy import PARALLEL_ROWS


def _np_layer_norm(x, w, b, dy, eps=1e-5):
    """(y, dx, dw, db) in float64 from the formulas."""
    x, w, b, dy = (a.astype(np.float64) for a in (x, w, b, dy))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy * w
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return xhat * w + b, dx, (dy * xhat).sum(0), dy.sum(0)


@pytest.mark.parametrize("shape", [(PARALLEL_ROWS // 128, 128), (8, 1024 * 4)])
def test_layer_norm_parallel_path_matches_formula(shape):
    # from PARALLEL_ROWS elements the kernels run on every thread; 8 rows: 4 work items of 2 rows
    rng = np.random.default_rng(0)
    x = (5 + 2 * rng.standard_normal(shape)).astype(np.float32)  # an offset: μ matters in the recomputed x̂
    w, b = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, wt, bt = ta.tensor(x, requires_grad=True), ta.tensor(w, requires_grad=True), ta.tensor(b, requires_grad=True)
    y = F.layer_norm(xt, shape[1:], wt, bt)
    y.backward(ta.tensor(dy))
    want = _np_layer_norm(x, w, b, dy)
    for got, ref, what in zip((y, xt.grad, wt.grad, bt.grad), want, ("y", "dx", "dw", "db")):
        np.testing.assert_allclose(got.numpy(), ref, rtol=2e-4, atol=2e-4, err_msg=what)


def test_layer_norm_input_changed_in_place_is_refused():
    # the backward reads the input (as PyTorch's does): changing it in place after the forward is an error there
    torch = pytest.importorskip("torch")
    for lib in (ta, torch):
        x = lib.ones(2, 3, requires_grad=True) * lib.tensor([[1.0, 2.0, 4.0]])
        y = lib.nn.functional.layer_norm(x, (3,))
        x.add_(1.0)
        with pytest.raises(RuntimeError):
            y.sum().backward()


def test_layer_norm_missing_weight_and_bias_shared_vectors_stay_untouched():
    x = ta.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    for _ in range(2):
        y = F.layer_norm(x, (4,))
        (y * ta.tensor(np.arange(12.0).reshape(3, 4))).sum().backward()
    z = F.layer_norm(ta.tensor(np.arange(8.0).reshape(2, 4)), (4,))
    xh = (np.arange(8.0).reshape(2, 4) - [[1.5], [5.5]]) / np.sqrt(1.25 + 1e-5)
    np.testing.assert_allclose(z.numpy(), xh, rtol=1e-12)
