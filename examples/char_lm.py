"""A character-level language model with causal self-attention, trained on Python's own source.

    python examples/char_lm.py
    mpiexec -n 2 python examples/char_lm.py --distributed   # data-parallel over 2 ranks (MPI)

The corpus is read at run time from the standard library's .py files (nothing is
downloaded or committed). It reports train and validation loss in nats per character
and samples some text at the end with ta.generate (a key/value cache: one new position
per character). `--sample N` skips training and samples N characters from the checkpoint
that an earlier run (with the same model flags) saved in --out-dir.
"""
import argparse
import glob
import os
import sysconfig
import time

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F

PRINTABLE = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 symbols; anything else maps to "?"


def load_corpus(max_chars):
    """Concatenated standard-library sources (sorted, so the corpus is the same on every run)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(stdlib, "*.py")))
    if not files:
        raise RuntimeError(f"char_lm: no .py files found in the standard library folder {stdlib}")
    parts, total = [], 0
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def encode(text):
    lookup = np.full(0x110000, PRINTABLE.index("?"), dtype=np.int64)
    for i, ch in enumerate(PRINTABLE):
        lookup[ord(ch)] = i
    return lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]


def decode(ids):
    return "".join(PRINTABLE[i] for i in ids)


class CharTransformer(nn.Module):
    def __init__(self, vocab, context, d_model, nhead, num_layers, dim_feedforward, dropout):
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.LearnedPositionalEncoding(d_model=d_model, max_len=context)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True, causal=True,
                                       activation=nn.GELU(approximate="tanh"), norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens, kv_cache=None):  # (B, T) -> (B, T, vocab)
        # with an nn.KVCache, tokens are the new positions after kv_cache.seq_len cached ones
        x = self.pos(self.embed(tokens), offset=0 if kv_cache is None else kv_cache.seq_len)
        for i, layer in enumerate(self.layers):
            x = layer(x, kv_cache=None if kv_cache is None else kv_cache[i])
        return self.head(self.norm(x))


def param_groups(model, weight_decay):
    """Two optimiser groups, nanoGPT's way: weight decay on the matrices (Linear, Embedding and positional
    weights: 2-D and up), none on the vectors (LayerNorm weights, all biases)."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def random_windows(data, rng, batch, context):
    starts = rng.integers(0, len(data) - context - 1, size=batch)
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    chunk = data[idx]
    return chunk[:, :-1], chunk[:, 1:]


@ta.no_grad()
def mean_loss(model, data, rng, batches, batch, context):
    model.eval()
    losses = []
    for _ in range(batches):
        x, y = random_windows(data, rng, batch, context)
        logits = model(ta.tensor(x))
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ta.tensor(y.reshape(-1))).item())
    model.train()
    return float(np.mean(losses))


def sample(model, prompt_ids, length, seed, temperature=0.8, top_k=None, top_p=None):
    """prompt_ids followed by `length` sampled ids (ta.generate with its key/value cache; once the
    context window is full, each step re-runs the last `context` characters)."""
    ids = ta.generate(model, np.asarray(prompt_ids, dtype=np.int64), length, temperature=temperature, top_k=top_k,
                      top_p=top_p, generator=np.random.default_rng(seed))
    return ids.numpy().tolist()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chars", type=int, default=2_000_000, help="corpus size (the last 10%% is validation)")
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--ff", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-steps", type=int, default=4000)
    p.add_argument("--max-seconds", type=float, default=280.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--sample-chars", type=int, default=300)
    p.add_argument("--sample", type=int, default=None, metavar="N",
                   help="no training: sample N characters from the checkpoint in --out-dir")
    p.add_argument("--prompt", default="def ")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/char_lm")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI, launched with mpiexec -n N; --batch-size is then per rank")
    args = p.parse_args(argv)
    start = time.perf_counter()
    rank, world, print0 = 0, 1, print
    if args.distributed and args.sample is None:  # every rank runs this same script and reads the whole corpus
        import tinyattn.distributed as dist

        dist.init()  # one Numba thread per rank when ranks share a machine's cores
        rank, world, print0 = dist.get_rank(), dist.get_world_size(), dist.print0
    if args.sample is not None:
        model = CharTransformer(len(PRINTABLE), args.context, args.d_model, args.heads, args.layers, args.ff, 0.0)
        model.load_state_dict(ta.load(os.path.join(args.out_dir, "char_lm.npz"))["model"])
        ids = sample(model, encode(args.prompt), args.sample, args.seed, args.temperature, args.top_k, args.top_p)
        print(decode(ids))
        return None

    data = encode(load_corpus(args.chars))
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    print0(f"corpus: {len(data):,} characters from the standard library "
           f"({len(train_data):,} train, {len(val_data):,} validation)")

    ta.manual_seed(args.seed)
    model = CharTransformer(len(PRINTABLE), args.context, args.d_model, args.heads, args.layers, args.ff, args.dropout)
    opt = ta.optim.AdamW(param_groups(model, weight_decay=0.01), lr=args.lr)
    sched = ta.optim.WarmupCosine(opt, warmup_steps=min(200, args.max_steps // 2), total_steps=args.max_steps,
                                  min_lr=args.lr / 10)
    rng = np.random.default_rng(args.seed)
    net = model
    if world > 1:
        net = dist.DistributedDataParallel(model)  # rank 0's weights everywhere; backward averages gradients
        print0(f"data-parallel over {world} ranks: global batch {args.batch_size * world} "
               f"= {args.batch_size} per rank x {world}")

    from tqdm import tqdm

    bar = tqdm(total=args.max_steps, disable=args.no_progress or rank != 0, desc="char_lm", unit="step")
    history, step = [], 0
    while _keep_going(args, step, start, world):
        # every rank draws the same global batch (same seed) and trains on its own slice of it
        x, y = random_windows(train_data, rng, args.batch_size * world, args.context)
        mine = slice(rank * args.batch_size, (rank + 1) * args.batch_size)
        logits = net(ta.tensor(x[mine]))
        y = y[mine]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ta.tensor(y.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        bar.update(1)
        if step % args.eval_every == 0:
            eval_rng = np.random.default_rng(12345)
            train_loss = mean_loss(model, train_data, eval_rng, args.eval_batches, args.batch_size * world,
                                   args.context)
            val_loss = mean_loss(model, val_data, eval_rng, args.eval_batches, args.batch_size * world, args.context)
            history.append((step, time.perf_counter() - start, train_loss, val_loss))
            if rank == 0:
                bar.write(f"step {step:5d}  {history[-1][1]:6.1f} s  "
                          f"train {train_loss:.3f}  val {val_loss:.3f} nats/char")
    bar.close()
    eval_rng = np.random.default_rng(12345)
    train_loss = mean_loss(model, train_data, eval_rng, args.eval_batches, args.batch_size * world, args.context)
    val_loss = mean_loss(model, val_data, eval_rng, args.eval_batches, args.batch_size * world, args.context)
    elapsed = time.perf_counter() - start
    print0(f"final after {step} steps, {elapsed:.1f} s: train {train_loss:.3f}, validation {val_loss:.3f} nats/char")

    if rank != 0:
        return val_loss  # rank 0 samples and saves
    prompt = encode(args.prompt)
    text = decode(sample(model, prompt, args.sample_chars, args.seed, args.temperature, args.top_k, args.top_p))
    print("---- sample ----\n" + text + "\n----------------")
    os.makedirs(args.out_dir, exist_ok=True)
    ta.save({"model": model.state_dict(), "step": step}, os.path.join(args.out_dir, "char_lm.npz"))
    return val_loss


def _keep_going(args, step, start, world):
    """Another step? With several ranks, rank 0's clock decides for all (a rank that stopped alone would
    leave the others waiting in the next all-reduce)."""
    go = step < args.max_steps and time.perf_counter() - start < args.max_seconds
    if world > 1:
        import tinyattn.distributed as dist

        flag = ta.tensor(int(go))
        dist.broadcast(flag, src=0)
        go = bool(flag.item())
    return go


if __name__ == "__main__":
    main()
