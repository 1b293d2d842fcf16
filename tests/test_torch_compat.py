"""What PyTorch programs call around the model: amp, GradScaler, backend flags, compile, threads, optimiser
keywords and gradient clipping, each against PyTorch where it computes something."""
import math
import warnings

import numpy as np
import pytest

import tinyattn as ta


def _torch():
    return pytest.importorskip("torch")


def test_grad_scaler_follows_pytorchs_algorithm_step_by_step():
    torch = _torch()
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(4)
    grads = [rng.standard_normal(4) for _ in range(6)]
    grads[2][1] = np.inf  # an overflow: the step is skipped and the scale backs off
    grads[4][0] = np.nan
    ours_w, theirs_w = ta.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    ours = ta.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    theirs = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    opt_ours, opt_theirs = ta.optim.SGD([ours_w], lr=0.1), torch.optim.SGD([theirs_w], lr=0.1)
    for g in grads:
        for w, scaler, opt, lib in ((ours_w, ours, opt_ours, ta), (theirs_w, theirs, opt_theirs, torch)):
            opt.zero_grad()
            scaler.scale((w * lib.tensor(g)).sum()).backward()
            scaler.step(opt)
            scaler.update()
        assert ours.get_scale() == theirs.get_scale()
        np.testing.assert_allclose(ours_w.detach().numpy(), theirs_w.detach().numpy(), rtol=1e-12)
    assert ours.state_dict() == {k: v for k, v in theirs.state_dict().items()}


def test_grad_scaler_misuse_and_the_cuda_spelling_without_cuda(monkeypatch):
    monkeypatch.setattr(ta.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ta.amp, "_cuda_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available.  Disabling"):
        scaler = ta.cuda.amp.GradScaler(enabled=True)  # nanoGPT's train.py on a CPU machine
    loss = ta.tensor(2.0, requires_grad=True)
    assert not scaler.is_enabled() and scaler.scale(loss) is loss and scaler.get_scale() == 1.0
    w = ta.tensor([1.0], requires_grad=True)
    opt = ta.optim.SGD([w], lr=1.0)
    (w * 3).sum().backward()
    scaler.step(opt)  # a disabled scaler is opt.step()
    scaler.update()
    assert w.item() == -2.0
    on = ta.amp.GradScaler("cpu")
    (w * 3).sum().backward()
    on.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        on.unscale_(opt)


def test_autocast_warns_once_and_keeps_float32():
    x = ta.randn(2, 3)
    with pytest.warns(UserWarning, match="no float16 kernels"):
        with ta.amp.autocast(device_type="cpu", dtype=ta.float16 if hasattr(ta, "float16") else "float16"):
            assert (x @ x.T).dtype == ta.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ta.autocast("cpu", enabled=False):
            assert not ta.is_autocast_enabled("cpu")
    with pytest.raises(RuntimeError, match="unsupported device_type"):
        ta.amp.autocast("tpu")


def test_flags_compile_threads_and_inference_mode(capsys):
    ta.backends.cuda.matmul.allow_tf32 = True
    ta.backends.cudnn.allow_tf32 = True
    assert ta.backends.cuda.matmul.allow_tf32 and not ta.backends.mps.is_available()
    model = ta.nn.Linear(2, 2)
    assert ta.compile(model) is model and ta.compile(mode="max-autotune")(model) is model
    assert "torch.compile returns the model unchanged" in capsys.readouterr().err
    ta.set_float32_matmul_precision("high")
    assert ta.get_float32_matmul_precision() == "high"
    with pytest.raises(RuntimeError, match="invalid precision"):
        ta.set_float32_matmul_precision("low")
    assert ta.get_num_threads() >= 1
    x = ta.ones(2, requires_grad=True)
    with ta.inference_mode():
        assert not (x * 2).requires_grad
    with ta.inference_mode(False):
        assert (x * 2).requires_grad

    @ta.inference_mode()
    def f():
        return (x * 2).requires_grad

    assert f() is False and ta.is_grad_enabled()


@pytest.mark.parametrize("kind", ["Adam", "AdamW", "SGD"])
@pytest.mark.parametrize("flags", [dict(amsgrad=True), dict(maximize=True), dict(amsgrad=True, maximize=True)])
def test_optimiser_keywords_match_pytorch(kind, flags):
    torch = _torch()
    if kind == "SGD":
        if "amsgrad" in flags:
            pytest.skip("SGD has no amsgrad")
        flags = dict(flags, momentum=0.9, weight_decay=0.1)
    else:
        flags = dict(flags, weight_decay=0.1, betas=(0.8, 0.9))
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 4))
    ours, theirs = ta.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt_ours = getattr(ta.optim, kind)([ours], lr=ta.tensor(0.05, dtype=ta.float64), **flags)  # a tensor lr
    opt_theirs = getattr(torch.optim, kind)([theirs], lr=0.05, **flags)
    for _ in range(4):
        g = rng.standard_normal((3, 4))
        ours.grad, theirs.grad = ta.tensor(g), torch.tensor(g)
        opt_ours.step()
        opt_theirs.step()
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(NotImplementedError, match="differentiable"):
        getattr(ta.optim, kind)([ours], differentiable=True)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_pytorch(norm_type):
    torch = _torch()
    rng = np.random.default_rng(2)
    gs = [rng.standard_normal(s) for s in ((3, 4), (5,))]
    ours = [ta.zeros(*g.shape, dtype=ta.float64, requires_grad=True) for g in gs]
    theirs = [torch.zeros(*g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for o, t, g in zip(ours, theirs, gs):
        o.grad, t.grad = ta.tensor(g), torch.tensor(g)
    n_ours = ta.nn.utils.clip_grad_norm_(ours, 0.5, norm_type=norm_type)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type=norm_type)
    assert n_ours.item() == pytest.approx(n_theirs.item(), rel=1e-12)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    ours[0].grad = ta.full((3, 4), float("nan"), dtype=ta.float64)
    with pytest.raises(RuntimeError, match="non-finite"):
        ta.nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
