"""Benchmark the fused CPU attention kernel (forward + backward).

    python benchmarks/bench_attention.py            # speed table, B=4, H=8, E=64, float32
    python benchmarks/bench_attention.py --memory   # peak-RSS increase, B=1, H=1, L=S=16384, E=64, causal
    python benchmarks/bench_attention.py --small [--threads 2]   # training shapes through F.sdpa vs torch

Speed: best (minimum) wall time of fwd+bwd over a few repeats -- the minimum, because on a shared box it is
the least disturbed by other processes -- warm-up (compilation) excluded, compared with
torch.nn.functional.scaled_dot_product_attention fwd+bwd (when torch is installed) and with a numpy composite
that materialises the (L, S) score matrix.  Memory: in a fresh process, after warm-up on small sizes, the
increase of ru_maxrss across one fwd+bwd (inputs, outputs and gradients included).
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

from tinyattn.kernels.cpu.attention import attention_backward, attention_forward

DUMMY = np.zeros((1, 1, 1), np.float32)


def _inputs(B, H, L, E, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v, do = (rng.standard_normal((B * H, L, E)).astype(dtype) for _ in range(4))
    return q, k, v, do


def run_kernel(q, k, v, do, causal):
    scale = 1.0 / np.sqrt(q.shape[-1])
    o, lse = attention_forward(q, k, v, DUMMY, False, causal, -1, scale)
    return attention_backward(q, k, v, DUMMY, False, causal, -1, scale, o, lse, do)


def run_numpy(q, k, v, do, causal):
    """Composite reference: materialised scores, softmax, and the hand-derived backward (batched matmul)."""
    scale = np.float32(1.0 / np.sqrt(q.shape[-1]))
    s = scale * (q @ k.transpose(0, 2, 1))  # (BH, L, S)
    if causal:
        L, S = s.shape[1:]
        s = np.where(np.arange(S)[None, :] > np.arange(L)[:, None], -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = p @ v
    dv = p.transpose(0, 2, 1) @ do
    dp = do @ v.transpose(0, 2, 1)
    ds = p * (dp - (do * o).sum(-1, keepdims=True))
    return scale * (ds @ k), scale * (ds.transpose(0, 2, 1) @ q), dv


def make_torch(q, k, v, do, causal, B, H):
    import torch

    def to(a):
        return torch.from_numpy(a.reshape(B, H, *a.shape[1:]))

    tq, tk, tv, tdo = to(q), to(k), to(v), to(do)

    def run():
        qq, kk, vv = (t.detach().requires_grad_() for t in (tq, tk, tv))
        o = torch.nn.functional.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
        o.backward(tdo)
        return qq.grad, kk.grad, vv.grad

    return run


def timeit(fn, repeat):
    fn()  # warm-up (compilation, caches)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def speed(args):
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    B, H, E = 4, 8, 64
    import numba

    print(f"B={B} H={H} E={E} float32, fwd+bwd best-of-N ms, numba threads={numba.get_num_threads()}, "
          f"torch threads={torch.get_num_threads() if torch else '-'}\n")
    print("| L=S | causal | tinyattn ms | torch SDPA ms | tinyattn/torch | numpy composite ms |")
    print("|---:|:---:|---:|---:|---:|---:|")
    for L in args.L:
        for causal in (False, True):
            q, k, v, do = _inputs(B, H, L, E)
            rep = max(3, int(args.repeat * (512 / L)))
            t_k = timeit(lambda: run_kernel(q, k, v, do, causal), rep)
            if torch is not None:
                t_t = timeit(make_torch(q, k, v, do, causal, B, H), rep)
                tt, ratio = f"{1e3 * t_t:.1f}", f"{t_k / t_t:.2f}"
            else:
                tt = ratio = "-"
            t_n = timeit(lambda: run_numpy(q, k, v, do, causal), max(2, rep // 3)) if L <= args.numpy_max else None
            tn = f"{1e3 * t_n:.1f}" if t_n is not None else "-"
            print(f"| {L} | {causal} | {1e3 * t_k:.1f} | {tt} | {ratio} | {tn} |", flush=True)


def rounds(args):
    """Interleaved rounds against torch (same thread count): per round, a block of fwd+bwd calls of each
    side (order alternating), the ratio of their medians; the table gives the median ratio over rounds."""
    import numba
    import torch

    torch.set_num_threads(numba.get_num_threads())
    B, H, E = 4, 8, 64
    print(f"B={B} H={H} E={E} float32 fwd+bwd, {args.rounds} interleaved rounds, threads numba="
          f"{numba.get_num_threads()} torch={torch.get_num_threads()}; median over rounds\n")
    print("| L=S | causal | tinyattn ms | torch SDPA ms | tinyattn/torch (median of ratios) | min-max ratio |")
    print("|---:|:---:|---:|---:|---:|---:|")
    for L in args.L:
        for causal in (False, True):
            q, k, v, do = _inputs(B, H, L, E)
            fk = lambda: run_kernel(q, k, v, do, causal)  # noqa: E731
            ft = make_torch(q, k, v, do, causal, B, H)
            fk(), ft()
            n = max(2, 1024 // L * 2)
            tks, tts, rs = [], [], []
            for r in range(args.rounds):
                blk = {}
                for name, f in ((("k", fk), ("t", ft)) if r % 2 == 0 else (("t", ft), ("k", fk))):
                    ts = []
                    for _ in range(n):
                        t = time.perf_counter()
                        f()
                        ts.append(time.perf_counter() - t)
                    blk[name] = float(np.median(ts))
                tks.append(blk["k"])
                tts.append(blk["t"])
                rs.append(blk["k"] / blk["t"])
            print(f"| {L} | {causal} | {1e3 * np.median(tks):.1f} | {1e3 * np.median(tts):.1f} | "
                  f"{np.median(rs):.2f} | {min(rs):.2f}-{max(rs):.2f} |", flush=True)


def _maxrss_bytes():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def memory_child(L, E):
    # warm-up on small sizes: compile/load both kernels and spin up the thread pool
    q, k, v, do = _inputs(1, 1, 256, E)
    run_kernel(q, k, v, do, True)
    q, k, v, do = _inputs(1, 1, L, E)  # inputs allocated before the baseline
    base = _maxrss_bytes()
    t = time.perf_counter()
    dq, dk, dv = run_kernel(q, k, v, do, True)
    dt = time.perf_counter() - t
    peak = _maxrss_bytes()
    inp = sum(a.nbytes for a in (q, k, v, do))
    print(f"B=1 H=1 L=S={L} E={E} float32 causal fwd+bwd: {dt:.2f} s")
    print(f"inputs (q, k, v, dout, allocated before the baseline): {inp / 2**20:.1f} MiB")
    print(f"peak RSS increase during fwd+bwd: {(peak - base) / 2**20:.1f} MiB "
          f"(an (L, S) float32 matrix would be {L * L * 4 / 2**20:.0f} MiB)")


SMALL_SHAPES = [(12, 4, 64, 32), (32, 4, 64, 32), (32, 4, 32, 16)]  # nanoGPT char recipe, bench_train gpt, reverse


def small(args):
    """The shapes training programs use, through tinyattn.nn.functional.scaled_dot_product_attention and
    torch's, q, k, v as nanoGPT makes them (split + view + transpose(1, 2) of a (B, T, 3C) projection): best
    of --repeat calls in each of --rounds interleaved rounds, forward alone and forward + backward, causal and
    not. 1 thread: thread CPU time; more: wall time."""
    import torch
    torch.set_num_threads(args.threads)
    import numba
    import tinyattn as ta
    import tinyattn.nn.functional as F
    numba.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter

    def best(f, n):
        f()
        b = float("inf")
        for _ in range(n):
            t = clock()
            f()
            b = min(b, clock() - t)
        return b * 1e6

    print(f"{args.threads} thread(s), float32, best of {args.repeat} in {max(args.rounds, 1)} interleaved rounds, "
          f"us ({'thread CPU time' if args.threads == 1 else 'wall'}); load {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)
    for B, H, T, D in SMALL_SHAPES:
        proj = rng.standard_normal((B, T, 3 * H * D)).astype(np.float32)
        g = rng.standard_normal((B, H, T, D)).astype(np.float32)

        def heads(p):
            return [x.view(B, T, H, D).transpose(1, 2).detach().requires_grad_() for x in p.split(H * D, dim=2)]

        aq, tq = heads(ta.tensor(proj)), heads(torch.tensor(proj))
        ag, tg = ta.tensor(g), torch.tensor(g)
        for causal in (True, False):
            def ours(bwd):
                o = F.scaled_dot_product_attention(*aq, is_causal=causal)
                if bwd:
                    o.backward(ag)

            def theirs(bwd):
                o = torch.nn.functional.scaled_dot_product_attention(*tq, is_causal=causal)
                if bwd:
                    o.backward(tg)

            res = {key: float("inf") for key in ("af", "tf", "ab", "tb")}
            for _ in range(max(args.rounds, 1)):
                res["af"] = min(res["af"], best(lambda: ours(False), args.repeat))
                res["tf"] = min(res["tf"], best(lambda: theirs(False), args.repeat))
                res["ab"] = min(res["ab"], best(lambda: ours(True), args.repeat))
                res["tb"] = min(res["tb"], best(lambda: theirs(True), args.repeat))
            print(f"B{B} H{H} T{T} D{D} causal={int(causal)}: fwd tinyattn {res['af']:.0f} torch {res['tf']:.0f} "
                  f"(time ratio {res['af'] / res['tf']:.2f}) | fwd+bwd tinyattn {res['ab']:.0f} torch {res['tb']:.0f} "
                  f"({res['ab'] / res['tb']:.2f})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory", action="store_true", help="peak-RSS mode (runs in a fresh process)")
    ap.add_argument("--L", type=int, nargs="+", default=[128, 512, 1024, 2048])
    ap.add_argument("--repeat", type=int, default=10, help="repeats at L=512 (scaled with 1/L)")
    ap.add_argument("--numpy-max", type=int, default=2048, help="skip the numpy composite above this L")
    ap.add_argument("--rounds", type=int, default=0, help="interleaved rounds against torch (0: speed table)")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mem-L", type=int, default=16384)
    ap.add_argument("--small", action="store_true", help="the training shapes through F.sdpa against torch")
    ap.add_argument("--threads", type=int, default=2, help="threads for --small (numba and torch)")
    args = ap.parse_args()
    if args.small:
        args.repeat = args.repeat if args.repeat != 10 else 50
        args.rounds = args.rounds or 3
        small(args)
    elif args._child:
        memory_child(args.mem_L, 64)
    elif args.memory:
        subprocess.run([sys.executable, __file__, "--_child", "--mem-L", str(args.mem_L)], check=True)
    elif args.rounds:
        rounds(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
