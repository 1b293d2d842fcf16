"""Elementwise kernels over strided views of flat device buffers, for tinyattn's DeviceArray.

An operand is (buf, off, st): a 1-D device buffer, the offset of its first element and one stride per
axis, all counted in elements. Broadcasting is a stride of 0, a transpose is permuted strides, so no
operand is ever copied to line it up. Element i (row-major over `shape`) of an operand is at

    buf[off + Σ_d idx_d(i) · st[d]],   idx_d(i) = the d-th digit of i in the mixed radix `shape`

Every kernel is a grid-stride loop over the n = Π shape elements of its output (launch.grid_1d):

    for i in range(first thread, n, threads in the grid):
        out[i] = f(a[offset_a(i)], b[offset_b(i)], ...)

The output is a new C-contiguous buffer, except for `copy`, which writes through a strided view (that
is how `x[index] = y` and in-place ops write). One kernel serves a family of ops, chosen by an op code
argument: the branch is uniform across the grid, so it costs nothing next to the memory traffic. The
arithmetic happens in the operands' types and the store converts to the output's dtype.
"""
import math

from numba import cuda

from .launch import grid_1d

# op codes of `unary`
NEG, EXP, LOG, SQRT, TANH, ABS, SIGN, SIN, COS = range(9)
# op codes of `binary`
ADD, SUB, MUL, DIV, POW, MAXIMUM, MINIMUM = range(7)
# op codes of `compare`
EQ, NE, LT, LE, GT, GE = range(6)
# op codes of `logical` (bool operands)
AND, OR, XOR = range(3)


@cuda.jit(device=True)
def _offset(i, shape, off, st):
    """Where element i (row-major over shape) of the view (off, st) sits in its buffer."""
    if len(shape) == 1:  # a compile-time branch: one merged axis (every contiguous view) needs no division
        return off + i * st[0]
    o = off
    for d in range(len(shape) - 1, -1, -1):
        n = shape[d]
        o += (i % n) * st[d]
        i //= n
    return o


@cuda.jit
def _unary(op, out, a, a_off, a_st, shape):
    # Each branch stores its own result: one shared result variable would take the widest type of
    # all branches (float64), and int64 results would lose exactness above 2^53.
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = a[_offset(i, shape, a_off, a_st)]
        if op == NEG:
            out[i] = -x
        elif op == EXP:
            out[i] = math.inf if x >= 709.7 else math.exp(x)  # NaN -> exp; (the simulator's math.exp raises past 709.7)
        elif op == LOG:
            out[i] = math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
        elif op == SQRT:
            out[i] = math.sqrt(x) if x >= 0 else math.nan
        elif op == TANH:
            out[i] = math.tanh(x)
        elif op == ABS:
            out[i] = abs(x)
        elif op == SIGN:
            out[i] = 1 if x > 0 else (-1 if x < 0 else x * 0)  # x * 0: 0, or NaN for NaN
        elif op == SIN:
            out[i] = math.sin(x)
        else:
            out[i] = math.cos(x)


@cuda.jit
def _binary(op, out, a, a_off, a_st, b, b_off, b_st, shape):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = a[_offset(i, shape, a_off, a_st)]
        y = b[_offset(i, shape, b_off, b_st)]
        if op == ADD:
            out[i] = x + y
        elif op == SUB:
            out[i] = x - y
        elif op == MUL:
            out[i] = x * y
        elif op == DIV:
            out[i] = x / y
        elif op == POW:
            out[i] = x**y
        elif op == MAXIMUM:
            out[i] = x if (x > y or x != x) else y  # NaN wins, as in numpy
        else:
            out[i] = x if (x < y or x != x) else y


@cuda.jit
def _compare(op, out, a, a_off, a_st, b, b_off, b_st, shape):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = a[_offset(i, shape, a_off, a_st)]
        y = b[_offset(i, shape, b_off, b_st)]
        if op == EQ:
            out[i] = x == y
        elif op == NE:
            out[i] = x != y
        elif op == LT:
            out[i] = x < y
        elif op == LE:
            out[i] = x <= y
        elif op == GT:
            out[i] = x > y
        else:
            out[i] = x >= y


@cuda.jit
def _logical(op, out, a, a_off, a_st, b, b_off, b_st, shape):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = a[_offset(i, shape, a_off, a_st)]
        y = b[_offset(i, shape, b_off, b_st)]
        if op == AND:
            out[i] = x and y
        elif op == OR:
            out[i] = x or y
        else:
            out[i] = x != y


@cuda.jit
def _logical_not(out, a, a_off, a_st, shape):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = not a[_offset(i, shape, a_off, a_st)]


@cuda.jit
def _isfinite(out, a, a_off, a_st, shape):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = a[_offset(i, shape, a_off, a_st)]
        out[i] = x == x and x != math.inf and x != -math.inf


@cuda.jit
def _where(out, c, c_off, c_st, a, a_off, a_st, b, b_off, b_st, shape):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if c[_offset(i, shape, c_off, c_st)]:
            out[i] = a[_offset(i, shape, a_off, a_st)]
        else:
            out[i] = b[_offset(i, shape, b_off, b_st)]


@cuda.jit
def _copy(n, dst, dst_off, dst_st, src, src_off, src_st, shape):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        dst[_offset(i, shape, dst_off, dst_st)] = src[_offset(i, shape, src_off, src_st)]


@cuda.jit
def _arange(out, start, step):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = start + i * step


# ---- launchers: views are (buf, off, st) triples; shape is at least 1-D -------------------------------
def unary(op, out, a, shape):
    """out[i] = f_op(a[i]) for the op codes NEG ... COS."""
    _unary[grid_1d(out.size)](op, out, *a, shape)


def binary(op, out, a, b, shape):
    """out[i] = a[i] op b[i] for the op codes ADD ... MINIMUM."""
    _binary[grid_1d(out.size)](op, out, *a, *b, shape)


def compare(op, out, a, b, shape):
    """out[i] = a[i] op b[i] (bool) for the op codes EQ ... GE."""
    _compare[grid_1d(out.size)](op, out, *a, *b, shape)


def logical(op, out, a, b, shape):
    """out[i] = a[i] op b[i] for bool operands and the op codes AND, OR, XOR."""
    _logical[grid_1d(out.size)](op, out, *a, *b, shape)


def logical_not(out, a, shape):
    _logical_not[grid_1d(out.size)](out, *a, shape)


def isfinite(out, a, shape):
    _isfinite[grid_1d(out.size)](out, *a, shape)


def where(out, c, a, b, shape):
    """out[i] = a[i] if c[i] else b[i]."""
    _where[grid_1d(out.size)](out, *c, *a, *b, shape)


def copy(n, dst, src, shape):
    """dst[i] = src[i] for the n elements of `shape`, both strided views (the store converts the dtype)."""
    _copy[grid_1d(n)](n, *dst, *src, shape)


def arange(out, start, step):
    """out[i] = start + i·step."""
    _arange[grid_1d(out.size)](out, start, step)
