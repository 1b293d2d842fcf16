"""Gradient accumulation in the backward walk adds in place only into arrays it made itself.

A backward may hand one array to several inputs (Add gives the same dy to both), so a gradient as it
arrives may be shared with another input's pending gradient: adding a later gradient into it in place
would change that other input's gradient too. These graphs make the shared array arrive first.
"""
import numpy as np

import tinyattn as ta


def test_shared_gradient_is_not_summed_into():
    x = ta.tensor(np.ones(3), requires_grad=True)
    p, q = x * 2, x * 3
    b = p * 5             # made before a, so a's backward runs first and hands one dy to both p and q
    a = p + q
    (a + b).sum().backward()
    # dL/dp = 1 + 5, dL/dq = 1: dL/dx = 2 * 6 + 3 * 1 (a sum written into the shared dy would give q 6, x 30)
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 15.0))


def test_shared_gradient_reaching_a_hooked_leaf_first():
    x = ta.tensor(np.ones(3), requires_grad=True)
    w = ta.tensor(np.ones(3), requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    b = x * 5
    a = x + w             # one dy for x (a leaf with a hook: summed with b's gradient) and for w
    (a + b).sum().backward()
    np.testing.assert_array_equal(seen[0], np.full(3, 6.0))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 6.0))
    np.testing.assert_array_equal(w.grad.numpy(), np.ones(3))


def test_repeated_sums_into_one_gradient():
    x = ta.tensor(np.arange(4.0), requires_grad=True)
    h = x * 1
    total = h
    for k in range(2, 6):  # h reaches the loss five times: the later sums go into accumulation's own array
        total = total + h * k
    total.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 15.0))
    h = x * 1
    gx, = ta.autograd.grad((h + h + h).sum(), x)  # grad(): the sums are its result, copied out
    np.testing.assert_array_equal(gx.numpy(), np.full(4, 3.0))
