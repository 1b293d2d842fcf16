"""ModuleList, Sequential and ModuleDict."""
from collections.abc import Mapping

from .module import Module


class ModuleList(Module):
    """A list of modules whose parameters are registered ("0.weight", "1.weight", ...)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected a Module, got {type(module).__name__} at index "
                            f"{len(self._modules)}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Applies its modules in order: Sequential(a, b)(x) = b(a(x))."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for m in self:
            x = m(x)
        return x


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered under their keys ("encoder.weight", ...).

    Keys are strings without "." that do not shadow an attribute or method (keys, items, training, ...),
    as in PyTorch; each module is also an attribute (md.encoder). Insertion order is kept.
    """

    def __init__(self, modules=None):
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

    def __getitem__(self, key):
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

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def clear(self):
        for key in list(self._modules):
            del self[key]

    def update(self, modules):
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
