"""Dropout's fused CPU kernel (kernels/cpu/dropout.py): the mask drawn inside the kernel from one seed."""
import numba
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F
from tinyattn.backend_contract import DROPOUT
from tinyattn.kernels.cpu import dropout as kd
from tinyattn.testing import gradcheck


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_kernel_keeps_each_element_with_probability_one_minus_p(p):
    """Kept fraction within 5 standard deviations of 1 - p, neighbours uncorrelated, kept values scaled by
    1 / (1 - p) and the rest exactly 0, and the same mask on 1 thread as on all of them."""
    n = 1 << 18
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    scale = np.float32(1 / (1 - p))
    masks = []
    threads = numba.get_num_threads()
    try:
        for nth in sorted({1, threads}):
            numba.set_num_threads(nth)
            out, keep = np.empty_like(x), np.empty(n, np.bool_)
            kd.dropout_forward(x, np.uint64(2 ** 63 + 12345), round(p * (1 << 24)), scale, out, keep)
            masks.append(keep)
    finally:
        numba.set_num_threads(threads)
    assert all(np.array_equal(m, masks[0]) for m in masks)
    assert abs(keep.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    k = keep.astype(np.float64)
    assert abs(np.corrcoef(k[:-1], k[1:])[0, 1]) < 5 / np.sqrt(n)
    np.testing.assert_array_equal(out, np.where(keep, x * scale, np.float32(0)))
    dx = np.empty_like(x)
    kd.dropout_backward(x, keep, scale, dx)
    np.testing.assert_array_equal(dx, out)


def test_dropout_takes_the_fused_kernel_on_the_cpu_with_the_generators_seed():
    """F.dropout on a CPU tensor runs the fused kernel; manual_seed gives the same mask again, the next call a
    new one; the gradient is the mask scaled by 1 / (1 - p); gradcheck (the mask a constant of each call)."""
    assert ta.backend.backend_of(np.empty(0)).supports(DROPOUT)
    x = ta.tensor(np.random.default_rng(1).standard_normal((4, 50)) + 3.0, requires_grad=True)
    ta.manual_seed(7)
    y1 = F.dropout(x, 0.3)
    y2 = F.dropout(x, 0.3)
    ta.manual_seed(7)
    y3 = F.dropout(x, 0.3)
    assert y1.grad_fn is not None and "FusedDropout" in type(y1.grad_fn).__name__ + repr(y1.grad_fn)
    np.testing.assert_array_equal(y1.detach().numpy(), y3.detach().numpy())
    assert not np.array_equal(y1.detach().numpy(), y2.detach().numpy())
    m = y1.detach().numpy() / x.detach().numpy()
    assert set(np.round(np.unique(m), 12)) == {0.0, round(1 / 0.7, 12)}
    y1.backward(ta.ones_like(y1))
    np.testing.assert_allclose(x.grad.numpy(), m, rtol=1e-15)

    def fn(t):
        ta.manual_seed(3)
        return F.dropout(t, 0.4) * t

    assert gradcheck(fn, [ta.tensor(np.random.default_rng(2).standard_normal((3, 5)), requires_grad=True)])


def test_kernel_mask_is_splitmix64_of_the_seed_and_index_across_chunks():
    """keep[i] is the top 24 bits of splitmix64(seed + (i + 1) φ) >= threshold, element by element, written in
    NumPy here: at the start, across the kernels' chunk boundaries (each chunk derives its own start) and at the
    end of an odd-sized array. A change of the mask for a given seed would change every seeded run."""
    n = 3 * kd.CHUNK + 5
    seed, threshold = np.uint64(2 ** 63 + 987654321), round(0.5 * (1 << 24))
    x = np.arange(n, dtype=np.float32) + 1
    out, keep = np.empty_like(x), np.empty(n, np.bool_)
    kd.dropout_forward(x, seed, threshold, np.float32(2.0), out, keep)
    idx = np.r_[0:40, kd.CHUNK - 20:kd.CHUNK + 20, 2 * kd.CHUNK - 3:2 * kd.CHUNK + 3, n - 40:n].astype(np.uint64)
    with np.errstate(over="ignore"):
        z = seed + (idx + np.uint64(1)) * kd._GOLDEN
        z = (z ^ (z >> kd._S30)) * kd._MIX1
        z = (z ^ (z >> kd._S27)) * kd._MIX2
        z = z ^ (z >> kd._S31)
    expected = (z >> kd._S40) >= np.uint64(threshold)
    np.testing.assert_array_equal(keep[idx.astype(np.int64)], expected)
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(out, np.where(keep, x * np.float32(2.0), np.float32(0)))
