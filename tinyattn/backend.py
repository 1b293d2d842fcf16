"""Devices as objects: each backend exposes the same kernel names over its own arrays.

Ops in `tinyattn.functional` call `backend_of(array).<kernel>(...)` and never import a
device-specific module, so a second device only has to provide the same names.

- CPUBackend: numpy arrays; numpy for elementwise work (`xp`) and the Numba kernels in
  `tinyattn.kernels.cpu` for matmul, softmax, attention, GELU, layer norm and embedding.
- CUDABackend: `DeviceArray`s (tinyattn/device_array/, numpy's API on the GPU) for
  elementwise work, and the `numba.cuda` kernels in `tinyattn.kernels.cuda` for the rest.
  Imported on first use, so `import tinyattn` never imports numba.cuda.

Kernels want C-contiguous arrays; the backend makes them so (a no-op when they already are), except the CPU
matmul kernels, which read transposed and strided views in place.
"""
import math

import numpy as np

from . import runtime
from .contention import GOVERNOR

# The CPU thresholds (a kernel on one thread below SERIAL_WORK; sums and Adam on every thread from PARALLEL_SUM
# and PARALLEL_ADAM elements) live with their units and measurements in kernels/cpu/policy.py (importing it
# compiles nothing; the package's __init__ sets the alignment of compiled code's arrays, kernels/cpu/alignment.py,
# from the Numba modules kernel_cache.py has already imported).
from .kernels.cpu.alignment import empty as _aligned_empty
from .kernels.cpu.policy import PARALLEL_ADAM, PARALLEL_ROWS, PARALLEL_SUM, SERIAL_WORK
from .kernels.cpu.threads import num_threads, thread_count_calls
# The float dtypes the kernels compile for (native byte order): float16, big-endian or long double arrays
# take NumPy's path.
_KERNEL_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def _sigmoid_numpy(x):
    """σ(x) in array expressions (the dtypes without a CPU kernel, and the CUDA backend's arrays), from
    e = e^-|x| as the kernel: 1 / (1 + e) for x >= 0, e / (1 + e) below. It never overflows and keeps full
    relative precision in the lower tail, where (1 + tanh(x/2)) / 2 reaches 0 from x ≈ -18 in float32."""
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


_get_threads = _set_threads = None


def _run(work, kernel, *args):
    """kernel(*args), on one thread when the work is small. First, a few times a second, fewer threads while other
    processes hold cores (contention.py)."""
    global _get_threads, _set_threads
    if _get_threads is None:
        _get_threads, _set_threads = thread_count_calls()  # (kernels/cpu/threads.py: no per-call lock)
        GOVERNOR.bind(_get_threads, _set_threads)
    GOVERNOR.poll()
    if work >= SERIAL_WORK:
        return kernel(*args)
    threads = _get_threads()
    if threads == 1:  # already one thread: no switching
        return kernel(*args)
    _set_threads(1)
    try:
        return kernel(*args)
    finally:
        _set_threads(threads)


_ACT_BACKWARDS = {"gelu_tanh": "gelu_backward", "gelu_erf": "gelu_erf_backward", "relu": "relu_backward"}


def _check_act(act):
    if act not in _ACT_BACKWARDS:
        raise ValueError(f"matmul_act_grad: unknown activation {act!r}; expected one of {sorted(_ACT_BACKWARDS)}")


def _act_grad_after(backend, y, act, x):
    """y · f'(x) (matmul_act_grad's two steps): the activation's own backward on the product y, in y's shape."""
    _check_act(act)
    return getattr(backend, _ACT_BACKWARDS[act])(x.reshape(y.shape), y)


def _row_work(rows):
    """The work `_run` sees for a row kernel (softmax family, layer norm): on every thread from PARALLEL_ROWS
    elements, where SERIAL_WORK would keep them on one."""
    return SERIAL_WORK if rows.size >= PARALLEL_ROWS else 0


def _batch(x):
    """The batch size of a matmul operand (..., rows, cols): the product of its leading axes."""
    return x.shape[0] if x.ndim == 3 else math.prod(x.shape[:-2])


def _rows(x, dim):
    """View x as C-contiguous (rows, x.shape[dim]) with `dim` moved last; return it and an undo."""
    dim = dim % x.ndim
    moved = x if dim == x.ndim - 1 else np.moveaxis(x, dim, -1)
    moved = np.ascontiguousarray(moved)
    shape = moved.shape

    def undo(rows):
        out = rows.reshape(shape)
        return out if dim == x.ndim - 1 else np.moveaxis(out, -1, dim)

    return moved.reshape(math.prod(shape[:-1]), shape[-1]), undo


# Process-wide effects (malloc tuning, the compile notice, compile-ahead, the host kernel choice): runtime.py.


def _window(window):
    """The contract's window (None: no window, or an int >= 0) as the kernels take it (-1: none)."""
    return -1 if window is None else int(window)


class CPUBackend:
    """The contract (tinyattn/backend_contract.py) on host NumPy arrays, with the Numba kernels of
    tinyattn.kernels.cpu; offers the optional fused decode step (encoder_layer_decode) and fused dropout."""

    name = "cpu"
    xp = np
    capabilities = frozenset({"encoder_layer_decode", "dropout"})

    def supports(self, capability):
        """Whether the optional kernel `capability` is offered (backend_contract.OPTIONAL)."""
        return capability in self.capabilities

    def __init__(self):
        self.malloc_tuned = runtime.setup_cpu()  # malloc tuning and the compile notice (runtime.py)
        from tinyattn.kernels.cpu import (activations, attention, decode, dropout,  # compiled on first call
                                          elementwise, embedding, layer_norm, matmul, optim, pointwise, sigmoid,
                                          softmax)

        self._mm = matmul
        self._sm = softmax
        self._attn = attention
        self._act = activations
        self._ln = layer_norm
        self._emb = embedding
        self._opt = optim
        self._dec = decode
        self._drop = dropout
        self._sig = sigmoid
        self._pw = pointwise
        self._ew = elementwise
        self._declare_backward_kernels()

    def _declare_backward_kernels(self):
        """For compile-ahead (compile_ahead.py: companions): the backward kernel, and its argument types, that the
        backward of each of these forward kernels runs, as the methods below call them (a gradient dy: a new C
        array; x, w: as the forward got them; layer norm's mean and rstd: the forward's new C arrays)."""
        from numba import types

        def c(a, ndim):  # a new C array of a's dtype
            return types.Array(a.dtype, ndim, "C")

        ln, act = self._ln, self._act
        # layer_norm_forward(x, w, b, eps) -> layer_norm_backward(dy, x, mean, rstd, w)
        runtime.declare_backward_kernels(ln.layer_norm_forward, lambda f: [
            (ln.__name__, "layer_norm_backward", (c(f[0], 2), f[0], c(f[0], 1), c(f[0], 1), f[1]))])
        # gelu_forward(x) -> gelu_backward(x, dy); gelu_erf_forward(x, out) -> gelu_erf_backward(x, dy, out), flat;
        # and the factor a Linear after the GELU applies instead (matmul_act_grad: of, cbase, N, mr, act_x, j0, j1)
        i64, outer = types.int64, self._mm.outer.__name__
        # (the factor first: a GELU is most often followed by a Linear)
        runtime.declare_backward_kernels(act.gelu_forward, lambda f: [
            (outer, "_times_gelu_tanh_grad", (c(f[0], 1), i64, i64, i64, c(f[0], 1), i64, i64)),
            (act.__name__, "gelu_backward", (f[0], c(f[0], 1)))])
        runtime.declare_backward_kernels(act.gelu_erf_forward, lambda f: [
            (outer, "_times_gelu_erf_grad", (c(f[0], 1), i64, i64, i64, c(f[0], 1), i64, i64)),
            (act.__name__, "gelu_erf_backward", (f[0], c(f[0], 1), f[1]))])

    # ---- matmul on (batch, rows, cols) arrays; batch is 1 or the full batch ----------
    # A product with few rows (M <= matmul.ROWS_MAX_NT / ROWS_MAX_NN: one token's Linear while generating)
    # takes the plain serial kernel `_gemm_rows` (kernel="rows"): no parallel region, no packing.
    # The CPU kernels also take operands with several batch axes (Ba, Bb: their products), which they read in
    # place through a table of batch offsets (Matmul passes attention's q, k, v views so: kernels/cpu/matmul).
    def matmul(self, a, b):
        """(Ba, M, K) @ (Bb, K, N) -> (B, M, N). Operands of any strides go to the kernels as they are (they read
        transposed and strided views in place, and copy only what they cannot: kernels/cpu/matmul)."""
        if a.shape[-2] <= self._mm.ROWS_MAX_NN:
            return self._mm.matmul_nn(a, b, "rows")
        work = max(_batch(a), _batch(b)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
        return _run(work, self._mm.matmul_nn, a, b)

    def matmul_act_grad(self, a, b, act, x):
        """(a @ b) · f'(x), x of the product's size: f = GELU ('gelu_tanh' or 'gelu_erf', x its input) or ReLU
        ('relu', x its output): the activation's backward fused into the product that makes its upstream
        gradient (the factor applied to each output tile as it is written, kernels/cpu/matmul); the two steps
        where the product takes another kernel."""
        _check_act(act)
        if a.shape[-2] > self._mm.ROWS_MAX_NN:
            work = max(_batch(a), _batch(b)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
            out = _run(work, self._mm.matmul_nn_act_grad, a, b, act, x.reshape(-1, a.shape[-2], b.shape[-1]))
            if out is not None:
                return out
        return _act_grad_after(self, self.matmul(a, b), act, x)

    def matmul_nt(self, a, b, bias=None):
        """(Ba, M, K) @ (Bb, N, K)ᵀ (+ bias (N,), added to every row) -> (B, M, N), without materialising
        the transpose; the bias is added inside the product (a Linear's forward)."""
        if bias is not None:
            bias = np.ascontiguousarray(bias)
        if a.shape[-2] <= self._mm.ROWS_MAX_NT:
            return self._mm.matmul_nt(a, b, "rows", bias)
        work = max(_batch(a), _batch(b)) * a.shape[-2] * a.shape[-1] * b.shape[-2]
        return _run(work, self._mm.matmul_nt, a, b, None, bias)

    def matmul_tn(self, a, b, a_sums=False):
        """(Ba, K, M)ᵀ @ (Bb, K, N) -> (B, M, N), without materialising the transpose; with a_sums, also
        a summed over K, (B, M) (a Linear's dW = dyᵀ x and db = Σ dy, in one pass over dy)."""
        if a.shape[-1] <= self._mm.ROWS_MAX_NN:
            return self._mm.matmul_tn(a, b, "rows", a_sums)
        work = max(_batch(a), _batch(b)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
        return _run(work, self._mm.matmul_tn, a, b, None, a_sums)

    # ---- sums, products and formulas of whole arrays (kernels/cpu/elementwise.py, pointwise.py) ----------
    @staticmethod
    def _large(*arrays):
        """Whether the one-pass kernels take these arrays: host arrays of one shape, float dtype and C layout,
        large enough that a second thread pays (PARALLEL_SUM elements). The fused formulas (Tanh's and ReLU's
        backward, the cube, masked_fill) take their kernel on one thread too: one pass instead of NumPy's
        several; a plain sum or product only with more threads (_parallel_sum)."""
        a = arrays[0]
        return (type(a) is np.ndarray and a.size >= PARALLEL_SUM and a.dtype in _KERNEL_FLOATS
                and all(type(x) is np.ndarray and x.shape == a.shape and x.dtype == a.dtype and x.flags.c_contiguous
                        for x in arrays))

    def _parallel_sum(self, a, b):
        """Whether a + b (a * b) goes to the parallel kernel: `_large` arrays, more than one thread (on one,
        NumPy's single pass is as fast)."""
        return self._large(a, b) and num_threads() > 1

    def _pointwise(self, kernel, *arrays):
        """kernel(*flat arrays, out, thread count) of kernels/cpu/pointwise.py, in the arrays' shape."""
        flat = [x.reshape(-1) for x in arrays]
        return kernel(*flat, np.empty_like(flat[0]), num_threads()).reshape(arrays[0].shape)

    def add(self, a, b):
        """a + b (NumPy's result), in parallel for large arrays of one shape (kernels/cpu/elementwise.py) or an
        array and a scalar of its dtype (kernels/cpu/pointwise.py)."""
        if self._parallel_sum(a, b):
            out = np.empty_like(a)
            self._ew.add(a.reshape(-1), b.reshape(-1), out.reshape(-1), num_threads())
            return out
        return self._with_scalar(self._pw.add_scalar, a, b, np.add)

    def mul(self, a, b):
        """a * b (NumPy's result), in parallel for large arrays of one shape, or an array and a scalar of its
        dtype (kernels/cpu/pointwise.py)."""
        if self._parallel_sum(a, b):
            return self._pointwise(self._pw.mul, a, b)
        return self._with_scalar(self._pw.mul_scalar, a, b, np.multiply)

    def _with_scalar(self, kernel, a, b, ufunc):
        """ufunc(a, b), through kernel(array, scalar) when one side is a 0-d array of the other's dtype and the
        other a large array (both operations commute exactly: a · s = s · a)."""
        for big, s in ((a, b), (b, a)):
            if type(s) is np.ndarray and s.ndim == 0 and s.dtype == big.dtype and self._parallel_sum(big, big):
                flat = big.reshape(-1)
                return kernel(flat, s[()], np.empty_like(flat), num_threads()).reshape(big.shape)
        return ufunc(a, b)

    def masked_fill(self, x, mask, value):
        """np.where(mask, value, x), in parallel for a large C-contiguous x and a C-contiguous mask of x's shape
        or of its trailing dims (kernels/cpu/pointwise.py)."""
        # the kernel's rows are the mask's size: from 64 elements a row loop pays
        if not (self._large(x) and x.ndim >= 2 and type(mask) is np.ndarray and mask.flags.c_contiguous
                and mask.ndim <= x.ndim and mask.size >= 64 and getattr(value, "dtype", None) == x.dtype):
            return np.where(mask, value, x)
        inner = mask.shape  # the mask without its leading 1s: x's trailing dims, or all of x's shape
        while inner and inner[0] == 1:
            inner = inner[1:]
        if inner == x.shape[x.ndim - len(inner):]:
            full = len(inner) == x.ndim
            R = x.shape[0] if full else x.size // mask.size
            x2 = x.reshape(R, -1)
            out = self._pw.masked_fill(x2, mask.reshape(R if full else 1, -1), value[()], np.empty_like(x2),
                                       num_threads())
            return out.reshape(x.shape)
        return np.where(mask, value, x)

    def relu(self, x):
        return self._pointwise(self._pw.relu, x) if self._large(x) else np.maximum(x, 0)

    def relu_backward(self, y, dy):
        return self._pointwise(self._pw.relu_backward, y, dy) if self._large(y, dy) else dy * (y > 0)

    def tanh_backward(self, y, dy):
        if self._large(y, dy):
            return self._pointwise(self._pw.tanh_backward, y, dy)
        return dy * (1 - y * y)

    def cube(self, x):
        return self._pointwise(self._pw.cube, x) if self._large(x) else x * x * x

    def cube_backward(self, x, dy):
        if self._large(x, dy):
            return self._pointwise(self._pw.cube_backward, x, dy)
        return dy * (3 * (x * x))

    def add_(self, a, b):
        """a += b in place (a writeable, b of a's shape and dtype); returns a."""
        if not self._parallel_sum(a, b) or not a.flags.writeable:
            a += b
            return a
        flat = a.reshape(-1)
        self._ew.add(flat, b.reshape(-1), flat, num_threads())
        return a

    # ---- dropout (optional capability DROPOUT) -------------------------------------
    def dropout(self, x, p, seed):
        """(y, keep): the mask drawn inside the kernel from `seed` (kernels/cpu/dropout.py)."""
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty_like(flat)
        keep = np.empty(flat.size, np.bool_)
        scale = flat.dtype.type(1.0 / (1.0 - p))
        _run(flat.size, self._drop.dropout_forward, flat, np.uint64(seed), round(p * (1 << 24)), scale, out, keep)
        return out.reshape(x.shape), keep.reshape(x.shape)

    def dropout_backward(self, dy, keep, p):
        flat = np.ascontiguousarray(dy).reshape(-1)
        out = np.empty_like(flat)
        _run(flat.size, self._drop.dropout_backward, flat, np.ascontiguousarray(keep).reshape(-1),
             flat.dtype.type(1.0 / (1.0 - p)), out)
        return out.reshape(dy.shape)

    # ---- sigmoid and SiLU ----------------------------------------------------------------------
    # float32 and float64 through one fused pass (kernels/cpu/sigmoid.py); other dtypes through NumPy's
    # expressions of the same formulas.
    def _flat_pass(self, kernel, fallback, *arrays):
        """kernel(*flat arrays, out) on host arrays of one shape and kernel dtype (copied to C order if they
        are not), else fallback(*arrays)."""
        a = arrays[0]
        if not (a.dtype in _KERNEL_FLOATS and all(type(x) is np.ndarray and x.shape == a.shape and x.dtype == a.dtype
                                                  for x in arrays)):
            return fallback(*arrays)
        flat = [np.ascontiguousarray(x).reshape(-1) for x in arrays]
        return _run(flat[0].size, kernel, *flat, np.empty_like(flat[0])).reshape(a.shape)

    def sigmoid(self, x):
        return self._flat_pass(self._sig.sigmoid_forward, _sigmoid_numpy, x)

    def sigmoid_backward(self, y, dy):
        return self._flat_pass(self._sig.sigmoid_backward, lambda y, dy: dy * y * (1 - y), y, dy)

    def silu(self, x):
        return self._flat_pass(self._sig.silu_forward, lambda x: x * _sigmoid_numpy(x), x)

    def silu_backward(self, x, dy):
        def fallback(x, dy):
            s = _sigmoid_numpy(x)
            return dy * s * (1 + x * (1 - s))
        return self._flat_pass(self._sig.silu_backward, fallback, x, dy)

    # ---- softmax family along any dim ---------------------------------------------
    # On every thread from PARALLEL_ROWS elements (policy.py, with its measurement), as layer norm.
    def softmax(self, x, dim):
        rows, undo = _rows(x, dim)
        return undo(_run(_row_work(rows), self._sm.softmax_forward, rows))

    def softmax_backward(self, y, dy, dim):
        y_rows, undo = _rows(y, dim)
        dy_rows, _ = _rows(dy, dim)
        return undo(_run(_row_work(y_rows), self._sm.softmax_backward, y_rows, dy_rows))

    def log_softmax(self, x, dim):
        rows, undo = _rows(x, dim)
        return undo(_run(_row_work(rows), self._sm.log_softmax_forward, rows))

    def log_softmax_backward(self, y, dy, dim):
        y_rows, undo = _rows(y, dim)
        dy_rows, _ = _rows(dy, dim)
        return undo(_run(_row_work(y_rows), self._sm.log_softmax_backward, y_rows, dy_rows))


    # ---- elementwise activations -------------------------------------------------
    def gelu(self, x):
        flat = np.ascontiguousarray(x).reshape(-1)
        return _run(flat.size, self._act.gelu_forward, flat).reshape(x.shape)

    def gelu_backward(self, x, dy):
        flat = np.ascontiguousarray(x).reshape(-1)
        return _run(flat.size, self._act.gelu_backward, flat, np.ascontiguousarray(dy).reshape(-1)).reshape(x.shape)

    def gelu_erf(self, x):
        flat = np.ascontiguousarray(x).reshape(-1)  # output allocated by NumPy: huge pages for large (kernel's note)
        return _run(flat.size, self._act.gelu_erf_forward, flat, np.empty_like(flat)).reshape(x.shape)

    def gelu_erf_backward(self, x, dy):
        flat = np.ascontiguousarray(x).reshape(-1)
        dy = np.ascontiguousarray(dy, dtype=flat.dtype).reshape(-1)
        return _run(flat.size, self._act.gelu_erf_backward, flat, dy, np.empty_like(flat)).reshape(x.shape)

    # ---- layer norm over rows ---------------------------------------------------
    # On every thread from PARALLEL_ROWS elements (policy.py, with its measurement), not SERIAL_WORK.
    def layer_norm(self, x, w, b, eps):
        """x (R, N) -> (y, mean, rstd)."""
        x = np.ascontiguousarray(x)
        return _run(_row_work(x), self._ln.layer_norm_forward, x,
                    np.ascontiguousarray(w), np.ascontiguousarray(b), eps)

    def layer_norm_backward(self, dy, x, mean, rstd, w):
        """-> (dx, dw, db)."""
        return _run(_row_work(dy), self._ln.layer_norm_backward,
                    np.ascontiguousarray(dy), np.ascontiguousarray(x), mean, rstd, w)

    # ---- embedding ------------------------------------------------------------------
    @staticmethod
    def embedding(weight, index):
        """weight[index]: (..., D) rows picked by an integer index array (...)."""
        return weight[index]

    def embedding_backward(self, index, dy, num_embeddings):
        """dW (num_embeddings, D) with every row of dy (..., D) added at its index."""
        return self._emb.embedding_backward(
            np.ascontiguousarray(index).reshape(-1), np.ascontiguousarray(dy).reshape(-1, dy.shape[-1]), num_embeddings
        )

    # ---- fused attention on (..., length, dim) arrays ------------------------------------
    def attention_forward(self, q, k, v, bias, causal, window, scale, offset=0):
        """O = softmax(scale·QKᵀ + bias, masked) V, tiled; returns O (..., L, Ev) and the row logsumexp (..., L).

        q (..., L, E), k (..., S, E), v (..., S, Ev) with the same batch dims (BH: their product), any
        strides: the kernel reads them in place through a flat view, a per-batch-head offset table and a
        row stride when each row is contiguous (the q, k, v of a fused qkv projection), and copies them
        otherwise (kernels/cpu/attention/layout.py). bias is None or (Bb, Lb, Sb), each axis 1 or full
        (BH, L, S), broadcast by the kernel, never copied; window None means none; query row i sits at key
        position i + offset for causal/window (0: top-left, S - L: bottom-right). On a cold start, when a
        backward is expected, its kernel compiles in a second process meanwhile (runtime.py, compile_ahead.py).
        """
        bh = math.prod(q.shape[:-2])
        work = bh * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        window = _window(window)
        with runtime.compile_ahead_of_backward(q, k, v, bias, causal, window, scale, offset):
            return _run(work, self._attn.attention_forward, q, k, v, bias, bias is not None, causal, window, scale,
                        offset)

    def attention_backward(self, q, k, v, bias, causal, window, scale, out, lse, dout, offset=0):
        """dq, dk, dv (shaped like q, k, v) from the forward's out and lse; dout shaped like out, any strides (read
        in place like q, k, v). C-contiguous, except for q, k, v (or k, v) that are equal slices of one array:
        their gradients then lie side by side in one buffer laid out like it (kernels/cpu/attention)."""
        runtime.before_backward()  # a cold start may be compiling this kernel in a second process
        bh = math.prod(q.shape[:-2])
        work = 2 * bh * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return _run(work, self._attn.attention_backward,
                    q, k, v, bias, bias is not None, causal, _window(window), scale, out, lse, dout, offset)

    # ---- a causal encoder layer over new positions, fused (generation's decode step) -------------
    def encoder_layer_decode(self, x, norm1, in_proj, out_proj, norm2, linear1, linear2, k_buf, v_buf, start,
                             norm_first, activation):
        """y (N, T, E) for the new positions x (N, T, E) of nn.TransformerEncoderLayer's decode step
        (kernels/cpu/decode.py): norm1, norm2 are (weight, bias, eps); in_proj, out_proj, linear1, linear2
        (weight, bias), biases never None; writes the new keys and values into k_buf, v_buf (N, H, C, D)
        at positions start .. start + T - 1. activation: "relu", "gelu" (tanh form) or "gelu_erf" (exact).
        One thread."""
        c = np.ascontiguousarray
        act = self._dec.ACTIVATIONS[activation]
        return self._dec.encoder_layer_decode(
            c(x), c(norm1[0]), c(norm1[1]), norm1[2], c(in_proj[0]), c(in_proj[1]), c(out_proj[0]), c(out_proj[1]),
            c(norm2[0]), c(norm2[1]), norm2[2], c(linear1[0]), c(linear1[1]), c(linear2[0]), c(linear2[1]),
            k_buf, v_buf, int(start), bool(norm_first), act)

    # ---- optimiser updates ---------------------------------------------------------------
    def _adam_call(self, n, flat, beta1, beta2, step_size, bias2, eps, decay, l2):
        """(kernel, arguments) of adam_update's fused pass over n elements: `flat` the 1-D views of (w, g, m, v)."""
        f = float  # Python floats: one compiled signature whatever number types the caller used
        args = flat + (f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(step_size), f(bias2), f(eps), f(decay), f(l2))
        threads = num_threads()
        if n >= PARALLEL_ADAM and threads > 1:
            return self._opt.adam_update_parallel, args + (threads,)
        return self._opt.adam_update, args

    def adam_kernels(self, w):
        """[(module, kernel name, Numba signature)]: the kernel adam_update will run for a parameter array `w`
        (its gradient and moments: new C arrays like it), for compile_ahead to compile before the first step; []
        when the update will not use a kernel."""
        if w.dtype not in _KERNEL_FLOATS or not w.flags.c_contiguous:
            return []
        flat = np.empty(0, w.dtype)
        kernel, args = self._adam_call(w.size, (flat, flat, flat, flat), 0.9, 0.999, 1.0, 1.0, 1.0, 1.0, 0.0)
        return [(kernel.py_func.__module__, kernel.py_func.__name__, tuple(kernel.typeof_pyval(a) for a in args))]

    def adam_update(self, w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2):
        """One Adam step in place (tinyattn.optim.Adam): decay w, add the L2 term, update m and v, step w.

        One fused pass (kernels/cpu/optim.py) when the four arrays are C-contiguous and of one kernel dtype
        (native float32/float64), the same NumPy expressions otherwise (same result, bit for bit)."""
        if (w.dtype == g.dtype == m.dtype == v.dtype and w.dtype in _KERNEL_FLOATS and w.flags.c_contiguous
                and g.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
            kernel, args = self._adam_call(w.size, (w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)),
                                           beta1, beta2, step_size, bias2, eps, decay, l2)
            kernel(*args)
            return
        if decay != 1.0:
            w *= decay
        if l2:
            g = g + l2 * w
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        w -= step_size * m / (np.sqrt(v / bias2) + eps)

    # ---- moving data ------------------------------------------------------------------
    @staticmethod
    def asarray(data, dtype=None):
        """`data` as an array of this device (host arrays pass through)."""
        return np.asarray(data, dtype=dtype)


class CUDABackend:
    """The contract (tinyattn/backend_contract.py) on the GPU; arrays are DeviceArrays, results stay on the device.

    Under Numba's simulator the launch sizes are small (the simulator runs each GPU thread as a
    Python thread); the kernels and results are the same.
    """

    name = "cuda"
    capabilities = frozenset()  # no fused decode step (yet)

    def supports(self, capability):
        """Whether the optional kernel `capability` is offered (backend_contract.OPTIONAL)."""
        return capability in self.capabilities

    def __init__(self):
        from tinyattn import device_array
        from tinyattn.kernels.cuda import activations, attention, embedding, launch, layer_norm, matmul, optim, softmax

        self.xp = device_array
        self._da = device_array.DeviceArray
        self._mm, self._sm, self._attn = matmul, softmax, attention
        self._act, self._ln, self._emb, self._optim = activations, layer_norm, embedding, optim
        sim = launch.SIMULATOR
        self._tile = 4 if sim else matmul.TILE
        self._block = 4 if sim else softmax.BLOCK  # threads per row (softmax, layer norm)
        self._attn_sizes = dict(rows=4, block_k=4) if sim else {}
        self._flat = dict(block=launch.SIM_THREADS, blocks=1) if sim else {}  # grid-stride kernels

    def _wrap(self, array):
        """A numba device array (C-contiguous, from a kernel) as a DeviceArray."""
        if array.size == 0:
            return self.xp.empty(array.shape, array.dtype)
        return self._da(array.reshape(array.size), array.shape)

    @staticmethod
    def _dev(x):
        """A DeviceArray as the C-contiguous numba device array the kernels take."""
        return x.as_numba()

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype)

    # ---- matmul ------------------------------------------------------------------------
    def matmul(self, a, b):
        return self._wrap(self._mm.matmul_nn(self._dev(a), self._dev(b), tile=self._tile))

    def matmul_act_grad(self, a, b, act, x):
        return _act_grad_after(self, self.matmul(a, b), act, x)

    def matmul_nt(self, a, b, bias=None):
        out = self._wrap(self._mm.matmul_nt(self._dev(a), self._dev(b), tile=self._tile))
        if bias is not None:
            out += bias
        return out

    def matmul_tn(self, a, b, a_sums=False):
        out = self._wrap(self._mm.matmul_tn(self._dev(a), self._dev(b), tile=self._tile))
        if not a_sums:
            return out
        s = a.sum(axis=1)  # (Ba, M)
        return out, s if s.shape[0] == out.shape[0] else s.broadcast_to(out.shape[:2]).copy()

    # ---- sums of whole arrays ----------------------------------------------------------------
    @staticmethod
    def add(a, b):
        return a + b

    # ---- elementwise formulas, as array expressions (the DeviceArray's ufuncs) -------------------------------
    @staticmethod
    def mul(a, b):
        return a * b

    @staticmethod
    def masked_fill(x, mask, value):
        return np.where(mask, value, x)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0)

    @staticmethod
    def relu_backward(y, dy):
        return dy * (y > 0)

    @staticmethod
    def tanh_backward(y, dy):
        return dy * (1 - y * y)

    @staticmethod
    def cube(x):
        return x * x * x

    @staticmethod
    def cube_backward(x, dy):
        return dy * (3 * (x * x))

    @staticmethod
    def sigmoid(x):
        return _sigmoid_numpy(x)

    @staticmethod
    def sigmoid_backward(y, dy):
        return dy * y * (1 - y)

    @staticmethod
    def silu(x):
        return x * _sigmoid_numpy(x)

    @staticmethod
    def silu_backward(x, dy):
        s = _sigmoid_numpy(x)
        return dy * s * (1 + x * (1 - s))

    @staticmethod
    def add_(a, b):
        a += b
        return a

    # ---- softmax family ------------------------------------------------------------------
    def _rows(self, x, dim):
        dim = dim % x.ndim
        moved = x if dim == x.ndim - 1 else x.swapaxes(dim, -1)
        shape = moved.shape

        def undo(rows):
            out = self._wrap(rows).reshape(shape)
            return out if dim == x.ndim - 1 else out.swapaxes(dim, -1)

        return moved.reshape(-1, shape[-1]).as_numba(), undo

    def _rowwise(self, kernel, y, dy, dim):
        rows, undo = self._rows(y, dim)
        if dy is None:
            return undo(kernel(rows, block=self._block))
        return undo(kernel(rows, self._rows(dy, dim)[0], block=self._block))

    def softmax(self, x, dim):
        return self._rowwise(self._sm.softmax_forward, x, None, dim)

    def softmax_backward(self, y, dy, dim):
        return self._rowwise(self._sm.softmax_backward, y, dy, dim)

    def log_softmax(self, x, dim):
        return self._rowwise(self._sm.log_softmax_forward, x, None, dim)

    def log_softmax_backward(self, y, dy, dim):
        return self._rowwise(self._sm.log_softmax_backward, y, dy, dim)

    # ---- GELU, layer norm, embedding ----------------------------------------------------------
    def gelu(self, x):
        return self._wrap(self._act.gelu_forward(self._dev(x.reshape(-1)), **self._flat)).reshape(x.shape)

    def gelu_backward(self, x, dy):
        flat = self._act.gelu_backward(self._dev(x.reshape(-1)), self._dev(dy.reshape(-1)), **self._flat)
        return self._wrap(flat).reshape(x.shape)

    def gelu_erf(self, x):
        return self._wrap(self._act.gelu_erf_forward(self._dev(x.reshape(-1)), **self._flat)).reshape(x.shape)

    def gelu_erf_backward(self, x, dy):
        flat = self._act.gelu_erf_backward(self._dev(x.reshape(-1)), self._dev(dy.reshape(-1)), **self._flat)
        return self._wrap(flat).reshape(x.shape)

    def layer_norm(self, x, w, b, eps):
        """x (R, N) -> (y, mean, rstd)."""
        arrays = (self._dev(a) for a in (x, w, b))
        return tuple(self._wrap(a) for a in self._ln.layer_norm_forward(*arrays, eps, block=self._block))

    def layer_norm_backward(self, dy, x, mean, rstd, w):
        """-> (dx, dw, db)."""
        arrays = (self._dev(a) for a in (dy, x, mean, rstd, w))
        return tuple(self._wrap(a) for a in self._ln.layer_norm_backward(*arrays, block=self._block))

    def embedding(self, weight, index):
        flat_index = self._dev(index.reshape(-1))
        rows = self._emb.embedding_forward(self._dev(weight), flat_index, **self._flat)
        return self._wrap(rows).reshape(index.shape + weight.shape[1:])

    def embedding_backward(self, index, dy, num_embeddings):
        flat_index = self._dev(index.reshape(-1))
        rows = self._dev(dy.reshape(-1, dy.shape[-1]))
        return self._wrap(self._emb.embedding_backward(flat_index, rows, num_embeddings, **self._flat))

    # ---- optimiser updates -------------------------------------------------------------------
    def adam_update(self, w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2):
        """The CPU backend's update, fused into one kernel; parameters and Adam's state are contiguous."""
        assert w.is_contiguous and m.is_contiguous and v.is_contiguous, "parameters and Adam's state are contiguous"
        self._optim.adam_update(*(self._dev(a.reshape(-1)) for a in (w, g, m, v)),
                                beta1, beta2, step_size, bias2, eps, decay, l2)

    # ---- fused attention ---------------------------------------------------------------------
    # The CUDA kernels take (BH, L, E) arrays: q, k, v (..., L, E), out, lse and dout are reshaped here (a
    # copy when their batch dims do not merge); out, lse and the gradients are reshaped back to the batch
    # dims (views of the kernels' contiguous results), as the contract says.
    def attention_forward(self, q, k, v, bias, causal, window, scale, offset=0):
        batch = q.shape[:-2]
        bh = math.prod(batch)
        q, k, v = (a.reshape(bh, *a.shape[-2:]) for a in (q, k, v))
        out, lse = self._attn.attention_forward(
            self._dev(q), self._dev(k), self._dev(v), causal, scale,
            bias=None if bias is None else self._dev(bias), window=_window(window), offset=offset,
            **self._attn_sizes)
        return self._wrap(out).reshape(batch + out.shape[-2:]), self._wrap(lse).reshape(batch + lse.shape[-1:])

    def attention_backward(self, q, k, v, bias, causal, window, scale, out, lse, dout, offset=0):
        shapes = (q.shape, k.shape, v.shape)
        bh = math.prod(q.shape[:-2])
        q, k, v = (a.reshape(bh, *a.shape[-2:]) for a in (q, k, v))
        out = out.reshape(bh, *out.shape[-2:])
        lse = lse.reshape(bh, lse.shape[-1])
        dout = dout.reshape(out.shape)
        grads = self._attn.attention_backward(
            self._dev(q), self._dev(k), self._dev(v), causal, scale, self._dev(out), self._dev(lse),
            self._dev(dout), bias=None if bias is None else self._dev(bias), window=_window(window),
            rows=self._attn_sizes.get("rows", self._attn.ROWS), offset=offset)
        return tuple(self._wrap(g).reshape(s) for g, s in zip(grads, shapes))


_cpu = None
_cuda = None


def cpu():
    global _cpu
    if _cpu is None:
        _cpu = CPUBackend()
    return _cpu


def cuda():
    """The CUDA backend; a clear error when there is no GPU (nor Numba's simulator)."""
    global _cuda
    if _cuda is None:
        from .cuda import require_cuda

        require_cuda("cuda")
        _cuda = CUDABackend()
    return _cuda


def get(device):
    """The backend of a device name: "cpu" or "cuda"."""
    return cpu() if device == "cpu" else cuda()


def backend_of(array):
    """The backend that owns `array`."""
    if isinstance(array, (np.ndarray, np.generic)):
        return _cpu or cpu()
    if is_device_array(array):
        return _cuda or cuda()
    raise TypeError(f"no backend for arrays of type {type(array).__name__}")


def move(array, target):
    """`array` copied to device `target` ("cpu" or "cuda"); itself when it is already there."""
    if device_of(array) == target:
        return array
    return cuda().xp.asarray(array) if target == "cuda" else array.get()


def host_empty(shape, dtype):
    """A new host array whose data starts on a 64-byte cache line (kernels/cpu/alignment.py), for the long-lived
    arrays the kernels stream through many times: the layers' parameters and Adam's moments. NumPy's heap blocks start
    16 to 48 bytes past a line, which splits an AVX-512 kernel's vector loads and stores in two."""
    return _aligned_empty(shape, dtype)


def host_zeros_like(array):
    """np.zeros_like(array), on a cache line (host_empty) for a host array; a device array's own otherwise."""
    if type(array) is not np.ndarray:
        return np.zeros_like(array)
    z = _aligned_empty(array.shape, array.dtype)
    z.fill(0)
    return z


def is_device_array(x):
    """True for a GPU array (a DeviceArray), without importing the CUDA code (only it makes them)."""
    return type(x).__name__ == "DeviceArray"


def device_of(array):
    """"cpu" or "cuda" for an array, without importing the CUDA backend."""
    return "cuda" if is_device_array(array) else "cpu"


__all__ = ["backend_of", "cpu", "CPUBackend", "cuda", "CUDABackend", "device_of", "get", "host_empty",
           "host_zeros_like", "is_device_array", "move"]
