"""The thread-count governor (tinyattn/contention.py): the arithmetic on /proc/stat samples, the decisions it takes
from them, a user's own count kept as the limit, and the switch in runtime.configure."""
import os
import threading

import pytest

from tinyattn import contention, runtime


def test_fair_threads_leaves_the_cores_others_hold():
    assert contention.fair_threads(2, 2, 0.0) == 2
    assert contention.fair_threads(2, 2, 0.4) == 2      # background noise
    assert contention.fair_threads(2, 2, 1.0) == 1
    assert contention.fair_threads(2, 2, 3.0) == 1      # never below one
    assert contention.fair_threads(16, 16, 2.2) == 14
    assert contention.fair_threads(4, 16, 2.0) == 4     # never above the user's count
    assert contention.fair_threads(8, 2, 0.0) == 8      # the user's count, even above the cores, when they are free


def test_others_cores_subtracts_this_process_and_counts_steal():
    hz = contention._HZ
    before = (10.0, 1000, 0, 5.0)
    # 2 s: our cores were busy 3 core-seconds, 0.2 of them stolen by the host; this process used 1.5 s of CPU
    after = (12.0, 1000 + int(2.8 * hz), int(0.2 * hz), 6.5)
    assert contention.others_cores(before, after) == pytest.approx((3.0 - 1.5) / 2, abs=0.02)
    assert contention.others_cores(before, (12.0, 1000, 0, 7.0)) == 0.0  # never negative
    assert contention.others_cores(before, before) == 0.0


def test_read_sample_sums_the_cores_asked_for(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  30 0 30 100 0 0 0 5 0 0\n"
                    "cpu0 10 1 10 50 7 1 1 2 0 0\n"
                    "cpu1 20 0 20 50 0 0 0 3 0 0\n"
                    "intr 12345\n")
    t, busy, steal, ours = contention.read_sample([1], str(stat))
    assert (busy, steal) == (40, 3)
    assert contention.read_sample([0, 1], str(stat))[1:3] == (23 + 40, 5)
    assert ours > 0 and t > 0
    assert contention.read_sample([0], str(tmp_path / "missing")) is None
    if os.path.exists("/proc/stat"):
        assert contention.read_sample(sorted(os.sched_getaffinity(0)))[1] > 0


def test_compile_ahead_children_count_as_this_processs_own_cpu(tmp_path, monkeypatch):
    """A cold start's compile-ahead children compile for this process: their CPU time is its own, not other
    processes' (else the governor would lower the thread count for them, and the first step would run, and
    compile, other kernels than the warm steps: elementwise.add only runs on 2 threads)."""
    from tinyattn import compile_ahead

    stat = tmp_path / "stat"
    stat.write_text("cpu0 10 0 10 50 0 0 0 0 0 0\n")
    monkeypatch.setattr(contention, "processes_cpu", lambda pids: 100.0 * len(pids))
    monkeypatch.setattr(contention, "helper_pids", lambda: [12345])
    assert contention.read_sample([0], str(stat))[3] >= 100.0
    monkeypatch.undo()
    if not os.path.exists("/proc/self/stat"):
        return
    ahead = compile_ahead.AHEAD
    monkeypatch.setattr(ahead, "children", {})
    assert compile_ahead._running_children() == []
    assert ahead.start("spin", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass")
    child = ahead.children["spin"]
    while child.progress < 2 and child.proc.poll() is None:  # (its heartbeat: CPU time growing)
        threading.Event().wait(0.02)
    assert compile_ahead._running_children() == [child.proc.pid]
    assert contention.processes_cpu([child.proc.pid]) > 0.0
    assert child.wait() == "done"
    assert compile_ahead._running_children() == []  # reaped: its time is in os.times' children's


class _Threads:
    def __init__(self, n):
        self.n = n

    def get(self):
        return self.n

    def set(self, n):
        self.n = n


def _governor(n, cores=2):
    threads = _Threads(n)
    gov = contention.ThreadGovernor(enabled=True)
    gov.bind(threads.get, threads.set)
    gov.cores = list(range(cores))
    return gov, threads


def test_governor_lowers_then_restores_the_users_count():
    gov, threads = _governor(2)
    assert gov.apply(0.1) == 2 and threads.n == 2
    assert gov.apply(1.0) == 1 and threads.n == 1    # one core busy elsewhere
    assert gov.apply(0.9) == 1
    assert gov.apply(0.0) == 2 and threads.n == 2    # it let go
    gov, threads = _governor(8, cores=8)
    assert gov.apply(3.0) == 5 and gov.apply(1.0) == 7 and gov.apply(0.0) == 8


def test_governor_takes_a_count_set_meanwhile_as_the_limit():
    gov, threads = _governor(2, cores=4)
    assert gov.apply(3.0) == 1
    threads.set(3)                                   # the user, while lowered
    assert gov.apply(0.0) == 3                       # not back to 2
    assert gov.apply(2.0) == 2 and gov.apply(0.0) == 3


def test_poll_governs_only_the_first_thread_and_release_restores(monkeypatch):
    gov, threads = _governor(2)
    samples = iter([(0.0, 0, 0, 0.0), (1.0, contention._HZ, 0, 0.0)])  # then: one core busy elsewhere
    monkeypatch.setattr(contention, "read_sample", lambda cores: next(samples))
    gov.poll()                                       # the first look: nothing to compare with yet
    assert threads.n == 2
    other = threading.Thread(target=gov.poll)        # due again, but not the governed thread
    gov.due = 0.0
    other.start()
    other.join()
    assert threads.n == 2
    gov.due = 0.0
    gov.poll()
    assert threads.n == 1
    gov.release()
    assert threads.n == 2 and not gov.enabled
    gov.poll()                                       # off: nothing more
    assert threads.n == 2


def test_a_users_count_and_a_release_from_another_thread(monkeypatch):
    gov, threads = _governor(2)
    gov.owner = threading.get_ident()
    gov.apply(1.0)
    threads.set(1)                                   # the user chose the count the governor had set
    gov.user_set()
    assert gov.apply(0.0) == 1                       # it stays: the user's choice
    gov.apply(0.0)
    threads.set(2)
    gov.user_set()
    assert gov.apply(1.0) == 1
    other = threading.Thread(target=gov.release)     # switched off from another thread
    other.start()
    other.join()
    assert threads.n == 1 and gov.restore_due        # the governed thread's count changes only on that thread
    gov.poll()
    assert threads.n == 2 and not gov.restore_due


def test_a_sample_with_less_cpu_time_is_not_compared(monkeypatch):
    gov, threads = _governor(2)                      # a forked child: os.times restarts, the parent's sample stays
    samples = iter([(0.0, 0, 0, 9.0), (1.0, 0, 0, 0.01), (2.0, contention._HZ, 0, 0.02)])
    monkeypatch.setattr(contention, "read_sample", lambda cores: next(samples))
    for _ in range(3):
        gov.due = 0.0
        gov.poll()
        if _ == 1:
            assert threads.n == 2                    # not "3 cores of others" from the parent's CPU time
    assert threads.n == 1                            # the next look compares like with like


def test_configure_switches_the_process_governor(monkeypatch):
    monkeypatch.setattr(contention.GOVERNOR, "enabled", False)
    runtime.configure(adapt_threads=True)
    assert runtime.settings()["adapt_threads"] is True
    runtime.configure(adapt_threads=False)
    assert runtime.settings()["adapt_threads"] is False
