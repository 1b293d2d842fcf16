"""Fused scaled-dot-product attention on the CPU: tiled (FlashAttention style), never L x S in memory.

Per batch-head p (the batch dims of q, k, v flattened in C order: ``BH = B * H`` for (B, H, L, E) inputs):

    S = scale * Q K^T + bias          # (L, S) -- only ever one (BQ, BK) tile of it exists
    S_ij = -inf where masked          # causal: j > i;  window w >= 0: |i - j| > w;  bias == -inf
    P = softmax(S, dim=-1)            # row-wise
    O = P V                           # (L, Ev)
    lse_i = log(sum_j exp(S_ij))      # saved for backward (one number per query row)

Backward, with P recomputed tile by tile as P_ij = exp(S_ij - lse_i):

    dV  = P^T dO
    dP  = dO V^T
    D_i = rowsum(dO_i * O_i)          # = rowsum(dP_i * P_i)
    dS  = P * (dP - D)
    dQ  = scale * dS K
    dK  = scale * dS^T Q

Conventions
-----------
* ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)`` with the same batch dims, float32 or float64 (all
  the same dtype); every result is in that dtype, including ``lse (..., L)``.  Accumulation happens in that
  dtype too.  Results (lse, dq, dk, dv) are new C-contiguous arrays (dq, dk, dv laid out like q, k, v when those
  are equal slices of one array: attention_backward); so is out, except for
  ``(B, H, L, E)`` inputs (several heads): out (B, H, L, Ev) then lies in memory as (B, L, H, Ev), as
  PyTorch's CPU flash attention lays it out, so that joining the heads, ``y.transpose(1, 2).reshape(B, L,
  H*Ev)``, is a view instead of a copy. The kernels write it through ``of``/``o_off``/``o_rs``, as below.
* Strided inputs are read in place: the kernels see q (and k, v, dout, out) as a flat 1-D array ``qf``, an int64
  offset per batch-head ``q_off (BH,)`` and a row stride ``q_rs``, with Q[p, i, e] = qf[q_off[p] + i q_rs + e]
  (``_strided``).  That covers any view whose rows are contiguous and whose strides are non-negative --
  q, k, v = qkv.permute(2, 0, 3, 1, 4) of a fused projection, the transposed gradient arriving through
  y.transpose(1, 2), a sliced or broadcast batch -- without a copy; anything else is copied first.
* Backward work split: prange over (batch-head, group of key tiles); with fewer batch-heads than threads
  each head's key tiles are dealt round-robin to G = ceil(threads / BH) items, each with its own dq slab
  summed at the end -- extra memory (G - 1) x |dq|, no atomics, no races.
* ``bias`` is any 3-D float array that broadcasts to ``(BH, L, S)`` -- a zero-stride view from
  ``np.broadcast_to`` is fine and is never copied (unless its dtype differs from q's); ``-inf`` entries
  mask.  When ``has_bias`` is False it is a dummy and ignored.
* ``offset`` places query row i at key position ``i + offset``; causal and window are measured from there.
  ``causal`` keeps key j for query i only if ``j <= i + offset``: ``offset = 0`` is the top-left alignment
  (PyTorch's ``is_causal``, also for L != S), ``offset = S - L`` the bottom-right one (the last query sees
  every key: a query at cache position p sees keys <= p, what a key/value cache needs).  ``window >= 0``
  keeps key j only if ``|i + offset - j| <= window``; ``window = -1`` means none.  Both can be combined.
  Key tiles that causal/window mask entirely are skipped, never computed.
* A fully masked query row (every key masked) gets output row 0 and ``lse = -inf`` (the marker), and its
  gradients contribute exactly 0 to dq, dk and dv -- never NaN.

Tiling: ``BLOCK_Q`` query rows x ``BLOCK_K`` keys (64 x 64, measured best of 32/64/128 on a 2-core AVX2
box).  Every innermost loop is an axpy over a tile axis whose length is the compile-time constant
BLOCK_Q or BLOCK_K (partial tiles are zero padded): LLVM unrolls it, vectorises it and keeps the
accumulator row in registers, which measured ~3x faster than loops bounded by the runtime E or Ev.  The
forward therefore works on the transposed score tile S^T (keys x queries), the backward on S (queries x
keys) with the owned K/V tile transposed once.  Inner products are never horizontal reductions, so no
fastmath is needed; ``_exp`` is a branch-free exp that vectorises (np.exp is a libm call per element).
Local buffers are allocated once per prange work item.

On AVX-512 / AVX2 + FMA hosts (``KERNEL``, from microkernel.host_kernel; TINYATTN_MATMUL_KERNEL
overrides it) ``_forward_mk`` / ``_backward_mk`` run the same loop nests with every tile product (S, P V,
dP, dV, dK, dQ) as register tiles of the matmul outer-product micro-kernel: 12 (6) rows x 2 vectors of
accumulators, so one vector load of the B operand serves 12 (6) rows instead of one; their float32
exp passes are 16-lane vector IR (``_exp_row_c`` / ``_exp_row_s``, vexp's algorithm), since Numba's
own vectorisation of ``_exp`` stops at 8 lanes.  About 2.5x faster at B4 H8 L512 E64 (docs/benchmarks.md).
``_forward`` / ``_backward`` are the portable path.

The public functions (here) are thin Python wrappers (they build the flat views and offset tables,
normalise dtypes/bias and pick the work split and the kernel) around the ``@njit(parallel=True, cache=True)``
kernels. Modules, one job each:

* ``mask``: the masking rule (causal, window, offset, bias), the one place the CPU kernels compute it (the
  decode step too); its NumPy reference is tinyattn.backend_contract.attention_allowed.
* ``tiles``: the tile sizes, the host kernel choice (``KERNEL``) and the register-blocked tile product ``_mm``.
* ``exp``: the float32 exp passes over tile rows as 16-lane vector IR.
* ``forward``: ``_forward``, ``_forward_mk``, ``_forward_rows``.
* ``backward``: ``_backward``, ``_backward_mk`` (one shared set-up), ``_sum_groups``.
* ``layout``: the flat views, offset tables and checks of the wrappers.
"""

import numba
import numpy as np

from ..indirect import ITEM_INDEX, item_function
from .backward import _backward, _backward_mk, _key_tiles, _key_tiles_mk, _sum_groups
from .exp import _exp_bwd, _exp_fwd
from .forward import _forward, _forward_mk, _forward_rows, _query_tile, _query_tile_mk
from .layout import _batch, _bias, _dense_gradients, _offsets, _sibling_gradients, _strided
from .tiles import _TAGS, BLOCK_K, BLOCK_Q, KERNEL, ROWS_MAX_L

def _mask(bias, has_bias, causal, window, offset, dt, BH, L, S):
    """The kernels' masking arguments as one tuple: (bias view (layout._bias), has_bias, causal, window (-1:
    none), offset). The kernels take their arrays grouped too: q, k, v, dout and out each as (flat view,
    offset table, row stride) (layout._strided), so a kernel's signature reads as its math."""
    return (_bias(bias, has_bias, dt, BH, L, S), bool(has_bias), bool(causal), int(window), int(offset))


__all__ = ["BLOCK_K", "BLOCK_Q", "KERNEL", "ROWS_MAX_L", "attention_backward", "attention_forward"]


def attention_forward(q, k, v, bias, has_bias, causal, window, scale, offset=0):
    """Fused attention forward. q (..., L, E), k (..., S, E), v (..., S, Ev) with the same batch dims (BH in
    all: their product); bias broadcastable to (BH, L, S); query row i sits at key position i + offset for
    causal/window (0: top-left, S - L: bottom-right).  q, k and v may be strided views (see ``_strided``:
    read in place when each row is contiguous, copied otherwise).

    Returns ``(out (..., L, Ev), lse (..., L))``, new arrays in q's dtype: lse C-contiguous, out too unless
    the batch is (B, H), see the module docstring.  ``lse_i = log sum_j exp(S_ij)``; a fully masked row has
    ``out_i = 0`` and ``lse_i = -inf``.  See the module docstring for the math, the masking rules and the
    loop nest (``_forward``).
    """
    batch, BH, L, S, E, Ev = _batch("attention_forward", q, k, v)
    dt = q.dtype
    if len(batch) == 2 and batch[1] > 1:       # (B, H, L, Ev) stored as (B, L, H, Ev): heads joined for free
        buf = np.empty((batch[0], L, batch[1], Ev), dt)
        out = buf.transpose(0, 2, 1, 3)
    else:
        buf = out = np.empty(batch + (L, Ev), dt)
    it = buf.itemsize
    o_off = _offsets(batch, tuple(s // it for s in out.strides[:-2]))
    lse = np.empty((BH, L), dt)
    args = (_strided(q, dt), _strided(k, dt), _strided(v, dt), (BH, L, S, E, Ev),
            _mask(bias, has_bias, causal, window, offset, dt, BH, L, S), dt.type(scale),
            (buf.reshape(-1), o_off, out.strides[-2] // it), lse)
    if L <= ROWS_MAX_L:
        _forward_rows(*args)
    elif KERNEL == "portable":
        _forward(*args, item_function(_query_tile, (ITEM_INDEX,) + args))
    else:
        args += (_TAGS[KERNEL],)
        _forward_mk(*args, item_function(_query_tile_mk, (ITEM_INDEX,) + args))
    return out, lse.reshape(batch + (L,))


def attention_backward(q, k, v, bias, has_bias, causal, window, scale, out, lse, dout, offset=0):
    """Fused attention backward from the forward's ``out (..., L, Ev)`` and ``lse (..., L)``, with ``dout``
    shaped like out (any strides, as q, k, v).  Returns ``(dq, dk, dv)``, new arrays shaped like q, k, v, in
    q's dtype: C-contiguous, except when q, k, v (or k, v) are equal slices of one array, as from
    ``qkv.unbind`` or ``qkv.split`` and a view into heads: their gradients are then laid out like them, side
    by side in one new buffer, which Unbind's and Split's backward return as the gradient of that array
    without copying (layout._sibling_gradients).  P is recomputed tile by tile from q, k and lse; rows with
    ``lse = -inf`` (fully masked) contribute 0.  Loop nest in ``_backward``.
    """
    return _backward_impl(q, k, v, bias, has_bias, causal, window, scale, out, lse, dout, None, offset)


def _gradients(q, k, v, dt):
    """New (dq, dk, dv) and the layouts (flat, off, rs) through which the kernels write them: side by side in one
    buffer, laid out like q, k, v, where those (or k and v) are siblings (layout._sibling_gradients), else
    C-contiguous."""
    if q.shape == k.shape == v.shape:
        both = _sibling_gradients((q, k, v), dt)
        if both is not None:
            return both
    kv = _sibling_gradients((k, v), dt) if k.shape == v.shape else None
    if kv is None:
        return _dense_gradients((q.shape, k.shape, v.shape), dt)
    (dq,), (dq_layout,) = _dense_gradients((q.shape,), dt)
    return (dq,) + kv[0], (dq_layout,) + kv[1]


def _backward_impl(q, k, v, bias, has_bias, causal, window, scale, out, lse, dout, groups, offset=0):
    """attention_backward with the number G of key-tile groups per batch-head forced (tests) or chosen."""
    batch, BH, L, S, E, Ev = _batch("attention_backward", q, k, v)
    dt = q.dtype
    assert out.shape == dout.shape == batch + (L, Ev) and lse.shape == batch + (L,), (out.shape, lse.shape)
    # lse as the kernels read it: (BH, L), a read-only C array (no copy when it came from attention_forward),
    # so one signature whatever the caller's arrays; out through _strided, like dout
    lse = np.ascontiguousarray(lse, dtype=dt).reshape(BH, L)
    lse.flags.writeable = False
    # Split each batch-head's key tiles over G items when BH alone cannot keep the threads busy;
    # each extra group costs one (BH, L, E) dq slab (so at most ~num_threads x dq of extra memory).
    nkb = (S + BLOCK_K - 1) // BLOCK_K
    G = groups if groups is not None else max(1, min(nkb, -(-numba.get_num_threads() // BH)))
    # left uninitialised: the kernel writes every element (dq rows on the first key tile that reaches them,
    # zeros where none does), inside its parallel loop (np.zeros here: serial memsets, measured slower)
    (dq, dk, dv), (dq_layout, dk_layout, dv_layout) = _gradients(q, k, v, dt)
    if G == 1:  # the one dq slab is dq
        slabs = dq_layout
    else:
        dqp = np.empty((G, BH, L, E), dt)
        slabs = (dqp.reshape(-1), _offsets((G * BH,), (L * E,)), E)
    args = (_strided(q, dt), _strided(k, dt), _strided(v, dt), _strided(dout, dt), (BH, L, S, E, Ev),
            _mask(bias, has_bias, causal, window, offset, dt, BH, L, S), dt.type(scale), _strided(out, dt), lse,
            slabs, dk_layout, dv_layout)
    if KERNEL == "portable":
        _backward(*args, item_function(_key_tiles, (ITEM_INDEX,) + args))
    else:
        args += (_TAGS[KERNEL],)
        _backward_mk(*args, item_function(_key_tiles_mk, (ITEM_INDEX,) + args))
    if G > 1:
        _sum_groups(dqp, dq_layout)
    return dq, dk, dv
