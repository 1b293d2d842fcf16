"""Elementwise ops with NumPy broadcasting: arithmetic, activations, selection, comparisons.

Each Function's docstring gives y = f(x) and the local derivative its backward applies.
Binary ops send their gradients through `sum_to_shape` to undo broadcasting.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Variable
from ..autograd import function as _function
from ..autograd.function import constant
from ..backend import backend_of, device_of, is_device_array, move
from ..dtypes import as_dtype
from .checks import check_broadcast, check_float, on_device_of, sum_to_shape, sum_to_shape_graph
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .._typing import DType, Number, Operand
    from ..tensor import Tensor

__all__ = [
    "Abs", "abs", "Add", "add", "array_of", "Cast", "cast", "cast_operand", "Div", "div", "eq", "Exp", "exp",
    "float32_constant", "ge", "Gelu", "gelu", "graph_operand", "gt", "le", "Log", "log", "lt", "masked_fill",
    "MaskedFill", "Maximum", "maximum", "Minimum", "minimum", "Mul", "mul", "ne", "Neg", "neg", "operands", "Pow",
    "pow", "PowTensor", "Relu", "relu", "saved_constant", "Sigmoid", "sigmoid", "Sqrt", "sqrt", "Sub", "sub", "Tanh",
    "tanh", "Where", "where", "zeros_graph",
]


_KERNEL_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def array_of(x):
    return x._array if isinstance(x, Variable) else x


def operands(op, a, b):
    """Make a binary op's operands agree, as PyTorch does: Python numbers and integer tensors
    take the float tensor's dtype (float32 + 2 stays float32, int64 * 0.5 is float32), then
    the shapes must broadcast.

    The common cases take a short path with the same result: two float tensors of one dtype (same
    shape, or checked to broadcast), a float tensor with a Python int or float, and an integer (not bool)
    tensor with a Python int (`i + 1` on a 0-d index). Devices are checked by Function.apply."""
    if isinstance(a, Variable):
        da = a._array
        if isinstance(b, Variable):
            db = b._array
            if da.dtype == db.dtype and da.dtype.kind == "f":
                if da.shape != db.shape:
                    check_broadcast(op, da.shape, db.shape)
                return a, b
        elif type(b) is float or type(b) is int:
            kind = da.dtype.kind
            if kind == "f" or (kind in "iu" and type(b) is int):  # an int tensor and an int keep the tensor's dtype
                return a, np.asarray(b, dtype=da.dtype)
    elif isinstance(b, Variable) and (type(a) is float or type(a) is int):
        db = b._array
        kind = db.dtype.kind
        if kind == "f" or (kind in "iu" and type(a) is int):
            return np.asarray(a, dtype=db.dtype), b
    if not isinstance(a, Variable) and not isinstance(b, Variable):
        raise TypeError(f"{op}: expected at least one tensor, got {type(a).__name__} and {type(b).__name__}")
    for x in (a, b):
        if not (isinstance(x, (Variable, np.ndarray, bool, int, float, np.number)) or is_device_array(x)):
            raise TypeError(f"{op}: unsupported operand of type {type(x).__name__}")
    dtype = _common_dtype(a, b)
    a, b = cast_operand(a, dtype), cast_operand(b, dtype)
    check_broadcast(op, np.shape(array_of(a)), np.shape(array_of(b)))
    return a, b


def _common_dtype(a, b):
    tensors = [array_of(x).dtype for x in (a, b) if isinstance(x, (Variable, np.ndarray)) or is_device_array(x)]
    floats = [d for d in tensors if d.kind == "f"]
    if floats:
        return np.result_type(*floats)
    if any(isinstance(x, (float, np.floating)) for x in (a, b)):
        return np.dtype(np.float32)
    return np.result_type(*tensors)


def cast_operand(x, dtype):
    if isinstance(x, Variable):
        if x._array.dtype.kind != "f" and x._array.dtype != dtype:
            return x._wrap(x._array.astype(dtype))  # an int/bool tensor never requires grad
        return x
    if (isinstance(x, np.ndarray) or is_device_array(x)) and x.dtype.kind == "f":
        return x
    if is_device_array(x):
        return x.astype(dtype)
    return np.asarray(x, dtype=dtype)


# ---- helpers of the differentiable backwards (create_graph=True, see Function) ----------------------------


def saved_constant(like, array):
    """An array a forward saved (a mask, an operand that needs no gradient) as a constant tensor (no graph) on
    the device of tensor `like`: an on_host op saves host copies while its gradients may live on the GPU."""
    return constant(like, move(array, device_of(like._array)))


def graph_operand(tensor, saved, like):
    """An operand's value inside a differentiable backward: the input tensor itself when it requires grad (so
    that its use is recorded and differentiated again), else its saved value as a constant."""
    return tensor if tensor is not None else saved_constant(like, saved)


def zeros_graph(like):
    """Zeros of like's shape, dtype and device, as a constant tensor: the gradient of a piecewise-constant op."""
    return constant(like, backend_of(like._array).xp.zeros(like._array.shape, like._array.dtype))


class Add(Function):
    """y = a + b.  da = dy, db = dy (each summed back to its input's shape)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return backend_of(a).add(a, b)  # in parallel for large arrays of one shape (a residual connection)

    @staticmethod
    def backward(ctx, dy):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(dy, sa) if need_a else None, sum_to_shape(dy, sb) if need_b else None)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = inputs
        sa, sb = ctx.shapes
        return (None if a is None else sum_to_shape_graph(dy, sa), None if b is None else sum_to_shape_graph(dy, sb))


class Sub(Function):
    """y = a - b.  da = dy, db = -dy."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, dy):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (sum_to_shape(dy, sa) if need_a else None, sum_to_shape(-dy, sb) if need_b else None)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = inputs
        sa, sb = ctx.shapes
        return (None if a is None else sum_to_shape_graph(dy, sa), None if b is None else sum_to_shape_graph(-dy, sb))


class Mul(Function):
    """y = a * b.  da = dy * b, db = dy * a."""

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(a if need_b else None, b if need_a else None)  # da needs b, db needs a
        ctx.shapes = (a.shape, b.shape)
        return backend_of(a).mul(a, b)  # in parallel for large arrays of one shape, or with a scalar

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        be = backend_of(dy)
        return (
            sum_to_shape(be.mul(dy, b), ctx.shapes[0]) if need_a else None,
            sum_to_shape(be.mul(dy, a), ctx.shapes[1]) if need_b else None,
        )

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = inputs
        saved_a, saved_b = ctx.saved  # the value of an argument that needs no gradient: a constant here
        return (
            None if a is None else sum_to_shape_graph(dy * (saved_b if b is None else b), ctx.shapes[0]),
            None if b is None else sum_to_shape_graph(dy * (saved_a if a is None else a), ctx.shapes[1]),
        )


class Div(Function):
    """y = a / b.  da = dy / b, db = -dy * a / b²."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)  # da needs b, db needs a and b
        ctx.shapes = (a.shape, b.shape)
        return a / b

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        da = sum_to_shape(dy / b, ctx.shapes[0]) if need_a else None
        db = sum_to_shape(-dy * a / (b * b), ctx.shapes[1]) if need_b else None
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = inputs
        saved_a, saved_b = ctx.saved
        bv = graph_operand(b, saved_b, dy)
        da = None if a is None else sum_to_shape_graph(dy / bv, ctx.shapes[0])
        db = None if b is None else sum_to_shape_graph(
            -(dy * graph_operand(a, saved_a, dy)) / (bv * bv), ctx.shapes[1])
        return da, db


class Neg(Function):
    """y = -x.  dx = -dy."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, dy):
        return -dy

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return -dy


def _power(x, p):
    """x ** p, with the small integer exponents as products, as PyTorch computes them (x³ = x·x·x): NumPy's
    pow for a float exponent is one libm call per element, 10-20x slower (minGPT's GELU cubes its input)."""
    if p == 3:
        return backend_of(x).cube(x)
    if p == -2:
        return 1 / (x * x)
    return x**p


class Pow(Function):
    """y = x ** p for a constant exponent p.  dx = dy * p * x^(p-1)."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x)
        ctx.p = p
        return _power(x, p)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        p = ctx.p
        if p == 0:  # x⁰ = 1 everywhere: no gradient (p·x^(p-1) would be 0·inf at x = 0)
            return np.zeros_like(dy), None
        if p == 3:
            return backend_of(dy).cube_backward(x, dy), None  # dy · (3 · x²), one pass on the CPU
        return dy * (p * _power(x, p - 1)), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        p = ctx.p
        if p == 0:
            return zeros_graph(dy), None
        return dy * (Pow.apply(inputs[0], p - 1) * p), None


class Exp(Function):
    """y = e^x.  dx = dy * y."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy * y


    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy * Exp.apply(inputs[0])  # y recomputed from x, so that it is differentiated


class Log(Function):
    """y = ln x.  dx = dy / x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return dy / x

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy / inputs[0]


class Sqrt(Function):
    """y = √x.  dx = dy / (2y)."""

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return dy / (2 * y)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return dy / (Sqrt.apply(inputs[0]) * 2)


class Abs(Function):
    """y = |x|.  dx = dy * sign(x) (0 at x = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        return dy * np.sign(x)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (x,) = ctx.saved
        return dy * saved_constant(dy, np.sign(x))  # piecewise: the sign is a constant (0 at x = 0)


class Tanh(Function):
    """y = tanh x.  dx = dy * (1 - y²)."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return backend_of(dy).tanh_backward(y, dy)  # one pass on the CPU for large arrays

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        y = Tanh.apply(inputs[0])
        return dy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x).  dx = dy * y * (1 - y).
    One pass each way (the backend's sigmoid: on the CPU kernels/cpu/sigmoid.py, from e^-|x|, with full
    relative precision in the lower tail down to x ≈ -87 in float32, -708 in float64, 0 below)."""

    fresh_grads = True  # the backward returns a new array

    @staticmethod
    def forward(ctx, x):
        y = backend_of(x).sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return backend_of(dy).sigmoid_backward(y, dy)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        y = Sigmoid.apply(inputs[0])
        return dy * y * (1 - y)


class Relu(Function):
    """y = max(x, 0).  dx = dy where y > 0 (that is, x > 0), else 0; y is saved, as PyTorch does,
    so that changing x in place afterwards is allowed."""

    fresh_grads = True  # the backward returns a new array

    @staticmethod
    def forward(ctx, x):
        y = backend_of(x).relu(x)  # one parallel pass on the CPU for large arrays
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return backend_of(dy).relu_backward(y, dy)

    @staticmethod
    def grad_factor(ctx):
        """The backward is dy · [y > 0]: the factor a consuming product may apply as it writes dy (Function)."""
        return "relu", ctx.saved[0]

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (y,) = ctx.saved
        return dy * saved_constant(dy, (y > 0).astype(dy._array.dtype))  # the mask is a constant


class Gelu(Function):
    """GELU, exact form (approximate='none', PyTorch's default): y = x Φ(x), Φ(x) = (1 + erf(x/√2))/2;
        dx = dy · (Φ(x) + x φ(x)),  φ(x) = e^(-x²/2)/√(2π).
    tanh form (approximate='tanh'): y = x/2 · (1 + tanh u), u = c (x + 0.044715 x³), c = √(2/π);
        dx = dy · [ (1 + tanh u)/2 + x/2 · (1 - tanh² u) · c (1 + 3·0.044715 x²) ].
    Both directions are one fused kernel pass (kernels/cpu/activations.py, kernels/cuda/activations.py).
    """

    fresh_grads = True  # both backends' backward kernels return a new array (no copy before accumulating)

    @staticmethod
    def forward(ctx, x, exact):
        ctx.save_for_backward(x)
        ctx.exact = exact
        return backend_of(x).gelu_erf(x) if exact else backend_of(x).gelu(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved
        backend = backend_of(dy)
        return backend.gelu_erf_backward(x, dy) if ctx.exact else backend.gelu_backward(x, dy), None

    @staticmethod
    def grad_factor(ctx):
        """The backward is dy · gelu'(x): the factor a consuming product may apply as it writes dy (Function)."""
        return ("gelu_erf" if ctx.exact else "gelu_tanh"), ctx.saved[0]

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """The formulas of the docstring in tensor ops (the fused kernels leave no graph)."""
        x = inputs[0]
        if ctx.exact:
            from .unary import Erf

            cdf = (Erf.apply(x * (1 / math.sqrt(2))) + 1) * 0.5
            pdf = Exp.apply(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))
            return dy * (cdf + x * pdf), None
        c = math.sqrt(2 / math.pi)
        t = Tanh.apply((x + x * x * x * 0.044715) * c)
        return dy * ((t + 1) * 0.5 + x * 0.5 * (1 - t * t) * (x * x * (3 * 0.044715 * c) + c)), None


class Maximum(Function):
    """y = max(a, b) elementwise.  The gradient goes to the larger input; ties split it evenly."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        share_a = ((a > b) + 0.5 * (a == b)).astype(dy.dtype)
        need_a, need_b = ctx.needs_input_grad
        return (
            sum_to_shape(dy * share_a, a.shape) if need_a else None,
            sum_to_shape(dy * (1 - share_a), b.shape) if need_b else None,
        )

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = ctx.saved
        share_a = ((a > b) + 0.5 * (a == b)).astype(dy._array.dtype)  # piecewise: a constant share
        return (
            None if inputs[0] is None else sum_to_shape_graph(dy * saved_constant(dy, share_a), a.shape),
            None if inputs[1] is None else sum_to_shape_graph(dy * saved_constant(dy, 1 - share_a), b.shape),
        )


class Minimum(Function):
    """y = min(a, b) elementwise.  The gradient goes to the smaller input; ties split it evenly."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        share_a = ((a < b) + 0.5 * (a == b)).astype(dy.dtype)
        need_a, need_b = ctx.needs_input_grad
        return (
            sum_to_shape(dy * share_a, a.shape) if need_a else None,
            sum_to_shape(dy * (1 - share_a), b.shape) if need_b else None,
        )

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        a, b = ctx.saved
        share_a = ((a < b) + 0.5 * (a == b)).astype(dy._array.dtype)  # piecewise: a constant share
        return (
            None if inputs[0] is None else sum_to_shape_graph(dy * saved_constant(dy, share_a), a.shape),
            None if inputs[1] is None else sum_to_shape_graph(dy * saved_constant(dy, 1 - share_a), b.shape),
        )


class Where(Function):
    """y = a where condition else b.  da = dy where condition, db = dy elsewhere."""

    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        ctx.shapes = (a.shape, b.shape)
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, dy):
        (condition,) = ctx.saved
        sa, sb = ctx.shapes
        _, need_a, need_b = ctx.needs_input_grad
        zero = np.zeros((), dtype=dy.dtype)
        return (
            None,
            sum_to_shape(np.where(condition, dy, zero), sa) if need_a else None,
            sum_to_shape(np.where(condition, zero, dy), sb) if need_b else None,
        )

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (condition,) = ctx.saved
        sa, sb = ctx.shapes
        return (
            None,
            None if inputs[1] is None else sum_to_shape_graph(where(condition, dy, 0.0), sa),
            None if inputs[2] is None else sum_to_shape_graph(where(condition, 0.0, dy), sb),
        )


class MaskedFill(Function):
    """y = value where mask else x (mask broadcasts to x).  dx = dy where not mask, else 0."""

    fresh_grads = True  # the backward returns a new array

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        return backend_of(x).masked_fill(x, mask, value)  # in parallel for a large x (an attention map)

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        return backend_of(dy).masked_fill(dy, mask, np.zeros((), dtype=dy.dtype)), None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (mask,) = ctx.saved
        return masked_fill(dy, mask, 0.0), None, None


class Cast(Function):
    """y = x converted to another float dtype.  dx = dy converted back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, dy):
        return dy.astype(ctx.dtype), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        return cast(dy, ctx.dtype), None


# ---- public functions ---------------------------------------------------------------


def _untracked(a, b):
    """For a binary op on agreed operands (operands()) none of which needs a gradient, on the host, with no study
    tool watching: (a's array, b's array, the tensor whose _wrap makes the result), which the op computes without
    Function.apply (it would record nothing: `i + 1` on an index, a comparison's operand). None otherwise: the op
    goes through apply (a gradient to record, an observer, a device array and its checks)."""
    if _function._observers:
        return None
    if isinstance(a, Variable):
        if a._requires_grad:
            return None
        da, like = a._array, a
    else:
        da, like = a, None
    if isinstance(b, Variable):
        if b._requires_grad:
            return None
        db = b._array
        if like is None:
            like = b
    else:
        db = b
    if type(da) is not np.ndarray or type(db) is not np.ndarray:
        return None
    return da, db, like


def add(a: Operand, b: Operand, *, alpha: Number = 1) -> Tensor:
    """a + alpha · b (PyTorch's add, alpha keyword-only)."""
    if alpha != 1:
        b = mul(b, alpha) if isinstance(b, Variable) else b * alpha
    a, b = operands("add", a, b)
    plain = _untracked(a, b)
    if plain is not None:  # what Add.forward returns, without the graph bookkeeping
        da, db, like = plain
        return like._wrap(backend_of(da).add(da, db))
    return Add.apply(a, b)


def sub(a: Operand, b: Operand, *, alpha: Number = 1) -> Tensor:
    """a - alpha · b."""
    if alpha != 1:
        b = mul(b, alpha) if isinstance(b, Variable) else b * alpha
    a, b = operands("sub", a, b)
    plain = _untracked(a, b)
    if plain is not None:  # Sub.forward's a - b
        da, db, like = plain
        return like._wrap(da - db)
    return Sub.apply(a, b)


def mul(a: Operand, b: Operand) -> Tensor:
    a, b = operands("mul", a, b)
    plain = _untracked(a, b)
    if plain is not None:  # Mul.forward's a * b
        da, db, like = plain
        return like._wrap(da * db)
    return Mul.apply(a, b)


def div(a: Operand, b: Operand) -> Tensor:
    a, b = operands("div", a, b)
    if array_of(a).dtype.kind != "f":  # true division of integers gives float32, as in PyTorch
        a, b = (float32_constant(t) for t in (a, b))
    return Div.apply(a, b)


def float32_constant(t):
    """An integer operand (which never requires grad) as a float32 constant tensor or array."""
    return t._wrap(t._array.astype(np.float32)) if isinstance(t, Variable) else t.astype(np.float32)


def neg(x: Tensor) -> Tensor:
    return Neg.apply(x)


class PowTensor(Function):
    """y = a ** b with a tensor exponent (a and b broadcast; either may be a constant).

    da = dy · b · a^(b-1) (0 where b = 0), db = dy · y · ln a (0 where a = 0 and b >= 0, as PyTorch masks it).
    """

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        ctx.shapes = (np.shape(a), np.shape(b))
        return y

    @staticmethod
    def backward(ctx, dy):
        a, b, y = ctx.saved
        need_a, need_b = ctx.needs_input_grad
        da = db = None
        zero = np.zeros((), dtype=dy.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                da = sum_to_shape(np.where(b == 0, zero, dy * b * np.power(a, b - 1)), ctx.shapes[0])
            if need_b:
                db = sum_to_shape(np.where((a == 0) & (b >= 0), zero, dy * y * np.log(a)), ctx.shapes[1])
        return da, db

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """The backward's formulas with y = a ** b recomputed; the masks (b = 0; a = 0 and b >= 0) are constants.
        As in PyTorch, a second derivative through a masked place where a = 0 can be nan (0 · inf)."""
        a, b = inputs
        saved_a, saved_b, _ = ctx.saved
        av, bv = graph_operand(a, saved_a, dy), graph_operand(b, saved_b, dy)
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if a is not None:
                da = sum_to_shape_graph(where(saved_constant(dy, saved_b == 0), 0.0,
                                              dy * bv * PowTensor.apply(av, bv - 1)), ctx.shapes[0])
            if b is not None:
                db = sum_to_shape_graph(where(saved_constant(dy, (saved_a == 0) & (saved_b >= 0)), 0.0,
                                              dy * PowTensor.apply(av, bv) * Log.apply(av)), ctx.shapes[1])
        return da, db


def pow(input: Operand, exponent: Operand) -> Tensor:
    """input ** exponent: a tensor to a number (the fast path), a number to a tensor, or two tensors
    (broadcast); differentiable in both. Integer tensors to integer powers stay integers."""
    x = input
    if isinstance(exponent, Variable) or not isinstance(x, Variable):
        if not isinstance(x, Variable) and not isinstance(x, (bool, int, float, np.number)):
            raise TypeError(f"pow: unsupported base of type {type(x).__name__}")
        a, b = operands("pow", x, exponent)
        da, db = array_of(a), array_of(b)
        if da.dtype.kind in "iub" and db.dtype.kind in "iub":  # integers: no gradient
            if np.any(db < 0):
                raise ValueError("pow: integers to negative integer powers are not allowed")
            like = a if isinstance(a, Variable) else b
            return like._wrap(np.power(da.astype(np.int64) if da.dtype == np.bool_ else da, db))
        return PowTensor.apply(a, b)
    if x.dtype.kind != "f" and isinstance(exponent, (float, np.floating)):
        x = float32_constant(x)  # int ** 0.5 is float32, as in PyTorch
    return Pow.apply(x, exponent)


def _unary(function: Any, name: str) -> Callable[[Tensor], Tensor]:
    def op(x):
        if x._array.dtype not in _KERNEL_FLOATS:
            check_float(name, x._array)  # raises the error
        return function.apply(x)

    op.__name__ = name
    op.__doc__ = function.__doc__
    return op


exp = _unary(Exp, "exp")
log = _unary(Log, "log")
sqrt = _unary(Sqrt, "sqrt")
tanh = _unary(Tanh, "tanh")
sigmoid = _unary(Sigmoid, "sigmoid")
relu = _unary(Relu, "relu")


def cast(x: Tensor, dtype: DType) -> Tensor:
    """x as `dtype`; differentiable between float dtypes (an integer result carries no gradient)."""
    dtype = as_dtype(dtype, "cast")
    if dtype == x.dtype:
        return x
    if not np.issubdtype(dtype, np.floating):
        return x._wrap(x._array.astype(dtype))
    return Cast.apply(x, dtype)


def abs(x: Tensor) -> Tensor:
    if isinstance(x, Variable) and x._array.dtype == np.bool_:
        raise NotImplementedError(f"abs: not implemented for bool tensors (shape {tuple(x.shape)}), as in PyTorch; "
                                  "a bool is its own absolute value")
    return Abs.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """PyTorch's F.gelu: the exact form x Φ(x) (approximate='none', the default) or the tanh form
    (approximate='tanh'); see Gelu."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    check_float("gelu", x._array)
    return Gelu.apply(x, approximate == "none")


def maximum(a: Operand, b: Operand) -> Tensor:
    return Maximum.apply(*operands("maximum", a, b))


def minimum(a: Operand, b: Operand) -> Tensor:
    return Minimum.apply(*operands("minimum", a, b))


def where(condition: Tensor, input: Any = None, other: Any = None) -> Any:
    """input where condition else other (broadcast; either may be a number); where(condition) alone is
    nonzero(condition, as_tuple=True), as in PyTorch."""
    if input is None and other is None:
        from .indexing import nonzero

        return nonzero(condition if isinstance(condition, Variable) else condition, as_tuple=True)
    if input is None or other is None:
        raise TypeError("where: expected both input and other (or neither)")
    if not isinstance(input, Variable) and not isinstance(other, Variable):  # two numbers
        like = condition if isinstance(condition, Variable) else None
        if like is None:
            raise TypeError("where: condition must be a bool tensor")
        from ..dtypes import default_dtype_for

        value = np.asarray(input)
        value = value.astype(_common_dtype(value, other) if value.dtype.kind != "f" or
                             np.asarray(other).dtype.kind == "f" else default_dtype_for(value))
        if value.dtype.kind == "f" and not isinstance(input, np.ndarray):
            value = value.astype(default_dtype_for(value))
        input = like._wrap(on_device_of("where", value, condition._array))
    a, b = operands("where", input, other)
    cond = on_device_of("where", condition, array_of(a if isinstance(a, Variable) else b))
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    check_broadcast("where", cond.shape, np.shape(array_of(a)), np.shape(array_of(b)))
    return Where.apply(cond, a, b)


def masked_fill(x: Tensor, mask: Tensor, value: Any) -> Tensor:
    mask = on_device_of("masked_fill", mask, x._array)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}")
    if check_broadcast("masked_fill", x.shape, mask.shape) != tuple(x.shape):
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the input's shape {x.shape}")
    if isinstance(value, Variable):  # a 0-d tensor on x's device (its gradient is not tracked)
        if value.ndim != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
        value = on_device_of("masked_fill", value, x._array).astype(x.dtype)
    else:
        value = np.asarray(value, dtype=x.dtype)
    return MaskedFill.apply(x, mask, value)


def _comparison(ufunc: Any, name: str) -> Callable[[Any, Any], Tensor]:
    def op(a, b):
        a, b = operands(name, a, b)
        like = a if isinstance(a, Variable) else b
        return like._wrap(ufunc(array_of(a), array_of(b)))

    op.__name__ = name
    return op


eq = _comparison(np.equal, "eq")
ne = _comparison(np.not_equal, "ne")
lt = _comparison(np.less, "lt")
le = _comparison(np.less_equal, "le")
gt = _comparison(np.greater, "gt")
ge = _comparison(np.greater_equal, "ge")
