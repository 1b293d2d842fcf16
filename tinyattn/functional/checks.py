"""Shape and dtype helpers shared by every op.

`sum_to_shape` is the one place where a broadcast gradient is summed back to the shape of
the input it came from: every binary op's backward calls it. The `check_*` helpers raise
the user-facing errors, naming the op and the shapes or dtypes, before any kernel runs.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Variable
from ..backend import device_of, move
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    _F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "check_broadcast", "check_float", "check_indices", "check_tensor", "host_result", "normalize_dims",
    "numpy_keywords", "on_device_of", "on_host", "sum_to_shape",
]


def sum_to_shape(grad, shape):
    """Undo NumPy broadcasting in the backward pass.

    If x of `shape` was broadcast to grad.shape in the forward pass, every copy of an element
    contributed to the output, so dL/dx sums grad over the broadcast axes: the leading axes
    that broadcasting prepended, and the axes where x had size 1.
    """
    if grad.shape == shape or grad.shape == tuple(shape):  # (a tuple, usually: no conversion)
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def sum_to_shape_graph(grad, shape):
    """sum_to_shape for a gradient tensor, with recorded ops (for differentiable backwards, see Function)."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(dim=axes, keepdim=True).reshape(tuple(shape)) if axes else grad.reshape(tuple(shape))


def on_device_of(op, value, like):
    """`value` (a tensor, an array, a list or a number) as an array on the device of array `like`.

    Plain data (numpy arrays, lists, numbers: masks, indices, targets given as constants) is
    copied to that device; a tensor on another device is an error naming both, as in PyTorch.
    A tensor's or a host array's values are copied too: an op may keep the array for its backward,
    and the user may change the tensor in place before that backward runs.
    """
    want = device_of(like)
    if isinstance(value, Variable):
        if device_of(value._array) != want:
            raise RuntimeError(f"{op}: expected all tensors on the same device, "
                               f"got {want} and {device_of(value._array)}")
        return value._array.copy()
    if device_of(value) == "cuda":
        if want != "cuda":
            raise RuntimeError(f"{op}: expected all arrays on the same device, got {want} and cuda")
        return value
    return move(np.array(value), want)


def check_broadcast(op, *shapes):
    """The broadcast shape of `shapes`, or a ValueError naming the op and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} do not broadcast") from None


def check_float(op, *arrays):
    """The kernels are compiled for float32 and float64: anything else is a TypeError."""
    for a in arrays:
        if a is not None and a.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"{op}: expected a float32 or float64 tensor, got dtype {a.dtype} (shape {tuple(a.shape)}); "
                "convert it with .float() first"
            )


def check_tensor(op, name, x):
    if not isinstance(x, Variable):
        raise TypeError(f"{op}: {name} must be a tensor, got {type(x).__name__}")


def check_indices(op, index, upper, what):
    """Integer class or row indices in [0, upper): a TypeError/ValueError naming the op otherwise."""
    if np.issubdtype(index.dtype, np.floating):
        if not np.all(np.isfinite(index)):
            raise ValueError(f"{op}: {what} contains NaN or inf (dtype {index.dtype}); expected integer indices")
        raise TypeError(f"{op}: {what} must be an integer tensor, got dtype {index.dtype}")
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"{op}: {what} must be an integer tensor, got dtype {index.dtype}")
    if index.size and bool(((index < 0) | (index >= upper)).any()):  # on a GPU: one flag read back
        lo, hi = index.min().item(), index.max().item()
        bad = lo if lo < 0 else hi
        raise ValueError(f"{op}: {what} value {bad} is out of range [0, {upper})")


def normalize_dims(op, dim, ndim):
    """`dim` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    if not all(isinstance(d, (int, np.integer)) for d in dims):
        raise TypeError(f"{op}: dim must be an int or a sequence of ints, got {dim!r}")
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(int(d) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} repeats an axis")
    if ndim == 0:
        return ()  # a 0-d tensor accepts dim 0 or -1, as in PyTorch, and has no axis to reduce
    return tuple(sorted(out))


def numpy_keywords(function: _F) -> _F:
    """Let a reduction take NumPy's spellings as PyTorch does: keepdims= for keepdim=, and axis= for dim=
    (where the function has no axis parameter of its own)."""
    import functools
    import inspect

    has_axis = "axis" in inspect.signature(function).parameters

    @functools.wraps(function)
    def op(*args, keepdims=None, **kwargs):
        if keepdims is not None:
            if "keepdim" in kwargs:
                raise TypeError(f"{function.__name__}: pass keepdim or keepdims, not both")
            kwargs["keepdim"] = keepdims
        if not has_axis and "axis" in kwargs:
            if "dim" in kwargs:
                raise TypeError(f"{function.__name__}: pass dim or axis, not both")
            kwargs["dim"] = kwargs.pop("axis")
        return function(*args, **kwargs)

    return op  # type: ignore[return-value]  # the same signature, plus NumPy's spellings


def host_result(like, array):
    """A tensor holding `array` (computed on the host) on the device of tensor `like`."""
    return like._wrap(move(np.asarray(array), device_of(like._array)))


def on_host(function):
    """Class decorator for a Function whose forward and backward use NumPy calls that DeviceArray does not
    offer (np.flip, np.cumsum, integer-array assignment, ...): with cuda arrays among its arguments, both
    run on host copies and their results go back to the GPU. CPU calls are unchanged. (The arrays such an
    op saves are then host copies, so the saved-version check does not cover them on the GPU.)"""
    from ..backend import is_device_array

    forward, backward = function.forward, function.backward

    def to_device(o):  # (np.ascontiguousarray makes a 0-d result 1-d: keep its shape)
        return move(np.ascontiguousarray(o).reshape(np.shape(o)), "cuda")

    def host_forward(ctx, *args):
        if not any(is_device_array(a) for a in args):
            return forward(ctx, *args)
        ctx.host_device = "cuda"
        out = forward(ctx, *(move(a, "cpu") if is_device_array(a) else a for a in args))
        if isinstance(out, tuple):
            return tuple(to_device(o) for o in out)
        return to_device(out)

    def host_backward(ctx, dy):
        if getattr(ctx, "host_device", None) is None:
            return backward(ctx, dy)
        if isinstance(dy, tuple):
            dy = tuple(None if g is None else move(g, "cpu") for g in dy)
        else:
            dy = move(dy, "cpu")
        grads = backward(ctx, dy)
        if not isinstance(grads, tuple):
            return to_device(grads)
        return tuple(g if g is None or not isinstance(g, np.ndarray) else to_device(g) for g in grads)

    function.forward = staticmethod(host_forward)
    function.backward = staticmethod(host_backward)
    return function
