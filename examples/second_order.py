"""Backprop through backprop: second derivatives of an attention model, checked, and a Newton step.

    python examples/second_order.py

1. A Hessian-vector product of a small self-attention model's loss. With create_graph=True the backward
   pass is itself recorded (every op's differentiable_backward), so the gradient g(θ) = ∇L(θ) has a graph,
   and one more backward of g·v gives
        H v = ∇(g(θ) · v)                       (Pearlmutter's trick: no Hessian is ever formed)
   It is checked against central differences of gradients, which need only first derivatives:
        H v ≈ (g(θ + εv) - g(θ - εv)) / (2ε)     (error O(ε²) plus rounding O(u/ε))
2. A classic use: Newton's method on logistic regression, θ ← θ - H⁻¹ g, with H from
   tinyattn.autograd.functional.hessian, beside gradient descent on the same loss. Newton's steps take
   the curvature into account: near the optimum the gradient's norm roughly squares at each step.
Runs in a few seconds in float64. Exits with status 1 if the Hessian-vector product check fails.
"""
import argparse
import sys

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn import autograd
from tinyattn.autograd.functional import hessian


class TinyAttentionModel(nn.Module):
    """Tokens -> embedding + sinusoidal positions -> one self-attention head -> a linear read-out per position."""

    def __init__(self, vocab, d, seq_len):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, dtype=ta.float64)
        self.pos = nn.SinusoidalPositionalEncoding(d, max_len=seq_len, dtype=ta.float64)
        self.attn = nn.SelfAttention(d, d, d, dtype=ta.float64)
        self.out = nn.Linear(d, vocab, dtype=ta.float64)

    def forward(self, tokens):
        a = self.pos(self.embed(tokens))
        return self.out(F.gelu(self.attn(a)) + a)


def hessian_vector_product_check(seed=0, eps=1e-5):
    """H v by double backward against central differences of gradients; returns the relative error."""
    rng = np.random.default_rng(seed)
    ta.manual_seed(seed)
    vocab, d, seq_len, batch = 5, 8, 6, 4
    model = TinyAttentionModel(vocab, d, seq_len)
    tokens = ta.tensor(rng.integers(0, vocab, (batch, seq_len)))
    targets = ta.tensor(rng.integers(0, vocab, (batch, seq_len)))
    params = list(model.parameters())

    def loss_fn():
        return F.cross_entropy(model(tokens).reshape(-1, vocab), targets.reshape(-1))

    v = [ta.tensor(rng.standard_normal(p.shape)) for p in params]
    grads = autograd.grad(loss_fn(), params, create_graph=True)
    g_dot_v = sum((g * vi).sum() for g, vi in zip(grads, v))
    hv = autograd.grad(g_dot_v, params)

    def gradient_at(step):
        with ta.no_grad():
            for p, vi in zip(params, v):
                p.add_(vi, alpha=step)
        g = autograd.grad(loss_fn(), params)
        with ta.no_grad():
            for p, vi in zip(params, v):
                p.sub_(vi, alpha=step)
        return g

    plus, minus = gradient_at(eps), gradient_at(-eps)
    fd = [(a.numpy() - b.numpy()) / (2 * eps) for a, b in zip(plus, minus)]
    exact = np.concatenate([h.numpy().ravel() for h in hv])
    approx = np.concatenate([f.ravel() for f in fd])
    error = np.linalg.norm(exact - approx) / np.linalg.norm(exact)
    n = sum(p.numel() for p in params)
    print(f"1. Hessian-vector product of a self-attention model's loss ({n} parameters)")
    print(f"   |Hv| = {np.linalg.norm(exact):.6g}; finite differences of gradients (eps={eps:g}) agree to a "
          f"relative {error:.2e}")
    return error


def logistic_data(seed=1, n=200):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    logits = 1.5 * x[:, 0] - 2.0 * x[:, 1] + 0.5 + rng.standard_normal(n)  # noisy labels: a finite optimum
    features = np.concatenate([x, np.ones((n, 1))], axis=1)  # a bias column
    return ta.tensor(features), ta.tensor((logits > 0).astype(np.float64))


def newton_versus_gradient_descent(steps=8, lr=1.0):
    """Logistic regression by Newton's method and by gradient descent; returns both gradient-norm histories."""
    x, y = logistic_data()

    def loss(w):
        return F.binary_cross_entropy_with_logits(x @ w, y)

    print("\n2. Newton's method against gradient descent (logistic regression, 3 parameters)")
    print("   step   Newton: loss        |grad|     gradient descent: loss   |grad|")
    histories = {"newton": [], "gd": []}
    w_newton = ta.zeros(3, dtype=ta.float64)
    w_gd = ta.zeros(3, dtype=ta.float64)
    for step in range(steps + 1):
        row = []
        for name in ("newton", "gd"):
            w = (w_newton if name == "newton" else w_gd).detach().requires_grad_(True)
            value = loss(w)
            (g,) = autograd.grad(value, w)
            histories[name].append(float(g.norm()))
            row.append((float(value), float(g.norm())))
            with ta.no_grad():
                if name == "newton":
                    h = hessian(loss, w)  # (3, 3), by differentiating the gradient
                    w_newton = w - ta.linalg.solve(h, g)
                else:
                    w_gd = w - lr * g
        print(f"   {step:4d}   {row[0][0]:.12f}  {row[0][1]:9.2e}     {row[1][0]:.12f}        {row[1][1]:9.2e}")
    return histories


def main(argv=None):
    """Runs both parts; returns {"hvp_error": relative error, "newton": [|grad|...], "gd": [|grad|...]}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="Newton / gradient-descent steps")
    args = parser.parse_args(argv)
    results = {"hvp_error": hessian_vector_product_check()}
    results.update(newton_versus_gradient_descent(args.steps))
    return results


if __name__ == "__main__":
    error = main()["hvp_error"]
    if error > 1e-6:
        print(f"FAILED: the Hessian-vector product disagrees with finite differences ({error:.2e})")
    sys.exit(0 if error <= 1e-6 else 1)
