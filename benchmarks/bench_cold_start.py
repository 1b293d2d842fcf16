"""Cold start (issue 22, goal 7): the first training step from an empty Numba cache, then from the warm one.

    python benchmarks/bench_cold_start.py [--model reverse|gpt|both] [--runs 2] [--no-ahead]

Each run is a fresh process on a fresh, empty NUMBA_CACHE_DIR (a temporary folder), then a second fresh process
on the cache the first one filled (the warm start). --model reverse runs examples/reverse.py for two steps and
reads the "first step done at" time it prints (from the script's start, imports included). --model gpt builds
bench_train.py's gpt model and AdamW and times its first step (forward, loss, backward, optimiser step) after
the model is built. --no-ahead sets TINYATTN_COMPILE_AHEAD=0 (everything compiles in the one process).
Compile time depends on the machine's load: check it before a run (`uptime`).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

GPT_STEP = r"""
import json, os, sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numpy as np
import tinyattn as ta
import tinyattn.nn.functional as F
from bench_train import CharGPT, GPT
ta.manual_seed(0)
model = CharGPT(**GPT)
opt = ta.optim.AdamW(model.parameters(), lr=1e-3)
x = np.random.default_rng(0).integers(0, GPT["vocab"], size=(32, GPT["context"]))
built = time.perf_counter()
logits = model(ta.tensor(x))
loss = F.cross_entropy(logits.reshape(-1, GPT["vocab"]), ta.tensor(np.roll(x, -1, axis=1).reshape(-1)))
opt.zero_grad()
loss.backward()
opt.step()
done = time.perf_counter()
print(json.dumps({"first_step_s": done - built, "from_start_s": done - start}))
"""


def first_step(model, cache, env):
    """Seconds to the end of the first step in a new process on cache folder `cache`."""
    env = dict(env, NUMBA_CACHE_DIR=cache)
    if model == "gpt":
        out = subprocess.run([sys.executable, "-c", GPT_STEP, HERE], capture_output=True, text=True, env=env,
                             timeout=900, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])["first_step_s"]
    with tempfile.TemporaryDirectory() as out_dir:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "reverse.py"), "--max-steps", "2",
                              "--no-progress", "--out-dir", out_dir], capture_output=True, text=True, env=env,
                             timeout=900, check=True).stdout
    return float(re.search(r"first step done at ([0-9.]+) s", out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("reverse", "gpt", "both"), default="both")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-ahead", action="store_true", help="TINYATTN_COMPILE_AHEAD=0")
    args = parser.parse_args()
    env = dict(os.environ, TINYATTN_COMPILE_NOTICE="0")
    if args.no_ahead:
        env["TINYATTN_COMPILE_AHEAD"] = "0"
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}, load {os.getloadavg()[0]:.2f}, "
          f"compile-ahead {'off' if args.no_ahead else 'on'}")
    for model in (("reverse", "gpt") if args.model == "both" else (args.model,)):
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as cache:
                cold = first_step(model, cache, env)
                warm = first_step(model, cache, env)
            print(f"{model:8s} run {run + 1}: first step {cold:5.1f} s from an empty cache, {warm:4.1f} s warm",
                  flush=True)


if __name__ == "__main__":
    main()
