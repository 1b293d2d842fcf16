"""Per-op framework cost, tinyattn against PyTorch eager (issue 14, goal 3): the chain `h = (h*0.5 + w).tanh()`
on 4x4 float32 tensors, forward + backward.

    python benchmarks/bench_overhead.py [--rounds 21] [--links 50] [--reps 10]

At this size the arithmetic is nothing: what is timed is each framework's own cost per op (argument
checks, the graph node, the result tensor, the backward walk). One chain is `links` links of three ops
(mul, add, tanh) and a final sum, then backward(): 3*links + 1 ops. Each round times `reps` chains of
each framework back to back (which goes first alternates), so a busy machine slows both alike; the
figures are the medians over rounds of the per-op time of each and of the per-round ratio
tinyattn / PyTorch (which a slow minute of the machine does not move). The same is done for the forward
alone (no graph walk) and for backward() alone. Without torch it prints tinyattn's figures only.
To compare two versions of tinyattn, run this script in each tree in turn (PyTorch is the common yardstick).
"""
import argparse
import platform
import statistics
import time

import numpy as np

import tinyattn as ta


def chains(lib, links):
    """(forward, backward) closures for one chain of `lib` (tinyattn or torch)."""
    rng = np.random.default_rng(0)
    y = lib.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    w = lib.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)

    def forward():
        h = y
        for _ in range(links):
            h = (h * 0.5 + w).tanh()
        return h.sum()

    def both():
        forward().backward()

    return forward, both


def per_op(fn, reps, ops):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps / ops * 1e6


def backward_per_op(forward, reps, ops):
    total = 0.0
    for _ in range(reps):
        root = forward()
        t0 = time.perf_counter()
        root.backward()
        total += time.perf_counter() - t0
    return total / reps / ops * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--links", type=int, default=50)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args(argv)
    ops = 3 * args.links + 1
    libs = {"tinyattn": ta}
    try:
        import torch

        torch.set_num_threads(1)
        libs["torch"] = torch
    except ImportError:
        torch = None
    fns = {name: chains(lib, args.links) for name, lib in libs.items()}
    for fwd, both in fns.values():  # warm-up
        for _ in range(3):
            both()
    kinds = ("fwd+bwd", "forward", "backward")
    times = {(name, kind): [] for name in libs for kind in kinds}
    for r in range(args.rounds):
        names = list(libs) if r % 2 == 0 else list(libs)[::-1]
        for name in names:
            fwd, both = fns[name]
            times[name, "fwd+bwd"].append(per_op(both, args.reps, ops))
            times[name, "forward"].append(per_op(fwd, args.reps, ops))
            times[name, "backward"].append(backward_per_op(fwd, args.reps, ops))
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}"
          + (f", torch {torch.__version__} (1 thread)" if torch else ", no torch") + f"; tinyattn from {ta.__file__}")
    print(f"chain (h*0.5 + w).tanh() x {args.links} + sum, 4x4 float32: {ops} ops; {args.rounds} rounds of "
          f"{args.reps} chains each, interleaved; medians\n")
    print("| part | tinyattn µs/op | PyTorch µs/op | tinyattn / PyTorch (median of per-round ratios) |")
    print("|---|---:|---:|---:|")
    for kind in kinds:
        ours = times["tinyattn", kind]
        row = f"| {kind} | {statistics.median(ours):.2f} |"
        if torch is not None:
            theirs = times["torch", kind]
            ratio = statistics.median(a / b for a, b in zip(ours, theirs))
            row += f" {statistics.median(theirs):.2f} | {ratio:.2f}x |"
        else:
            row += " — | — |"
        print(row)


if __name__ == "__main__":
    main()
