"""Helpers for running PyTorch programs written by others on tinyattn (tests/test_programs.py).

The programs are not part of the repo. A copy is looked for under $TINYATTN_PROGRAMS, else
~/.cache/tinyattn/programs (`benchmarks/programs/fetch.sh` clones the pinned commits there); tests of real
files skip without one, and tests/program_tiny_gpt.py (our own program in PyTorch's idioms) runs always.
"""
import contextlib
import importlib.util
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np

import tinyattn.as_torch as as_torch

PROGRAMS = pathlib.Path(os.environ.get("TINYATTN_PROGRAMS", pathlib.Path.home() / ".cache/tinyattn/programs"))


def program_dir(name, needs="README.md"):
    """The folder of a fetched program, or None."""
    folder = PROGRAMS / name
    return folder if (folder / needs).exists() else None


@contextlib.contextmanager
def torch_is_tinyattn():
    """Inside: `import torch` gives tinyattn (real torch modules, if imported, are set aside and restored)."""
    real = {n: m for n, m in sys.modules.items() if n == "torch" or n.startswith("torch.")}
    for name in real:
        del sys.modules[name]
    try:
        yield as_torch.install(quiet=True)
    finally:
        as_torch.uninstall()
        sys.modules.update(real)


def load_file(path, module_name, tinyattn):
    """Import the file at `path` as `module_name`, its `import torch` bound to tinyattn or to PyTorch.
    The module keeps the torch it imported, so both versions of one file can live side by side."""
    folder = str(pathlib.Path(path).parent)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        with torch_is_tinyattn() if tinyattn else contextlib.nullcontext():
            spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(folder)


def run_script(args, cwd, timeout=600, tinyattn=True, pythonpath=None):
    """Run `python [-m tinyattn.as_torch] ARGS` in cwd with the CUDA simulator off; the CompletedProcess.
    `pythonpath`: a folder importable as if pip-installed (minGPT's README installs its package)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONUNBUFFERED": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    prefix = [sys.executable, "-m", "tinyattn.as_torch"] if tinyattn else [sys.executable]
    return subprocess.run(prefix + list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def plain_text(n_chars=300_000):
    """A few hundred KB of plain English-ish text that every machine has: the standard library's sources."""
    import sysconfig
    parts, total = [], 0
    for path in sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        parts.append(text)
        total += len(text)
        if total >= n_chars:
            break
    text = "".join(parts)
    return "".join(c for c in text if c == "\n" or " " <= c <= "~")[:n_chars]


def write_char_dataset(folder, text):
    """What nanoGPT's data/shakespeare_char/prepare.py writes for `text` (train.bin and val.bin as uint16
    character ids, 90/10, and meta.pkl), without its download (prepare.py imports `requests` to fetch a
    missing input.txt). Returns the vocabulary size."""
    folder = pathlib.Path(folder)
    (folder / "input.txt").write_text(text)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    cut = int(len(ids) * 0.9)
    ids[:cut].tofile(folder / "train.bin")
    ids[cut:].tofile(folder / "val.bin")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return len(chars)
