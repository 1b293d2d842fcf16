"""Optimisers and learning-rate schedules: update rules, param groups, validation, checkpoints,
version counters, and the schedules, each against PyTorch where it is installed and against the
written-out formulas everywhere."""
import math

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
from tinyattn.optim import lr_scheduler

C = np.array([1.0, 2.0, 3.0])  # loss = sum(C · w²), so the gradient is 2 C w


def _param(values=(1.0, -2.0, 3.0)):
    return nn.Parameter(ta.tensor(list(values), dtype=ta.float64))


def _quadratic_run(opt_factory, steps=3):
    w = _param()
    opt = opt_factory([w])
    for _ in range(steps):
        opt.zero_grad()
        (w * w * ta.tensor(C, dtype=ta.float64)).sum().backward()
        opt.step()
    return w.numpy()


def _reference(kind, steps=3, lr=0.1, **kw):
    """The update rules written out, as PyTorch documents them."""
    w = np.array([1.0, -2.0, 3.0])
    m = v = buf = None
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        g = 2 * C * w
        wd = kw.get("weight_decay", 0.0)
        if kind == "sgd":
            g = g + wd * w
            mu = kw.get("momentum", 0.0)
            if mu:
                buf = g.copy() if buf is None else mu * buf + (1 - kw.get("dampening", 0.0)) * g
                g = g + mu * buf if kw.get("nesterov") else buf
            w = w - lr * g
            continue
        if kind == "adam":
            g = g + wd * w
        else:  # adamw
            w = w * (1 - lr * wd)
        m = (1 - b1) * g if m is None else b1 * m + (1 - b1) * g
        v = (1 - b2) * g * g if v is None else b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def _torch():
    return pytest.importorskip("torch")


OPTIMIZERS = {"sgd": ta.optim.SGD, "adam": ta.optim.Adam, "adamw": ta.optim.AdamW}

# ---- update rules --------------------------------------------------------------------------


@pytest.mark.parametrize("kind,kw", [
    ("sgd", {}), ("sgd", {"momentum": 0.9, "weight_decay": 0.1}), ("sgd", {"momentum": 0.9, "dampening": 0.3}),
    ("sgd", {"momentum": 0.9, "nesterov": True}), ("adam", {}), ("adam", {"weight_decay": 0.1}),
    ("adamw", {"weight_decay": 0.1})])
def test_optimizer_updates_follow_the_formulas(kind, kw):
    got = _quadratic_run(lambda p: OPTIMIZERS[kind](p, lr=0.1, **kw))
    np.testing.assert_allclose(got, _reference(kind, **kw), rtol=1e-12)


def test_optimizer_matches_pytorch():
    torch = _torch()
    for kind, extra in (("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
                        ("SGD", {"momentum": 0.5, "dampening": 0.2}), ("Adam", {}), ("AdamW", {})):
        kw = {"lr": 0.05, "weight_decay": 0.1, **extra}
        tw = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
        topt = getattr(torch.optim, kind)([tw], **kw)
        for _ in range(4):
            topt.zero_grad()
            (tw * tw * torch.tensor(C)).sum().backward()
            topt.step()
        got = _quadratic_run(lambda p: getattr(ta.optim, kind)(p, **kw), steps=4)
        np.testing.assert_allclose(got, tw.detach().numpy(), rtol=1e-10, err_msg=f"{kind} {kw}")


def test_defaults_are_pytorchs():
    w = _param()
    assert ta.optim.SGD([w]).defaults == {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                                          "nesterov": False, "maximize": False, "foreach": None,
                                          "differentiable": False, "fused": None}
    adam = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False,
            "foreach": None, "capturable": False, "differentiable": False, "fused": None,
            "decoupled_weight_decay": False}
    assert ta.optim.Adam([w]).defaults == adam
    assert ta.optim.AdamW([w]).defaults == {**adam, "weight_decay": 1e-2, "decoupled_weight_decay": True}


# ---- param groups --------------------------------------------------------------------------


def _two_group_run(make, steps=3, add_later=False):
    """Three parameters in two groups (the second with its own lr and weight decay); returns them."""
    a, b, c = _param(), _param((0.5, 1.5, -1.0)), _param((2.0, -0.5, 0.25))
    if add_later:
        opt = make([{"params": [a, b]}])
    else:
        opt = make([{"params": [a, b]}, {"params": [c], "lr": 0.01, "weight_decay": 0.0}])
    for step in range(steps):
        if add_later and step == 1:
            opt.add_param_group({"params": c, "lr": 0.01, "weight_decay": 0.0})  # a single tensor is fine here
        opt.zero_grad()
        sum(((p * p) * ta.tensor(C, dtype=ta.float64)).sum() for p in (a, b, c)).backward()
        opt.step()
    return [p.numpy() for p in (a, b, c)]


def _torch_two_group_run(torch, name, kw, steps=3, add_later=False):
    a = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 1.5, -1.0], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([2.0, -0.5, 0.25], dtype=torch.float64, requires_grad=True)
    cls = getattr(torch.optim, name)
    if add_later:
        opt = cls([{"params": [a, b]}], **kw)
    else:
        opt = cls([{"params": [a, b]}, {"params": [c], "lr": 0.01, "weight_decay": 0.0}], **kw)
    for step in range(steps):
        if add_later and step == 1:
            opt.add_param_group({"params": c, "lr": 0.01, "weight_decay": 0.0})
        opt.zero_grad()
        sum(((p * p) * torch.tensor(C)).sum() for p in (a, b, c)).backward()
        opt.step()
    return [p.detach().numpy() for p in (a, b, c)]


GROUP_CASES = [("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
               ("Adam", {"lr": 0.1, "weight_decay": 0.1}), ("AdamW", {"lr": 0.1, "weight_decay": 0.1})]


def _alone(cls, values, steps=3, **kw):
    """One parameter starting at `values`, stepped by an optimizer of its own."""
    w = _param(values)
    opt = cls([w], **kw)
    for _ in range(steps):
        opt.zero_grad()
        (w * w * ta.tensor(C, dtype=ta.float64)).sum().backward()
        opt.step()
    return w.numpy()


@pytest.mark.parametrize("name,kw", GROUP_CASES)
def test_groups_each_use_their_own_hyperparameters(name, kw):
    cls = getattr(ta.optim, name)
    a, b, c = _two_group_run(lambda groups: cls(groups, **kw))
    # each group steps as an optimizer of its own with that group's settings would
    np.testing.assert_array_equal(a, _alone(cls, (1.0, -2.0, 3.0), **kw))
    np.testing.assert_array_equal(b, _alone(cls, (0.5, 1.5, -1.0), **kw))
    np.testing.assert_array_equal(c, _alone(cls, (2.0, -0.5, 0.25), **{**kw, "lr": 0.01, "weight_decay": 0.0}))
    # and the second group's settings made a difference
    assert not np.allclose(c, _alone(cls, (2.0, -0.5, 0.25), **kw), rtol=1e-3)


@pytest.mark.parametrize("add_later", [False, True], ids=["in the constructor", "add_param_group"])
@pytest.mark.parametrize("name,kw", GROUP_CASES)
def test_groups_match_pytorch(name, kw, add_later):
    torch = _torch()
    ours = _two_group_run(lambda groups: getattr(ta.optim, name)(groups, **kw), add_later=add_later)
    theirs = _torch_two_group_run(torch, name, kw, add_later=add_later)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=1e-12)


def test_a_group_takes_the_defaults_it_does_not_give():
    a, b = _param(), _param()
    opt = ta.optim.Adam([{"params": [a]}, {"params": (p for p in [b]), "lr": 0.5, "betas": [0.8, 0.9]}], lr=0.1,
                        weight_decay=0.01)
    g0, g1 = opt.param_groups
    flags = {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
             "fused": None, "decoupled_weight_decay": False}
    assert g0 == {"params": [a], "lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, **flags}
    assert g1 == {"params": [b], "lr": 0.5, "betas": (0.8, 0.9), "eps": 1e-8, "weight_decay": 0.01, **flags}
    opt.add_param_group({"params": [_param()], "eps": 1e-6})
    assert opt.param_groups[2]["eps"] == 1e-6 and opt.param_groups[2]["lr"] == 0.1


def test_a_generator_of_parameters_is_one_group():
    model = nn.Linear(3, 2)
    opt = ta.optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [model.weight, model.bias]


def test_lr_property_reads_and_sets_every_group():
    opt = ta.optim.SGD([{"params": [_param()]}, {"params": [_param()]}], lr=0.1)
    assert opt.lr == 0.1
    opt.lr = 0.2
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    opt.param_groups[1]["lr"] = 0.3
    with pytest.raises(ValueError, match=r"different learning rates \[0.2, 0.3\]"):
        opt.lr
    with pytest.raises(ValueError, match="SGD: lr: invalid lr -1"):
        opt.lr = -1


def test_numpy_scalars_are_numbers():
    w = _param()
    opt = ta.optim.Adam([w], lr=np.float32(0.25), betas=(np.float64(0.5), np.float32(0.75)), eps=np.float32(1e-6),
                        weight_decay=np.int64(0))
    group = opt.param_groups[0]
    assert group["lr"] == 0.25 and type(group["lr"]) is float
    assert group["betas"] == (0.5, 0.75) and all(type(b) is float for b in group["betas"])
    w.grad = ta.tensor([1.0, 1.0, 1.0], dtype=ta.float64)
    opt.step()  # the first Adam step moves each element by lr (m̂/√v̂ = 1, up to eps)
    np.testing.assert_allclose(w.numpy(), [0.75, -2.25, 2.75], rtol=1e-5)


def test_state_is_keyed_by_parameter():
    a, b = _param(), _param()
    opt = ta.optim.Adam([a, b], lr=0.1)
    a.grad = ta.ones(3, dtype=ta.float64)
    opt.step()
    assert opt.state[a]["step"] == 1 and b not in opt.state  # b had no gradient: no state, no step
    np.testing.assert_allclose(opt.state[a]["exp_avg"], [0.1, 0.1, 0.1])


def test_adam_counts_steps_per_parameter_like_pytorch():
    def run(make_opt, grad_of):
        p, q = nn.Parameter(ta.tensor([1.0], dtype=ta.float64)), nn.Parameter(ta.tensor([1.0], dtype=ta.float64))
        opt = make_opt([p, q])
        for step in range(3):
            opt.zero_grad()
            p.grad = ta.tensor([grad_of(step)], dtype=ta.float64)
            if step > 0:  # q has no gradient at the first step
                q.grad = ta.tensor([0.5], dtype=ta.float64)
            opt.step()
        return p.numpy()[0], q.numpy()[0]

    _, q = run(lambda ps: ta.optim.Adam(ps, lr=0.1), lambda s: 1.0)
    # q's first update is its own step 1: m̂/√v̂ = 1, so it moves by exactly lr; then again by lr
    assert q == pytest.approx(0.8, abs=1e-7)
    torch = pytest.importorskip("torch")
    for name in ("Adam", "AdamW"):
        tp, tq = torch.tensor([1.0], dtype=torch.float64, requires_grad=True), torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        topt = getattr(torch.optim, name)([tp, tq], lr=0.1, weight_decay=0.01)
        for step in range(3):
            topt.zero_grad(set_to_none=True)
            tp.grad = torch.tensor([1.0 + step], dtype=torch.float64)
            if step > 0:
                tq.grad = torch.tensor([0.5], dtype=torch.float64)
            topt.step()
        ours = run(lambda ps: getattr(ta.optim, name)(ps, lr=0.1, weight_decay=0.01), lambda s: 1.0 + s)
        np.testing.assert_allclose(ours, [tp.item(), tq.item()], rtol=1e-12)


# ---- validation ----------------------------------------------------------------------------

W = _param()


@pytest.mark.parametrize("make,error,match", [
    (lambda: ta.optim.SGD(W, lr=0.1), TypeError,
     "SGD: params argument given to the optimizer should be an iterable of Tensors or dicts, but got Parameter"),
    (lambda: ta.optim.SGD(3, lr=0.1), TypeError, "iterable of Tensors or dicts, but got int"),
    (lambda: ta.optim.SGD({W}, lr=0.1), TypeError, "but got set"),
    (lambda: ta.optim.SGD([], lr=0.1), ValueError, "SGD: optimizer got an empty parameter list"),
    (lambda: ta.optim.Adam([W, np.zeros(3)]), TypeError, "can only optimize Tensors, but param group 0 item 1 is ndarray"),
    (lambda: ta.optim.Adam([W, W]), ValueError, "param group 0 contains the same parameter"),
    (lambda: ta.optim.Adam([{"params": [W]}, {"params": [W]}]), ValueError,
     "some parameters appear in more than one parameter group"),
    (lambda: ta.optim.Adam([W * 2]), ValueError, "Adam: can't optimize a non-leaf Tensor"),
    (lambda: ta.optim.Adam([ta.tensor([1, 2])]), TypeError, "floating-point tensors.*int64"),
    (lambda: ta.optim.Adam([{"lr": 0.1}]), ValueError, "param group 0 has no 'params' entry"),
    (lambda: ta.optim.Adam([{"params": [W], "momentum": 0.9}]), TypeError, r"Adam: param group 0 has unknown key\(s\) \['momentum'\]"),
    (lambda: ta.optim.SGD([W], lr=-0.1), ValueError, r"SGD: invalid lr -0.1 \(must be >= 0\)"),
    (lambda: ta.optim.SGD([W], lr=float("nan")), ValueError, "SGD: invalid lr nan"),
    (lambda: ta.optim.SGD([W], lr="0.1"), TypeError, "SGD: lr must be a number, got str"),
    (lambda: ta.optim.SGD([W], lr=0.1, momentum=-0.9), ValueError, "SGD: invalid momentum -0.9"),
    (lambda: ta.optim.SGD([W], lr=0.1, weight_decay=-1e-4), ValueError, "SGD: invalid weight_decay"),
    (lambda: ta.optim.SGD([W], lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    (lambda: ta.optim.SGD([W], lr=0.1, nesterov=1), TypeError, "SGD: nesterov must be True or False"),
    (lambda: ta.optim.SGD([{"params": [W], "lr": -1.0}], lr=0.1), ValueError, "SGD: param group 0: invalid lr -1.0"),
    (lambda: ta.optim.Adam([W], eps=-1e-8), ValueError, "Adam: invalid eps"),
    (lambda: ta.optim.Adam([W], betas=(1.0, 0.999)), ValueError, r"Adam: invalid beta parameter at index 0: 1.0 \(must be in \[0, 1\)\)"),
    (lambda: ta.optim.AdamW([W], betas=(0.9, -0.1)), ValueError, "AdamW: invalid beta parameter at index 1"),
    (lambda: ta.optim.Adam([W], betas=(0.9,)), ValueError, "betas must be a pair"),
    (lambda: ta.optim.Adam([W], betas=0.9), TypeError, "betas must be a pair of numbers"),
    (lambda: ta.optim.Adam([{"params": [W], "betas": (0.9, 1.5)}]), ValueError, "param group 0: invalid beta parameter at index 1"),
], ids=lambda x: x if isinstance(x, str) and len(x) < 30 else None)
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_add_param_group_errors_leave_the_groups_unchanged():
    a, b = _param(), _param()
    opt = ta.optim.SGD([a], lr=0.1)
    for group, error, match in [
        ([b], TypeError, "a param group must be a dict, but got list"),
        ({"params": [a]}, ValueError, "more than one parameter group"),
        ({"params": {b}}, TypeError, "ordered collections"),
        ({"params": [b], "lr": -1}, ValueError, "SGD: param group 1: invalid lr -1.0"),
        ({"params": [b], "betas": (0.9, 0.99)}, TypeError, "unknown key"),
    ]:
        with pytest.raises(error, match=match):
            opt.add_param_group(group)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [a]


# ---- stepping: version counters, zero_grad, closures ------------------------------------------


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_step_bumps_the_version_of_each_updated_parameter(name):
    a, b = _param(), _param()
    opt = getattr(ta.optim, name)([a, b], lr=0.1)
    a.grad = ta.ones(3, dtype=ta.float64)
    before = a._version, b._version
    opt.step()
    assert a._version > before[0]
    assert b._version == before[1]  # no gradient, not touched


def test_step_between_forward_and_backward_is_an_error_at_backward():
    w = _param()
    opt = ta.optim.SGD([w], lr=0.1)
    w.grad = ta.ones(3, dtype=ta.float64)
    loss = (w * w).sum()  # mul saved w for its backward
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_zero_grad():
    w = _param()
    opt = ta.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and np.all(w.grad.numpy() == 0) and w.grad._array is grad._array
    opt.zero_grad()
    assert w.grad is None


def test_step_with_a_closure_returns_its_loss():
    w = _param()
    opt = ta.optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with ta.no_grad():  # the closure's graph is built even so
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(14.0)
    np.testing.assert_allclose(w.numpy(), [0.8, -1.6, 2.4])


class SignSGD(ta.optim.Optimizer):
    """A user's optimiser written the PyTorch way: its own step() over param_groups and state."""

    def __init__(self, params, lr=0.1, mode="sign"):
        super().__init__(params, dict(lr=lr, mode=mode))

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                state["count"] = state.get("count", 0) + 1
                state["last"] = np.sign(p.grad._array)
                p.data -= group["lr"] * state["last"]
                p._bump_version()


def test_a_user_optimizer_subclass_gets_groups_and_checkpoints():
    a, b = _param(), _param()
    opt = SignSGD([{"params": [a]}, {"params": [b], "lr": 0.5, "mode": "other"}])
    assert opt.param_groups[1]["mode"] == "other" and opt.param_groups[0]["mode"] == "sign"
    for p in (a, b):
        p.grad = ta.tensor([1.0, -1.0, 0.0], dtype=ta.float64)
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, -1.9, 3.0])
    np.testing.assert_allclose(b.numpy(), [0.5, -1.5, 3.0])
    c, d = _param(), _param()
    other = SignSGD([{"params": [c]}, {"params": [d]}])
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[1]["lr"] == 0.5 and other.param_groups[1]["mode"] == "other"
    assert other.state[d]["count"] == 1
    np.testing.assert_array_equal(other.state[d]["last"], [1.0, -1.0, 0.0])


# ---- checkpoints: state_dict / load_state_dict ------------------------------------------------


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.fc2 = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc2(self.drop(nn.functional.gelu(self.norm(self.fc1(x)))))


def _decay_groups(model, weight_decay):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0, "lr": 0.02}]


@pytest.mark.parametrize("make_opt", [
    lambda groups: ta.optim.SGD(groups, lr=0.05, momentum=0.9),
    lambda groups: ta.optim.Adam(groups, lr=0.05),
    lambda groups: ta.optim.AdamW(groups, lr=0.05),
], ids=["SGD", "Adam", "AdamW"])
def test_resume_from_checkpoint_continues_exactly_with_two_groups_and_a_schedule(tmp_path, make_opt):
    def make():
        ta.manual_seed(0)
        model = Small()
        opt = make_opt(_decay_groups(model, 0.1))
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=1e-3)
        return model, opt, sched

    def train(model, opt, sched, steps, seed0):
        losses = []
        for s in range(steps):
            ta.manual_seed(seed0 + s)  # data and dropout masks depend only on the step
            x, y = ta.randn(8, 3), ta.randn(8, 2)
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        return losses

    model, opt, sched = make()
    full = train(model, opt, sched, 10, 100)
    full_params = [p.numpy() for p in model.parameters()]
    model, opt, sched = make()
    first = train(model, opt, sched, 5, 100)
    ta.save({"model": model.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "c.npz")

    ta.manual_seed(99)  # a different initialisation: everything must come from the checkpoint
    model = Small()
    opt = make_opt(_decay_groups(model, 0.1))
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=1e-3)
    ck = ta.load(tmp_path / "c.npz")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    sched.load_state_dict(ck["sched"])
    assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    second = train(model, opt, sched, 5, 105)
    assert first + second == full
    for p, q in zip(model.parameters(), full_params):
        np.testing.assert_array_equal(p.numpy(), q)


def _stepped_adam():
    a, b, c = _param(), _param((0.5, 1.5, -1.0)), nn.Parameter(ta.ones(2, 2, dtype=ta.float64))
    opt = ta.optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.01, "betas": (0.8, 0.9)}], lr=0.1)
    for p in (a, c):
        p.grad = ta.ones(p.shape, dtype=ta.float64)
    opt.step()
    return opt, (a, b, c)


def test_state_dict_layout_is_pytorchs():
    opt, (a, b, c) = _stepped_adam()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert set(sd["state"]) == {0, 2}  # b had no gradient: no state
    assert sd["state"][2]["step"] == 1 and sd["state"][2]["exp_avg"].shape == (2, 2)
    g0, g1 = sd["param_groups"]
    assert g0["params"] == [0, 1] and g1["params"] == [2]  # numbered across the groups
    assert g0["lr"] == 0.1 and g1["lr"] == 0.01 and g1["betas"] == (0.8, 0.9)
    sd["state"][0]["exp_avg"][...] = 7.0  # copies: changing the dict changes no state
    assert opt.state[a]["exp_avg"][0] != 7.0

    torch = pytest.importorskip("torch")
    ta_, tb, tc = (torch.tensor(p.numpy(), requires_grad=True) for p in (a, b, c))
    topt = torch.optim.Adam([{"params": [ta_, tb]}, {"params": [tc], "lr": 0.01, "betas": (0.8, 0.9)}], lr=0.1)
    for p in (ta_, tc):
        p.grad = torch.ones_like(p)
    topt.step()
    tsd = topt.state_dict()
    assert [g["params"] for g in tsd["param_groups"]] == [g["params"] for g in sd["param_groups"]]
    assert [sorted(g) for g in tsd["param_groups"]] == [sorted(g) for g in sd["param_groups"]]
    assert sorted(tsd["state"]) == sorted(sd["state"])
    for i in (0, 2):
        assert sorted(tsd["state"][i]) == sorted(sd["state"][i])
        np.testing.assert_allclose(sd["state"][i]["exp_avg_sq"].numpy(), tsd["state"][i]["exp_avg_sq"].numpy(),
                                   rtol=1e-12)


def test_the_older_str_keyed_layout_still_loads():
    opt, params = _stepped_adam()
    sd = opt.state_dict()
    old = {"state": {str(k): {n: (v.numpy() if isinstance(v, ta.Tensor) else v) for n, v in b.items()}
                     for k, b in sd["state"].items()},
           "param_groups": {str(i): {**g, "params": np.array(g["params"]), "betas": np.array(g["betas"])}
                            for i, g in enumerate(sd["param_groups"])}}
    fresh = [_param(), _param(), nn.Parameter(ta.zeros(2, 2, dtype=ta.float64))]
    other = ta.optim.Adam([{"params": fresh[:2]}, {"params": fresh[2:]}], lr=0.2)
    other.load_state_dict(old)
    assert other.param_groups[1]["betas"] == (0.8, 0.9)
    np.testing.assert_array_equal(other.state[fresh[0]]["exp_avg"], opt.state[params[0]]["exp_avg"])


def test_a_fresh_optimizer_saves_and_loads(tmp_path):
    opt = ta.optim.AdamW(_decay_groups(Small(), 0.1), lr=0.3)
    sd = opt.state_dict()
    assert sd["state"] == {}
    ta.save({"optim": sd}, tmp_path / "fresh.npz")
    other = ta.optim.AdamW(_decay_groups(Small(), 0.5), lr=0.1)
    other.load_state_dict(ta.load(tmp_path / "fresh.npz")["optim"])
    assert [(g["lr"], g["weight_decay"]) for g in other.param_groups] == [(0.3, 0.1), (0.02, 0.0)]


def test_load_state_dict_restores_per_group_hyperparameters_and_state():
    opt, params = _stepped_adam()
    opt.param_groups[1]["lr"] = 0.005
    sd = opt.state_dict()
    fresh = [_param(), _param(), nn.Parameter(ta.zeros(2, 2, dtype=ta.float64))]
    other = ta.optim.Adam([{"params": fresh[:2]}, {"params": fresh[2:]}], lr=0.2)
    other.load_state_dict(sd)
    assert [g["lr"] for g in other.param_groups] == [0.1, 0.005]
    assert other.param_groups[1]["betas"] == (0.8, 0.9)
    assert other.param_groups[1]["params"][0] is fresh[2]
    assert other.state[fresh[2]]["step"] == 1 and fresh[1] not in other.state
    np.testing.assert_array_equal(other.state[fresh[0]]["exp_avg"], opt.state[params[0]]["exp_avg"])
    assert other.state[fresh[0]]["exp_avg"] is not opt.state[params[0]]["exp_avg"]


def _corrupt(edit):
    def run():
        opt, _ = _stepped_adam()
        sd = opt.state_dict()
        edit(sd)
        return sd
    return run


@pytest.mark.parametrize("edit,error,match", [
    (lambda sd: sd["param_groups"].pop(1), ValueError, "Adam.load_state_dict: the checkpoint has 1 parameter group"),
    (lambda sd: sd["param_groups"][0].update(params=[0]), ValueError,
     r"param group 0 has 1 parameter\(s\) in the checkpoint, 2 in this optimizer"),
    (lambda sd: sd["param_groups"][1].update(momentum=0.9), ValueError, r"param group 1 has unknown key\(s\) \['momentum'\]"),
    (lambda sd: sd.update(step_count=3), ValueError, "expected the keys 'param_groups' and 'state'"),
    (lambda sd: sd.pop("param_groups"), ValueError, "expected the keys 'param_groups' and 'state'"),
    (lambda sd: sd["state"][2].update(exp_avg=np.zeros((4,))), ValueError,
     r"state 2: 'exp_avg' has shape \(4,\), the parameter has shape \(2, 2\)"),
    (lambda sd: sd["state"][0].pop("exp_avg_sq"), ValueError, r"state 0 has the keys \['exp_avg', 'step'\]"),
    (lambda sd: sd["state"][0].update(momentum_buffer=np.zeros(3)), ValueError, "Adam keeps"),
    (lambda sd: sd["state"].update({5: sd["state"][0]}), ValueError, "state entry 5 refers to no parameter"),
    (lambda sd: sd["state"][0].update(step=1.5), ValueError, "step must be a non-negative integer"),
    (lambda sd: sd["param_groups"][1].update(lr=-0.5), ValueError, "param group 1: invalid lr -0.5"),
    (lambda sd: sd["param_groups"][1].update(betas=(0.9, 1.0)), ValueError, "invalid beta parameter at index 1"),
    (lambda sd: sd.update(param_groups={"0": sd["param_groups"][0], "7": sd["param_groups"][1]}), ValueError,
     "indices 0..n-1"),
])
def test_a_bad_checkpoint_is_refused_and_nothing_is_half_loaded(edit, error, match):
    sd = _corrupt(edit)()
    target = [_param(), _param(), nn.Parameter(ta.zeros(2, 2, dtype=ta.float64))]
    opt = ta.optim.Adam([{"params": target[:2]}, {"params": target[2:], "lr": 0.3}], lr=0.2)
    target[0].grad = ta.ones(3, dtype=ta.float64)
    opt.step()
    before_groups = [dict(g) for g in opt.param_groups]
    before_state = {p: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                    for p, s in opt.state.items()}
    with pytest.raises(error, match=match):
        opt.load_state_dict(sd)
    assert opt.param_groups == before_groups
    assert set(opt.state) == set(before_state)
    for p, s in before_state.items():
        assert opt.state[p].keys() == s.keys()
        for k, v in s.items():
            np.testing.assert_array_equal(opt.state[p][k], v)


def test_a_checkpoint_of_another_optimizer_is_refused():
    sgd = ta.optim.SGD([_param()], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: param group 0 has unknown key\(s\) \['dampening', 'momentum', 'nesterov'\]"):
        ta.optim.Adam([_param()]).load_state_dict(sgd.state_dict())
    with pytest.raises(TypeError, match="expected a dict"):
        ta.optim.Adam([_param()]).load_state_dict([1, 2])


# ---- learning-rate schedules ---------------------------------------------------------------


def _two_groups(lr=1.0, second_lr=0.1, cls=ta.optim.SGD):
    return cls([{"params": [_param()]}, {"params": [_param()], "lr": second_lr}], lr=lr)


def _run_schedule(opt, sched, steps):
    """The lrs of every group before each of `steps` optimiser steps."""
    out = [[g["lr"] for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        sched.step()
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        out.append(sched.get_last_lr())
    return np.array(out)


SCHEDULES = {
    "LambdaLR": (lambda opt: lr_scheduler.LambdaLR(opt, [lambda t: 0.95**t, lambda t: 1 / (t + 1)]),
                 lambda t, base: base * np.array([0.95**t, 1 / (t + 1)])),
    "LambdaLR one function": (lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (t % 3 + 1)),
                              lambda t, base: base * 0.5 * (t % 3 + 1)),
    "LinearLR": (lambda opt: lr_scheduler.LinearLR(opt, start_factor=0.25, end_factor=0.9, total_iters=6),
                 lambda t, base: base * (0.25 + (0.9 - 0.25) * min(6, t) / 6)),
    "LinearLR decreasing": (lambda opt: lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=4),
                            lambda t, base: base * (1.0 + (0.1 - 1.0) * min(4, t) / 4)),
    "CosineAnnealingLR": (lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.01),
                          lambda t, base: 0.01 + (base - 0.01) * (1 + math.cos(math.pi * t / 7)) / 2),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_follow_the_closed_form_on_every_group(name):
    make, formula = SCHEDULES[name]
    opt = _two_groups()
    sched = make(opt)
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 0.1] and sched.base_lrs == [1.0, 0.1]
    lrs = _run_schedule(opt, sched, 20)  # past T_max / total_iters: cosine rises again, linear holds
    expected = np.array([formula(t, np.array([1.0, 0.1])) for t in range(21)])
    np.testing.assert_allclose(lrs, expected, rtol=1e-10, atol=1e-15)
    if hasattr(sched, "_get_closed_form_lr"):
        np.testing.assert_allclose(sched._get_closed_form_lr(), expected[-1], rtol=1e-10)


TORCH_SCHEDULES = {
    "LambdaLR": (lambda mod, opt: mod.LambdaLR(opt, [lambda t: 0.95**t, lambda t: 1 / (t + 1)])),
    "LinearLR": (lambda mod, opt: mod.LinearLR(opt, start_factor=0.25, end_factor=0.9, total_iters=6)),
    "CosineAnnealingLR": (lambda mod, opt: mod.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)),
}


@pytest.mark.parametrize("name", TORCH_SCHEDULES)
def test_schedules_match_pytorch(name):
    torch = _torch()
    make = TORCH_SCHEDULES[name]
    opt = _two_groups()
    ours = _run_schedule(opt, make(lr_scheduler, opt), 25)
    tp = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    topt = torch.optim.SGD([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.1}], lr=1.0)
    tsched = make(torch.optim.lr_scheduler, topt)
    theirs = [[g["lr"] for g in topt.param_groups]]
    for _ in range(25):
        topt.step()
        tsched.step()
        theirs.append(tsched.get_last_lr())
    np.testing.assert_allclose(ours, np.array(theirs), rtol=1e-13, atol=1e-16)


def test_schedules_act_on_what_the_optimizer_uses():
    """The lr a schedule writes is the one the next step uses: with SGD and a gradient of 1, w moves by it."""
    w = _param((0.0,))
    opt = ta.optim.SGD([w], lr=1.0)
    sched = lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=2)
    moves = []
    for _ in range(4):
        before = w.numpy()[0]
        w.grad = ta.ones(1, dtype=ta.float64)
        opt.step()
        sched.step()
        moves.append(before - w.numpy()[0])
    np.testing.assert_allclose(moves, [0.5, 0.75, 1.0, 1.0])


def test_warmup_cosine_schedule():
    opt = ta.optim.SGD([nn.Parameter(ta.zeros(1))], lr=1.0)
    sched = ta.optim.WarmupCosine(opt, warmup_steps=4, total_steps=14, min_lr=0.1)
    assert ta.optim.WarmupCosine is lr_scheduler.WarmupCosine
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(15):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs[:4], [0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[9] == pytest.approx(0.55) and lrs[14] == pytest.approx(0.1)
    assert lrs[15] == pytest.approx(0.1)  # held after total_steps
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_warmup_cosine_on_two_groups_with_their_own_floors():
    opt = _two_groups(lr=1.0, second_lr=0.2)
    sched = ta.optim.WarmupCosine(opt, warmup_steps=2, total_steps=6, min_lr=[0.1, 0.02])
    lrs = _run_schedule(opt, sched, 6)
    np.testing.assert_allclose(lrs[:, 0], [0.5, 1.0, 1.0, 0.1 + 0.45 * (1 + math.cos(math.pi / 4)), 0.55,
                                           0.1 + 0.45 * (1 + math.cos(3 * math.pi / 4)), 0.1])
    np.testing.assert_allclose(lrs[:, 1], lrs[:, 0] / 5)  # the same shape, scaled (floor 0.02 = 0.1 / 5)
    with pytest.raises(ValueError, match=r"expected 2 min_lr values \(one per param group\)"):
        ta.optim.WarmupCosine(_two_groups(), 2, 6, min_lr=[0.1])


@pytest.mark.parametrize("name", ["LambdaLR", "LinearLR", "CosineAnnealingLR", "WarmupCosine"])
def test_a_resumed_schedule_continues_exactly(tmp_path, name):
    make = {"LambdaLR": lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 0.9**t),
            "LinearLR": lambda opt: lr_scheduler.LinearLR(opt, start_factor=0.2, total_iters=5),
            "CosineAnnealingLR": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=6),
            "WarmupCosine": lambda opt: lr_scheduler.WarmupCosine(opt, 3, 9, min_lr=0.01)}[name]
    opt = _two_groups()
    full = _run_schedule(opt, make(opt), 12)
    opt = _two_groups()
    sched = make(opt)
    first = _run_schedule(opt, sched, 5)
    ta.save({"optim": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.npz")
    ck = ta.load(tmp_path / "s.npz")
    opt = _two_groups(lr=0.5, second_lr=0.5)  # a different start: the checkpoint decides
    sched = make(opt)
    opt.load_state_dict(ck["optim"])
    sched.load_state_dict(ck["sched"])
    assert sched.last_epoch == 5 and sched.base_lrs == [1.0, 0.1]
    second = _run_schedule(opt, sched, 7)
    np.testing.assert_array_equal(np.concatenate([first, second[1:]]), full)


def test_resuming_with_last_epoch_needs_initial_lr():
    opt = _two_groups()
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\]"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=5, last_epoch=3)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=5, last_epoch=3)
    assert sched.last_epoch == 4 and [g["lr"] for g in opt.param_groups] == [1.0, 0.1]  # as PyTorch: unchanged
    np.testing.assert_allclose(sched._get_closed_form_lr(), [(1 + math.cos(math.pi * 4 / 5)) / 2 * b for b in (1.0, 0.1)])


def test_scheduler_errors():
    opt = _two_groups()
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lr_scheduler.LinearLR([1])
    with pytest.raises(ValueError, match="start_factor 0: starting multiplicative factor expected to be greater than 0"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="end_factor 1.5"):
        lr_scheduler.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="expected 2 lr_lambdas, but got 1"):
        lr_scheduler.LambdaLR(opt, [lambda t: 1.0])
    with pytest.raises(ValueError, match=r"total_steps \(3\) must exceed warmup_steps \(3\)"):
        lr_scheduler.WarmupCosine(opt, 3, 3)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    good = sched.state_dict()
    bad = [({**good, "T_max": 5, "extra": 1}, r"unknown key\(s\) \['extra'\]"),
           ({k: v for k, v in good.items() if k != "eta_min"}, r"missing key\(s\) \['eta_min'\]"),
           ({**good, "base_lrs": np.array([1.0, 0.1, 0.5]), "last_epoch": 9}, "expected 2 base_lrs")]
    for sd, match in bad:
        with pytest.raises(ValueError, match=match):
            sched.load_state_dict(sd)
        assert sched.last_epoch == 0 and sched.base_lrs == [1.0, 0.1]
    opt.add_param_group({"params": [_param()]})
    with pytest.raises(ValueError, match="the optimizer has 3 param groups, the scheduler was made for 2"):
        sched.step()


def _adam_numpy(w, g, m, v, beta1, beta2, step_size, bias2, eps, decay, l2):
    """Adam's update as NumPy expressions (the CPU backend's fallback), in place."""
    if decay != 1.0:
        w *= decay
    if l2:
        g = g + l2 * w
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    w -= step_size * m / (np.sqrt(v / bias2) + eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decay,l2", [(1.0, 0.0), (1 - 1e-3 * 0.1, 0.0), (1.0, 0.1)])
@pytest.mark.parametrize("rows", [7, 1001])
def test_adam_fused_kernel_equals_numpy_bit_for_bit(dtype, decay, l2, rows):
    """The CPU backend's fused Adam pass (kernels/cpu/optim.py) gives the NumPy expressions' result exactly,
    for Adam, AdamW's decay and Adam's L2 term, over several steps, serial and (1001 x 33 elements, on more
    than one thread) in parallel; a non-contiguous gradient takes the NumPy path and gets the same result."""
    from tinyattn.backend import PARALLEL_ADAM, cpu

    rng = np.random.default_rng(0)
    be = cpu()
    assert (rows * 33 >= PARALLEL_ADAM) == (rows > 7)
    w0, g0 = rng.standard_normal((rows, 33)).astype(dtype), rng.standard_normal((rows, 66)).astype(dtype)
    fused, ref, strided = ([w0.copy(), np.zeros_like(w0), np.zeros_like(w0)] for _ in range(3))
    for t in range(1, 4):
        g = np.ascontiguousarray(g0[:, ::2]) * t
        args = (0.9, 0.999, 1e-3 / (1 - 0.9**t), 1 - 0.999**t, 1e-8, decay, l2)
        be.adam_update(fused[0], g, fused[1], fused[2], *args)
        _adam_numpy(ref[0], g.copy(), ref[1], ref[2], *args)
        be.adam_update(strided[0], (g0 * t)[:, ::2], strided[1], strided[2], *args)  # a strided view
    for a, b, c in zip(fused, ref, strided):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, b)
    assert not np.array_equal(fused[0], w0)


@pytest.mark.parametrize("size", [5, 100_000])
def test_adam_with_eps_zero_over_a_zero_gradient_gives_nan_as_pytorch(size):
    """eps = 0 and a gradient of zeros: m / (√v̂ + eps) is 0 / 0. The fused kernel (serial and parallel sizes)
    gives NaN there, as NumPy and PyTorch do, not a ZeroDivisionError; elsewhere the step is finite."""
    w = ta.tensor(np.ones(size, np.float32), requires_grad=True)
    opt = ta.optim.Adam([w], lr=0.1, eps=0.0)
    g = np.zeros(size, np.float32)
    g[1::2] = 1.0
    w.grad = ta.tensor(g)
    opt.step()
    out = w.detach().numpy()
    assert np.isnan(out[0::2]).all()
    np.testing.assert_allclose(out[1::2], 0.9, rtol=1e-6)


def test_adam_on_dtypes_without_a_kernel():
    """float16 and big-endian parameters (no compiled kernel) take the NumPy expressions, serial or large."""
    for dtype in (np.float16, np.dtype(">f4")):
        for n in (10, 40_000):
            p = ta.nn.Parameter(ta.tensor(np.ones(n, dtype)))
            opt = ta.optim.AdamW([p], lr=0.1)
            p.grad = ta.tensor(np.full(n, 0.5, dtype))
            opt.step()
            assert p.dtype == dtype
            np.testing.assert_allclose(p.detach().numpy().astype(np.float64), (1 - 0.1 * 0.01) - 0.1, rtol=2e-3)
