"""Training-step benchmark: the examples/reverse.py model in tinyattn against the same model in PyTorch eager.

    python benchmarks/bench_train.py [--steps 100]
    python benchmarks/bench_train.py --profile [--steps 5] [--trace trace.json]   # tinyattn op by op, no torch

Both models start from the same weights (tinyattn's, exported under PyTorch's names) and
see the same batches, so their losses should agree to float32 rounding: the script prints
both, then steps/s for each (after warm-up steps, compilation excluded) and the ratio.
"""
import argparse
import os
import sys
import time

import numba
import numpy as np

import tinyattn as ta
import tinyattn.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from export_to_torch import export_for_torch, load_into_torch, torch_reverse_model  # noqa: E402
from reverse import ReverseTransformer  # noqa: E402


def profile_steps(args):
    """--profile: tinyattn's training step under tinyattn.profiler, one row per op."""
    from tinyattn.profiler import profile, record_function

    ta.manual_seed(0)
    model = ReverseTransformer()
    opt = ta.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def step():
        x = rng.integers(0, 16, size=(args.batch_size, 32))
        with record_function("forward"):
            logits = model(ta.tensor(x))
            loss = F.cross_entropy(logits.reshape(-1, 16), ta.tensor(x[:, ::-1].copy().reshape(-1)))
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
    print(f"tinyattn, reverse model (2 pre-norm layers, d_model 64, T=32, batch {args.batch_size}), "
          f"{args.steps} training steps after {args.warmup} warm-up steps:\n")
    print(prof.table(sort_by="total"))
    if args.trace:
        print(f"\nChrome trace: {prof.export_chrome_trace(args.trace)} (open in https://ui.perfetto.dev)")
    return prof


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--profile", action="store_true",
                   help="print tinyattn's per-op profile of --steps training steps instead (no torch needed)")
    p.add_argument("--trace", help="with --profile: also write a Chrome trace (JSON) to this path")
    args = p.parse_args(argv)
    if args.profile:
        return profile_steps(args)
    import torch

    torch.set_num_threads(numba.get_num_threads())
    ta.manual_seed(0)
    ours = ReverseTransformer()
    path = "/tmp/bench_train_weights.npz"
    export_for_torch(ours, path)
    theirs = load_into_torch(torch_reverse_model(), path)
    opt_ours = ta.optim.Adam(ours.parameters(), lr=1e-3)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 16, size=(args.batch_size, 32)) for _ in range(args.warmup + args.steps)]

    def step_ours(x):
        y = x[:, ::-1].copy()
        logits = ours(ta.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, 16), ta.tensor(y.reshape(-1)))
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()
        return loss.item()

    def step_theirs(x):
        y = torch.from_numpy(x[:, ::-1].copy())
        logits = theirs(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), y.reshape(-1))
        opt_theirs.zero_grad()
        loss.backward()
        opt_theirs.step()
        return loss.item()

    results = {}
    for name, step in (("tinyattn", step_ours), ("torch", step_theirs)):
        losses = [step(x) for x in data[: args.warmup]]
        start = time.perf_counter()
        for x in data[args.warmup :]:
            losses.append(step(x))
        results[name] = (args.steps / (time.perf_counter() - start), losses)

    (ours_sps, ours_losses), (torch_sps, torch_losses) = results["tinyattn"], results["torch"]
    gap = max(abs(a - b) for a, b in zip(ours_losses, torch_losses))
    print(f"model: 2 pre-norm encoder layers, d_model 64, 4 heads, ff 256, T=32, vocab 16, batch {args.batch_size}, Adam")
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; torch {torch.__version__}")
    print(f"losses: first {ours_losses[0]:.4f} vs {torch_losses[0]:.4f}, last {ours_losses[-1]:.4f} vs "
          f"{torch_losses[-1]:.4f}, max |difference| over {len(ours_losses)} steps {gap:.2e}")
    print("\n| framework | steps/s | ms/step | tinyattn / torch |")
    print("|---|---:|---:|---:|")
    print(f"| tinyattn | {ours_sps:.1f} | {1000 / ours_sps:.1f} | {ours_sps / torch_sps:.2f}x |")
    print(f"| PyTorch eager | {torch_sps:.1f} | {1000 / torch_sps:.1f} | 1.00x |")


if __name__ == "__main__":
    main()
