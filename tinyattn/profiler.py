"""Where the time goes: every op's forward and backward, timed, with shapes (PyTorch's torch.profiler names).

    from tinyattn.profiler import profile, record_function
    with profile() as prof:
        with record_function("forward"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(prof.table(sort_by="total"))
    prof.export_chrome_trace("trace.json")      # open in https://ui.perfetto.dev or chrome://tracing

An op is one Function (Linear, LayerNorm, ScaledDotProductAttention, ...): its forward time is the
whole `Function.apply` (argument checks, the kernel, recording the node), its backward time is its
`backward`. Time spent outside ops (Python in modules, the optimiser's own kernels) is not any op's;
the table's last line says how much of the block's wall time the ops took.

Off, it costs nothing but one check per op (`autograd._observers` is empty): see docs/benchmarks.md.
"""
import json
import os
import threading
from collections import namedtuple
from time import perf_counter_ns

from . import autograd

__all__ = [
    "OpStats", "profile", "record_function",
]

OpStats = namedtuple("OpStats", "name calls forward_ns backward_ns backward_calls input_shapes")
OpStats.__doc__ = """One row of profile.key_averages(): an op name (and input shapes when grouped by them), how
many times its forward ran, the nanoseconds spent in its forwards and backwards, and how many backwards ran."""

_SORT_KEYS = {
    "total": lambda r: r.forward_ns + r.backward_ns,
    "forward": lambda r: r.forward_ns,
    "backward": lambda r: r.backward_ns,
    "calls": lambda r: r.calls,
    "name": lambda r: r.name,
}
_SORT_ALIASES = {"cpu_time_total": "total", "self_cpu_time_total": "total", "count": "calls"}

_active = []  # the profiles now recording (record_function reports to them)


def _shape(a):
    shape = getattr(a, "shape", None)
    return None if shape is None else tuple(shape)


class profile:
    """Context manager: while it is open, every op's forward and backward is recorded.

    record_shapes (default True) keeps the input shapes of each call (the grouping key of
    `table(group_by_input_shape=True)` and the `args` of the trace). A profile can be entered
    again to add more steps to the same record.
    """

    def __init__(self, record_shapes=True):
        self.record_shapes = record_shapes
        self.events = []  # (kind, name, start_ns, end_ns, thread id, input shapes, output shapes)
        self._forward_shapes = {}  # id(node) -> the input shapes of the forward that recorded it
        self._handle = None
        self._origin = None
        self.wall_ns = 0

    def __enter__(self):
        if self._handle is not None:
            raise RuntimeError("profile: this profile is already recording")
        if self._origin is None:
            self._origin = perf_counter_ns()
        self._entered = perf_counter_ns()
        self._handle = autograd.observe(self)
        _active.append(self)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        self._handle = None
        _active.remove(self)
        self.wall_ns += perf_counter_ns() - self._entered
        return False

    # ---- what autograd reports -------------------------------------------------------------------
    def on_apply(self, cls, args, out, start, end):
        inputs = outputs = ()
        if self.record_shapes:
            inputs = tuple(_shape(a) for a in args if hasattr(a, "_requires_grad"))
            outputs = tuple(_shape(o) for o in out) if isinstance(out, tuple) else (_shape(out),)
        self.events.append(("forward", cls.__name__, start, end, threading.get_ident(), inputs, outputs))
        node = (out[0] if isinstance(out, tuple) else out)._node
        if node is not None and self.record_shapes:
            self._forward_shapes[id(node)] = inputs  # its backward is listed with these

    def on_backward(self, node, grad, start, end):
        inputs = outputs = ()
        if self.record_shapes:
            inputs = self._forward_shapes.get(id(node))
            if inputs is None:  # recorded before the profile began: what is known now
                inputs = tuple(_shape(p._array) for p in node.parents if p is not None)
            outputs = tuple(_shape(g) for g in grad) if isinstance(grad, tuple) else (_shape(grad),)
        self.events.append(("backward", node.name, start, end, threading.get_ident(), inputs, outputs))

    def _span(self, name, start, end):
        self.events.append(("user", name, start, end, threading.get_ident(), (), ()))

    # ---- summaries -------------------------------------------------------------------------------
    def key_averages(self, group_by_input_shape=False):
        """One OpStats per op name (and per input shapes when group_by_input_shape), over every
        recorded call; a backward counts in the row of the forward that recorded its node."""
        rows = {}
        for kind, name, start, end, _, inputs, _ in self.events:
            if kind == "user":
                continue
            key = (name, inputs if group_by_input_shape else None)
            r = rows.get(key)
            if r is None:
                r = rows[key] = [name, 0, 0, 0, 0, key[1]]
            if kind == "forward":
                r[1] += 1
                r[2] += end - start
            else:
                r[3] += end - start
                r[4] += 1
        return [OpStats(*r) for r in rows.values()]

    def table(self, sort_by="total", row_limit=None, group_by_input_shape=False):
        """A text table, one row per op: calls, forward ms, backward ms, total ms and share of the
        time spent in ops, sorted by `sort_by` ("total", "forward", "backward", "calls", "name")."""
        sort_by = _SORT_ALIASES.get(sort_by, sort_by)
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"profile.table: sort_by must be one of {sorted(_SORT_KEYS)}, got {sort_by!r}")
        rows = sorted(self.key_averages(group_by_input_shape), key=_SORT_KEYS[sort_by], reverse=sort_by != "name")
        in_ops = sum(r.forward_ns + r.backward_ns for r in rows) or 1
        shown = rows if row_limit is None else rows[:row_limit]
        width = max([len(r.name) for r in shown] + [2])
        shapes = [str(list(r.input_shapes)) if group_by_input_shape else "" for r in shown]
        head = f"{'op':<{width}}  {'calls':>6}  {'forward ms':>10}  {'backward ms':>11}  {'total ms':>9}  {'share':>6}"
        if group_by_input_shape:
            head += "  input shapes"
        lines = [head, "-" * len(head)]
        for r, s in zip(shown, shapes):
            total = r.forward_ns + r.backward_ns
            line = (f"{r.name:<{width}}  {r.calls:>6}  {r.forward_ns / 1e6:>10.3f}  {r.backward_ns / 1e6:>11.3f}  "
                    f"{total / 1e6:>9.3f}  {100 * total / in_ops:>5.1f}%")
            lines.append(line + (f"  {s}" if group_by_input_shape else ""))
        if len(shown) < len(rows):
            lines.append(f"... {len(rows) - len(shown)} more ops")
        forward = sum(r.forward_ns for r in rows)
        backward = sum(r.backward_ns for r in rows)
        lines.append("-" * len(head))
        lines.append(f"{'all ops':<{width}}  {sum(r.calls for r in rows):>6}  {forward / 1e6:>10.3f}  "
                     f"{backward / 1e6:>11.3f}  {(forward + backward) / 1e6:>9.3f}  100.0%")
        if self.wall_ns:
            lines.append(f"wall time inside the profile: {self.wall_ns / 1e6:.3f} ms, of which ops "
                         f"{100 * (forward + backward) / self.wall_ns:.1f}% (the rest: Python between ops, "
                         "the optimiser, the backward walk itself)")
        return "\n".join(lines)

    def export_chrome_trace(self, path):
        """Write the record as Chrome trace-event JSON ({"traceEvents": [...]}, times in µs),
        which https://ui.perfetto.dev and chrome://tracing open: one complete ("X") event per
        forward, backward and record_function span."""
        pid = os.getpid()
        origin = self._origin or 0
        events = []
        for kind, name, start, end, tid, inputs, outputs in self.events:
            event = {"name": f"{name}Backward" if kind == "backward" else name, "cat": kind, "ph": "X",
                     "ts": (start - origin) / 1e3, "dur": (end - start) / 1e3, "pid": pid, "tid": tid}
            if inputs or outputs:
                event["args"] = {"input shapes": [None if s is None else list(s) for s in inputs],
                                 "output shapes": [None if s is None else list(s) for s in outputs]}
            events.append(event)
        with open(path, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
        return path


class record_function:
    """A named span in every open profile (a training step, "forward", "optimizer"), as
    torch.profiler.record_function; a context manager. With no profile open it does nothing."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self._start = perf_counter_ns()
        return self

    def __exit__(self, *exc):
        end = perf_counter_ns()
        for p in _active:
            p._span(self.name, self._start, end)
        return False
