"""What the study tools cost while they are off: a training step and the per-op overhead, against the code before them.

    python benchmarks/bench_study_overhead.py [--base 1792702] [--pairs 300]

The hooks, autograd.grad and the profiler added a check to Function.apply (is an observer
registered?), one to every node of the backward walk (does it carry tensor hooks?), one per leaf
gradient (does the leaf have hooks?) and three to Module.__call__ (forward/backward hooks?). This
script measures what that costs when nothing is registered. It extracts the tree of commit
`--base` (before the study tools) into a temporary folder with `git archive` and starts one
worker process on that tree, one on the current tree and one on the current tree with the
profiler on. All three build the examples/reverse.py model (batch 32, Adam) from the same seed,
warm up, and then take training steps in turn, one step each per round, the order rotating from
round to round, so that a busy machine slows the three alike; each times its own step. Reported:
the median step of each, and the median over rounds of the per-round ratio (now / before), which
a slow minute of the machine does not move. Each worker also times Function.apply and backward
per op on a chain of 200 scalar multiplications (best of 200). Both trees import the same
compiled kernels (the editable install's `tinyattn.kernels`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1] + "/examples")
import numpy as np
import tinyattn as ta
import tinyattn.nn.functional as F
from reverse import ReverseTransformer
assert ta.__file__.startswith(sys.argv[1]), ta.__file__
if sys.argv[2] == "1":
    from tinyattn.profiler import profile
    profile().__enter__()
ta.manual_seed(0)
model = ReverseTransformer()
opt = ta.optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
def step():
    x = rng.integers(0, 16, size=(32, 32))
    loss = F.cross_entropy(model(ta.tensor(x)).reshape(-1, 16), ta.tensor(x[:, ::-1].copy().reshape(-1)))
    opt.zero_grad(); loss.backward(); opt.step()
def micro():
    x = ta.randn(4, requires_grad=True)
    def chain():
        h = x
        for _ in range(200):
            h = h * 1.0001
        return h.sum()
    fwd, bwd = [], []
    for _ in range(220):
        t = time.perf_counter(); y = chain(); fwd.append(time.perf_counter() - t)
        t = time.perf_counter(); y.backward(); bwd.append(time.perf_counter() - t)
    return {"apply_us": 1e6 * min(fwd[20:]) / 201, "backward_us": 1e6 * min(bwd[20:]) / 201}
for line in sys.stdin:
    command = line.strip()
    if command == "step":
        t = time.perf_counter(); step(); print(time.perf_counter() - t, flush=True)
    elif command == "micro":
        print(json.dumps(micro()), flush=True)
    else:
        break
"""


class Worker:
    def __init__(self, tree, profiled):
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, tree, "1" if profiled else "0"],
                                     env=dict(os.environ, PYTHONPATH=tree), cwd=tree, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="1792702", help="the commit before the study tools")
    p.add_argument("--pairs", type=int, default=300, help="rounds of one step each")
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as base:
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.base], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        workers = {"before": Worker(base, False), "now": Worker(ROOT, False), "now, profiling": Worker(ROOT, True)}
        names = list(workers)
        for name in names:
            for _ in range(args.warmup):
                workers[name].ask("step")
        times = {name: [] for name in names}
        for r in range(args.pairs):
            for name in names[r % 3:] + names[: r % 3]:
                times[name].append(1e3 * float(workers[name].ask("step")))
        micro = {name: json.loads(workers[name].ask("micro")) for name in names}
        for w in workers.values():
            w.close()
    print(f"{args.pairs} rounds of one training step per worker (order rotating) after {args.warmup} warm-up "
          f"steps; base {args.base}\n")
    print("| code | ms/step, median | quartiles | Function.apply µs/op | backward µs/op |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        q = statistics.quantiles(times[name], n=4)
        print(f"| {name} | {statistics.median(times[name]):.2f} | {q[0]:.2f}–{q[2]:.2f} | "
              f"{micro[name]['apply_us']:.2f} | {micro[name]['backward_us']:.2f} |")
    for name in ("now", "now, profiling"):
        ratios = [a / b - 1 for a, b in zip(times[name], times["before"])]
        q = statistics.quantiles(ratios, n=4)
        print(f"\n{name} vs before, per round: median {100 * statistics.median(ratios):+.2f} % "
              f"(quartiles {100 * q[0]:+.1f} % .. {100 * q[2]:+.1f} %)")


if __name__ == "__main__":
    main()
