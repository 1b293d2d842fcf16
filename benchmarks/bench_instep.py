"""Each CPU kernel's time inside training steps against the same call alone and warm (issue 22).

    python benchmarks/bench_instep.py [--model gpt|reverse] [--batch-size 32] [--steps 30] [--repeats 30] [--top 25]

Every call the CPU backend makes into a kernel module (a product, attention, layer norm, GELU, an add, Adam's
update...) is timed inside `--steps` training steps of bench_train.py's model. Then each distinct call (kernel and
argument shapes) runs again `--repeats` times in a row, alone, on copies of the arguments it first had: its inputs
and its output buffer are then in cache. Rows are sorted by what the step loses against warm, per step.

The difference is mostly memory, not arithmetic: in a step a kernel reads what an earlier op wrote long ago and
writes its output to memory no cache holds (docs/benchmarks.md, thirteenth session). A kernel that calls another
wrapped one is timed once, as the outer call. Medians; the warm figure of a call that cannot run twice on the same
copies (none known) would read nan.
"""
import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train  # noqa: E402

from tinyattn.backend import backend_of  # noqa: E402


def _kernel_modules():
    """The kernel modules the CPU backend calls into (its attributes that are modules of tinyattn.kernels)."""
    be = backend_of(np.zeros(1, np.float32))
    return [m for m in vars(be).values() if type(m).__name__ == "module" and ".kernels." in m.__name__]


class Recorder:
    """Wraps the public callables of the kernel modules; records (key -> in-step times, first arguments)."""

    def __init__(self):
        self.times = defaultdict(list)
        self.first = {}
        self.depth = 0
        self.saved = []

    def install(self):
        for mod in _kernel_modules():
            for name, fn in list(vars(mod).items()):
                if name.startswith("_") or not callable(fn) or isinstance(fn, type):
                    continue
                self.saved.append((mod, name, fn))
                setattr(mod, name, self._wrap(mod.__name__.rsplit(".", 1)[-1] + "." + name, fn))

    def uninstall(self):
        for mod, name, fn in self.saved:
            setattr(mod, name, fn)
        self.saved = []

    def _wrap(self, label, fn):
        def timed(*args, **kwargs):
            if self.depth:                    # inside another wrapped call: that one is timed
                return fn(*args, **kwargs)
            key = (label,) + tuple(a.shape for a in args if isinstance(a, np.ndarray))
            if key not in self.first:         # copies before the call: it may write into its arguments
                self.first[key] = (fn, [a.copy() if isinstance(a, np.ndarray) else a for a in args], kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[key].append(time.perf_counter() - start)
                self.depth -= 1
        return timed


def warm_time(fn, args, kwargs, repeats):
    """Median of `repeats` back-to-back calls (after 3 more) on the same arguments, or nan when it fails."""
    try:
        for _ in range(3):
            fn(*args, **kwargs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*args, **kwargs)
            times.append(time.perf_counter() - start)
        return float(np.median(times))
    except Exception:  # noqa: BLE001 (reported as nan, not hidden: the row shows it)
        return float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("gpt", "reverse"), default="gpt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    setup = bench_train.setup_gpt if args.model == "gpt" else bench_train.setup_reverse
    step, _, desc = setup(None, args.batch_size, 50)
    for i in range(10):                       # compiled and warm before anything is wrapped
        step(i % 50)
    recorder = Recorder()
    recorder.install()
    try:
        start = time.perf_counter()
        for i in range(args.steps):
            step(i % 50)
        per_step = (time.perf_counter() - start) / args.steps
    finally:
        recorder.uninstall()
    rows = []
    for key, times in recorder.times.items():
        fn, call_args, kwargs = recorder.first[key]
        calls = len(times) / args.steps
        inside, alone = float(np.median(times)), warm_time(fn, call_args, kwargs, args.repeats)
        rows.append((calls * (inside - alone), key, calls, inside, alone))
    rows.sort(key=lambda r: -r[0] if r[0] == r[0] else 0.0)
    print(f"{desc}; {args.steps} steps, {per_step * 1e3:.1f} ms a step with the timing wrappers")
    print("| kernel | shapes | calls a step | in the step us | alone, warm us | step loses ms |")
    print("|---|---|---:|---:|---:|---:|")
    for loss, key, calls, inside, alone in rows[:args.top]:
        shapes = " ".join("x".join(map(str, s)) for s in key[1:4])
        print(f"| {key[0]} | {shapes} | {calls:.0f} | {inside * 1e6:.0f} | {alone * 1e6:.0f} | {loss * 1e3:+.2f} |")
    inside = sum(r[2] * r[3] for r in rows)
    alone = sum(r[2] * r[4] for r in rows if r[4] == r[4])
    print(f"all kernels: {inside * 1e3:.2f} ms a step inside, {alone * 1e3:.2f} ms alone and warm")


if __name__ == "__main__":
    main()
