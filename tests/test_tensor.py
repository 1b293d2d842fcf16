"""Tensor creation, dtypes and the conveniences a PyTorch user expects."""
import numpy as np
import pytest

import tinyattn as ta


def test_default_dtypes_follow_pytorch():
    assert ta.tensor([1.0, 2.0]).dtype == ta.float32
    assert ta.tensor([1, 2]).dtype == ta.int64
    assert ta.tensor([True]).dtype == ta.bool
    assert ta.tensor(np.zeros(2)).dtype == ta.float64  # an ndarray keeps its dtype
    assert ta.tensor([1, 2], dtype=ta.float64).dtype == ta.float64
    assert ta.zeros(2, 3).dtype == ta.float32 and ta.zeros(2, 3).shape == (2, 3)
    assert ta.ones((2, 3)).shape == (2, 3)
    assert ta.arange(5).dtype == ta.int64 and ta.arange(0.0, 1.0, 0.25).dtype == ta.float32
    assert ta.randn(2, 2, dtype=ta.float64).dtype == ta.float64


def test_scalar_operands_keep_the_tensor_dtype():
    x = ta.ones(3)
    assert (x * 2.5).dtype == ta.float32
    assert (2 * x).dtype == ta.float32
    assert (ta.arange(3) * 0.5).dtype == ta.float32
    assert (ta.arange(3) + ta.ones(3)).dtype == ta.float32
    assert (np.float32(2) * x).__class__ is ta.Tensor


def test_integer_true_division_and_powers_give_float32():
    np.testing.assert_array_equal((ta.arange(6) / 2).numpy(), np.arange(6) / 2)
    assert (ta.arange(6) / 2).dtype == ta.float32
    assert (ta.arange(3) / ta.arange(1, 4)).dtype == ta.float32
    assert (ta.arange(3) ** 0.5).dtype == ta.float32
    assert ta.tensor(np.float64(1.5)).dtype == ta.float64
    assert ta.full((2,), 3).dtype == ta.int64 and ta.full((2,), 0.5).dtype == ta.float32


def test_manual_seed_makes_random_tensors_reproducible():
    ta.manual_seed(7)
    a = ta.randn(3).numpy()
    ta.manual_seed(7)
    np.testing.assert_array_equal(a, ta.randn(3).numpy())
    r = ta.rand(1000).numpy()
    assert r.min() >= 0 and r.max() < 1


def test_tensor_copies_its_input_and_from_numpy_shares():
    a = np.zeros(3, dtype=np.float32)
    t, s = ta.tensor(a), ta.from_numpy(a)
    a[0] = 5
    assert t.numpy()[0] == 0 and s.numpy()[0] == 5


def test_attributes_and_conversions():
    x = ta.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size(1) == 2 and x.numel() == 4 and len(x) == 2
    assert x.is_leaf and x.requires_grad
    assert x.sum().item() == 10.0
    with pytest.raises(ValueError, match="item: only one-element"):
        x.item()
    assert x.double().dtype == ta.float64 and x.to(ta.float64).dtype == ta.float64
    assert x.long().dtype == ta.int64
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward>" in repr(x * 2)
    np.testing.assert_array_equal(np.asarray(x), x.numpy())
    np.testing.assert_array_equal(x.T.numpy(), x.numpy().T)


def test_cast_is_differentiable():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = (x.double() * 3).sum()
    y.backward()
    assert x.grad.dtype == ta.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_requires_grad_is_settable():
    x = ta.zeros(2)
    assert not (x * 2).requires_grad
    x.requires_grad = True
    assert (x * 2).requires_grad
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).requires_grad = False


def test_devices_cpu_is_a_no_op():
    x = ta.randn(2, 3)
    assert x.device == "cpu" and str(x.device) == "cpu" and not x.is_cuda
    assert x.cpu() is x and x.to("cpu") is x and x.to(ta.cuda.device("cpu")) is x
    m = ta.nn.Linear(3, 2)
    assert m.to("cpu") is m and m.cpu() is m
    assert ta.cuda.is_available() in (True, False)
    assert x.to(ta.float64).dtype == ta.float64 and x.to("cpu", dtype=ta.float64).dtype == ta.float64
    with pytest.raises(ValueError, match="tinyattn uses a single GPU, cuda:0"):
        x.to("cuda:1")
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda' or 'cuda:0', got 'tpu'"):
        x.to("tpu")


def test_data_is_a_detached_tensor_over_the_same_memory():
    w = ta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    d = w.data
    assert isinstance(d, ta.Tensor) and not d.requires_grad and d.grad_fn is None
    d.add_(1.0)  # PyTorch's old optimiser idiom: p.data.add_(-lr * p.grad)
    np.testing.assert_array_equal(w.detach().numpy(), [2.0, 3.0, 4.0])
    assert w._version == 0  # writes through .data are hidden from autograd, as in PyTorch
    c = w.data.clone()
    c.mul_(0)
    np.testing.assert_array_equal(w.detach().numpy(), [2.0, 3.0, 4.0])


def test_data_assignment_swaps_the_memory_and_keeps_the_graph_identity():
    lin = ta.nn.Linear(3, 2)
    p = lin.weight
    p.data = ta.zeros(4, 3)  # any shape, as in PyTorch
    lin.bias.data = ta.ones(4)
    assert lin.weight is p and p.shape == (4, 3) and p.requires_grad
    np.testing.assert_array_equal(lin(ta.ones(1, 3)).detach().numpy(), np.ones((1, 4)))
    with pytest.raises(TypeError, match="has to be a tensor"):
        p.data = [[1.0, 2.0, 3.0]]
    with pytest.raises(TypeError, match="floating-point"):
        p.data = ta.zeros(2, 3, dtype=ta.int64)
