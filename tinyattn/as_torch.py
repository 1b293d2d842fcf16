"""Run a PyTorch program on tinyattn: `torch` and its submodules resolve to tinyattn's.

    python -m tinyattn.as_torch train.py --batch_size=12      # the script, its argv, its sibling imports
    python -m tinyattn.as_torch -m package.module ARGS         # a module, as `python -m` runs it

    import tinyattn.as_torch; tinyattn.as_torch.install()      # in a notebook or a test: then `import torch`

It is opt-in and never implicit: nothing changes until `install()` runs, and it says so on stderr. Each torch
module is a thin stand-in over the tinyattn module of the same meaning (`torch.nn.functional` over
`tinyattn.nn.functional`, `torch.utils.data` over `tinyattn.utils.data`, ...; the table is `MODULES`). A name
that tinyattn lacks fails where the program first uses it, with an AttributeError (or ModuleNotFoundError
for a module) that names the torch name and says that tinyattn has no counterpart: never an unrelated error
later, never something else done quietly. `hasattr(torch.nn.functional, "name")` is therefore False for such
a name, as it would be on a PyTorch without it.
"""
import importlib
import importlib.abc
import importlib.machinery
import os
import runpy
import sys
import types

__all__ = [
    "install", "main", "MODULES", "stand_in", "TORCH_VERSION", "TorchModule", "uninstall",
]

# torch module -> the tinyattn module that stands for it
MODULES = {
    "torch": "tinyattn",
    "torch.amp": "tinyattn.amp",
    "torch.autograd": "tinyattn.autograd",
    "torch.autograd.functional": "tinyattn.autograd.functional",
    "torch.backends": "tinyattn.backends",
    "torch.backends.cuda": "tinyattn.backends.cuda",
    "torch.backends.cudnn": "tinyattn.backends.cudnn",
    "torch.backends.mkl": "tinyattn.backends.mkl",
    "torch.backends.mkldnn": "tinyattn.backends.mkldnn",
    "torch.backends.mps": "tinyattn.backends.mps",
    "torch.backends.openmp": "tinyattn.backends.openmp",
    "torch.cuda": "tinyattn.cuda",
    "torch.cuda.amp": "tinyattn.cuda.amp",
    "torch.distributed": "tinyattn.distributed",
    "torch.distributed.algorithms": "tinyattn.distributed",
    "torch.distributed.algorithms.join": "tinyattn.distributed",  # Join
    "torch.linalg": "tinyattn.linalg",
    "torch.nn": "tinyattn.nn",
    "torch.nn.functional": "tinyattn.nn.functional",
    "torch.nn.init": "tinyattn.nn.init",
    "torch.nn.modules": "tinyattn.nn",
    "torch.nn.parallel": "tinyattn.distributed",  # DistributedDataParallel
    "torch.nn.parameter": "tinyattn.nn.parameter",
    "torch.nn.utils": "tinyattn.nn.utils",
    "torch.optim": "tinyattn.optim",
    "torch.optim.lr_scheduler": "tinyattn.optim.lr_scheduler",
    "torch.optim.optimizer": "tinyattn.optim.optimizer",
    "torch.random": "tinyattn.random",
    "torch.serialization": "tinyattn.serialization",
    "torch.testing": "tinyattn.testing",
    "torch.utils": "tinyattn.utils",
    "torch.utils.data": "tinyattn.utils.data",
    "torch.utils.data.dataloader": "tinyattn.utils.data.dataloader",
    "torch.utils.data.dataset": "tinyattn.utils.data.dataset",
    "torch.utils.data.distributed": "tinyattn.utils.data.distributed",
    "torch.utils.data.sampler": "tinyattn.utils.data.sampler",
    "torch.utils.data._utils": "tinyattn.utils.data._utils",
    "torch.utils.data._utils.collate": "tinyattn.utils.data._utils.collate",
}

# The PyTorch API level tinyattn follows (e.g. torch.load's weights_only default of 2.6), for programs that
# compare torch.__version__; the local part says what is really behind it.
TORCH_VERSION = "2.6.0+tinyattn"
_HELP = "see docs/running_pytorch_programs.md in tinyattn's repository for what is supported"


def _missing(name):
    return (f"{name}: tinyattn has no counterpart of this PyTorch name, so this program cannot run on tinyattn "
            f"as it is (`torch` is tinyattn in this process, through tinyattn.as_torch; {_HELP})")


class TorchModule(types.ModuleType):
    """A torch module that reads its names from a tinyattn module (found names are cached on it)."""

    def __init__(self, name, target):
        super().__init__(name, getattr(target, "__doc__", None))
        self.__path__ = []  # a package, so that `import torch.x.y` can look below it
        self.__tinyattn__ = target
        if name == "torch":
            self.__version__ = TORCH_VERSION

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        full = f"{self.__name__}.{attr}"
        if full in MODULES:
            value = stand_in(full)  # not through sys.modules: a module keeps its torch after uninstall()
            setattr(self, attr, value)
            return value
        try:
            value = getattr(self.__tinyattn__, attr)
        except AttributeError:
            raise AttributeError(_missing(full)) from None
        setattr(self, attr, value)
        return value

    def __dir__(self):
        children = [m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == self.__name__]
        return sorted(set(dir(self.__tinyattn__)) | set(children) | set(self.__dict__))

    def __repr__(self):
        return f"<module {self.__name__!r} (tinyattn.as_torch: {self.__tinyattn__.__name__})>"


_stand_ins = {}


def stand_in(name):
    """The one TorchModule for the torch module `name` (made on first use)."""
    if name not in _stand_ins:
        _stand_ins[name] = TorchModule(name, importlib.import_module(MODULES[name]))
    return _stand_ins[name]


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every import of `torch` and `torch.*` before the real torch's finder can."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch" and not fullname.startswith("torch."):
            return None
        if fullname not in MODULES:
            raise ModuleNotFoundError(_missing(fullname), name=fullname)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return stand_in(spec.name)

    def exec_module(self, module):
        pass


_finder = _Finder()


def install(quiet=False):
    """From now on, in this process, `import torch` (and its submodules) gives tinyattn. Returns the
    `torch` module. Call it before anything imports the real torch."""
    existing = sys.modules.get("torch")
    if existing is not None and not isinstance(existing, TorchModule):
        raise RuntimeError("tinyattn.as_torch.install: the real torch is already imported in this process; "
                           "install() must run before anything imports torch")
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
        if not quiet:
            from . import __version__
            print(f"tinyattn.as_torch: `import torch` gives tinyattn {__version__} in this process",
                  file=sys.stderr)
    return importlib.import_module("torch")


def uninstall():
    """Undo install(): forget the stand-in torch modules (for tests; objects already made stay tinyattn's)."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in [n for n, m in sys.modules.items() if isinstance(m, TorchModule)]:
        del sys.modules[name]


def main(argv=None):
    """`python -m tinyattn.as_torch SCRIPT [ARGS...]` or `python -m tinyattn.as_torch -m MODULE [ARGS...]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(__doc__.strip().split("\n\n")[0], file=sys.stderr)
        print("usage: python -m tinyattn.as_torch SCRIPT [ARGS...] | -m MODULE [ARGS...]", file=sys.stderr)
        return 2
    install()
    if argv[0] == "-m":
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, os.getcwd())  # as `python -m` does
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        script = argv[0]
        if not os.path.exists(script):
            print(f"tinyattn.as_torch: can't open file {script!r}: no such file", file=sys.stderr)
            return 2
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(script))  # the script's siblings import, as `python x.py`
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    from tinyattn.as_torch import main as _main  # the importable module's finder, not a second copy's
    sys.exit(_main())
