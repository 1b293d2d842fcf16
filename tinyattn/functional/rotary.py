"""Rotary position embedding (RoPE, Su et al. 2021) as one Function.

Pairing convention: "half split" (GPT-NeoX / Hugging Face style). For a head of size d,
feature i is paired with feature i + d/2 and the pair is rotated by the angle p·θ_i at
position p, θ_i = base^(-2i/d), i = 0 .. d/2 - 1:
    y_i       = x_i cos(pθ_i) - x_{i+d/2} sin(pθ_i)
    y_{i+d/2} = x_i sin(pθ_i) + x_{i+d/2} cos(pθ_i)
i.e. y = x ∘ cos + rotate_half(x) ∘ sin with rotate_half(x) = (-x₂, x₁).
A rotation's transpose is the rotation by -pθ_i, so the backward is
    dx = dy ∘ cos - rotate_half(dy) ∘ sin    (cos, sin as in the forward)
"""
import numpy as np

from ..autograd import Function

__all__ = [
    "apply_rotary", "Rotary", "rotary_tables",
]


def _rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


class Rotary(Function):
    """y = x ∘ cos + rotate_half(x) ∘ sin along the last axis; positions along axis -2."""

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return x * cos + _rotate_half(x) * sin

    @staticmethod
    def backward(ctx, dy):
        cos, sin = ctx.saved
        return dy * cos - _rotate_half(dy) * sin, None, None

    @staticmethod
    def differentiable_backward(ctx, inputs, dy):
        """The same dx with recorded ops: rotate_half(dy) = dy @ R, R the constant signed permutation
        (R[j + d/2, j] = -1, R[j, j + d/2] = 1), so dx = dy ∘ cos - (dy @ R) ∘ sin, linear in dy."""
        from ..autograd.function import constant
        from ..backend import device_of, move
        from .linalg import matmul

        cos, sin = ctx.saved
        d = dy.shape[-1]
        half = d // 2
        r = np.zeros((d, d), dtype=dy._array.dtype)
        r[np.arange(half) + half, np.arange(half)] = -1
        r[np.arange(half), np.arange(half) + half] = 1
        rotated = matmul(dy, constant(dy, move(r, device_of(dy._array))))
        return dy * cos - rotated * sin, None, None


def rotary_tables(length, head_dim, base=10000.0, dtype=np.float32):
    """cos and sin tables, each (length, head_dim), with the angle of pair i repeated at i and i + d/2."""
    theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (d/2,)
    angles = np.arange(length, dtype=np.float64)[:, None] * theta[None, :]  # (length, d/2)
    angles = np.concatenate([angles, angles], axis=-1)  # (length, d)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def apply_rotary(x, cos, sin):
    return Rotary.apply(x, cos, sin)
