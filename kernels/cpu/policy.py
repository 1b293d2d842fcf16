"""Every tuned threshold and blocking size of the CPU kernels and of the CPU backend, in one place.

Each name below says its unit and the measurement that set it (a commit, or a section of
docs/benchmarks.md), or "not recorded" when the history has no figure for it. Changing a value changes
speed, never results: every path computes the same thing (tests hold each path to NumPy). The numbers are
read when a module imports them; the Numba kernels freeze them as constants when they compile, so a
value changed after a kernel compiled (or cached) takes effect only after Numba recompiles it.

Who reads what:
    kernels/cpu/alignment.py             ARRAY_ALIGNMENT
    tinyattn/backend.py (CPUBackend)     SERIAL_WORK, PARALLEL_SUM, PARALLEL_ROWS, PARALLEL_ADAM, ROWS_MAX_NT,
                                         ROWS_MAX_NN
    tinyattn/functional/loss.py          FUSED_BACKWARD
    kernels/cpu/matmul*                  SMALL_WORK, SMALL_BATCH_WORK, SMALL_ALWAYS, the portable and the
                                         outer-product blocking, the shapes
    kernels/cpu/microkernel.py           the micro-kernel shapes (MICRO_ROWS_*, TAIL_ROWS_*), B_PREFETCH_ROWS
    kernels/cpu/attention/               ROWS_MAX_L (attention keeps its own copy today: see below); its tile
                                         sizes BLOCK_Q, BLOCK_K stay in attention/tiles.py (attention-owned)
    tinyattn/nn/transformer.py           DECODE_MAX_ROWS (the layer keeps its own copy today: see below)
This module imports nothing: kernels/ may not import tinyattn, and tinyattn may import this.
"""

# ---- memory --------------------------------------------------------------------------------------------------

# Bytes to which the arrays that compiled code allocates (np.empty and its kin inside a kernel: every product's
# output, packed panels, a kernel's locals) are aligned: one cache line, so that a 64-byte (AVX-512) vector load
# or store never spans two lines. Numba's own is 32 (kernels/cpu/alignment.py). Measured (docs/benchmarks.md,
# eleventh session): the gpt training step 0.92-1.00x of its time with 32, median 0.96x (14 alternated pairs,
# either order first); nanoGPT's iteration 0.91-1.01x, median 0.97x (6 pairs).
ARRAY_ALIGNMENT = 64

# ---- the backend: which path a call takes -----------------------------------------------------------------

# Multiply-adds (or the kernel's comparable unit of work) below which a kernel runs on one thread: waking
# the thread pool costs more than it saves, and a busy machine can stall a parallel region for a whole time
# slice. Set with the first CPU kernels (commit 8a71b85); the measurement is not recorded.
SERIAL_WORK = 1 << 18

# Elements from which a sum of two arrays of one shape (residual connections, gradient sums; CPUBackend.add
# and add_) runs on every thread (kernels/cpu/elementwise.py). Measured (docs/benchmarks.md, "Goal 1, third
# round"; commits 2d8764b, ad4c2af): 1 MB 150 -> 140 us with cold inputs, and the layer norm right after it
# 110 -> 85 us; below it NumPy's serial loop finishes about as soon. 2^17 rather than lower so that
# examples/reverse.py (65,536-element activations) did not pay the kernel's ~1 s compile on a cold start.
# Lowered to 3 x 2^15 = 98,304 (the nanoGPT CPU recipe's 768 x 128 activations; still above reverse.py's)
# once the kernel's loop vectorised (issue 22 goal 4; 2 threads, wall, best of 20 in 5 interleaved rounds, load
# 4.2, float32, NumPy -> kernel, us): a + b 65,536 elements 12.7 -> 5.7 (torch 5.2), 98,304 19.2 -> 6.5 (torch
# 6.8), 262,144 126 -> 19.5 (torch 17.4); a += b 98,304 7.9 -> 5.7 (torch 6.0); at 32,768 all tie (~3.4).
# Lowered to 2^16 (twelfth session): reverse.py's 65,536-element residual adds and gradient sums on both threads
# make its training step 0.98x of the time (bench_train.py's reverse model, 12 alternated rounds in one
# process), for about 0.3 s more of its cold start (the kernel's compile: 10.2-10.9 against 10.1-10.4 s).
PARALLEL_SUM = 1 << 16

# Elements of the input from which the row kernels run on every thread rather than one: layer norm's forward and
# backward (CPUBackend.layer_norm*, kernels/cpu/layer_norm.py; in place of SERIAL_WORK, which kept the
# nanoGPT recipe's 768 x 128 on one thread). Measured (issue 22 goal 4, 2-core AVX-512 guest, load 4.3-4.8,
# best of 20 in 7 interleaved rounds, float32, wall; 1 thread -> 2 threads, us): forward 64 x 128 6.1 -> 6.2,
# 128 x 128 8.0 -> 7.2, 256 x 128 12.0 -> 9.2, 768 x 128 30.5 -> 17.4, 32 x 1024 9.7 -> 8.0; backward
# 64 x 128 9.3 -> 11.9, 128 x 128 12.7 -> 13.8, 256 x 128 18.3 -> 16.6, 768 x 128 41.3 -> 30.0, 32 x 1024
# 18.4 -> 19.5. The backward breaks even at about 2^15, the forward at about 2^14: one threshold, 2^15.
# The softmax and log_softmax kernels (forward and backward, kernels/cpu/softmax.py) follow the same rule,
# measured on a quiet machine (issue 22, load 0.3, best of 200, 1 thread -> 2 threads, us): softmax forward 256 x
# 64 9.8 -> 6.4, 512 x 64 18.2 -> 10.5, 1024 x 64 35.3 -> 19.2; its backward 256 x 64 3.2 -> 3.2, 512 x 64 5.6 ->
# 4.4; log_softmax forward 512 x 64 19.8 -> 11.3, backward 10.3 -> 6.7; 128 x 64 backward 2.2 -> 2.6 (loses).
PARALLEL_ROWS = 1 << 15

# Elements from which Adam updates a parameter on every thread (kernels/cpu/optim.py adam_update_parallel).
# Chosen from the sizes (commit ad4c2af, docs/benchmarks.md "Goal 1, third round"): the gpt benchmark's big
# weights have 49k-65k elements, examples/reverse.py's largest 16k (its cold start then compiles no
# parallel Adam). The speed-up itself is not recorded.
PARALLEL_ADAM = 1 << 15

# Elements of the logits from which cross_entropy runs its fused kernels (kernels/cpu/softmax.py
# cross_entropy_forward: the row max, log-sum and loss in one pass, writing no log-probabilities;
# cross_entropy_backward: p recomputed from the logits, one pass) instead of log_softmax's kernel and the NumPy
# backward formula (their twin; tests lower the threshold to 1 or raise it to reach each). Issue 22 (1 thread,
# float32, load ~4): 768 x 95 backward 168 -> 58 us, forward 109 -> 74 us; 2048 x 96 backward 319 -> 91 us. 2^15
# and not lower: examples/reverse.py's logits (1024 x 16) then compile nothing new on a cold start (the two
# kernels cost 2.4-2.7 s of compile CPU time against log_softmax_forward's 1.3 s). Was 2^17, backward only
# (commit 9fdf88b).
FUSED_BACKWARD = 1 << 15

# ---- matmul: few-row products (`_gemm_rows`, chosen by the backend) -----------------------------------------

# Rows M of a product at or below which it takes the serial row kernel: x @ W^T (nt) up to ROWS_MAX_NT,
# dy @ W and a^T @ b (nn, tn: the blocked kernels read B in place there) up to ROWS_MAX_NN. Measured on 1
# thread, float32, against the blocked kernels (commit 259c8e1, docs/benchmarks.md "Generation ... a
# few-row matmul path"): x @ W^T (1, 128) x (128, 384) 44.9 -> 5.5 us, 8 rows 47.0 -> 21.4, 16 rows 53 -> 38,
# 32 rows 67 -> 126 (blocked better); nn/tn: the row kernel wins at 1 row (5.4 vs 9.2 us), ties at 2, loses
# from 4.
ROWS_MAX_NT = 16
ROWS_MAX_NN = 2

# ---- matmul: tiny products ---------------------------------------------------------------------------------

# Multiply-adds per batch element (M*N*K) at or below which a product takes the plain i-k-j loop
# (`_gemm_small`). Set with the first CPU kernels (commit 8a71b85); the measurement is not recorded.
SMALL_WORK = 1 << 15
# ... but a batch of them only while the whole batch is at most SMALL_BATCH_WORK multiply-adds, or each
# product at most SMALL_ALWAYS: past that the outer-product kernel is faster per product. Measured (issue 22,
# goal 3; 1 thread, best of 20, 2-core AVX-512 guest under load 4-7), `_gemm_small` -> `_gemm_outer`, float32:
# 128 x (32x32 . 32x32) 452 -> 95 us (numpy 59), 128 x (12x32 . 32x64) 310 -> 74 (numpy 47), 128 x (12x12 .
# 12x12) 76 -> 64; float64 128 x (8x16 . 16x16) 76 -> 37, 32 x 16^3 35 -> 14. Still small: 128 x (8x8 . 8x16)
# float32 40 (outer 54), and a single product up to SMALL_WORK (1 x 24^3: 5.5 us either; 1 x 16^3 3.5 vs 5.0).
# Open: 128 x 16^3 float32 is faster on the outer kernel on 1 thread (90 vs 128 us) but slower on 2 (79 vs 67;
# q @ k^T of B32 H4 T16 D16 views: 0.29 vs 0.25 ms); both are ~10x numpy's time there (per-product overhead).
SMALL_BATCH_WORK = 1 << 15
SMALL_ALWAYS = 1 << 10

# ---- matmul: the portable dot-product kernel (`_gemm`) -----------------------------------------------------
# Set with the first CPU kernels (commit 8a71b85) from the cache sizes in the comments; measurements not
# recorded. MR x NR is fixed by the hand-written 3 x 3 tile (_micro_3x3): change them together.
MR = 3     # micro-tile rows (of A), rows: 3 x 3 = 9 vector accumulators + 6 operand loads per step
NR = 3     # micro-tile columns (rows of the packed B), rows
KC = 512   # k-slice, elements of k: a micro-panel of B is NR*KC elements (6 KiB float32), it stays in L1
MC = 96    # rows per task block, at most: MC*KC elements of packed A (192 KiB float32) stay in L2
MIN_TASKS = 16     # tasks: split rows finer than MC until there are this many (thread balance)

# ---- matmul: the outer-product kernel (`_gemm_outer`, micro-kernels of microkernel.py) -------------------

# Micro-kernel shapes, rows of A per tile (the columns are NV = 2 vectors of the register width: 64 bytes on
# AVX-512, 32 on AVX2). 12 x 2 zmm and 6 x 2 ymm accumulators fill the register file with room for the
# operands (docs/benchmarks.md "Goal 2: matmul"; the asm is checked by a test). The tail shapes take the
# last M mod MR rows: measured (same section) the 4-row tail instead of zero-padding the last panel to 12
# rows took the 64 x 64 weight gradient from 0.72x to 1.02x of numpy; the 2-row AVX2 tail is its
# counterpart, not measured separately.
MICRO_ROWS_W64 = 12    # AVX-512 micro-tile rows
MICRO_ROWS_W32 = 6     # AVX2 micro-tile rows
TAIL_ROWS_W64 = 4      # AVX-512 tail micro-tile rows
TAIL_ROWS_W32 = 2      # AVX2 tail micro-tile rows
# k steps ahead at which the micro-kernel's loop over a copied A panel (a weight gradient dy^T @ x: B = x read
# in place) prefetches B's row. Measured (issue 22; 1 thread, thread CPU time, median of 40 interleaved calls,
# operands evicted from L2 by a 32 MB read before each call, load 7): dW = dy^T x with db, 128 x 512 at 768 /
# 2048 tokens 1232 -> 945 and 3718 -> 3063 us, the other weight gradients 0.97-1.12x, warm 0.95-1.03x; in the
# strided loop too, dy @ W went 0.96-0.98x, so that loop has none. Other distances not measured.
B_PREFETCH_ROWS = 64
# k steps per iteration of the micro-kernel's loop over a row-major A read in place (x @ W^T, dy @ W), which
# keeps one pointer per group of 4 rows (microkernel.py). Measured (issue 22; 1 thread, thread CPU time, fresh
# Numba cache, load 5.5-6): against the former loop (one register walking all 12 rows, a chain of 12 adds per
# k step): a 12 x 256 panel in L1 172 -> 184-190 GF/s; x @ W^T and dy @ W at the model shapes (768 and 2048
# tokens) 0.98-1.14x warm, geometric mean 1.06, and 1.07 cold (inputs evicted from L2).
UNROLL_STRIDED = 4

# k-slice, elements of k: a B micro-panel is NR*KC elements (32 KiB), an A micro-panel MR*KC. Measured
# (docs/benchmarks.md "Goal 2: matmul"): KC 128/256/384/512, 256 best or equal.
OUTER_KC = 256
# Row panels a task gets at least before columns are split too. Not recorded.
OUTER_MIN_PANELS = 8
# The same when A is copied (dy^T of a weight gradient) and B is at most twice as wide as A is tall (N <= 2 M):
# then rows split from 4 panels a task. Measured (docs/benchmarks.md, tenth session): dy^T x at 768 tokens with
# 96-160 rows and N <= 2 M, 0.74-0.99x of the column split's time; 4 itself is not compared with 3 or 5.
OUTER_MIN_PANELS_COPIED_A = 4
# Bytes of a B block (KC x NC) that stays in L2. From the cache size; not recorded.
OUTER_NC_BYTES = 1 << 20
# Split k across tasks when K >= OUTER_SPLIT_K k-slices and K >= 2 max(M, N), into at most OUTER_MAX_SPLIT_K
# blocks (each extra one: an M x N partial to add). Measured (commit 925f9ab): gpt's weight-gradient products
# 10.3 -> 9.6 ms per step on 2 threads (best of 7 x 5), the 128 x 128 and 96 x 128 ones ~1.3x; the values
# 4 / 4 themselves are not recorded.
OUTER_SPLIT_K = 4
OUTER_MAX_SPLIT_K = 4
# With B read in place (dy^T x: x's rows under 4 KiB), k also splits from OUTER_SPLIT_K_IN_PLACE elements of k
# and K >= max(M, N), into blocks of whole multiples of 16 (no packed slice to keep whole). Inside a training
# step the k blocks read the tokens each thread's previous product wrote, where a row split reads every token on
# both threads, half of them from the other core's cache. Measured (docs/benchmarks.md, eleventh session):
# nanoGPT's five weight gradients at 768 tokens, timed inside its iteration, 0.74-0.97x of the row split's time
# (warm and alone they measure 0.81-1.09x); its iteration 0.95-1.05x over 6 alternated pairs, median 0.96x.
OUTER_SPLIT_K_IN_PLACE = 768

# ---- attention and the decode step (owned by the attention code; listed here, copies there) -------------

# Query rows at or below which attention's forward takes one work item per row (`_forward_rows`: a key/value
# cache step) instead of 64-row tiles. From commit b7ff3fd ("a cache step no longer pays a 64-row tile");
# the threshold's measurement is not recorded. kernels/cpu/attention/tiles.py still defines its own ROWS_MAX_L
# (same value): it should read this one.
ROWS_MAX_L = 4

# Rows (batch x new positions) at or below which nn.TransformerEncoderLayer's decode step runs the fused
# kernel (kernels/cpu/decode.py); longer prompts run op by op. Measured (commit 0f44101): 1 thread, d_model
# 128, 128 rows 2.0 ms fused vs 1.3 ms op by op per layer. tinyattn/nn/transformer.py still defines its own
# _DECODE_MAX_ROWS (same value): it should read this one.
DECODE_MAX_ROWS = 64
