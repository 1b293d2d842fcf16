"""tinyattn.distributed: collectives, DistributedDataParallel, the sampler and failure handling.

The MPI tests launch tests/mpi_worker.py under this environment's `mpiexec -n 2` (the MPICH wheel of the
`distributed` extra puts it next to the Python executable), with a timeout: once for everything that
should work (collectives, DDP training, wrap-time model checks, join() with uneven inputs), once for a
rank that crashes. The worker writes what each rank saw; the expected values are recomputed here, in
this plain process, which never imports mpi4py. Then tests/mpi_faults.py, once per fault (a rank that
exits, runs out of batches, skips a backward, enters no_sync() alone, calls a collective alone, or
stalls past a 2 s timeout): each job must end non-zero, with the collective, its number and the rank
at fault in the message, within seconds of the fault (printed with -s).
They are skipped, with the reason, when the extra is not installed.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import mpi_worker as w
import tinyattn as ta
import tinyattn.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
FAULTS = os.path.join(HERE, "mpi_faults.py")
WORLD = 2


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def _missing():
    if importlib.util.find_spec("mpi4py") is None:  # found without importing it (that would start MPI here)
        return "mpi4py is not installed: pip install -e '.[distributed]' (mpi4py and the MPICH wheel)"
    if _mpiexec() is None:
        return "no mpiexec beside the Python executable or on PATH: pip install -e '.[distributed]' (the MPICH wheel)"
    return None


needs_mpi = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def launch(mode, out_dir, timeout, script=WORKER, args=None):
    """mpiexec -n 2 python tests/mpi_worker.py MODE OUT_DIR (or another script with its args);
    (return code, seconds, stdout, stderr)."""
    cmd = [_mpiexec(), "-n", str(WORLD), sys.executable, script] + (args or [mode, str(out_dir)])
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} hung: still running after {timeout} s\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    return done.returncode, time.perf_counter() - start, done.stdout, done.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("mpi_main")
    rc, seconds, stdout, stderr = launch("main", out_dir, timeout=300)
    if rc != 0:
        pytest.fail(f"mpiexec -n 2 mpi_worker.py main failed (exit {rc})\nstdout:\n{stdout[-3000:]}\n"
                    f"stderr:\n{stderr[-6000:]}")
    ranks = [dict(np.load(out_dir / f"rank{r}.npz")) for r in range(WORLD)]
    return {"ranks": ranks, "stdout": stdout, "dir": out_dir}


@pytest.fixture(scope="module")
def reference():
    """One process, batch 2b, the same seed: what the 2-rank runs must reproduce."""
    ta.manual_seed(w.SEED)
    model = w.TinyLM()
    initial = {n: p.numpy().copy() for n, p in model.named_parameters()}
    opt = w.make_optimizer(model)
    data = w.dataset()
    losses = [w.train_step(model, opt, data, idx) for idx in w.batches(w.STEPS, WORLD * w.PER_RANK_BATCH)]
    return {"initial": initial, "losses": np.array(losses),
            "final": {n: p.numpy().copy() for n, p in model.named_parameters()}}


def key_bias_slice(name):
    """The key part of the attention's in_proj_bias: its gradient is zero in exact arithmetic (adding one
    vector to every key adds a constant to each query's scores, which softmax ignores), so it is rounding
    noise of either sign, and Adam turns noise into full-size steps; it cannot change any output."""
    return slice(16, 32) if name.endswith("in_proj_bias") else None


# ---- without MPI -----------------------------------------------------------------------------------------
def test_import_tinyattn_does_not_need_mpi4py():
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
            "import tinyattn, tinyattn.distributed as d\n"
            "assert not d.is_available() and not d.is_initialized()\n"
            "assert list(d.DistributedSampler(4, shuffle=False)) == [0, 1, 2, 3]\n"
            "try:\n    d.init()\nexcept ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'tinyattn[distributed]'" in done.stdout


def test_uninitialized_group_says_so():
    assert not dist.is_initialized() and dist.is_main_process()
    with pytest.raises(RuntimeError, match="not initialized.*init"):
        dist.all_reduce(ta.ones(3))
    with pytest.raises(RuntimeError, match="not initialized"):
        dist.DistributedDataParallel(w.TinyLM())
    with pytest.raises(ValueError, match="backend 'nccl'"):
        dist.init_process_group("nccl")


def test_timeout_argument_is_checked_before_mpi_starts():
    import datetime

    with pytest.raises(TypeError, match="timeout must be a datetime.timedelta or a number of seconds"):
        dist.init_process_group("gloo", timeout="30")
    with pytest.raises(ValueError, match="timeout must be positive"):
        dist.init(timeout=datetime.timedelta(seconds=0))
    with pytest.raises(ValueError, match="timeout must be positive"):
        dist.init(timeout=-1.5)
    assert dist.DEFAULT_TIMEOUT == datetime.timedelta(minutes=30)  # PyTorch's gloo default
    assert not dist.is_initialized()
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
        dist.init_process_group(timout=3)


@pytest.mark.parametrize("n, world, drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (2, 3, False)])
def test_sampler_shards_an_epoch(n, world, drop_last):
    shards = [list(dist.DistributedSampler(n, num_replicas=world, rank=r, seed=7, drop_last=drop_last))
              for r in range(world)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1  # every rank runs the same number of steps
    assert lengths == {len(dist.DistributedSampler(n, num_replicas=world, rank=0, drop_last=drop_last))}
    everything = [i for s in shards for i in s]
    if drop_last:
        assert len(everything) == n // world * world and len(set(everything)) == len(everything)
    else:
        assert set(everything) == set(range(n))  # all covered, the padding repeats some
        assert len(everything) == -(-n // world) * world
    assert all(0 <= i < n for i in everything)


def test_sampler_epochs_and_seeds():
    a = dist.DistributedSampler(100, num_replicas=2, rank=0, seed=3)
    b = dist.DistributedSampler(100, num_replicas=2, rank=0, seed=3)
    first = list(a)
    assert list(a) == first == list(b)  # the same seed and epoch: the same order, on any rank
    assert sorted(first) != first  # shuffled
    a.set_epoch(1)
    assert list(a) != first
    other = dist.DistributedSampler(100, num_replicas=2, rank=1, seed=3)
    other.set_epoch(1)
    assert sorted(list(a) + list(other)) == list(range(100))  # epoch 1 is a new permutation, still a partition
    assert list(dist.DistributedSampler(5, 2, 1, shuffle=False)) == [1, 3, 0]  # padded with the first index
    assert list(dist.DistributedSampler(range(3), 1, 0, shuffle=False)) == [0, 1, 2]  # anything with a len()
    with pytest.raises(ValueError, match="invalid rank 2"):
        dist.DistributedSampler(10, num_replicas=2, rank=2)


# ---- under mpiexec -n 2 -----------------------------------------------------------------------------------
@needs_mpi
def test_collectives_values(run):
    for rank, got in enumerate(run["ranks"]):
        assert got["world"] == WORLD
        for dtype in w.DTYPES:
            for label, shape in w.SIZES.items():
                x = [w.collective_input(r, dtype, shape) for r in range(WORLD)]
                expected = {"sum": x[0] + x[1], "max": np.maximum(x[0], x[1])}
                if dtype != "int64":
                    expected["avg"] = (x[0] + x[1]) / np.array(WORLD, dtype=dtype)
                for op, value in expected.items():
                    result = got[f"all_reduce/{op}/{dtype}/{label}"]
                    assert result.dtype == np.dtype(dtype) and result.shape == shape, (op, dtype, label)
                    np.testing.assert_allclose(result, value, rtol=1e-6, atol=0, err_msg=f"{op} {dtype} {label}")
                np.testing.assert_array_equal(got[f"broadcast/{dtype}/{label}"], x[1])
                np.testing.assert_array_equal(got[f"all_gather/{dtype}/{label}"], np.stack(x))
        # a strided view reduces into its base's memory; the other columns keep this rank's own values
        base = w.collective_input(rank, "float64", (4, 6))
        base[:, 1::2] = sum(w.collective_input(r, "float64", (4, 6))[:, 1::2] for r in range(WORLD))
        np.testing.assert_allclose(got["all_reduce/view_base"], base, rtol=1e-12)
        message = str(got["mismatch_error"])
        assert "ranks disagree" in message and "rank 0: shape (3,)" in message and "rank 1: shape (4,)" in message


@needs_mpi
def test_cuda_tensors_go_through_host_buffers(run):
    if not ta.cuda.is_available():
        pytest.skip("no GPU and no CUDA simulator")
    x = [w.collective_input(r, "float32", (7,)) for r in range(WORLD)]
    for got in run["ranks"]:
        np.testing.assert_allclose(got["cuda/all_reduce_avg"], (x[0] + x[1]) / np.float32(2), rtol=1e-6)
        np.testing.assert_array_equal(got["cuda/broadcast"], x[1])


@needs_mpi
def test_ddp_buckets_by_dtype_and_missing_gradients(run):
    x = [np.arange(5, dtype=np.float32) * (r + 1) for r in range(WORLD)]
    for got in run["ranks"]:
        assert got["mixed/buckets"] == 4  # a bucket of 8 bytes: one per parameter, never a float32/64 mix
        np.testing.assert_allclose(got["mixed/grad/a"], (x[0] + x[1]) / 2)  # d/da sum(a*x) = x, averaged
        np.testing.assert_allclose(got["mixed/grad/b"], np.full(3, (2 * 1 + 2 * 2) / 2))  # 2b (r+1), b = 1
        assert got["mixed/grad/b"].dtype == np.float64
        np.testing.assert_allclose(got["mixed/grad/only_rank1"], [1.5, 1.5])  # (0 on rank 0 + 3 on rank 1) / 2
        assert str(got["mixed/grad/unused"]) == "None"  # no rank had one: still None, as without DDP


@needs_mpi
def test_ddp_with_two_outputs_and_a_failed_save(run):
    for rank, got in enumerate(run["ranks"]):
        # loss = sum(w x) + sum((w x)^2), x = (r + 1) [1, 2, 3], w = 1: dL/dw = x + 2 x^2, averaged over the ranks
        x = [np.array([1.0, 2.0, 3.0]) * (r + 1) for r in range(WORLD)]
        np.testing.assert_allclose(got["two_outputs/grad"], sum(xi + 2 * xi**2 for xi in x) / WORLD, rtol=1e-6)
        assert got["two_outputs/calls"] == 1 and bool(got["two_outputs/no_grad_is_plain"])
        message = str(got["save_error"])
        if rank == 0:
            assert "such.npz" in message and "distributed.save" not in message, message  # tinyattn.save's own error
        else:
            assert message.startswith("RuntimeError: distributed.save: rank 0 could not write"), message


@needs_mpi
@pytest.mark.parametrize("tag", ["plain", "accumulate"])
def test_two_ranks_train_like_one_process_with_twice_the_batch(run, reference, tag):
    """20 AdamW steps (clipped) of a small Transformer: per-rank batch b on 2 ranks against batch 2b in one
    process. "plain" reduces in 7 small buckets; "accumulate" runs each rank's batch as 2 micro-batches,
    the first under no_sync, and one bucket."""
    r0, r1 = run["ranks"]
    for got in (r0, r1):
        # wrap time: rank 0's parameters and buffers, although every rank was seeded and built differently
        np.testing.assert_array_equal(got[f"{tag}/initial/embed"], reference["initial"]["embed.weight"])
        np.testing.assert_array_equal(got[f"{tag}/initial/scale"], np.ones(16, np.float32))
        np.testing.assert_allclose(got[f"{tag}/losses"], reference["losses"], rtol=2e-6)
        for name, value in reference["final"].items():
            ours, want = got[f"{tag}/final/{name}"].copy(), value.copy()
            if key_bias_slice(name):
                ours[key_bias_slice(name)] = want[key_bias_slice(name)] = 0
            np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6, err_msg=f"{tag} {name}")
        for name in reference["final"]:  # the ranks stay bitwise identical, key bias included
            np.testing.assert_array_equal(got[f"{tag}/final/{name}"], r0[f"{tag}/final/{name}"])
    buckets = r0[f"{tag}/buckets"]
    assert sum(buckets) == len(reference["final"])
    assert len(buckets) == (7 if tag == "plain" else 1)  # 0.002 MB buckets: boundaries inside the layer
    assert r0[f"{tag}/allreduce_calls"] == w.STEPS * len(buckets)  # one per bucket per step, none under no_sync


@needs_mpi
def test_no_sync_leaves_each_rank_its_own_gradient(run, reference):
    """After a backward inside no_sync, .grad is this rank's own (not averaged): the gradient of its share of
    the first batch, from the initial weights."""
    for rank, got in enumerate(run["ranks"]):
        ta.manual_seed(w.SEED)
        model = w.TinyLM()
        idx = w.batches(1, w.PER_RANK_BATCH, WORLD, rank)[0]
        w.lm_loss(model, w.dataset()[idx]).backward()
        np.testing.assert_allclose(got["accumulate/local_grad_step0"], model.head.weight.grad.numpy(), rtol=1e-5,
                                   atol=1e-7)
    assert not np.allclose(run["ranks"][0]["accumulate/local_grad_step0"],
                           run["ranks"][1]["accumulate/local_grad_step0"])


@needs_mpi
def test_checkpoint_from_rank_0_resumes_in_one_process(run):
    ck = ta.load(run["dir"] / "checkpoint.npz")
    assert ck["step"] == w.CHECKPOINT_STEP and "embed.weight" in ck["model"]  # the model's own keys
    model = w.TinyLM()
    model.load_state_dict(ck["model"])
    opt = w.make_optimizer(model)
    opt.load_state_dict(ck["optim"])
    data = w.dataset()
    losses = [w.train_step(model, opt, data, idx)
              for idx in w.batches(w.STEPS, WORLD * w.PER_RANK_BATCH, start=w.CHECKPOINT_STEP)]
    np.testing.assert_allclose(losses, run["ranks"][0]["plain/losses"][w.CHECKPOINT_STEP:], rtol=2e-6)


@needs_mpi
def test_rank_zero_prints_and_threads_are_shared(run):
    assert run["stdout"].count("print0 says hello") == 1
    cores = len(os.sched_getaffinity(0))
    want = int(os.environ["NUMBA_NUM_THREADS"]) if "NUMBA_NUM_THREADS" in os.environ else max(1, cores // WORLD)
    for got in run["ranks"]:
        assert got["numba_threads"] == want


@needs_mpi
def test_a_crash_on_one_rank_ends_the_job(tmp_path):
    rc, seconds, stdout, stderr = launch("crash", tmp_path, timeout=60)
    assert rc != 0
    assert seconds < 30
    assert "[rank 1] RuntimeError: injected failure at step 3" in stderr  # the failing rank's traceback
    assert "mpi_worker.py" in stderr and "rank 1 raised an uncaught exception" in stderr
    assert "finished all steps" not in stdout  # (how far rank 0 got before the abort is a race: not checked)


@needs_mpi
def test_char_lm_distributed_trains_like_one_process_with_the_global_batch(tmp_path, capsys):
    """mpiexec -n 2 python examples/char_lm.py --distributed --batch-size 4 against one process with --batch-size 8:
    the same evaluation losses, and the same checkpoint, written once by rank 0."""
    script = os.path.join(HERE, "..", "examples", "char_lm.py")
    tiny = ["--chars", "20000", "--context", "16", "--d-model", "16", "--heads", "2", "--layers", "1", "--ff", "32",
            "--max-steps", "12", "--eval-every", "6", "--eval-batches", "2", "--sample-chars", "10", "--no-progress"]
    rc, _, stdout, stderr = launch(None, None, timeout=180, script=script,
                                   args=["--distributed", "--batch-size", "4", "--out-dir", str(tmp_path / "two")] + tiny)
    assert rc == 0, stderr[-4000:]
    assert stdout.count("corpus:") == 1 and stdout.count("---- sample ----") == 1  # rank 0 alone prints
    assert "global batch 8 = 4 per rank x 2" in stdout

    spec = importlib.util.spec_from_file_location("char_lm", script)
    char_lm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(char_lm)
    char_lm.main(["--batch-size", "8", "--out-dir", str(tmp_path / "one")] + tiny)
    one = capsys.readouterr().out

    def losses(text):
        rows = [line.split() for line in text.splitlines() if line.startswith("step ")]
        return np.array([[float(r[r.index("train") + 1]), float(r[r.index("val") + 1])] for r in rows])

    assert losses(stdout).shape == (2, 2)
    np.testing.assert_allclose(losses(stdout), losses(one), atol=1.5e-3)  # printed with 3 decimals
    two_ck, one_ck = (ta.load(tmp_path / d / "char_lm.npz")["model"] for d in ("two", "one"))
    assert two_ck.keys() == one_ck.keys()  # the model's own keys, no "module." prefix
    for name in one_ck:
        a, b = two_ck[name].numpy().copy(), one_ck[name].numpy().copy()
        if name.endswith("in_proj_bias"):
            a[16:32] = b[16:32] = 0  # the key bias: see key_bias_slice
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


@needs_mpi
def test_wrap_time_checks_name_the_first_parameter_that_differs(run):
    """Every rank raises at wrap time (and the group stays usable: the later tests ran in the same job)."""
    for got in run["ranks"]:
        # rank 0 freezes l1.bias, rank 1 l2.bias: equal-size buckets, different layouts (summed wrongly before)
        assert str(got["wrap/other_bias"]) == (
            "RuntimeError: DistributedDataParallel: the ranks' models differ at parameter #1 (rank 1 differs from "
            "rank 0): rank 0: 'l1.bias' shape (4,), dtype float32, requires_grad=False; rank 1: 'l1.bias' shape (4,), "
            "dtype float32, requires_grad=True. Every rank must wrap the same model: the same parameters in the same "
            "order, with the same names, shapes, dtypes and requires_grad (freeze the same parameters on every rank), "
            "and the same buffers.")
        # frozen on one rank only (MPICH's "Message truncated" before)
        assert "parameter #1" in str(got["wrap/one_rank_frozen"])
        assert "rank 0: 'l1.bias' shape (4,), dtype float32, requires_grad=True" in str(got["wrap/one_rank_frozen"])
        assert "rank 1: 'l2.weight' shape (2, 4)" in str(got["wrap/shape"]) and "#2" in str(got["wrap/shape"])
        assert "parameter #0" in str(got["wrap/order"]) and "rank 1: 'l2.weight'" in str(got["wrap/order"])
        # the same frozen parameter everywhere is fine
        assert bool(got["wrap/frozen_grad_is_none"])
    np.testing.assert_array_equal(run["ranks"][0]["wrap/l1_weight_grad"], run["ranks"][1]["wrap/l1_weight_grad"])


@needs_mpi
@pytest.mark.parametrize("divide", [True, False])
def test_join_trains_ranks_with_different_batch_counts(run, divide):
    """Rank 0 has 5 batches, rank 1 has 3, inside ddp.join(): for the last 2 steps rank 1 contributes zeros.
    Both ranks end equal to one process doing SGD on (g0 + g1) / 2, then g0 / 2 (divide_by_initial_world_size),
    or g0 / 1 (the ranks still training)."""
    ta.manual_seed(w.SEED)  # any start: the wrap-time broadcast gives rank 0's (seeded SEED + 0)
    model = w.TwoLayers()
    params = dict(model.named_parameters())

    def grads(rank, step):
        for p in params.values():
            p.grad = None
        (model(ta.tensor(w.join_batch(rank, step))) ** 2).mean().backward()
        return {n: p.grad.numpy().copy() for n, p in params.items()}

    for step in range(max(w.JOIN_BATCHES)):
        active = [r for r in range(WORLD) if step < w.JOIN_BATCHES[r]]
        each = [grads(r, step) for r in active]
        divisor = WORLD if divide else len(active)
        with ta.no_grad():
            for n, p in params.items():
                p -= w.JOIN_LR * (sum(g[n] for g in each) / divisor)
    for got in run["ranks"]:
        for n, p in params.items():
            np.testing.assert_allclose(got[f"join/{divide}/{n}"], p.numpy(), rtol=1e-5, atol=1e-6, err_msg=n)
        np.testing.assert_array_equal(got["join/after"], [2.0, 2.0])  # the group is in step afterwards
    for n in params:
        np.testing.assert_array_equal(run["ranks"][0][f"join/{divide}/{n}"], run["ranks"][1][f"join/{divide}/{n}"])


@needs_mpi
def test_join_throw_on_early_termination(run):
    for got in run["ranks"]:
        assert str(got["join/throw"]) == "Detected at least one rank that exhausted inputs. Throwing across all ranks."
        np.testing.assert_array_equal(got["join/after_throw"], [2.0])


# Each fault ends the job non-zero, with a message naming the collective, its number (and DDP's iteration) and
# the rank at fault, on the ranks that can still speak. seconds: the most the job may take from the fault to its
# end (measured on 2 shared cores: about 0.6 s for the notes and mismatches, 2.0 + 0.6 s for "stall", whose
# timeout is 2 s; the limit leaves room for a loaded machine, and is far below the worker's 20 s timeout).
FAULT_CASES = {
    "exit": (["rank 1 left the job (its process exited: the end of its script or sys.exit()) after its "
              "collective #5, while rank 0 waits for it in DistributedDataParallel's gradient all-reduce "
              "(DistributedDataParallel #0, iteration 3: the backward of forward #3), collective #6"], 8),
    "destroy": (["rank 1 left the job (called destroy_process_group()) after its collective #5, while rank 0 waits "
                 "for it in DistributedDataParallel's gradient all-reduce"], 8),
    "ragged_exit": (["rank 1 left the job", "after its collective #6", "gradient all-reduce",
                     "iteration 4: the backward of forward #4), collective #7", "with ddp_model.join():"], 8),
    "ragged_collective": (["the ranks called different collectives as their collective #7: rank 0: "
                           "DistributedDataParallel's gradient all-reduce (DistributedDataParallel #0, iteration 4: "
                           "the backward of forward #4), collective #7; rank 1: all_reduce (shape (), dtype float32, "
                           "op='sum'), collective #7", "with ddp_model.join():"], 8),
    "skip_backward": (["the ranks are out of step at collective #6, the gradient all-reduce: rank 0: "
                       "DistributedDataParallel #0, iteration 3: the backward of forward #3; rank 1: "
                       "DistributedDataParallel #0, iteration 3: the backward of forward #4"], 8),
    "no_sync_alone": (["the ranks are out of step at collective #6, the gradient all-reduce: rank 0: "
                       "DistributedDataParallel #0, iteration 3: the backward of forward #4; rank 1: "
                       "DistributedDataParallel #0, iteration 3: the backward of forward #3"], 8),
    "lone_collective": (["the ranks called different collectives as their collective #7: rank 0: all_reduce "
                         "(shape (), dtype float32, op='avg'), collective #7; rank 1: DistributedDataParallel's "
                         "gradient all-reduce (DistributedDataParallel #0, iteration 4"], 8),
    "stall": (["rank 0 timed out after 2 s in DistributedDataParallel's gradient all-reduce (DistributedDataParallel "
               "#0, iteration 3: the backward of forward #3), collective #6: rank 1 did not arrive (the last "
               "collective it reached is #5"], 12),
}
# three ranks, the last one stalls: both waiting ranks report it, naming the one that did not arrive
FAULT_CASES["stall_of_3"] = (["timed out after 2 s in DistributedDataParallel's gradient all-reduce "
                              "(DistributedDataParallel #0, iteration 3: the backward of forward #3), collective #6: "
                              "rank 2 did not arrive (the last collective it reached is #5; busy outside tinyattn's "
                              "collectives, stuck, or stopped); ranks 0, 1 are waiting in it"], 12)
# the timeout's error caught (twice) and the script returns normally: the job still ends non-zero, at once
FAULT_CASES["stall_caught"] = (["caught: tinyattn.distributed: rank 0 timed out after 2 s in",
                                "caught: tinyattn.distributed: the process group is broken by an earlier failure: "
                                "tinyattn.distributed: rank 0 timed out after 2 s",
                                "rank 0 exits after a failed collective; aborting the job"], 12)
FAULT_SECONDS = {}  # mode -> seconds from the fault to the end of the job (printed at the end of the session)


@needs_mpi
@pytest.mark.parametrize("mode", list(FAULT_CASES))
def test_a_fault_ends_the_job_with_a_clear_error(mode, tmp_path):
    expected, limit = FAULT_CASES[mode]
    world, worker_mode = (3, "stall") if mode == "stall_of_3" else (WORLD, mode)
    cmd = [_mpiexec(), "-n", str(world), sys.executable, FAULTS, worker_mode, str(tmp_path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=HERE)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{mode}: the job hung (still running after 60 s)\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    end = time.time()
    logs = [(tmp_path / f"rank{r}.log").read_text() for r in range(world)]
    everything = "\n".join(logs)
    assert done.returncode != 0, f"{mode}: exit code 0\n{everything}\nstderr:\n{done.stderr}"
    faults = [float(line.split()[1]) for line in everything.splitlines() if line.startswith("FAULT ")]
    assert len(faults) == 1, everything
    seconds = end - faults[0]
    FAULT_SECONDS[mode] = seconds
    print(f"{mode}: {seconds:.2f} s from the fault to the end of the job (exit code {done.returncode})")
    for piece in expected:
        assert piece in " ".join(everything.split()), f"{mode}: {piece!r} not in the ranks' logs:\n{everything[-6000:]}"
    assert seconds < limit, f"{mode}: {seconds:.1f} s from the fault to the end of the job"
    if not mode.startswith("stall"):
        assert seconds < 20 - 5, "ended by the worker's timeout, not by the fault's own detection"
    if mode in ("ragged_collective", "skip_backward", "no_sync_alone", "lone_collective"):
        for r, log in enumerate(logs):  # both ranks see the mismatch and say so
            assert expected[0] in " ".join(log.split()), f"rank {r}:\n{log[-3000:]}"
    if mode.startswith("stall"):  # every waiting rank reports the stalled one
        for log in logs[:-1]:
            assert f"rank {world - 1} did not arrive" in log and "collective #6" in log, log[-3000:]
