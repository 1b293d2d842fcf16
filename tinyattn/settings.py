"""Process-wide switches PyTorch programs call: threads, matmul precision, determinism, torch.compile.

None of them changes what tinyattn computes except set_num_threads (Numba's thread count):
- float32 products are always computed in float32 ("highest" precision), whatever the setting says;
- compile(model) returns the model itself (tinyattn's kernels are compiled ahead by Numba), with one
  note on stderr the first time.
"""
import sys

_settings = {"float32_matmul_precision": "highest", "deterministic": False, "compile_noted": False}


def set_num_threads(n):
    """The number of threads tinyattn's parallel kernels use (Numba's, at most its NUMBA_NUM_THREADS). While other
    processes hold cores, the kernels may run on fewer (tinyattn/contention.py); this count is the limit."""
    import numba

    from .contention import GOVERNOR
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    GOVERNOR.user_set()


def get_num_threads():
    import numba
    return numba.get_num_threads()


def set_float32_matmul_precision(precision):
    """Accepted ('highest', 'high', 'medium'); tinyattn computes float32 products in float32 always."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"set_float32_matmul_precision: invalid precision {precision!r}; expected 'highest', "
                           "'high' or 'medium'")
    _settings["float32_matmul_precision"] = precision


def get_float32_matmul_precision():
    return _settings["float32_matmul_precision"]


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Recorded only: tinyattn's kernels already give the same result run to run on one machine and thread
    count (no atomics; reductions split the same way every time)."""
    _settings["deterministic"] = bool(mode)


def are_deterministic_algorithms_enabled():
    return _settings["deterministic"]


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,
            disable=False):
    """torch.compile: returns `model` unchanged (also as a decorator, with or without arguments).

    tinyattn has no graph compiler; its kernels are Numba code compiled on first use and cached."""
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                  options=options, disable=disable)
    if not _settings["compile_noted"]:
        _settings["compile_noted"] = True
        print("tinyattn: torch.compile returns the model unchanged (tinyattn's kernels are already compiled "
              "by Numba)", file=sys.stderr)
    return model


__all__ = [
    "are_deterministic_algorithms_enabled", "compile", "get_float32_matmul_precision", "get_num_threads",
    "set_float32_matmul_precision", "set_num_threads", "use_deterministic_algorithms",
]
