"""The public surface says what it is: every module of the library lists its exports in __all__, and those
names exist; __all__ holds no private name, no stray module and no internal helper; the user-facing namespaces
show in dir() only what they export; the package ships its type hints (py.typed)."""
import importlib
import inspect
import pathlib
import types

import pytest

import tinyattn

ROOT = pathlib.Path(tinyattn.__file__).parent

# Names the library's own modules share with each other without a leading underscore: internal, never exported.
INTERNAL = {"compile_ahead", "DatasetKind", "numpy_rng", "sdpa_with_offset", "setup_cpu", "sum_to_shape", "to_device"}
# Modules that users reach as namespaces besides the packages (torch.nn.functional, torch.nn.init, torch.linalg).
FACADES = ("tinyattn.nn.functional", "tinyattn.nn.init", "tinyattn.linalg")


def _library_modules():
    """Every module of tinyattn outside the kernels and the private (_-prefixed) ones."""
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] == "kernels" or any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue
        yield ".".join(("tinyattn",) + parts).removesuffix(".py").removesuffix(".__init__")


def test_every_module_lists_existing_names_in_all():
    missing, without = [], []
    for name in _library_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            without.append(name)
            continue
        assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
        missing += [f"{name}.{n}" for n in exported if not hasattr(module, n)]
    assert not without, f"modules without __all__: {without}"
    assert not missing, f"__all__ names that do not exist: {missing}"


def test_star_imports_give_exactly_all():
    for name in _library_modules():
        namespace = {}
        exec(f"from {name} import *", namespace)
        namespace.pop("__builtins__")
        assert set(namespace) == set(importlib.import_module(name).__all__), name


def _own_submodule(module, name):
    value = getattr(module, name)
    return isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{name}"


def _all_violations(module, namespace=True):
    """What is wrong with one module's __all__: private names, modules other than its own submodules (np,
    math, a sibling module), library functions or classes that their home module does not export (a helper
    re-exported under a public name), and in a user-facing namespace the internal helpers (their home module,
    functional.checks say, may list them for its siblings)."""
    found = []
    for n in module.__all__:
        value = getattr(module, n, None)
        if n.startswith("_"):
            found.append(f"{module.__name__}.__all__ lists the private name {n}")
        elif isinstance(value, types.ModuleType) and not _own_submodule(module, n):
            found.append(f"{module.__name__}.__all__ lists the module {value.__name__} as {n}")
        elif namespace and n in INTERNAL:
            found.append(f"{module.__name__}.__all__ lists the internal helper {n}")
        elif inspect.isfunction(value) or inspect.isclass(value):
            home = getattr(value, "__module__", "") or ""
            if home.startswith("tinyattn.") and home != module.__name__ and not any(
                    p.startswith("_") for p in home.split(".")):
                home_all = getattr(importlib.import_module(home), "__all__", ())
                if value.__name__ not in home_all:
                    found.append(f"{module.__name__}.__all__ re-exports {n}, which {home} does not export")
    return found


def _namespace_violations(module):
    """Names dir() shows in a user-facing namespace beyond its __all__ and its own submodules."""
    return [f"{module.__name__}.{n}" for n in dir(module)
            if not n.startswith("_") and n not in module.__all__ and not _own_submodule(module, n)]


def _namespaces():
    """The packages of the library (tinyattn, tinyattn.nn, tinyattn.optim, ...) and the facade modules."""
    packages = [n for n in _library_modules() if hasattr(importlib.import_module(n), "__path__")]
    return packages + list(FACADES)


def test_all_holds_no_private_name_module_or_internal_helper():
    namespaces = set(_namespaces())
    found = [v for name in _library_modules()
             for v in _all_violations(importlib.import_module(name), namespace=name in namespaces)]
    assert not found, found


def test_user_namespaces_show_only_their_exports():
    assert {"tinyattn", "tinyattn.nn", "tinyattn.functional", "tinyattn.optim", "tinyattn.autograd",
            "tinyattn.utils.data"} <= set(_namespaces())
    found = [v for name in _namespaces() for v in _namespace_violations(importlib.import_module(name))]
    assert not found, found


def test_internal_helpers_exist_unexported():
    from tinyattn import random, runtime
    from tinyattn.functional import attention
    from tinyattn.utils.data import dataloader

    for module, name in ((random, "numpy_rng"), (attention, "sdpa_with_offset"), (runtime, "setup_cpu"),
                         (dataloader, "DatasetKind")):
        assert callable(getattr(module, name)) and name not in module.__all__, name


@pytest.mark.parametrize("bad, expected", [
    ({"np": __import__("numpy")}, "np"),                   # a stray imported module in a namespace
    ({"numpy_rng": lambda: None}, "numpy_rng"),            # an internal helper left visible
])
def test_namespace_check_fails_a_wrong_namespace(bad, expected):
    module = types.ModuleType("tinyattn.fake")
    module.__all__ = ["ok"]
    module.ok = 1
    for n, v in bad.items():
        setattr(module, n, v)
    assert _namespace_violations(module) == [f"tinyattn.fake.{expected}"]


@pytest.mark.parametrize("exported, message", [
    ("_cast", "private name _cast"),
    ("np", "the module numpy"),
    ("nn", "the module tinyattn.nn"),                      # a sibling, not this module's own submodule
    ("sum_to_shape", "internal helper sum_to_shape"),
    ("numpy_rng", "internal helper numpy_rng"),
    ("Linear", None),                                      # a re-export its home lists: fine
    ("helper", "re-exports helper, which tinyattn.nn.layers does not export"),
])
def test_all_check_fails_a_wrong_all(exported, message):
    import numpy

    module = types.ModuleType("tinyattn.fake")

    def helper():
        pass

    helper.__module__ = "tinyattn.nn.layers"
    values = {"_cast": 1, "np": numpy, "nn": tinyattn.nn, "sum_to_shape": 1, "numpy_rng": 1,
              "Linear": tinyattn.nn.Linear, "helper": helper}
    setattr(module, exported, values[exported])
    module.__all__ = [exported]
    found = _all_violations(module)
    assert (found == []) if message is None else (len(found) == 1 and message in found[0]), found


def test_user_namespaces_hide_helpers():
    import tinyattn.functional as F
    import tinyattn.nn.init as init

    shown = {n for n in dir(init) if not n.startswith("_")}
    assert shown == {"kaiming_uniform_", "normal_", "ones_", "uniform_", "xavier_uniform_", "zeros_"}, shown
    assert not {"sum_to_shape", "to_device"} & set(dir(F))
    assert "compile_ahead" not in tinyattn.__all__
    for module in (tinyattn, F, tinyattn.nn):  # no submodule is exported by name (optim lists lr_scheduler, as PyTorch)
        assert not [n for n in module.__all__ if isinstance(getattr(module, n), types.ModuleType)], module.__name__


def test_autograd_package_keeps_its_names():
    from tinyattn import autograd

    for name in ("Function", "Variable", "Node", "Context", "VersionCounter", "RemovableHandle", "backward", "grad",
                 "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled", "observe",
                 "replay_view", "view_positions"):
        assert hasattr(autograd, name), name
    assert autograd._observers == ()
    handle = autograd.observe(object())
    assert len(autograd._observers) == 1  # the live tuple, rebound by observe()
    handle.remove()
    assert autograd._observers == ()


def test_type_hints_are_shipped():
    assert (ROOT / "py.typed").is_file()
    from tinyattn.tensor import Tensor

    assert Tensor.numel.__annotations__["return"] == "builtins.int"
    assert "return" in tinyattn.nn.Linear.forward.__annotations__
