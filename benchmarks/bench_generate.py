"""Tokens/s of ta.generate with the key/value cache against the full recompute, and against the same
cached loop written in PyTorch eager (when torch is installed). Issue 13.

    python benchmarks/bench_generate.py                 # char_lm's model at context 256
    python benchmarks/bench_generate.py --quick         # a smaller run (a few seconds)

The model is examples/char_lm.py's CharTransformer (d_model 128, 4 heads, 3 layers, ff 512, vocab 96,
learned positions) at context 256, random weights (speed does not depend on training). After a 16-token
prompt it generates N tokens, batch 1, temperature 1.0 (sampling included in the time). Each figure is
the best of --repeats runs after a warm-up (Numba compilation excluded). The recompute path re-runs the
last `context` tokens at every step (use_cache=False). With --clock cpu the times are this process's CPU
time, which other processes on a busy machine disturb much less (use it with NUMBA_NUM_THREADS=1, so that
CPU time is wall time on an idle machine). The PyTorch loop has the same weights, primes a
cache with the prompt and then feeds one token per step, with torch.set_num_threads = Numba's threads;
its logits are checked against tinyattn's first.
"""
import argparse
import importlib.util
import os
import platform
import time

import numba
import numpy as np

import tinyattn as ta

HERE = os.path.dirname(os.path.abspath(__file__))


def load_char_lm():
    spec = importlib.util.spec_from_file_location("char_lm", os.path.join(HERE, "..", "examples", "char_lm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLOCK = time.perf_counter


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return min(times)


def torch_model(model, heads):
    """The same network in PyTorch eager with a hand-written key/value cache (lists of (k, v) per layer)."""
    import torch
    import torch.nn.functional as TF

    sd = {k: torch.tensor(np.asarray(v.numpy())) for k, v in model.state_dict().items()}
    n_layers = len(model.layers)
    context = model.context

    def layer_norm(x, name):
        return TF.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], 1e-5)

    @torch.no_grad()
    def forward(tokens, cache):  # tokens (B, T) long; cache: list of [k, v] or None per layer
        b, t = tokens.shape
        offset = 0 if cache[0] is None else cache[0][0].shape[2]
        x = sd["embed.weight"][tokens] + sd["pos.weight"][offset : offset + t]
        for i in range(n_layers):
            p = f"layers.{i}."
            h = layer_norm(x, p + "norm1")
            qkv = TF.linear(h, sd[p + "self_attn.in_proj_weight"], sd[p + "self_attn.in_proj_bias"])
            q, k, v = qkv.reshape(b, t, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, D)
            if cache[i] is not None:
                k = torch.cat([cache[i][0], k], dim=2)
                v = torch.cat([cache[i][1], v], dim=2)
            cache[i] = (k, v)
            # one new token sees every cached position: no mask; the prompt: causal (L == S)
            a = TF.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
            a = a.transpose(1, 2).reshape(b, t, -1)
            x = x + TF.linear(a, sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"])
            h = layer_norm(x, p + "norm2")
            h = TF.gelu(TF.linear(h, sd[p + "linear1.weight"], sd[p + "linear1.bias"]), approximate="tanh")
            x = x + TF.linear(h, sd[p + "linear2.weight"], sd[p + "linear2.bias"])
        return TF.linear(layer_norm(x, "norm"), sd["head.weight"], sd["head.bias"])

    @torch.no_grad()
    def generate(prompt, n, gen):
        cache = [None] * n_layers
        ids = torch.tensor(prompt)
        logits = forward(ids, cache)[:, -1]
        for step in range(n):
            tok = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)  # (B, 1)
            ids = torch.cat([ids, tok], dim=1)
            if step == n - 1:
                break
            # window full: re-prime from the last context // 2, as ta.generate(context_overflow='reprime')
            if cache[0][0].shape[2] >= context:
                cache = [None] * n_layers
                logits = forward(ids[:, -(context // 2):], cache)[:, -1]
            else:
                logits = forward(tok, cache)[:, -1]
        return ids

    return forward, generate


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="context 64, lengths 32 48, 2 repeats")
    ap.add_argument("--rounds", type=int, default=0,
                    help="then N rounds alternating one cached tinyattn run and one PyTorch run at the last length "
                         "(order swapped every round): the median of the per-round ratios, which a busy machine "
                         "disturbs less than two best-ofs taken one after the other")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this process's CPU time (time.process_time), steadier than wall time on a busy "
                         "machine; meaningful with one thread (NUMBA_NUM_THREADS=1)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.quick:
        args.context, args.lengths, args.repeats = 64, [32, 48], 2
    char_lm = load_char_lm()
    ta.manual_seed(0)
    model = char_lm.CharTransformer(96, args.context, 128, 4, 3, 512, 0.0).eval()
    prompt = np.random.default_rng(0).integers(0, 96, (1, args.prompt))
    try:
        import torch

        torch.set_num_threads(numba.get_num_threads())
        t_forward, t_generate = torch_model(model, 4)
        x = np.random.default_rng(1).integers(0, 96, (1, min(40, args.context)))
        with ta.no_grad():
            ours = model(ta.tensor(x)).numpy()
        theirs = t_forward(torch.tensor(x), [None] * 3).numpy()
        err = float(np.abs(ours - theirs).max())
        assert err < 1e-4, f"PyTorch model differs from tinyattn's: max |diff| {err}"
    except ImportError:
        torch = None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numba threads "
          f"{numba.get_num_threads()}, numpy {np.__version__}, numba {numba.__version__}"
          + (f", torch {torch.__version__}" if torch else ", no torch"))
    print(f"char model d_model 128, 4 heads, 3 layers, ff 512, context {args.context}; prompt {args.prompt} tokens, "
          f"batch 1, best of {args.repeats}, {args.clock} clock")
    ta.generate(model, prompt, 4)  # warm-up: compile every kernel for these shapes
    ta.generate(model, prompt, 4, use_cache=False)
    print(f"{'new tokens':>10} {'cached tok/s':>13} {'recompute tok/s':>16} {'speedup':>8} {'torch cached tok/s':>19} "
          f"{'vs torch':>9}")
    speedup = None
    for n in args.lengths:
        cached = n / best_of(lambda: ta.generate(model, prompt, n, context_overflow="reprime"), args.repeats)
        full = n / best_of(lambda: ta.generate(model, prompt, n, use_cache=False), args.repeats)
        speedup = cached / full
        row = f"{n:>10} {cached:>13.0f} {full:>16.0f} {speedup:>7.1f}x"
        if torch is not None:
            gen = torch.Generator().manual_seed(0)
            t_generate(prompt, 4, gen)
            theirs = n / best_of(lambda: t_generate(prompt, n, gen), args.repeats)
            row += f" {theirs:>19.0f} {cached / theirs:>8.2f}x"
        print(row)
    print(f"speedup over recompute: {speedup:.1f}")
    if args.rounds and torch is not None:
        n, ratios = args.lengths[-1], []
        for r in range(args.rounds):
            runs = [lambda: ta.generate(model, prompt, n, context_overflow="reprime"),
                    lambda: t_generate(prompt, n, gen)]
            times = [best_of(run, 1) for run in (runs if r % 2 == 0 else runs[::-1])]
            ours, theirs = times if r % 2 == 0 else times[::-1]
            ratios.append(theirs / ours)  # tinyattn tok/s / PyTorch tok/s
        print(f"interleaved, {args.rounds} rounds of {n} tokens: tinyattn / PyTorch median {np.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
