"""Embedding backward: scatter-add rows of the output gradient into the weight gradient.

    dW[index[n], :] += dy[n, :]   for n = 0 .. N-1

Several n may share an index, so the loop over n is a reduction into shared rows: it runs
on one thread (parallel over n would race), and the inner loop over the row is contiguous.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def embedding_backward(index, dy, num_embeddings):
    """index (N,) int, dy (N, D) C-contiguous -> dW (num_embeddings, D) in dy's dtype."""
    N, D = dy.shape
    dw = np.zeros((num_embeddings, D), dtype=dy.dtype)
    for n in range(N):
        row = dw[index[n]]
        g = dy[n]
        for d in range(D):
            row[d] += g[d]
    return dw
