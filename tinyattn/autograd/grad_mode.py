"""Grad mode: whether ops record a graph (no_grad, enable_grad, set_grad_enabled, inference_mode).

The mode is per thread (`grad_state.grad_enabled`); Function.apply reads it once per op.
"""
import functools
import inspect
import threading

__all__ = ["enable_grad", "grad_state", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled"]


class _State(threading.local):
    grad_enabled = True  # each thread starts recording (a class default: no missing-attribute lookup per op)


grad_state = _State()


def is_grad_enabled():
    return grad_state.grad_enabled


def _set_mode(mode):
    grad_state.grad_enabled = bool(mode)


class _GradMode:
    """Switches graph recording to `mode` for a `with` block, and back to what it was after.

    Also a decorator, with or without parentheses (`@ta.no_grad()`, `@ta.no_grad`). Each call of
    the decorated function enters a fresh copy, so a recursive function restores the mode of its
    own caller; a generator function runs in the mode each time it is resumed, as in PyTorch.
    """

    mode = True

    def __new__(cls, function=None):
        self = super().__new__(cls)
        return self(function) if callable(function) else self

    def __init__(self, function=None):
        pass

    def __enter__(self):
        self._previous = is_grad_enabled()
        _set_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_mode(self._previous)
        return False

    def _fresh(self):
        """A new context manager with this one's mode (one per call, so calls can nest)."""
        return type(self)()

    def __call__(self, function):
        fresh = self._fresh
        if inspect.isgeneratorfunction(function):
            @functools.wraps(function)
            def generator(*args, **kwargs):
                gen = function(*args, **kwargs)
                try:
                    with fresh():
                        item = next(gen)
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            gen.close()
                            raise
                        except BaseException as error:
                            with fresh():
                                item = gen.throw(error)
                        else:
                            with fresh():
                                item = gen.send(sent)
                except StopIteration as stop:
                    return stop.value

            return generator

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with fresh():
                return function(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) inside which no graph is recorded."""

    mode = False


class enable_grad(_GradMode):
    """Context manager (and decorator) that turns graph recording back on inside a `no_grad` block."""

    mode = True


class set_grad_enabled(_GradMode):
    """set_grad_enabled(mode): as a function call it switches recording on or off at once; as a
    context manager (`with ta.set_grad_enabled(False):`) it also switches back on exit; as a
    decorator it applies to each call of the function only. As in PyTorch."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._previous = is_grad_enabled()
        _set_mode(self.mode)

    def __enter__(self):
        return self  # the mode was set by __init__; _previous is what it was before

    def _fresh(self):
        return _Deferred(self.mode)

    def __call__(self, function):
        _set_mode(self._previous)  # used as a decorator: the switch applies only inside the function
        return super().__call__(function)


class inference_mode(_GradMode):
    """torch.inference_mode(mode=True): for tinyattn the same as no_grad() (mode=True) or
    enable_grad() (mode=False); it has no separate inference tensors. A context manager and a decorator,
    with or without parentheses."""

    def __new__(cls, mode=True):
        if callable(mode):  # @inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = not mode

    def _fresh(self):
        return _Deferred(self.mode)


class _Deferred(_GradMode):
    """set_grad_enabled's mode, entered at each call of a function it decorates."""

    def __init__(self, mode):
        self.mode = mode
