"""Run by tests/test_distributed.py under `mpiexec -n 2` (and imported by it for the shared pieces).

    mpiexec -n 2 python tests/mpi_worker.py main OUT_DIR    # collectives, DDP training runs, a checkpoint,
                                                            # wrap-time model checks, join() with uneven inputs
    mpiexec -n 2 python tests/mpi_worker.py crash OUT_DIR   # rank 1 raises at step 3

Each rank writes what it saw to OUT_DIR/rank{r}.npz; the test recomputes the expected values in one
plain process (no MPI there) and compares. One launch does all of "main", because every mpiexec
launch pays Python's and Numba's start-up.
"""
import contextlib
import os
import sys

import numpy as np

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F

SEED, N_SEQ, VOCAB, CONTEXT = 0, 48, 11, 8
PER_RANK_BATCH, STEPS, CHECKPOINT_STEP = 4, 20, 10
SIZES = {"one": (1,), "odd": (7,), "big_odd": (1001,), "scalar": (), "matrix": (3, 5)}
DTYPES = ("float32", "float64", "int64")


# ---- shared with the test ---------------------------------------------------------------------------
class TinyLM(nn.Module):
    """A one-layer causal Transformer, with a buffer that the wrap-time broadcast must fix."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.pos = nn.LearnedPositionalEncoding(d_model=16, max_len=CONTEXT)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, 0.0, batch_first=True, causal=True,
                                                activation=nn.GELU(approximate="tanh"), norm_first=True)
        self.head = nn.Linear(16, VOCAB)
        self.register_buffer("scale", ta.ones(16) * scale)

    def forward(self, tokens):  # (B, T) -> (B, T, VOCAB)
        return self.head(self.layer(self.pos(self.embed(tokens)) * self.scale))


def dataset():
    """N_SEQ sequences of CONTEXT + 1 tokens with a learnable rule (each token is the previous + 1 or + 2)."""
    rng = np.random.default_rng(42)
    steps = rng.integers(1, 3, size=(N_SEQ, CONTEXT + 1))
    return (np.cumsum(steps, axis=1) + rng.integers(0, VOCAB, size=(N_SEQ, 1))) % VOCAB


def make_optimizer(model):
    params = list(model.parameters())
    return ta.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
                           {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=1e-2)


def lm_loss(model, batch):
    logits = model(ta.tensor(batch[:, :-1]))
    return F.cross_entropy(logits.reshape(-1, VOCAB), ta.tensor(batch[:, 1:].reshape(-1)))


def batches(n_steps, batch, num_replicas=1, rank=0, start=0):
    """The index batches of steps start .. n_steps - 1, from a DistributedSampler epoch after epoch."""
    from tinyattn.distributed import DistributedSampler

    sampler = DistributedSampler(N_SEQ, num_replicas=num_replicas, rank=rank, shuffle=True, seed=SEED)
    per_epoch = len(sampler) // batch
    out = []
    for step in range(start, n_steps):
        sampler.set_epoch(step // per_epoch)
        indices = list(sampler)
        k = step % per_epoch
        out.append(indices[k * batch:(k + 1) * batch])
    return out


def train_step(model, opt, data, idx, micro=1, no_sync=None):
    """One optimiser step on data[idx], in `micro` accumulated micro-batches (the first ones under no_sync
    when given). Returns this process's loss (mean over its idx)."""
    opt.zero_grad()
    parts = np.array_split(np.asarray(idx), micro)
    total = 0.0
    for i, part in enumerate(parts):
        local = no_sync is not None and i < micro - 1
        with no_sync() if local else contextlib.nullcontext():  # forward and backward inside, as in PyTorch
            loss = lm_loss(model, data[part]) * (1.0 / micro)
            loss.backward()
        total += loss.item()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return total


def collective_input(rank, dtype, shape):
    """Rank-specific values: distinct per rank, element and dtype."""
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "int64":
        values = (np.arange(n, dtype=np.int64) * (rank + 3) - 7 * rank) * 1_000_003  # beyond float32's exact range
    else:
        values = np.random.default_rng((rank, n)).standard_normal(n).astype(dtype) * 10 ** (rank + 1)
    return values.reshape(shape)


class Mixed(nn.Module):
    """float32 and float64 parameters, one used only on rank 1, one never used."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(ta.ones(5))
        self.b = nn.Parameter(ta.ones(3, dtype=ta.float64))
        self.only_rank1 = nn.Parameter(ta.ones(2))
        self.unused = nn.Parameter(ta.ones(4))

    def forward(self, x, rank):
        y = (self.a * x).sum() + (self.b * self.b).sum() * (rank + 1.0)
        if rank == 1:
            y = y + (self.only_rank1 * 3.0).sum()
        return y


# ---- the MPI side -------------------------------------------------------------------------------------
def run_collectives(dist, rank, world, out):
    for dtype in DTYPES:
        for label, shape in SIZES.items():
            x = collective_input(rank, dtype, shape)
            ops = ("sum", "avg", "max") if dtype != "int64" else ("sum", "max")
            for op in ops:
                t = ta.tensor(x.copy())
                version, memory = t._version, t.numpy()
                dist.all_reduce(t, op=op)
                assert t._version == version + 1 and np.shares_memory(memory, t.numpy()), "all_reduce not in place"
                out[f"all_reduce/{op}/{dtype}/{label}"] = t.numpy()
            t = ta.tensor(x.copy())
            dist.broadcast(t, src=1)
            out[f"broadcast/{dtype}/{label}"] = t.numpy()
            gathered = [ta.zeros(*shape, dtype=getattr(ta, dtype)) for _ in range(world)]
            dist.all_gather(gathered, ta.tensor(x.copy()))
            out[f"all_gather/{dtype}/{label}"] = np.stack([g.numpy() for g in gathered])
    # a non-contiguous view: the result lands in the base tensor's memory
    base = ta.tensor(collective_input(rank, "float64", (4, 6)))
    view = base[:, 1::2]
    dist.all_reduce(view, op="sum")
    out["all_reduce/view_base"] = base.numpy()
    # ranks that disagree get a ValueError on every rank, not a hang
    try:
        dist.all_reduce(ta.zeros(3 + rank))
    except ValueError as e:
        out["mismatch_error"] = np.array(str(e))
    if ta.cuda.is_available():  # the host-buffer path (under Numba's CUDA simulator in CI)
        t = ta.tensor(collective_input(rank, "float32", (7,)), device="cuda")
        dist.all_reduce(t, op="avg")
        out["cuda/all_reduce_avg"] = t.numpy()
        t = ta.tensor(collective_input(rank, "float32", (7,)), device="cuda")
        dist.broadcast(t, src=1)
        out["cuda/broadcast"] = t.numpy()


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(ta.ones(3))

    def forward(self, x):
        h = self.w * x
        return h, (h * h).sum()


def run_mixed_ddp(dist, rank, out):
    model = Mixed()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=8 / 2**20)  # 8 bytes: one bucket per parameter
    out["mixed/buckets"] = np.array(len(ddp.bucket_names))
    ddp(ta.tensor(np.arange(5, dtype=np.float32) * (rank + 1)), rank).backward()
    for name, p in model.named_parameters():
        out[f"mixed/grad/{name}"] = p.grad.numpy() if p.grad is not None else np.array("None")
    # a module with two outputs, both in the loss: one backward through both, one all-reduce
    two = dist.DistributedDataParallel(TwoOutputs())
    h, s = two(ta.tensor([1.0, 2.0, 3.0]) * (rank + 1))
    (h.sum() + s).backward()
    out["two_outputs/grad"] = two.module.w.grad.numpy()
    out["two_outputs/calls"] = np.array(two.comm_stats["allreduce_calls"])
    with ta.no_grad():  # no graph, nothing to sync: the module's own output
        out["two_outputs/no_grad_is_plain"] = np.array(two(ta.ones(3))[0].grad_fn is None)
    # a checkpoint rank 0 cannot write: an error on every rank, not a hang
    try:
        dist.save({"x": ta.ones(2)}, os.path.join(os.devnull, "no", "such.npz"))
    except Exception as e:  # noqa: BLE001
        out["save_error"] = np.array(f"{type(e).__name__}: {e}")


class TwoLayers(nn.Module):
    """For the wrap-time checks and join(): two small Linear layers."""

    def __init__(self, out_features=1):
        super().__init__()
        self.l1 = nn.Linear(3, 4)
        self.l2 = nn.Linear(4, out_features)

    def forward(self, x):
        return self.l2(self.l1(x).tanh())


JOIN_BATCHES = (5, 3)  # rank 0 has 5 batches, rank 1 has 3
JOIN_LR = 0.1


def join_batch(rank, step):
    return np.random.default_rng((rank, step, 7)).standard_normal((4, 3)).astype(np.float32)


def run_wrap_checks(dist, rank, out):
    """Models that differ between the ranks: a RuntimeError on every rank at wrap time, naming the first
    parameter that differs; the group stays usable (nothing was sent but the signatures)."""
    cases = {
        "other_bias": lambda m: (m.l1 if rank == 0 else m.l2).bias.requires_grad_(False),  # equal-size buckets
        "one_rank_frozen": lambda m: m.l1.bias.requires_grad_(False) if rank == 1 else None,
        "shape": None,
        "order": None,
    }
    for name, change in cases.items():
        ta.manual_seed(SEED)
        model = TwoLayers(out_features=2 if name == "shape" and rank == 1 else 1)
        if name == "order" and rank == 1:  # the same parameters, registered in another order
            model = nn.Module()
            model.l2, model.l1 = nn.Linear(4, 1), nn.Linear(3, 4)
        if change is not None:
            change(model)
        try:
            dist.DistributedDataParallel(model)
            out[f"wrap/{name}"] = np.array("no error")
        except RuntimeError as e:
            out[f"wrap/{name}"] = np.array(f"{type(e).__name__}: {e}")
    # the same frozen parameter on every rank is fine: it gets no gradient, the others are averaged
    model = TwoLayers()
    model.l1.bias.requires_grad_(False)
    ddp = dist.DistributedDataParallel(model)
    ddp(ta.tensor(join_batch(rank, 0))).sum().backward()
    out["wrap/frozen_grad_is_none"] = np.array(model.l1.bias.grad is None)
    out["wrap/l1_weight_grad"] = model.l1.weight.grad.numpy().copy()


def run_join(dist, rank, out):
    """Uneven inputs under ddp.join(): rank 1 runs out of batches after 3 steps; the job ends with both
    ranks equal to one process that averages rank 0's gradients with rank 1's zeros."""
    for divide in (True, False):
        ta.manual_seed(SEED + rank)  # different: the wrap-time broadcast makes them equal
        model = TwoLayers()
        ddp = dist.DistributedDataParallel(model)
        opt = ta.optim.SGD(ddp.parameters(), lr=JOIN_LR)
        join = (ddp.join(divide_by_initial_world_size=True) if divide  # and PyTorch's generic spelling:
                else dist.Join([ddp], divide_by_initial_world_size=False))
        with join:
            for step in range(JOIN_BATCHES[rank]):
                opt.zero_grad()
                (ddp(ta.tensor(join_batch(rank, step))) ** 2).mean().backward()
                opt.step()
        for name, p in model.named_parameters():
            out[f"join/{divide}/{name}"] = p.numpy().copy()
    t = ta.ones(2)
    dist.all_reduce(t)  # the group is in step after join()
    out["join/after"] = t.numpy()
    # throw_on_early_termination: every rank raises as soon as one runs out
    ddp = dist.DistributedDataParallel(TwoLayers())
    try:
        with ddp.join(throw_on_early_termination=True):
            for step in range(JOIN_BATCHES[rank]):
                (ddp(ta.tensor(join_batch(rank, step))) ** 2).mean().backward()
        out["join/throw"] = np.array("no error")
    except RuntimeError as e:
        out["join/throw"] = np.array(str(e))
    t = ta.ones(1)
    dist.all_reduce(t)
    out["join/after_throw"] = t.numpy()


def run_training(dist, rank, world, out, tag, micro, bucket_cap_mb, checkpoint=None):
    ta.manual_seed(SEED + 1000 * rank)  # different on each rank: the wrap-time broadcast makes them equal
    model = TinyLM(scale=1.0 + rank)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
    out[f"{tag}/initial/embed"] = model.embed.weight.numpy().copy()
    out[f"{tag}/initial/scale"] = model.scale.numpy().copy()
    out[f"{tag}/buckets"] = np.array([len(b) for b in ddp.bucket_names])
    opt = make_optimizer(ddp)
    data = dataset()
    losses = []
    for step, idx in enumerate(batches(STEPS, PER_RANK_BATCH, world, rank)):
        if step == 0 and micro > 1:  # a backward inside no_sync (its forward outside) leaves this rank's own grads
            loss = lm_loss(ddp, data[idx])
            with ddp.no_sync():
                loss.backward()
            out[f"{tag}/local_grad_step0"] = model.head.weight.grad.numpy().copy()
        if checkpoint is not None and step == CHECKPOINT_STEP:
            dist.save({"model": ddp.module.state_dict(), "optim": opt.state_dict(), "step": step}, checkpoint)
        loss = ta.tensor(train_step(ddp, opt, data, idx, micro, ddp.no_sync if micro > 1 else None),
                         dtype=ta.float64)
        dist.all_reduce(loss, op="avg")
        losses.append(loss.item())
    out[f"{tag}/losses"] = np.array(losses)
    out[f"{tag}/allreduce_calls"] = np.array(ddp.comm_stats["allreduce_calls"])
    for name, p in model.named_parameters():
        out[f"{tag}/final/{name}"] = p.numpy().copy()


def main_mode(out_dir):
    import tinyattn.distributed as dist

    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {"world": np.array(world), "numba_threads": np.array(__import__("numba").get_num_threads())}
    run_collectives(dist, rank, world, out)
    run_mixed_ddp(dist, rank, out)
    run_wrap_checks(dist, rank, out)
    run_join(dist, rank, out)
    run_training(dist, rank, world, out, "plain", micro=1, bucket_cap_mb=0.002,
                 checkpoint=os.path.join(out_dir, "checkpoint.npz"))
    run_training(dist, rank, world, out, "accumulate", micro=2, bucket_cap_mb=25)
    dist.print0("print0 says hello")
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **out)
    dist.barrier()


def crash_mode(out_dir):
    import tinyattn.distributed as dist

    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    ta.manual_seed(SEED)
    ddp = dist.DistributedDataParallel(TinyLM())
    opt = make_optimizer(ddp)
    data = dataset()
    for step, idx in enumerate(batches(STEPS, PER_RANK_BATCH, world, rank)):
        if rank == 1 and step == 3:
            raise RuntimeError("injected failure at step 3")
        train_step(ddp, opt, data, idx)
        print(f"rank {rank} finished step {step}", flush=True)
    print(f"rank {rank} finished all steps", flush=True)


if __name__ == "__main__":
    {"main": main_mode, "crash": crash_mode}[sys.argv[1]](sys.argv[2])
