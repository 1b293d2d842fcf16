"""Run public PyTorch programs unmodified on PyTorch and on tinyattn (through tinyattn.as_torch), side by side.

    benchmarks/programs/fetch.sh                       # clones nanoGPT and minGPT at pinned commits
    python benchmarks/programs/run_programs.py         # all programs; --only nanogpt adder chargpt

For each program and framework: a fresh copy of the program in a temporary folder, its README's command (plus
the overrides below), the results it prints (losses, the adder's score) and its time per iteration (the
median of what the program itself prints, the first 10 iterations left out). The same seed is used on both
frameworks, but their random streams differ (initial weights, batches), so the losses agree to run-to-run
noise, not digit for digit. Torch runs first, then tinyattn, in separate processes.

nanoGPT's data: data/shakespeare_char/prepare.py downloads the text when input.txt is missing; here a local
text of 300 KB (the Python standard library's sources) is written as input.txt and encoded the way
prepare.py does (train.bin, val.bin, meta.pkl), so that no network is needed.
"""
import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from programs import PROGRAMS, plain_text, write_char_dataset  # noqa: E402

NANOGPT_RECIPE = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                  "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                  "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]


def _run(args, cwd, tinyattn, timeout, pythonpath=None):
    prefix = [sys.executable, "-m", "tinyattn.as_torch"] if tinyattn else [sys.executable]
    # PYTHONPATH: minGPT's README installs its package (pip install -e .); nanoGPT's is ignored
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(pythonpath or cwd)}
    start = time.perf_counter()
    result = subprocess.run(prefix + args, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} on {'tinyattn' if tinyattn else 'torch'} failed:\n"
                           f"{result.stderr[-4000:]}")
    return result.stdout, wall


def _median_ms(values):
    return statistics.median(values[10:] if len(values) > 20 else values)


def nanogpt(work, tinyattn, iters):
    write_char_dataset(work / "data" / "shakespeare_char", plain_text(300_000))
    recipe = [a if not a.startswith(("--max_iters", "--lr_decay_iters")) else f"{a.split('=')[0]}={iters}"
              for a in NANOGPT_RECIPE]
    out, wall = _run(["train.py", *recipe], work, tinyattn, timeout=3600)
    times = [float(t) for t in re.findall(r"iter \d+: loss [\d.]+, time ([\d.]+)ms", out)]
    evals = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", out)
    stubs = work / "stubs"  # sample.py imports tiktoken, which it uses only when meta.pkl is missing
    stubs.mkdir()
    (stubs / "tiktoken.py").write_text("def get_encoding(name):\n    raise RuntimeError('stub: no tiktoken')\n")
    sample, _ = _run(["sample.py", "--out_dir=out-shakespeare-char", "--device=cpu", "--compile=False",
                      "--num_samples=1", "--max_new_tokens=200"], work, tinyattn, timeout=600, pythonpath=stubs)
    return {"ms/iter": _median_ms(times), "evals": evals, "wall s": wall, "sample": sample.strip()[-300:]}


def adder(work, tinyattn, iters):
    out, wall = _run(["projects/adder/adder.py", f"--trainer.max_iters={iters}",
                      f"--system.work_dir='{work / 'out'}'"], work, tinyattn, timeout=3600)
    times = [float(t) for t in re.findall(r"iter_dt ([\d.]+)ms", out)]
    scores = re.findall(r"(train|test) final score: (\d+)/(\d+) = ([\d.]+)% correct", out)
    return {"ms/iter (every 10th)": _median_ms(times), "scores": scores, "wall s": wall}


def chargpt(work, tinyattn, iters):
    (work / "input.txt").write_text(plain_text(300_000))
    out, wall = _run(["projects/chargpt/chargpt.py", f"--trainer.max_iters={iters}",
                      f"--system.work_dir='{work / 'out'}'"], work, tinyattn, timeout=3600)
    times = [float(t) for t in re.findall(r"iter_dt ([\d.]+)ms", out)]
    losses = re.findall(r"iter (\d+): train loss ([\d.]+)", out)
    return {"ms/iter (every 10th)": _median_ms(times), "losses": losses[-3:], "wall s": wall}


PROGRAMS_TO_RUN = {"nanogpt": ("nanoGPT", nanogpt, 2000), "adder": ("minGPT", adder, 2001),
                   "chargpt": ("minGPT", chargpt, 201)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(PROGRAMS_TO_RUN), default=sorted(PROGRAMS_TO_RUN))
    parser.add_argument("--iters", type=int, help="override each program's iteration count")
    parser.add_argument("--frameworks", nargs="*", choices=["torch", "tinyattn"], default=["torch", "tinyattn"])
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    for name in args.only:
        repo, fn, iters = PROGRAMS_TO_RUN[name]
        if not (PROGRAMS / repo).exists():
            sys.exit(f"no copy of {repo} under {PROGRAMS}: run benchmarks/programs/fetch.sh")
        for framework in args.frameworks:
            with tempfile.TemporaryDirectory() as tmp:
                work = pathlib.Path(tmp) / repo
                shutil.copytree(PROGRAMS / repo, work, ignore=shutil.ignore_patterns(".git", "assets"))
                result = fn(work, framework == "tinyattn", args.iters or iters)
            print(f"{name} on {framework}: {result}", flush=True)


if __name__ == "__main__":
    main()
