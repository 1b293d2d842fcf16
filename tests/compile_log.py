"""What Numba compiles in a fresh process: the scripts that tests run with `python -c` (or as a file) record it with
`compile_recorder`."""


def compile_recorder(keep="True", outermost=False):
    """Python source for such a script, to place before the code whose compilations it counts: a list `compiled`,
    and a Numba compile-event listener that appends to it the name of each function Numba starts to compile whose
    Python function `fn` makes the expression `keep` true (only the outermost compilation, not the helpers it
    compiles inside, when `outermost`)."""
    nested = "self.depth == 1 and " if outermost else ""
    return f'''
from numba.core import event as _compile_event

compiled = []


class _CompileRecorder(_compile_event.Listener):
    depth = 0

    def on_start(self, ev):
        self.depth += 1
        fn = getattr((ev.data or {{}}).get("dispatcher"), "py_func", None)
        if {nested}fn is not None and ({keep}):
            compiled.append(fn.__name__)

    def on_end(self, ev):
        self.depth -= 1


_compile_event.register("numba:compile", _CompileRecorder())
'''
