"""Smoke test of an installed tinyattn (a wheel in a fresh venv), run from outside the checkout.

    python wheel_smoke.py CHECKOUT [--expect-cache-hits]

1. `import tinyattn` resolves to the installed copy, not to CHECKOUT.
2. Every .py file under CHECKOUT's tinyattn/ and kernels/ is installed (kernels/ as
   tinyattn/kernels/): a subpackage missing from the wheel fails here, whatever the reason.
3. A matmul, a softmax, a layer_norm, a backward through them and one SGD and one Adam step,
   each checked against NumPy.
4. Numba's cache works from site-packages: the kernels called write their index files next
   to the installed sources; with --expect-cache-hits (a second process) they are loaded
   from there, nothing is compiled again.

Exits non-zero, saying what failed, on any failure.
"""
import argparse
import os
import sys

import numpy as np


def fail(msg):
    print(f"wheel smoke: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check_close(name, got, want, tol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        fail(f"{name}: shape {got.shape}, expected {want.shape}")
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not err <= tol:
        fail(f"{name}: max abs error {err:.3g} > {tol:g}")
    print(f"wheel smoke: {name} ok (max abs error {err:.2g})")


def source_files(checkout):
    """Relative paths that the installed package must hold, for every .py file in the checkout."""
    want = set()
    for top, installed_as in (("tinyattn", "tinyattn"), ("kernels", os.path.join("tinyattn", "kernels"))):
        root = os.path.join(checkout, top)
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, f), root)
                    want.add(os.path.normpath(os.path.join(installed_as, rel)))
    return want


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout")
    parser.add_argument("--expect-cache-hits", action="store_true")
    args = parser.parse_args()
    checkout = os.path.realpath(args.checkout)
    if os.path.realpath(os.getcwd()).startswith(checkout + os.sep) or os.path.realpath(os.getcwd()) == checkout:
        fail(f"run me from outside the checkout {checkout}, not from {os.getcwd()}")

    import tinyattn as ta

    pkg = os.path.dirname(os.path.realpath(ta.__file__))
    site = os.path.dirname(pkg)
    if pkg.startswith(checkout + os.sep):
        fail(f"tinyattn was imported from the checkout ({pkg}), not from an installed copy")
    print(f"wheel smoke: tinyattn {ta.__version__} from {pkg}")

    missing = sorted(p for p in source_files(checkout) if not os.path.isfile(os.path.join(site, p)))
    if missing:
        fail(f"{len(missing)} source file(s) not installed: {', '.join(missing)}")
    print("wheel smoke: every source file of tinyattn/ and kernels/ is installed")

    import tinyattn.nn.functional as F
    from tinyattn.kernels.cpu import layer_norm as k_ln
    from tinyattn.kernels.cpu import matmul as k_mm
    from tinyattn.kernels.cpu import softmax as k_sm

    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((5, 7))
    b_np = rng.standard_normal((7, 3))
    a = ta.tensor(a_np, dtype=ta.float64, requires_grad=True)
    b = ta.tensor(b_np, dtype=ta.float64, requires_grad=True)

    # forward: matmul, softmax, layer_norm
    y = a @ b
    check_close("matmul", y.numpy(), a_np @ b_np, 1e-12)
    s = y.softmax(dim=-1)
    e = np.exp(a_np @ b_np - (a_np @ b_np).max(-1, keepdims=True))
    s_np = e / e.sum(-1, keepdims=True)
    check_close("softmax", s.numpy(), s_np, 1e-12)
    n = F.layer_norm(a, (7,))
    mu, var = a_np.mean(-1, keepdims=True), a_np.var(-1, keepdims=True)
    check_close("layer_norm", n.numpy(), (a_np - mu) / np.sqrt(var + 1e-5), 1e-10)

    # backward of L = sum(w * softmax(a @ b)): dS = w, dY = S * (w - sum(w * S)), dA = dY Bᵀ, dB = Aᵀ dY
    w_np = rng.standard_normal((5, 3))
    (s * ta.tensor(w_np, dtype=ta.float64)).sum().backward()
    dy = s_np * (w_np - (w_np * s_np).sum(-1, keepdims=True))
    check_close("backward dA", a.grad.numpy(), dy @ b_np.T, 1e-12)
    check_close("backward dB", b.grad.numpy(), a_np.T @ dy, 1e-12)

    # one SGD step (p - lr * g) and one Adam step (the first step moves each weight by lr * sign(g))
    lin = ta.nn.Linear(4, 2)
    w0 = lin.weight.numpy().copy()
    x = ta.tensor(rng.standard_normal((3, 4)), dtype=ta.float32)
    out = lin(x)
    (out * out).sum().backward()
    g = lin.weight.grad.numpy().copy()
    ta.optim.SGD(lin.parameters(), lr=0.1).step()
    check_close("SGD step", lin.weight.numpy(), w0 - 0.1 * g, 1e-6)
    w1 = lin.weight.numpy().copy()
    ta.optim.Adam(lin.parameters(), lr=0.01).step()
    check_close("Adam step", lin.weight.numpy(), w1 - 0.01 * g / (np.abs(g) + 1e-8), 1e-6)

    # Numba's cache, in the installed package
    dispatchers = [getattr(m, name) for m in (k_mm, k_sm, k_ln) for name in dir(m)]
    dispatchers = [d for d in dispatchers if hasattr(d, "stats") and hasattr(d, "signatures") and d.signatures]
    if not dispatchers:
        fail("no compiled Numba kernel found in tinyattn.kernels.cpu.{matmul,softmax,layer_norm}")
    index_files = [
        f for folder in ("matmul", "softmax", "layer_norm")
        for f in os.listdir(os.path.join(pkg, "kernels", "cpu", "__pycache__"))
        if f.startswith(folder + ".") and f.endswith(".nbi")
    ] if os.path.isdir(os.path.join(pkg, "kernels", "cpu", "__pycache__")) else []
    if not index_files:
        fail(f"Numba wrote no cache index next to the installed kernels ({pkg}/kernels/cpu/__pycache__)")
    hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
    misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
    print(f"wheel smoke: Numba cache: {len(index_files)} index files installed, {hits} hits, {misses} misses "
          f"over {len(dispatchers)} kernels")
    if args.expect_cache_hits and (hits == 0 or misses):
        fail(f"expected every kernel from the cache in a second run, got {hits} hits and {misses} misses")

    # tinyattn.distributed is installed and imports without its extra (this venv has no mpi4py)
    import tinyattn.distributed as dist

    if "mpi4py" in sys.modules:
        fail("importing tinyattn.distributed imported mpi4py; only init() may")
    if list(dist.DistributedSampler(5, num_replicas=2, rank=1, shuffle=False)) != [1, 3, 0]:
        fail("DistributedSampler(5, num_replicas=2, rank=1, shuffle=False) is not [1, 3, 0]")
    if not dist.is_available():
        try:
            dist.init()
            fail("distributed.init() without mpi4py did not raise")
        except ImportError as e:
            if "tinyattn[distributed]" not in str(e):
                fail(f"distributed.init() without mpi4py does not name the extra: {e}")
    print("wheel smoke: tinyattn.distributed imports without mpi4py")
    print("wheel smoke: passed")


if __name__ == "__main__":
    main()
