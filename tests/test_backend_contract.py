"""The backend contract (tinyattn/backend_contract.py), checked over every backend.

One conformance test runs the whole contract on each backend -- the CPU one and the CUDA one (Numba's
simulator when there is no GPU, chosen by conftest.py): every method with the contract's signature, and
every kernel on tiny inputs against a NumPy reference (the masking rule against the one reference
definition, attention_allowed / attention_reference). A backend that drifts (a kernel missing, renamed
or with other parameters, an undeclared capability) fails check_backend.
"""
import math

import numpy as np
import pytest

from tinyattn import backend as B
from tinyattn.backend_contract import (DECODE, DROPOUT, OPTIONAL, Backend, BackendContractError,
                                       attention_allowed, attention_backward_reference, attention_reference,
                                       check_backend, contract_methods)


def _backend(name):
    if name == "cuda":
        from tinyattn.cuda import is_available

        if not is_available():
            pytest.skip("no GPU and no Numba simulator")
    return B.get(name)


def _host(a):
    return a if isinstance(a, (np.ndarray, np.generic)) else a.get()


def _close(got, want, tol, what):
    got = _host(got)
    assert got.shape == np.shape(want), (what, got.shape, np.shape(want))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=what)


def _gelu_tanh(x):
    c = math.sqrt(2 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    y = 0.5 * x * (1 + t)
    dy = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    return y, dy


def _gelu_erf(x):
    phi = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    return x * phi, phi + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _run_kernels(be, rng):
    """Every kernel of the contract on tiny float64 inputs, against NumPy."""
    t = 1e-9
    dev = be.asarray
    r = lambda *s: rng.standard_normal(s)  # noqa: E731

    x = r(4, 3)
    _close(dev(x), x, 0, "asarray")
    # matrix products, a batch of 1 broadcasting against 2
    a, b, bias = r(1, 3, 4), r(2, 4, 5), r(5)
    _close(be.matmul(dev(a), dev(b)), a @ b, t, "matmul")
    bt = np.ascontiguousarray(np.swapaxes(b, 1, 2))
    _close(be.matmul_nt(dev(a), dev(bt)), a @ b, t, "matmul_nt")
    _close(be.matmul_nt(dev(a), dev(bt), dev(bias)), a @ b + bias, t, "matmul_nt bias")
    at = np.ascontiguousarray(np.swapaxes(a, 1, 2))  # (1, 4, 3)
    _close(be.matmul_tn(dev(at), dev(b)), a @ b, t, "matmul_tn")
    c, s = be.matmul_tn(dev(at), dev(b), True)
    _close(c, a @ b, t, "matmul_tn a_sums C")
    _close(s, np.broadcast_to(at.sum(axis=1), (2, 3)), t, "matmul_tn a_sums")
    # sums
    u, w = r(3, 4), r(3, 4)
    _close(be.add(dev(u), dev(w)), u + w, t, "add")
    du = dev(u.copy())
    assert be.add_(du, dev(w)) is du
    _close(du, u + w, t, "add_")
    # softmax family along a leading axis
    x, dy = r(2, 3, 4), r(2, 3, 4)
    y = np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(0)
    _close(be.softmax(dev(x), 0), y, t, "softmax")
    _close(be.softmax_backward(dev(y), dev(dy), 0), y * (dy - (dy * y).sum(0)), t, "softmax_backward")
    ly = np.log(y)
    _close(be.log_softmax(dev(x), -3), ly, t, "log_softmax")
    _close(be.log_softmax_backward(dev(ly), dev(dy), 0), dy - y * dy.sum(0), t, "log_softmax_backward")
    # GELU, both forms
    for fwd, bwd, ref in ((be.gelu, be.gelu_backward, _gelu_tanh), (be.gelu_erf, be.gelu_erf_backward, _gelu_erf)):
        yv, dv = ref(x)
        _close(fwd(dev(x)), yv, t, fwd.__name__)
        _close(bwd(dev(x), dev(dy)), dy * dv, t, bwd.__name__)
    # layer norm over rows
    x, g, bb, dy = r(3, 5), r(5), r(5), r(3, 5)
    mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    rstd = 1 / np.sqrt(var + 1e-5)
    xhat = (x - mu) * rstd
    yl, mean, rs = be.layer_norm(dev(x), dev(g), dev(bb), 1e-5)
    _close(yl, xhat * g + bb, t, "layer_norm y")
    _close(mean, mu[:, 0], t, "layer_norm mean")
    _close(rs, rstd[:, 0], t, "layer_norm rstd")
    gg = dy * g
    dx = rstd * (gg - gg.mean(1, keepdims=True) - xhat * (gg * xhat).mean(1, keepdims=True))
    for got, want, what in zip(be.layer_norm_backward(dev(dy), dev(x), mean, rs, dev(g)),
                               (dx, (dy * xhat).sum(0), dy.sum(0)),
                               ("dx", "dw", "db")):
        _close(got, want, t, "layer_norm_backward " + what)
    # embedding
    weight, index = r(5, 3), np.array([[0, 4, 4], [2, 0, 1]])
    _close(be.embedding(dev(weight), dev(index)), weight[index], 0, "embedding")
    dy = r(2, 3, 3)
    want = np.zeros((5, 3))
    np.add.at(want, index, dy)
    _close(be.embedding_backward(dev(index), dev(dy), 5), want, t, "embedding_backward")
    # Adam
    w0, g0, m0, v0 = r(6), r(6), r(6), np.abs(r(6))
    arrays = [dev(z.copy()) for z in (w0, g0, m0, v0)]
    assert be.adam_update(*arrays, 0.9, 0.99, 0.01, 0.1, 1e-8, 0.999, 0.02) is None
    g1 = g0 + 0.02 * (w0 * 0.999)
    m1, v1 = 0.9 * m0 + 0.1 * g1, 0.99 * v0 + 0.01 * g1 * g1
    _close(arrays[0], w0 * 0.999 - 0.01 * m1 / (np.sqrt(v1 / 0.1) + 1e-8), t, "adam w")
    _close(arrays[2], m1, t, "adam m")
    _close(arrays[3], v1, t, "adam v")
    _close(arrays[1], g0, 0, "adam leaves g")
    _run_attention(be, rng)
    if be.supports(DECODE):
        _run_decode(be, rng)
    _run_pointwise(be, dev, r, t)


def _run_pointwise(be, dev, r, t):
    """The elementwise formulas, on small arrays and (CPU: the simulator would take 45 s) on arrays large
    enough for the one-pass kernels."""
    for shape in ((3, 5), (2, 1 << 16))[:2 if be.name == "cpu" else 1]:
        x, y, dy = r(*shape) * 8, np.tanh(r(*shape)), r(*shape)
        s = 1 / (1 + np.exp(-x))
        _close(be.mul(dev(x), dev(dy)), x * dy, 0, "mul")
        _close(be.mul(dev(x), dev(np.array(0.25))), x * 0.25, 0, "mul by a scalar")
        _close(be.mul(dev(x), dev(x[:1])), x * x[:1], 0, "mul, broadcast")
        _close(be.add(dev(np.array(-1.5)), dev(x)), x - 1.5, 0, "add a scalar")
        mask = r(*shape[1:]) > 0
        _close(be.masked_fill(dev(x), dev(mask), dev(np.array(-np.inf))), np.where(mask, -np.inf, x), 0, "masked_fill")
        _close(be.relu(dev(x)), np.maximum(x, 0), 0, "relu")
        _close(be.relu_backward(dev(np.maximum(x, 0)), dev(dy)), dy * (x > 0), 0, "relu_backward")
        _close(be.tanh_backward(dev(y), dev(dy)), dy * (1 - y * y), t, "tanh_backward")
        _close(be.cube(dev(x)), x * x * x, t, "cube")
        _close(be.cube_backward(dev(x), dev(dy)), dy * 3 * x * x, t, "cube_backward")
        _close(be.sigmoid(dev(x)), s, t, "sigmoid")
        _close(be.sigmoid_backward(dev(s), dev(dy)), dy * s * (1 - s), t, "sigmoid_backward")
        _close(be.silu(dev(x)), x * s, t, "silu")
        _close(be.silu_backward(dev(x), dev(dy)), dy * s * (1 + x * (1 - s)), t, "silu_backward")


# (causal, window, offset, bias): the masking rule's cases, fully masked rows included
_MASKS = [
    (False, None, 0, None),
    (True, None, 0, "-inf"),     # top-left causal + a bias with -inf entries: row 0 fully masked
    (True, 1, 2, "float"),       # bottom-right (S - L) with a window, a broadcast float bias
    (True, None, -1, None),      # offset < 0: query row 0 sees no key
]


def _run_attention(be, rng):
    L, S, E, Ev = 3, 5, 4, 3
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 2e-5)):
        for causal, window, offset, kind in _MASKS:
            q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((2, 2, L, E), (2, 2, S, E), (2, 2, S, Ev)))
            dout = rng.standard_normal((2, 2, L, Ev)).astype(dtype)
            bias = None
            if kind == "-inf":
                bias = np.zeros((1, L, S), dtype)
                bias[0, 0, 0] = -np.inf  # row 0 sees key 0 only under causal: fully masked
                bias[0, 2, 1] = -np.inf
            elif kind == "float":
                bias = rng.standard_normal((1, 1, S)).astype(dtype)
            what = f"attention {np.dtype(dtype).name} causal={causal} window={window} offset={offset} bias={kind}"
            args = (None if bias is None else be.asarray(bias), causal, window, 0.7)
            out, lse = be.attention_forward(*(be.asarray(a) for a in (q, k, v)), *args, offset)
            want_out, want_lse = attention_reference(q, k, v, bias, causal, window, 0.7, offset)
            _close(out, want_out, tol, what + " out")
            _close(lse, want_lse, tol, what + " lse")
            grads = be.attention_backward(*(be.asarray(a) for a in (q, k, v)), *args, out, lse, be.asarray(dout),
                                          offset)
            for got, want, name in zip(grads, attention_backward_reference(q, k, v, bias, causal, window, 0.7, dout,
                                                                           offset), "qkv"):
                assert _host(got).dtype == dtype, (what, name)
                _close(got, want, tol * 10, f"{what} d{name}")


def _layer_norm(z, w, b, eps):
    return (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + eps) * w + b


def _run_decode(be, rng):
    """encoder_layer_decode (the optional fused step) against the layer written out in NumPy."""
    N, T, E, H, F, start, C = 2, 2, 4, 2, 6, 1, 4
    D = E // H
    r = lambda *s: rng.standard_normal(s)  # noqa: E731
    for norm_first, act in ((True, "gelu"), (False, "relu"), (False, "gelu_erf")):
        x = r(N, T, E)
        n1, n2 = (r(E), r(E), 1e-5), (r(E), r(E), 1e-5)
        inp, outp, l1, l2 = (r(3 * E, E), r(3 * E)), (r(E, E), r(E)), (r(F, E), r(F)), (r(E, F), r(E))
        k_buf, v_buf = r(N, H, C, D), r(N, H, C, D)
        k0, v0 = k_buf.copy(), v_buf.copy()
        y = be.encoder_layer_decode(x, n1, inp, outp, n2, l1, l2, k_buf, v_buf, start, norm_first, act)
        a = _layer_norm(x, *n1) if norm_first else x
        qkv = a @ inp[0].T + inp[1]
        heads = lambda z: z.reshape(N, T, H, D).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (heads(qkv[..., i * E:(i + 1) * E]) for i in range(3))
        k0[:, :, start:start + T], v0[:, :, start:start + T] = k, v
        o, _ = attention_reference(q, k0[:, :, :start + T], v0[:, :, :start + T], None, True, None,
                                   1 / math.sqrt(D), start)
        s = o.transpose(0, 2, 1, 3).reshape(N, T, E) @ outp[0].T + outp[1]
        activate = {"relu": lambda z: np.maximum(z, 0), "gelu": lambda z: _gelu_tanh(z)[0],
                    "gelu_erf": lambda z: _gelu_erf(z)[0]}[act]
        ff = lambda z: activate(z @ l1[0].T + l1[1]) @ l2[0].T + l2[1]  # noqa: E731
        if norm_first:
            h = x + s
            want = h + ff(_layer_norm(h, *n2))
        else:
            h = _layer_norm(x + s, *n1)
            want = _layer_norm(h + ff(h), *n2)
        _close(y, want, 1e-9, f"encoder_layer_decode norm_first={norm_first} activation={act}")
        _close(k_buf[:, :, :start + T], k0[:, :, :start + T], 1e-12, "decode's cached keys")
        _close(v_buf[:, :, :start + T], v0[:, :, :start + T], 1e-12, "decode's cached values")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_backend_conforms_to_the_contract(device):
    """Every backend: the contract's names and signatures, its declared capabilities, every kernel's math."""
    be = _backend(device)
    assert check_backend(be) is be and isinstance(be, Backend)
    assert be.name == device and be.supports(DECODE) == (device == "cpu")
    _run_kernels(be, np.random.default_rng(0))


def test_a_drifting_backend_fails_the_check():
    """A kernel missing, with other parameters, or a capability not in the contract: check_backend refuses."""
    cpu = B.cpu()
    names = set(contract_methods())
    assert {"matmul", "attention_forward", "attention_backward", "adam_update", "supports"} <= names

    class Missing(B.CPUBackend):
        __init__ = lambda self: None  # noqa: E731
        softmax = None

    class Reordered(Missing):
        softmax = B.CPUBackend.softmax

        def attention_forward(self, q, k, v, causal, scale, bias=None, window=-1, offset=0):
            pass

    class Undeclared(Reordered):
        attention_forward = B.CPUBackend.attention_forward
        capabilities = frozenset({DECODE, "paged_attention"})

    class Lying(Undeclared):
        capabilities = frozenset()

        def supports(self, capability):
            return True

    class DecodeDrift(Undeclared):
        capabilities = frozenset({DECODE})

        def encoder_layer_decode(self, x, norm1, in_proj, out_proj, norm2, linear1, linear2, k_buf, v_buf, start):
            pass

    for cls, message in ((Missing, "no method softmax"), (Reordered, "attention_forward"),
                         (Undeclared, "paged_attention"), (Lying, "supports"), (DecodeDrift, "encoder_layer_decode")):
        with pytest.raises(BackendContractError, match=message):
            check_backend(cls())
    assert issubclass(BackendContractError, TypeError) and check_backend(cpu) is cpu
    assert set(OPTIONAL) == {DECODE, DROPOUT}


def test_the_masking_rule_reference():
    """attention_allowed by hand: causal, window, offset (top-left, bottom-right, negative), combined."""
    T, F = True, False
    assert (attention_allowed(2, 3, causal=True) == [[T, F, F], [T, T, F]]).all()
    assert (attention_allowed(2, 3, causal=True, offset=1) == [[T, T, F], [T, T, T]]).all()
    assert (attention_allowed(2, 3, window=0) == [[T, F, F], [F, T, F]]).all()
    assert (attention_allowed(2, 4, causal=True, window=1, offset=2) == [[F, T, T, F], [F, F, T, T]]).all()
    assert not attention_allowed(2, 3, causal=True, offset=-1)[0].any()
    # the reference forward: a fully masked row is 0 with lse -inf, never NaN; others are a softmax
    q, k, v = np.ones((1, 2, 1)), np.ones((1, 3, 1)), np.arange(3.0).reshape(1, 3, 1)
    out, lse = attention_reference(q, k, v, None, True, None, 1.0, -1)
    assert out[0, 0, 0] == 0 and lse[0, 0] == -np.inf
    assert out[0, 1, 0] == 0 and lse[0, 1] == pytest.approx(1.0)  # row 1 sees key 0 only
    dq, dk, dv = attention_backward_reference(q, k, v, None, True, None, 1.0, np.ones((1, 2, 1)), -1)
    assert np.isfinite(dq).all() and dv[0, :, 0].tolist() == [1.0, 0.0, 0.0]
