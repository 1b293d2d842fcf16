"""Optimiser updates on a CUDA device: one fused pass per parameter instead of a dozen elementwise ops.

    adam_update(w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2)      all in place, flat arrays

per element i (tinyattn.optim.Adam's math; the scalars arrive as kernel arguments, so a step
whose learning rate or bias corrections change uploads nothing):

    w_i *= decay                                  (AdamW's decoupled decay; 1 otherwise)
    g   = g_i + l2 · w_i                          (Adam's L2 term; 0 otherwise)
    m_i = β1 m_i + (1 - β1) g;   v_i = β2 v_i + (1 - β2) g²
    w_i -= step_size · m_i / (√(v_i / bias2) + eps)

A grid-stride loop (launch.grid_1d); the arithmetic is in the arrays' dtype.
"""
import math

import numpy as np
from numba import cuda

from .launch import grid_1d


@cuda.jit
def _adam(w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2):
    one = beta1 - beta1 + 1  # 1 in the arrays' dtype (the scalars are passed in that dtype)
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i] * decay
        gi = g[i] + l2 * wi
        mi = beta1 * m[i] + (one - beta1) * gi
        vi = beta2 * v[i] + (one - beta2) * (gi * gi)
        m[i] = mi
        v[i] = vi
        w[i] = wi - step_size * mi / (math.sqrt(vi / bias2) + eps)


def adam_update(w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2):
    """One Adam step for a parameter, in place (module docstring). w, g, m, v: 1-D device arrays."""
    t = np.dtype(w.dtype).type
    if w.size:
        _adam[grid_1d(w.size)](w, g, m, v, t(beta1), t(beta2), t(step_size), t(bias2), t(eps), t(decay), t(l2))
