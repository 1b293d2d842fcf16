"""Smoke tests: every example runs end to end on a tiny configuration and writes its outputs."""
import importlib.util
import json
import os

import numpy as np
import pytest

import tinyattn as ta

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reverse_learns_a_small_reversal(tmp_path):
    reverse = load("reverse")
    acc = reverse.main(["--seq-len", "6", "--vocab", "4", "--d-model", "16", "--heads", "2", "--ff", "32",
                        "--max-steps", "300", "--eval-every", "50", "--target", "0.99", "--lr", "3e-3",
                        "--out-dir", str(tmp_path), "--no-progress"])
    assert acc > 0.9  # chance is 0.25
    ck = ta.load(tmp_path / "reverse.npz")
    assert ck["step"] <= 300 and "layers.0.self_attn.in_proj_weight" in ck["model"]
    assert (tmp_path / "attention.png").stat().st_size > 1000


def test_char_lm_runs_and_reports_losses(tmp_path, capsys):
    char_lm = load("char_lm")
    val = char_lm.main(["--chars", "20000", "--context", "16", "--d-model", "16", "--heads", "2", "--layers", "1",
                        "--ff", "32", "--max-steps", "30", "--eval-every", "15", "--eval-batches", "2",
                        "--sample-chars", "20", "--out-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert "validation" in out and "---- sample ----" in out
    assert 0 < val < 4.3  # learning: a uniform guess over the 96 symbols scores log(96) = 4.56
    assert char_lm.decode(char_lm.encode("def f(x):\n")) == "def f(x):\n"


def test_char_lm_decays_matrices_only():
    char_lm = load("char_lm")
    model = char_lm.CharTransformer(96, 8, 16, 2, 1, 32, 0.0)
    decay, no_decay = char_lm.param_groups(model, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(map(id, decay["params"] + no_decay["params"])) == sorted(map(id, model.parameters()))
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {names[id(p)] for p in decay["params"]} >= {"embed.weight", "head.weight", "layers.0.linear1.weight"}
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert {"norm.weight", "norm.bias", "head.bias", "layers.0.norm1.weight"} <= {names[id(p)] for p in no_decay["params"]}


def test_positional_encodings_compares_all_four(tmp_path):
    pe = load("positional_encodings")
    results = pe.main(["--seq-len", "6", "--steps", "60", "--eval-every", "20", "--out-dir", str(tmp_path), "--no-progress"])
    assert set(results) == {(t, e) for t in pe.TASKS for e in pe.ENCODINGS}
    final = {key: curve[-1][1] for key, curve in results.items()}
    # reversal needs absolute positions: with them the model learns it, without them it cannot
    assert final["reverse", "sinusoidal"] > 0.9 and final["reverse", "none"] < 0.5
    assert (tmp_path / "positional_encodings.png").exists()
    assert (tmp_path / "positional_tables.png").read_bytes()[:4] == b"\x89PNG"


def test_positional_tables_are_the_modules_own():
    pe = load("positional_encodings")
    sinusoidal, learned = pe.Model("sinusoidal", 8, 6), pe.Model("learned", 8, 6)
    tables = pe.encoding_tables(sinusoidal, learned)
    assert tables["sinusoidal"].shape == tables["learned"].shape == (6, 32)
    pos, i = 5, 3  # e_(pos, 2i) = sin(pos / 10000^(2i/d)), e_(pos, 2i+1) = cos(...)
    assert np.isclose(tables["sinusoidal"][pos, 2 * i], np.sin(pos / 10000 ** (2 * i / 32)), atol=1e-6)
    assert np.isclose(tables["sinusoidal"][pos, 2 * i + 1], np.cos(pos / 10000 ** (2 * i / 32)), atol=1e-6)
    np.testing.assert_array_equal(tables["learned"], learned.pos.weight.numpy())
    similarity = pe.cosine_similarity(tables["sinusoidal"])
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-6)
    # the sinusoidal similarity depends on |i - j| only, nearly: neighbours alike along each diagonal
    np.testing.assert_allclose(np.diag(similarity, 1)[:-1], np.diag(similarity, 1)[1:], atol=0.02)


def test_attention_vs_cnn_rnn_runs(tmp_path):
    cmp = load("attention_vs_cnn_rnn")
    acc, epoch = cmp.main(["--seq-len", "8", "--sizes", "16", "32", "--steps", "5", "--epoch-size", "64",
                         "--epoch-repeats", "1", "--out-dir", str(tmp_path), "--no-progress"])
    assert set(acc) == {(m, s) for m in cmp.MODELS for s in (16, 32)}
    assert set(epoch) == {(m, t) for m in cmp.MODELS for t in (8, 64)} and all(t > 0 for t in epoch.values())
    assert (tmp_path / "attention_vs_cnn_rnn.png").exists()
    x = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(cmp.labels(x, 8), [[1, 2, 4, 6]])


def test_receptive_field_study_smoke(tmp_path):
    study = load("receptive_field_study")
    x = np.array([[3, 5, 8, 2, 8, 7]])  # vocab 8: the symbol 8 is R, "recall x_0"
    np.testing.assert_array_equal(study.labels(x, 8), [[3, 0, 3, 2, 3, 7]])
    assert study.ceiling(x, 8, reach=3) == pytest.approx((5 + 1 / 8) / 6)  # only the R at position 4 is blind
    result = study.main(["--smoke", "--out-dir", str(tmp_path)])
    sizes = result["sizes"]
    assert len(sizes) >= 2 and len(result["runs"]) == len(study.MODELS) * len(sizes) * result["config"]["seeds"]
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["train_accuracy"] <= 1 for r in result["runs"])
    assert 0.8 < result["cnn_ceiling"] < 0.95 and result["chance"] == 1 / 8
    for kind in study.MODELS:
        largest = result["summary"][kind][str(sizes[-1])]
        assert largest["min"] <= largest["mean"] <= largest["max"] and largest["mean"] > result["chance"] + 0.05
    for windowed in ("cnn", "local-attention"):  # neither can see x_0 from past position 3
        assert result["summary"][windowed][str(sizes[-1])]["max"] <= result["cnn_ceiling"] + 0.01
    assert json.loads((tmp_path / "receptive_field_study.json").read_text())["summary"] == result["summary"]
    assert (tmp_path / "receptive_field_study.png").read_bytes()[:4] == b"\x89PNG"
    # receptive fields: changing x_0 moves the CNN's and the masked attention's outputs at positions 0..3 only
    x = study.make_sequences(np.random.default_rng(0), 2, 12, 8, 0.15)
    x2 = x.copy()
    x2[:, 0] = (x2[:, 0] + 1) % 8
    for name, reach in (("cnn", range(4)), ("local-attention", range(4)), ("self-attention", range(12))):
        model = study.FACTORIES[name](8, 12)
        with ta.no_grad():
            moved = np.abs(model(ta.tensor(x)).numpy() - model(ta.tensor(x2)).numpy()).max(axis=(0, 2)) > 1e-6
        assert list(np.nonzero(moved)[0]) == list(reach), name


def test_export_to_torch_gives_the_same_outputs(tmp_path):
    pytest.importorskip("torch")
    export = load("export_to_torch")
    diff = export.main(["--checkpoint", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "w.npz")])
    assert diff < 1e-4


def test_backprop_by_hand_checks_every_gradient(tmp_path, capsys):
    walk = load("backprop_by_hand")
    assert walk.main(["--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for formula in ("dL/db_i = b_i − b̂_i", "dL/dα'_ij = dL/db_i · v_j", "dL/dα_ij =", "dL/dq_i = Σ_j dL/dα_ij k_j",
                    "dL/dk_j =", "dL/dv_j =", "dL/dW^q = Σ_i dL/dq_i a_iᵀ", "dL/dW^k =", "dL/dW^v ="):
        assert formula in out
    assert out.count("[ok]") == 19 and "FAIL" not in out
    assert (tmp_path / "graph.png").read_bytes()[:4] == b"\x89PNG"


def test_backprop_by_hand_fails_loudly_on_a_wrong_derivation(tmp_path, capsys, monkeypatch):
    walk = load("backprop_by_hand")
    right = walk.hand_gradients

    def forgets_the_softmax_jacobian(p, f):
        g = right(p, f)
        g["α"] = g["α'"]  # as if the softmax passed the gradient through unchanged
        return g

    monkeypatch.setattr(walk, "hand_gradients", forgets_the_softmax_jacobian)
    assert walk.main(["--out-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] dL/dα_ij by hand vs autograd" in out and "[ok] dL/db_i by hand vs autograd" in out


def test_second_order_checks_a_hessian_vector_product_and_newton_converges(capsys):
    results = load("second_order").main(["--steps", "7"])
    assert results["hvp_error"] < 1e-6  # double backward against finite differences of gradients
    newton, gd = results["newton"], results["gd"]
    assert newton[-1] < 1e-10 < gd[-1]  # Newton reaches the optimum in 7 steps, gradient descent does not
    assert newton[5] < newton[4] ** 1.5  # quadratic convergence near the optimum
    assert "Hessian-vector product" in capsys.readouterr().out
