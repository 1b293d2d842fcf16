"""default_collate and default_convert: PyTorch's rules for turning samples into a batch.

default_collate(batch), batch a list of samples of one structure:
    tensors                      -> stacked along a new first axis (equal sizes, or an error naming both)
    numpy arrays                 -> tensors, stacked (string/object arrays: TypeError)
    numpy scalars                -> a tensor of their dtype
    Python floats / ints / bools -> a float64 / int64 / bool tensor
    str / bytes                  -> the list, as it is
    dicts (Mappings)             -> the same mapping type, collated key by key
    namedtuples                  -> the same namedtuple, collated field by field
    tuples                       -> a list of the collated fields (PyTorch's backward-compatible choice)
    lists / other sequences      -> the same type when it can be rebuilt from a list, else a list
    anything else                -> TypeError
default_convert(data) (batch_size=None: one sample, no batch axis) turns numpy arrays and scalars into
tensors and recurses into the same containers, leaving everything else alone.
"""
import collections.abc
import copy

import numpy as np

from ....autograd import Variable

_ERR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


class CollateSizeError(ValueError, RuntimeError):
    """Samples that cannot be stacked (RuntimeError in PyTorch; ValueError in tinyattn's convention)."""


def _is_string_array(a):
    return a.dtype.kind in "SaUO"


def _tensor_of(array):
    from ....tensor import Tensor
    return Tensor._wrap(array)


def _stack(batch):
    """Tensors of one shape stacked along a new axis 0 (through tinyattn.stack: differentiable)."""
    from ....functional import stack
    first = tuple(batch[0].shape)
    for i, t in enumerate(batch):
        if tuple(t.shape) != first:
            raise CollateSizeError(f"stack expects each tensor to be equal size, but got {list(first)} at entry 0 "
                                   f"and {list(t.shape)} at entry {i} (default_collate: the samples' tensors must "
                                   "have one shape; pad them or pass a collate_fn)")
    return stack(batch, 0)


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_collate(batch):
    """Samples -> a batch, by PyTorch's rules (see the module docstring)."""
    elem = batch[0]
    if isinstance(elem, Variable):
        for t in batch:
            if not isinstance(t, Variable):
                raise TypeError(_ERR.format(type(t)))
        return _stack(list(batch))
    if isinstance(elem, np.ndarray):
        if _is_string_array(elem):
            raise TypeError(_ERR.format(elem.dtype))
        shape = elem.shape
        for i, a in enumerate(batch):
            a = np.asarray(a)
            if a.shape != shape:
                raise CollateSizeError(f"stack expects each tensor to be equal size, but got {list(shape)} at entry 0 "
                                       f"and {list(a.shape)} at entry {i} (default_collate: numpy arrays of "
                                       "different shapes; pad them or pass a collate_fn)")
        return _tensor_of(np.stack([np.asarray(a) for a in batch]))
    if isinstance(elem, np.generic) and not isinstance(elem, (np.str_, np.bytes_)):
        if isinstance(elem, np.object_):
            raise TypeError(_ERR.format(type(elem)))
        return _tensor_of(np.array(batch))
    if isinstance(elem, float):
        return _tensor_of(np.array(batch, dtype=np.float64))
    if isinstance(elem, bool) or isinstance(elem, int):
        from ....creation import tensor
        return tensor(list(batch))  # ints -> int64, bools -> bool (mixed with floats: float32, as torch.tensor)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        try:
            return type(elem)(collated)
        except TypeError:
            return collated
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise CollateSizeError("each element in list of batch should be of equal size")
        fields = [default_collate(samples) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return fields  # PyTorch returns a list for tuples
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, f in enumerate(fields):
                clone[i] = f
            return clone
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_ERR.format(type(elem)))


def default_convert(data):
    """One sample with numpy arrays/scalars made tensors, containers recursed (batch_size=None)."""
    if isinstance(data, Variable):
        return data
    if isinstance(data, np.ndarray):
        return data if _is_string_array(data) else _tensor_of(data)
    if isinstance(data, np.generic) and not isinstance(data, (np.str_, np.bytes_, np.object_)):
        return _tensor_of(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        if isinstance(data, collections.abc.MutableMapping):
            clone = copy.copy(data)
            clone.update(converted)
            return clone
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # as PyTorch
    if isinstance(data, collections.abc.Sequence):
        converted = [default_convert(d) for d in data]
        if isinstance(data, collections.abc.MutableSequence):
            clone = copy.copy(data)
            for i, d in enumerate(converted):
                clone[i] = d
            return clone
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    return data

