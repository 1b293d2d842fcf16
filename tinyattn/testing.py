"""gradcheck and gradgradcheck: compare hand-written backwards (first and second derivatives) with central
finite differences."""
import numpy as np

from .autograd import Variable, enable_grad, grad, no_grad
from .backend import device_of, move

__all__ = [
    "gradcheck", "GradcheckError", "gradgradcheck",
]


class GradcheckError(AssertionError):
    pass


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, name=None, seed=0):
    """Check d(fn)/d(input) for every input that requires grad, element by element.

    The outputs are contracted with a fixed random weight w, L = Σ w ∘ fn(*inputs), so that
    an error in any output element shows (with .sum() a wrong gradient that only permutes or
    mixes output elements would pass). The analytic dL/dx comes from backward(w); the
    numeric one from central differences, (L(x + eps·e_i) - L(x - eps·e_i)) / (2 eps), for
    every element i, in float64. Passes when |analytic - numeric| <= atol + rtol·|numeric|
    everywhere; otherwise raises GradcheckError naming the op, the input, the worst element
    and both values. `inputs` is a sequence of inputs, or one tensor (as in PyTorch); `fn` returns a
    tensor or a tuple of tensors. Inputs may live on the GPU: the weights go to the outputs' device,
    and each perturbation is written into the input there.
    """
    op = name or getattr(fn, "__name__", repr(fn))
    if isinstance(inputs, Variable):
        inputs = [inputs]  # one tensor, as PyTorch takes it (list() would walk its rows)
    else:
        try:
            inputs = list(inputs)
        except TypeError:
            raise TypeError(f"gradcheck({op}): inputs must be a tensor or a sequence of inputs, got "
                            f"{type(inputs).__name__}") from None
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Variable) and x.requires_grad]
    if not checked:
        raise ValueError(f"gradcheck({op}): no input requires grad")
    for i in checked:
        if inputs[i]._array.dtype != np.float64:
            raise TypeError(f"gradcheck({op}): input {i} is {inputs[i]._array.dtype}; use float64 inputs")

    rng = np.random.default_rng(seed)
    outputs = _as_tuple(fn(*inputs))
    for k, o in enumerate(outputs):
        if not isinstance(o, Variable):
            raise TypeError(f"gradcheck({op}): fn must return a tensor or a tuple of tensors, got "
                            f"{type(o).__name__}" + (f" at output {k}" if len(outputs) > 1 else ""))
    weights = [move(rng.standard_normal(o._array.shape), device_of(o._array)) for o in outputs]

    def contracted():
        with no_grad():
            return sum(float(np.sum(w * o._array)) for w, o in zip(weights, _as_tuple(fn(*inputs))))

    for i in checked:
        inputs[i].grad = None
    for o, w in zip(outputs, weights):
        if o.requires_grad:
            o.backward(w.astype(o._array.dtype), retain_graph=True)

    for i in checked:
        x = inputs[i]
        analytic = np.zeros(x._array.shape) if x.grad is None else np.asarray(x.grad.numpy(), dtype=np.float64)
        numeric = np.zeros(x._array.shape)
        if not (x._array.flags.c_contiguous if isinstance(x._array, np.ndarray) else x._array.is_contiguous):
            raise ValueError(f"gradcheck({op}): input {i} must be contiguous")
        flat = x._array.reshape(-1)  # a view: perturbs x in place
        for k in range(flat.size):
            original = float(flat[k])
            flat[k] = original + eps
            plus = contracted()
            flat[k] = original - eps
            minus = contracted()
            flat[k] = original
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if np.any(excess > 0) or not np.all(np.isfinite(analytic)):
            flat_worst = int(np.nanargmax(np.where(np.isfinite(analytic), excess, np.inf)))
            worst = tuple(int(i) for i in np.unravel_index(flat_worst, x._array.shape))
            raise GradcheckError(
                f"gradcheck({op}): gradient of input {i} (shape {x._array.shape}) is wrong at element {worst}: "
                f"analytic {float(analytic[worst]):.8g}, numeric {float(numeric[worst]):.8g} "
                f"(atol={atol}, rtol={rtol}; max abs error {np.nanmax(np.abs(analytic - numeric)):.3g})"
            )
    return True


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, name=None, seed=0):
    """Check the second derivatives of fn: gradcheck of the map (inputs, v) -> v·d(fn)/d(inputs), whose
    value is computed by `grad(..., create_graph=True)`, i.e. by every op's differentiable backward.

    That map is linear in v and depends on the inputs through the first derivative, so gradcheck of it checks
    d²fn/d(inputs)² (contracted with v) and the v-direction (the first derivative again) element by element,
    against central differences of the gradient. Before that, the create_graph gradient is compared with the
    plain backward's (atol, rtol): a differentiable backward that computes a different first derivative fails
    here, naming the input. grad_outputs: one tensor per output of fn (None: random float64 ones, drawn from
    `seed`); they become inputs of the check, so they must be float64 and are given requires_grad=True.
    """
    op = name or getattr(fn, "__name__", repr(fn))
    inputs = [inputs] if isinstance(inputs, Variable) else list(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Variable) and x.requires_grad]
    if not diff:
        raise ValueError(f"gradgradcheck({op}): no input requires grad")
    with enable_grad():
        outputs = _as_tuple(fn(*inputs))
    rng = np.random.default_rng(seed + 1)
    if grad_outputs is None:
        grad_outputs = [o._wrap(move(rng.standard_normal(o._array.shape), device_of(o._array)), True)
                        for o in outputs]
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Variable) else list(grad_outputs)
        if len(grad_outputs) != len(outputs):
            raise ValueError(f"gradgradcheck({op}): {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
        grad_outputs = [v.detach().requires_grad_(True) for v in grad_outputs]
    n_in = len(inputs)

    def first_derivative(*args):
        with enable_grad():
            pairs = [(o, v) for o, v in zip(_as_tuple(fn(*args[:n_in])), args[n_in:]) if o.requires_grad]
            if not pairs:
                return ()
            grads = grad([o for o, _ in pairs], [args[i] for i in diff], [v for _, v in pairs], create_graph=True,
                         allow_unused=True)
        return tuple(g for g in grads if g is not None)

    _compare_with_plain_backward(op, fn, inputs, diff, grad_outputs, first_derivative, atol, rtol)
    # gradcheck's output weights from another stream than default_rng(seed), which tests often draw their inputs
    # from: weights equal to an input can hide an error (a norm's Hessian times x is 0 by construction)
    return gradcheck(first_derivative, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol, name=f"{op} (grad)",
                     seed=seed + 0x5EED)


def _compare_with_plain_backward(op, fn, inputs, diff, grad_outputs, first_derivative, atol, rtol):
    with enable_grad():
        outs = [(o, v) for o, v in zip(_as_tuple(fn(*inputs)), grad_outputs) if o.requires_grad]
        if not outs:
            return
        plain = grad([o for o, _ in outs], [inputs[i] for i in diff], [v.detach() for _, v in outs],
                     retain_graph=True, allow_unused=True)
        graphed = grad([o for o, _ in outs], [inputs[i] for i in diff], [v for _, v in outs], create_graph=True,
                       allow_unused=True)
    for i, p, g in zip(diff, plain, graphed):
        if (p is None) != (g is None):
            raise GradcheckError(f"gradgradcheck({op}): input {i} gets a gradient from one backward only "
                                 f"(plain: {p is not None}, create_graph: {g is not None})")
        if p is not None and not np.allclose(g.numpy(), p.numpy(), atol=atol, rtol=rtol):
            worst = float(np.max(np.abs(g.detach().numpy() - p.numpy())))
            raise GradcheckError(f"gradgradcheck({op}): the create_graph gradient of input {i} differs from the plain "
                                 f"backward's (max abs difference {worst:.3g}): a differentiable_backward is wrong")
