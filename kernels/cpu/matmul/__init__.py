"""Batched matrix products on the CPU: packing + a register-blocked micro-kernel, Numba-parallel.

Three public kernels, each returning a new (B, M, N) array of the inputs' dtype:

    matmul_nn(a, b)  a (Ba, M, K), b (Bb, K, N)   out[p] = a[p]   @ b[p]
    matmul_nt(a, b)  a (Ba, M, K), b (Bb, N, K)   out[p] = a[p]   @ b[p].T    (dA = dC · Bᵀ)
    matmul_tn(a, b)  a (Ba, K, M), b (Bb, K, N)   out[p] = a[p].T @ b[p]      (dB = Aᵀ · dC)

Inputs may have any strides: a transposed, sliced or batch view is read where it lies (see "Operands may
have any strides" below; only a matrix with no unit stride, negative strides or a read-only array is copied).
Batch broadcast: each operand's batch is 1 or B = max(Ba, Bb); an operand of batch 1 has batch stride 0, so
out[p] reads a[p * (Ba > 1)] and b[p * (Bb > 1)] (a batch of stride 0 is computed as a batch of 1).
Several batch axes: an operand may also be (..., M, K) with Ba = the product of its batch axes, in row-major
order; when no single stride spans them (the heads of x.view(B, T, H, D).transpose(1, 2), which multi-head
attention multiplies), `_gemm_outer` reads it in place through a table of batch offsets (`_matmul_batches`).

All three are one routine that sees both operands through strides:

    A[p][i, k] = a_flat[p*sa + i*a_rs + k*a_ks]      (i < M)
    B[p][j, k] = b_flat[p*sb + j*b_rs + k*b_ks]      (j < N)       out[p][i, j] = sum_k A[i, k] * B[j, k]

so "transposed" just means other strides. Two implementations, chosen per host (`KERNEL`):

- `_gemm_outer` (CPUs with AVX-512 or AVX2 + FMA): BLAS-style outer-product micro-kernels emitted as
  LLVM vector IR (microkernel.py): a 12 x 2-vector tile (12 x 32 float32) of register accumulators on
  AVX-512, 6 x 2 vectors (6 x 16) on AVX2; per k, NR values of B are loaded as vectors and each of the
  MR values of A is broadcast into them, so no horizontal sums at all. B is packed into k-major
  micro-panels when it is contiguous along k (x @ W^T: by each task, its own columns, when it is small, so
  that no thread reads a copy another core wrote; else once, for all) and read in place when it is
  contiguous along j (dy @ W, dy^T @ x); A is read in place when contiguous along k and copied one
  micro-panel at a time otherwise. See its docstring for the loop nest and docs/benchmarks.md for the
  measurements.
- `_gemm` (the portable path, any CPU; no explicit vectors): packing copies A and B into buffers where
  every row (fixed i, or fixed j) is contiguous along k, padded with zero rows to a multiple of the
  micro-tile. The micro-kernel then computes an MR x NR tile of dot products over k: MR*NR scalar
  accumulators that LLVM vectorises along k (8 float32 / 4 float64 lanes each, `reassoc` lets it split
  the sums), and a horizontal add at the end.

  Blocking (Goto-style, adapted): the packed B (all of N, all of K) is shared read-only by every task;
  each parallel task owns one batch p and one block of MC rows and, per KC-slice of k, packs its A block
  (MC x KC, in L2), then sweeps the NR-row micro-panels of B (NR x KC, in L1) over its MR-row
  micro-panels.

Tasks write disjoint output rows (and columns), so the prange has no races; the k reduction stays
inside one task, except in `_gemm_outer`'s k-split (a long reduction into a small output: a weight
gradient), where each task sums its share of k into a partial output of its own and the partials are
added after the parallel loop. Tiny products (`_gemm_small`) take a plain i-k-j loop.

The package, one job per module:
    pack.py       packing operands into micro-panels (`_pack`, `_pack_b_panel`)
    portable.py   the portable dot-product kernel `_gemm` and its 3 x 3 tile
    small.py      tiny products (`_gemm_small`)
    panel.py      the outer-product micro-kernel driver for one row panel (`_panel`)
    outer.py      the outer-product kernel `_gemm_outer`: task grid, k-split, bias, row-sum and activation-
                  derivative fusions
    rows.py       few-row products (`_gemm_rows`)
    __init__.py   the public entry points (three products, and matmul_nn_act_grad) and the choice among the
                  kernels (`_product`, KERNEL)
Blocking sizes and thresholds, with their units and measurements: ../policy.py.
"""
import math

import numba
import numpy as np

from ..microkernel import host_kernel
from ..policy import (KC, MC, MIN_TASKS, MR, NR, OUTER_KC, OUTER_MAX_SPLIT_K, OUTER_MIN_PANELS,  # noqa: F401
                      OUTER_NC_BYTES, OUTER_SPLIT_K, OUTER_SPLIT_K_IN_PLACE, ROWS_MAX_NN, ROWS_MAX_NT,
                      SMALL_ALWAYS, SMALL_BATCH_WORK, SMALL_WORK)
from .outer import (ACT_GELU_ERF, ACT_GELU_TANH, ACT_RELU, _a_sums, _add_bias, _gemm_outer, _gemm_task,  # noqa: F401
                    gemm_outer)
from .pack import _pack, _pack_b_panel  # noqa: F401
from .panel import _panel  # noqa: F401
from .portable import _gemm, _micro_3x3  # noqa: F401
from .rows import _gemm_rows
from .small import _gemm_small, _small  # noqa: F401
from ..threads import num_threads  # numba.get_num_threads() without its lock


# Which kernel large products use: 'avx512' / 'avx2' (`_gemm_outer`, vector micro-kernels) or 'portable'
# (`_gemm`, the dot-product kernel, no explicit vectors), chosen once from the features of the CPU that
# Numba compiles for (microkernel.host_kernel; TINYATTN_MATMUL_KERNEL overrides). Assign another name
# here to compare them: every call reads it.
KERNEL = host_kernel()


_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}
_NO_SUMS = {dt: np.empty((0, 0), dt) for dt in _NO_BIAS}
_NO_OFFS = np.empty(0, np.int64)          # `_gemm_outer`'s batch offsets: none (batch stride * p)


def _tiny(mnk, B):
    """Whether a batch of B products of mnk multiply-adds each takes `_gemm_small` (policy.SMALL_WORK, and for a
    batch of them SMALL_BATCH_WORK / SMALL_ALWAYS)."""
    return 0 < mnk <= SMALL_WORK and (mnk <= SMALL_ALWAYS or B * mnk <= SMALL_BATCH_WORK)


def _product(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, kernel=None, bias=None, a_sums=False):
    """`_gemm_rows` when kernel == 'rows' (the backend asks for it for few rows); else `_gemm_small`
    for tiny products (policy.SMALL_WORK, and for a batch of them SMALL_BATCH_WORK / SMALL_ALWAYS), else
    `_gemm_outer` or `_gemm` by `kernel` (default KERNEL): each compiles only when
    first used. `bias` (N,) or None: added to every output row (inside `_gemm_outer`, after the others).
    a_sums (only with a_rs == 1): return (out, s) with s[p, i] = sum_k A[p][i, k], (max(Ba, Bb), M); None
    from the kernels that do not compute it (the caller sums)."""
    out = None
    if kernel == "rows":
        out = _gemm_rows(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    elif _tiny(M * N * K, max(Ba, Bb)):
        out = _gemm_small(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    elif (KERNEL if kernel is None else kernel) == "portable":
        out = _gemm(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K)
    if out is None:
        b = _NO_BIAS[af.dtype] if bias is None else bias
        nth = num_threads()
        fused = a_sums and M * N * K > 0      # (an empty product returns before its loops)
        sums = np.zeros((nth, max(Ba, Bb) * M), af.dtype) if fused else _NO_SUMS[af.dtype]
        out = gemm_outer(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K,
                          (KERNEL if kernel is None else kernel) == "avx512", nth, b, sums, _NO_OFFS, _NO_OFFS)
        if not a_sums:
            return out
        return out, sums[0].reshape(-1, M) if fused else None   # the kernel adds every block's sums into row 0
    if bias is not None:
        out += bias
    return (out, None) if a_sums else out


# The three public functions are plain Python: they only compute strides and call the compiled
# `_gemm`, so compiling them as well would add seconds to a cold start and save nothing per call.
#
# Operands may have any strides (transposed views, slices, a batch view of a wider array, a broadcast batch):
# the kernels address A[p][i, k] and B[p][j, k] through element strides, so a view is read where it lies and
# only its layout decides which copy the kernel makes of it (`_gemm_outer`: A read in place when contiguous
# along k, copied one micro-panel at a time when contiguous along i; B read in place when contiguous along j,
# packed otherwise). `_operands` copies only what no kernel path reads well: a matrix with no unit stride
# (x[:, ::2]), negative strides, a read-only array (it would compile a read-only specialisation of every
# kernel), and for `_gemm_rows` a strided A against a k-contiguous B (its slow any-strides loop).


def _flat(x, r, k):
    """(flat, batch stride, row stride, k stride) of a 3-D array x (batch and two matrix axes, in any order of
    strides) whose matrices A[p][i, k] = x[p, i, k] (r, k = 1, 2) or x[p, k, i] (r, k = 2, 1) have a unit stride
    along i or k: flat is a 1-D C-contiguous array starting at x[0, 0, 0] (a view of x's memory, no copy) with
    A[p][i, k] = flat[p*sb + i*rs + k*ks]. Strides of axes of length 1 never multiply an index but decide paths:
    the batch's becomes 0, a row's or k's 1 (unit: read in place)."""
    isz = x.itemsize
    n0, n1, n2 = x.shape
    s0, s1, s2 = x.strides
    st = (s0 // isz if n0 > 1 else 0, s1 // isz if n1 > 1 else 1, s2 // isz if n2 > 1 else 1)
    if x.flags.c_contiguous or x.size == 0:
        flat = x.reshape(-1)
    else:
        y = x.transpose(0, 2, 1) if s1 < s2 else x   # a transposed C-contiguous array: its ravel (0.5 us; as_strided
        if y.flags.c_contiguous:                     # takes 2.6)
            flat = y.reshape(-1)
        else:
            span = 1 + (n0 - 1) * st[0] + (n1 - 1) * st[1] + (n2 - 1) * st[2]
            flat = np.lib.stride_tricks.as_strided(x, shape=(span,), strides=(isz,))
    return flat, st[0], st[r], st[k]


def _readable(x, r, k):
    """Whether the kernels can address x's matrices in place (`_flat`, `_batch_view`; x 3-D or with more batch
    axes, r and k its row and k axes): non-empty, writeable (a read-only array would compile read-only
    specialisations of every kernel; none writes its inputs), element strides none negative, and a unit stride
    along rows or k."""
    f = x.flags
    if not (f.writeable and f.aligned and x.size > 0):
        return False
    if f.c_contiguous:
        return True
    isz = x.itemsize
    if any(s < 0 or s % isz for s in x.strides):
        return False
    return x.shape[r] == 1 or x.shape[k] == 1 or x.strides[r] == isz or x.strides[k] == isz


def _unit(x, axis):
    """Whether x's axis has length 1 or a unit stride."""
    return x.shape[axis] == 1 or x.strides[axis] == x.itemsize


def _operands(a, ar, ak, b, br, bk, rows_kernel=False):
    """The kernels' arguments (af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K) for A[p][i, k] = a[p]
    along axes (ar, ak) and B[p][j, k] = b[p] along axes (br, bk), a and b 3-D arrays of any strides (read in
    place: no transposed view, no copy). Copies (module note above) keep the operand's axis order (a plain copy,
    not a transposing one): its last axis becomes the unit stride, along rows or k, which every kernel reads."""
    Ba, M, K = a.shape[0], a.shape[ar], a.shape[ak]
    Bb, N = b.shape[0], b.shape[br]
    if not _readable(a, ar, ak):              # a copy in a's own axis order (no transposing copy): its last axis
        a = np.array(a, order="C")            # becomes the unit stride (always a new, writeable array)
    if not _readable(b, br, bk):
        b = np.array(b, order="C")
    if rows_kernel and not _unit(a, ak) and _unit(b, bk) and not _unit(b, br):
        a, ar, ak = np.array(a.transpose(0, ar, ak), order="C"), 1, 2       # `_gemm_rows`' dot products: M <= 16
    af, sa, a_rs, a_ks = _flat(a, ar, ak)
    bf, sb, b_rs, b_ks = _flat(b, br, bk)
    return af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K


def _batch_view(x, r, k):
    """(flat, batch, batch stride, offsets, row stride, k stride) of x (..., rows, cols) with several batch axes,
    or 3-D, for `_gemm_outer`: flat a 1-D view of x's memory from x's first element; a 3-D x gets its batch
    stride and no offsets, else offsets[p] = the flat offset of batch element p's matrix (row-major order of the
    batch axes). Strides in elements, all non-negative (`_readable`); axes of length 1 as in `_flat`."""
    if x.ndim == 3:
        flat, sx, rs, ks = _flat(x, r, k)
        return flat, x.shape[0], sx, _NO_OFFS, rs, ks
    key = (x.shape, x.strides, x.itemsize, r, k)
    layout = _LAYOUTS.get(key)
    if layout is None:                        # (a model repeats a few layouts: each is worked out once)
        isz = x.itemsize
        st = [s // isz for s in x.strides]
        offs = np.zeros(1, np.int64)
        for n, s in zip(x.shape[:-2], st[:-2]):
            offs = (offs[:, None] + np.arange(n, dtype=np.int64) * s).reshape(-1)
        span = 1 + sum((n - 1) * s for n, s in zip(x.shape, st))
        if len(_LAYOUTS) >= 256:
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = (span, offs, st[r] if x.shape[r] > 1 else 1, st[k] if x.shape[k] > 1 else 1)
    span, offs, rs, ks = layout
    flat = np.lib.stride_tricks.as_strided(x, shape=(span,), strides=(x.itemsize,))
    return flat, offs.size, 0, offs, rs, ks


_LAYOUTS: dict = {}   # `_batch_view`'s (span, offsets, row stride, k stride) by (shape, strides, itemsize, r, k)


def _matmul_batches(a, ar, ak, b, br, bk, kernel, bias, a_sums):
    """`_matmul` for operands with more than one batch axis that no single stride spans (q, k, v of multi-head
    attention: x.view(B, T, H, D).transpose(1, 2)): each operand's batch is 1 or B elements (row-major order of
    its batch axes). `_gemm_outer` reads them in place through a table of batch offsets; a product that another
    kernel takes (tiny, few rows, the portable kernel, fused sums) gets 3-D copies instead."""
    B = max(math.prod(a.shape[:-2]), math.prod(b.shape[:-2]))
    M, N, K = a.shape[ar - 3], b.shape[br - 3], a.shape[ak - 3]
    if (kernel is None and KERNEL != "portable" and not a_sums and M * N * K and not _tiny(M * N * K, B)
            and a.dtype == b.dtype and _readable(a, ar - 3, ak - 3) and _readable(b, br - 3, bk - 3)):
        af, Ba, sa, a_offs, a_rs, a_ks = _batch_view(a, ar - 3, ak - 3)
        bf, Bb, sb, b_offs, b_rs, b_ks = _batch_view(b, br - 3, bk - 3)
        return gemm_outer(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, KERNEL == "avx512", num_threads(),
                           _NO_BIAS[a.dtype] if bias is None else bias, _NO_SUMS[a.dtype], a_offs, b_offs)
    a3 = a.reshape((-1,) + a.shape[-2:])      # (copies: the batch axes do not merge)
    b3 = b.reshape((-1,) + b.shape[-2:])
    return _matmul(a3, ar, ak, b3, br, bk, kernel, bias, a_sums)


def _matmul(a, ar, ak, b, br, bk, kernel, bias=None, a_sums=False):
    """out[p] = A[p] @ B[p].T (+ bias) for A[p][i, k] = a[p] along axes (ar, ak), B[p][j, k] = b[p] along (br, bk);
    with a_sums, (out, s), s[p, i] = sum_k A[p][i, k]. A batch of stride 0 (a broadcast) is computed once, not per
    batch element. a or b may have several batch axes (`_matmul_batches`)."""
    if a.ndim != 3 or b.ndim != 3:
        return _matmul_batches(a, ar, ak, b, br, bk, kernel, bias, a_sums)
    fa, fb = a.flags, b.flags
    if fa.c_contiguous and fb.c_contiguous and fa.writeable and fb.writeable and a.size and b.size:
        # the common case, C-contiguous operands: their strides from their shapes (no copy, no check)
        Ba, a1, a2 = a.shape
        Bb, b1, b2 = b.shape
        sa = (0 if Ba == 1 else a1 * a2, a2 if a1 > 1 else 1, 1)
        sb = (0 if Bb == 1 else b1 * b2, b2 if b1 > 1 else 1, 1)
        M, N, K = a.shape[ar], b.shape[br], a.shape[ak]
        if (kernel is None and M * N * K > SMALL_WORK and KERNEL != "portable" and a.dtype is b.dtype
                and (not a_sums or sa[ar] == 1)):
            # a Linear's products (and any large C-contiguous one) straight to `_gemm_outer`: `_product`'s
            # choices are made (not rows, not small, not portable): ~1-2 us of Python per call instead of ~5
            # (issue 22; with the fused sums ~3 instead of ~9)
            bz = _NO_BIAS[a.dtype] if bias is None else bias
            nth = num_threads()
            if a_sums:                        # the fused row sums (A's rows contiguous: dy^T)
                sums = np.zeros((nth, max(Ba, Bb) * M), a.dtype)
                out = gemm_outer(a.reshape(-1), Ba, sa[0], 1, sa[ak], b.reshape(-1), Bb, sb[0], sb[br], sb[bk],
                                  M, N, K, KERNEL == "avx512", nth, bz, sums, _NO_OFFS, _NO_OFFS)
                return out, sums[0].reshape(-1, M)       # (the kernel adds its k blocks' rows into row 0)
            return gemm_outer(a.reshape(-1), Ba, sa[0], sa[ar], sa[ak], b.reshape(-1), Bb, sb[0], sb[br], sb[bk],
                               M, N, K, KERNEL == "avx512", nth, bz, _NO_SUMS[a.dtype], _NO_OFFS, _NO_OFFS)
        B = max(Ba, Bb)
        args = (a.reshape(-1), Ba, sa[0], sa[ar], sa[ak], b.reshape(-1), Bb, sb[0], sb[br], sb[bk], M, N, K)
        if kernel == "rows" and ak == 1 and bk == 2 and b1 > 1:    # (the one layout `_gemm_rows` reads slowly)
            args = _operands(a, ar, ak, b, br, bk, True)
    else:
        B = max(a.shape[0], b.shape[0])
        if a.shape[0] > 1 and a.strides[0] == 0 and a.size:
            a = a[:1]
        if b.shape[0] > 1 and b.strides[0] == 0 and b.size:
            b = b[:1]
        args = _operands(a, ar, ak, b, br, bk, kernel == "rows")
    if a_sums and args[3] != 1:               # the fused sums read rows of A along i (dy^T): else summed here
        out, s = _product(*args, kernel, bias), None
    else:
        out = _product(*args, kernel, bias, a_sums)
        out, s = out if a_sums else (out, None)
    if out.shape[0] != B:                     # both batches broadcast: one product for every batch element
        out = np.broadcast_to(out, (B,) + out.shape[1:]).copy()
    if not a_sums:
        return out
    if s is None:                             # a kernel or a layout without the fused sums
        s = a.sum(axis=ak)
    if s.shape[0] != B:
        s = np.broadcast_to(s, (B, s.shape[1])).copy()
    return out, s


def matmul_nn(a, b, kernel=None):
    """out[p] = a[p] @ b[p]: a (Ba, M, K), b (Bb, K, N) -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, i, k] * b[p, k, j]. Loop nest: `_gemm` with A[i, k] = a[p, i, k]
    and B[j, k] = b[p, k, j]: for C-contiguous operands A has row stride K and k stride 1, B row stride 1
    and k stride N (b is transposed while it is packed, or read in place). Any strides (module note).
    """
    return _matmul(a, 1, 2, b, 2, 1, kernel)


_ACTS = {"gelu_tanh": ACT_GELU_TANH, "gelu_erf": ACT_GELU_ERF, "relu": ACT_RELU}


def matmul_nn_act_grad(a, b, act, x):
    """out[p] = (a[p] @ b[p]) · f'(x[p]) for a (Ba, M, K), b (Bb, K, N), x of the output's shape (B, M, N) and
    f = GELU (`act` "gelu_tanh" or "gelu_erf", x its input) or ReLU ("relu", x its output, f' = [x > 0]): an
    activation's backward fused into the product dy W that makes its upstream gradient (a Linear after the
    activation; autograd/engine.py finds the pair). The factor is applied to each tile as `_gemm_outer` writes it
    (outer.py, `_times_gelu_tanh_grad` and its kin), so the product's output is never read again. Returns None
    where the product would not take `_gemm_outer` (it needs C-contiguous, writeable operands and x of one dtype,
    a product above SMALL_WORK, a vector kernel): the caller then runs the two steps."""
    if (a.ndim != 3 or b.ndim != 3 or KERNEL == "portable" or not (a.dtype == b.dtype == x.dtype)
            or not (a.flags.c_contiguous and b.flags.c_contiguous and x.flags.c_contiguous)
            or not (a.flags.writeable and b.flags.writeable)):
        return None
    Ba, M, K = a.shape
    Bb, _, N = b.shape
    if M * N * K <= SMALL_WORK or x.size != max(Ba, Bb) * M * N:
        return None
    # matmul_nn's strides (A[i, k] = a[p, i, k], B[j, k] = b[p, k, j]), as `_matmul` finds them
    return gemm_outer(a.reshape(-1), Ba, 0 if Ba == 1 else M * K, K if M > 1 else 1, 1, b.reshape(-1), Bb,
                      0 if Bb == 1 else K * N, 1, N if K > 1 else 1, M, N, K, KERNEL == "avx512", num_threads(),
                      _NO_BIAS[a.dtype], _NO_SUMS[a.dtype], _NO_OFFS, _NO_OFFS, x.reshape(-1), _ACTS[act])


def matmul_nt(a, b, kernel=None, bias=None):
    """out[p] = a[p] @ b[p].T (+ bias): a (Ba, M, K), b (Bb, N, K), bias None or C-contiguous (N,) of
    their dtype -> (max(Ba, Bb), M, N).

    Math: out[p, i, j] = sum_k a[p, i, k] * b[p, j, k] (+ bias[j]: a Linear's forward, x W^T + b).
    Loop nest: `_gemm` with A[i, k] = a[p, i, k], B[j, k] = b[p, j, k]: for C-contiguous operands both
    are contiguous along k (row stride K, k stride 1). Any strides (module note).
    """
    return _matmul(a, 1, 2, b, 1, 2, kernel, bias)


def matmul_tn(a, b, kernel=None, a_sums=False):
    """out[p] = a[p].T @ b[p]: a (Ba, K, M), b (Bb, K, N) -> (max(Ba, Bb), M, N); with a_sums, also
    s[p] = a[p].sum(axis=0) (max(Ba, Bb), M): a Linear's dW = dy^T x and db = sum of dy in one pass over dy.

    Math: out[p, i, j] = sum_k a[p, k, i] * b[p, k, j]. Loop nest: `_gemm` with A[i, k] = a[p, k, i]
    and B[j, k] = b[p, k, j]: for C-contiguous operands both have row stride 1 (A k stride M, B k stride
    N): A is copied one micro-panel at a time, B read in place. Any strides (module note).
    """
    return _matmul(a, 2, 1, b, 2, 1, kernel, None, a_sums)
