"""The backend contract: every kernel a device backend offers, with one meaning per argument on every device.

`tinyattn.backend` holds the backends (`CPUBackend`: NumPy arrays and the Numba kernels of
`tinyattn.kernels.cpu`; `CUDABackend`: `DeviceArray`s and the `numba.cuda` kernels of
`tinyattn.kernels.cuda`). Ops call `backend_of(array).<kernel>(...)`; what they may pass and what they get
back is written here once, in `Backend`, and `check_backend` verifies that a backend offers every name with
this exact signature (tests/test_backend_contract.py runs it, and every kernel against a NumPy reference,
over every backend: the CUDA one under Numba's simulator when there is no GPU).

Common rules (every kernel, every device):

* Arrays are the backend's own (`np.ndarray` on the CPU, `DeviceArray` on CUDA), float32 or float64 unless
  a kernel says otherwise, all of one dtype; results come back in that dtype, as new arrays of the same
  backend. Accumulation happens in that dtype (the CPU's few-row attention path accumulates its row
  scalars in float64).
* Inputs may have any strides unless a kernel says "contiguous"; the backend copies what its kernels cannot
  read in place. Inputs are never modified, except by the kernels that say "in place".
* Results of float kernels match the math below to rounding (reassociated sums: the tolerances of
  tests/test_backend_contract.py), not bit for bit across devices.

Optional capabilities: a backend lists the optional kernels it offers in `capabilities` (a frozenset of
names, see `OPTIONAL`) and answers `supports(name)`; a caller asks `backend.supports(DECODE)` before it
calls one, never probes with hasattr or by array type. Today: `encoder_layer_decode` (the fused decode step
of nn.TransformerEncoderLayer) and `dropout` (the mask drawn inside the kernel), CPU only.

The masking rule of fused attention, the one reference: `attention_allowed` (which keys a query may see) and
`attention_reference` (the forward, fully masked rows included). Every attention kernel is tested against
them (tests/test_backend_contract.py, tests/test_kernels_attention.py); on each device one helper computes
the rule (`tinyattn.kernels.cpu.attention.mask` for the CPU kernels and the decode step,
`tinyattn.kernels.cuda.attention`'s `key_range` / `query_range` device functions for the CUDA ones).
"""
from __future__ import annotations

import inspect
from typing import Any, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

__all__ = ["Backend", "DecodeStep", "DECODE", "DROPOUT", "FusedDropout", "OPTIONAL", "BackendContractError",
           "check_backend", "contract_methods", "attention_allowed", "attention_reference",
           "attention_backward_reference"]

Array = Any  # the backend's array type: np.ndarray (CPU) or DeviceArray (CUDA)

DECODE = "encoder_layer_decode"
DROPOUT = "dropout"


@runtime_checkable
class Backend(Protocol):
    """The kernels every device backend offers (tinyattn.backend.CPUBackend, CUDABackend)."""

    #: the device name: "cpu" or "cuda"
    name: str
    #: the array module of the device: numpy, or tinyattn.device_array (numpy's API on the GPU)
    xp: Any
    #: the optional kernels this backend offers (names from OPTIONAL)
    capabilities: frozenset

    def supports(self, capability: str) -> bool:
        """Whether the optional kernel `capability` (a name from OPTIONAL) is offered: capability in
        self.capabilities."""

    # ---- moving data --------------------------------------------------------------------------
    def asarray(self, data: Any, dtype: Any = None) -> Array:
        """`data` (a host array, a nested list, a scalar, or an array of this backend) as an array of this
        device, in `dtype` (None: NumPy's choice); an array already here and of that dtype passes through."""

    # ---- matrix products on (batch, rows, cols) arrays ---------------------------------------
    def matmul(self, a: Array, b: Array) -> Array:
        """C = A B per batch: a (Ba, M, K), b (Bb, K, N) -> (B, M, N), B = max(Ba, Bb); Ba and Bb are 1 or B
        (a batch of 1 broadcasts)."""

    def matmul_nt(self, a: Array, b: Array, bias: Optional[Array] = None) -> Array:
        """C = A Bᵀ (+ bias) per batch without forming Bᵀ: a (Ba, M, K), b (Bb, N, K) -> (B, M, N); bias None
        or (N,), added to every row (a Linear's forward: x Wᵀ + b)."""

    def matmul_tn(self, a: Array, b: Array, a_sums: bool = False) -> Any:
        """C = Aᵀ B per batch without forming Aᵀ: a (Ba, K, M), b (Bb, K, N) -> (B, M, N). With a_sums, returns
        (C, s) with s (B, M) = A summed over K (a Linear's dW = dyᵀ x and db = Σ dy from one pass over dy)."""

    def matmul_act_grad(self, a: Array, b: Array, act: str, x: Array) -> Array:
        """(A B per batch, as matmul) · f'(x) elementwise, x of the product's size: f = GELU (act 'gelu_tanh' or
        'gelu_erf', x its input) or ReLU ('relu', x its output). An activation's backward fused into the product
        dy W that makes its upstream gradient (a Linear after the activation; the backward walk finds the pair):
        the activation's backward (gelu_backward, gelu_erf_backward, relu_backward) of x and a @ b."""

    # ---- sums of whole arrays ----------------------------------------------------------------
    def add(self, a: Array, b: Array) -> Array:
        """a + b with NumPy's broadcasting and type promotion (a new array)."""

    def add_(self, a: Array, b: Array) -> Array:
        """a += b in place (b broadcasts to a; a writeable); returns a."""

    # ---- elementwise formulas (each result a new array of the inputs' shape and dtype, unless it says) -------
    def mul(self, a: Array, b: Array) -> Array:
        """a * b with NumPy's broadcasting and type promotion (a new array)."""

    def masked_fill(self, x: Array, mask: Array, value: Array) -> Array:
        """y = value where mask else x: mask bool, broadcasting to x's shape; value a 0-d array of x's dtype."""

    def relu(self, x: Array) -> Array:
        """y = max(x, 0): NaN stays NaN, -0 gives 0 (NumPy's maximum)."""

    def relu_backward(self, y: Array, dy: Array) -> Array:
        """dx = dy · (y > 0), from the forward's output y (a product: an infinite dy gives NaN where y <= 0)."""

    def tanh_backward(self, y: Array, dy: Array) -> Array:
        """dx = dy · (1 - y · y), from tanh's output y."""

    def cube(self, x: Array) -> Array:
        """y = x · x · x (x ** 3 as PyTorch computes it)."""

    def cube_backward(self, x: Array, dy: Array) -> Array:
        """dx = dy · (3 · (x · x))."""

    def sigmoid(self, x: Array) -> Array:
        """y = σ(x) = 1 / (1 + e^-x): 0 at -inf, 1 at +inf, NaN for NaN; full relative precision in the lower
        tail down to x ≈ -87 (float32) or -708 (float64), 0 below."""

    def sigmoid_backward(self, y: Array, dy: Array) -> Array:
        """dx = dy · y · (1 - y), from the forward's output y."""

    def silu(self, x: Array) -> Array:
        """y = x σ(x)."""

    def silu_backward(self, x: Array, dy: Array) -> Array:
        """dx = dy · σ(x) · (1 + x (1 - σ(x))), from the forward's input x."""

    # ---- softmax family along any axis ---------------------------------------------------------
    def softmax(self, x: Array, dim: int) -> Array:
        """y = exp(x - max) / Σ exp(x - max) along axis `dim` (negative counts from the end); x's shape."""

    def softmax_backward(self, y: Array, dy: Array, dim: int) -> Array:
        """dx = y ∘ (dy - Σ_dim dy ∘ y), from the forward's output y; y's shape."""

    def log_softmax(self, x: Array, dim: int) -> Array:
        """y = x - max - log Σ exp(x - max) along `dim`; x's shape."""

    def log_softmax_backward(self, y: Array, dy: Array, dim: int) -> Array:
        """dx = dy - exp(y) Σ_dim dy, from the forward's output y; y's shape."""

    # ---- GELU ----------------------------------------------------------------------------------
    def gelu(self, x: Array) -> Array:
        """GELU's tanh form, elementwise: y = x/2 (1 + tanh(√(2/π) (x + 0.044715 x³))); any shape."""

    def gelu_backward(self, x: Array, dy: Array) -> Array:
        """dx = dy · d gelu(x)/dx (the tanh form), elementwise; x's shape (dy has it too)."""

    def gelu_erf(self, x: Array) -> Array:
        """Exact GELU, elementwise: y = x Φ(x) = x (1 + erf(x/√2)) / 2; any shape."""

    def gelu_erf_backward(self, x: Array, dy: Array) -> Array:
        """dx = dy (Φ(x) + x φ(x)), φ the standard normal density; x's shape."""

    # ---- layer norm over rows ------------------------------------------------------------------
    def layer_norm(self, x: Array, w: Array, b: Array, eps: float) -> Tuple[Array, Array, Array]:
        """Per row r of x (R, N): μ, σ² (biased) over the row, rstd = 1/√(σ² + eps), x̂ = (x - μ) rstd,
        y = x̂ ∘ w + b, with w, b (N,). Returns (y (R, N), μ (R,), rstd (R,)); μ, rstd feed the backward."""

    def layer_norm_backward(self, dy: Array, x: Array, mean: Array, rstd: Array,
                            w: Array) -> Tuple[Array, Array, Array]:
        """From the forward's input x (R, N), its μ (R,) and rstd (R,): x̂ = (x - μ) rstd, g = dy ∘ w,
        dx = rstd (g - mean_c g - x̂ mean_c(g ∘ x̂)), dw = Σ_r dy ∘ x̂, db = Σ_r dy.
        Returns (dx (R, N), dw (N,), db (N,))."""

    # ---- embedding -----------------------------------------------------------------------------
    def embedding(self, weight: Array, index: Array) -> Array:
        """weight[index]: weight (V, D), index an integer array (...) of values in [0, V) (checked by the
        caller) -> (..., D)."""

    def embedding_backward(self, index: Array, dy: Array, num_embeddings: int) -> Array:
        """dW (num_embeddings, D): zeros, then every row dy[..., :] added at row index[...] (repeated indices
        accumulate); index (...), dy (..., D)."""

    # ---- optimiser ----------------------------------------------------------------------------
    def adam_update(self, w: Array, g: Array, m: Array, v: Array, beta1: float, beta2: float, step_size: float,
                    bias2: float, eps: float, decay: float, l2: float) -> None:
        """One Adam step in place on w, m, v (same shape; g read only), in this order:
        w *= decay;  g' = g + l2 w;  m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'²;
        w -= step_size m / (√(v / bias2) + eps).  (step_size = lr / (1 - beta1^t), bias2 = 1 - beta2^t,
        decay = 1 - lr·weight_decay for AdamW, l2 = weight_decay for Adam's L2 form.) Returns None.
        CUDA assumes w, m, v contiguous (parameters and optimizer state are)."""

    # ---- fused attention ------------------------------------------------------------------------
    def attention_forward(self, q: Array, k: Array, v: Array, bias: Optional[Array], causal: bool,
                          window: Optional[int], scale: float, offset: int = 0) -> Tuple[Array, Array]:
        """Fused scaled-dot-product attention, never forming the L x S matrix in memory. Per batch-head:

            S_ij = scale q_i·k_j + bias_ij, and -inf where masked (attention_allowed, or bias_ij = -inf)
            P = softmax(S) row-wise;  out = P V;  lse_i = log Σ_j exp(S_ij)

        q (..., L, E), k (..., S, E), v (..., S, Ev) with the same batch dims (BH = their product >= 1), one
        float dtype, any strides. bias: None, or a 3-D array (Bb, Lb, Sb) of q's dtype, each axis 1 or full
        (BH, L, S) and broadcast (never expanded). causal: keep key j for query row i only if
        j <= i + offset. window: None (no window), or w >= 0: keep key j only if |i + offset - j| <= w.
        offset places query row i at key position i + offset (0: PyTorch's top-left is_causal, S - L:
        bottom-right, a key/value cache). A fully masked row (every key masked, or S = 0) gets out_i = 0 and
        lse_i = -inf, and contributes exactly 0 to every gradient. (On a cold start the CPU backend may
        compile the backward kernel in a second process meanwhile: tinyattn.runtime decides, not the caller.)

        Returns (out (..., L, Ev), lse (..., L)); out may be strided (the CPU lays (B, H, L, Ev) out as
        (B, L, H, Ev) so joining the heads is a view)."""

    def attention_backward(self, q: Array, k: Array, v: Array, bias: Optional[Array], causal: bool,
                           window: Optional[int], scale: float, out: Array, lse: Array, dout: Array,
                           offset: int = 0) -> Tuple[Array, Array, Array]:
        """The gradients of attention_forward, from its out and lse (the same q, k, v, bias, causal, window,
        scale, offset); dout shaped like out, any strides. With P_ij = exp(S_ij - lse_i) (0 on a fully
        masked row), D_i = Σ_e dout_ie out_ie, dS = P ∘ (dout Vᵀ - D):

            dq = scale dS K;   dk = scale dSᵀ Q;   dv = Pᵀ dout

        Returns (dq, dk, dv), shaped like q, k, v, in q's dtype: contiguous, or (CPU) laid out like q, k, v side
        by side in one buffer when those are equal slices of one array."""


class DecodeStep(Protocol):
    """The optional fused decode step (capability DECODE): one causal encoder layer over new positions."""

    def encoder_layer_decode(self, x: Array, norm1: tuple, in_proj: tuple, out_proj: tuple, norm2: tuple,
                             linear1: tuple, linear2: tuple, k_buf: Array, v_buf: Array, start: int,
                             norm_first: bool, activation: str) -> Array:
        """y (N, T, E) for the new positions x (N, T, E), at positions start .. start + T - 1, of
        nn.TransformerEncoderLayer (batch first, H heads of D = E / H, causal self-attention over the cache):
        norm1, norm2 are (weight (E,), bias (E,), eps); in_proj (W (3E, E), b (3E,)), out_proj (W (E, E),
        b (E,)), linear1 (W (F, E), b (F,)), linear2 (W (E, F), b (E,)), biases never None (zeros instead),
        all C-contiguous of x's dtype. Writes the new keys and values into k_buf, v_buf (N, H, C, D),
        C >= start + T, at those positions (in place), and attends over positions 0 .. p for the row at
        position p (bottom-right causal). activation: "relu", "gelu" (tanh form) or "gelu_erf" (exact). The math is
        kernels/cpu/decode.py's docstring: the op-by-op layer's result to rounding."""


class FusedDropout(Protocol):
    """The optional fused dropout (capability DROPOUT): the mask drawn inside the kernel from a seed."""

    def dropout(self, x: Array, p: float, seed: int) -> Tuple[Array, Array]:
        """(y, keep) for x of any shape, 0 < p < 1, seed an int in [0, 2^64): keep (x's shape, bool) holds each
        element with probability 1 - p, independently, a function of the seed and the element's flat index
        only; y = x / (1 - p) where keep, else 0."""

    def dropout_backward(self, dy: Array, keep: Array, p: float) -> Array:
        """dx = dy / (1 - p) where keep, else 0 (keep from `dropout`, of dy's shape)."""


#: optional kernels: the capability name -> the Protocol that declares its method
OPTIONAL = {DECODE: DecodeStep, DROPOUT: FusedDropout}


class BackendContractError(TypeError):
    """A backend that does not offer the contract: the message lists every missing or different name."""


def contract_methods(protocol=Backend):
    """{name: inspect.Signature without self} of every method a Protocol declares."""
    out = {}
    for name, fn in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        sig = inspect.signature(fn)
        out[name] = sig.replace(parameters=list(sig.parameters.values())[1:])
    return out


def _plain(sig):
    """A signature's parameters as (name, kind, default): what must agree (annotations are documentation)."""
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def check_backend(backend):
    """Raises BackendContractError unless `backend` has every attribute and method of Backend (and of each
    optional kernel it lists in capabilities), each method with the contract's parameters: the same names,
    kinds and defaults in the same order. Returns the backend."""
    problems = []
    for attr in ("name", "xp", "capabilities"):
        if not hasattr(backend, attr):
            problems.append(f"no attribute {attr!r}")
    caps = getattr(backend, "capabilities", frozenset())
    protocols = [Backend]
    for cap in caps:
        if cap not in OPTIONAL:
            problems.append(f"capability {cap!r} is not an optional kernel of the contract ({sorted(OPTIONAL)})")
        else:
            protocols.append(OPTIONAL[cap])
    for protocol in protocols:
        for name, want in contract_methods(protocol).items():
            fn = getattr(backend, name, None)
            if not callable(fn):
                problems.append(f"no method {name}{want}")
                continue
            try:
                got = inspect.signature(fn)
            except (TypeError, ValueError):
                problems.append(f"{name}: no inspectable signature")
                continue
            if _plain(got) != _plain(want):
                problems.append(f"{name}{got} differs from the contract's {name}{want}")
    for cap in OPTIONAL:
        if hasattr(backend, "supports") and callable(backend.supports) and backend.supports(cap) != (cap in caps):
            problems.append(f"supports({cap!r}) disagrees with capabilities")
    if problems:
        raise BackendContractError(f"backend {getattr(backend, 'name', type(backend).__name__)!r} breaks the "
                                   "contract (tinyattn/backend_contract.py): " + "; ".join(problems))
    return backend


# ---------------------------------------------------------------------------------------------------------
# The masking rule of fused attention: the one reference definition
# ---------------------------------------------------------------------------------------------------------
def attention_allowed(L, S, causal=False, window=None, offset=0):
    """(L, S) bool: may query row i attend to key j (before any bias). Row i sits at key position
    p = i + offset; causal keeps j <= p; window w (None: none) keeps |p - j| <= w; both may combine.
    offset 0 is PyTorch's top-left is_causal, offset S - L the bottom-right alignment of a key/value cache.
    A -inf bias entry masks too (attention_reference); a row with no key left is "fully masked"."""
    pos = np.arange(L)[:, None] + offset
    j = np.arange(S)[None, :]
    allowed = np.ones((L, S), dtype=bool)
    if causal:
        allowed &= j <= pos
    if window is not None:
        allowed &= np.abs(pos - j) <= window
    return allowed


def _scores(q, k, bias, causal, window, scale, offset):
    """float64 scores (BH, L, S) with masked entries -inf, from q (..., L, E), k (..., S, E)."""
    L, S = q.shape[-2], k.shape[-2]
    q = np.asarray(q, np.float64).reshape(-1, L, q.shape[-1])
    k = np.asarray(k, np.float64).reshape(-1, S, k.shape[-1])
    s = scale * np.einsum("ple,pse->pls", q, k)
    if bias is not None:
        s = s + np.broadcast_to(np.asarray(bias, np.float64), s.shape)
    return np.where(attention_allowed(L, S, causal, window, offset), s, -np.inf)


def attention_reference(q, k, v, bias, causal, window, scale, offset=0):
    """The forward every attention kernel must match, in float64 NumPy: (out (..., L, Ev), lse (..., L)).
    Arguments as Backend.attention_forward (host arrays). Fully masked rows: out 0, lse -inf."""
    batch, L, Ev = q.shape[:-2], q.shape[-2], v.shape[-1]
    s = _scores(q, k, bias, causal, window, scale, offset)
    m = s.max(axis=-1, keepdims=True, initial=-np.inf)
    dead = m == -np.inf
    e = np.exp(s - np.where(dead, 0.0, m))
    tot = e.sum(axis=-1, keepdims=True)
    p = np.where(dead, 0.0, e / np.where(dead, 1.0, tot))
    out = p @ np.asarray(v, np.float64).reshape(-1, v.shape[-2], Ev)
    with np.errstate(divide="ignore"):
        lse = np.where(dead, -np.inf, m + np.log(np.where(dead, 1.0, tot)))[..., 0]
    return out.reshape(batch + (L, Ev)), lse.reshape(batch + (L,))


def attention_backward_reference(q, k, v, bias, causal, window, scale, dout, offset=0):
    """(dq, dk, dv) of attention_reference's out for the upstream gradient dout, float64 NumPy."""
    L, S, E, Ev = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    s = _scores(q, k, bias, causal, window, scale, offset)
    m = s.max(axis=-1, keepdims=True, initial=-np.inf)
    dead = m == -np.inf
    e = np.exp(s - np.where(dead, 0.0, m))
    p = np.where(dead, 0.0, e / np.where(dead, 1.0, e.sum(axis=-1, keepdims=True)))
    q64, k64 = (np.asarray(a, np.float64).reshape(-1, a.shape[-2], E) for a in (q, k))
    v64 = np.asarray(v, np.float64).reshape(-1, S, Ev)
    do = np.asarray(dout, np.float64).reshape(-1, L, Ev)
    dv = np.swapaxes(p, -1, -2) @ do
    dp = do @ np.swapaxes(v64, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = scale * ds @ k64
    dk = scale * np.swapaxes(ds, -1, -2) @ q64
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
