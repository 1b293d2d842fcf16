"""Run by tests/test_distributed.py under `mpiexec -n 2`: one fault per launch, each must end the job.

    mpiexec -n 2 python tests/mpi_faults.py MODE

A small model trains for STEPS steps on both ranks; one rank misbehaves at step FAULT_STEP (or, for
"ragged_*", has fewer batches). The misbehaving rank prints "FAULT <time.time()>" when it does, so
the test can measure the time from the fault to the end of the job. Every mode must end the job
non-zero with a message naming the collective, its number and the rank at fault.
"""
import contextlib
import sys
import time

import numpy as np

import tinyattn as ta
import tinyattn.distributed as dist
import tinyattn.nn as nn

STEPS, FAULT_STEP = 6, 2
TIMEOUT = 20  # seconds: the faults below must end the job long before it
STALL_TIMEOUT = 2  # seconds: "stall" is the timeout's own case


def fault(note=""):
    print(f"FAULT {time.time():.6f} rank {dist.get_rank()} {note}", flush=True)


def model():
    ta.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def batch(rank, step):
    rng = np.random.default_rng((rank, step))
    return ta.tensor(rng.standard_normal((4, 4)).astype(np.float32))


def step_loss(ddp, rank, step):
    return (ddp(batch(rank, step)) ** 2).mean()


def main(mode):
    dist.init(timeout=STALL_TIMEOUT if mode == "stall" else TIMEOUT)
    rank = dist.get_rank()
    ddp = dist.DistributedDataParallel(model())
    opt = ta.optim.SGD(ddp.parameters(), lr=0.1)
    steps = STEPS - 3 if mode.startswith("ragged") and rank == 1 else STEPS
    total = ta.zeros(())
    for step in range(steps):
        opt.zero_grad()
        if mode == "exit" and rank == 1 and step == FAULT_STEP:
            fault("sys.exit()")
            sys.exit()
        if mode == "stall" and rank == 1 and step == FAULT_STEP:
            fault("sleeping")
            time.sleep(60)
        alone = mode == "no_sync_alone" and rank == 0 and step == FAULT_STEP
        with ddp.no_sync() if alone else contextlib.nullcontext():
            if alone:
                fault("no_sync alone")
            loss = step_loss(ddp, rank, step)
            if mode == "skip_backward" and rank == 1 and step == FAULT_STEP:
                fault("skipped backward")
            else:
                loss.backward()
        opt.step()
        total = total + loss.detach()
        if mode == "lone_collective" and rank == 0 and step == FAULT_STEP:
            fault("all_reduce alone")
            dist.all_reduce(loss.detach(), op="avg")  # logging on rank 0 only: a bug
        print(f"rank {rank} finished step {step}", flush=True)
    if mode == "ragged_exit" and rank == 1:
        fault("out of batches, exits")
    if mode == "ragged_collective":
        if rank == 1:
            fault("out of batches, all_reduce")
        dist.all_reduce(total, op="sum")  # the epoch's loss, for logging
    print(f"rank {rank} finished all steps", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
