"""Tensor's methods that make tensors through tinyattn.creation: new_tensor, new_zeros, new_ones, new_empty,
new_full, and the random fills and samplers (normal_, uniform_, bernoulli_, ..., multinomial, bernoulli), each
taking generator= as in PyTorch.

tensor.py attaches them in Tensor's class body (`new_zeros = tensor_factories.new_zeros`), the way it attaches
the functional ops, so a call costs what a method defined there costs. creation.py imports tensor.py, so each
function imports creation when it is called.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._typing import Device as DeviceLike, DType, Number, Shape
    from .tensor import Tensor

__all__ = ["new_empty", "new_full", "new_ones", "new_tensor", "new_zeros", "random_method"]


def random_method(name):
    """Tensor.<name>(...) = tinyattn.creation.<name>(tensor, ...): the random fills and samplers, each
    taking generator= as in PyTorch (creation.py imports tensor.py, so the lookup waits for the call)."""
    def method(self, *args, **kwargs):
        from . import creation
        return getattr(creation, name)(self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    return method


def new_tensor(self: Tensor, data: Any, dtype: DType = None, device: DeviceLike = None,
               requires_grad: bool = False) -> Tensor:
    """A new tensor from data, of this tensor's dtype and device unless told (a copy)."""
    from .creation import tensor

    return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_zeros(self: Tensor, *size: Any, dtype: DType = None, device: DeviceLike = None,
              requires_grad: bool = False) -> Tensor:
    from .creation import zeros

    return zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_ones(self: Tensor, *size: Any, dtype: DType = None, device: DeviceLike = None,
             requires_grad: bool = False) -> Tensor:
    from .creation import ones

    return ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_empty(self: Tensor, *size: Any, dtype: DType = None, device: DeviceLike = None,
              requires_grad: bool = False) -> Tensor:
    from .creation import empty

    return empty(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def new_full(self: Tensor, size: Shape, fill_value: Number, dtype: DType = None, device: DeviceLike = None,
             requires_grad: bool = False) -> Tensor:
    from .creation import full

    return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                requires_grad=requires_grad)
