"""record(): notes, for each op run inside it, the module calls it ran in and its inputs that need no gradient
(the graph itself keeps neither)."""
import weakref

from .. import autograd

__all__ = ["op_notes", "record"]


# node -> _Note, filled by record(); entries vanish with their nodes
op_notes = weakref.WeakKeyDictionary()


class _Note:
    __slots__ = ("stack", "inputs")

    def __init__(self, stack, inputs):
        self.stack = stack  # ((module path, call number, class name, has submodules), ...), outermost first
        self.inputs = inputs  # [(argument position, weakref or None, id, shape, dtype, label)]


class record:
    """Context manager: while open, every recorded op is noted with the module calls it runs
    inside and with its tensor arguments that need no gradient (which the graph does not keep).

    `module` (optional) gets a forward pre-hook and a forward hook on itself and every submodule;
    they are removed on exit. Without a module only the inputs are noted.
    """

    def __init__(self, module=None):
        self.module = module
        self._stack = ()
        self._calls = {}
        self._handles = []
        self._buffers = {}
        self._derived = {}  # id(tensor) -> (weakref, label) for results of unrecorded ops on a buffer
        self._parents = set()  # paths of the modules that have submodules

    def __enter__(self):
        if self.module is not None:
            for path, m in self.module.named_modules():
                self._handles.append(m.register_forward_pre_hook(self._enter_module(path)))
                self._handles.append(m.register_forward_hook(self._leave_module(path), always_call=True))
            self._buffers = {id(b): name for name, b in self.module.named_buffers()}
            self._parents = {path for path, m in self.module.named_modules() if any(True for _ in m.children())}
        self._handles.append(autograd.observe(self))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    def _enter_module(self, path):
        def pre_hook(module, args):
            number = self._calls.get(path, 0)
            self._calls[path] = number + 1
            self._stack = self._stack + ((path, number, type(module).__name__, path in self._parents),)

        return pre_hook

    def _leave_module(self, path):
        def hook(module, args, output):
            for i in range(len(self._stack) - 1, -1, -1):
                if self._stack[i][0] == path:
                    self._stack = self._stack[:i]
                    break

        return hook

    def on_apply(self, cls, args, out, start, end):
        first = out[0] if isinstance(out, tuple) else out
        node = first._node
        if node is None:  # not recorded: remember what a buffer became (the slice pe[:T] of the sinusoidal table)
            labels = [self._label(a) for a in args if isinstance(a, autograd.Variable)]
            label = next((l for l in labels if l), None)
            if label is not None:
                for o in (out if isinstance(out, tuple) else (out,)):
                    text = f"{label}[…]" if cls.__name__ == "GetItem" else f"{cls.__name__.lower()}({label})"
                    self._derived[id(o)] = (weakref.ref(o), text)
            return
        inputs = []
        for i, a in enumerate(args):
            if isinstance(a, autograd.Variable):
                if not a._requires_grad:
                    inputs.append((i, weakref.ref(a), id(a), tuple(a._array.shape), str(a._array.dtype),
                                   self._label(a) or _argument_name(cls, i)))
            elif getattr(a, "ndim", 0) >= 1 and hasattr(a, "dtype"):  # an array the functional passed on
                try:
                    ref = weakref.ref(a)
                except TypeError:
                    ref = None
                inputs.append((i, ref, id(a), tuple(a.shape), str(a.dtype), _argument_name(cls, i)))
        op_notes[node] = _Note(self._stack, inputs)

    def _label(self, t):
        if id(t) in self._buffers:
            return self._buffers[id(t)]
        derived = self._derived.get(id(t))
        if derived is not None and derived[0]() is t:
            return derived[1]
        return None

    def on_backward(self, node, grad, start, end):
        pass


_signatures = {}


def _argument_name(cls, position):
    """The name of forward's argument at `position` (after ctx): what an input without grad is called."""
    names = _signatures.get(cls)
    if names is None:
        import inspect

        try:
            names = [p.name for p in inspect.signature(cls.forward).parameters.values()][1:]
        except (TypeError, ValueError):
            names = []
        _signatures[cls] = names
    return names[position] if position < len(names) and not names[position].startswith("*") else "input"
