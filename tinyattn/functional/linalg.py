"""Matrix products: matmul (2-D, batched, broadcast batch dims) and linear.

Both run on the backend's three matmul kernels, which take (batch, rows, cols) arrays
whose batch is 1 or the full batch:
    matmul(a, b)    = a @ b      forward
    matmul_nt(a, b) = a @ bᵀ     dA = dC · Bᵀ
    matmul_tn(a, b) = aᵀ @ b     dB = Aᵀ · dC
so no transpose is ever materialised.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..autograd import Function, Variable
from ..backend import backend_of
from .checks import check_broadcast, check_float, check_tensor, sum_to_shape, on_host
from .shape import reshape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import Number
    from ..tensor import Tensor

__all__ = [
    "addmm", "baddbmm", "bmm", "cdist", "Det", "det", "dot", "ger", "inv", "Inverse", "inverse", "Linear", "linear",
    "logdet", "Matmul", "matmul", "matrix_power", "mm", "mv", "outer", "SlogDet", "slogdet", "Solve", "solve", "vdot",
]


class Matmul(Function):
    """C = A @ B over the last two axes, batch axes broadcast.  A (..., M, K), B (..., K, N).

    dA = dC · Bᵀ and dB = Aᵀ · dC per batch element, then summed over broadcast batch axes.
    When B has no batch axes (x @ W), A's batch folds into its rows: one (B·M, K) @ (K, N)
    product, and dB = Aᵀ · dC reduces over the batch inside the kernel.

    Operands reach the kernels as views wherever the layout allows (a transposed, sliced or permuted
    operand is read in place: `_as_batched`); the 3-D forms are what backward saves, so an operand copied
    once (batch axes that do not merge) is not copied again for the gradients.
    """

    fresh_grads = True  # dA and dB are new products, or new sums of them (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        ctx.shapes = (a.shape, b.shape)
        ctx.batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        fold_rows = b.ndim == 2
        a3, b3 = _as_batched(a, ctx.batch, fold_rows), _as_batched(b, ctx.batch, fold_rows)
        # dA needs B, dB needs A: their 3-D forms, and the operands themselves for the in-place check when a
        # 3-D form is a copy (autograd checks the versions of the tensors whose memory a saved array is)
        ctx.save_for_backward(a3 if need_b else None, b3 if need_a else None,
                              a if need_b and _copied(a3, a) else None, b if need_a and _copied(b3, b) else None)
        c3 = backend_of(a).matmul(a3, b3)
        ctx.c3_shape = c3.shape
        return c3.reshape(ctx.batch + (a.shape[-2], b.shape[-1]))

    @staticmethod
    def backward(ctx, dc):
        a3, b3 = ctx.saved[:2]
        a_shape, b_shape = ctx.shapes
        fold_rows = len(b_shape) == 2
        dc3 = _merge(dc, ctx.c3_shape)
        be = backend_of(dc)
        need_a, need_b = ctx.needs_input_grad
        da = db = None
        if need_a:
            da3 = be.matmul_nt(dc3, b3)  # (B, M, K)
            da = sum_to_shape(da3.reshape(ctx.batch + a_shape[-2:]), a_shape)
        if need_b:
            # (B, K, N), or (1, K, N) when a's batch was folded
            db3 = be.matmul_tn(a3, dc3)
            db = db3.reshape(b_shape) if fold_rows else sum_to_shape(db3.reshape(ctx.batch + b_shape[-2:]), b_shape)
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dc):
        """dA = dC · Bᵀ and dB = Aᵀ · dC with recorded ops (matmul, transpose, then sums over broadcast batch
        axes); an operand that needs no gradient is a constant made from what forward saved."""
        from ..autograd.function import constant
        from .checks import sum_to_shape_graph

        a, b = inputs
        sa, sb = ctx.shapes

        def value(saved, shape):  # the saved operand (as given, or in its batched 3-D form) as a constant
            full = shape if saved.size == math.prod(shape) else ctx.batch + shape[-2:]
            return constant(dc, saved.reshape(full))

        da = db = None
        if a is not None:
            bt = b if b is not None else value(ctx.saved[1], sb)
            da = sum_to_shape_graph(matmul(dc, bt.mT), sa)
        if b is not None:
            at = a if a is not None else value(ctx.saved[0], sa)
            db = sum_to_shape_graph(matmul(at.mT, dc), sb)
        return da, db


def _copied(x3, x):
    """Whether x3 (an operand's 3-D form) may not be a view of x's memory (then backward keeps x too)."""
    return not (type(x3) is np.ndarray and type(x) is np.ndarray and np.may_share_memory(x3, x))


def _merge_axes(x, shape):
    """x.reshape(shape) as a view, for a `shape` whose every axis is a run of consecutive axes of x merged
    (axes of length 1 go anywhere; an axis of `shape` of length 1 may stand for no axis of x); None when the
    strides do not allow it (numpy's reshape would copy). Host arrays only (other arrays: None)."""
    if type(x) is not np.ndarray:
        return None
    if x.size and not _axes_merge(x.shape, x.strides, tuple(shape)):
        return None
    # numpy's reshape makes this same view (it copies only when the strides do not merge), and keeps numpy's
    # chain of bases to x: autograd finds a saved view's owner through it (autograd/views.py)
    return x.reshape(shape)


@functools.lru_cache(maxsize=256)
def _axes_merge(xshape, strides, shape):
    """_merge_axes' test for a non-empty array of `xshape` and `strides` (a model repeats a few layouts)."""
    i = 0
    for n in shape:                           # the axes of x whose sizes multiply to n
        group = []
        size = 1
        while i < len(xshape) and size < n:
            group.append(i)
            size *= xshape[i]
            i += 1
        if size != n:
            return False
        live = [j for j in group if xshape[j] != 1]
        for j, k in zip(live, live[1:]):
            if strides[j] != xshape[k] * strides[k]:
                return False
    return all(xshape[j] == 1 for j in range(i, len(xshape)))


def _merge(x, shape):
    """x as `shape` (leading axes merged): a view when the strides allow it, else a copy that keeps the
    matrices' faster axis (a transposed operand stays transposed: copying it row-major would be a transposing
    copy, slower than the product's own packing)."""
    if x.shape == tuple(shape):
        return x
    if type(x) is np.ndarray and x.flags.c_contiguous:
        return x.reshape(shape)               # (a view)
    v = _merge_axes(x, shape)
    if v is not None:
        return v
    if type(x) is np.ndarray and x.ndim >= 2 and abs(x.strides[-2]) < abs(x.strides[-1]):
        if shape[-2] == x.shape[-2]:          # only batch axes merge: each matrix copied as its transpose
            return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)).reshape(
                tuple(shape[:-2]) + (shape[-1], shape[-2])), -1, -2)
        # rows merge with batch axes too (x @ W, a Linear's input): the last axis first, the rest as they are
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -1, 0)).reshape((shape[-1],) + tuple(shape[:-1])),
                           0, -1)
    return x.reshape(shape)


def _as_batched(x, batch, fold_rows):
    """An operand as a (batch, rows, cols) array for the kernels, its batch 1 or the full batch: a view of x
    wherever its strides allow (`_merge`); a host array whose batch axes do not merge stays as it is (the CPU
    kernels take several batch axes).

    fold_rows (x @ W, W 2-D): every batch axis of the left operand folds into its rows, and W
    gets a batch of 1 (the same reshape, for a 2-D array)."""
    if fold_rows:
        return _merge(x, (1, math.prod(x.shape[:-1]), x.shape[-1]))
    full = math.prod(batch)
    if x.shape[:-2] == batch:
        if len(batch) > 1 and type(x) is np.ndarray and not x.flags.c_contiguous:
            # batch axes that no single stride spans (attention's heads: x.view(B, T, H, D).transpose(1, 2)):
            # the CPU kernels read x in place through a table of batch offsets, instead of a copy
            v = _merge_axes(x, (full,) + x.shape[-2:])
            return x if v is None else v
        return _merge(x, (full,) + x.shape[-2:])
    if math.prod(x.shape[:-2]) == 1:
        return _merge(x, (1,) + x.shape[-2:])
    return _merge(np.broadcast_to(x, batch + x.shape[-2:]), (full,) + x.shape[-2:])


class Linear(Function):
    """y = x Wᵀ + b.  x (..., in), W (out, in), b (out,).

    dx = dy W,  dW = dyᵀ x (summed over every batch row),  db = Σ_rows dy.
    Any layout of x and W (a transposed or tied weight, a permuted input) goes to the kernels as a view.
    """

    fresh_grads = True  # every gradient is a new array (autograd.Function.fresh_grads)

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = _merge(x, (1, math.prod(x.shape[:-1]), x.shape[-1]))  # (1, N, in)
        need_x, need_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(x2 if need_w else None, weight if need_x else None,  # dx needs W, dW needs x
                              x if need_w and _copied(x2, x) else None)         # (x2 a copy: x's version)
        ctx.x_shape = x.shape
        y = backend_of(x).matmul_nt(x2, weight[None], bias)  # (1, N, out); the bias added inside the product
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, dy):
        return Linear.backward_with_factor(ctx, dy, None)

    @staticmethod
    def backward_with_factor(ctx, dy, factor):
        """backward, with dx multiplied by f'(h) when factor = (f's name, h) (Function.grad_factor of the op that
        made x: dh = (dy W) · f'(h) from one product, its factor applied as each tile is written)."""
        x2, weight = ctx.saved[:2]
        need_x, need_w, need_b = ctx.needs_input_grad
        be = backend_of(dy)
        dy2 = _merge(dy, (1, math.prod(dy.shape[:-1]), dy.shape[-1]))  # (1, N, out)
        # dW first: dy was just written by the op above and is still partly in cache (about 1 % of a step);
        # db from the same pass over dy when dW is wanted too
        dw = db = None
        if need_w and need_b:
            dw, db = be.matmul_tn(dy2, x2, a_sums=True)
            dw, db = dw[0], db[0]
        elif need_w:
            dw = be.matmul_tn(dy2, x2)[0]
        elif need_b:
            db = dy2.sum(axis=(0, 1))
        dx = None
        if need_x:
            dx = be.matmul(dy2, weight[None]) if factor is None else be.matmul_act_grad(dy2, weight[None], *factor)
            dx = dx.reshape(ctx.x_shape)
        return dx, dw, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dx = dy W, dW = dyᵀ x (over every row), db = Σ_rows dy with recorded ops (matmul, transpose, sum); an
        operand that needs no gradient is a constant made from what forward saved."""
        from ..autograd.function import constant

        x, w, b = inputs
        x2, weight = ctx.saved[:2]
        n_out = dy.shape[-1]
        dy2 = dy.reshape(-1, n_out)
        dx = dw = db = None
        if x is not None:
            dx = matmul(dy2, w if w is not None else constant(dy, weight)).reshape(tuple(ctx.x_shape))
        if w is not None:
            n_in = ctx.x_shape[-1]
            xs = x.reshape(-1, n_in) if x is not None else constant(dy, x2.reshape(-1, n_in))
            dw = matmul(dy2.mT, xs)
        if b is not None:
            db = dy2.sum(0)
        return dx, dw, db


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """PyTorch's matmul: 1-D operands are promoted to a row / column vector and squeezed after."""
    for t in (a, b):
        if not isinstance(t, Variable):
            raise TypeError(f"matmul: expected tensors, got {type(t).__name__}")
        if t.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    check_float("matmul", a._array, b._array)
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ: {a.dtype} and {b.dtype}")
    if a.ndim == 1 and b.ndim == 1:
        return reshape(matmul(reshape(a, 1, -1), reshape(b, -1, 1)), ())
    if a.ndim == 1:
        return reshape(matmul(reshape(a, 1, -1), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, -1, 1)), a.shape[:-1])
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: {a.shape} @ {b.shape}: inner dimensions {a.shape[-1]} and {b.shape[-2]} differ"
        )
    if a._array.shape[:-2] != b._array.shape[:-2]:  # (equal batch dims: nothing to check)
        check_broadcast("matmul (batch dims)", a.shape[:-2], b.shape[:-2])
    return Matmul.apply(a, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b, PyTorch's F.linear: W is (out_features, in_features)."""
    for name, t in (("input", x), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        check_tensor("linear", name, t)
    check_float("linear", x._array, weight._array)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} and weight {weight.shape}: "
                         f"expected weight (out, {x.shape[-1] if x.ndim else '?'})")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} does not match weight {weight.shape}; "
                         f"expected ({weight.shape[0]},)")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"linear: dtypes differ: input {x.dtype}, weight {weight.dtype}"
                        + (f", bias {bias.dtype}" if bias is not None else ""))
    return Linear.apply(x, weight, bias)


# ---- PyTorch's named products (checked shapes, then matmul's Function) -------------------------------


def _tensors(op, *named):
    for name, t in named:
        check_tensor(op, name, t)


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """(n, m) @ (m, p) -> (n, p); both must be 2-D (matmul without broadcasting)."""
    _tensors("mm", ("input", input), ("mat2", mat2))
    if input.ndim != 2 or mat2.ndim != 2:
        raise ValueError(f"mm: both arguments must be matrices (2-D), got shapes {tuple(input.shape)} and "
                         f"{tuple(mat2.shape)}")
    _inner("mm", input, mat2)
    return matmul(input, mat2)


def _inner(op, a, b):
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{op}: {tuple(a.shape)} @ {tuple(b.shape)}: inner dimensions {a.shape[-1]} and "
                         f"{b.shape[-2]} differ")


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """(b, n, m) @ (b, m, p) -> (b, n, p); both 3-D with the same batch size (no broadcasting)."""
    _tensors("bmm", ("input", input), ("mat2", mat2))
    if input.ndim != 3 or mat2.ndim != 3:
        raise ValueError(f"bmm: both arguments must be 3-D, got shapes {tuple(input.shape)} and {tuple(mat2.shape)}")
    if input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: {tuple(input.shape)} and {tuple(mat2.shape)}")
    _inner("bmm", input, mat2)
    return matmul(input, mat2)


def mv(input: Tensor, vec: Tensor) -> Tensor:
    """(n, m) @ (m,) -> (n,)."""
    _tensors("mv", ("input", input), ("vec", vec))
    if input.ndim != 2 or vec.ndim != 1:
        raise ValueError(f"mv: expected a matrix and a vector, got shapes {tuple(input.shape)} and {tuple(vec.shape)}")
    return matmul(input, vec)


def dot(input: Tensor, other: Tensor) -> Tensor:
    """Σ input_i other_i for two 1-D tensors of the same size (a 0-d tensor)."""
    _tensors("dot", ("input", input), ("other", other))
    if input.ndim != 1 or other.ndim != 1:
        raise ValueError(f"dot: 1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape != other.shape:
        raise ValueError(f"dot: inconsistent tensor size, expected tensors of the same size, got "
                         f"{tuple(input.shape)} and {tuple(other.shape)}")
    if input.dtype != other.dtype:
        raise TypeError(f"dot: expected both vectors to have the same dtype, got {input.dtype} and {other.dtype}")
    if input._array.dtype.kind != "f":
        return input._wrap(np.asarray(np.dot(input._array, other._array)))
    return matmul(input, other)


vdot = dot  # real tensors: no conjugation


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """The outer product of two 1-D tensors: out[i, j] = input[i] · vec2[j]."""
    from .elementwise import mul

    _tensors("outer", ("input", input), ("vec2", vec2))
    if input.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer: expected 1-D tensors, got shapes {tuple(input.shape)} and {tuple(vec2.shape)}")
    return mul(reshape(input, -1, 1), reshape(vec2, 1, -1))


ger = outer


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: Number = 1, alpha: Number = 1) -> Tensor:
    """beta · input + alpha · (mat1 @ mat2), input broadcast to the product's shape."""
    from .elementwise import add, mul

    product = mm(mat1, mat2)
    if alpha != 1:
        product = mul(product, alpha)
    check_tensor("addmm", "input", input)
    check_broadcast("addmm", input.shape, product.shape)
    if beta == 0:  # input is ignored (its nan and inf too), as in PyTorch
        return product
    return add(input if beta == 1 else mul(input, beta), product)


def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Number = 1, alpha: Number = 1) -> Tensor:
    """beta · input + alpha · (batch1 @ batch2) for 3-D batches."""
    from .elementwise import add, mul

    product = bmm(batch1, batch2)
    if alpha != 1:
        product = mul(product, alpha)
    check_tensor("baddbmm", "input", input)
    check_broadcast("baddbmm", input.shape, product.shape)
    if beta == 0:
        return product
    return add(input if beta == 1 else mul(input, beta), product)


def cdist(x1, x2, p=2.0, compute_mode=None):
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M): (..., P, R)."""
    from .elementwise import sub
    from .reduction import vector_norm
    from .shape import unsqueeze

    _tensors("cdist", ("x1", x1), ("x2", x2))
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"cdist: x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must be (..., P, M) and (..., R, M) "
                         "with the same M")
    if p < 0:
        raise ValueError(f"cdist: p value for the p-norm distance must be >= 0, got {p}")
    return vector_norm(sub(unsqueeze(x1, -2), unsqueeze(x2, -3)), p, -1)


# ---- inverses and determinants (NumPy's LAPACK on the host; CPU tensors) ----------------------------------


def _square(op, a):
    check_tensor(op, "A", a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{op}: A must be a batch of square matrices, got shape {tuple(a.shape)}")
    check_float(op, a._array)


def _mT(x):
    return np.swapaxes(x, -1, -2)


@on_host
class Inverse(Function):
    """Y = A⁻¹.  dA = -Yᵀ dY Yᵀ."""

    @staticmethod
    def forward(ctx, a):
        try:
            y = np.linalg.inv(a)
        except np.linalg.LinAlgError:
            raise ValueError(f"linalg.inv: the matrix (shape {a.shape}) is singular, it has no inverse") from None
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return -(_mT(y) @ dy @ _mT(y))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dA = -Yᵀ dY Yᵀ with recorded ops, Y = A⁻¹ recomputed from A by this op."""
        yt = Inverse.apply(inputs[0]).mT
        return matmul(matmul(yt, dy), yt) * -1.0


def inv(A):
    _square("linalg.inv", A)
    return Inverse.apply(A)


inverse = inv


@on_host
class Det(Function):
    """y = det A.  dA = dy · y · A⁻ᵀ (A invertible)."""

    @staticmethod
    def forward(ctx, a):
        y = np.linalg.det(a)
        ctx.save_for_backward(a, np.asarray(y))
        return np.asarray(y)

    @staticmethod
    def backward(ctx, dy):
        a, y = ctx.saved
        return (dy * y)[..., None, None] * _mT(np.linalg.inv(a))

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dA = dy · det A · A⁻ᵀ with recorded ops (det and inverse recomputed from A by their ops)."""
        (a,) = inputs
        scale = (dy * Det.apply(a)).reshape(tuple(dy.shape) + (1, 1))
        return scale * Inverse.apply(a).mT


def det(A):
    _square("linalg.det", A)
    return Det.apply(A)


@on_host
class SlogDet(Function):
    """(sign, ln |det A|).  d ln|det A| / dA = A⁻ᵀ; sign carries no gradient."""

    @staticmethod
    def forward(ctx, a):
        sign, logabs = np.linalg.slogdet(a)
        ctx.save_for_backward(a)
        return np.asarray(sign, dtype=a.dtype), np.asarray(logabs, dtype=a.dtype)

    @staticmethod
    def backward(ctx, dys):
        (a,) = ctx.saved
        g = dys[1]
        if g is None:
            return np.zeros_like(a)
        return g[..., None, None] * _mT(np.linalg.inv(a))

    @staticmethod
    def differentiable_backward(ctx, inputs, dys):
        """dA = d(ln|det A|) · A⁻ᵀ with recorded ops (the inverse recomputed from A by Inverse); the sign's
        gradient is ignored (piecewise constant)."""
        from ..autograd.function import constant

        (a,) = inputs
        g = dys[1]
        if g is None:
            return constant(a, np.zeros(a.shape, a._array.dtype))
        return g.reshape(tuple(g.shape) + (1, 1)) * Inverse.apply(a).mT


def slogdet(A):
    from collections import namedtuple

    _square("linalg.slogdet", A)
    sign, logabs = SlogDet.apply(A)
    return namedtuple("slogdet", ["sign", "logabsdet"])(sign, logabs)


def logdet(A):
    """ln det A: nan for a negative determinant, -inf for a zero one (PyTorch's logdet)."""
    from .elementwise import where

    sign, logabs = slogdet(A)
    nan = logabs._wrap(np.full(logabs.shape, np.nan, dtype=logabs.dtype))
    return where(sign._wrap(sign._array < 0), nan, logabs) if (sign._array < 0).any() else logabs


@on_host
class Solve(Function):
    """X = A⁻¹ B.  dB = A⁻ᵀ dX, dA = -dB Xᵀ."""

    @staticmethod
    def forward(ctx, a, b):
        try:
            x = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            raise ValueError(f"linalg.solve: the matrix A (shape {a.shape}) is singular") from None
        ctx.save_for_backward(a, x)
        ctx.shapes = (a.shape, b.shape)
        return x

    @staticmethod
    def backward(ctx, dx):
        a, x = ctx.saved
        db = np.linalg.solve(_mT(a), dx)
        need_a, need_b = ctx.needs_input_grad
        da = sum_to_shape(-(db @ _mT(x)), ctx.shapes[0]) if need_a else None
        return da, (sum_to_shape(db, ctx.shapes[1]) if need_b else None)

    @staticmethod
    def differentiable_backward(ctx, inputs, dx):
        """dB = A⁻ᵀ dX (a solve with Aᵀ) and dA = -dB Xᵀ with recorded ops, X = A⁻¹ B recomputed by this op; an
        operand that needs no gradient is a constant (B's value: A X, from what forward saved)."""
        from ..autograd.function import constant

        a, b = inputs
        a_saved, x_saved = ctx.saved
        at = a if a is not None else constant(dx, a_saved)
        db = Solve.apply(at.mT, dx)
        da = None
        if a is not None:
            bt = b if b is not None else constant(dx, a_saved @ x_saved)
            da = matmul(db, Solve.apply(at, bt).mT) * -1.0
        return da, (db if b is not None else None)


def solve(A, B, *, left=True):
    """X with A X = B (B a batch of matrices, or of vectors when B has one dim fewer than A)."""
    _square("linalg.solve", A)
    check_tensor("linalg.solve", "B", B)
    if not left:
        raise NotImplementedError("linalg.solve: left=False is not supported; solve Aᵀ Xᵀ = Bᵀ instead")
    vector = B.ndim == A.ndim - 1 or B.ndim == 1
    b = reshape(B, tuple(B.shape) + (1,)) if vector else B
    if b.shape[-2] != A.shape[-1]:
        raise ValueError(f"linalg.solve: A {tuple(A.shape)} and B {tuple(B.shape)} do not fit")
    if b.ndim < A.ndim:
        b = reshape(b, (1,) * (A.ndim - b.ndim) + tuple(b.shape))
    shape = check_broadcast("linalg.solve", A.shape[:-2], b.shape[:-2])
    from .shape import expand

    a_full = expand(A, shape + tuple(A.shape[-2:])) if tuple(A.shape[:-2]) != shape else A
    b_full = expand(b, shape + tuple(b.shape[-2:])) if tuple(b.shape[:-2]) != shape else b
    x = Solve.apply(a_full, b_full)
    return reshape(x, tuple(x.shape[:-1])) if vector else x


def matrix_power(A, n):
    """A multiplied by itself n times (the identity for n = 0, powers of A⁻¹ for n < 0)."""
    _square("linalg.matrix_power", A)
    if not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg.matrix_power: n must be an int, got {n!r}")
    if n == 0:
        from .checks import host_result

        return host_result(A, np.broadcast_to(np.eye(A.shape[-1], dtype=A.dtype), A.shape).copy())
    base = inv(A) if n < 0 else A
    out = None
    for _ in range(abs(int(n))):
        out = base if out is None else matmul(out, base)
    return out
