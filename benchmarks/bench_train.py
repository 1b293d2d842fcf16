"""Training-step benchmark: a tinyattn model against the same model in PyTorch eager (and torch.compile).

    python benchmarks/bench_train.py [--model reverse|gpt] [--steps 100] [--block 10] [--compile] [--contend] [--alone]
    python benchmarks/bench_train.py --profile [--model gpt] [--steps 5] [--trace t.json]  # op by op, no torch

--model reverse: the examples/reverse.py model (2 pre-norm encoder layers, d_model 64, 4 heads, ff 256,
    T 32, vocab 16, batch 32, Adam). --model gpt: a nanoGPT-style causal character model written below
    with the public API the way a user would (3 pre-norm blocks, d_model 128, 4 heads, T 64, batch 32,
    vocab 96, one fused qkv Linear + F.scaled_dot_product_attention(is_causal=True), tanh GELU, AdamW),
    trained on the standard library's Python source.

Both frameworks start from the same weights (tinyattn's, exported under PyTorch's names) and see the
same batches, so their losses should agree to float32 rounding: the script prints both. Timing is
interleaved, since this machine's load moves by +-20 % within a minute: after warm-up steps
(compilation excluded), rounds of `--block` steps of one framework then `--block` of the other (the
order rotating), and the speed ratio is the median over rounds of each framework's steps/s over PyTorch
eager's. --compile adds torch.compile (inductor, default mode) of the same PyTorch model as a third framework; its
first step (the compilation) is reported apart. --contend times the rounds again while another process keeps one
of the cores busy (a spin loop), as on a laptop or CI box that is not idle; with --alone, tinyattn only, in a
process that never imports torch (goal 6's figure: PyTorch's OpenMP threads, spinning after each of its steps in
the same process, would take the core tinyattn's one remaining thread runs on).
"""
import argparse
import os
import sys
import time

import numba
import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from export_to_torch import export_for_torch, load_into_torch, torch_reverse_model  # noqa: E402
from reverse import ReverseTransformer  # noqa: E402


def profile_steps(args):
    """--profile: tinyattn's training step under tinyattn.profiler, one row per op."""
    from tinyattn.profiler import profile, record_function

    ta.manual_seed(0)
    if args.model == "gpt":  # random characters: the profile does not depend on the text
        model, vocab, seq = CharGPT(**GPT), GPT["vocab"], GPT["context"]
        opt = ta.optim.AdamW(model.parameters(), lr=1e-3)
        desc = f"char GPT (3 pre-norm blocks, d_model 128, T={seq}, batch {args.batch_size})"
    else:
        model, vocab, seq = ReverseTransformer(), 16, 32
        opt = ta.optim.Adam(model.parameters(), lr=1e-3)
        desc = f"reverse model (2 pre-norm layers, d_model 64, T={seq}, batch {args.batch_size})"
    rng = np.random.default_rng(0)

    def step():
        x = rng.integers(0, vocab, size=(args.batch_size, seq))
        y = np.roll(x, -1, axis=1) if args.model == "gpt" else x[:, ::-1].copy()
        with record_function("forward"):
            logits = model(ta.tensor(x))
            loss = F.cross_entropy(logits.reshape(-1, vocab), ta.tensor(y.reshape(-1)))
        with record_function("backward"):
            opt.zero_grad()
            loss.backward()
        with record_function("optimizer"):
            opt.step()

    for _ in range(args.warmup):  # compilation and first-touch costs stay out of the profile
        step()
    with profile() as prof:
        for _ in range(args.steps):
            with record_function("step"):
                step()
    print(f"tinyattn, {desc}, {args.steps} training steps after {args.warmup} warm-up steps:\n")
    print(prof.table(sort_by="total"))
    if args.trace:
        print(f"\nChrome trace: {prof.export_chrome_trace(args.trace)} (open in https://ui.perfetto.dev)")
    return prof


GPT = dict(vocab=96, context=64, d_model=128, n_head=4, n_layer=3)
PRINTABLE = "\n" + "".join(chr(c) for c in range(32, 127))   # 96 symbols; anything else maps to "?"


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)       # q, k, v in one product
        self.c_proj = nn.Linear(d_model, d_model)

    def forward(self, x):                                   # (B, T, C)
        B, T, C = x.shape
        qkv = self.c_attn(x).reshape(B, T, 3, self.n_head, C // self.n_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)      # each (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CharGPT(nn.Module):
    """nanoGPT's model at toy size: token + learned position embeddings, pre-norm blocks, a final norm."""

    def __init__(self, vocab, context, d_model, n_head, n_layer):
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(context, d_model)
        self.h = nn.ModuleList([Block(d_model, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, idx):                                 # (B, T) -> (B, T, vocab)
        x = self.wte(idx) + self.wpe(ta.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def torch_char_gpt(vocab, context, d_model, n_head, n_layer):
    """The same model in torch.nn, with the same parameter names."""
    import torch
    from torch import nn as tnn

    class TorchAttention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = tnn.Linear(d_model, 3 * d_model)
            self.c_proj = tnn.Linear(d_model, d_model)

        def forward(self, x):
            B, T, C = x.shape
            qkv = self.c_attn(x).reshape(B, T, 3, n_head, C // n_head)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            y = tnn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class TorchBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = tnn.LayerNorm(d_model)
            self.attn = TorchAttention()
            self.ln_2 = tnn.LayerNorm(d_model)
            self.mlp = tnn.Sequential(tnn.Linear(d_model, 4 * d_model), tnn.GELU(approximate="tanh"),
                                      tnn.Linear(4 * d_model, d_model))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.wte = tnn.Embedding(vocab, d_model)
            self.wpe = tnn.Embedding(context, d_model)
            self.h = tnn.ModuleList([TorchBlock() for _ in range(n_layer)])
            self.ln_f = tnn.LayerNorm(d_model)
            self.lm_head = tnn.Linear(d_model, vocab, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return TorchGPT()


def char_batches(n, batch_size, context, seed=0):
    """n batches of (inputs, next-character targets), (batch, context) each, from the standard library's
    Python source mapped to 96 printable symbols (the same text on every run; nothing downloaded)."""
    import glob
    import sysconfig

    text, total = [], 0
    for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            text.append(f.read())
        total += len(text[-1])
        if total > 2_000_000:
            break
    lookup = {ch: i for i, ch in enumerate(PRINTABLE)}
    ids = np.array([lookup.get(ch, PRINTABLE.index("?")) for ch in "".join(text)], dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start = rng.integers(0, len(ids) - context - 1, size=batch_size)
        window = ids[start[:, None] + np.arange(context + 1)]
        out.append((window[:, :-1].copy(), window[:, 1:].copy()))
    return out


def setup_reverse(torch, batch_size, n):
    """(tinyattn step, maker of a torch step (compiled or not), description): the examples/reverse.py model, Adam."""
    ta.manual_seed(0)
    ours = ReverseTransformer()
    path = "/tmp/bench_train_weights.npz"
    export_for_torch(ours, path)
    opt_ours = ta.optim.Adam(ours.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 16, size=(batch_size, 32)) for _ in range(n)]

    def step_ours(i):
        x = data[i]
        y = x[:, ::-1].copy()
        logits = ours(ta.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, 16), ta.tensor(y.reshape(-1)))
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()
        return loss.item()

    def torch_step(compiled):
        model = load_into_torch(torch_reverse_model(), path)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        run = torch.compile(model) if compiled else model

        def step_theirs(i):
            x = data[i]
            y = torch.from_numpy(x[:, ::-1].copy())
            logits = run(torch.from_numpy(x))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
        return step_theirs

    desc = f"reverse: 2 pre-norm encoder layers, d_model 64, 4 heads, ff 256, T=32, vocab 16, batch {batch_size}, Adam"
    return step_ours, torch_step, desc


def setup_gpt(torch, batch_size, n):
    """(tinyattn step, maker of a torch step (compiled or not), description): the nanoGPT-style char model
    above, AdamW."""
    ta.manual_seed(0)
    ours = CharGPT(**GPT)
    path = "/tmp/bench_train_gpt_weights.npz"
    export_for_torch(ours, path)
    opt_ours = ta.optim.AdamW(ours.parameters(), lr=1e-3, weight_decay=0.1)
    data = char_batches(n, batch_size, GPT["context"])
    V = GPT["vocab"]

    def step_ours(i):
        x, y = data[i]
        logits = ours(ta.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, V), ta.tensor(y.reshape(-1)))
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()
        return loss.item()

    def torch_step(compiled):
        model = load_into_torch(torch_char_gpt(**GPT), path)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        run = torch.compile(model) if compiled else model

        def step_theirs(i):
            x, y = data[i]
            logits = run(torch.from_numpy(x))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
        return step_theirs

    desc = (f"gpt: 3 pre-norm blocks, d_model 128, 4 heads, T=64, vocab 96, batch {batch_size}, AdamW, "
            "fused qkv + causal SDPA, tanh GELU")
    return step_ours, torch_step, desc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("reverse", "gpt"), default="reverse")
    p.add_argument("--steps", type=int, default=100, help="timed steps per framework")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--block", type=int, default=10, help="steps per framework in one interleaved round")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile (inductor) of the PyTorch model; its compile time is reported apart")
    p.add_argument("--contend", action="store_true",
                   help="after the quiet rounds, start a process that keeps one core busy and time the same rounds "
                        "again (the rate under contention, and its ratio to the quiet rate)")
    p.add_argument("--alone", action="store_true",
                   help="time tinyattn only, in a process without torch (with --contend: its own quiet and busy "
                        "rates, undisturbed by PyTorch's OpenMP threads spinning between its steps)")
    p.add_argument("--profile", action="store_true",
                   help="print tinyattn's per-op profile of --steps training steps instead (no torch needed)")
    p.add_argument("--trace", help="with --profile: also write a Chrome trace (JSON) to this path")
    args = p.parse_args(argv)
    if args.alone and args.compile:
        p.error("--alone times tinyattn only: --compile needs torch")
    if args.profile:
        return profile_steps(args)
    torch = None
    if not args.alone:
        import torch

        torch.set_num_threads(numba.get_num_threads())
    setup = setup_reverse if args.model == "reverse" else setup_gpt
    phases = ("quiet", "contended") if args.contend else ("quiet",)
    rounds = max(1, args.steps // args.block)
    n = max(1, args.warmup) + len(phases) * rounds * args.block  # the first step is always taken
    step_ours, torch_step, desc = setup(torch, args.batch_size, n)
    steps = {"tinyattn": step_ours}
    if torch is not None:
        steps["PyTorch eager"] = torch_step(False)
    if args.compile and torch is not None:
        steps["torch.compile"] = torch_step(True)
    losses = {name: [] for name in steps}

    def run(name, count):
        """`count` more steps of one framework (each on its own next batch); their wall time."""
        done = len(losses[name])
        start = time.perf_counter()
        for i in range(done, done + count):
            losses[name].append(steps[name](i))
        return time.perf_counter() - start

    first_step = {name: run(name, 1) for name in steps}  # compilation (Numba's cache is warm or not; inductor's)
    for name in steps:
        run(name, args.warmup - 1)
    names = list(steps)
    threads = numba.get_num_threads()  # before the rounds (the contended ones may lower it: tinyattn/contention.py)
    results = {}
    for phase in phases:
        spinner = _busy_core() if phase == "contended" else None
        if spinner is not None:
            time.sleep(1.0)  # the rounds time a machine that is busy, not one becoming busy
        try:
            ratios, total = {name: [] for name in names}, dict.fromkeys(names, 0.0)
            for r in range(rounds):
                order = names[r % len(names):] + names[:r % len(names)]  # each framework leads in turn
                t = {name: run(name, args.block) for name in order}
                for name in t:
                    total[name] += t[name]
                    ratios[name].append(t.get("PyTorch eager", t[name]) / t[name])  # its steps/s over PyTorch's
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        results[phase] = ({name: rounds * args.block / total[name] for name in names},
                          {name: float(np.median(ratios[name])) for name in names})

    print(f"model: {desc}")
    print(f"threads: numba {threads} ({numba.threading_layer()})"
          + (f", torch {torch.get_num_threads()}; torch {torch.__version__}" if torch is not None else "; no torch")
          + f"; load average before: {os.getloadavg()[0]:.2f}")
    if torch is not None:
        ours_losses, torch_losses = losses["tinyattn"], losses["PyTorch eager"]
        gap = max(abs(a - b) for a, b in zip(ours_losses, torch_losses))
        print(f"losses: first {ours_losses[0]:.4f} vs {torch_losses[0]:.4f}, last {ours_losses[-1]:.4f} vs "
              f"{torch_losses[-1]:.4f}, max |difference| over {len(ours_losses)} steps {gap:.2e}")
    print("first step (compilation included): " + ", ".join(f"{k} {v:.1f} s" for k, v in first_step.items()))
    for phase in phases:
        sps, ratio = results[phase]
        print(f"\n{phase}: {rounds} interleaved rounds of {args.block} steps each")
        vs_eager = torch is not None
        print("| framework | steps/s | ms/step |" + (" vs PyTorch eager (median of rounds) |" if vs_eager else "")
              + (" vs its quiet rate |" if phase == "contended" else ""))
        print("|---|---:|---:|" + ("---:|" if vs_eager else "") + ("---:|" if phase == "contended" else ""))
        for name in names:
            row = f"| {name} | {sps[name]:.1f} | {1000 / sps[name]:.1f} |"
            row += f" {ratio[name]:.2f}x |" if vs_eager else ""
            if phase == "contended":
                row += f" {sps[name] / results['quiet'][0][name]:.2f}x |"
            print(row)


def _busy_core():
    """A process that keeps one core busy (a Python spin loop) until killed: a user's other work."""
    import subprocess

    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


if __name__ == "__main__":
    main()
