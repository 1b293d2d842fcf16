"""PyTorch's torch.autograd.functional: vjp, jvp, jacobian, hessian, hvp and vhp of a function of tensors.

All are built on `grad()`; the ones that need a derivative of a derivative (jvp, hessian, hvp, vhp) use
create_graph=True, so every op inside `func` needs its differentiable backward.

    vjp(f, x, v)  = vᵀ J           one backward
    jvp(f, x, v)  = J v            two backwards (the double-vjp trick: J v = d/du [uᵀ J v]... with u a dummy
                                   cotangent: g(u) = uᵀ J is linear in u, and d(g·v)/du = J v)
    jacobian(f, x)                 one backward per output element (reverse mode, rows stacked)
    hessian(f, x)  = jacobian of the gradient of a scalar f
    vhp(f, x, v)  = vᵀ H,  hvp(f, x, v) = H v   (equal for a twice continuously differentiable f: H is
                                   symmetric; both are computed as vᵀ H, one backward through the gradient)

As in PyTorch: `inputs` is a tensor or a tuple of tensors and the results follow that shape (a tuple when a
tuple was given); inputs are detached copies inside (the caller's tensors get no graph and no .grad);
`create_graph=False` returns results without a graph; `strict=True` raises when an output does not depend
on an input (PyTorch's check), otherwise that part is zeros. `vectorize` and other strategies than
reverse mode are not offered: asking for them raises.
"""
import numpy as np

from ..backend import backend_of, device_of, move
from .engine import grad
from .grad_mode import enable_grad
from .variable import Variable

__all__ = ["hessian", "hvp", "jacobian", "jvp", "vhp", "vjp"]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), vᵀ J). v: one tensor per output of func (None only for a one-element output)."""
    with enable_grad():
        was_tuple, inputs = _as_inputs("vjp", inputs, create_graph)
        out_tuple, outputs = _outputs("vjp", func(*inputs))
        v = _vectors("vjp", v, outputs, "v", "outputs of func")
        grads = _grad(outputs, inputs, v, create_graph, strict, "vjp")
    return _shaped(outputs, out_tuple, create_graph), _shaped(grads, was_tuple, create_graph)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), J v). v: one tensor per input (None only for a one-element input)."""
    with enable_grad():
        was_tuple, inputs = _as_inputs("jvp", inputs, create_graph)
        v = _vectors("jvp", v, inputs, "v", "inputs")
        out_tuple, outputs = _outputs("jvp", func(*inputs))
        dummies = [_zeros(o, o._array.shape).requires_grad_(True) for o in outputs]
        g = _grad(outputs, inputs, dummies, True, strict, "jvp")  # uᵀ J, linear in u, with a graph
        used = [(gi, vi) for gi, vi in zip(g, v) if gi._requires_grad]
        if used:
            jv = grad([gi for gi, _ in used], dummies, [vi for _, vi in used], create_graph=create_graph,
                      allow_unused=True)
        else:
            jv = (None,) * len(dummies)
        jv = [_zeros(o, o._array.shape) if j is None else j for o, j in zip(outputs, jv)]
        if strict and any(not gi._requires_grad for gi in g):
            raise RuntimeError("jvp (strict=True): the output is independent of an input")
    return _shaped(outputs, out_tuple, create_graph), _shaped(jv, out_tuple, create_graph)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """d func / d inputs: for an output of shape O and an input of shape I, a tensor of shape O + I.
    Nested as PyTorch's: outputs outside, inputs inside, each level a tuple only when a tuple was given."""
    _reverse_only("jacobian", vectorize, strategy, "strategy")
    with enable_grad():
        was_tuple, inputs = _as_inputs("jacobian", inputs, create_graph)
        out_tuple, outputs = _outputs("jacobian", func(*inputs))
        blocks = [_jacobian_of(o, inputs, create_graph, strict) for o in outputs]
    blocks = [_shaped(row, was_tuple, create_graph) for row in blocks]
    return tuple(blocks) if out_tuple else blocks[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a function with one-element output: for inputs of shapes I and K, blocks of shape I + K
    (a tuple of tuples for a tuple of inputs, as PyTorch's)."""
    _reverse_only("hessian", vectorize, outer_jacobian_strategy, "outer_jacobian_strategy")
    was_tuple, _ = _as_inputs("hessian", inputs, False)

    def gradient(*xs):
        out_tuple, outputs = _outputs("hessian", func(*xs))
        if out_tuple or outputs[0]._array.size != 1:
            raise RuntimeError("hessian: the function must return a single tensor with one element, got "
                               + ("a tuple" if out_tuple else f"shape {tuple(outputs[0]._array.shape)}"))
        return tuple(_grad(outputs, xs, [None], True, strict, "hessian"))

    result = jacobian(gradient, inputs, create_graph=create_graph, strict=strict)
    return result if was_tuple else result[0]


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), vᵀ H) for a function with one-element output."""
    return _vhp("vhp", func, inputs, v, create_graph, strict)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), H v) for a function with one-element output (computed as vᵀ H: H is symmetric)."""
    return _vhp("hvp", func, inputs, v, create_graph, strict)


def _vhp(op, func, inputs, v, create_graph, strict):
    with enable_grad():
        was_tuple, inputs = _as_inputs(op, inputs, create_graph)
        v = _vectors(op, v, inputs, "v", "inputs")
        out_tuple, outputs = _outputs(op, func(*inputs))
        if out_tuple or outputs[0]._array.size != 1:
            raise RuntimeError(f"{op}: the function must return a single tensor with one element")
        g = _grad(outputs, inputs, [None], True, strict, op)
        used = [(gi, vi, k) for k, (gi, vi) in enumerate(zip(g, v)) if gi._requires_grad]
        result = [_zeros(x, x._array.shape) for x in inputs]
        if used:
            total = sum(((gi * vi).sum() for gi, vi, _ in used[1:]), (used[0][0] * used[0][1]).sum())
            parts = grad(total, inputs, create_graph=create_graph, allow_unused=True)
            result = [r if p is None else p for r, p in zip(result, parts)]
        elif strict:
            raise RuntimeError(f"{op} (strict=True): the gradient is independent of the inputs")
    return _shaped(outputs, False, create_graph), _shaped(result, was_tuple, create_graph)


def _jacobian_of(output, inputs, create_graph, strict):
    """One output's Jacobian blocks, one per input: rows by reverse mode, one backward per output element."""
    flat = output.reshape(-1)
    n = flat._array.shape[0]
    rows = [[] for _ in inputs]
    if strict and n and not output._requires_grad:
        raise RuntimeError("jacobian (strict=True): the output is independent of the inputs")
    from ..functional.shape import stack  # called, not imported at load: autograd sits below functional

    device = device_of(output._array)
    for k in range(n):
        basis = np.zeros(n, dtype=output._array.dtype)
        basis[k] = 1
        g = (grad(flat, inputs, flat._wrap(move(basis, device)), retain_graph=True, create_graph=create_graph,
                  allow_unused=True)
             if output._requires_grad else (None,) * len(inputs))
        for i, (x, gi) in enumerate(zip(inputs, g)):
            if gi is None:
                if strict:
                    raise RuntimeError(f"jacobian (strict=True): output {k} is independent of input {i}")
                gi = _zeros(x, x._array.shape)
            rows[i].append(gi)
    blocks = []
    for x, r in zip(inputs, rows):
        shape = tuple(output._array.shape) + tuple(x._array.shape)
        block = stack(r, 0).reshape(shape) if r else _zeros(x, shape)
        blocks.append(block if create_graph else block.detach())
    return blocks


def _zeros(like, shape):
    """Zeros of like's dtype and device, no graph."""
    return like._wrap(backend_of(like._array).xp.zeros(shape, like._array.dtype))


def _grad(outputs, inputs, v, create_graph, strict, op):
    pairs = [(o, vi) for o, vi in zip(outputs, v) if o._requires_grad]
    if not pairs:
        if strict:
            raise RuntimeError(f"{op} (strict=True): the output does not depend on the inputs")
        return [_zeros(x, x._array.shape) for x in inputs]
    grads = grad([o for o, _ in pairs], inputs, [vi for _, vi in pairs], retain_graph=True,
                 create_graph=create_graph, allow_unused=True)
    result = []
    for i, (x, g) in enumerate(zip(inputs, grads)):
        if g is None:
            if strict:
                raise RuntimeError(f"{op} (strict=True): the output is independent of input {i}")
            g = _zeros(x, x._array.shape)
        result.append(g)
    return result


def _as_inputs(op, inputs, create_graph):
    """(was it a tuple, the inputs as fresh leaves that require grad): the caller's tensors stay untouched."""
    was_tuple = isinstance(inputs, (tuple, list))
    items = tuple(inputs) if was_tuple else (inputs,)
    for i, x in enumerate(items):
        if not isinstance(x, Variable):
            raise TypeError(f"{op}: the inputs must be tensors, got {type(x).__name__} at position {i}")
    # create_graph: keep the inputs' own graph (a result may be differentiated w.r.t. what made them)
    fresh = tuple(x.view_as(x) if create_graph and x._requires_grad else x.detach().requires_grad_(True)
                  for x in items)
    return was_tuple, fresh


def _outputs(op, out):
    out_tuple = isinstance(out, (tuple, list))
    outputs = tuple(out) if out_tuple else (out,)
    for i, o in enumerate(outputs):
        if not isinstance(o, Variable):
            raise TypeError(f"{op}: the function must return tensors, got {type(o).__name__} at output {i}")
    return out_tuple, outputs


def _vectors(op, v, like, name, what):
    if v is None:
        for x in like:
            if x._array.size != 1:
                raise RuntimeError(f"{op}: {name} can be left out only when the {what} have one element each; "
                                   f"got shape {tuple(x._array.shape)}")
        return [x._wrap(backend_of(x._array).xp.ones(x._array.shape, x._array.dtype)) for x in like]
    vs = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(vs) != len(like):
        raise RuntimeError(f"{op}: {len(vs)} tensors in {name} for {len(like)} {what}")
    for i, (vi, x) in enumerate(zip(vs, like)):
        if not isinstance(vi, Variable):
            raise TypeError(f"{op}: {name}[{i}] must be a tensor, got {type(vi).__name__}")
        if tuple(vi._array.shape) != tuple(x._array.shape):
            raise RuntimeError(f"{op}: {name}[{i}] has shape {tuple(vi._array.shape)}; the {what[:-1]} there has "
                               f"shape {tuple(x._array.shape)}")
    return list(vs)


def _shaped(items, as_tuple, create_graph):
    items = [t if create_graph else t.detach() for t in items]
    return tuple(items) if as_tuple else items[0]


def _reverse_only(op, vectorize, strategy, name):
    if vectorize:
        raise NotImplementedError(f"{op}: vectorize=True is not supported (tinyattn computes one row per backward)")
    if strategy != "reverse-mode":
        raise NotImplementedError(f"{op}: {name}={strategy!r} is not supported; only 'reverse-mode'")
