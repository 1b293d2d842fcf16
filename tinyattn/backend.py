"""Devices as objects: each backend exposes the same kernel names over its own arrays.

Ops in `tinyattn.functional` call `backend_of(array).<kernel>(...)` and never import a
device-specific module, so a second device only has to provide the same names.

The CPU backend uses numpy for elementwise work (`xp`) and the Numba kernels in
`tinyattn.kernels.cpu` for matmul, softmax and attention. Kernels want C-contiguous
arrays; the backend makes them so (a no-op when they already are).
"""
import numba
import numpy as np

# Below this many multiply-adds a kernel runs on one thread: waking the thread pool costs
# more than it saves, and a busy machine can stall a parallel region for a whole time slice.
SERIAL_WORK = 1 << 18


def _run(work, kernel, *args):
    """kernel(*args), on one thread when the work is small."""
    if work >= SERIAL_WORK:
        return kernel(*args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)


def _rows(x, dim):
    """View x as C-contiguous (rows, x.shape[dim]) with `dim` moved last; return it and an undo."""
    dim = dim % x.ndim
    moved = x if dim == x.ndim - 1 else np.moveaxis(x, dim, -1)
    moved = np.ascontiguousarray(moved)
    shape = moved.shape

    def undo(rows):
        out = rows.reshape(shape)
        return out if dim == x.ndim - 1 else np.moveaxis(out, -1, dim)

    return moved.reshape(int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]), undo


class CPUBackend:
    name = "cpu"
    xp = np

    def __init__(self):
        from tinyattn.kernels.cpu import activations, attention, embedding, layer_norm, matmul, softmax  # compiled on first call

        self._mm = matmul
        self._sm = softmax
        self._attn = attention
        self._act = activations
        self._ln = layer_norm
        self._emb = embedding

    # ---- matmul on (batch, rows, cols) arrays; batch is 1 or the full batch ----------
    def matmul(self, a, b):
        """(Ba, M, K) @ (Bb, K, N) -> (B, M, N)."""
        work = max(a.shape[0], b.shape[0]) * a.shape[1] * a.shape[2] * b.shape[2]
        return _run(work, self._mm.matmul_nn, np.ascontiguousarray(a), np.ascontiguousarray(b))

    def matmul_nt(self, a, b):
        """(Ba, M, K) @ (Bb, N, K)ᵀ -> (B, M, N), without materialising the transpose."""
        work = max(a.shape[0], b.shape[0]) * a.shape[1] * a.shape[2] * b.shape[1]
        return _run(work, self._mm.matmul_nt, np.ascontiguousarray(a), np.ascontiguousarray(b))

    def matmul_tn(self, a, b):
        """(Ba, K, M)ᵀ @ (Bb, K, N) -> (B, M, N), without materialising the transpose."""
        work = max(a.shape[0], b.shape[0]) * a.shape[1] * a.shape[2] * b.shape[2]
        return _run(work, self._mm.matmul_tn, np.ascontiguousarray(a), np.ascontiguousarray(b))

    # ---- softmax family along any dim ---------------------------------------------
    def softmax(self, x, dim):
        rows, undo = _rows(x, dim)
        return undo(_run(rows.size, self._sm.softmax_forward, rows))

    def softmax_backward(self, y, dy, dim):
        y_rows, undo = _rows(y, dim)
        dy_rows, _ = _rows(dy, dim)
        return undo(_run(y_rows.size, self._sm.softmax_backward, y_rows, dy_rows))

    def log_softmax(self, x, dim):
        rows, undo = _rows(x, dim)
        return undo(_run(rows.size, self._sm.log_softmax_forward, rows))

    def log_softmax_backward(self, y, dy, dim):
        y_rows, undo = _rows(y, dim)
        dy_rows, _ = _rows(dy, dim)
        return undo(_run(y_rows.size, self._sm.log_softmax_backward, y_rows, dy_rows))


    # ---- elementwise activations -------------------------------------------------
    def gelu(self, x):
        flat = np.ascontiguousarray(x).reshape(-1)
        return _run(flat.size, self._act.gelu_forward, flat).reshape(x.shape)

    def gelu_backward(self, x, dy):
        flat = np.ascontiguousarray(x).reshape(-1)
        return _run(flat.size, self._act.gelu_backward, flat, np.ascontiguousarray(dy).reshape(-1)).reshape(x.shape)

    # ---- layer norm over rows ---------------------------------------------------
    def layer_norm(self, x, w, b, eps):
        """x (R, N) -> (y, x̂, rstd)."""
        x = np.ascontiguousarray(x)
        return _run(x.size, self._ln.layer_norm_forward, x, np.ascontiguousarray(w), np.ascontiguousarray(b), eps)

    def layer_norm_backward(self, dy, xhat, rstd, w):
        """-> (dx, dw, db)."""
        return _run(dy.size, self._ln.layer_norm_backward, np.ascontiguousarray(dy), xhat, rstd, w)

    # ---- embedding ------------------------------------------------------------------
    def embedding_backward(self, index, dy, num_embeddings):
        """dW (num_embeddings, D) with every row of dy (..., D) added at its index."""
        return self._emb.embedding_backward(
            np.ascontiguousarray(index).reshape(-1), np.ascontiguousarray(dy).reshape(-1, dy.shape[-1]), num_embeddings
        )

    # ---- fused attention on (batch·heads, length, dim) arrays ------------------------
    def attention_forward(self, q, k, v, bias, causal, window, scale):
        """O = softmax(scale·QKᵀ + bias, masked) V, tiled; returns O and the row logsumexp.

        bias is None or a (BH, L, S) view (it may have zero strides); window < 0 means none.
        The kernel module makes its inputs contiguous itself.
        """
        work = q.shape[0] * q.shape[1] * k.shape[1] * (q.shape[2] + v.shape[2])
        return _run(work, self._attn.attention_forward, q, k, v, bias, bias is not None, causal, window, scale)

    def attention_backward(self, q, k, v, bias, causal, window, scale, out, lse, dout):
        work = 2 * q.shape[0] * q.shape[1] * k.shape[1] * (q.shape[2] + v.shape[2])
        return _run(work, self._attn.attention_backward,
                    q, k, v, bias, bias is not None, causal, window, scale, out, lse, dout)


_cpu = None


def cpu():
    global _cpu
    if _cpu is None:
        _cpu = CPUBackend()
    return _cpu


def backend_of(array):
    """The backend that owns `array`."""
    if isinstance(array, np.ndarray):
        return _cpu or cpu()
    raise TypeError(f"no backend for arrays of type {type(array).__name__}")
