"""Train a small Transformer encoder to reverse sequences, then show its attention maps.

    python examples/reverse.py
    python examples/reverse.py --device cuda      # on an NVIDIA GPU

Token embedding + learned positional encoding -> 2 pre-norm encoder layers (d_model 64,
4 heads, feed-forward 256, GELU) -> LayerNorm -> Linear over the 16 symbols. Output position
i must predict input token T-1-i, so the attention maps should show the anti-diagonal.
Training stops once the held-out token accuracy reaches --target (or at --max-seconds);
it then reports the final held-out accuracy on fresh sequences, saves a checkpoint and
writes a PNG of every head's attention map.
"""
import argparse
import os
import time

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F


class ReverseTransformer(nn.Module):
    def __init__(self, vocab=16, seq_len=32, d_model=64, nhead=4, num_layers=2, dim_feedforward=256, dropout=0.0,
                 pos="sinusoidal"):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        if pos == "sinusoidal":
            self.pos = nn.SinusoidalPositionalEncoding(d_model, seq_len)
        else:
            self.pos = nn.LearnedPositionalEncoding(d_model=d_model, max_len=seq_len)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True,
                                       activation=nn.GELU(approximate="tanh"), norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):  # (B, T) int -> (B, T, vocab) logits
        x = self.pos(self.embed(tokens))
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))

    @ta.no_grad()
    def attention_maps(self, tokens):
        """Every layer's per-head attention weights for `tokens`: a list of (B, H, T, T) arrays."""
        maps = []
        x = self.pos(self.embed(tokens))
        for layer in self.layers:
            _, w = layer.self_attn(*(layer.norm1(x),) * 3, average_attn_weights=False)
            maps.append(w.numpy())
            x = layer(x)
        return maps


def batches(rng, batch_size, seq_len, vocab):
    while True:
        x = rng.integers(0, vocab, size=(batch_size, seq_len))
        yield x, x[:, ::-1].copy()


@ta.no_grad()
def accuracy(model, x, y, chunk=256, device="cpu"):
    model.eval()
    correct = 0
    for i in range(0, len(x), chunk):
        logits = model(ta.tensor(x[i : i + chunk], device=device)).numpy()
        correct += int((logits.argmax(-1) == y[i : i + chunk]).sum())
    model.train()
    return correct / y.size


def plot_attention(maps, tokens, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, heads = len(maps), maps[0].shape[1]
    fig, axes = plt.subplots(layers, heads, figsize=(2.6 * heads, 2.6 * layers), squeeze=False)
    for l in range(layers):
        for h in range(heads):
            ax = axes[l][h]
            ax.imshow(maps[l][0, h], cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {l + 1}, head {h + 1}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
            if h == 0:
                ax.set_ylabel("query position")
            if l == layers - 1:
                ax.set_xlabel("key position")
    fig.suptitle("Attention maps on a held-out sequence (reversal: look for the anti-diagonal)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--vocab", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ff", type=int, default=256)
    p.add_argument("--pos", choices=["sinusoidal", "learned"], default="sinusoidal")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--max-seconds", type=float, default=55.0, help="wall-clock budget, compilation included")
    p.add_argument("--target", type=float, default=0.995, help="stop once held-out accuracy reaches this")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/reverse")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda (a training step then stays on the GPU)")
    args = p.parse_args(argv)
    start = time.perf_counter()

    ta.manual_seed(args.seed)
    model = ReverseTransformer(args.vocab, args.seq_len, args.d_model, args.heads, args.layers, args.ff, pos=args.pos)
    model.to(args.device)
    opt = ta.optim.Adam(model.parameters(), lr=args.lr)
    sched = ta.optim.WarmupCosine(opt, warmup_steps=min(100, args.max_steps // 2), total_steps=args.max_steps,
                                  min_lr=args.lr / 20)
    train = batches(np.random.default_rng(args.seed), args.batch_size, args.seq_len, args.vocab)
    held = np.random.default_rng(args.seed + 1).integers(0, args.vocab, size=(512, args.seq_len))

    from tqdm import tqdm

    bar = tqdm(total=args.max_steps, disable=args.no_progress, desc="reverse", unit="step")
    step, acc, first_step_s = 0, 0.0, None
    while step < args.max_steps and time.perf_counter() - start < args.max_seconds:
        x, y = next(train)
        logits = model(ta.tensor(x, device=args.device))
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), ta.tensor(y.reshape(-1), device=args.device))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        if first_step_s is None:
            first_step_s = time.perf_counter() - start
        if step % args.eval_every == 0:
            acc = accuracy(model, held, held[:, ::-1], device=args.device)
            bar.set_postfix(loss=f"{loss.item():.3f}", held_out_acc=f"{acc:.4f}")
            if acc >= args.target:
                bar.update(step - bar.n)
                break
        bar.update(1)
    bar.close()
    train_s = time.perf_counter() - start

    test = np.random.default_rng(args.seed + 2).integers(0, args.vocab, size=(2000, args.seq_len))
    final = accuracy(model, test, test[:, ::-1], device=args.device)
    print(f"steps {step}, first step done at {first_step_s:.1f} s, training {train_s:.1f} s "
          f"({step / max(train_s - first_step_s, 1e-9):.1f} steps/s after the first)")
    print(f"held-out token accuracy on 2000 fresh sequences: {final:.4f}")

    os.makedirs(args.out_dir, exist_ok=True)
    ckpt = os.path.join(args.out_dir, "reverse.npz")
    ta.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": step, "args": str(vars(args))}, ckpt)
    png = os.path.join(args.out_dir, "attention.png")
    model.eval()
    plot_attention(model.attention_maps(ta.tensor(test[:1], device=args.device)), test[0], png)
    print(f"checkpoint: {ckpt}\nattention maps: {png}")
    return final


if __name__ == "__main__":
    main()
