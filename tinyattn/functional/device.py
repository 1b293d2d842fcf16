"""to_device: a tensor copied between the CPU and the GPU, differentiably (PyTorch's .to(device))."""
from ..autograd import Function
from ..backend import device_of, move

__all__ = [
    "to_device", "ToDevice",
]


class ToDevice(Function):
    """y = x copied to device `target` ("cpu" or "cuda").  dx = dy copied back to x's device."""

    @staticmethod
    def forward(ctx, x, target):
        ctx.source = device_of(x)
        return move(x, target)

    @staticmethod
    def backward(ctx, dy):
        return move(dy, ctx.source), None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """dy copied back by ToDevice itself (whose double backward copies it forward again)."""
        return ToDevice.apply(dy, ctx.source), None


def to_device(x, target):
    """x on device `target` ("cpu" or "cuda"); x itself when it is already there."""
    if device_of(x._array) == target:
        return x
    return ToDevice.apply(x, target)
