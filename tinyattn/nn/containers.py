"""ModuleList, Sequential, ModuleDict, ParameterList and ParameterDict."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..tensor import Tensor
from .module import Module
from .parameter import Parameter
from typing import Any, Iterable, Iterator

__all__ = [
    "ModuleDict", "ModuleList", "ParameterDict", "ParameterList", "Sequential",
]


class ModuleList(Module):
    """A list of modules whose parameters are registered ("0.weight", "1.weight", ...): PyTorch's
    append, extend, insert, indexing (a slice gives a ModuleList), item assignment and deletion."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _check(self, module, where):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected a Module, got {type(module).__name__} at index {where}")

    def _index(self, i):
        n = len(self._modules)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, not {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range")
        return int(i) % n

    def _renumber(self, modules):
        for key in list(self._modules):
            del self._modules[key]
            object.__delattr__(self, key)
        for m in modules:
            setattr(self, str(len(self._modules)), m)

    def append(self, module: Module) -> ModuleList:
        self._check(module, len(self._modules))
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._check(module, index)
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def __getitem__(self, i: Any) -> Any:
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return type(self)(mods[i]) if type(self) is ModuleList else ModuleList(mods[i])
        return mods[self._index(i)]

    def __setitem__(self, i, module):
        self._check(module, i)
        setattr(self, str(self._index(i)), module)

    def __delitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            del mods[i]
        else:
            del mods[self._index(i)]
        self._renumber(mods)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def pop(self, index: int = -1) -> Module:
        """Remove and return the module at `index` (the later ones are renumbered), as PyTorch."""
        module = self[index]
        del self[index]
        return module

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]


class Sequential(ModuleList):
    """Applies its modules in order: Sequential(a, b)(x) = b(a(x)). Sequential(OrderedDict([(name, m), ...]))
    names them; a slice gives a Sequential."""

    def __init__(self, *args: Any) -> None:
        Module.__init__(self)
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self._check(module, key)
                setattr(self, key, module)
        else:
            for i, module in enumerate(args):
                self._check(module, i)
                setattr(self, str(i), module)

    def __getitem__(self, i: Any) -> Any:
        mods = list(self._modules.items())
        if isinstance(i, slice):
            return Sequential(OrderedDict(mods[i]))
        return mods[self._index(i)][1]

    def __setitem__(self, i, module):
        self._check(module, i)
        key = list(self._modules)[self._index(i)]
        self._modules[key] = module
        object.__setattr__(self, key, module)

    def __delitem__(self, i):
        keys = list(self._modules)
        for key in (keys[i] if isinstance(i, slice) else [keys[self._index(i)]]):
            del self._modules[key]
            object.__delattr__(self, key)
        # PyTorch renumbers the remaining modules after a deletion
        self._renumber(list(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        self._check(module, len(self._modules))
        setattr(self, str(len(self._modules)), module)
        return self

    def __add__(self, other):
        return Sequential(*(list(self) + list(other)))

    def forward(self, input: Any) -> Any:
        for m in self:
            input = m(input)
        return input


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered under their keys ("encoder.weight", ...).

    Keys are strings without "." that do not shadow an attribute or method (keys, items, training, ...),
    as in PyTorch; each module is also an attribute (md.encoder). Insertion order is kept.
    """

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _check_key(self, key):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict: keys must be strings, got {type(key).__name__} ({key!r})")
        if not key or "." in key:
            raise KeyError(f"ModuleDict: a key must be a non-empty string without '.', got {key!r}")
        if key not in self._modules and hasattr(self, key):
            raise KeyError(f"ModuleDict: key {key!r} would shadow the attribute ModuleDict.{key}; choose another name")

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict: no module under {key!r}; keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key, module):
        self._check_key(key)
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: expected a Module under {key!r}, got {type(module).__name__}")
        if key in self._modules:  # a replacement keeps its place in the order, as in PyTorch
            self._modules[key] = module
            object.__setattr__(self, key, module)
        else:
            setattr(self, key, module)

    def __delitem__(self, key):
        self[key]  # the KeyError naming the keys
        del self._modules[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules: Any) -> None:
        """Add (or replace) modules from a mapping or an iterable of (key, module) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        else:
            pairs = []
            for i, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise TypeError(f"ModuleDict.update: element {i} should be a (key, module) pair, got {pair!r}")
                pairs.append(tuple(pair))
        for key, module in pairs:
            self[key] = module


def _as_parameter(owner, value):
    """PyTorch's containers wrap a plain tensor into a Parameter (a Parameter stays itself)."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value)
    raise TypeError(f"{owner}: expected a Parameter or Tensor, got {type(value).__name__}")


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", ... (a plain Tensor is wrapped into a Parameter)."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def append(self, value):
        setattr(self, str(len(self)), _as_parameter("ParameterList", value))
        return self

    def extend(self, values):
        for v in values:
            self.append(v)
        return self

    def __len__(self) -> int:
        return len(self._parameters)

    def _index(self, i):
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"ParameterList indices must be integers or slices, not {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range")
        return int(i) % n

    def __getitem__(self, i):
        values = list(self._parameters.values())
        if isinstance(i, slice):
            return ParameterList(values[i])
        return values[self._index(i)]

    def __setitem__(self, i, value):
        i = self._index(i)
        key = str(i)
        self._parameters.pop(key, None)
        setattr(self, key, _as_parameter("ParameterList", value))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._parameters.values())

    def __iadd__(self, values):
        return self.extend(values)

    def extra_repr(self):
        return "\n".join(f"({i}): Parameter containing: [{type(p).__name__} of size {'x'.join(map(str, p.shape))}]"
                         for i, p in enumerate(self))


class ParameterDict(Module):
    """An ordered dict of Parameters registered under their keys (a plain Tensor is wrapped)."""

    def __init__(self, parameters: Any = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        if key not in self._parameters:
            raise KeyError(key)
        return self._parameters[key]

    def __setitem__(self, key, value):
        if not isinstance(key, str):
            raise TypeError(f"ParameterDict: keys must be strings, got {type(key).__name__}")
        if not key or "." in key:
            raise KeyError(f"ParameterDict: a key must be a non-empty string without '.', got {key!r}")
        setattr(self, key, _as_parameter("ParameterDict", value))

    def __delitem__(self, key):
        self[key]
        del self._parameters[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self) -> Iterable[str]:
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def get(self, key, default=None):
        return self._parameters.get(key, default)

    def pop(self, key):
        value = self[key]
        del self[key]
        return value

    def clear(self):
        for key in list(self._parameters):
            del self[key]

    def update(self, parameters):
        if isinstance(parameters, (Mapping, ParameterDict)):
            pairs = list(parameters.items())
        else:
            pairs = [tuple(p) for p in parameters]
        for key, value in pairs:
            self[key] = value
