"""Whole PyTorch programs, written by others, on tinyattn: the same results as on PyTorch.

Each model file is imported twice, once with PyTorch and once with tinyattn as `torch`
(tests/programs.py); the PyTorch model's weights go into the tinyattn one, and the logits, the loss,
every gradient and the parameters after optimiser steps with gradient clipping must agree to float32
rounding. The real programs (nanoGPT, minGPT) are used where a copy is present (see tests/programs.py);
tests/program_tiny_gpt.py, our own program in their idioms, runs everywhere.
"""
import re
import shutil

import numpy as np
import pytest

import tinyattn as ta
from tinyattn.as_torch import stand_in
from programs import PROGRAMS, load_file, plain_text, program_dir, run_script, write_char_dataset

torch = pytest.importorskip("torch")
HERE = __import__("pathlib").Path(__file__).parent
NANOGPT, MINGPT = program_dir("nanoGPT", "model.py"), program_dir("minGPT", "mingpt/model.py")
needs_nanogpt = pytest.mark.skipif(NANOGPT is None, reason=f"no copy of nanoGPT under {PROGRAMS}")
needs_mingpt = pytest.mark.skipif(MINGPT is None, reason=f"no copy of minGPT under {PROGRAMS}")


def _numpy(t):
    return t.detach().cpu().numpy() if hasattr(t, "cpu") else t.detach().numpy()


def _copy_weights(theirs, ours):
    """The PyTorch model's state (tied weights included) into ours, by name."""
    state = {k: ta.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)


def _hide_sdpa(monkeypatch, *modules):
    """Programs test `hasattr(F, 'scaled_dot_product_attention')` to choose their attention path."""
    for module in modules:
        monkeypatch.delattr(module, "scaled_dot_product_attention")
    monkeypatch.delattr(stand_in("torch.nn.functional"), "scaled_dot_product_attention", raising=False)


def _same_step(theirs, ours, x, y, rtol, atol):
    """One forward and backward of both models: logits, loss and every gradient agree."""
    out_t, out_a = theirs(torch.tensor(x), torch.tensor(y)), ours(ta.tensor(x), ta.tensor(y))
    (logits_t, loss_t), (logits_a, loss_a) = out_t[:2], out_a[:2]
    np.testing.assert_allclose(_numpy(logits_a), _numpy(logits_t), rtol=rtol, atol=atol)
    assert loss_a.item() == pytest.approx(loss_t.item(), rel=rtol)
    loss_t.backward()
    loss_a.backward()
    grads_t = {n: p.grad for n, p in theirs.named_parameters()}
    for name, p in ours.named_parameters():
        assert (p.grad is None) == (grads_t[name] is None), name
        if p.grad is not None:
            np.testing.assert_allclose(_numpy(p.grad), _numpy(grads_t[name]), rtol=rtol, atol=atol, err_msg=name)


def _same_training(theirs, ours, batches, make_optimizer, clip=1.0):
    """A float32 step of both models compared to float32 rounding; then, in float64 (where Adam's division
    by √v cannot amplify rounding noise of near-zero gradients), forward, backward, clip and step on every
    batch, comparing everything on the way and the parameters at the end."""
    _same_step(theirs, ours, *batches[0], rtol=2e-4, atol=2e-5)
    theirs.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)
    theirs.double(), ours.double()
    opt_t, opt_a = make_optimizer(theirs, torch), make_optimizer(ours, ta)
    assert [len(g["params"]) for g in opt_t.param_groups] == [len(g["params"]) for g in opt_a.param_groups]
    for x, y in batches:
        _same_step(theirs, ours, x, y, rtol=1e-9, atol=1e-11)
        norm_t = torch.nn.utils.clip_grad_norm_(theirs.parameters(), clip)
        norm_a = ta.nn.utils.clip_grad_norm_(ours.parameters(), clip)
        assert norm_a.item() == pytest.approx(norm_t.item(), rel=1e-9)
        opt_t.step()
        opt_a.step()
        opt_t.zero_grad(set_to_none=True)
        opt_a.zero_grad(set_to_none=True)
    params_t = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(_numpy(p), _numpy(params_t[name]), rtol=1e-9, atol=1e-11, err_msg=name)


def _batches(vocab, n, b, t, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, vocab, (b, t)), rng.integers(0, vocab, (b, t))) for _ in range(n)]


# ---- our own program in the programs' idioms (always runs) ------------------------------------------------

@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "manual-attention"])
def test_a_small_gpt_in_pytorch_idioms_trains_as_on_pytorch(fused):
    mod_t = load_file(HERE / "program_tiny_gpt.py", "tiny_gpt_torch", tinyattn=False)
    mod_a = load_file(HERE / "program_tiny_gpt.py", "tiny_gpt_tinyattn", tinyattn=True)
    torch.manual_seed(0)
    theirs, ours = mod_t.TinyGPT(fused=fused), mod_a.TinyGPT(fused=fused)
    assert ours.wte.weight is ours.head.weight
    _copy_weights(theirs, ours)
    _same_training(theirs, ours, _batches(11, 3, 2, 8), lambda m, lib: m.configure_optimizers(0.1, 1e-2))
    prompt = np.array([[1, 2, 3]])
    greedy_t = theirs.generate(torch.tensor(prompt), 4, top_k=1)
    greedy_a = ours.generate(ta.tensor(prompt), 4, top_k=1, generator=ta.Generator().manual_seed(0))
    np.testing.assert_array_equal(greedy_a.numpy(), greedy_t.numpy())


# ---- nanoGPT ----------------------------------------------------------------------------------------------

@needs_nanogpt
@pytest.mark.parametrize("flash", [True, False], ids=["sdpa", "manual-attention"])
def test_nanogpt_model_trains_as_on_pytorch(flash, monkeypatch):
    mod_t = load_file(NANOGPT / "model.py", "nanogpt_model_torch", tinyattn=False)
    mod_a = load_file(NANOGPT / "model.py", "nanogpt_model_tinyattn", tinyattn=True)
    if not flash:
        _hide_sdpa(monkeypatch, torch.nn.functional, ta.nn.functional)
    config = dict(block_size=16, vocab_size=37, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
    torch.manual_seed(0)
    theirs, ours = mod_t.GPT(mod_t.GPTConfig(**config)), mod_a.GPT(mod_a.GPTConfig(**config))
    assert ours.transformer.h[0].attn.flash == flash
    assert ours.get_num_params() == theirs.get_num_params()
    _copy_weights(theirs, ours)
    _same_training(theirs, ours, _batches(37, 3, 3, 16),
                   lambda m, lib: m.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu"))
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    out_t = theirs.generate(torch.tensor(prompt), 5, top_k=1)  # top_k=1: the sample is the argmax
    out_a = ours.generate(ta.tensor(prompt), 5, top_k=1)
    np.testing.assert_array_equal(out_a.numpy(), out_t.numpy())
    theirs.crop_block_size(8)
    ours.crop_block_size(8)
    assert ours.transformer.wpe.weight.shape == (8, 16)
    x = np.array([[1, 2, 3, 4, 5, 6, 7, 8]])
    np.testing.assert_allclose(_numpy(ours(ta.tensor(x))[0]), _numpy(theirs(torch.tensor(x))[0]), atol=2e-5)
    assert ours.estimate_mfu(4, 0.5) == pytest.approx(theirs.estimate_mfu(4, 0.5))


def _nanogpt_workdir(tmp_path):
    """A copy of nanoGPT with a character-level data set prepared from local text."""
    work = tmp_path / "nanoGPT"
    shutil.copytree(NANOGPT, work, ignore=shutil.ignore_patterns(".git", "assets"))
    return work, write_char_dataset(work / "data" / "shakespeare_char", plain_text(60_000))


@needs_nanogpt
def test_nanogpt_train_resume_and_sample(tmp_path):
    work, vocab = _nanogpt_workdir(tmp_path)
    common = ["--device=cpu", "--compile=False", "--eval_iters=2", "--log_interval=1", "--block_size=16",
              "--batch_size=4", "--n_layer=1", "--n_head=2", "--n_embd=16", "--dropout=0.0", "--eval_interval=10",
              "--out_dir=out", "--always_save_checkpoint=True"]
    first = run_script(["train.py", "config/train_shakespeare_char.py", *common, "--max_iters=20",
                        "--lr_decay_iters=40", "--warmup_iters=2", "--learning_rate=1e-2"], cwd=work)
    assert first.returncode == 0, first.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"iter \d+: loss ([\d.]+)", first.stdout)]
    assert len(losses) == 21 and losses[0] == pytest.approx(np.log(vocab), rel=0.1)
    assert np.mean(losses[-5:]) < losses[0] - 0.3, losses  # it learns
    assert (work / "out" / "ckpt.pt").exists()
    resumed = run_script(["train.py", "config/train_shakespeare_char.py", *common, "--init_from=resume",
                          "--max_iters=30", "--lr_decay_iters=40", "--warmup_iters=2", "--learning_rate=1e-2"], cwd=work)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming training from out" in resumed.stdout and "iter 30:" in resumed.stdout
    assert "iter 0:" not in resumed.stdout  # it went on from the checkpoint's iteration
    stubs = tmp_path / "stubs"  # sample.py imports tiktoken, which it uses only without a meta.pkl
    stubs.mkdir()
    (stubs / "tiktoken.py").write_text("def get_encoding(name):\n    raise RuntimeError('stub: no tiktoken')\n")
    sample = run_script(["sample.py", "--out_dir=out", "--device=cpu", "--compile=False", "--num_samples=2",
                         "--max_new_tokens=30", "--start=def "], cwd=work, pythonpath=stubs)
    assert sample.returncode == 0, sample.stderr[-3000:]
    texts = sample.stdout.split("---------------")
    assert len(texts) >= 3 and all(len(t.strip()) >= 30 for t in texts[:2])


# ---- minGPT -----------------------------------------------------------------------------------------------

@needs_mingpt
def test_mingpt_model_trains_as_on_pytorch(monkeypatch):
    monkeypatch.syspath_prepend(str(MINGPT))
    mod_t = load_file(MINGPT / "mingpt" / "model.py", "mingpt_model_torch", tinyattn=False)
    mod_a = load_file(MINGPT / "mingpt" / "model.py", "mingpt_model_tinyattn", tinyattn=True)

    def make(mod):
        config = mod.GPT.get_default_config()
        config.model_type, config.vocab_size, config.block_size = "gpt-nano", 13, 12
        return mod.GPT(config)

    torch.manual_seed(0)
    theirs, ours = make(mod_t), make(mod_a)
    _copy_weights(theirs, ours)
    theirs.eval(), ours.eval()  # minGPT's dropout is 0.1: compare without it

    def optimizer(model, lib):
        train = mod_t.GPT.get_default_config() if lib is torch else mod_a.GPT.get_default_config()
        train.learning_rate, train.weight_decay, train.betas = 1e-2, 0.1, (0.9, 0.95)
        return model.configure_optimizers(train)

    _same_training(theirs, ours, _batches(13, 3, 4, 12, seed=1), optimizer)
    prompt = np.array([[1, 2, 3]])
    out_t = theirs.generate(torch.tensor(prompt), 6, do_sample=False)
    out_a = ours.generate(ta.tensor(prompt), 6, do_sample=False)
    np.testing.assert_array_equal(out_a.numpy(), out_t.numpy())
    ours.generate(ta.tensor(prompt), 3, do_sample=True, top_k=4)  # multinomial over top-k


@needs_mingpt
def test_mingpt_adder_and_chargpt_run_as_scripts(tmp_path):
    work = tmp_path / "minGPT"
    shutil.copytree(MINGPT, work, ignore=shutil.ignore_patterns(".git"))
    adder = run_script(["projects/adder/adder.py", "--trainer.max_iters=21", "--trainer.num_workers=2",
                        "--trainer.batch_size=16", f"--system.work_dir='{tmp_path / 'adder'}'"], cwd=work,
                       pythonpath=work)
    assert adder.returncode == 0, adder.stderr[-3000:]
    assert re.search(r"test final score: \d+/\d+ = [\d.]+% correct", adder.stdout)
    assert "iter 20: train loss" in adder.stdout
    (work / "input.txt").write_text(plain_text(20_000))
    char = run_script([str(work / "projects/chargpt/chargpt.py"), "--trainer.max_iters=3",
                       "--trainer.num_workers=0", "--trainer.batch_size=4", "--data.block_size=16", f"--system.work_dir='{tmp_path / 'chargpt'}'"], cwd=work, pythonpath=work)
    assert char.returncode == 0, char.stderr[-3000:]
    assert "iter 0: train loss" in char.stdout
