"""Conv1d: the lecture's CNN baseline, self-attention restricted to a fixed receptive field
with position-specific weights instead of data-dependent ones."""
import math

import numpy as np

from .. import functional as F
from ..creation import empty_parameter_data, zeros
from . import init
from .layers import size_arg
from .module import Module
from .parameter import Parameter


def _single(value):
    """PyTorch's Conv1d takes kernel_size, stride and padding as an int or a 1-tuple."""
    return value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value


class Conv1d(Module):
    """y[n, o, t] = b[o] + Σ_c Σ_m W[o, c, m] · x_pad[n, c, t·stride + m]   (cross-correlation, as PyTorch).

    Input (N, C_in, L) -> output (N, C_out, L_out), L_out = (L + 2·padding - kernel_size) // stride + 1.
    Built from gradchecked ops (im2col): the padded input's windows are gathered by integer
    indexing, whose backward scatter-adds, and contracted with W by one linear.
    """

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, stride=1, bias=True, dtype=None):
        super().__init__()
        in_channels = size_arg("Conv1d", "in_channels", in_channels)
        out_channels = size_arg("Conv1d", "out_channels", out_channels)
        # PyTorch builds a Conv1d with kernel_size 0, stride 0 or negative padding and fails at the first
        # forward; here the constructor says so, before anything is allocated
        kernel_size = size_arg("Conv1d", "kernel_size", _single(kernel_size), minimum=1)
        stride = size_arg("Conv1d", "stride", _single(stride), minimum=1)
        padding = size_arg("Conv1d", "padding", _single(padding))
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding, self.stride = kernel_size, padding, stride
        self.weight = Parameter(empty_parameter_data((out_channels, in_channels, kernel_size), dtype))
        self.bias = Parameter(empty_parameter_data((out_channels,), dtype)) if bias else None
        fan_in = in_channels * kernel_size
        if self.weight.numel():  # zero channels (PyTorch allows them): nothing to initialise, as in Linear
            init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # U(-1/√fan_in, 1/√fan_in), as PyTorch
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv1d: expected input (N, {self.in_channels}, L), got {x.shape}")
        n, c, length = x.shape
        p, k, s = self.padding, self.kernel_size, self.stride
        if p:
            pad = zeros(n, c, p, dtype=x.dtype, device=x.device)
            x = F.cat([pad, x, pad], dim=2)
        l_out = (length + 2 * p - k) // s + 1
        if l_out < 1:
            raise ValueError(f"Conv1d: input length {length} (padding {p}) is shorter than kernel_size {k}")
        windows = np.arange(l_out)[:, None] * s + np.arange(k)[None, :]  # (L_out, K) positions
        cols = x[:, :, windows]  # (N, C, L_out, K)
        cols = cols.permute(0, 2, 1, 3).reshape(n, l_out, c * k)  # (N, L_out, C·K)
        y = F.linear(cols, self.weight.reshape(self.out_channels, c * k), self.bias)  # (N, L_out, C_out)
        return y.transpose(1, 2)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, padding={self.padding}, stride={self.stride}"
