"""Size: PyTorch's torch.Size, the type of `t.shape` and `t.size()`.

A tuple of ints (it compares equal to a plain tuple, unpacks, indexes and hashes like one) with
`numel()`; slicing it, adding a tuple to it or repeating it gives a Size again, as in PyTorch.
"""
import math
import operator

__all__ = [
    "as_size", "Size",
]


class Size(tuple):
    __slots__ = ()

    def __new__(cls, sizes=()):
        try:
            items = tuple(operator.index(s) for s in sizes)
        except TypeError:
            raise TypeError(f"Size: expected a sequence of ints, got {sizes!r}") from None
        return tuple.__new__(cls, items)

    def numel(self):
        """The number of elements of a tensor of this shape (1 for the empty shape)."""
        return math.prod(self)

    def __getitem__(self, index):
        out = tuple.__getitem__(self, index)
        return tuple.__new__(Size, out) if isinstance(index, slice) else out

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(other, self))

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __repr__(self):
        return f"tinyattn.Size([{', '.join(map(str, self))}])"

    def __str__(self):
        """As a plain tuple, "(2, 3)": error messages (f"... shape {x.shape}") read the same as before Size
        existed; repr() is PyTorch's form. print(x.shape) therefore shows (2, 3), not torch.Size([2, 3])."""
        return tuple.__repr__(self)

    def __reduce__(self):
        return (Size, (tuple(self),))


def as_size(shape, _new=tuple.__new__):
    """A Size from a tuple of ints already checked (an array's shape): no per-element conversion."""
    return _new(Size, shape)
