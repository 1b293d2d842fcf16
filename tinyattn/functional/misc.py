"""More of PyTorch's top-level functions: clone, detach, broadcast_tensors, broadcast_shapes, isin, tensordot,
result_type, promote_types, can_cast, scalar_tensor, rsub, unravel_index, hsplit/vsplit/dsplit,
split_with_sizes, float_power, fmax/fmin, copysign, heaviside, sinc, erfc, logaddexp2, dist,
cartesian_prod, block_diag, combinations."""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..autograd import Function, Variable
from . import elementwise as ew
from .checks import check_broadcast, check_tensor, sum_to_shape, sum_to_shape_graph, host_result, on_host
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .._typing import Device as DeviceLike, DType, Number, Operand
    from ..tensor import Tensor

__all__ = [
    "block_diag", "broadcast_shapes", "broadcast_tensors", "can_cast", "cartesian_prod", "clone", "combinations",
    "copysign", "detach", "dist", "dsplit", "erfc", "float_power", "fmax", "FMaxMin", "fmin", "heaviside", "hsplit",
    "isin", "logaddexp2", "promote_types", "result_type", "rsub", "scalar_tensor", "Sinc", "sinc", "split_with_sizes",
    "tensordot", "unravel_index", "vsplit",
]


def clone(input: Tensor, *, memory_format: Any = None) -> Tensor:
    check_tensor("clone", "input", input)
    return input.clone()


def detach(input: Tensor) -> Tensor:
    check_tensor("detach", "input", input)
    return input.detach()


def broadcast_shapes(*shapes: Any) -> Any:
    """The shape that all `shapes` broadcast to (a tinyattn.Size)."""
    from ..size import Size

    return Size(check_broadcast("broadcast_shapes", *[(s,) if isinstance(s, int) else tuple(s) for s in shapes]))


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors expanded to their common broadcast shape (views)."""
    from .shape import expand

    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    shape = check_broadcast("broadcast_tensors", *[tuple(t.shape) for t in tensors])
    return tuple(expand(t, shape) for t in tensors)


def isin(elements: Operand, test_elements: Operand, *, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """A bool tensor: whether each element of `elements` occurs in `test_elements`."""
    a = elements.numpy() if isinstance(elements, Variable) else np.asarray(elements)
    b = test_elements.numpy() if isinstance(test_elements, Variable) else np.asarray(test_elements)
    like = elements if isinstance(elements, Variable) else test_elements
    if not isinstance(like, Variable):
        raise TypeError("isin: expected at least one tensor")
    return host_result(like, np.asarray(np.isin(a, b, assume_unique=assume_unique, invert=invert)))


def tensordot(a: Tensor, b: Tensor, dims: Any = 2) -> Tensor:
    """Σ over paired dims: dims = n (the last n of a with the first n of b) or ([dims of a], [dims of b])."""
    from .einsum import einsum

    check_tensor("tensordot", "a", a)
    check_tensor("tensordot", "b", b)
    if isinstance(dims, Variable):
        dims = dims.tolist()
    if isinstance(dims, (int, np.integer)):
        if dims < 0 or dims > min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: dims {dims} out of range for shapes {tuple(a.shape)} and {tuple(b.shape)}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
        da, db = [d % a.ndim for d in da], [d % b.ndim for d in db]
    if len(da) != len(db) or any(a.shape[i] != b.shape[j] for i, j in zip(da, db)):
        raise ValueError(f"tensordot: contracted dims {da} of {tuple(a.shape)} and {db} of {tuple(b.shape)} differ")
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    la = [next(letters) for _ in range(a.ndim)]
    lb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(da, db):
        lb[j] = la[i]
    out = [la[i] for i in range(a.ndim) if i not in da] + [lb[j] for j in range(b.ndim) if j not in db]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", a, b)


def result_type(tensor1, tensor2):
    """The dtype PyTorch's type promotion gives for an op on the two (tensors or numbers)."""
    a, b = ew.operands("result_type", tensor1, tensor2) if isinstance(tensor1, Variable) or isinstance(
        tensor2, Variable) else (np.asarray(tensor1), np.asarray(tensor2))
    return np.result_type(ew.array_of(a), ew.array_of(b)) if not isinstance(a, Variable) else a._array.dtype


def promote_types(type1, type2):
    from ..dtypes import as_dtype

    t1, t2 = as_dtype(type1, "promote_types"), as_dtype(type2, "promote_types")
    if (t1.kind == "f") != (t2.kind == "f"):
        return t1 if t1.kind == "f" else t2
    return np.promote_types(t1, t2)


def can_cast(from_, to):
    """PyTorch's casting rule: no float to integer, no number to bool; otherwise allowed."""
    from ..dtypes import as_dtype

    f, t = as_dtype(from_, "can_cast"), as_dtype(to, "can_cast")
    order = {"b": 0, "u": 1, "i": 1, "f": 2}
    return order[f.kind] <= order[t.kind]


def scalar_tensor(s: Number, *, dtype: DType = None, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    from ..creation import tensor
    from ..dtypes import get_default_dtype

    return tensor(float(s), dtype=dtype or get_default_dtype(), device=device, requires_grad=requires_grad)


def rsub(input: Tensor, other: Operand, *, alpha: Number = 1) -> Tensor:
    """other - alpha · input."""
    return ew.sub(other, input, alpha=alpha) if isinstance(other, Variable) else ew.add(
        ew.mul(input, -alpha), other)


def unravel_index(indices, shape):
    """The coordinates of flat `indices` in a tensor of `shape`: a tuple of int64 tensors."""
    idx = indices.numpy() if isinstance(indices, Variable) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"unravel_index: expected integer indices, got dtype {idx.dtype}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n = math.prod(shape)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"unravel_index: index out of bounds for shape {shape}")
    from ..creation import tensor

    return tuple(tensor(c.astype(np.int64)) for c in np.unravel_index(idx % max(n, 1), shape))


def _nsplit(op, input, sections, dim, min_ndim):
    from .shape_ops import tensor_split

    check_tensor(op, "input", input)
    if input.ndim < min_ndim:
        raise ValueError(f"{op}: expected a tensor with at least {min_ndim} dims, got shape {tuple(input.shape)}")
    if isinstance(sections, int) and input.shape[dim] % sections:
        raise ValueError(f"{op}: size {input.shape[dim]} of dim {dim} is not divisible by {sections}")
    return tensor_split(input, sections, dim)


def hsplit(input: Tensor, indices_or_sections: Any) -> tuple[Tensor, ...]:
    return _nsplit("hsplit", input, indices_or_sections, 0 if input.ndim == 1 else 1, 1)


def vsplit(input: Tensor, indices_or_sections: Any) -> tuple[Tensor, ...]:
    return _nsplit("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Tensor, indices_or_sections: Any) -> tuple[Tensor, ...]:
    return _nsplit("dsplit", input, indices_or_sections, 2, 3)


def split_with_sizes(input: Tensor, split_sizes: Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    from .shape_ops import split

    return split(input, list(split_sizes), dim)


def float_power(input: Operand, exponent: Operand) -> Tensor:
    """input ** exponent in float64."""
    a = ew.cast(input, np.float64) if isinstance(input, Variable) else float(input)
    b = ew.cast(exponent, np.float64) if isinstance(exponent, Variable) else float(exponent)
    return ew.pow(a, b)


@on_host
class FMaxMin(Function):
    """y = max(a, b) (or min) ignoring NaN: NaN only where both are NaN.  The gradient goes to the chosen
    input (to a where they tie)."""

    @staticmethod
    def forward(ctx, a, b, largest):
        y = np.fmax(a, b) if largest else np.fmin(a, b)
        ctx.save_for_backward((y == a) | (np.isnan(b) & ~np.isnan(a)))
        ctx.shapes = (np.shape(a), np.shape(b))
        return y

    @staticmethod
    def backward(ctx, dy):
        (take_a,) = ctx.saved
        zero = np.zeros((), dy.dtype)
        need_a, need_b = ctx.needs_input_grad[:2]
        return (sum_to_shape(np.where(take_a, dy, zero), ctx.shapes[0]) if need_a else None,
                sum_to_shape(np.where(take_a, zero, dy), ctx.shapes[1]) if need_b else None, None)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        (take_a,) = ctx.saved
        return (None if inputs[0] is None else sum_to_shape_graph(ew.where(take_a, dy, 0.0), ctx.shapes[0]),
                None if inputs[1] is None else sum_to_shape_graph(ew.where(take_a, 0.0, dy), ctx.shapes[1]), None)


def fmax(input: Tensor, other: Tensor) -> Tensor:
    a, b = ew.operands("fmax", input, other)
    return FMaxMin.apply(a, b, True)


def fmin(input: Tensor, other: Tensor) -> Tensor:
    a, b = ew.operands("fmin", input, other)
    return FMaxMin.apply(a, b, False)


def copysign(input: Tensor, other: Operand) -> Tensor:
    """|input| with the sign of other.  d/dinput = sign agreement; no gradient to other (PyTorch: 0)."""
    a, b = ew.operands("copysign", input, other)
    if ew.array_of(a).dtype.kind != "f":
        a, b = (ew.float32_constant(t) for t in (a, b))
    sign = np.where(np.signbit(ew.array_of(b)), -1.0, 1.0).astype(ew.array_of(a).dtype)
    like = a if isinstance(a, Variable) else b
    return ew.mul(ew.abs(a) if isinstance(a, Variable) else like._wrap(np.abs(a)), like._wrap(sign))


def heaviside(input: Tensor, values: Operand) -> Tensor:
    """0 where input < 0, 1 where input > 0, `values` where input == 0 (no gradient)."""
    check_tensor("heaviside", "input", input)
    v = values.numpy() if isinstance(values, Variable) else np.asarray(values)
    a = input.numpy()
    return host_result(input, np.heaviside(a, v).astype(np.result_type(a.dtype, v.dtype)))


@on_host
class Sinc(Function):
    """y = sin(πx) / (πx), 1 at 0.  dx = dy (cos(πx) - y) / x, 0 at x = 0."""

    @staticmethod
    def forward(ctx, x):
        y = np.sinc(x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (np.cos(np.pi * x) - y) / x
        return dy * np.where(x == 0, np.zeros((), x.dtype), g).astype(dy.dtype)

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """g(x) = (cos(πx) - sinc x) / x as the backward; at x = 0 it is written -π²x/3 (its Taylor term), which
        is 0 there, as the backward's, and has the right derivative, sinc''(0) = -π²/3."""
        from .unary import Cos

        x = inputs[0]
        zero = ctx.saved[0] == 0
        safe = ew.where(zero, 1.0, x)  # no 0/0 in the branch that where() drops (its gradient would be nan)
        g = (Cos.apply(safe * math.pi) - Sinc.apply(safe)) / safe
        return dy * ew.where(zero, x * (-math.pi ** 2 / 3), g)


def sinc(input: Tensor) -> Tensor:
    from .unary import float_input

    return Sinc.apply(float_input("sinc", input))


def erfc(input: Tensor) -> Tensor:
    """1 - erf(x)."""
    from .unary import erf

    return ew.sub(1.0, erf(input))


def logaddexp2(input: Tensor, other: Tensor) -> Tensor:
    """log₂(2^a + 2^b)."""
    from .pointwise import logaddexp

    ln2 = math.log(2)
    return ew.div(logaddexp(ew.mul(input, ln2), ew.mul(other, ln2)), ln2)


def dist(input: Tensor, other: Tensor, p: float = 2) -> Tensor:
    """‖input - other‖_p over all elements."""
    from .reduction import vector_norm

    return vector_norm(ew.sub(input, other), p)


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """Every combination of one element from each 1-D tensor, as rows (a 1-D tensor for one input)."""
    from .counting import meshgrid
    from .shape import reshape, stack

    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([reshape(g, -1) for g in grids], 1)


def block_diag(*tensors: Tensor) -> Tensor:
    """The tensors (0-, 1- or 2-D) placed along the diagonal of one matrix, zeros elsewhere."""
    from .nn_ops import pad
    from .shape import cat, reshape

    mats = [reshape(t, 1, 1) if t.ndim == 0 else reshape(t, 1, -1) if t.ndim == 1 else t for t in tensors]
    for t in mats:
        if t.ndim != 2:
            raise ValueError(f"block_diag: expected tensors of at most 2 dims, got shape {tuple(t.shape)}")
    total = sum(t.shape[1] for t in mats)
    rows, left = [], 0
    for t in mats:
        rows.append(pad(t, (left, total - left - t.shape[1])))
        left += t.shape[1]
    return cat(rows, 0)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """Rows of r elements of the 1-D input, in itertools' order."""
    from .indexing import index_select
    from .shape import reshape

    check_tensor("combinations", "input", input)
    if input.ndim != 1:
        raise ValueError(f"combinations: expected a 1-D tensor, got shape {tuple(input.shape)}")
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    idx = np.array(list(pick(range(input.shape[0]), r)), dtype=np.int64).reshape(-1, r)
    return reshape(index_select(input, 0, input._wrap(idx.reshape(-1))), idx.shape)
