import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinyattn as ta

# Small, deterministic property tests: the suite (Numba compilation included) must stay fast.
settings.register_profile(
    "tinyattn", max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("tinyattn")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def leaf(rng, *shape, low=None):
    """A float64 leaf tensor that requires grad, for gradcheck."""
    data = rng.standard_normal(shape)
    if low is not None:
        data = low + np.abs(data)
    return ta.tensor(data, dtype=ta.float64, requires_grad=True)


def module_gradcheck(module, *inputs, name, call=None):
    """gradcheck a module for its inputs and every parameter; `call` maps inputs to the output."""
    call = call or module
    n = len(inputs)
    return ta.testing.gradcheck(lambda *args: call(*args[:n]), [*inputs, *module.parameters()], name=name)
