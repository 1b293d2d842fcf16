"""The public surface says what it is: every module of the library lists its exports in __all__, and those
names exist; the internals users see through dir() stay out of the user-facing namespaces; the package
ships its type hints (py.typed)."""
import importlib
import pathlib
import types

import tinyattn

ROOT = pathlib.Path(tinyattn.__file__).parent


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
    for name in ("tinyattn", "tinyattn.nn", "tinyattn.nn.functional", "tinyattn.functional", "tinyattn.optim",
                 "tinyattn.nn.init", "tinyattn.autograd"):
        namespace = {}
        exec(f"from {name} import *", namespace)
        namespace.pop("__builtins__")
        assert set(namespace) == set(importlib.import_module(name).__all__), name


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
