"""Samplers with PyTorch's names and behaviour (torch.utils.data.sampler): what order the indices come in.

Random samplers draw from their `generator` (a tinyattn.Generator) or, when it is None, as PyTorch:
RandomSampler seeds a fresh generator from one draw of the default generator at each pass (so
ta.manual_seed(s) fixes every epoch's order), WeightedRandomSampler and SubsetRandomSampler draw
from the default generator itself. Sampling with replacement is lazy: RandomSampler(ds,
replacement=True, num_samples=10**10) draws 32 indices at a time.
"""
import typing

import numpy as np

from ...autograd import Variable
from ...random import Generator, numpy_rng

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]


def _is_positive_int(n):
    return isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n > 0


_T_co = typing.TypeVar("_T_co", covariant=True)


class Sampler(typing.Generic[_T_co]):
    """Base class: subclasses define __iter__ (indices, or lists of indices for a batch sampler), and
    __len__ when they can."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _fresh_generator():
    """PyTorch's RandomSampler without a generator: a new one seeded by one draw of the default generator."""
    return Generator().manual_seed(int(numpy_rng(None).integers(0, 1 << 63)))


class RandomSampler(Sampler):
    """Indices in random order: a permutation per pass (several, cut to num_samples, when num_samples
    > len), or, with replacement=True, num_samples independent uniform draws."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={self.replacement}")
        if not _is_positive_int(self.num_samples):
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        rng = numpy_rng(self.generator if self.generator is not None else _fresh_generator(), "RandomSampler")
        total = int(self.num_samples)
        if self.replacement:
            for _ in range(total // 32):
                yield from rng.integers(0, n, size=32).tolist()
            yield from rng.integers(0, n, size=total % 32).tolist()
        elif n > 0:
            for _ in range(total // n):
                yield from rng.permutation(n).tolist()
            yield from rng.permutation(n).tolist()[:total % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order (one permutation per pass)."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in numpy_rng(self.generator, "SubsetRandomSampler").permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices in [0, len(weights)) drawn with probabilities proportional to `weights`
    (with replacement by default; without, num_samples <= len(weights))."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not _is_positive_int(num_samples):
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        from ...creation import tensor
        w = weights.numpy() if isinstance(weights, Variable) else weights
        weights_tensor = tensor(np.asarray(w, dtype=np.float64))
        if weights_tensor.ndim != 1:
            raise ValueError("weights should be a 1d sequence but given weights have shape "
                             f"{tuple(weights_tensor.shape)}")
        self.weights = weights_tensor
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        from ...creation import multinomial
        yield from multinomial(self.weights, self.num_samples, self.replacement, generator=self.generator).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of batch_size indices from `sampler` (the last one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        if not _is_positive_int(batch_size):
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size

