"""Tensor: an n-d array that remembers how it was made, with PyTorch's names.

Operators and methods delegate to `tinyattn.functional`; the autograd machinery
(the array, grad, requires_grad, backward, detach) comes from `autograd.Variable`.
`._array` is the underlying array: a NumPy array on the CPU, a `DeviceArray` (numpy's API in
GPU memory, tinyattn/device_array/) on the GPU. `.data` is PyTorch's: a detached tensor over the
same memory.
"""
from __future__ import annotations

import numpy as np

from . import functional as F, tensor_factories as _factories
from .autograd import Variable, VersionCounter
from .backend import device_of, move
from .cuda import device as Device, parse_to_args
from .dtypes import as_dtype, check_data, default_dtype_for
from .functional.device import to_device as _to_device
from .size import as_size as _as_size
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import builtins

    from ._typing import Device as DeviceLike, DType, Dim, Operand
    from .size import Size

__all__ = [
    "Tensor",
]

_CPU, _CUDA = Device("cpu"), Device("cuda")
_new = object.__new__


def _rebuild_tensor(cls, array, requires_grad, device, state):
    """Unpickle: a leaf `cls` (Tensor, Parameter, ...) over `array`, moved to `device`."""
    t = _new(cls)
    Variable.__init__(t, array if device == "cpu" else move(array, device), requires_grad)
    if state:
        t.__dict__.update(state)
    return t


class Tensor(Variable):
    __slots__ = ()
    __hash__ = object.__hash__  # __eq__ is elementwise, identity stays the hash
    __array_ufunc__ = None  # numpy defers to our reflected operators: np.float32(2) * t is a Tensor

    def __init__(self, data: Any, requires_grad: builtins.bool = False, dtype: DType = None,
                 device: DeviceLike = None) -> None:
        check_data(data, "tensor")  # the same errors as tinyattn.tensor(), before any conversion
        array = _to_array(data, dtype)
        super().__init__(array if device is None else move(array, Device(device).type), requires_grad)

    @classmethod
    def _wrap(cls, data, requires_grad=False, node=None, index=0):
        out = _new(Tensor)  # results of ops on a subclass (Parameter) are plain tensors
        if isinstance(data, np.generic):  # a numpy scalar (a full reduction): a 0-d array, which can change in place
            data = np.asarray(data)
        out._array = data
        out._grad = None
        out._requires_grad = requires_grad
        out._node = node
        out._index = index
        out._counter = VersionCounter()
        out._view = None
        out._hooks = None
        return out

    # ---- attributes --------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """PyTorch's `.data`: a tensor over the same memory, detached from the graph, that does not
        require grad. Writes through it change this tensor but are hidden from autograd (its version
        counter is its own), which is what `p.data.add_(...)` in older optimiser code relies on."""
        return self._wrap(self._array)

    @data.setter
    def data(self, value):
        """`t.data = other`: t now uses other's memory (any shape, dtype or device), keeping its graph
        identity and its requires_grad, as in PyTorch."""
        if not isinstance(value, Variable):
            raise TypeError(f"Tensor.data: the new data has to be a tensor, but got {type(value).__name__}")
        if self._requires_grad and value._array.dtype.kind != "f":
            raise TypeError(f"Tensor.data: a tensor that requires grad cannot take data of dtype "
                            f"{value._array.dtype}; only floating-point tensors can require gradients")
        self._array = value._array

    @property
    def shape(self) -> Size:
        """The shape, a tinyattn.Size (a tuple with numel(), PyTorch's torch.Size)."""
        return _as_size(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> builtins.int:
        return self._array.ndim

    @property
    def device(self) -> Device:
        return _CUDA if device_of(self._array) == "cuda" else _CPU

    @property
    def is_cuda(self) -> builtins.bool:
        return device_of(self._array) == "cuda"

    def size(self, dim: builtins.int | None = None) -> Any:
        """The shape as a tinyattn.Size, or the size of one dim (negative dims count from the end)."""
        if dim is None:
            return _as_size(self._array.shape)
        try:
            return self._array.shape[dim]
        except IndexError:
            raise IndexError(f"size: dimension out of range (expected to be in range of "
                             f"[{-max(self.ndim, 1)}, {max(self.ndim, 1) - 1}], but got {dim})") from None
        except TypeError:
            raise TypeError(f"size: dim must be an int, got {dim!r}") from None

    def dim(self) -> builtins.int:
        return self._array.ndim

    ndimension = dim

    def numel(self) -> builtins.int:
        return self._array.size

    nelement = numel

    def element_size(self) -> builtins.int:
        """Bytes per element (4 for float32)."""
        return self._array.dtype.itemsize

    @property
    def itemsize(self) -> builtins.int:
        return self._array.dtype.itemsize

    @property
    def nbytes(self) -> builtins.int:
        return self._array.nbytes

    def is_floating_point(self) -> builtins.bool:
        return self._array.dtype.kind == "f"

    @property
    def is_cpu(self) -> builtins.bool:
        return not self.is_cuda

    def is_contiguous(self, memory_format: Any = None) -> builtins.bool:
        data = self._array
        return data.is_contiguous if hasattr(data, "is_contiguous") else bool(data.flags.c_contiguous)

    def stride(self, dim: builtins.int | None = None) -> Any:
        """Strides in elements (PyTorch's unit), per dim or for one dim."""
        data = self._array
        strides = tuple(s // data.dtype.itemsize for s in data.strides) if hasattr(data, "strides") else None
        if strides is None:
            raise NotImplementedError("stride: not available for this tensor's storage")
        return strides if dim is None else strides[dim]

    def __iter__(self) -> Iterator[Tensor]:
        """Iterating walks dim 0 (each item a view), as in PyTorch; a 0-d tensor is not iterable."""
        if self._array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(F.unbind(self, 0))

    def __contains__(self, element: Any) -> builtins.bool:
        """`element in t`: (t == element).any(), for a number or a tensor, as in PyTorch."""
        if not isinstance(element, (Variable, int, float, bool, np.number)):
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                               f"{type(element).__name__}")
        return bool(F.eq(self, element)._array.any())

    def __index__(self) -> builtins.int:
        """A one-element integer (or bool) tensor used as a Python index (lst[t], range(t)); anything else is
        the TypeError PyTorch raises."""
        if self._array.dtype.kind not in "iub" or self._array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._array.reshape(()).item()) if self._array.ndim else int(self._array.item())

    def __len__(self) -> builtins.int:
        if self._array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    # ---- conversion --------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array: shared, not copied, on the CPU (as in PyTorch); a host copy
        for a tensor on the GPU."""
        return move(self._array, "cpu")

    def item(self) -> Any:
        if self._array.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        return self._array.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        if self.is_cuda:
            raise TypeError(f"a cuda tensor of shape {self.shape} cannot become a numpy array implicitly: "
                            "use .cpu() or .numpy() first")
        return self._array if dtype is None else self._array.astype(dtype)

    def __bool__(self) -> builtins.bool:
        if self._array.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._array.size} elements is ambiguous")
        return bool(self._array)

    def __float__(self) -> builtins.float:
        return float(self.item())

    def __int__(self) -> builtins.int:
        return int(self.item())

    def __format__(self, spec: str) -> str:
        """f"{loss:.4f}": a 0-d or one-element tensor formats as its Python number (PyTorch does so for
        0-d tensors only); with an empty spec any other tensor formats as str(); a non-empty spec on a
        multi-element tensor is a TypeError, as in PyTorch."""
        if self._array.ndim == 0 or (spec and self._array.size == 1):
            return format(self.item(), spec)
        if not spec:
            return str(self)
        raise TypeError(f"unsupported format string {spec!r} passed to Tensor.__format__ for a tensor of shape "
                        f"{tuple(self.shape)}: only one-element tensors take a format spec; use .item() or .tolist()")

    def requires_grad_(self, requires_grad: builtins.bool = True) -> Tensor:
        """Set requires_grad in place and return self (PyTorch's requires_grad_)."""
        self.requires_grad = requires_grad
        return self

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """PyTorch's .to: .to("cuda"), .to(dtype), .to(device, dtype), .to(other_tensor), or the
        keywords device=/dtype=/non_blocking=/copy=. Returns self when nothing changes (unless copy=True);
        differentiable otherwise."""
        copy = kwargs.pop("copy", False)
        kwargs.pop("memory_format", None)
        if len(args) >= 2 and isinstance(args[-1], bool):  # .to(device, dtype, non_blocking, copy) positionally
            args = args[:-1]
            if len(args) >= 2 and isinstance(args[-1], bool):
                copy, args = args[-1], args[:-1]
        device, dtype = parse_to_args("to", args, kwargs)
        dtype = as_dtype(dtype, "to")  # checked before any copy
        out = self if device is None else _to_device(self, device.type)
        out = out if dtype is None else F.cast(out, dtype)
        return out.clone() if copy and out is self else out

    def cpu(self) -> Tensor:
        return _to_device(self, "cpu")

    def cuda(self, device: builtins.int | None = None) -> Tensor:
        return _to_device(self, Device("cuda" if device is None else f"cuda:{device}").type)

    def float(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.float32)

    def double(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.float64)

    def half(self, memory_format: Any = None) -> Tensor:
        """float16 (NumPy's arithmetic; the Numba kernels take float32/float64 only)."""
        return F.cast(self, np.float16)

    def bfloat16(self, memory_format: Any = None) -> Tensor:
        from .dtypes import bfloat16

        raise bfloat16.error("bfloat16")

    def long(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.int64)

    def int(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.int32)

    def short(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.int16)

    def char(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.int8)

    def byte(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.uint8)

    def bool(self, memory_format: Any = None) -> Tensor:
        return F.cast(self, np.bool_)

    def type(self, dtype: DType = None, non_blocking: builtins.bool = False, **kwargs: Any) -> Any:
        """No argument: PyTorch's type name ('torch.FloatTensor', 'torch.cuda.LongTensor'). With a dtype or
        such a name: the tensor converted to it (itself when nothing changes)."""
        from .dtypes import from_type_name, type_name

        if dtype is None:
            return type_name(self._array.dtype, self.is_cuda)
        if callable(dtype) and getattr(dtype, "__name__", "").endswith("Tensor"):  # x.type(torch.LongTensor)
            dtype = "torch." + dtype.__name__
        if isinstance(dtype, str) and dtype.startswith("torch.") and dtype.endswith("Tensor"):
            dt, dev = from_type_name(dtype)
            out = self if dev == self.device.type else _to_device(self, dev)
            return F.cast(out, dt)
        return F.cast(self, as_dtype(dtype, "type"))

    def pin_memory(self, device=None):
        """CPU memory is not page-locked here: a CPU tensor comes back as it is (the copy to a GPU is synchronous)."""
        if self.is_cuda:
            raise RuntimeError("pin_memory: cannot pin a cuda tensor, only dense CPU tensors can be pinned")
        return self

    def is_pinned(self, device=None):
        return False

    def share_memory_(self):
        """A no-op returning self: tinyattn has no cross-process tensor storage (DataLoader workers pickle)."""
        return self

    def is_shared(self):
        return False

    def detach_(self) -> Tensor:
        """Detach in place: this tensor leaves the graph and stops requiring grad (PyTorch's detach_)."""
        if self._view is not None and self._node is not None:
            raise RuntimeError("detach_: can't detach views in-place; use detach() instead")
        self._node, self._index, self._requires_grad = None, 0, False
        return self

    def contiguous(self) -> Tensor:
        return F.contiguous(self)

    def clone(self) -> Tensor:
        return F.mul(self, 1) if self.requires_grad else self._wrap(self._array.copy())

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = "" if self.dtype in (np.float32, np.int64, np.bool_) else f", dtype={self.dtype}"
        if self.is_cuda:
            extras += ", device='cuda:0'"
        if self._node is not None:
            extras += f", grad_fn=<{self._node.name}Backward>"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        return f"tensor({body}{extras})"

    # ---- arithmetic --------------------------------------------------------------
    __add__ = F.add  # t + other is F.add(t, other): one Python call fewer per operator

    def __radd__(self, other: Operand) -> Tensor:
        return F.add(other, self)

    __sub__ = F.sub  # t - other is F.sub(t, other): one Python call fewer per operator

    def __rsub__(self, other: Operand) -> Tensor:
        return F.sub(other, self)

    __mul__ = F.mul  # t * other is F.mul(t, other): one Python call fewer per operator

    def __rmul__(self, other: Operand) -> Tensor:
        return F.mul(other, self)

    __truediv__ = F.div  # t / other is F.div(t, other): one Python call fewer per operator

    def __rtruediv__(self, other: Operand) -> Tensor:
        return F.div(other, self)

    def __pow__(self, exponent: Operand) -> Tensor:
        return F.pow(self, exponent)

    def __rpow__(self, base: Operand) -> Tensor:
        return F.pow(base, self)

    def __matmul__(self, other: Tensor) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Tensor) -> Tensor:
        return F.matmul(other, self)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __abs__(self) -> Tensor:
        return F.abs(self)

    def __pos__(self) -> Tensor:
        return F.positive(self)

    def __reversed__(self) -> Tensor:
        """reversed(t) is t flipped along dim 0 (a tensor, as in PyTorch)."""
        return self if self.ndim == 0 else F.flip(self, 0)

    def __floordiv__(self, other: Operand) -> Tensor:
        return F.floor_divide(self, other)

    def __rfloordiv__(self, other: Operand) -> Tensor:
        return F.floor_divide(other, self)

    def __mod__(self, other: Operand) -> Tensor:
        return F.remainder(self, other)

    def __rmod__(self, other: Operand) -> Tensor:
        return F.remainder(other, self)

    def __and__(self, other: Operand) -> Tensor:
        return F.bitwise_and(self, other)

    def __rand__(self, other: Operand) -> Tensor:
        return F.bitwise_and(other, self)

    def __or__(self, other: Operand) -> Tensor:
        return F.bitwise_or(self, other)

    def __ror__(self, other: Operand) -> Tensor:
        return F.bitwise_or(other, self)

    def __xor__(self, other: Operand) -> Tensor:
        return F.bitwise_xor(self, other)

    def __rxor__(self, other: Operand) -> Tensor:
        return F.bitwise_xor(other, self)

    def __invert__(self) -> Tensor:
        return F.bitwise_not(self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.ne(self, other)

    def __lt__(self, other: Operand) -> Tensor:
        return F.lt(self, other)

    def __le__(self, other: Operand) -> Tensor:
        return F.le(self, other)

    def __gt__(self, other: Operand) -> Tensor:
        return F.gt(self, other)

    def __ge__(self, other: Operand) -> Tensor:
        return F.ge(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return F.getitem(self, index)

    # ---- in place (rules in functional/inplace.py) -----------------------------------
    def __setitem__(self, index: Any, value: Operand) -> None:
        F.setitem(self, index, value)

    def __iadd__(self, other: Operand) -> Tensor:  # type: ignore[misc]
        return F.add_(self, other)

    def __isub__(self, other: Operand) -> Tensor:  # type: ignore[misc]
        return F.sub_(self, other)

    def __imul__(self, other: Operand) -> Tensor:  # type: ignore[misc]
        return F.mul_(self, other)

    def __itruediv__(self, other: Operand) -> Tensor:  # type: ignore[misc]
        return F.div_(self, other)

    def __ifloordiv__(self, other: Operand) -> Tensor:
        return F.floor_divide_(self, other)

    def __imod__(self, other: Operand) -> Tensor:
        return F.remainder_(self, other)

    def __ipow__(self, exponent: Operand) -> Tensor:
        return F.pow_(self, exponent)

    def __iand__(self, other: Operand) -> Tensor:
        return F.bitwise_and_(self, other)

    def __ior__(self, other: Operand) -> Tensor:
        return F.bitwise_or_(self, other)

    def __ixor__(self, other: Operand) -> Tensor:
        return F.bitwise_xor_(self, other)

    add_, sub_, mul_, div_, clamp_, clip_ = F.add_, F.sub_, F.mul_, F.div_, F.clamp_, F.clamp_
    zero_, fill_, copy_, masked_fill_ = F.zero_, F.fill_, F.copy_, F.masked_fill_
    pow_, floor_divide_, remainder_ = F.pow_, F.floor_divide_, F.remainder_
    bitwise_and_, bitwise_or_, bitwise_xor_ = F.bitwise_and_, F.bitwise_or_, F.bitwise_xor_

    # ---- methods PyTorch has -------------------------------------------------------
    add, sub, mul, div, pow, matmul, maximum = F.add, F.sub, F.mul, F.div, F.pow, F.matmul, F.maximum
    exp, log, sqrt, abs, tanh, sigmoid, relu = F.exp, F.log, F.sqrt, F.abs, F.tanh, F.sigmoid, F.relu
    sum, mean, max, amax, var = F.sum, F.mean, F.max, F.amax, F.var
    softmax, log_softmax, masked_fill = F.softmax, F.log_softmax, F.masked_fill
    reshape, permute, transpose, expand = F.reshape, F.permute, F.transpose, F.expand
    unsqueeze, squeeze, flatten, unbind = F.unsqueeze, F.squeeze, F.flatten, F.unbind
    view = F.view
    min, amin, argmax, argmin, minimum = F.min, F.amin, F.argmax, F.argmin, F.minimum
    sort, argsort, topk, clamp, clip, tril, triu = F.sort, F.argsort, F.topk, F.clamp, F.clip, F.tril, F.triu
    all, any, floor_divide, remainder = F.all, F.any, F.floor_divide, F.remainder
    bitwise_and, bitwise_or, bitwise_xor, bitwise_not = F.bitwise_and, F.bitwise_or, F.bitwise_xor, F.bitwise_not
    logical_and, logical_or, logical_xor, logical_not = F.logical_and, F.logical_or, F.logical_xor, F.logical_not

    @property
    def T(self) -> Tensor:
        """All axes reversed (PyTorch's .T; for 2-D tensors the transpose)."""
        return F.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped: a batch of transposed matrices."""
        return F.transpose(self, -2, -1)

    # ---- more of PyTorch's methods (functional/unary, shape_ops, indexing, reduction, compare, linalg) -------
    sin, cos, tan, sinh, cosh, asin, acos, atan = F.sin, F.cos, F.tan, F.sinh, F.cosh, F.asin, F.acos, F.atan
    log1p, log2, log10, expm1 = F.log1p, F.log2, F.log10, F.expm1
    exp2, rsqrt, reciprocal = F.exp2, F.rsqrt, F.reciprocal
    square, sign, floor, ceil = F.square, F.sign, F.floor, F.ceil
    trunc, frac, round, erf = F.trunc, F.frac, F.round, F.erf
    neg, negative, signbit, nan_to_num = F.neg, F.neg, F.signbit, F.nan_to_num
    isnan, isinf, isfinite, isposinf, isneginf = F.isnan, F.isinf, F.isfinite, F.isposinf, F.isneginf
    isclose, allclose, equal = F.isclose, F.allclose, F.equal
    eq, ne, lt, le, gt, ge = F.eq, F.ne, F.lt, F.le, F.gt, F.ge
    greater, greater_equal, less, less_equal, not_equal = F.gt, F.ge, F.lt, F.le, F.ne
    subtract, multiply, divide, true_divide = F.sub, F.mul, F.div, F.div
    split, chunk, tensor_split, narrow, flip, fliplr, flipud = (
        F.split, F.chunk, F.tensor_split, F.narrow, F.flip, F.fliplr, F.flipud)
    t, movedim, moveaxis, swapaxes, swapdims, roll = F.t, F.movedim, F.moveaxis, F.swapaxes, F.swapdims, F.roll
    repeat, tile, repeat_interleave, unflatten, view_as, reshape_as = (
        F.repeat, F.tile, F.repeat_interleave, F.unflatten, F.view_as, F.reshape_as)
    diag, diagonal = F.diag, F.diagonal
    gather, scatter, scatter_add, index_select, index_add, index_copy, index_fill = (
        F.gather, F.scatter, F.scatter_add, F.index_select, F.index_add, F.index_copy, F.index_fill)
    scatter_, scatter_add_, index_add_, index_copy_, index_fill_ = (
        F.scatter_, F.scatter_add_, F.index_add_, F.index_copy_, F.index_fill_)
    masked_select, nonzero, argwhere, take, take_along_dim = (
        F.masked_select, F.nonzero, F.argwhere, F.take, F.take_along_dim)
    std, prod, cumsum, cumprod, logsumexp, norm, count_nonzero = (
        F.std, F.prod, F.cumsum, F.cumprod, F.logsumexp, F.norm, F.count_nonzero)
    mm, bmm, mv, dot, vdot = F.mm, F.bmm, F.mv, F.dot, F.vdot
    outer, ger, addmm, baddbmm = F.outer, F.ger, F.addmm, F.baddbmm
    unique, unique_consecutive, bincount, histc, histogram = (
        F.unique, F.unique_consecutive, F.bincount, F.histc, F.histogram)
    addcmul, addcmul_, addcdiv, addcdiv_, lerp, lerp_ = F.addcmul, F.addcmul_, F.addcdiv, F.addcdiv_, F.lerp, F.lerp_
    atan2, arctan2, hypot, logaddexp = F.atan2, F.arctan2, F.hypot, F.logaddexp
    fmod, diff, median = F.fmod, F.diff, F.median
    relu_, sigmoid_, tanh_ = F.relu_, F.sigmoid_, F.tanh_
    trace = F.trace
    unfold, broadcast_to, ravel, select, rot90, diag_embed, diagflat, inner, kron = (
        F.unfold, F.broadcast_to, F.ravel, F.select, F.rot90, F.diag_embed, F.diagflat, F.inner, F.kron)
    aminmax, nansum, nanmean, kthvalue, cummax, cummin, logcumsumexp, quantile, nanquantile = (
        F.aminmax, F.nansum, F.nanmean, F.kthvalue, F.cummax, F.cummin, F.logcumsumexp, F.quantile, F.nanquantile)
    scatter_reduce, scatter_reduce_, index_put, index_put_, masked_scatter, masked_scatter_ = (
        F.scatter_reduce, F.scatter_reduce_, F.index_put, F.index_put_, F.masked_scatter, F.masked_scatter_)
    absolute, asinh, acosh, atanh, arcsin, arccos, arctan, arcsinh, arccosh, arctanh = (
        F.absolute, F.asinh, F.acosh, F.atanh, F.arcsin, F.arccos, F.arctan, F.arcsinh, F.arccosh, F.arctanh)
    logit, xlogy, sgn, positive, deg2rad, rad2deg, fill_diagonal_ = (
        F.logit, F.xlogy, F.sgn, F.positive, F.deg2rad, F.rad2deg, F.fill_diagonal_)
    fmax, fmin, copysign, heaviside, sinc, erfc, logaddexp2, dist, float_power = (
        F.fmax, F.fmin, F.copysign, F.heaviside, F.sinc, F.erfc, F.logaddexp2, F.dist, F.float_power)
    hsplit, vsplit, dsplit, split_with_sizes, isin = F.hsplit, F.vsplit, F.dsplit, F.split_with_sizes, F.isin
    inverse, det, logdet, slogdet, matrix_power = F.inverse, F.det, F.logdet, F.slogdet, F.matrix_power
    (sin_, cos_, tan_, asin_, acos_, atan_, sinh_, cosh_, asinh_, acosh_, atanh_, log_, log1p_, log2_, log10_, exp2_,
     expm1_, rsqrt_, reciprocal_, square_, sign_, sgn_, floor_, ceil_, round_, trunc_, fix_, frac_, erf_, logit_,
     nan_to_num_, tril_, triu_, cumsum_, cumprod_, atan2_, hypot_, fmod_, xlogy_, deg2rad_, rad2deg_, absolute_,
     arcsin_, arccos_, arctan_, arcsinh_, arccosh_, arctanh_, arctan2_, negative_, clamp_min_, clamp_max_) = (
        F.inplace_ops[f"{_n}_"] for _n in (
            "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log", "log1p",
            "log2", "log10", "exp2", "expm1", "rsqrt", "reciprocal", "square", "sign", "sgn", "floor", "ceil",
            "round", "trunc", "fix", "frac", "erf", "logit", "nan_to_num", "tril", "triu", "cumsum", "cumprod",
            "atan2", "hypot", "fmod", "xlogy", "deg2rad", "rad2deg", "absolute", "arcsin", "arccos", "arctan",
            "arcsinh", "arccosh", "arctanh", "arctan2", "negative", "clamp_min", "clamp_max"))

    def get_device(self) -> builtins.int:
        """-1 for a CPU tensor, the GPU's index (0) for a cuda tensor."""
        return 0 if self.is_cuda else -1

    def is_nonzero(self) -> builtins.bool:
        if self._array.size != 1:
            raise RuntimeError(f"is_nonzero: a tensor with {self._array.size} elements cannot be converted to a bool")
        return bool(self._array.reshape(()).item()) if self._array.ndim else bool(self._array.item())

    def is_signed(self) -> builtins.bool:
        return self._array.dtype.kind in "fi"

    def is_complex(self) -> builtins.bool:
        return False

    def is_same_size(self, other: Tensor) -> builtins.bool:
        return tuple(self.shape) == tuple(other.shape)

    def data_ptr(self) -> builtins.int:
        """The address of the first element (CPU arrays; a GPU buffer's device pointer otherwise)."""
        data = self._array
        if isinstance(data, np.ndarray):
            return data.__array_interface__["data"][0]
        return data.__cuda_array_interface__["data"][0]

    def sum_to_size(self, *size: Any) -> Tensor:
        """The sum over the dims that `size` broadcasts along (expand's reverse)."""
        size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        lead = self.ndim - len(size)
        if lead < 0 or any(s != 1 and s != n for s, n in zip(size, self.shape[lead:])):
            raise ValueError(f"sum_to_size: size {size} is not expandable to the tensor's shape {tuple(self.shape)}")
        dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(size) if s == 1 and self.shape[lead + i] != 1)
        out = F.sum(self, dims, keepdim=True) if dims else self
        return F.reshape(out, size) if tuple(out.shape) != size else out

    def where(self, condition: Tensor, other: Operand) -> Tensor:
        """x.where(condition, y) is where(condition, x, y), as in PyTorch."""
        return F.where(condition, self, other)

    exp_, sqrt_, abs_ = F.inplace_ops["exp_"], F.inplace_ops["sqrt_"], F.inplace_ops["abs_"]

    def neg_(self) -> Tensor:
        return self.mul_(-1)

    def clamp_min(self, min: Operand) -> Tensor:
        return F.clamp(self, min=min)

    def clamp_max(self, max: Operand) -> Tensor:
        return F.clamp(self, max=max)

    def squeeze_(self, dim: Dim = None) -> Tensor:
        raise NotImplementedError("squeeze_: in-place shape changes are not supported; use x = x.squeeze(...)")

    def unsqueeze_(self, dim: builtins.int) -> Tensor:
        raise NotImplementedError("unsqueeze_: in-place shape changes are not supported; use x = x.unsqueeze(...)")

    @property
    def H(self) -> Tensor:
        """The conjugate transpose of a 2-D tensor: the transpose, for real tensors."""
        if self.ndim not in (0, 2):
            raise ValueError(f"H: tensor.H is only supported on matrices (2-D tensors), got shape {tuple(self.shape)}")
        return F.t(self)

    @property
    def mH(self) -> Tensor:
        return self.mT

    def expand_as(self, other: Tensor) -> Tensor:
        return F.expand(self, other.shape)

    # ---- new tensors, random fills and sampling (tensor_factories.py, through creation.py) -------------------
    new_tensor, new_zeros, new_ones, new_empty, new_full = (
        _factories.new_tensor, _factories.new_zeros, _factories.new_ones, _factories.new_empty, _factories.new_full)
    normal_, uniform_, bernoulli_, random_, exponential_, geometric_, log_normal_, cauchy_, multinomial, bernoulli = (
        map(_factories.random_method, ("normal_", "uniform_", "bernoulli_", "random_", "exponential_", "geometric_",
                             "log_normal_", "cauchy_", "multinomial", "bernoulli")))

    # ---- pickling (DataLoader workers, multiprocessing) and deepcopy --------------------------------------
    def __reduce_ex__(self, protocol):
        """A pickle holds the values (of this tensor only, not a view's base), requires_grad and the
        device; the result is a leaf of the same class (as torch's pickling: no graph, no .grad)."""
        return (_rebuild_tensor, (type(self), move(self._array, "cpu"), self._requires_grad,
                                  device_of(self._array), getattr(self, "__dict__", None)))

    def __deepcopy__(self, memo):
        """A new leaf with copied values, requires_grad, .grad (and attributes), as PyTorch's deepcopy."""
        import copy
        new = _rebuild_tensor(type(self), copy.deepcopy(self._array, memo), self._requires_grad, "cpu", None)
        memo[id(self)] = new
        new.grad = copy.deepcopy(self.grad, memo)
        if getattr(self, "__dict__", None):
            new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)


def _to_array(data, dtype):
    dtype = as_dtype(dtype, "tensor")
    if isinstance(data, Variable):
        data = data._array
    if device_of(data) == "cuda":
        return data.astype(dtype or data.dtype)  # a copy, on the GPU
    if isinstance(data, (np.ndarray, np.generic)):
        return np.array(data, dtype=dtype, copy=True)  # an ndarray or numpy scalar keeps its dtype unless told
    if isinstance(data, (list, tuple)) and any(isinstance(x, Variable) for x in data):
        data = [np.asarray(x.numpy() if isinstance(x, Variable) else x) for x in data]  # type: ignore[attr-defined]
    array = np.array(data)
    return array.astype(dtype or default_dtype_for(array), copy=False)
