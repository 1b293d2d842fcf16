"""The outer-product matmul kernel `_gemm_outer` (CPUs with AVX-512 or AVX2 + FMA): B packed once (or read in
place), the task grid over (batch, row block, column block, k block) -- the k-split of a long reduction into
a small output included -- and the bias and row-sum fusions of a Linear. The loop nest: `_gemm_outer`'s
docstring; one task of it: `_gemm_task`, which the parallel loop calls through its address (kernels/cpu/indirect.py:
compiled once, not again into each of the loop's wrappers); the blocking sizes and the micro-kernel shapes:
policy.py. Callers use `gemm_outer`."""
import numpy as np
from numba import njit, prange

from ..policy import (MICRO_ROWS_W32, MICRO_ROWS_W64, OUTER_KC, OUTER_MAX_SPLIT_K, OUTER_MIN_PANELS,
                      OUTER_MIN_PANELS_COPIED_A, OUTER_NC_BYTES, OUTER_SPLIT_K, OUTER_SPLIT_K_IN_PLACE, TAIL_ROWS_W32,
                      TAIL_ROWS_W64)
from ..activations import gelu_erf_grad, gelu_tanh_grad
from ..indirect import ITEM_INDEX, call_compiled, check_compiled, item_function, values_fingerprint
from ..vexp import wide_vectors
from .pack import _pack_b_panel
from .panel import _panel


@njit(cache=True)
def _add_bias(of, cbase, N, mr, bias, j0, j1):
    """of[cbase + r*N + j] += bias[j] for r < mr, j0 <= j < j1: a Linear's bias on the tile rows just written."""
    bs = bias[j0:j1]
    for r in range(mr):
        orow = of[cbase + r * N + j0:cbase + r * N + j1]
        for j in range(j1 - j0):  # slices: a run of non-negative indices, which vectorises
            orow[j] += bs[j]


# The activation factors `_gemm_outer` can apply to its output (gemm_outer's `act`):
#     fn(of, cbase, N, mr, act_x, j0, j1): of[c] *= f'(act_x[c]) for c = cbase + r*N + j, r < mr, j0 <= j < j1
# (act_x: what f' is computed from, GELU's input or ReLU's output). That is an activation's backward,
# dh = (dy W) · f'(h), on the tile rows just written, while they are still in L1 (a separate pass reads dy W and
# writes dh through memory). The factor is the backward kernels' own formula (activations.py), so the result is
# theirs. Each is a work-item function of its own, called through its address (indirect.py), so that it compiles
# once, when a product first asks for it, not into every compiled version of `_gemm_task` (into each, both GELU
# forms cost about 1 s of a cold start).
ACT_NONE, ACT_GELU_TANH, ACT_GELU_ERF, ACT_RELU = 0, 1, 2, 3
_NO_EPILOGUE = (0, 0)   # the handle passed with no factor (never called)


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _times_gelu_tanh_grad(of, cbase, N, mr, act_x, j0, j1):
    """The rows' factor for GELU's tanh form (see the note above)."""
    wide_vectors()  # 512-bit vectors (vexp.py)
    for r in range(mr):
        orow = of[cbase + r * N + j0:cbase + r * N + j1]
        xrow = act_x[cbase + r * N + j0:cbase + r * N + j1]
        for j in range(j1 - j0):
            orow[j] = orow[j] * gelu_tanh_grad(xrow[j])


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _times_gelu_erf_grad(of, cbase, N, mr, act_x, j0, j1):
    """The rows' factor for GELU's exact form (see the note above)."""
    wide_vectors()
    for r in range(mr):
        orow = of[cbase + r * N + j0:cbase + r * N + j1]
        xrow = act_x[cbase + r * N + j0:cbase + r * N + j1]
        for j in range(j1 - j0):
            orow[j] = orow[j] * gelu_erf_grad(xrow[j])


@njit(cache=True, error_model="numpy")
def _times_relu_grad(of, cbase, N, mr, act_x, j0, j1):
    """The rows' factor for ReLU, from its output y: 1 where y > 0, else 0 (multiplied, as the backward kernel
    does, so that a NaN or inf gradient stays NaN)."""
    zero, one = act_x.dtype.type(0), act_x.dtype.type(1)
    for r in range(mr):
        orow = of[cbase + r * N + j0:cbase + r * N + j1]
        yrow = act_x[cbase + r * N + j0:cbase + r * N + j1]
        for j in range(j1 - j0):
            orow[j] = orow[j] * (one if yrow[j] > zero else zero)


_ACT_FUNCTIONS = {ACT_GELU_TANH: _times_gelu_tanh_grad, ACT_GELU_ERF: _times_gelu_erf_grad,
                  ACT_RELU: _times_relu_grad}


@njit(cache=True)
def _a_sums(af, off, a_ks, n, kc, dst, d0):
    """dst[d0 + i] += sum_{k < kc} A[i, k] for i < n, A[i, k] = af[off + i + k*a_ks] (rows of A contiguous:
    dy^T in dy^T @ x). Loop nest: for k: dst[d0:d0+n] += af[row k] (vectorised along i)."""
    acc = dst[d0:d0 + n]
    for k in range(kc):
        row = af[off + k * a_ks:off + k * a_ks + n]
        for i in range(n):
            acc[i] += row[i]


@njit(cache=True)
def _pack_b(bf, boff, b_rs, b_ks, N, K, NR, q0, q1, pack_b, dst, d0, Nb, wide):
    """Micro-panels q0 <= q < q1 of B of one batch element (at bf[boff]) into dst[d0:], Nb columns per k-slice, for
    `_gemm_outer`: each of them when pack_b; else (B read in place) only a last partial panel among them, when N is
    not a multiple of NR."""
    if pack_b:
        for q in range(q0, q1):
            _pack_b_panel(bf, boff, b_rs, b_ks, N, K, OUTER_KC, NR, q, dst, d0, Nb, q, wide)
    elif q1 * NR > N:   # int64: a literal 0 compiles a second copy of _pack_b_panel (~1.3 s)
        _pack_b_panel(bf, boff, b_rs, b_ks, N, K, OUTER_KC, NR, q1 - 1, dst, d0, NR, np.int64(0), wide)


@njit(cache=True, parallel=True)
def _gemm_outer(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, nth, bias, sums, a_offs, b_offs,
                act_x, task, pack, act):
    """out[p][i, j] = sum_k A[p][i, k] * B[p][j, k] (+ bias[j]), strides as for `_gemm`, with the
    outer-product micro-kernels of microkernel.py: wide=True the 12 x 2-vector AVX-512 shape, False the
    6 x 2-vector AVX2 one (NR = 2 * vector bytes / itemsize columns); a task's last rows take their 4- (2-) row
    shapes when at most that many remain, else the full shape with the rows past the end masked. `nth`: the
    thread count the task grid is sized for. `bias`: N values added to every row (a Linear's b) or an empty
    array for none; each tile's rows get it right after their last k-slice, while they are still in L1 (a
    separate `y += b` pass costs a read and a write of all of C). `sums`: zeros (nth, B*M), or an empty array
    for none: then also sums[kb, p*M + i] += sum_k A[p][i, k] over k block kb's share of k,
    then added into row 0 (rows 1.. left zero): a Linear's bias gradient db = sum_k dy[k, :] alongside
    dW = dy^T x, read while the k-slice of dy is in cache from the micro-panel copies instead of in a separate
    pass over dy. Only for A with contiguous rows (a_rs == 1: dy^T). `a_offs`, `b_offs`: int64 offsets of each
    batch element's matrix in af / bf (Ba / Bb of them: batch axes that no single stride spans, such as (B, H)
    of q = x.view(B, T, H, D).transpose(1, 2)), or empty arrays: then p * sa and p * sb. `act_x`: empty, or
    out[p][i, j] *= f'(act_x[(p M + i) N + j]) for an activation f: the backward of f fused into the product
    that computes its upstream gradient, dh = (dy W) · f'(h), on each tile right after its last k-slice (with
    a k-split, once the partials are summed). Not with a bias or sums. `task`, `pack`, `act`: the handles
    (indirect.item_function) of `_gemm_task`, the body of the parallel loop, `_pack_b`, and the factor's
    function (see ACT_NONE), compiled for these operands: call them through `gemm_outer`, which finds them.

    Loop nest:
        B contiguous along k (x @ W^T), or along j with rows >= 4 KiB apart (then every k step of an
            in-place panel would touch a new page): for (pb, NR-column micro-panel), on this thread:
            pack Bp[pb][k-slice][panel][k, 0:NR]; otherwise (dy @ W, dy^T @ x): in place
            (a batch of >= nth products, or one B of at most OUTER_NC_BYTES read by several tasks: each
            task packs its own products' B, or its own columns of it, instead; see below)
        prange over tasks (p, row block, column block, k block):   # disjoint outputs: no races
            C = out if k block 0 else partial[k block - 1]
            for k0 in range(k_start, k_end, KC):              # the task's share of the reduction
                if sums: sums[k block, p, this column block's share of i0:i1] += sum over the slice of A
                for jc in range(j0, j1, NC):                  # B block kc x NC (<= 1 MiB) stays in L2
                    for i in range(i0, i1, MR):               # A micro-panel: in place (unrolled) or copied
                        for j in range(jc, jc + NC, NR):      # B micro-panels streamed from L2 (in place
                                                              # under a copied A: prefetched rows ahead)
                            C[p, i:i+MR, j:j+NR] (=, first slice | +=) ukernel(A panel, B panel)
                        if last k-slice of k block 0: C[p, i:i+MR, jc:jc+NC] += bias   (or *= f'(act_x))
        if k blocks > 1: out += sum of the partials (on this thread)
    About one task per thread (the parallel loop splits its range statically); with at least as many products
    as threads, a task is a run of whole products (p over B // nth of them, no row or column split), which
    packs each product's B into a buffer of its own just before its tiles read it. A long reduction into a
    small output (K >= OUTER_SPLIT_K slices and >= 2 max(M, N); with B read in place, also K >=
    OUTER_SPLIT_K_IN_PLACE and >= max(M, N): a weight gradient dy^T x, K = tokens) is split along k into at
    most OUTER_MAX_SPLIT_K blocks (each task then reads its share of both operands, the tokens its thread
    wrote in the step's previous products, and no A micro-panel is copied twice); the rest of the thread
    count splits rows first (each task then streams only its own rows of A), and columns when there are too
    few rows. A row-major A is never packed: the micro-kernel broadcasts A[r, k] from a[a_off + r*a_rs + k]
    directly, so the transposing copy that packing it would need (M*K scalar stores per product) never
    happens; A contiguous along rows (dy^T) is copied one micro-panel (MR values per k, fixed-width vector
    moves) at a time, since read in place its k stride puts every k on a new cache line and a power-of-two
    stride maps them to a few L1 sets. Edge tiles (rows past M, columns past N) are computed in full and
    stored under the micro-kernel's masks.
    """
    B = max(Ba, Bb)
    out = np.empty((B, M, N), dtype=af.dtype)
    has_bias = bias.size > 0
    has_sums = sums.size > 0
    has_act = act_x.size > 0
    if B == 0 or M == 0 or N == 0:
        return out
    if has_act:
        check_compiled(act, (out.reshape(B * M * N), np.int64(0), N, B * M, act_x, np.int64(0), N))
    if K == 0:                                # plain loops: an array expression here would be a parfor
        o2 = out.reshape(B * M, N)
        z = out.dtype.type(0)
        for i in range(B * M):
            for j in range(N):
                o2[i, j] = bias[j] if has_bias else z
        if has_act:                           # (0 · f'(x): NaN where f'(x) is, as the unfused backward)
            call_compiled(act, (out.reshape(B * M * N), np.int64(0), N, B * M, act_x, np.int64(0), N))
        return out
    MR = MICRO_ROWS_W64 if wide else MICRO_ROWS_W32
    NR = 2 * (64 if wide else 32) // af.itemsize
    Np = (N + NR - 1) // NR * NR
    npan = Np // NR

    # ---- pack all of B once, shared read-only by every task
    # B contiguous along j (B[j, k] = b[k, j]: dy @ W, dy^T @ x) is read in place, its full micro-panels
    # at least; B contiguous along k (x @ W^T), or with rows a page apart, is packed into Bp here, once.
    pack_b = b_rs != 1 or b_ks * af.itemsize >= 4096   # in place only while rows share 4 KiB pages (TLB)
    Nb = Np if pack_b else NR                 # columns per k-slice in Bp
    # a batch of at least one product per thread (attention's q @ k^T, att @ v): each task takes a run of
    # whole products and packs each one's B itself, into a buffer of its own (in parallel, and still in
    # cache when its tiles read it). One B to pack for several tasks (a Linear's W in x @ W^T), up to
    # OUTER_NC_BYTES: each task packs the panels of its own columns, and reads them from its own core's cache;
    # packed here, once, the other threads read it from this core's (x @ W^T at 192 x 128 x 128: 51 against 25
    # us with B in place, 2 threads). Otherwise every batch's B is packed here, once, for all tasks.
    need = max(1, (nth + B - 1) // B)
    own_b = Bb > 1 and need == 1 or Bb == 1 and pack_b and nth > 1 and Nb * K * af.itemsize <= OUTER_NC_BYTES
    Bp = np.empty(0 if own_b else Bb * Nb * K, dtype=af.dtype)
    if N % NR:          # a partial last panel: its unwritten columns stay zero (computed, never stored; a plain
        z = af.dtype.type(0)            # loop: an array expression would compile a parfor)
        for i in range(Bp.size):
            Bp[i] = z
    if not own_b:                             # on this thread: one parallel region per product, not two (each
        for pb in range(Bb):                  # waits for its slowest thread: on a busy machine, a scheduler
            call_compiled(pack, (bf, b_offs[pb] if b_offs.size else pb * sb, b_rs, b_ks, N, K, NR, np.int64(0), npan,
                                 pack_b, Bp, pb * Nb * K, Nb, wide))  # slice), and one prange fewer to compile cold

    # ---- task grid: (batch, row block, column block, k block), about one task per thread (the parallel
    # loop splits its range statically). A long reduction over a small output (a weight gradient dy^T x:
    # K = tokens, see the docstring) is split along k into a few blocks: each task then reads only its share
    # of both operands (a row split reads all of x in every task), into its own partial C, and the
    # partials are added afterwards. What the k blocks leave of the thread count splits rows first (each
    # task then streams only its own A), and columns when there are too few rows.
    nrp = (M + MR - 1) // MR                  # row panels
    nrb = 1
    ncb = 1
    nkb = 1
    # (B packed: k blocks of whole packed k-slices; B in place: of multiples of 16, and from fewer k, policy.py)
    kq = OUTER_KC if pack_b else 16
    if need > 1 and (K >= OUTER_SPLIT_K * OUTER_KC and K >= 2 * max(M, N)
                     or not pack_b and K >= OUTER_SPLIT_K_IN_PLACE and K >= max(M, N)):
        nkb = min(need, OUTER_MAX_SPLIT_K)
    rest = (need + nkb - 1) // nkb            # tasks per k block
    # A copied (dy^T) and B at most twice as wide as A is tall: rows from fewer panels a task. A column split
    # copies all of A in every task, a row split reads all of B in every task, and an element of A copied
    # costs about what two of B read do (dy^T x at 768 tokens, 128 rows, row split against column split:
    # 0.74-0.87x of the time for 64 to 160 columns, 0.95-0.99x for 256, 0.99-1.11x for 384 and 512)
    minp = OUTER_MIN_PANELS_COPIED_A if a_rs == 1 and N <= 2 * M else OUTER_MIN_PANELS
    if rest > 1:
        if nrp >= rest * minp:
            nrb = rest
        else:
            nrb = max(1, nrp // minp)
            ncb = min(npan, (rest + nrb - 1) // nrb)
    rpt = (nrp + nrb - 1) // nrb              # row panels per task
    nrb = (nrp + rpt - 1) // rpt
    cpt = (npan + ncb - 1) // ncb             # column panels per task
    ncb = (npan + cpt - 1) // cpt
    kpt = ((K + nkb - 1) // nkb + kq - 1) // kq * kq   # k per task
    nkb = (K + kpt - 1) // kpt
    size = B * M * N
    partial = np.empty((nkb - 1) * size, dtype=af.dtype)   # k blocks 1.. write here, block 0 into out
    bpt = (B + nth - 1) // nth if need == 1 else 1          # products per task (a run of the batch)
    ngr = (B + bpt - 1) // bpt                              # batch runs

    grid = (nkb, kpt, nrb, ncb, rpt, cpt, bpt, own_b, pack_b, MR, NR, Np, Nb)   # (the tasks read Bp as laid out here)
    check_compiled(task, (np.int64(0), af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, bias, sums,
                          a_offs, b_offs, act_x, act, out, partial, Bp, grid))
    for tk in prange(ngr * nrb * ncb * nkb):   # task: _gemm_task's address (indirect.py says why)
        call_compiled(task, (np.int64(tk), af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, bias, sums,
                             a_offs, b_offs, act_x, act, out, partial, Bp, grid))
    if nkb > 1:       # out += the other k blocks' partials, on this thread: (nkb - 1) M N adds (at most 3
        of = out.reshape(size)     # weights' worth) cost about what a second parallel region's start would,
        for kb in range(nkb - 1):  # and a busy machine can stall every region for a scheduler slice
            src = partial[kb * size:(kb + 1) * size]
            for i in range(size):
                of[i] += src[i]
        if has_sums:               # the row sums of every k block into row 0 (the others left zero, so the
            s0 = sums[0]           # sum over rows is unchanged): the caller reads row 0 (no 2 us NumPy reduction)
            for kb in range(1, nkb):
                sk = sums[kb]
                for i in range(B * M):
                    s0[i] += sk[i]
                    sk[i] = 0
        if has_act:                # the tasks left the factor to the sum (a split product's tiles are partial)
            call_compiled(act, (of, np.int64(0), N, B * M, act_x, np.int64(0), N))
    return out


@njit(cache=True)
def _gemm_task(tk, af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, bias, sums, a_offs, b_offs, act_x,
               act, out, partial, Bp, grid):
    """Task tk of `_gemm_outer`'s parallel loop (its docstring: the loop nest): k block tk % nkb of (batch run,
    row block, column block) tk // nkb. `grid`: the task grid and the micro-panel sizes `_gemm_outer` chose (B's
    packed layout among them); out, partial, Bp: its output, the k blocks' partial outputs and the packed B."""
    nkb, kpt, nrb, ncb, rpt, cpt, bpt, own_b, pack_b, MR, NR, Np, Nb = grid
    B = out.shape[0]
    size = out.size
    MT = TAIL_ROWS_W64 if wide else TAIL_ROWS_W32
    kind = 0 if wide else 1
    NC = (OUTER_NC_BYTES // (OUTER_KC * af.itemsize)) // NR * NR
    has_bias = bias.size > 0
    has_sums = sums.size > 0
    has_act = act_x.size > 0
    kb = tk % nkb
    t = tk // nkb
    of = out.reshape(size) if kb == 0 else partial[(kb - 1) * size:kb * size]
    kstart = kb * kpt
    kend = min(K, kstart + kpt)
    g = t // (nrb * ncb)
    i0 = (t // ncb) % nrb * rpt * MR
    i1 = min(M, i0 + rpt * MR)
    j0 = t % ncb * cpt * NR
    j1 = min(Np, j0 + cpt * NR)
    # the fused row sums of rows i0..i1 are shared among the column blocks of this row block: one
    # block summing them all kept the other threads waiting (~100k adds for a 128-row weight at K 768)
    ssh = (i1 - i0 + ncb - 1) // ncb
    s0 = min(i1 - i0, t % ncb * ssh)
    s1 = min(i1 - i0, s0 + ssh)
    ap = np.empty(MR * min(OUTER_KC, K), dtype=af.dtype)   # a copied A micro-panel
    Bt = np.empty(Nb * K if own_b and (pack_b or N % NR) else 0, dtype=af.dtype)   # this task's B (own_b)
    if N % NR:                                # (zero in a partial panel's unwritten columns, as in Bp)
        z = af.dtype.type(0)
        for i in range(Bt.size):
            Bt[i] = z
    Bsrc = Bt if own_b else Bp
    for p in range(g * bpt, min(B, (g + 1) * bpt)):     # (inline: a call per product cost ~0.2 us)
        pa = (a_offs[p] if a_offs.size else p * sa) if Ba > 1 else 0
        pbf = (b_offs[p] if b_offs.size else p * sb) if Bb > 1 else 0
        if own_b:
            pbb = 0
            if Bb > 1 or p == g * bpt:        # this task's columns of B (all of them in a batch run)
                _pack_b(bf, pbf, b_rs, b_ks, N, K, NR, j0 // NR, j1 // NR, pack_b, Bsrc, np.int64(0), Nb, wide)
        else:
            pbb = (p if Bb > 1 else 0) * Nb * K
        for k0 in range(kstart, kend, OUTER_KC):
            kc = min(OUTER_KC, kend - k0)
            more = k0 > kstart
            if has_sums and s1 > s0:          # this task's share of the rows' sums (each row: one task)
                _a_sums(af, pa + i0 + s0 + k0 * a_ks, a_ks, s1 - s0, kc, sums[kb], p * M + i0 + s0)
            for jc in range(j0, j1, NC):
                jend = min(jc + NC, j1)
                for r in range(i0, i1, MR):
                    mr = min(MR, i1 - r)
                    aoff = pa + r * a_rs + k0 * a_ks
                    cbase = (p * M + r) * N
                    if mr == MR:
                        _panel(kind, MR, mr, kc, more, af, aoff, a_rs, a_ks, ap, Bsrc, pbb + k0 * Nb, Nb,
                               bf, pbf + k0 * b_ks, b_ks, pack_b, NR, N, of, cbase, jc, jend)
                    else:
                        # the last rows: one panel, of MT rows or, for more, of MR rows with those past mr masked;
                        # two MT-row panels streamed B twice (dy^T x with 128 rows: 132 GF/s a thread, 155 now)
                        tail = mr <= MT
                        _panel(kind + 2 if tail else kind, MT if tail else MR, mr, kc, more, af, aoff, a_rs, a_ks,
                               ap, Bsrc, pbb + k0 * Nb, Nb, bf, pbf + k0 * b_ks, b_ks, pack_b, NR, N, of, cbase, jc,
                               jend)
                    if has_bias and kb == 0 and k0 + kc == kend:
                        _add_bias(of, cbase, N, mr, bias, jc, min(jend, N))
                    if has_act and nkb == 1 and k0 + kc == kend:
                        call_compiled(act, (out.reshape(size), cbase, N, mr, act_x, jc, min(jend, N)))


_TASK_GRID = (0, 0, 0, 0, 0, 0, 0, False, False, 0, 0, 0, 0)   # stands for `grid` in `_gemm_task`'s signature
_STAND_INS = {}   # dtype -> arrays standing for out (3-D) and for partial, Bp and act_x (1-D) in the item signatures
_HANDLES = {}     # type fingerprint of gemm_outer's arguments -> (task, pack) handles
_EPILOGUES = {}   # (act, dtype) -> the handle of its factor function


def gemm_outer(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, nth, bias, sums, a_offs, b_offs,
               act_x=None, act=ACT_NONE):
    """`_gemm_outer` (same arguments; act_x None: none) with the addresses of `_gemm_task` and `_pack_b` compiled
    for these operands (indirect.py: neither is compiled again into the kernel). The arrays the kernel makes
    itself (out, partial, Bp) are typed by stand-ins of af's dtype; call_compiled checks that the kernel passes
    exactly those types."""
    if af.strides[0] != af.itemsize or bf.strides[0] != bf.itemsize:  # (the micro-kernels step raw pointers)
        raise ValueError(f"gemm_outer: af and bf must be 1-D views with unit stride, got strides {af.strides} and "
                         f"{bf.strides} for itemsize {af.itemsize}")
    if act != ACT_NONE and (act not in _ACT_FUNCTIONS or act_x is None or act_x.dtype != af.dtype or bias.size
                            or sums.size or act_x.size != max(Ba, Bb) * M * N or act_x.ndim != 1
                            or act_x.strides[0] != act_x.itemsize or act_x.size == 0):
        raise ValueError(f"gemm_outer: the activation factor {act} needs act_x flat, unit stride, of the output's "
                         f"{max(Ba, Bb) * M * N} (> 0) elements and dtype {af.dtype}, and no bias or sums")
    args = (af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, nth, bias, sums, a_offs, b_offs)
    key = values_fingerprint(args)
    handles = _HANDLES.get(key)
    if handles is None:
        handles = _handles(*args)
        if key is not None:
            _HANDLES[key] = handles
    if act == ACT_NONE:
        return _gemm_outer(*args, no_act(af.dtype), *handles, _NO_EPILOGUE)
    return _gemm_outer(*args, act_x, *handles, _act_handle(act, af.dtype))


def _act_handle(act, dtype):
    """The handle of the factor function `act` for a product of `dtype` (compiled when first asked for)."""
    key = (act, dtype)
    handle = _EPILOGUES.get(key)
    if handle is None:
        flat = _stand_ins(dtype)[1]
        handle = _EPILOGUES[key] = item_function(_ACT_FUNCTIONS[act], (flat, ITEM_INDEX, ITEM_INDEX, ITEM_INDEX, flat,
                                                                       ITEM_INDEX, ITEM_INDEX))
    return handle


def no_act(dtype):
    """The `act_x` of a product with no activation factor: an empty array of its dtype (the flat stand-in, the
    type `_gemm_task` is compiled for)."""
    return _stand_ins(dtype)[1]


def _stand_ins(dtype):
    stand_in = _STAND_INS.get(dtype)
    if stand_in is None:
        stand_in = _STAND_INS[dtype] = (np.empty((0, 0, 0), dtype), np.empty(0, dtype))
    return stand_in


def _handles(af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, nth, bias, sums, a_offs, b_offs):
    out, flat = _stand_ins(af.dtype)
    task = item_function(_gemm_task, (ITEM_INDEX, af, Ba, sa, a_rs, a_ks, bf, Bb, sb, b_rs, b_ks, M, N, K, wide, bias,
                                      sums, a_offs, b_offs, flat, _NO_EPILOGUE, out, flat, flat, _TASK_GRID))
    # _pack_b(bf, boff, b_rs, b_ks, N, K, NR, q0, q1, pack_b, dst, d0, Nb, wide) as the kernel calls it
    pack = item_function(_pack_b, (bf, ITEM_INDEX, b_rs, b_ks, N, K, ITEM_INDEX, ITEM_INDEX, ITEM_INDEX, False, flat,
                                   ITEM_INDEX, ITEM_INDEX, wide))
    return task, pack
