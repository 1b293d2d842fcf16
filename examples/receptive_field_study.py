"""The lecture's claim, both halves: a CNN vs self-attention as the training set grows.

    python examples/receptive_field_study.py            # full sweep (about 10 minutes on one core)
    python examples/receptive_field_study.py --quick    # fewer sizes, seeds and steps (one to two minutes)

The lecture says self-attention is a CNN whose receptive field is learned: a larger set of
functions. With little data the CNN's restriction (look only at your neighbours) is a help,
with more data self-attention's reach should win. The task is built so that both can show:

Tokens x_0..x_(T-1) over the symbols 0..V-1 plus one extra symbol R ("recall", = V), which appears
at each position but the first with probability --p-recall. Every position is labelled:

    y_i = (x_i + x_(i-1)) mod V      local: the token and its left neighbour (R counts as 0,
                                     x_(-1) = 0): most labels
    y_i = x_0                        where x_i = R: the sequence's first token, however far away

The CNN (three Conv1d, kernel 3: it sees x_(i-3)..x_(i+3)) has the local rule's shape built in,
but it cannot see x_0 from a recall token past position 3: there its best guess is right 1 time
in V. That gives it a ceiling below 1, computed exactly on the test set and drawn on the plot.
Self-attention (one encoder layer, sinusoidal positions) must first learn where to look (the left
neighbour; the first token for R), which costs data, but nothing stops it from reaching 1.
A third model, local-attention, is the same self-attention masked to the CNN's window (each
position may attend to x_(i-3)..x_(i+3) only): the lecture's "a CNN is self-attention with a
restricted receptive field", to see how much of the CNN's small-data lead the window alone explains.

Each model trains for the same number of Adam steps on training sets from --sizes sequences,
with --seeds seeds per size (each seed draws its own training set and initialisation seed, shared
by all models); held-out token accuracy is measured on one fixed test set. It writes a plot of the
mean with the min-max band and a JSON table of every run.
"""
import argparse
import json
import os
import time

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F

MODELS = ("cnn", "local-attention", "self-attention")
MODES = {  # sizes, seeds, steps, test sequences
    "full": dict(sizes=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096], seeds=5, steps=1000, test_size=2000),
    "quick": dict(sizes=[32, 128, 512, 2048], seeds=2, steps=500, test_size=1000),
    "smoke": dict(sizes=[16, 256], seeds=1, steps=40, test_size=200),
}


def labels(x, vocab):
    """Local rule (x_i + x_(i-1)) mod vocab, R (= vocab) counting as 0; where x_i = R, the label is x_0."""
    a = np.where(x < vocab, x, 0)
    prev = np.zeros_like(a)
    prev[:, 1:] = a[:, :-1]
    return np.where(x == vocab, x[:, :1], (a + prev) % vocab)


def make_sequences(rng, n, seq_len, vocab, p_recall):
    x = rng.integers(0, vocab, (n, seq_len))
    recall = rng.random((n, seq_len)) < p_recall
    recall[:, 0] = False  # x_0 is the token to recall, never R itself
    x[recall] = vocab
    return x


def ceiling(x, vocab, reach):
    """Expected token accuracy of the best predictor that sees only x_(i-reach)..x_(i+reach): exact
    wherever the label is decided inside that window, 1/vocab where x_i = R and x_0 is out of reach."""
    blind = (x == vocab) & (np.arange(x.shape[1]) > reach)
    return float(np.where(blind, 1.0 / vocab, 1.0).mean())


class AttentionTagger(nn.Module):
    """Embedding + sinusoidal positions, one pre-norm encoder layer (2 heads), a linear head."""

    def __init__(self, vocab, seq_len, d=32, ff=64):
        super().__init__()
        self.embed = nn.Embedding(vocab + 1, d)
        self.pos = nn.SinusoidalPositionalEncoding(d, seq_len)
        self.layer = nn.TransformerEncoderLayer(d, 2, ff, dropout=0.0, batch_first=True,
                                                activation=nn.GELU(approximate="tanh"), norm_first=True)
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        return self.head(self.layer(self.pos(self.embed(x)), src_mask=self.mask(x.shape[1])))

    def mask(self, seq_len):
        return None


class LocalAttentionTagger(AttentionTagger):
    """The same model, each position allowed to attend only to x_(i-3)..x_(i+3): self-attention with
    the CNN's receptive field (a bool attn mask, PyTorch's meaning: True = may NOT attend)."""

    reach = 3

    def mask(self, seq_len):
        i = np.arange(seq_len)
        return ta.tensor(np.abs(i[:, None] - i[None, :]) > self.reach)


class CNNTagger(nn.Module):
    """Embedding, three Conv1d (kernel 3, same padding: receptive field x_(i-3)..x_(i+3)), a linear head."""

    reach = 3

    def __init__(self, vocab, seq_len, d=32):
        super().__init__()
        self.embed = nn.Embedding(vocab + 1, d)
        self.convs = nn.ModuleList([nn.Conv1d(d, d, kernel_size=3, padding=1) for _ in range(3)])
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        h = self.embed(x).transpose(1, 2)  # (B, d, T)
        for conv in self.convs:
            h = F.relu(conv(h))
        return self.head(h.transpose(1, 2))


FACTORIES = {"cnn": CNNTagger, "self-attention": AttentionTagger, "local-attention": LocalAttentionTagger}
COLOURS = {"cnn": "tab:orange", "self-attention": "tab:blue", "local-attention": "tab:green"}


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def train_once(kind, train_x, test_x, test_y, seed, args):
    """Train one model for args.steps Adam steps on train_x; return its token accuracy on the held-out set
    and on (up to 1000 sequences of) its own training set."""
    ta.manual_seed(seed)
    model = FACTORIES[kind](args.vocab, args.seq_len)
    opt = ta.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(seed + 1000)
    train_y = labels(train_x, args.vocab)
    for _ in range(args.steps):
        idx = rng.integers(0, len(train_x), min(args.batch_size, len(train_x)))
        logits = model(ta.tensor(train_x[idx]))
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), ta.tensor(train_y[idx].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return accuracy(model, test_x, test_y), accuracy(model, train_x[:1000], train_y[:1000])


def accuracy(model, x, y, batch=500):
    correct = 0
    with ta.no_grad():
        for i in range(0, len(x), batch):
            pred = model(ta.tensor(x[i:i + batch])).numpy().argmax(-1)
            correct += int((pred == y[i:i + batch]).sum())
    return correct / y.size


def summarise(runs, sizes, models):
    table = {}
    for kind in models:
        for size in sizes:
            accs = [r["accuracy"] for r in runs if r["model"] == kind and r["size"] == size]
            train = [r["train_accuracy"] for r in runs if r["model"] == kind and r["size"] == size]
            table[kind, size] = dict(mean=float(np.mean(accs)), min=float(np.min(accs)), max=float(np.max(accs)),
                                     std=float(np.std(accs)), train_mean=float(np.mean(train)))
    return table


def plot(table, sizes, cnn_ceiling, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for kind in args.models:
        colour = COLOURS[kind]
        mean = [table[kind, s]["mean"] for s in sizes]
        label = f"{kind} (±{LocalAttentionTagger.reach} mask)" if kind == "local-attention" else kind
        ax.plot(sizes, mean, marker="o", color=colour, label=f"{label}, mean of {args.seeds}")
        ax.fill_between(sizes, [table[kind, s]["min"] for s in sizes], [table[kind, s]["max"] for s in sizes],
                        color=colour, alpha=0.2, linewidth=0)
    ax.axhline(cnn_ceiling, color="tab:orange", linestyle="--", linewidth=1,
               label=f"best possible with reach ±{CNNTagger.reach} ({cnn_ceiling:.3f})")
    ax.axhline(1 / args.vocab, color="grey", linestyle=":", linewidth=1, label=f"chance ({1 / args.vocab:.3f})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("training-set size (sequences; shaded: min to max over seeds)")
    ax.set_ylabel("held-out token accuracy")
    ax.set_title(f"local rule + recall of x_0 (p={args.p_recall}), T={args.seq_len}, {args.steps} steps")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer sizes, seeds and steps: one to two minutes")
    p.add_argument("--smoke", action="store_true", help="a few seconds: for the test suite")
    p.add_argument("--sizes", type=int, nargs="+", help="training-set sizes (sequences); default by mode")
    p.add_argument("--seeds", type=int, help="seeds per size; default by mode")
    p.add_argument("--steps", type=int, help="Adam steps per run; default by mode")
    p.add_argument("--test-size", type=int, help="held-out sequences; default by mode")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--vocab", type=int, default=8)
    p.add_argument("--p-recall", type=float, default=0.15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out-dir", default="runs/receptive_field_study")
    args = p.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    for key, value in MODES[mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.seeds < 1 or args.steps < 1 or min(args.sizes) < 1 or args.test_size < 1:
        p.error("--sizes, --seeds, --steps and --test-size must be >= 1")
    if args.seq_len <= CNNTagger.reach + 1:
        p.error(f"--seq-len must exceed {CNNTagger.reach + 1}: the recall must be able to fall out of the CNN's reach")
    sizes = sorted(set(args.sizes))

    test_x = make_sequences(np.random.default_rng(12345), args.test_size, args.seq_len, args.vocab, args.p_recall)
    test_y = labels(test_x, args.vocab)
    cnn_ceiling = ceiling(test_x, args.vocab, CNNTagger.reach)
    params = {kind: count_parameters(FACTORIES[kind](args.vocab, args.seq_len)) for kind in args.models}
    print(f"mode {mode}: sizes {sizes}, {args.seeds} seeds, {args.steps} steps; parameters: "
          + ", ".join(f"{k} {n}" for k, n in params.items())
          + f"; CNN ceiling {cnn_ceiling:.3f}, chance {1 / args.vocab:.3f}", flush=True)

    runs = []
    start = time.perf_counter()
    for size in sizes:
        for seed in range(args.seeds):
            train_x = make_sequences(np.random.default_rng(seed), size, args.seq_len, args.vocab, args.p_recall)
            for kind in args.models:
                t0 = time.perf_counter()
                acc, train_acc = train_once(kind, train_x, test_x, test_y, seed, args)
                runs.append(dict(model=kind, size=size, seed=seed, accuracy=acc, train_accuracy=train_acc,
                                 seconds=round(time.perf_counter() - t0, 2)))
                print(f"{kind:15s} n={size:5d} seed {seed}: held-out {acc:.3f}, train {train_acc:.3f} "
                      f"({runs[-1]['seconds']:.1f} s)", flush=True)
    elapsed = time.perf_counter() - start
    table = summarise(runs, sizes, args.models)

    print(f"\nHeld-out token accuracy, mean [min, max] over {args.seeds} seeds ({elapsed:.0f} s):\n")
    print("| model | " + " | ".join(f"n={s}" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for kind in args.models:
        print(f"| {kind} ({params[kind]} parameters) | " + " | ".join(
            f"{table[kind, s]['mean']:.3f} [{table[kind, s]['min']:.3f}, {table[kind, s]['max']:.3f}]"
            for s in sizes) + " |")
    for kind in args.models:
        print(f"| {kind}, on its training set | " + " | ".join(f"{table[kind, s]['train_mean']:.3f}" for s in sizes)
              + " |")

    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.join(args.out_dir, "receptive_field_study.png")
    plot(table, sizes, cnn_ceiling, args, png)
    keys = ("seq_len", "vocab", "p_recall", "batch_size", "lr", "steps", "seeds", "test_size")
    result = dict(mode=mode, config={k: getattr(args, k) for k in keys},
                  sizes=sizes, parameters=params, cnn_ceiling=cnn_ceiling, chance=1 / args.vocab,
                  seconds=round(elapsed, 1),
                  summary={kind: {str(s): table[kind, s] for s in sizes} for kind in args.models}, runs=runs)
    with open(os.path.join(args.out_dir, "receptive_field_study.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nplot: {png}\ntable: {os.path.join(args.out_dir, 'receptive_field_study.json')}")
    return result


if __name__ == "__main__":
    main()
