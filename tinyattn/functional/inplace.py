"""In-place ops (x.add_(y), x += y, x[i] = v, x.zero_(), ...) with PyTorch's rules.

An in-place op writes its result into the tensor's own array, so every alias of that memory (a
view, a detached copy, a state_dict entry, the array from .numpy()) sees the change, and it bumps
the tensor's version counter, so a backward that saved the old value raises instead of silently
using the new one. Three cases:

1. Nothing to record (gradients off, or no operand requires grad): the result is written where
   the data lies. This is the optimiser's case: `with ta.no_grad(): w -= lr * w.grad` changes the
   Parameter object itself.
2. A leaf that requires grad, with gradients on: RuntimeError, as in PyTorch (the op would not
   be part of any graph, and the leaf's gradient would describe a value it no longer has).
3. Recording: the op runs out of place on the old value (a copy that takes the tensor's place in
   the graph) and the result is written back; the tensor now stands for the op's output, so its
   grad_fn is the op. Nodes recorded earlier keep their edge to the old value (see autograd.Node).
   Views are kept consistent, as in PyTorch: changing a view makes its base a new node (the old
   base with the view's elements replaced), and every live view of a changed base is re-made from
   the base's new node, so a later use of either carries the change's gradient.

The result must have the tensor's shape (the other operand broadcasts to it, not the reverse)
and a dtype that casts to the tensor's ("same kind": int64 += 0.5 is an error, as in PyTorch).
"""
import numpy as np

from ..autograd import Function, Variable, is_grad_enabled, no_grad, replay_view, view_positions
from ..backend import backend_of, device_of, move
from . import elementwise as ew
from .checks import check_broadcast, on_device_of, sum_to_shape, sum_to_shape_graph
from .shape import normalize_index, reshape

__all__ = [
    "add_", "apply_inplace", "bitwise_and_", "bitwise_or_", "bitwise_xor_", "clamp_", "copy_", "div_", "fill_",
    "floor_divide_", "index_add_", "index_copy_", "index_fill_", "index_put_", "masked_fill_", "masked_scatter_",
    "mul_", "pow_", "remainder_", "replace_values", "scatter_", "scatter_add_", "scatter_reduce_", "SetItem", "setitem",
    "sub_", "zero_",
]


def apply_inplace(op, x, compute, operands=(), same_kind=True, direct=None, saves_input=True):
    """Change x in place to `compute(t)`, an out-of-place op applied to a tensor t holding x's value.

    `direct(x)`, when given, does the same job by writing into x._array itself; it is used when
    nothing is recorded, to spare a temporary the size of x (x[i] = v, x.fill_(v)).
    `saves_input=False` says that compute's op does not keep t's values for its backward (add,
    where, setitem): t then shares x's memory instead of holding a copy of the old values.
    """
    if not isinstance(x, Variable):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    grad_mode = is_grad_enabled()
    base = x if x._view is None else x._view[0]
    if grad_mode and base._node is None and base._requires_grad:
        what = "a leaf tensor" if base is x else f"a view of a leaf tensor (shape {tuple(base.shape)})"
        raise RuntimeError(
            f"{op}: {what} that requires grad (shape {tuple(x.shape)}) cannot be changed in place while "
            "gradients are recorded; do it inside `with ta.no_grad():` (as an optimiser does), or change a .clone()"
        )
    record = grad_mode and x._array.dtype.kind == "f" and (
        x._requires_grad or any(isinstance(o, Variable) and o._requires_grad for o in operands))
    _check_writable(op, x)
    if not record:
        if direct is not None:
            direct(x)
        else:
            with no_grad():
                result = compute(x)
            _check_result(op, x, result.shape, result.dtype, same_kind)
            x._array[...] = result._array
        x._bump_version()
        return x
    if x._view is not None:  # a view made under no_grad, or before its base changed: make it again first
        _take_place(x, replay_view(_stand_in(base), x._view[1]))
    old = x._wrap(x._array.copy() if saves_input else x._array, x._requires_grad, x._node, x._index)
    result = compute(old)
    _check_result(op, x, result.shape, result.dtype, same_kind)
    if result.dtype != x.dtype:
        result = ew.cast(result, x.dtype)
    if x._view is None:
        x._array[...] = result._array
        _take_place(x, result)
    else:
        _write_into_base(op, x, result)
    x._bump_version()
    _refresh_views(base)
    return x


def _take_place(x, result):
    """From now on x stands for `result` in the graph (x keeps its own array)."""
    x._node, x._index, x._requires_grad = result._node, result._index, result._requires_grad


def _write_into_base(op, view, result):
    """An in-place op on a view changes its base: the base becomes a new node, old base with the
    view's elements replaced (PyTorch's CopySlices); the gradient of those elements goes to `result`."""
    base, steps = view._view
    if device_of(base._array) != "cpu":
        raise NotImplementedError(f"{op}: changing a view of a cuda tensor in place while gradients are recorded "
                                  "is not supported yet; use the out-of-place op or torch-style x = x.clone()")
    positions = view_positions(base, steps).reshape(-1)
    old_base = _stand_in(base)  # SetItem keeps no values of it
    flat = SetItem.apply(reshape(old_base, -1), reshape(result, -1), positions)
    new_base = reshape(flat, base.shape)
    base._array[...] = new_base._array  # the view's elements included
    _take_place(base, new_base)


def _refresh_views(base):
    """Every live view of `base` becomes a view of its new node, as PyTorch regenerates a view's grad_fn."""
    cache, stand_in = {}, _stand_in(base)
    for t in base._counter.live_views():
        if t._view is not None and t._view[0] is base:
            _take_place(t, replay_view(stand_in, t._view[1], cache))


def _stand_in(base):
    """A tensor for base's present value in the graph (its node now), over base's array: the parent a replayed
    view (or SetItem) records, in place of base itself. base's node changes at its next in-place op; the stand-in's
    does not, so backward(create_graph=True) can still hand it to the view op's differentiable_backward as the
    tensor that op used. View ops and SetItem keep no values of it; the replay's outputs are only used for their
    node (the view tensor keeps its own counter and _view), so the stand-in's own counter is never seen."""
    return base._wrap(base._array, base._requires_grad, base._node, base._index)


def _check_writable(op, x):
    if isinstance(x._array, np.ndarray) and not x._array.flags.writeable:
        raise ValueError(
            f"{op}: the tensor of shape {tuple(x.shape)} is a read-only view (made by expand or broadcasting); "
            "change a .clone() instead"
        )


def _check_result(op, x, shape, dtype, same_kind):
    if tuple(shape) != tuple(x.shape):
        raise ValueError(f"{op}: the result has shape {tuple(shape)}, which does not fit the tensor of shape "
                         f"{tuple(x.shape)} (the other operand must broadcast to the tensor's shape)")
    if same_kind and not np.can_cast(dtype, x.dtype, "same_kind"):
        raise TypeError(f"{op}: the result type {np.dtype(dtype)} can't be cast to the tensor's dtype {x.dtype}")


def _value(op, value, x):
    """A fill value: a number, or a tensor on x's device (kept as a tensor so its gradient is tracked)."""
    if isinstance(value, Variable):
        if device_of(value._array) != device_of(x._array):
            on_device_of(op, value, x._array)  # raises, naming both devices
        return value
    if isinstance(value, (bool, int, float, np.number)):
        return value
    if isinstance(value, np.ndarray) or device_of(value) == "cuda":
        return x._wrap(on_device_of(op, value, x._array))
    raise TypeError(f"{op}: expected a number or a tensor, got {type(value).__name__}")


# ---- arithmetic ------------------------------------------------------------------------------------


def add_(x, other, alpha=1):
    """x ← x + alpha · other."""
    scaled = other if alpha == 1 else ew.mul(other, alpha) if isinstance(other, Variable) else other * alpha
    return apply_inplace("add_", x, lambda t: ew.add(t, scaled), (other,), saves_input=False)


def sub_(x, other, alpha=1):
    """x ← x - alpha · other."""
    scaled = other if alpha == 1 else ew.mul(other, alpha) if isinstance(other, Variable) else other * alpha
    return apply_inplace("sub_", x, lambda t: ew.sub(t, scaled), (other,), saves_input=False)


def mul_(x, other):
    """x ← x · other."""
    return apply_inplace("mul_", x, lambda t: ew.mul(t, other), (other,))


def div_(x, other):
    """x ← x / other (an integer tensor cannot hold the float quotient: an error, as in PyTorch)."""
    return apply_inplace("div_", x, lambda t: ew.div(t, other), (other,))


def pow_(x, exponent):
    """x ← x ** exponent."""
    return apply_inplace("pow_", x, lambda t: ew.pow(t, exponent), (exponent,))


def floor_divide_(x, other):
    """x ← x // other (floor division, as Python's)."""
    from .rounding import floor_divide

    return apply_inplace("floor_divide_", x, lambda t: floor_divide(t, other), (other,))


def remainder_(x, other):
    """x ← x % other (the sign of other, as Python's)."""
    from .rounding import remainder

    return apply_inplace("remainder_", x, lambda t: remainder(t, other), (other,))


def _bitwise_(name):
    def op(x, other):
        from . import logical

        return apply_inplace(f"{name}_", x, lambda t: getattr(logical, name)(t, other), (other,))

    op.__name__ = f"{name}_"
    op.__doc__ = f"x ← {name}(x, other), for bool and integer tensors."
    return op


bitwise_and_, bitwise_or_, bitwise_xor_ = (_bitwise_(n) for n in ("bitwise_and", "bitwise_or", "bitwise_xor"))


def clamp_(x, min=None, max=None):
    """x ← clamp(x, min, max)."""
    from .selection import clamp  # the out-of-place op

    return apply_inplace("clamp_", x, lambda t: clamp(t, min, max), (min, max))


# ---- replacing values ------------------------------------------------------------------------------


def replace_values(op, x, value, mask=None):
    """x ← value where mask (everywhere when mask is None); the gradient goes to value there and to
    the old x elsewhere. Any dtype converts to x's, as in PyTorch's fill_ and copy_."""
    value = _value(op, value, x)
    if isinstance(value, Variable) and check_broadcast(op, x.shape, value.shape) != tuple(x.shape):
        raise ValueError(f"{op}: a value of shape {tuple(value.shape)} does not broadcast to the tensor's shape "
                         f"{tuple(x.shape)}")
    if mask is not None:
        mask = on_device_of(op, mask, x._array)
        if mask.dtype != np.bool_:
            raise TypeError(f"{op}: mask must be a bool tensor, got dtype {mask.dtype}")
        if check_broadcast(op, x.shape, mask.shape) != tuple(x.shape):
            raise ValueError(f"{op}: mask of shape {tuple(mask.shape)} does not broadcast to the tensor's shape "
                             f"{tuple(x.shape)}")
    raw = value._array if isinstance(value, Variable) else value

    def direct(x):
        x._array[...] = raw if mask is None else np.where(mask, raw, x._array)

    def compute(t):
        everywhere = mask if mask is not None else backend_of(t._array).xp.ones((), dtype=np.bool_)
        if isinstance(value, Variable):
            return ew.where(everywhere, value if value.dtype == t.dtype else ew.cast(value, t.dtype), t)
        return ew.masked_fill(t, everywhere, value)

    return apply_inplace(op, x, compute, (value,), same_kind=False, direct=direct, saves_input=False)


def fill_(x, value):
    """x ← value everywhere (a number, or a 0-d tensor whose gradient is tracked)."""
    if isinstance(value, Variable) and value.ndim != 0:
        raise ValueError(f"fill_: value must be a number or a 0-d tensor, got shape {tuple(value.shape)}")
    return replace_values("fill_", x, value)


def zero_(x):
    """x ← 0."""
    return replace_values("zero_", x, 0)


def masked_fill_(x, mask, value):
    """x ← value where mask (broadcast to x's shape)."""
    if isinstance(value, Variable) and value.ndim != 0:
        raise ValueError(f"masked_fill_: value must be a number or a 0-d tensor, got shape {tuple(value.shape)}")
    return replace_values("masked_fill_", x, value, mask)


def copy_(x, src):
    """x ← src, broadcast to x's shape and converted to x's dtype (any dtype, as in PyTorch)."""
    if not isinstance(src, Variable):
        src = x._wrap(on_device_of("copy_", src, x._array))
    if check_broadcast("copy_", x.shape, src.shape) != tuple(x.shape):
        raise ValueError(f"copy_: the source of shape {tuple(src.shape)} does not broadcast to the tensor's shape "
                         f"{tuple(x.shape)}")
    return replace_values("copy_", x, src)


# ---- x[index] = value ------------------------------------------------------------------------------


class SetItem(Function):
    """y = x with y[index] = value (value broadcast to x[index]'s shape).

    dx = dy with zeros at the written places; dvalue = dy[index] summed back to value's shape.
    """

    @staticmethod
    def forward(ctx, x, value, index):
        ctx.index, ctx.value_shape = index, value.shape
        y = x.copy()
        y[index] = value
        return y

    @staticmethod
    def backward(ctx, dy):
        need_x, need_value = ctx.needs_input_grad[:2]
        dx = dvalue = None
        if need_x:
            dx = dy.copy()
            dx[ctx.index] = 0
        if need_value:
            g = dy[ctx.index]
            lead = len(ctx.value_shape) - g.ndim
            if lead > 0:  # numpy lets the value carry extra leading size-1 axes
                g = g.reshape((1,) * lead + g.shape)
            dvalue = sum_to_shape(g, ctx.value_shape)
        return dx, dvalue, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """The same in recorded ops: dx is SetItem itself (writing 0), dvalue a GetItem of dy."""
        from .shape import GetItem

        dx = dvalue = None
        if inputs[0] is not None:
            dx = SetItem.apply(dy, backend_of(dy._array).xp.zeros((), dy._array.dtype), ctx.index)
        if inputs[1] is not None:
            g = GetItem.apply(dy, ctx.index)
            lead = len(ctx.value_shape) - g.ndim
            if lead > 0:
                g = g.reshape((1,) * lead + tuple(g.shape))
            dvalue = sum_to_shape_graph(g, ctx.value_shape)
        return dx, dvalue, None


def setitem(x, index, value):
    """x[index] = value, in place; differentiable with respect to value and to x's other elements."""
    index = normalize_index(x, index)
    value = _value("setitem", value, x)
    target = _indexed_shape(x.shape, index)
    vshape = tuple(np.shape(value._array if isinstance(value, Variable) else value))
    trimmed = vshape[len(vshape) - len(target):] if len(vshape) > len(target) else vshape
    if any(n != 1 for n in vshape[: len(vshape) - len(trimmed)]) or _broadcasts_to(trimmed, target) is False:
        raise ValueError(f"setitem: a value of shape {vshape} cannot be assigned to x[index] of shape {target} "
                         f"(x has shape {tuple(x.shape)})")
    raw = value._array if isinstance(value, Variable) else value

    def direct(x):
        x._array[index] = raw

    def compute(t):
        v = value if isinstance(value, Variable) else t._wrap(backend_of(t._array).asarray(raw, dtype=t.dtype))
        return SetItem.apply(t, v if v.dtype == t.dtype else ew.cast(v, t.dtype), index)

    return apply_inplace("setitem", x, compute, (value,), same_kind=False, direct=direct, saves_input=False)


def _indexed_shape(shape, index):
    """The shape of x[index] for an x of `shape` (index arrays are read on the host)."""
    host = tuple(move(i, "cpu") for i in index) if isinstance(index, tuple) else move(index, "cpu")
    return np.empty(shape, dtype=np.bool_)[host].shape


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


# ---- index writes (functional/indexing.py's ops, in place) ------------------------------------------


def _indexing_(name, saves_input=False):
    def op(x, *args, **kwargs):
        from . import indexing

        function = getattr(indexing, name)
        operands = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Variable)]
        return apply_inplace(f"{name}_", x, lambda t: function(t, *args, **kwargs), operands, same_kind=False,
                      saves_input=saves_input)

    op.__name__ = f"{name}_"
    op.__doc__ = f"In place: x ← {name}(x, ...) (see functional/indexing.py)."
    return op


scatter_ = _indexing_("scatter")
scatter_add_ = _indexing_("scatter_add")
index_fill_ = _indexing_("index_fill")
index_add_ = _indexing_("index_add")
index_copy_ = _indexing_("index_copy")
scatter_reduce_ = _indexing_("scatter_reduce", saves_input=True)  # amax/amin backward reads the old values
masked_scatter_ = _indexing_("masked_scatter")
index_put_ = _indexing_("index_put")
