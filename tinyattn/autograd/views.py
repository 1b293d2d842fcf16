"""Views and their version counters: a view shares its base's counter and remembers the view Functions that made
it from its base, so an in-place change can re-make it (replay_view); saved_versions records, for each array a
forward saves, the counter to check at backward time."""
import numpy as np

from .graph import Context

__all__ = ["memory_owner", "replay_view", "saved_versions", "share_counters", "view_positions"]


def memory_owner(array):
    """What owns an array's memory: the ndarray at the end of numpy's chain of views, or a
    DeviceArray's buffer (None for anything else). Two arrays can overlap only if their owners match."""
    if isinstance(array, np.ndarray):
        while isinstance(array.base, np.ndarray):
            array = array.base
        return array
    return getattr(array, "buf", None)


def share_counters(source, results, function, extra, multiple):
    """Outputs of a view Function that are views of its input share the input's counter and
    remember how they were made from the input's base (for in-place ops; see functional/inplace.py)."""
    owner = memory_owner(source._array)
    if owner is None:
        return
    base, steps = source._view or (source, ())
    counter = source._counter
    for i, r in enumerate(results):
        data = r._array
        if type(data) is np.ndarray and data.base is None:  # owns its memory: shares only if it is the owner
            if data is not owner:
                continue
        elif memory_owner(data) is not owner:
            continue
        counter.share(r)
        r._view = (base, steps + ((function, extra, i if multiple else None),))


def replay_view(base, steps, cache=None):
    """The view of `base` that `steps` made, made again (recorded like any op).

    `cache` (a dict, while re-making several views of one base) shares the work of common steps:
    views of one view, or the outputs of one unbind, are re-made from one replay."""
    t, key = base, ()
    for step in steps:
        function, extra, i = step
        key += (id(function), id(extra))
        out = cache.get(key) if cache is not None else None
        if out is None:
            out = function.apply(t, *extra)
            if cache is not None:
                cache[key] = out
        t = out if i is None else out[i]
        key += (i,)
    return t


def view_positions(base, steps):
    """For a view of `base`: the flat index into base of each of the view's elements (host int64)."""
    positions = np.arange(base._array.size, dtype=np.int64).reshape(base._array.shape)
    for function, extra, i in steps:
        positions = function.forward(Context(()), positions, *extra)
        positions = positions if i is None else positions[i]
    return positions


def saved_versions(saved, inputs, results):
    """(counter, version, shape) for every saved array whose memory is a tensor's (an input's or an
    output's): what Node.check_versions compares at backward time. This runs for every recorded op,
    so the common case (the saved array is an input's or output's array itself) is checked first."""
    versions = []
    for array in saved:
        if array is None:  # nothing saved
            continue
        for t in inputs:
            if t._array is array:
                break
        else:
            for t in results:
                if t._array is array:
                    break
            else:
                if isinstance(array, np.generic):  # a constant scalar: no memory to watch
                    continue
                if type(array) is np.ndarray and array.base is None:  # a fresh array (a constant made from a
                    for t in results:  # number): only an output that is a view of it can share it
                        data = t._array
                        if getattr(data, "base", None) is not None and memory_owner(data) is array:
                            break
                    else:
                        continue
                else:
                    t = _owner_among(array, inputs, results)
                    if t is None:
                        continue
        counter = t._counter
        versions.append((counter, counter.value, t._array.shape))
    return tuple(versions)


def _owner_among(array, inputs, results):
    """The tensor whose memory a derived saved array shares (a view of an input, or an array that an
    output is a view of), or None."""
    owner = memory_owner(array)
    if owner is None:
        return None
    if owner is array:  # a fresh array (a constant made from a number): only an output that is a view can share it
        for t in results:
            data = t._array
            if getattr(data, "base", None) is not None and memory_owner(data) is owner:
                return t
        return None
    for t in (*inputs, *results):
        if memory_owner(t._array) is owner:
            return t
    return None
