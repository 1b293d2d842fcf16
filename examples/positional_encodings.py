"""The lecture's open question: which positional encoding is better?

    python examples/positional_encodings.py

Trains the same small Transformer encoder with no positional encoding, sinusoidal,
learned and rotary (RoPE), with the same budget of steps, on two tasks that need
positions:
  shift    output token i-3 at position i (needs only relative positions)
  reverse  output token T-1-i at position i (needs absolute positions)
It prints a table of final held-out accuracies and plots the accuracy curves to a PNG, and draws
the encodings themselves as the lecture shows them (position x dimension): the sinusoidal table
beside the learned one after training on *reverse*, each with the similarity of every pair of
positions under it.
"""
import argparse
import os
import time

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F

ENCODINGS = ("none", "sinusoidal", "learned", "rotary")
TASKS = ("shift", "reverse")


def make_task(task, x):
    if task == "reverse":
        return x[:, ::-1].copy()
    y = np.zeros_like(x)  # shift by 3; the first 3 positions predict token 0
    y[:, 3:] = x[:, :-3]
    return y


class Block(nn.Module):
    """A pre-norm encoder block whose attention can rotate q and k (RoPE) before SDPA."""

    def __init__(self, d_model, nhead, rope=None):
        super().__init__()
        self.nhead, self.rope = nhead, rope
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(approximate="tanh"),
                                nn.Linear(4 * d_model, d_model))

    def forward(self, x):  # (B, T, C)
        b, t, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.nhead, c // self.nhead).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, T, D) each
        if self.rope is not None:
            q, k = self.rope(q, k)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, D)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, c))
        return x + self.ff(self.norm2(x))


class Model(nn.Module):
    def __init__(self, encoding, vocab, seq_len, d_model=32, nhead=2, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = {
            "none": None,
            "sinusoidal": nn.SinusoidalPositionalEncoding(d_model, seq_len),
            "learned": nn.LearnedPositionalEncoding(d_model=d_model, max_len=seq_len),
            "rotary": None,
        }[encoding]
        rope = nn.RotaryEmbedding(d_model // nhead, max_len=seq_len) if encoding == "rotary" else None
        self.blocks = nn.ModuleList(Block(d_model, nhead, rope) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        if self.pos is not None:
            x = self.pos(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


@ta.no_grad()
def accuracy(model, x, y):
    model.eval()
    acc = float((model(ta.tensor(x)).numpy().argmax(-1) == y).mean())
    model.train()
    return acc


def run(task, encoding, args):
    ta.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Model(encoding, args.vocab, args.seq_len)
    opt = ta.optim.Adam(model.parameters(), lr=args.lr)
    test_x = np.random.default_rng(args.seed + 1).integers(0, args.vocab, (500, args.seq_len))
    test_y = make_task(task, test_x)
    curve = []
    start = time.perf_counter()
    from tqdm import tqdm

    for step in tqdm(range(1, args.steps + 1), desc=f"{task}/{encoding}", leave=False, disable=args.no_progress):
        x = rng.integers(0, args.vocab, (args.batch_size, args.seq_len))
        logits = model(ta.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), ta.tensor(make_task(task, x).reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            curve.append((step, accuracy(model, test_x, test_y)))
    return curve, time.perf_counter() - start, model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--vocab", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/positional_encodings")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    results, models = {}, {}
    for task in TASKS:
        for enc in ENCODINGS:
            curve, seconds, model = run(task, enc, args)
            results[task, enc], models[task, enc] = curve, model
            print(f"{task:8s} {enc:11s} held-out accuracy {curve[-1][1]:.3f}  ({seconds:.1f} s)", flush=True)

    print(f"\nFinal held-out token accuracy after {args.steps} steps (chance = {1 / args.vocab:.3f}):\n")
    print("| encoding | " + " | ".join(TASKS) + " |")
    print("|---|" + "---|" * len(TASKS))
    for enc in ENCODINGS:
        print(f"| {enc} | " + " | ".join(f"{results[t, enc][-1][1]:.3f}" for t in TASKS) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 4), sharey=True)
    for ax, task in zip(axes, TASKS):
        for enc in ENCODINGS:
            steps, accs = zip(*results[task, enc])
            ax.plot(steps, accs, label=enc)
        ax.set_title(f"task: {task}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out token accuracy")
    axes[0].legend()
    fig.tight_layout()
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "positional_encodings.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    tables = encoding_tables(models["reverse", "sinusoidal"], models["reverse", "learned"])
    table_path = os.path.join(args.out_dir, "positional_tables.png")
    plot_tables(tables, table_path, args.steps)
    print(f"\nplots: {path}, {table_path}")
    return results


def encoding_tables(sinusoidal_model, learned_model):
    """The e_i of both models as (positions, d_model) arrays: the fixed sinusoidal buffer, and the
    learned table as training left it."""
    return {"sinusoidal": sinusoidal_model.pos.pe.numpy()[: learned_model.pos.weight.shape[0]].copy(),
            "learned": learned_model.pos.weight.numpy().copy()}


def cosine_similarity(table):
    unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def plot_tables(tables, path, steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), gridspec_kw={"height_ratios": [1, 1]})
    titles = {"sinusoidal": "sinusoidal e_i (fixed)", "learned": f"learned e_i after {steps} steps on reverse"}
    for col, name in enumerate(("sinusoidal", "learned")):
        table = tables[name]
        limit = float(np.abs(table).max())
        im = axes[0][col].imshow(table, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
        axes[0][col].set_title(titles[name])
        axes[0][col].set_xlabel("dimension of e_i")
        axes[0][col].set_ylabel("position i")
        fig.colorbar(im, ax=axes[0][col], fraction=0.046, pad=0.04)
        im = axes[1][col].imshow(cosine_similarity(table), cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
        axes[1][col].set_title("cosine similarity of e_i and e_j")
        axes[1][col].set_xlabel("position j")
        axes[1][col].set_ylabel("position i")
        fig.colorbar(im, ax=axes[1][col], fraction=0.046, pad=0.04)
    fig.suptitle("Positional encodings, position × dimension, as in the lecture")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
