"""Recurrent layers with PyTorch's signatures, parameter names, gate order, initialisation and returns:
RNN (tanh or relu Elman network), LSTM, GRU, and the one-step cells RNNCell, LSTMCell, GRUCell.

Per layer k and direction (suffix "" or "_reverse"), with σ the logistic sigmoid and * elementwise:

    RNN:   h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)                      act = tanh or relu
    LSTM:  [i | f | g | o] = W_ih x_t + b_ih + W_hh h_(t-1) + b_hh               (PyTorch's gate order)
           c_t = σ(f) * c_(t-1) + σ(i) * tanh(g),   h_t = σ(o) * tanh(c_t)      (h_t = W_hr h_t with proj_size)
    GRU:   [r_x | z_x | n_x] = W_ih x_t + b_ih,  [r_h | z_h | n_h] = W_hh h_(t-1) + b_hh
           r = σ(r_x + r_h),  z = σ(z_x + z_h),  n = tanh(n_x + r * n_h),  h_t = (1 - z) * n + z * h_(t-1)

Every parameter starts U(-1/√hidden_size, 1/√hidden_size), as in PyTorch. Built from gradchecked ops
(linear, sigmoid, tanh, mul, add, slicing, stack, cat): backpropagation through time is the graph walk
over the T steps. The input projections of all steps are one product per layer and direction; the
loop over t cannot be parallelised: that is the recurrence's sequential cost.
"""
import math
import numbers
import warnings


from .. import functional as F
from ..creation import empty_parameter_data, zeros
from ..tensor import Tensor
from . import init
from .layers import place, size_arg
from .module import Module
from .parameter import Parameter

__all__ = [
    "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase",
]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _rnn_step(act, x_proj, h, w_hh, b_hh):
    """h' = act(x_proj + W_hh h + b_hh): x_proj = W_ih x + b_ih already computed."""
    return act(x_proj + F.linear(h, w_hh, b_hh))


def _lstm_step(x_proj, h, c, w_hh, b_hh, w_hr, hidden):
    """One LSTM step: (h', c') from the input projection x_proj (N, 4H) and the state (h, c)."""
    gates = x_proj + F.linear(h, w_hh, b_hh)  # (N, 4H): i, f, g, o
    i = F.sigmoid(gates[..., :hidden])
    f = F.sigmoid(gates[..., hidden:2 * hidden])
    g = F.tanh(gates[..., 2 * hidden:3 * hidden])
    o = F.sigmoid(gates[..., 3 * hidden:])
    c = f * c + i * g
    h = o * F.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def _gru_step(x_proj, h, w_hh, b_hh, hidden):
    """One GRU step: h' from the input projection x_proj (N, 3H) = W_ih x + b_ih and h."""
    hp = F.linear(h, w_hh, b_hh)  # (N, 3H): r, z, n
    r = F.sigmoid(x_proj[..., :hidden] + hp[..., :hidden])
    z = F.sigmoid(x_proj[..., hidden:2 * hidden] + hp[..., hidden:2 * hidden])
    n = F.tanh(x_proj[..., 2 * hidden:] + r * hp[..., 2 * hidden:])
    return n + z * (h - n)  # = (1 - z) * n + z * h


class RNNBase(Module):
    """The shared machinery of RNN, LSTM and GRU (PyTorch's nn.RNNBase): parameters, checks, the layer loop."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        input_size = size_arg(name, "input_size", input_size, minimum=1)
        hidden_size = size_arg(name, "hidden_size", hidden_size, minimum=1)
        num_layers = size_arg(name, "num_layers", num_layers, minimum=1)
        proj_size = size_arg(name, "proj_size", proj_size)
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          UserWarning, stacklevel=3)
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.mode, self._name = mode, name
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), proj_size
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for d in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                shapes = [("weight_ih" + sfx, (gate_size, layer_input)), ("weight_hh" + sfx, (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih" + sfx, (gate_size,)), ("bias_hh" + sfx, (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr" + sfx, (proj_size, hidden_size)))
                for pname, shape in shapes:
                    setattr(self, pname, Parameter(empty_parameter_data(shape, dtype)))
                    self._flat_weights_names.append(pname)
        self.reset_parameters()
        place(self, device)

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self):
        """PyTorch compacts cuDNN's weight buffer here; nothing to do in tinyattn."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        w = self._flat_weights
        return [w[i:i + per] for i in range(0, len(w), per)]

    def _weights(self, layer, d):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        get = lambda n: getattr(self, n + sfx, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _check_input(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"{self._name}: input must be a Tensor (PackedSequence is not implemented), "
                            f"got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{self._name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{self._name}: input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]}")
        if input.dtype.kind != "f":
            raise TypeError(f"{self._name}: input must be a floating-point tensor, got dtype {input.dtype}")
        if input.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{self._name}: input dtype {input.dtype} differs from the parameters' "
                            f"{self.weight_ih_l0.dtype} (convert one of them)")

    def _check_hidden(self, h, batched, n, size, what):
        if not isinstance(h, Tensor):
            raise TypeError(f"{self._name}: {what} must be a Tensor, got {type(h).__name__}")
        if batched and h.ndim != 3:
            raise RuntimeError(f"For batched 3-D input, {what} should also be 3-D but got {h.ndim}-D tensor")
        if not batched and h.ndim != 2:
            raise RuntimeError(f"For unbatched 2-D input, {what} should also be 2-D but got {h.ndim}-D tensor")
        expected = (self.num_layers * (2 if self.bidirectional else 1),) + ((n,) if batched else ()) + (size,)
        if tuple(h.shape) != expected:
            raise RuntimeError(f"{self._name}: Expected hidden size {expected}, got {list(h.shape)}")
        if h.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{self._name}: {what} dtype {h.dtype} differs from the parameters' "
                            f"{self.weight_ih_l0.dtype}")
        return h if batched else h.unsqueeze(1)

    def forward(self, input, hx=None):
        """input (T, N, input_size) ((N, T, input_size) with batch_first, or unbatched (T, input_size));
        hx (num_layers·D, N, H_out) or unbatched (num_layers·D, H_out), zeros if None (LSTM: a pair (h_0, c_0),
        c_0 of size hidden_size). Returns (output (T, N, D·H_out), h_n) (LSTM: (output, (h_n, c_n)))."""
        self._check_input(input)
        batched = input.ndim == 3
        x = input if not batched else (input.transpose(0, 1) if self.batch_first else input)  # (T, N, F)
        if not batched:
            x = x.unsqueeze(1)
        n = x.shape[1]
        directions = 2 if self.bidirectional else 1
        out_size = self.proj_size or self.hidden_size
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = zeros(self.num_layers * directions, n, out_size, dtype=x.dtype, device=x.device)
            c0 = zeros(self.num_layers * directions, n, self.hidden_size, dtype=x.dtype, device=x.device) if lstm \
                else None
        elif lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            h0 = self._check_hidden(hx[0], batched, n, out_size, "hx[0]")
            c0 = self._check_hidden(hx[1], batched, n, self.hidden_size, "hx[1]")
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{self._name}: hx must be a Tensor, got {type(hx).__name__}")
            h0, c0 = self._check_hidden(hx, batched, n, out_size, "hx"), None
        h_n, c_n = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                k = layer * directions + d
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
                proj = F.linear(layer_in, w_ih, b_ih)  # (T, N, G): every step's input projection at once
                steps = range(proj.shape[0] - 1, -1, -1) if d else range(proj.shape[0])
                h = h0[k]
                c = c0[k] if lstm else None
                seq = []
                for t in steps:
                    if lstm:
                        h, c = _lstm_step(proj[t], h, c, w_hh, b_hh, w_hr, self.hidden_size)
                    elif self.mode == "GRU":
                        h = _gru_step(proj[t], h, w_hh, b_hh, self.hidden_size)
                    else:
                        h = _rnn_step(F.tanh if self.mode == "RNN_TANH" else F.relu, proj[t], h, w_hh, b_hh)
                    seq.append(h)
                if d:
                    seq.reverse()
                if seq:
                    outs.append(F.stack(seq, dim=0))  # (T, N, H_out)
                else:  # T = 0: an empty output, the initial state as the final one
                    outs.append(zeros(0, n, out_size, dtype=x.dtype, device=x.device))
                h_n.append(h)
                if lstm:
                    c_n.append(c)
            layer_in = outs[0] if directions == 1 else F.cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, True)
        output = layer_in
        h_n = F.stack(h_n, dim=0)  # (num_layers·D, N, H_out)
        c_n = F.stack(c_n, dim=0) if lstm else None
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        elif self.batch_first:
            output = output.transpose(0, 1)
        return (output, (h_n, c_n)) if lstm else (output, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """PyTorch's nn.RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh) (nonlinearity='relu': relu),
    num_layers stacked, optionally bidirectional, dropout between layers while training.

    RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, device=None, dtype=None); forward(input, hx=None) -> (output, h_n).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)

    def __setattr__(self, name, value):
        if name == "nonlinearity" and "_parameters" not in self.__dict__:
            object.__setattr__(self, name, value)  # set before Module.__init__ runs
        else:
            super().__setattr__(name, value)


class LSTM(RNNBase):
    """PyTorch's nn.LSTM (gates i, f, g, o), with proj_size (h_t = W_hr (o * tanh c_t)).

    LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, device=None, dtype=None);
    forward(input, hx=None) -> (output, (h_n, c_n)), hx = (h_0, c_0) or None.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """PyTorch's nn.GRU (gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).

    GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None); forward(input, hx=None) -> (output, h_n).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)


class RNNCellBase(Module):
    """The one-step cells: weight_ih (G·H, input_size), weight_hh (G·H, H), bias_ih, bias_hh (G·H),
    all U(-1/√H, 1/√H)."""

    def __init__(self, name, gates, input_size, hidden_size, bias, device, dtype):
        super().__init__()
        self._name = name
        self.input_size = size_arg(name, "input_size", input_size, minimum=1)
        self.hidden_size = size_arg(name, "hidden_size", hidden_size, minimum=1)
        self.bias = bool(bias)
        g = gates * self.hidden_size
        self.weight_ih = Parameter(empty_parameter_data((g, self.input_size), dtype))
        self.weight_hh = Parameter(empty_parameter_data((g, self.hidden_size), dtype))
        if bias:
            self.bias_ih = Parameter(empty_parameter_data((g,), dtype))
            self.bias_hh = Parameter(empty_parameter_data((g,), dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        place(self, device)

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prepare(self, input, hx, what="hx"):
        """input as (N, F), and hx as (N, H) (zeros if None); `batched` says whether to squeeze the result."""
        if not isinstance(input, Tensor):
            raise TypeError(f"{self._name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{self._name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{self._name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        if input.dtype != self.weight_ih.dtype:
            raise TypeError(f"{self._name}: input dtype {input.dtype} differs from the parameters' "
                            f"{self.weight_ih.dtype}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        return x, batched

    def _state(self, h, x, batched, what):
        if h is None:
            return zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
        if not isinstance(h, Tensor):
            raise TypeError(f"{self._name}: {what} must be a Tensor, got {type(h).__name__}")
        if h.ndim != (2 if batched else 1):
            raise ValueError(f"{self._name}: Expected {what} to be {2 if batched else 1}D, got {h.ndim}D instead")
        if h.shape[-1] != self.hidden_size or (batched and h.shape[0] != x.shape[0]):
            raise RuntimeError(f"{self._name}: {what} of shape {tuple(h.shape)} does not match the input "
                               f"{tuple(x.shape) if batched else tuple(x.shape[1:])} and hidden_size "
                               f"{self.hidden_size}")
        return h if batched else h.unsqueeze(0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu). forward(input (N, F) or (F,), hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__("RNNCell", 1, input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, batched = self._prepare(input, hx)
        h = self._state(hx, x, batched, "hx")
        act = F.tanh if self.nonlinearity == "tanh" else F.relu
        h = _rnn_step(act, F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o). forward(input, hx=None), hx = (h, c) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTMCell", 4, input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        x, batched = self._prepare(input, hx)
        if hx is None:
            h = c = self._state(None, x, batched, "hx")
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
            h, c = self._state(hx[0], x, batched, "hx[0]"), self._state(hx[1], x, batched, "hx[1]")
        h, c = _lstm_step(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh, None,
                          self.hidden_size)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n). forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRUCell", 3, input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        x, batched = self._prepare(input, hx)
        h = self._state(hx, x, batched, "hx")
        h = _gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh, self.hidden_size)
        return h if batched else h.squeeze(0)
