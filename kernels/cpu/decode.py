"""One causal Transformer encoder layer over the new positions of a sequence whose keys and values are
cached: the whole layer in one call, for generation (nn.TransformerEncoderLayer's fused decode step,
the counterpart of PyTorch's `torch._transformer_encoder_layer_fwd` inference fast path).

Inputs are plain arrays: x (N, T, E) holds the T new positions of N sequences, positions
start .. start + T - 1; k_buf, v_buf (N, H, C, D) (C >= start + T, E = H·D) hold the cached keys and
values at 0 .. start - 1. Per sequence n and new row t, in order (p = start + t):

    a = LN1(x) if norm_first else x                                  # LN(z) = (z - μ)/√(σ² + eps) ∘ w + b
    [q | k | v] = a W_inᵀ + b_in                                     # (3E,), head h at columns h·D .. h·D + D - 1
    k_buf[n, h, p] = k_h,  v_buf[n, h, p] = v_h                      # the cache now holds 0 .. p
    o_h = Σ_{j<=p} softmax_j(q_h · k_buf[n, h, j] / √D) v_buf[n, h, j]   # causal, bottom-right aligned
    s = [o_1 | ... | o_H] W_oᵀ + b_o
    norm_first:  h = x + s,        y = h + FF(LN2(h))
    post-norm:   h = LN1(x + s),   y = LN2(h + FF(h))
    FF(z) = act(z W_1ᵀ + b_1) W_2ᵀ + b_2,  act = relu, GELU's tanh form or GELU's exact form

The layer norm row and the GELU formulas are those of kernels/cpu/layer_norm.py and activations.py, inlined.

Row t only reads keys at positions <= p, all written before it, so the rows run one after another
and the loop nest is exactly that: for n: for t: (the steps above), every product a matrix-vector
one (dot products along the weights' contiguous rows). Without biases, pass zeros; a LayerNorm
without affine parameters: ones and zeros.

fastmath: reassociation and contraction only (as matmul.py), so the dot products vectorise; NaN and
inf still propagate. error_model="numpy": a division by zero (a constant row with eps = 0) gives inf/NaN
as the op-by-op path does, not a ZeroDivisionError. Results match the op-by-op path to rounding
(tests/test_generation.py).
"""
import math

import numpy as np
from numba import njit

from .activations import gelu_erf, gelu_tanh
from .attention.mask import _key_range
from .layer_norm import layer_norm_row
from .vexp import vexp

_FM = {"reassoc", "contract"}
RELU, GELU, GELU_ERF = 0, 1, 2  # the `activation` codes: relu, GELU's tanh form, GELU's exact (erf) form
ACTIVATIONS = {"relu": RELU, "gelu": GELU, "gelu_erf": GELU_ERF}  # the backend's names -> codes


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _layer_norm_row(z, w, b, eps, out):
    """layer_norm.layer_norm_row, compiled once here and called four times (inlining it at every call site
    cost ~2 s of cold compile)."""
    layer_norm_row(z, w, b, eps, out)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _matvec(w, b, z, out):
    """out[o] = b[o] + Σ_i w[o, i] z[i] for w (O, I) (a Linear's weight), z (I,), out (O,).

    Four rows of w at a time: four independent dot products (each vectorised along i) share every
    load of z and hide each other's add latency."""
    T = z.dtype.type
    O, I = w.shape
    o = 0
    while o + 4 <= O:
        r0, r1, r2, r3 = w[o], w[o + 1], w[o + 2], w[o + 3]
        s0 = s1 = s2 = s3 = T(0)
        for i in range(I):
            zi = z[i]
            s0 += r0[i] * zi
            s1 += r1[i] * zi
            s2 += r2[i] * zi
            s3 += r3[i] * zi
        out[o], out[o + 1], out[o + 2], out[o + 3] = s0 + b[o], s1 + b[o + 1], s2 + b[o + 2], s3 + b[o + 3]
        o += 4
    for r in range(o, O):
        row = w[r]
        s = T(0)
        for i in range(I):
            s += row[i] * z[i]
        out[r] = s + b[r]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _activate(z, activation):
    """relu, GELU's tanh form or GELU's exact form in place on z: the per-element formulas of
    kernels/cpu/activations.py (inlined), so the fused step computes what the op-by-op path does."""
    T = z.dtype.type
    if activation == GELU:
        for i in range(z.size):
            z[i] = gelu_tanh(z[i])
    elif activation == GELU_ERF:
        for i in range(z.size):
            z[i] = gelu_erf(z[i])
    else:
        for i in range(z.size):
            if z[i] < T(0):
                z[i] = T(0)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _attend(q, keys, vals, jlo, jhi, scale, p, out):
    """out = Σ_{jlo<=j<jhi} softmax_j(scale · q·keys[j]) vals[j] for one head: q (D,), keys, vals (>= jhi, D),
    p (>= jhi,) scratch for the weights; the softmax with its maximum subtracted. [jlo, jhi) is never empty
    here (the row's own key is always in it)."""
    T = q.dtype.type
    D = q.size
    m = T(-np.inf)
    for r in range(jlo, jhi):
        kr = keys[r]
        s = T(0)
        for d in range(D):
            s += q[d] * kr[d]
        p[r] = s * scale
        m = max(m, p[r])
    total = T(0)
    for r in range(jlo, jhi):
        e = vexp(p[r] - m)
        p[r] = e
        total += e
    out[:] = 0
    for r in range(jlo, jhi):
        w = p[r]
        vr = vals[r]
        for d in range(D):
            out[d] += w * vr[d]
    inv = T(1) / total
    for d in range(D):
        out[d] *= inv


@njit(cache=True, fastmath=_FM, error_model="numpy")
def encoder_layer_decode(x, ln1_w, ln1_b, eps1, w_in, b_in, w_o, b_o, ln2_w, ln2_b, eps2, w_1, b_1, w_2, b_2,
                         k_buf, v_buf, start, norm_first, activation):
    """y (N, T, E) for x (N, T, E) at positions start .. start + T - 1; writes their keys and values into
    k_buf, v_buf (N, H, C, D) at those positions (see the module docstring for the math)."""
    N, L, E = x.shape
    H, D = k_buf.shape[1], k_buf.shape[3]
    T = x.dtype.type
    scale = T(1.0 / math.sqrt(D))
    y = np.empty_like(x)
    a = np.empty(E, dtype=x.dtype)  # the attention's input row
    qkv = np.empty(3 * E, dtype=x.dtype)
    o = np.empty(E, dtype=x.dtype)  # heads concatenated
    h = np.empty(E, dtype=x.dtype)
    z = np.empty(E, dtype=x.dtype)
    f = np.empty(w_1.shape[0], dtype=x.dtype)
    p_j = np.empty(start + L, dtype=x.dtype)  # one head's attention weights
    for n in range(N):
        for t in range(L):
            pos = start + t
            xr = x[n, t]
            if norm_first:
                _layer_norm_row(xr, ln1_w, ln1_b, eps1, a)
            else:
                a[:] = xr
            _matvec(w_in, b_in, a, qkv)
            for hd in range(H):
                k_buf[n, hd, pos, :] = qkv[E + hd * D : E + (hd + 1) * D]
                v_buf[n, hd, pos, :] = qkv[2 * E + hd * D : 2 * E + (hd + 1) * D]
            # the keys row t sees, by the masking rule of the attention kernels (attention/mask.py): causal,
            # bottom-right aligned (the row at position pos sees 0 .. pos), no window
            jlo, jhi = _key_range(pos, pos + 1, start + L, True, -1)
            for hd in range(H):
                _attend(qkv[hd * D : (hd + 1) * D], k_buf[n, hd], v_buf[n, hd], jlo, jhi, scale, p_j,
                        o[hd * D : (hd + 1) * D])
            _matvec(w_o, b_o, o, z)  # the attention block's output s
            if norm_first:
                for c in range(E):
                    h[c] = xr[c] + z[c]
                _layer_norm_row(h, ln2_w, ln2_b, eps2, z)  # the FF block's input
            else:
                for c in range(E):
                    z[c] += xr[c]
                _layer_norm_row(z, ln1_w, ln1_b, eps1, h)
                z[:] = h
            _matvec(w_1, b_1, z, f)
            _activate(f, activation)
            yr = y[n, t]
            _matvec(w_2, b_2, f, yr)
            if norm_first:
                for c in range(E):
                    yr[c] += h[c]
            else:
                for c in range(E):
                    z[c] = yr[c] + h[c]
                _layer_norm_row(z, ln2_w, ln2_b, eps2, yr)
    return y
