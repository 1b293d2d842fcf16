"""RNN: the lecture's recurrent baseline, a tanh Elman network (batch_first)."""
import math

from .. import functional as F
from ..creation import empty_parameter_data, zeros
from . import init
from .layers import size_arg
from .module import Module
from .parameter import Parameter


class RNN(Module):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh), one layer, PyTorch's parameter names.

    Input (N, T, input_size) (batch_first) and optional h0 (1, N, hidden_size);
    returns (output (N, T, hidden_size), h_n (1, N, hidden_size)).
    Built from gradchecked ops; backpropagation through time is the graph walk over the
    T steps. The loop over t cannot be parallelised: that is the RNN's sequential cost.
    """

    def __init__(self, input_size, hidden_size, bias=True, batch_first=True, dtype=None):
        super().__init__()
        if not batch_first:
            raise ValueError("RNN: only batch_first=True is implemented")
        input_size = size_arg("RNN", "input_size", input_size, minimum=1)  # PyTorch: both > 0
        hidden_size = size_arg("RNN", "hidden_size", hidden_size, minimum=1)
        self.input_size, self.hidden_size, self.batch_first = input_size, hidden_size, batch_first
        self.weight_ih_l0 = Parameter(empty_parameter_data((hidden_size, input_size), dtype))
        self.weight_hh_l0 = Parameter(empty_parameter_data((hidden_size, hidden_size), dtype))
        if bias:
            self.bias_ih_l0 = Parameter(empty_parameter_data((hidden_size,), dtype))
            self.bias_hh_l0 = Parameter(empty_parameter_data((hidden_size,), dtype))
        else:
            self.register_parameter("bias_ih_l0", None)
            self.register_parameter("bias_hh_l0", None)
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def forward(self, x, h0=None):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"RNN: expected input (N, T, {self.input_size}), got {x.shape}")
        n, steps, _ = x.shape
        if h0 is None:
            h = zeros(n, self.hidden_size, dtype=x.dtype, device=x.device)
        else:
            if tuple(h0.shape) != (1, n, self.hidden_size):
                raise ValueError(f"RNN: expected h0 of shape (1, {n}, {self.hidden_size}), got {h0.shape}")
            h = h0[0]
        xw = F.linear(x, self.weight_ih_l0, self.bias_ih_l0)  # (N, T, H): every input projection at once
        outputs = []
        for t in range(steps):
            h = F.tanh(xw[:, t] + F.linear(h, self.weight_hh_l0, self.bias_hh_l0))
            outputs.append(h)
        return F.stack(outputs, dim=1), h.unsqueeze(0)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, batch_first=True"
