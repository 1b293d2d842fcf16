"""Tests marked ``@pytest.mark.background`` run in a second pytest process, started as soon as the session's
tests are collected; this process runs them last, and for each one reports the worker's outcome as its own
(a pass, a failure with the worker's report, or a skip with its reason).

Why: the suite's wall time is mostly one-core work. A cold run spends it compiling Numba kernels and
running the CUDA simulator's Python threads, and this process leaves the second core of a 2-core machine
idle. The tests marked for the background are the ones whose work no other test shares (kernel variants
the host CPU does not run, the simulator's tests), so the two processes do not compile the same kernels
twice. pytest-xdist would split the suite blindly and compile the common kernels in both workers.

The worker is `python -m pytest <this run's arguments> -p no:cacheprovider`, from the same folder: it
collects the same tests and keeps only the background ones. Runs whose options do not suit two processes
(--lf, --pdb, --junitxml, ... see SOLO_OPTIONS), xdist workers, and tests with an xfail mark run everything
here; so does TINYATTN_BACKGROUND=0.
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
DEADLINE_S = 1800  # the worker's whole run; past it, the worker is killed and its tests fail
# options that write shared files, read the last run's results, stop for a debugger or only show the plan:
# with any of them, every test runs in this process
SOLO_OPTIONS = ("--lf", "--last-failed", "--ff", "--failed-first", "--nf", "--new-first", "--sw", "--stepwise",
                "--cache-clear", "--cache-show", "--pdb", "--trace", "--junitxml", "--junit-xml", "--report-log",
                "--result-log", "--html", "--setup-only", "--setup-plan", "--co", "--collect-only")


class Worker:
    """The worker subprocess and the outcomes it has written so far."""

    def __init__(self, config):
        fd, self.path = tempfile.mkstemp(prefix="tinyattn-background-", suffix=".jsonl")
        os.close(fd)
        args = [*config.invocation_params.args, "-p", "no:cacheprovider"]
        env = dict(os.environ, **{RESULTS_ENV: self.path})
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=config.invocation_params.dir,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.deadline = time.monotonic() + DEADLINE_S
        self.failure = None  # set once the worker is dead or out of time: every later outcome is this failure
        self.output = []  # drained by a thread, so a full pipe never blocks the worker
        self.reader = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def outcome(self, nodeid):
        """The worker's record for nodeid, waiting for it; a failure record if the worker ends without one."""
        while self.failure is None:
            finished = self.proc.poll() is not None  # read the file after this, so a last record is not missed
            record = self._find(nodeid)
            if record is not None:
                return record
            if finished or time.monotonic() > self.deadline:
                why = "ended" if finished else f"ran past its {DEADLINE_S} s deadline and was killed"
                self.stop(remove=False)
                self.reader.join(timeout=5)
                self.failure = f"the background worker {why}; its output:\n" + "".join(self.output[-200:])
                break
            time.sleep(0.05)
        record = self._find(nodeid)  # written just before the end
        return record or {"outcome": "failed", "report": f"no outcome for {nodeid}: {self.failure}"}

    def _find(self, nodeid):
        with open(self.path) as f:
            for line in f:
                if line.endswith("\n"):  # a line being written is not complete yet
                    record = json.loads(line)
                    if record["nodeid"] == nodeid:
                        return record
        return None

    def stop(self, remove=True):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if remove and os.path.exists(self.path):
            os.unlink(self.path)


def configure(config):
    config.addinivalue_line("markers", "background(order=0): run in the background worker process, lower orders first "
                                       "(tests/background.py)")
    if os.environ.get(RESULTS_ENV):  # this process is the worker
        config.pluginmanager.register(Recorder(os.environ[RESULTS_ENV]))
        _exit_with_parent(os.environ[RESULTS_ENV])


def _enabled(config):
    args = config.invocation_params.args
    return not (os.environ.get("TINYATTN_BACKGROUND") == "0" or os.environ.get("PYTEST_XDIST_WORKER")
                or any(a.split("=")[0] in SOLO_OPTIONS for a in args) or config.option.collectonly)


def _is_background(item):
    return item.get_closest_marker("background") is not None and item.get_closest_marker("xfail") is None


def reorder(config, items):
    """pytest_collection_modifyitems. Here: the background tests go last, so that this process waits for
    the worker's outcomes only once it has run everything else. In the worker: only those, in order."""
    if os.environ.get(RESULTS_ENV):
        keep = sorted((item for item in items if _is_background(item)),
                      key=lambda item: item.get_closest_marker("background").kwargs.get("order", 0))
        config.hook.pytest_deselected(items=[item for item in items if not _is_background(item)])
        items[:] = keep
    elif _enabled(config):
        items[:] = [item for item in items if not _is_background(item)] + [item for item in items if _is_background(item)]


def start(session):
    """pytest_collection_finish: starts the worker when background tests were selected."""
    config = session.config
    if not os.environ.get(RESULTS_ENV) and _enabled(config) and any(map(_is_background, session.items)):
        config._background_worker = Worker(config)
        config.add_cleanup(config._background_worker.stop)


def run(pyfuncitem):
    """pytest_pyfunc_call: a background test here takes the worker's outcome instead of running."""
    worker = getattr(pyfuncitem.config, "_background_worker", None)
    if worker is None or not _is_background(pyfuncitem):
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
            captured = "".join(f"\n---- {name} ----\n{text}" for name, text in report.sections)
            record.update(outcome="failed", report=f"{report.when}: {report.longreprtext}{captured}")
        elif report.skipped and record["outcome"] == "passed":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
            record.update(outcome="skipped", report=reason.removeprefix("Skipped: "))
        if report.when == "teardown":
            with open(self.path, "a") as f:
                f.write(json.dumps(self.records.pop(report.nodeid)) + "\n")


def _exit_with_parent(path):
    """The worker ends (and removes its results file) when the process that started it does, e.g. when a
    timeout kills it, instead of running on alone."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        if os.path.exists(path):
            os.unlink(path)
        os._exit(1)

    threading.Thread(target=watch, name="background-parent-watch", daemon=True).start()
