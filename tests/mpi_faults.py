"""Run by tests/test_distributed.py under `mpiexec -n 2`: one fault per launch, each must end the job.

    mpiexec -n 2 python tests/mpi_faults.py MODE OUT_DIR

    mpiexec -n 3 python tests/mpi_faults.py stall OUT_DIR     # rank 2 stalls: ranks 0 and 1 both report it

A small model trains for STEPS steps on both ranks; one rank misbehaves at step FAULT_STEP (or, for
"ragged_*", has fewer batches). The misbehaving rank prints "FAULT <time.time()>" when it does, so
the test can measure the time from the fault to the end of the job. Each rank writes its stdout and
stderr to OUT_DIR/rank{r}.log itself: an MPI_Abort can cut off what mpiexec is still forwarding.
Every mode must end the job non-zero with a message naming the collective, its number and the rank
at fault ("stall_caught": rank 0 catches the timeout's error and returns; the job still fails).
"""
import contextlib
import os
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


def main(mode, out_dir):
    dist.init(timeout=STALL_TIMEOUT if mode.startswith("stall") else TIMEOUT)
    rank = dist.get_rank()
    log = os.open(os.path.join(out_dir, f"rank{rank}.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    last = dist.get_world_size() - 1  # the rank that exits, stalls, skips a backward or runs out of batches
    ddp = dist.DistributedDataParallel(model())
    opt = ta.optim.SGD(ddp.parameters(), lr=0.1)
    steps = STEPS - 3 if mode.startswith("ragged") and rank == last else STEPS
    total = ta.zeros(())
    for step in range(steps):
        opt.zero_grad()
        if mode == "exit" and rank == last and step == FAULT_STEP:
            fault("sys.exit()")
            sys.exit()
        if mode == "destroy" and rank == last and step == FAULT_STEP:
            fault("destroy_process_group()")
            dist.destroy_process_group()
            time.sleep(60)  # busy with something else: the others must not wait for it
        if mode.startswith("stall") and rank == last and step == FAULT_STEP:
            fault("sleeping")
            time.sleep(60)
        if mode == "stall_caught" and rank == 0 and step == FAULT_STEP:
            # the timeout caught and ignored: the group is broken, and the job still ends non-zero at exit
            for attempt in range(2):
                try:
                    step_loss(ddp, rank, step).backward()
                except dist.DistBackendError as e:
                    print(f"caught: {e}", flush=True)
            return
        alone = mode == "no_sync_alone" and rank == 0 and step == FAULT_STEP
        with ddp.no_sync() if alone else contextlib.nullcontext():
            if alone:
                fault("no_sync alone")
            loss = step_loss(ddp, rank, step)
            if mode == "skip_backward" and rank == last and step == FAULT_STEP:
                fault("skipped backward")
            else:
                loss.backward()
        opt.step()
        total = total + loss.detach()
        if mode == "lone_collective" and rank == 0 and step == FAULT_STEP:
            fault("all_reduce alone")
            dist.all_reduce(loss.detach(), op="avg")  # logging on rank 0 only: a bug
        print(f"rank {rank} finished step {step}", flush=True)
    if mode == "ragged_exit" and rank == last:
        fault("out of batches, exits")
    if mode == "ragged_collective":
        if rank == last:
            fault("out of batches, all_reduce")
        dist.all_reduce(total, op="sum")  # the epoch's loss, for logging
    print(f"rank {rank} finished all steps", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
