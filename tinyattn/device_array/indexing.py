"""Indexing: basic indices as views, advanced ones through the gather/scatter kernels, add.at."""
import numpy as np

__all__ = ["add_at", "basic_index", "index_positions"]


def basic_index(x, index):
    """The view x[index] for ints, slices, None and Ellipsis; None when the index is advanced."""
    items = index if isinstance(index, tuple) else (index,)
    basic = (int, np.integer, slice)
    if not all((isinstance(i, basic) and not isinstance(i, (bool, np.bool_))) or i is None or i is Ellipsis
               for i in items):
        return None
    if items.count(Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis")
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if used > x.ndim:
        raise IndexError(f"too many indices for an array of shape {x.shape}")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1 :]
    else:
        items = items + (slice(None),) * (x.ndim - used)
    shape, steps, offset, d = [], [], x.offset, 0
    for item in items:
        if item is None:
            shape.append(1)
            steps.append(0)
            continue
        n, s = x.shape[d], x.steps[d]
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            shape.append(len(range(start, stop, step)))
            steps.append(s * step)
            offset += start * s
        else:
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of bounds for axis {d} with size {n}")
            offset += (int(item) % n) * s
        d += 1
    return x._view(shape, steps, offset)


def index_positions(shape, index):
    """(flat positions in a C-contiguous array of `shape`, the result's shape) for an advanced index.

    One integer cuda array on the first axis (x[idx], the embedding lookup) is computed on the device;
    any other advanced index has its index arrays read on the host (indices, not activations), where
    numpy works out the positions, which are then uploaded.
    """
    items = index if isinstance(index, tuple) else (index,)
    if len(items) == 1 and isinstance(items[0], DeviceArray) and items[0].dtype.kind in "iu":
        idx = items[0]
        row = prod(shape[1:])
        pos = idx.astype(np.int64).reshape(idx.shape + (1,) * (len(shape) - 1)) * row
        pos = pos + arange(row, dtype=np.int64).reshape(shape[1:])
        return pos, idx.shape + tuple(shape[1:])
    host = tuple(i.get() if isinstance(i, DeviceArray) else i for i in items)
    pos = np.arange(prod(shape), dtype=np.int64).reshape(shape)[host if isinstance(index, tuple) else host[0]]
    return asarray(pos), pos.shape


def add_at(target, index, values):
    """np.add.at(target, index, values): repeated positions add up (atomic adds)."""
    if not target.is_contiguous:
        raise NotImplementedError("np.add.at on a non-contiguous cuda array")
    basic = basic_index(target, index)
    if basic is not None:
        copy_into(basic, basic + values)
        return None
    pos, shape = index_positions(target.shape, index)
    values = as_device(values, target.dtype, "add.at").broadcast_to(shape).ascontiguous()
    if values.size:
        flat = target.buf[target.offset : target.offset + target.size]
        kern().idx.scatter_add(flat, pos.ascontiguous().as_numba().reshape(-1), values.as_numba().reshape(-1))
    return None


# The package's modules refer to each other; each imports the others at its end, once its own names exist
# (numpy_api, which uses them at import time, is imported last: see __init__.py).
from .array import DeviceArray, kern, prod  # noqa: E402
from .creation import arange, asarray  # noqa: E402
from .ops import as_device, copy_into  # noqa: E402
