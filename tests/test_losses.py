"""Losses against PyTorch: values and gradients in float64 for every reduction, the weighted and smoothed
cross-entropy, nll_loss, kl_div, the binary cross-entropies, L1/SmoothL1/Huber; gradcheck; signatures."""
import inspect

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.testing import gradcheck
from torch_reference import both_grads

torch = pytest.importorskip("torch")
TF = torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]


def _both(fn_ours, fn_torch, arrays, diff=(0,), const=()):
    """Run both losses on the same float64 arrays; compare values and the gradients of the `diff` inputs."""
    ours = [ta.tensor(a, requires_grad=i in diff) if a.dtype.kind == "f" else ta.tensor(a)
            for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in diff) for i, a in enumerate(arrays)]
    a, b = fn_ours(*ours), fn_torch(*theirs)
    np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(99).standard_normal(b.shape)
    (a * ta.tensor(w)).sum().backward()
    (b * torch.tensor(w)).sum().backward()
    for i in diff:
        np.testing.assert_allclose(ours[i].grad.numpy(), theirs[i].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=f"gradient of input {i}")


rng = np.random.default_rng(0)
X = rng.standard_normal((5, 4))
T = np.array([0, 3, -100, 1, 3])
W = np.array([0.5, 2.0, 1.0, 3.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_weighted_cross_entropy(reduction, smoothing):
    _both(lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing),
          lambda x, t, w: TF.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing),
          [X, T, W])
    x3 = rng.standard_normal((2, 4, 3))  # (N, C, d1) with (N, d1) targets
    t3 = np.array([[0, 1, 3], [2, -100, 1]])
    _both(lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing),
          lambda x, t, w: TF.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing), [x3, t3, W])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_with_probability_targets(reduction, smoothing):
    p = rng.random((5, 4))
    p /= p.sum(1, keepdims=True)
    _both(lambda x, p: F.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing),
          lambda x, p: TF.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing), [X, p], diff=(0, 1))
    _both(lambda x, p, w: F.cross_entropy(x, p, w, reduction=reduction),
          lambda x, p, w: TF.cross_entropy(x, p, w, reduction=reduction), [X, p, W], diff=(0, 1))
    x3 = rng.standard_normal((2, 4, 3))  # (N, C, d1): 'mean' averages over N·d1
    p3 = rng.dirichlet(np.ones(4), (2, 3)).transpose(0, 2, 1).copy()
    _both(lambda x, p: F.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing),
          lambda x, p: TF.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing), [x3, p3], diff=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    logp = X - np.log(np.exp(X).sum(1, keepdims=True))
    _both(lambda x, t: F.nll_loss(x, t, reduction=reduction), lambda x, t: TF.nll_loss(x, t, reduction=reduction),
          [logp, T])
    _both(lambda x, t, w: F.nll_loss(x, t, w, reduction=reduction),
          lambda x, t, w: TF.nll_loss(x, t, w, reduction=reduction), [logp, T, W])
    x3 = rng.standard_normal((2, 4, 3))  # (N, C, d1)
    t3 = np.array([[0, 1, 3], [2, -100, 1]])
    _both(lambda x, t: F.nll_loss(x, t, reduction=reduction), lambda x, t: TF.nll_loss(x, t, reduction=reduction),
          [x3, t3])


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_kl_div(reduction, log_target):
    logq = np.log(rng.dirichlet(np.ones(4), 3))
    p = rng.dirichlet(np.ones(4), 3)
    p[0, 1] = 0.0  # a zero-probability target term contributes 0 (and no NaN gradient)
    target = np.log(p + 1e-3) if log_target else p
    with np.errstate(divide="ignore"):
        _both(lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
              lambda x, t: TF.kl_div(x, t, reduction=reduction, log_target=log_target), [logq, target],
              diff=(0, 1) if log_target else (0,))  # torch's target gradient is NaN where p = 0, ours 0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropies(reduction):
    x = rng.standard_normal((3, 4)) * 3
    y = rng.random((3, 4))
    p = 1 / (1 + np.exp(-x))
    w = rng.random((1, 4)) + 0.5
    pw = rng.random(4) + 0.5
    _both(lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction),
          lambda p, y: TF.binary_cross_entropy(p, y, reduction=reduction), [p, y], diff=(0, 1))
    _both(lambda p, y, w: F.binary_cross_entropy(p, y, w, reduction=reduction),
          lambda p, y, w: TF.binary_cross_entropy(p, y, w, reduction=reduction), [p, y, w], diff=(0, 1))
    _both(lambda x, y, w, pw: F.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw),
          lambda x, y, w, pw: TF.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw),
          [x, y, w, pw], diff=(0, 1))
    big = np.array([[-800.0, 800.0, 0.0]])  # finite for huge logits
    _both(lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction),
          lambda x, y: TF.binary_cross_entropy_with_logits(x, y, reduction=reduction), [big, np.array([[1.0, 0.0, 1.0]])])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.7}), ("smooth_l1_loss", {"beta": 0.0}),
                                     ("huber_loss", {"delta": 0.6}), ("mse_loss", {})])
def test_regression_losses(name, kw, reduction):
    x = rng.standard_normal((3, 4))
    y = x + rng.standard_normal((3, 4)) * np.array([0.1, 2.0, 0.3, 1.5])
    _both(lambda x, y: getattr(F, name)(x, y, reduction=reduction, **kw),
          lambda x, y: getattr(TF, name)(x, y, reduction=reduction, **kw), [x, y], diff=(0, 1))
    if name != "smooth_l1_loss":  # torch 2.x: weight= on l1, mse, huber
        w = rng.random((3, 4))
        _both(lambda x, y, w: getattr(F, name)(x, y, reduction=reduction, weight=w, **kw),
              lambda x, y, w: getattr(TF, name)(x, y, reduction=reduction, weight=w, **kw), [x, y, w], diff=(0, 1))


def test_gradcheck_every_loss():
    r = np.random.default_rng(5)
    x = ta.tensor(r.standard_normal((3, 4)), requires_grad=True)
    y = ta.tensor(r.random((3, 4)), requires_grad=True)
    p = ta.tensor(r.random((3, 4)) * 0.8 + 0.1, requires_grad=True)
    t = ta.tensor([1, 3, 0])
    w = ta.tensor(r.random(4) + 0.5)
    cases = {
        "cross_entropy(weight, smoothing)": (lambda x: F.cross_entropy(x, t, w, label_smoothing=0.1), [x]),
        "cross_entropy(probabilities)": (lambda x, y: F.cross_entropy(x, y), [x, y]),
        "nll_loss": (lambda x: F.nll_loss(x, t, w), [x]),
        "kl_div": (lambda x, y: F.kl_div(x, y, reduction="batchmean"), [x, y]),
        "kl_div(log_target)": (lambda x, y: F.kl_div(x, y, reduction="sum", log_target=True), [x, y]),
        "binary_cross_entropy": (lambda p, y: F.binary_cross_entropy(p, y), [p, y]),
        "bce_with_logits": (lambda x, y: F.binary_cross_entropy_with_logits(x, y, pos_weight=w), [x, y]),
        "l1_loss": (lambda x, y: F.l1_loss(x, y * 3), [x, y]),
        "smooth_l1_loss": (lambda x, y: F.smooth_l1_loss(x, y * 3, beta=0.5), [x, y]),
        "huber_loss": (lambda x, y: F.huber_loss(x, y * 3, delta=0.5, reduction="none"), [x, y]),
    }
    for name, (fn, inputs) in cases.items():
        assert gradcheck(fn, inputs, name=name)


@pytest.mark.parametrize("name", ["NLLLoss", "KLDivLoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss", "L1Loss",
                                  "SmoothL1Loss", "HuberLoss", "MSELoss"])
def test_module_signatures_and_values(name):
    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    assert [(p.name, p.default) for p in inspect.signature(ours).parameters.values()] == \
           [(p.name, p.default) for p in inspect.signature(theirs).parameters.values()]
    assert ours().reduction == "mean"


@pytest.mark.parametrize("name", ["nll_loss", "kl_div", "cross_entropy", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss", "huber_loss",
                                  "mse_loss"])
def test_functional_signatures(name):
    assert [(p.name, p.default) for p in inspect.signature(getattr(F, name)).parameters.values()] == \
           [(p.name, p.default) for p in inspect.signature(getattr(TF, name)).parameters.values()]


def test_modules_match_torch():
    x = rng.standard_normal((4, 3))
    t = np.array([2, 0, 1, 1])
    w = np.array([1.0, 0.2, 3.0])
    pairs = [
        (nn.CrossEntropyLoss(weight=ta.tensor(w), label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1), x, t),
        (nn.NLLLoss(ignore_index=0, reduction="sum"), torch.nn.NLLLoss(ignore_index=0, reduction="sum"), x, t),
        (nn.BCEWithLogitsLoss(pos_weight=ta.tensor(w)), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
         x, (x > 0).astype(np.float64)),
        (nn.KLDivLoss(reduction="batchmean", log_target=True), torch.nn.KLDivLoss(reduction="batchmean", log_target=True),
         x, x[::-1].copy()),
        (nn.HuberLoss(delta=0.3), torch.nn.HuberLoss(delta=0.3), x, x * 0.1),
        (nn.SmoothL1Loss(beta=2.0), torch.nn.SmoothL1Loss(beta=2.0), x, x * 0.1),
        (nn.L1Loss(reduction="none"), torch.nn.L1Loss(reduction="none"), x, x * 0.1),
        (nn.BCELoss(), torch.nn.BCELoss(), 1 / (1 + np.exp(-x)), (x > 0).astype(np.float64)),
    ]
    for ours, theirs, a, b in pairs:
        np.testing.assert_allclose(ours(ta.tensor(a), ta.tensor(b)).numpy(),
                                   theirs(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-10, err_msg=repr(ours))
    assert list(nn.CrossEntropyLoss(weight=ta.tensor(w)).state_dict()) == ["weight"]  # a buffer, as in PyTorch


def test_cross_entropy_and_mse_modules_match_torch_in_values_and_gradients():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 5)) * 3
    target = np.array([0, 4, -100, 1, 2, 2])
    for reduction in ("mean", "sum", "none"):
        for eps in (0.0, 0.25):
            both_grads(lambda z: nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)(z, ta.tensor(target)),
                        lambda z: torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)(
                            z, torch.tensor(target)), logits)
    images = rng.standard_normal((2, 3, 4))  # (N, C, d1): the class axis is 1
    both_grads(lambda z: nn.CrossEntropyLoss(label_smoothing=0.1)(z, ta.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])),
                lambda z: torch.nn.CrossEntropyLoss(label_smoothing=0.1)(z, torch.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])),
                images)
    pred, goal = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for reduction in ("mean", "sum", "none"):
        both_grads(lambda p, q: nn.MSELoss(reduction=reduction)(p, q),
                    lambda p, q: torch.nn.MSELoss(reduction=reduction)(p, q), pred, goal)


def test_errors_and_legacy_arguments():
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(ta.tensor([0.5, 1.5]), ta.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="Target size"):
        F.binary_cross_entropy_with_logits(ta.zeros(3), ta.zeros(3, 1))
    with pytest.raises(ValueError, match="KLDivLoss: reduction must be one of .*'average'"):
        nn.KLDivLoss(reduction="average")
    with pytest.raises(ValueError, match="weight should be a 1-D tensor of 4 elements"):
        F.nll_loss(ta.zeros(2, 4), ta.tensor([0, 1]), ta.ones(3))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        loss = nn.MSELoss(size_average=False)
    assert loss.reduction == "sum"
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(ta.zeros(2, 2), ta.ones(2, 2) / 2)


def test_a_loss_weight_that_requires_grad_is_refused_not_silently_constant():
    x = ta.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    w = ta.tensor([0.5, 1.0, 2.0], requires_grad=True)
    t = ta.tensor([0, 2])
    for call in (lambda: F.cross_entropy(x, t, weight=w), lambda: F.binary_cross_entropy_with_logits(x, x.detach(), pos_weight=w),
                 lambda: F.mse_loss(x, x.detach(), weight=w.expand(2, 3))):
        with pytest.raises(NotImplementedError, match="requires grad"):
            call()
    F.cross_entropy(x, t, weight=w.detach()).backward()  # detached: the constant weight, as documented
    with ta.no_grad():
        F.cross_entropy(x, t, weight=w)  # no graph recorded: nothing would be lost
