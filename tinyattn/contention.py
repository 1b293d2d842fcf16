"""Fewer kernel threads while other processes hold this process's cores, all of them again when they let go.

Numba's parallel kernels run on a team of OpenMP threads, one per core. When another process keeps one of those
cores busy, every parallel region waits for the team's thread that shares the core with it: on this 2-core box
the gpt model of benchmarks/bench_train.py fell from 23.7 to 7.7 steps/s (libgomp's own spin), while one thread
runs 12.4 steps/s busy or not. Shortening libgomp's spin (what tinyattn did before) got 11.3 busy but cost 5 % of
the quiet rate, and 20 % of nanoGPT's (27.7 -> 34.0 ms/iter), whose small products leave the threads asleep
between regions.

So the CPU backend asks `ThreadGovernor.poll()` before its kernels. Every INTERVAL seconds or so, the poll reads
how busy this process's cores were since the last look (Linux /proc/stat, the cores in the affinity mask) and
subtracts this process's own CPU time (os.times, every thread: spinning OpenMP threads count as its own; and its
compile-ahead children's, which compile kernels for it on a cold start):

    others = (busy jiffies of our cores / HZ + their steal time - our CPU seconds) / elapsed seconds

in cores. The kernels then get `fair_threads(limit, cores, others)` threads: the cores nobody else holds, at
least one, at most `limit`, the count the user chose (ta.set_num_threads / numba's). A count changed by the user
while the governor had lowered it is taken as the new limit. Only the thread that first polls is governed
(Numba's count is per thread). Off: TINYATTN_ADAPT_THREADS=0, or runtime.configure(adapt_threads=False); off
Linux (no /proc/stat) it never changes anything.
"""
import os
import threading
import time

__all__ = ["GOVERNOR", "INTERVAL", "ThreadGovernor", "fair_threads", "others_cores", "processes_cpu", "read_sample"]

INTERVAL = 0.25  # seconds between looks at /proc/stat (a look costs about 16 us here)
# Set by compile_ahead.py: () -> the pids of this process's running helper processes (children compiling kernels
# for it), whose CPU time counts as its own, not as other processes'.
helper_pids = None
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def fair_threads(limit, cores, others):
    """Threads for the kernels: `limit` (the user's count, even above `cores`) when others hold no core (`others`,
    in cores, rounded to the nearest), else the cores they leave free, at least 1, at most `limit`."""
    taken = int(others + 0.5)
    return limit if taken <= 0 else max(1, min(limit, cores - taken))


def read_sample(cores, stat="/proc/stat"):
    """(monotonic seconds, busy jiffies, steal jiffies of the CPUs numbered in `cores`, this process's CPU seconds),
    or None where /proc/stat cannot be read. Busy: user + nice + system + irq + softirq (guest time is inside
    user); idle and iowait are free time."""
    try:
        with open(stat, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return None
    busy = steal = 0
    wanted = {b"cpu%d" % c for c in cores}
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
            busy += user + nice + system + irq + softirq
            steal += int(fields[8]) if len(fields) > 8 else 0
    # its own: this process, its helper processes (compile-ahead children) while they run, and, once reaped,
    # every child (os.times counts those): a cold start's helpers do not make it lower its thread count. The
    # helpers first: one reaped in between is then counted twice (more own time: ignored), never not at all.
    own = processes_cpu(helper_pids()) if helper_pids is not None else 0.0
    t = os.times()
    own += t.user + t.system + t.children_user + t.children_system
    return time.monotonic(), busy, steal, own


def processes_cpu(pids):
    """CPU seconds the processes `pids` have used so far (Linux /proc/<pid>/stat: utime + stime; nothing for one
    that cannot be read)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # (the name, in parentheses, may hold spaces)
            ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat
        except (OSError, IndexError, ValueError):
            pass
    return ticks / _HZ


def others_cores(before, after):
    """The cores other processes (and the hypervisor's steal) held between two samples of read_sample."""
    elapsed = after[0] - before[0]
    if elapsed <= 0:
        return 0.0
    held = (after[1] - before[1] + after[2] - before[2]) / _HZ - (after[3] - before[3])
    return max(0.0, held / elapsed)


class ThreadGovernor:
    """Sets the polling thread's kernel thread count from what other processes hold (see the module's note).
    Does nothing until `bind` gives it that thread's Numba count (kernels/cpu/threads.py's calls)."""

    def __init__(self, enabled=None):
        self.get_threads = self.set_threads = None
        self.enabled = os.environ.get("TINYATTN_ADAPT_THREADS", "1") != "0" if enabled is None else enabled
        try:
            self.cores = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            self.cores = []
        self.owner = None       # the thread governed: the first one to poll
        self.due = 0.0          # monotonic time of the next look
        self.last = None        # the previous sample
        self.limit = None       # the user's thread count while the governor has lowered it; else None
        self.lowered_to = None  # the count the governor set
        self.restore_due = False  # release() from another thread: the governed thread restores at its next poll

    def bind(self, get_threads, set_threads):
        self.get_threads, self.set_threads = get_threads, set_threads

    def poll(self):
        """Cheap unless a look is due (one clock read)."""
        if self.restore_due:
            self._restore_if_owner()
        now = time.monotonic()
        if not self.enabled or now < self.due or self.get_threads is None:
            return
        ident = threading.get_ident()
        if self.owner is None:
            self.owner = ident
        if ident != self.owner or len(self.cores) < 2:  # (another thread's polls do not use up the looks)
            return
        self.due = now + INTERVAL
        sample = read_sample(self.cores)
        if sample is None:
            self.release()
            return
        before, self.last = self.last, sample
        if before is not None and sample[3] >= before[3]:  # (less CPU time than before: a forked child's first look)
            self.apply(others_cores(before, sample))

    def apply(self, others):
        """Set the count for `others` busy cores; returns it."""
        current = self.get_threads()
        if self.lowered_to is not None and current != self.lowered_to:
            self.limit = self.lowered_to = None  # the user set a count meanwhile: that is the limit now
        limit = current if self.limit is None else self.limit
        want = fair_threads(limit, len(self.cores), others)
        if want != current:
            self.set_threads(want)
        if want < limit:
            self.limit, self.lowered_to = limit, want
        else:
            self.limit = self.lowered_to = None
        return want

    def user_set(self):
        """The user set the calling thread's count (ta.set_num_threads): if it is the governed thread, that count is
        the limit from now on, even when it equals the one the governor had lowered it to."""
        if threading.get_ident() == self.owner:
            self.limit = self.lowered_to = None

    def release(self):
        """Stop; the governed thread gets back the count the user chose (now, when it is the caller; else at its
        next kernel). configure(adapt_threads=False)."""
        self.enabled = False
        self.last = None
        self.restore_due = True
        self._restore_if_owner()

    def _restore_if_owner(self):
        if threading.get_ident() != self.owner:
            return
        if self.lowered_to is not None and self.get_threads() == self.lowered_to:
            self.set_threads(self.limit)
        self.limit = self.lowered_to = None
        self.restore_due = False

    def _after_fork(self):
        """In a forked child: its first look compares with a fresh sample (os.times restarts from 0 there)."""
        self.last = None
        self.due = 0.0


GOVERNOR = ThreadGovernor()  # the process's one: bound by the CPU backend, switched by runtime.configure
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=GOVERNOR._after_fork)
