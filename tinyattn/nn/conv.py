"""Conv1d: the lecture's CNN baseline, self-attention restricted to a fixed receptive field
with position-specific weights instead of data-dependent ones; PyTorch's nn.Conv1d signature."""
import math

import numpy as np

from .. import functional as F
from ..creation import empty_parameter_data, zeros
from . import init
from .layers import place, size_arg
from .module import Module
from .parameter import Parameter

__all__ = [
    "Conv1d",
]


def _single(value):
    """PyTorch's Conv1d takes kernel_size, stride and padding as an int or a 1-tuple."""
    return value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value


class Conv1d(Module):
    """y[n, o, t] = b[o] + Σ_c Σ_m W[o, c, m] · x_pad[n, g·C/G + c, t·stride + m·dilation]   (cross-correlation,
    as PyTorch; o in group g, G = groups).

    PyTorch's signature: Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
    bias=True, padding_mode='zeros', device=None, dtype=None); padding an int or 'valid'/'same' (stride 1),
    padding_mode 'zeros', 'reflect', 'replicate' or 'circular'. Input (N, C_in, L) or unbatched (C_in, L) ->
    (N, C_out, L_out), L_out = (L + 2·padding - dilation·(kernel_size - 1) - 1) // stride + 1.
    Built from gradchecked ops (im2col): the padded input's windows are gathered by integer indexing,
    whose backward scatter-adds, and contracted with W by one product per group.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        in_channels = size_arg("Conv1d", "in_channels", in_channels)
        out_channels = size_arg("Conv1d", "out_channels", out_channels)
        # PyTorch builds a Conv1d with kernel_size 0, stride 0 or negative padding and fails at the first
        # forward; here the constructor says so, before anything is allocated
        kernel_size = size_arg("Conv1d", "kernel_size", _single(kernel_size), minimum=1)
        stride = size_arg("Conv1d", "stride", _single(stride), minimum=1)
        dilation = size_arg("Conv1d", "dilation", _single(dilation), minimum=1)
        groups = size_arg("Conv1d", "groups", groups, minimum=1)
        padding = _single(padding)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and stride != 1:
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = size_arg("Conv1d", "padding", padding)
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be one of ['zeros', 'reflect', 'replicate', 'circular'], but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = Parameter(empty_parameter_data((out_channels, in_channels // groups, kernel_size), dtype))
        if bias:
            self.bias = Parameter(empty_parameter_data((out_channels,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        place(self, device)

    def reset_parameters(self):
        fan_in = self.in_channels // self.groups * self.kernel_size
        if self.weight.numel():  # zero channels (PyTorch allows them): nothing to initialise, as in Linear
            init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # U(-1/√fan_in, 1/√fan_in), as PyTorch
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            init.uniform_(self.bias, -bound, bound)

    def _pads(self):
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            total = self.dilation * (self.kernel_size - 1)
            return total // 2, total - total // 2
        return self.padding, self.padding

    def forward(self, input):
        x = input
        batched = x.ndim == 3
        if x.ndim not in (2, 3) or x.shape[-2] != self.in_channels:
            raise ValueError(f"Conv1d: expected input (N, {self.in_channels}, L) or ({self.in_channels}, L), "
                             f"got {tuple(x.shape)}")
        if not batched:
            x = x.unsqueeze(0)
        n, c, length = x.shape
        left, right = self._pads()
        k, s, d, g = self.kernel_size, self.stride, self.dilation, self.groups
        if left or right:
            if self.padding_mode == "zeros":
                x = F.cat([zeros(n, c, left, dtype=x.dtype, device=x.device), x,
                           zeros(n, c, right, dtype=x.dtype, device=x.device)], dim=2)
            else:
                pos = np.arange(-left, length + right)
                if self.padding_mode == "reflect":
                    if left >= length or right >= length:
                        raise ValueError(f"Conv1d: reflect padding {left, right} must be smaller than the input "
                                         f"length {length}")
                    pos = np.abs(pos)
                    pos = np.where(pos > length - 1, 2 * (length - 1) - pos, pos)
                elif self.padding_mode == "replicate":
                    pos = np.clip(pos, 0, length - 1)
                else:  # circular
                    if left > length or right > length:
                        raise ValueError(f"Conv1d: circular padding {left, right} must be at most the input "
                                         f"length {length}")
                    pos = pos % length
                x = x[:, :, pos]
        padded = length + left + right
        l_out = (padded - d * (k - 1) - 1) // s + 1
        if l_out < 1:
            raise ValueError(f"Conv1d: input length {length} (padding {left}+{right}) is shorter than the kernel's "
                             f"span {d * (k - 1) + 1}")
        windows = np.arange(l_out)[:, None] * s + np.arange(k)[None, :] * d  # (L_out, K) positions
        cols = x[:, :, windows]  # (N, C, L_out, K)
        if g == 1:
            cols = cols.permute(0, 2, 1, 3).reshape(n, l_out, c * k)  # (N, L_out, C·K)
            y = F.linear(cols, self.weight.reshape(self.out_channels, c * k), self.bias)  # (N, L_out, C_out)
            y = y.transpose(1, 2)
        else:
            cg, og = c // g, self.out_channels // g
            cols = cols.reshape(n, g, cg, l_out, k).permute(1, 0, 3, 2, 4).reshape(g, n * l_out, cg * k)
            w = self.weight.reshape(g, og, cg * k).transpose(1, 2)  # (G, C/G·K, O/G)
            y = F.matmul(cols, w)  # (G, N·L_out, O/G)
            y = y.reshape(g, n, l_out, og).permute(1, 0, 3, 2).reshape(n, self.out_channels, l_out)
            if self.bias is not None:
                y = y + self.bias.reshape(self.out_channels, 1)
        return y if batched else y.squeeze(0)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size=({self.kernel_size},), stride=({self.stride},)"
        if self.padding != 0:
            s += f", padding={self.padding}" if isinstance(self.padding, str) else f", padding=({self.padding},)"
        if self.dilation != 1:
            s += f", dilation=({self.dilation},)"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
