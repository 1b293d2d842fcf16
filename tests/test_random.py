"""Generators and random sampling: ta.Generator, the default generator, rand/randn/randint/randperm/
multinomial/normal/bernoulli, the *_like forms, the in-place fills, nn.init's generator=, and tensor
pickling (what DataLoader workers send)."""
import copy
import math
import pickle

import numpy as np
import pytest

import tinyattn as ta

torch = pytest.importorskip("torch")


def _g(seed=0):
    return ta.Generator().manual_seed(seed)


# ---- Generator ------------------------------------------------------------------------------------------


def test_generator_api_matches_pytorch():
    g = ta.Generator()
    assert g.initial_seed() == torch.Generator().initial_seed() == 67280421310721
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    assert g.manual_seed(-1).initial_seed() == torch.Generator().manual_seed(-1).initial_seed() == 2**64 - 1
    s = g.seed()
    assert isinstance(s, int) and 0 <= s < 2**64 and g.initial_seed() == s
    assert g.device.type == "cpu"
    assert ta.manual_seed(3) is ta.default_generator and ta.initial_seed() == 3
    assert ta.random.default_generator is ta.default_generator


def test_same_seed_same_values_and_the_stream_is_numpys_pcg64():
    """A seed gives the same values in every run: the stream is NumPy's PCG64 from that seed."""
    expected = np.random.default_rng(1234).random(5).astype(np.float32)
    np.testing.assert_array_equal(ta.rand(5, generator=_g(1234)).numpy(), expected)
    ta.manual_seed(1234)
    np.testing.assert_array_equal(ta.rand(5).numpy(), expected)
    a = ta.randn(3, 4, generator=_g(7))
    b = ta.randn(3, 4, generator=_g(7))
    assert (a == b).all() and not (a == ta.randn(3, 4, generator=_g(8))).all()


def test_a_generator_does_not_touch_the_default_one():
    ta.manual_seed(0)
    expected = ta.rand(4).numpy()
    ta.manual_seed(0)
    g = _g(0)
    ta.randn(10, generator=g), ta.randperm(5, generator=g), ta.randint(3, (4,), generator=g)
    ta.multinomial(ta.ones(3), 2, generator=g), ta.zeros(3).normal_(generator=g)
    np.testing.assert_array_equal(ta.rand(4).numpy(), expected)


def test_get_state_set_state_round_trip_exactly():
    g = _g(11)
    ta.rand(3, generator=g)
    state = g.get_state()
    assert state.dtype == np.uint8 and state.ndim == 1
    draw = lambda: (ta.rand(7, generator=g).numpy(), ta.randperm(9, generator=g).numpy(),
                    ta.randn(2, generator=g).numpy(), ta.randint(0, 10**12, (3,), generator=g).numpy())
    first = draw()
    g.set_state(state)
    for a, b in zip(first, draw()):
        np.testing.assert_array_equal(a, b)
    assert g.initial_seed() == 11
    other = ta.Generator().set_state(state)  # the state moves between generators
    np.testing.assert_array_equal(ta.rand(7, generator=other).numpy(), first[0])
    # the default generator's state
    saved = ta.get_rng_state()
    x = ta.randn(5).numpy()
    ta.set_rng_state(saved)
    np.testing.assert_array_equal(ta.randn(5).numpy(), x)
    ta.set_rng_state(saved)
    with ta.random.fork_rng():
        ta.randn(100)
    np.testing.assert_array_equal(ta.randn(5).numpy(), x)


def test_set_state_refuses_what_is_not_a_state():
    g = ta.Generator()
    with pytest.raises(TypeError, match="ByteTensor"):
        g.set_state([1, 2])
    with pytest.raises(RuntimeError, match="set_state"):
        g.set_state(ta.zeros(3, dtype=ta.uint8))
    with pytest.raises(TypeError, match="uint8"):
        g.set_state(ta.zeros(3))
    with pytest.raises(TypeError, match="generator"):
        ta.rand(3, generator=3)


def test_generator_pickles():
    g = _g(4)
    h = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(ta.rand(3, generator=g).numpy(), ta.rand(3, generator=h).numpy())


# ---- rand, randn, randint, randperm ------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda L: L.rand(2, 3), lambda L: L.rand((2, 3)), lambda L: L.rand([2, 3]), lambda L: L.randn(size=(2, 3)),
    lambda L: L.randn(L.Size([2, 3])), lambda L: L.rand(()), lambda L: L.randn(2, dtype=L.float64),
    lambda L: L.randint(5, (2, 3)), lambda L: L.randint(3, 5, (4,)), lambda L: L.randint(3, 5, size=[4]),
    lambda L: L.randint(low=1, high=3, size=(2,)), lambda L: L.randint(high=4, size=(2,)),
    lambda L: L.randint(5, size=(2,), dtype=L.float32), lambda L: L.randperm(6), lambda L: L.randperm(0),
    lambda L: L.randperm(4, dtype=L.float32), lambda L: L.rand_like(L.zeros(2, dtype=L.float64)),
    lambda L: L.randn_like(L.zeros(2, 1)), lambda L: L.randint_like(L.zeros(3), 4),
    lambda L: L.randint_like(L.zeros(3, dtype=L.int32), 2, 9), lambda L: L.normal(0.0, 1.0, (2, 3)),
    lambda L: L.normal(L.zeros(3, 1), L.ones(2)), lambda L: L.normal(L.zeros(3)), lambda L: L.normal(1.0, L.ones(2)),
    lambda L: L.normal(L.zeros(3, dtype=L.float64), L.ones(3)), lambda L: L.bernoulli(L.full((2, 2), 0.5)),
    lambda L: L.bernoulli(L.zeros(3), 0.3), lambda L: L.multinomial(L.ones(2, 5), 3),
    lambda L: L.multinomial(L.ones(4), 9, replacement=True),
], ids=lambda c: None)
def test_shapes_and_dtypes_match_pytorch(call):
    ours, theirs = call(ta), call(torch)
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype).replace("tinyattn.", "") == str(theirs.dtype).replace("torch.", "")


def test_randint_values_lie_in_range_and_reach_both_ends():
    v = ta.randint(-3, 4, (2000,), generator=_g(0)).numpy()
    assert v.min() == -3 and v.max() == 3
    assert ta.randint(2**40, 2**40 + 2, (50,), generator=_g(0)).numpy().min() >= 2**40


@pytest.mark.parametrize("call,error", [
    (lambda L: L.randint(5), TypeError),
    (lambda L: L.randint(5, 2), TypeError),  # a size must be a tuple
    (lambda L: L.randint(0, 10, 2.5), TypeError),
    (lambda L: L.randint(5, 3, (2,)), RuntimeError),
    (lambda L: L.randn(), TypeError),
    (lambda L: L.normal(0.0, 1.0), TypeError),
    (lambda L: L.normal(0.0, -1.0, (2,)), RuntimeError),
    (lambda L: L.normal(L.zeros(2), -1.0), RuntimeError),
    (lambda L: L.bernoulli(L.tensor([0.5, 1.5])), RuntimeError),
    (lambda L: L.zeros(3).bernoulli_(1.5), RuntimeError),
    (lambda L: L.zeros(3).uniform_(2, 1), RuntimeError),
    (lambda L: L.zeros(3).exponential_(0), RuntimeError),
    (lambda L: L.zeros(3, dtype=L.int64).random_(5, 2), RuntimeError),
    (lambda L: L.zeros(3, requires_grad=True).normal_(), RuntimeError),
    (lambda L: L.randperm(-1), RuntimeError),
])
def test_errors_have_pytorchs_types(call, error):
    with pytest.raises(error):
        call(torch)
    with pytest.raises(error):
        call(ta)


def test_value_errors_are_also_valueerrors():
    """tinyattn's convention for bad values is ValueError; PyTorch raises RuntimeError: both catch them."""
    with pytest.raises(ValueError, match="randint: low 5 must be less than high 2"):
        ta.randint(5, 2, (3,))


def test_randperm_is_a_permutation_and_reproducible():
    p = ta.randperm(50, generator=_g(3))
    assert p.dtype == np.int64
    np.testing.assert_array_equal(np.sort(p.numpy()), np.arange(50))
    assert not np.array_equal(p.numpy(), np.arange(50))
    np.testing.assert_array_equal(p.numpy(), ta.randperm(50, generator=_g(3)).numpy())


# ---- multinomial ----------------------------------------------------------------------------------------------


def _chi2(counts, p):
    expected = np.asarray(p) / np.sum(p) * np.sum(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def test_multinomial_with_replacement_follows_the_weights():
    p = [0.1, 0.2, 0.3, 0.4]  # unnormalised weights work the same: x2 below
    s = ta.multinomial(ta.tensor(p) * 2, 20000, replacement=True, generator=_g(0)).numpy()
    counts = np.bincount(s, minlength=4)
    assert _chi2(counts, p) < 16.27  # chi-square, 3 degrees of freedom, p = 0.001
    rows = ta.multinomial(ta.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), 50, replacement=True).numpy()
    assert (rows[0] == 1).all() and (rows[1] == 0).all()


def test_multinomial_without_replacement_draws_in_proportion_then_distinct():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    s = ta.multinomial(ta.tensor(np.tile(p, (20000, 1))), 2, generator=_g(1)).numpy()  # (20000, 2)
    assert (s[:, 0] != s[:, 1]).all()
    assert _chi2(np.bincount(s[:, 0], minlength=4), p) < 16.27  # the first draw follows p
    full = ta.multinomial(ta.tensor([0.0, 3.0, 0.0, 1.0]), 4, generator=_g(2)).numpy()
    assert sorted(full) == [0, 1, 2, 3] and set(full[:2]) == {1, 3}  # weight 0 comes last
    # the second draw of a weighted pair: P(second = 0 | first = 1) = 0.1 / 0.9 etc.
    second = s[s[:, 0] == 3][:, 1]
    assert _chi2(np.bincount(second, minlength=4)[:3], p[:3]) < 13.82  # 2 d.o.f., p = 0.001


@pytest.mark.parametrize("call,message", [
    (lambda L: L.multinomial(L.tensor([1.0, -1.0]), 1), "probability tensor contains either `inf`, `nan` or element < 0"),
    (lambda L: L.multinomial(L.tensor([1.0, float("nan")]), 1), "probability tensor contains either `inf`, `nan`"),
    (lambda L: L.multinomial(L.tensor([1.0, float("inf")]), 1), "probability tensor contains either `inf`, `nan`"),
    (lambda L: L.multinomial(L.tensor([0.0, 0.0]), 1), r"invalid multinomial distribution \(sum of probabilities <= 0\)"),
    (lambda L: L.multinomial(L.tensor([1.0, 1.0]), 3), "cannot sample n_sample > prob_dist.size"),
    (lambda L: L.multinomial(L.tensor([1.0, 1.0]), 0), "cannot sample n_sample <= 0 samples"),
    (lambda L: L.multinomial(L.ones(2, 2, 2), 1), "prob_dist must be 1 or 2 dim"),
    (lambda L: L.multinomial(L.tensor([1, 1]), 1), "multinomial only supports floating-point dtypes"),
])
def test_multinomial_errors_match_pytorch(call, message):
    with pytest.raises(RuntimeError, match=message):
        call(torch)
    with pytest.raises(RuntimeError, match=message):
        call(ta)


def test_multinomial_method_and_large_vocabulary_row():
    p = ta.zeros(1, 50000)
    p[0, 31337] = 1.0
    assert ta.tensor([[0.0, 1.0]]).multinomial(1).tolist() == [[1]]
    assert ta.multinomial(p, num_samples=1).tolist() == [[31337]]


# ---- normal, bernoulli and the in-place fills -------------------------------------------------------------------


def test_normal_and_bernoulli_statistics():
    x = ta.normal(2.0, 3.0, (20000,), generator=_g(0)).numpy()
    assert abs(x.mean() - 2.0) < 0.1 and abs(x.std() - 3.0) < 0.1
    y = ta.normal(ta.tensor([0.0, 100.0]), ta.tensor([1.0, 0.0]), generator=_g(0)).numpy()
    assert y[1] == 100.0 and abs(y[0]) < 5
    b = ta.bernoulli(ta.full((20000,), 0.25), generator=_g(0)).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.25) < 0.02
    assert (ta.bernoulli(ta.tensor([0.0, 1.0, 0.0, 1.0])).numpy() == [0, 1, 0, 1]).all()


def test_inplace_fills_write_in_place_and_follow_the_generator():
    for name, args, check in [
        ("normal_", (1.0, 2.0), lambda v: abs(v.mean() - 1) < 0.2 and abs(v.std() - 2) < 0.2),
        ("uniform_", (-2.0, -1.0), lambda v: v.min() >= -2 and v.max() < -1),
        ("bernoulli_", (0.3,), lambda v: set(np.unique(v)) <= {0, 1} and abs(v.mean() - 0.3) < 0.05),
        ("random_", (3, 7), lambda v: v.min() == 3 and v.max() == 6 and (v == np.round(v)).all()),
        ("exponential_", (2.0,), lambda v: v.min() > 0 and abs(v.mean() - 0.5) < 0.05),
        ("geometric_", (0.5,), lambda v: v.min() >= 1 and abs(v.mean() - 2) < 0.2),
        ("log_normal_", (0.0, 0.5), lambda v: v.min() > 0 and abs(np.log(v).std() - 0.5) < 0.05),
        ("cauchy_", (5.0, 1.0), lambda v: abs(np.median(v) - 5) < 0.2),
    ]:
        t = ta.zeros(2000, dtype=ta.float64)
        version = t._version
        out = getattr(t, name)(*args, generator=_g(0))
        assert out is t and t._version > version, name
        assert check(t.numpy()), name
        again = getattr(ta.zeros(2000, dtype=ta.float64), name)(*args, generator=_g(0))
        np.testing.assert_array_equal(again.numpy(), t.numpy())


def test_random_on_integer_tensors_and_the_from_to_keywords():
    t = ta.zeros(1000, dtype=ta.int64).random_(generator=_g(0))
    assert t.numpy().min() >= 0 and t.numpy().max() > 2**60
    assert ta.zeros(500, dtype=ta.uint8).random_(generator=_g(0)).numpy().max() > 250
    r = ta.zeros(500, dtype=ta.int32).random_(10).numpy()
    assert r.min() == 0 and r.max() == 9
    u = ta.zeros(500).uniform_(**{"from": 3.0, "to": 4.0}).numpy()
    assert u.min() >= 3 and u.max() < 4
    assert ta.zeros(200, dtype=ta.int64).bernoulli_(ta.full((200,), 1.0)).numpy().tolist() == [1] * 200
    with pytest.raises(TypeError, match="normal_"):
        ta.zeros(3, dtype=ta.int64).normal_()


def test_inplace_fill_of_a_parameter_under_no_grad_and_a_view():
    p = ta.nn.Parameter(ta.zeros(4))
    with pytest.raises(RuntimeError):
        p.uniform_()
    with ta.no_grad():
        p.uniform_(1.0, 2.0)
    assert (p.numpy() >= 1).all()
    base = ta.zeros(3, 4)
    base[1].normal_(generator=_g(0))
    assert (base.numpy()[0] == 0).all() and (base.numpy()[1] != 0).all()


def test_nn_init_takes_a_generator():
    w1, w2 = ta.zeros(16, 8), ta.zeros(16, 8)
    for init in (ta.nn.init.uniform_, ta.nn.init.normal_, ta.nn.init.xavier_uniform_, ta.nn.init.kaiming_uniform_):
        init(w1, generator=_g(5))
        init(w2, generator=_g(5))
        np.testing.assert_array_equal(w1.numpy(), w2.numpy())
    w = ta.zeros(400, 100)
    ta.nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu", generator=_g(0))
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 400)  # PyTorch's gain(relu) * sqrt(3 / fan_out)
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.99 * bound
    with pytest.raises(ValueError, match="Mode"):
        ta.nn.init.kaiming_uniform_(w, mode="fan_avg")


# ---- pickling and deepcopy (what DataLoader workers send) ------------------------------------------------------


def test_tensors_pickle_as_leaves_with_their_own_values_only():
    base = ta.arange(100000.0)
    view = base[10:12]
    blob = pickle.dumps(view)
    assert len(blob) < 2000  # the view's two values, not the base's 100000
    back = pickle.loads(blob)
    assert back.tolist() == [10.0, 11.0] and back.is_leaf and type(back) is ta.Tensor
    p = ta.nn.Parameter(ta.ones(3))
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is ta.nn.Parameter and q.requires_grad and q.tolist() == [1.0, 1.0, 1.0]
    y = p * 2  # a non-leaf: its graph stays behind
    z = pickle.loads(pickle.dumps(y))
    assert z.is_leaf and z.requires_grad and z.grad_fn is None and z.tolist() == [2.0, 2.0, 2.0]
    i = pickle.loads(pickle.dumps(ta.tensor([1, 2], dtype=ta.int32)))
    assert i.dtype == np.int32 and i.tolist() == [1, 2]


def test_deepcopy_keeps_grad_and_class():
    p = ta.nn.Parameter(ta.ones(2))
    p.grad = ta.full((2,), 3.0)
    q = copy.deepcopy(p)
    assert type(q) is ta.nn.Parameter and q.requires_grad and q.grad.tolist() == [3.0, 3.0]
    with ta.no_grad():
        q.mul_(5)
    assert p.tolist() == [1.0, 1.0]
    m = copy.deepcopy(ta.nn.Linear(2, 2))
    assert isinstance(m.weight, ta.nn.Parameter)


@pytest.mark.skipif(not ta.cuda.is_available(), reason="needs a GPU or Numba's CUDA simulator")
def test_random_numbers_on_the_gpu_equal_the_cpus_for_one_seed():
    on_gpu = ta.randn(3, 2, generator=_g(9), device="cuda")
    assert on_gpu.is_cuda
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), ta.randn(3, 2, generator=_g(9)).numpy())
    filled = ta.zeros(4, device="cuda").uniform_(generator=_g(2))
    assert filled.is_cuda
    np.testing.assert_array_equal(filled.cpu().numpy(), ta.zeros(4).uniform_(generator=_g(2)).numpy())
    idx = ta.multinomial(ta.tensor([0.0, 1.0], device="cuda"), 1)
    assert idx.is_cuda and idx.cpu().tolist() == [1]
    back = pickle.loads(pickle.dumps(on_gpu))
    assert back.is_cuda and back.cpu().tolist() == on_gpu.cpu().tolist()
    batch = ta.utils.data.default_collate([on_gpu[0], on_gpu[1]])
    assert batch.is_cuda and batch.shape == (2, 2)
