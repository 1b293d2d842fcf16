"""Tests marked ``@pytest.mark.background`` run in a second pytest process, started as soon as the session's
tests are collected; when such a test's turn comes in this process, it waits for the worker's outcome and
reports it as its own (a pass, a failure with the worker's report, or a skip with its reason).

Why: the suite's wall time is mostly one-core work. A cold run spends it compiling Numba kernels and
running the CUDA simulator's Python threads, and this process leaves the second core of a 2-core machine
idle. The tests marked for the background are the ones whose work no other test shares (kernel variants
the host CPU does not run, the simulator's kernel groups), so the two processes do not compile the same
kernels twice. pytest-xdist would split the suite blindly and compile the common kernels in both workers.

TINYATTN_BACKGROUND=0 runs the marked tests in this process like any other.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

RESULTS_ENV = "TINYATTN_BACKGROUND_RESULTS"  # set in the worker: the file it appends each test's outcome to
WAIT_S = 900  # the longest a test here waits for its outcome once its turn has come


class Worker:
    """One `python -m pytest <nodeids>` subprocess and the outcomes it has written so far."""

    def __init__(self, nodeids, rootdir):
        fd, self.path = tempfile.mkstemp(prefix="tinyattn-background-", suffix=".jsonl")
        os.close(fd)
        env = dict(os.environ, **{RESULTS_ENV: self.path})
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *nodeids],
                                     cwd=rootdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = []  # drained by a thread, so a full pipe never blocks the worker
        self.reader = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def outcome(self, nodeid):
        """The worker's record for nodeid, waiting for it; a failure record if the worker ends without one."""
        deadline = time.monotonic() + WAIT_S
        while True:
            finished = self.proc.poll() is not None  # read the file after this, so a last record is not missed
            with open(self.path) as f:
                for line in f:
                    record = json.loads(line)
                    if record["nodeid"] == nodeid:
                        return record
            if finished or time.monotonic() > deadline:
                self.reader.join(timeout=5)
                why = "ended" if finished else f"gave no outcome within {WAIT_S} s"
                return {"outcome": "failed", "report": f"the background worker {why} without running {nodeid}; its "
                                                       "output:\n" + "".join(self.output[-200:])}
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.path)


def configure(config):
    config.addinivalue_line("markers", "background(order=0): run in the background worker process, lower orders first "
                                       "(tests/background.py)")


def _enabled(config):
    return not (os.environ.get(RESULTS_ENV) or os.environ.get("TINYATTN_BACKGROUND") == "0"
                or config.option.collectonly)


def reorder(config, items):
    """pytest_collection_modifyitems: the background tests go last here, so that this process waits for
    the worker's outcomes only once it has run everything else."""
    if _enabled(config):
        items[:] = ([item for item in items if item.get_closest_marker("background") is None]
                    + [item for item in items if item.get_closest_marker("background") is not None])


def start(session):
    """pytest_collection_finish: starts the worker for the selected background tests, if any."""
    config = session.config
    if not _enabled(config):
        return
    marked = [(item.get_closest_marker("background"), item.nodeid) for item in session.items]
    # the worker runs them in this order: by the marker's `order` (default 0), then as collected
    nodeids = [nodeid for marker, nodeid in sorted((m for m in marked if m[0]), key=lambda m: m[0].kwargs.get("order", 0))]
    if nodeids:
        config._background_worker = Worker(nodeids, str(config.rootpath))
        config.add_cleanup(config._background_worker.stop)


def run(pyfuncitem):
    """pytest_pyfunc_call: a background test here takes the worker's outcome instead of running."""
    worker = getattr(pyfuncitem.config, "_background_worker", None)
    if worker is None or pyfuncitem.get_closest_marker("background") is None:
        return None
    record = worker.outcome(pyfuncitem.nodeid)
    if record["outcome"] == "skipped":
        pytest.skip(record["report"])
    if record["outcome"] != "passed":
        pytest.fail(f"in the background worker:\n{record['report']}", pytrace=False)
    return True


class Recorder:
    """The worker's plugin: appends one JSON line per test when its teardown ends (its final outcome)."""

    def __init__(self, path):
        self.path = path
        self.records = {}

    def pytest_runtest_logreport(self, report):
        record = self.records.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "report": ""})
        if report.failed and record["outcome"] != "failed":
            record.update(outcome="failed", report=f"{report.when}: {report.longreprtext}")
        elif report.skipped and record["outcome"] == "passed":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
            reason = reason.removeprefix("Skipped: ")
            record.update(outcome="skipped", report=reason)
        if report.when == "teardown":
            with open(self.path, "a") as f:
                f.write(json.dumps(self.records.pop(report.nodeid)) + "\n")
