"""Every launch size and threshold of the CUDA kernels, in one place.

Each name says its unit and the measurement that set it, or "not recorded": none of these has been tuned
on a GPU yet (the kernels were written and tested under Numba's simulator; docs/benchmarks.md "CUDA").
Changing a value changes speed, never results (every kernel loops over whatever its grid does not cover).
This module imports nothing, so reading it never imports numba.cuda.

Who reads what:
    launch.py (grid_1d: DeviceArray's elementwise, reduction, indexing and optimiser kernels)
                        THREADS, GRID_STRIDE_MAX_BLOCKS, SIM_THREADS
    activations.py, embedding.py (their own grid-stride launches)
                        THREADS, OP_MAX_BLOCKS
    softmax.py, layer_norm.py   ROW_THREADS
    reduce.py           REDUCE_ROW_THREADS, REDUCE_SIM_ROW_THREADS, REDUCE_MANY_ROWS
    matmul.py           TILE, REGS
    attention.py        ROWS, BLOCK_K: owned by the attention code, still defined there
"""

# Threads per block of a grid-stride kernel (one thread per element, thread g handling g, g + G, ...).
# A common default; not recorded.
THREADS = 256

# Blocks at most in the grid of a grid-stride kernel: larger sizes loop. Two values, set at two different
# times for the same purpose (a cap large enough to fill a GPU), neither measured (commits e38a9c8 for
# DeviceArray's kernels, 69fc3b8 for GELU and embedding). They are kept as they are, under two names, until
# a GPU measurement picks one:
GRID_STRIDE_MAX_BLOCKS = 2048   # launch.grid_1d ("enough to fill a large GPU"); not recorded
OP_MAX_BLOCKS = 1024            # activations.py, embedding.py ("grid cap"); not recorded

# Threads in all of a grid-stride launch under Numba's simulator, which runs every GPU thread as a Python
# thread (about 0.2 ms each to start): a few threads that loop are far faster there. Not recorded.
SIM_THREADS = 8

# Threads per row (a power of two) of the block-per-row kernels: softmax, and layer norm (also per block of
# columns in its dw/db kernel). Not recorded.
ROW_THREADS = 128

# Reductions along the last axis (reduce.py): threads per row of the block-per-row kernel (a power of two),
# on a GPU and under the simulator; from REDUCE_MANY_ROWS rows on, one thread per row keeps the GPU busy
# instead. Not recorded.
REDUCE_ROW_THREADS = 256
REDUCE_SIM_ROW_THREADS = 8
REDUCE_MANY_ROWS = 1024

# matmul: TILE x TILE threads per block (and the k-slice, elements), each computing REGS x REGS outputs,
# so a block owns a (TILE*REGS)^2 output tile. Not recorded.
TILE = 16
REGS = 4
