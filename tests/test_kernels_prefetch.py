"""kernels/cpu/prefetch.py: a prefetch hint never faults, never writes, and skips indices outside the array."""
import numpy as np
import pytest
from numba import njit

from tinyattn.kernels.cpu.prefetch import prefetch_write


@njit(cache=True)
def _hint_everywhere(a, lo, hi):
    """prefetch_write every index in [lo, hi); returns a's sum (the hints must not change it)."""
    for i in range(lo, hi):
        prefetch_write(a, i)
    return a.sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hints_inside_and_outside_the_array_change_nothing(dtype):
    a = np.arange(100, dtype=dtype)
    before = a.copy()
    # far outside on both sides: an unchecked address would fault or hint at another allocation
    assert _hint_everywhere(a, -(1 << 40), -(1 << 40) + 3) == before.sum()
    assert _hint_everywhere(a, -5, 105) == before.sum()
    assert _hint_everywhere(a, (1 << 40), (1 << 40) + 3) == before.sum()
    np.testing.assert_array_equal(a, before)


def test_a_strided_view_and_an_empty_array():
    a = np.arange(64, dtype=np.float32)
    view = a[1::3]  # a non-contiguous 1-D view: the hint follows its stride
    assert _hint_everywhere(view, -2, view.size + 2) == view.sum()
    assert _hint_everywhere(np.empty(0, np.float32), -1, 2) == 0
    np.testing.assert_array_equal(a, np.arange(64, dtype=np.float32))
