"""Backpropagation through one self-attention head, by hand, checked by autograd and by the fused kernel.

    python examples/backprop_by_hand.py

The lecture's single head (Hung-Yi Lee, ML 2021) on 4 input vectors a_i of length n_a = 3, with
queries and keys of length n_α = 2 and values of length n_b = 2:

    q_i = W^q a_i,  k_i = W^k a_i,  v_i = W^v a_i
    α_ij  = q_i · k_j / √n_α          (the lecture's dot-product relevance, scaled as in a Transformer)
    α'_ij = exp(α_ij) / Σ_m exp(α_im)  (softmax over j)
    b_i   = Σ_j α'_ij v_j
    L     = ½ Σ_i ‖b_i − b̂_i‖²        (a squared error against fixed targets b̂_i)

1. the forward pass in plain NumPy, every symbol printed;
2. every gradient derived by hand, each printed beside its formula, from dL/db_i back to dL/dW^q;
3. each one checked against tinyattn's autograd (retain_grad and hooks on the intermediates),
   and against the fused attention kernel (scaled_dot_product_attention inside nn.SelfAttention,
   whose gradients come from autograd.grad);
4. the graph that autograd walked, drawn to a PNG.
It exits with status 1 if any check fails.
"""
import argparse
import math
import os
import sys

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn import viz

N, N_A, N_ALPHA, N_B = 4, 3, 2, 2  # vectors, and the lecture's n_a, n_α (d_qk), n_b (d_v)
np.set_printoptions(precision=4, suppress=True, floatmode="fixed")


def setup(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=(N, N_A)),  # the rows are a_1 .. a_4
        "W^q": rng.normal(size=(N_ALPHA, N_A)),
        "W^k": rng.normal(size=(N_ALPHA, N_A)),
        "W^v": rng.normal(size=(N_B, N_A)),
        "b̂": rng.normal(size=(N, N_B)),  # targets
    }


def forward(p):
    """The forward pass, one formula per line, in plain NumPy (row i of an array is the vector with index i)."""
    a, wq, wk, wv = p["a"], p["W^q"], p["W^k"], p["W^v"]
    q = np.stack([wq @ a[i] for i in range(N)])  # q_i = W^q a_i
    k = np.stack([wk @ a[i] for i in range(N)])  # k_i = W^k a_i
    v = np.stack([wv @ a[i] for i in range(N)])  # v_i = W^v a_i
    alpha = np.array([[q[i] @ k[j] / math.sqrt(N_ALPHA) for j in range(N)] for i in range(N)])
    e = np.exp(alpha - alpha.max(axis=1, keepdims=True))  # shifting a row changes no softmax
    alpha_p = e / e.sum(axis=1, keepdims=True)
    b = np.stack([sum(alpha_p[i, j] * v[j] for j in range(N)) for i in range(N)])
    loss = 0.5 * sum(np.sum((b[i] - p["b̂"][i]) ** 2) for i in range(N))
    return {"q": q, "k": k, "v": v, "α": alpha, "α'": alpha_p, "b": b, "L": loss}


def hand_gradients(p, f):
    """Every dL/d(symbol), from the output back to the weights, with the chain rule written out."""
    a, wq, wk, wv = p["a"], p["W^q"], p["W^k"], p["W^v"]
    q, k, v, alpha_p, b = f["q"], f["k"], f["v"], f["α'"], f["b"]
    g = {}
    g["b"] = b - p["b̂"]  # dL/db_i = b_i − b̂_i
    g["α'"] = np.array([[g["b"][i] @ v[j] for j in range(N)] for i in range(N)])  # dL/dα'_ij = dL/db_i · v_j
    g["v"] = np.stack([sum(alpha_p[i, j] * g["b"][i] for i in range(N)) for j in range(N)])
    # softmax Jacobian, row by row: ∂α'_im/∂α_ij = α'_im (δ_mj − α'_ij)
    g["α"] = np.zeros((N, N))
    for i in range(N):
        jacobian = np.array([[alpha_p[i, m] * ((m == j) - alpha_p[i, j]) for j in range(N)] for m in range(N)])
        g["α"][i] = jacobian.T @ g["α'"][i]  # dL/dα_ij = Σ_m ∂α'_im/∂α_ij · dL/dα'_im
    g["q"] = np.stack([sum(g["α"][i, j] * k[j] for j in range(N)) / math.sqrt(N_ALPHA) for i in range(N)])
    g["k"] = np.stack([sum(g["α"][i, j] * q[i] for i in range(N)) / math.sqrt(N_ALPHA) for j in range(N)])
    g["W^q"] = sum(np.outer(g["q"][i], a[i]) for i in range(N))  # q_i = W^q a_i  ⇒  dW^q = Σ_i dq_i a_iᵀ
    g["W^k"] = sum(np.outer(g["k"][i], a[i]) for i in range(N))
    g["W^v"] = sum(np.outer(g["v"][i], a[i]) for i in range(N))
    g["a"] = np.stack([wq.T @ g["q"][i] + wk.T @ g["k"][i] + wv.T @ g["v"][i] for i in range(N)])
    return g


FORWARD_TEXT = [
    ("q", "q_i = W^q a_i"),
    ("k", "k_i = W^k a_i"),
    ("v", "v_i = W^v a_i"),
    ("α", "α_ij = q_i · k_j / √n_α"),
    ("α'", "α'_ij = exp(α_ij) / Σ_m exp(α_im)"),
    ("b", "b_i = Σ_j α'_ij v_j"),
]
GRADIENT_TEXT = [
    ("b", "dL/db_i = b_i − b̂_i"),
    ("α'", "dL/dα'_ij = dL/db_i · v_j"),
    ("v", "dL/dv_j = Σ_i α'_ij dL/db_i"),
    ("α", "dL/dα_ij = Σ_m α'_im (δ_mj − α'_ij) dL/dα'_im = α'_ij (dL/dα'_ij − Σ_m α'_im dL/dα'_im)"),
    ("q", "dL/dq_i = Σ_j dL/dα_ij k_j / √n_α"),
    ("k", "dL/dk_j = Σ_i dL/dα_ij q_i / √n_α"),
    ("W^q", "dL/dW^q = Σ_i dL/dq_i a_iᵀ"),
    ("W^k", "dL/dW^k = Σ_j dL/dk_j a_jᵀ"),
    ("W^v", "dL/dW^v = Σ_j dL/dv_j a_jᵀ"),
    ("a", "dL/da_i = W^qᵀ dL/dq_i + W^kᵀ dL/dk_i + W^vᵀ dL/dv_i  (a_i feeds three paths: they add)"),
]


def show(symbol, formula, array):
    body = np.array2string(np.asarray(array), prefix="    ")
    print(f"  {formula}\n    {body}" if np.ndim(array) else f"  {formula} = {float(array):.6f}")


def autograd_gradients(p):
    """The same head with tinyattn ops; every intermediate keeps its gradient (retain_grad), and a
    hook on each one records the order in which the backward pass reaches it."""
    t = {name: ta.tensor(p[name], requires_grad=name != "b̂") for name in ("a", "W^q", "W^k", "W^v", "b̂")}
    with viz.record():  # notes the target b̂ (no grad) for the picture
        q = t["a"] @ t["W^q"].T
        k = t["a"] @ t["W^k"].T
        v = t["a"] @ t["W^v"].T
        alpha = (q @ k.T) * (1 / math.sqrt(N_ALPHA))
        alpha_p = alpha.softmax(dim=-1)
        b = alpha_p @ v
        loss = 0.5 * ((b - t["b̂"]) ** 2).sum()
    inter = {"q": q, "k": k, "v": v, "α": alpha, "α'": alpha_p, "b": b}
    order = []
    for name, tensor in inter.items():
        tensor.retain_grad()
        tensor.register_hook(lambda grad, name=name: order.append(name))
    loss.backward(retain_graph=True)
    grads = {name: tensor.grad.numpy() for name, tensor in inter.items()}
    grads.update({name: t[name].grad.numpy() for name in ("a", "W^q", "W^k", "W^v")})
    return grads, loss, {**t, **inter, "L": loss}, order


def fused_gradients(p):
    """nn.SelfAttention with the same weights: its forward runs the fused attention kernel
    (scaled_dot_product_attention); forward hooks catch q, k, v, and autograd.grad returns the
    gradients without touching any .grad."""
    head = nn.SelfAttention(N_A, N_ALPHA, N_B, dtype=ta.float64)
    with ta.no_grad():
        for name, linear in (("W^q", head.w_q), ("W^k", head.w_k), ("W^v", head.w_v)):
            linear.weight.copy_(ta.tensor(p[name]))
    caught = {}
    handles = [m.register_forward_hook(lambda module, args, out, name=name: caught.__setitem__(name, out))
               for name, m in (("q", head.w_q), ("k", head.w_k), ("v", head.w_v))]
    a = ta.tensor(p["a"], requires_grad=True)
    b = head(a)  # (4, 2): the fused kernel, since no weights are asked for
    for h in handles:
        h.remove()
    loss = 0.5 * ((b - ta.tensor(p["b̂"])) ** 2).sum()
    inputs = [caught["q"], caught["k"], caught["v"], head.w_q.weight, head.w_k.weight, head.w_v.weight, a]
    grads = ta.autograd.grad(loss, inputs)
    names = ["q", "k", "v", "W^q", "W^k", "W^v", "a"]
    assert head.w_q.weight.grad is None  # autograd.grad leaves .grad alone
    return {"b (forward)": b.numpy(), **{n: g.numpy() for n, g in zip(names, grads)}}, b.grad_fn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="runs/backprop_by_hand")
    args = parser.parse_args(argv)
    p = setup(args.seed)

    print(f"One self-attention head: {N} vectors a_i of n_a = {N_A}, n_α = {N_ALPHA}, n_b = {N_B}\n")
    print("1. Forward, in plain NumPy (row i is the vector with index i)")
    show("a", "a_i", p["a"])
    for name in ("W^q", "W^k", "W^v"):
        show(name, name, p[name])
    f = forward(p)
    for symbol, text in FORWARD_TEXT:
        show(symbol, text, f[symbol])
    show("b̂", "b̂_i (targets)", p["b̂"])
    show("L", "L = ½ Σ_i ‖b_i − b̂_i‖²", f["L"])

    print("\n2. Backward, by hand: each gradient from the ones after it")
    g = hand_gradients(p, f)
    for symbol, text in GRADIENT_TEXT:
        show(symbol, text, g[symbol])
    i = 0
    jac = np.array([[f["α'"][i, m] * ((m == j) - f["α'"][i, j]) for j in range(N)] for m in range(N)])
    print(f"\n  the softmax Jacobian of row i = 1, ∂α'_1m/∂α_1j = α'_1m (δ_mj − α'_1j): each row sums to 0,\n"
          f"  since the α'_1m always sum to 1\n    {np.array2string(jac, prefix='    ')}")

    print("\n3. Checks")
    failures = []

    def check(what, ours, reference, tol):
        diff = float(np.max(np.abs(np.asarray(ours) - np.asarray(reference))))
        ok = diff <= tol
        print(f"  [{'ok' if ok else 'FAIL'}] {what:<56} max |difference| {diff:.1e}")
        if not ok:
            failures.append(what)

    grads, loss, tensors, order = autograd_gradients(p)
    check("L: NumPy forward vs tinyattn forward", f["L"], loss.item(), 1e-12)
    for symbol, text in GRADIENT_TEXT:
        check(f"{text.split(' =')[0]} by hand vs autograd", g[symbol], grads[symbol], 1e-10)
    print(f"  the backward pass reached the intermediates in this order: {', '.join(order)}")
    if order[:2] != ["b", "α'"] or order.index("α") > min(order.index("q"), order.index("k")):
        failures.append("backward order")
        print("  [FAIL] the backward order does not follow the chain b → α' → α → q, k")
    fused, fused_fn = fused_gradients(p)
    check(f"b_i: NumPy vs the fused kernel ({fused_fn.name})", f["b"], fused["b (forward)"], 1e-12)
    for symbol in ("q", "k", "v", "W^q", "W^k", "W^v", "a"):
        check(f"dL/d{symbol} by hand vs fused kernel + autograd.grad", g[symbol], fused[symbol], 1e-10)

    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.join(args.out_dir, "graph.png")
    names = {"L": tensors["L"], "a": tensors["a"], "W^q": tensors["W^q"], "W^k": tensors["W^k"],
             "W^v": tensors["W^v"], "target": tensors["b̂"], "q": tensors["q"], "k": tensors["k"], "v": tensors["v"],
             "α": tensors["α"], "α'": tensors["α'"], "b": tensors["b"]}
    viz.draw_graph(tensors["L"], png, names=names, title="One self-attention head: the graph that backward walks")
    print(f"\n4. The graph autograd walked: {png}")
    if failures:
        print(f"\n{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("\nEvery gradient derived by hand matches autograd and the fused kernel.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
