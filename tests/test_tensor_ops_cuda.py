"""The ops of test_tensor_ops.py / test_shape_ops.py on cuda tensors, each held to the same computation on the
CPU (values on the GPU's device, the same gradients). Without a GPU these run under Numba's CUDA simulator
(tests/conftest.py), on tiny shapes; ops whose NumPy calls DeviceArray lacks run on host copies
(functional.checks.on_host)."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.functional as F
import tinyattn.nn.functional as NF

pytestmark = [pytest.mark.skipif(not ta.cuda.is_available(), reason="no CUDA GPU and no numba-cuda simulator"),
              pytest.mark.background(order=1)]

A = np.random.default_rng(3).random((2, 3, 4)) + 0.5
I = np.array([[[0, 1, 2, 0]]])

OPS = {
    "unary": lambda x, i: x.tan() + x.asinh() + x.log1p() + x.expm1() + x.square() + x.erf() + x.floor() + x.frac(),
    "activations": lambda x, i: F.elu(x - 1) + F.softplus(x) + F.hardtanh(x) + F.logsigmoid(x) + F.mish(x) + F.silu(x),
    "xlogy_logit_pow": lambda x, i: x.xlogy(x) + (x * 0.1).logit() + x ** x + 2.0 ** x,
    "reductions": lambda x, i: (x.prod(1).sum() + x.cumsum(1).sum() + x.cumprod(2).sum() + x.logcumsumexp(1).sum()
                                + x.std(1).sum() + x.norm(1, dim=1).sum() + x.nansum() + x.quantile(0.3, dim=1).sum()),
    "selections": lambda x, i: x.kthvalue(2, 1)[0].sum() + x.cummax(1)[0].sum() + x.median(1)[0].sum(),
    "shapes": lambda x, i: (x.flip(0) * x + x.roll(1, 1) * 2 + x.repeat(2, 1, 1)[2:] + x.split(2, 2)[0].sum(2, True)
                            + x.unfold(2, 2, 2).sum(3).repeat(1, 1, 2) + x.rot90(2, (1, 2))),
    "diagonals": lambda x, i: F.diag_embed(x).sum() + x.diagonal(0, 1, 2).sum() + x[0].diag().sum(),
    "indexing": lambda x, i: (x.gather(1, i[:, :, :3]).sum() + x.scatter(1, i, 0.5).sum() + x.scatter_reduce(1, i, x[:1, :1], "amax").sum()
                              + x.index_fill(2, i[0, 0, :2], 1.0).sum() + x.masked_select(x > 1).sum()
                              + x.masked_scatter(x > 1, x * 2).sum() + x.index_put((i[0, 0, :2],), x[0]).sum() + x.take(i[0, 0]).sum()),
    "pointwise": lambda x, i: x.atan2(x.flip(2)) + x.logaddexp(x * 2) + x.fmod(0.3) + F.fmax(x, x.flip(1)) + F.sinc(x),
    "pad_linalg": lambda x, i: (NF.pad(x, (1, 1), mode="reflect").sum() + NF.pad(x, (1, 2), value=3.0).sum()
                                + ta.linalg.inv(x[:, :, :3] @ x[:, :, :3].mT + 1).sum() + ta.linalg.det(x[:, :, :3]).sum()),
    "nan_to_num_isnan": lambda x, i: (x / (x > 1)).nan_to_num(posinf=2.0) + x.isnan(),
}


@pytest.mark.parametrize("name", list(OPS))
def test_op_on_cuda_matches_cpu(name):
    fn = OPS[name]
    results = []
    for device in ("cpu", "cuda"):
        x = ta.tensor(A, dtype=ta.float64, device=device, requires_grad=True)
        y = fn(x, ta.tensor(I, device=device))
        assert y.device == device
        w = ta.tensor(np.linspace(-1, 1, y.numel()).reshape(tuple(y.shape)), dtype=ta.float64, device=device)
        with np.errstate(all="ignore"):
            (y * w).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-9, atol=1e-12)


def test_host_computed_results_stay_on_cuda():
    x = ta.tensor([[0.0, 1.0], [2.0, 0.0]], device="cuda")
    for out in (x.nonzero(), ta.unique(x), ta.isclose(x, x), NF.one_hot(ta.tensor([0, 1], device="cuda")),
                ta.isin(x, x[0]), ta.histc(x, 3), x.isnan()):
        assert out.is_cuda
