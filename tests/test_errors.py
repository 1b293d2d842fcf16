"""Bad input gives a ValueError/TypeError naming the op and the shapes or dtypes, raised
before any kernel runs, and leaves every tensor as it was."""
import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn.functional as F


def test_matmul_inner_dimensions():
    with pytest.raises(ValueError, match=r"matmul: \(3, 4\) @ \(5, 2\): inner dimensions 4 and 5 differ"):
        ta.randn(3, 4) @ ta.randn(5, 2)
    with pytest.raises(ValueError, match=r"matmul \(batch dims\): shapes \(2,\) and \(3,\) do not broadcast"):
        ta.randn(2, 3, 4) @ ta.randn(3, 4, 5)


def test_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) do not broadcast"):
        ta.randn(2, 3) + ta.randn(4)
    with pytest.raises(ValueError, match=r"mul: shapes"):
        ta.randn(2, 3) * ta.randn(3, 2)


def test_integer_tensors_where_floats_are_required():
    i = ta.arange(6).reshape(2, 3)
    with pytest.raises(TypeError, match=r"matmul: expected a float32 or float64 tensor, got dtype int64"):
        i @ i.T
    with pytest.raises(TypeError, match="softmax: .*int64"):
        F.softmax(i, -1)
    with pytest.raises(TypeError, match="exp: .*int64"):
        ta.exp(i)
    with pytest.raises(TypeError, match="layer_norm: .*int64"):
        F.layer_norm(i, (3,))
    with pytest.raises(TypeError, match="cross_entropy: .*int64"):
        F.cross_entropy(i, ta.tensor([0, 1]))


def test_float16_is_rejected_naming_the_op_and_the_dtype():
    with pytest.raises(TypeError, match=r"matmul: expected a float32 or float64 tensor, got dtype float16"):
        ta.tensor(np.ones((2, 2), np.float16)) @ ta.tensor(np.ones((2, 2), np.float16))


def test_embedding_index_out_of_range_leaves_weight_alone():
    w = ta.randn(4, 3, requires_grad=True)
    before = w.numpy().copy()
    with pytest.raises(ValueError, match=r"embedding: index value 4 is out of range \[0, 4\)"):
        F.embedding(ta.tensor([0, 4]), w)
    with pytest.raises(ValueError, match=r"embedding: index value -1"):
        F.embedding(ta.tensor([-1]), w)
    with pytest.raises(TypeError, match="embedding: index must be an integer tensor, got dtype float32"):
        F.embedding(ta.tensor([1.0]), w)
    np.testing.assert_array_equal(w.numpy(), before)
    assert w.grad is None


def test_cross_entropy_target_errors():
    logits = ta.randn(3, 5)
    with pytest.raises(ValueError, match=r"cross_entropy: target value 5 is out of range \[0, 5\)"):
        F.cross_entropy(logits, ta.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match="cross_entropy: target contains NaN or inf"):
        F.cross_entropy(logits, ta.tensor([0.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="cross_entropy: target contains NaN or inf"):
        F.cross_entropy(logits, ta.tensor([0.0, float("inf"), 1.0]))
    with pytest.raises(ValueError, match=r"cross_entropy: input \(3, 5\) expects target of shape \(3,\), got \(2,\)"):
        F.cross_entropy(logits, ta.tensor([0, 1]))
    # ignore_index may lie outside [0, C)
    assert np.isfinite(F.cross_entropy(logits, ta.tensor([0, -100, 1])).item())


def test_backward_on_non_scalar():
    y = ta.randn(2, 2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()


def test_shape_op_errors():
    x = ta.randn(2, 3)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) into \(4,\)"):
        x.reshape(4)
    with pytest.raises(ValueError, match=r"permute: dims \(0, 0\)"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match=r"expand: cannot expand shape \(2, 3\) to \(2, 4\)"):
        x.expand(2, 4)
    with pytest.raises(ValueError, match="sum: dim 2 is out of range"):
        x.sum(dim=2)
    with pytest.raises(ValueError, match=r"cat: shapes \[\(2, 3\), \(3, 3\)\] differ outside dim 1"):
        ta.cat([x, ta.randn(3, 3)], dim=1)
    with pytest.raises(IndexError, match=r"getitem: invalid index for a tensor of shape \(2, 3\)"):
        x[5]


def test_layer_norm_and_linear_shape_errors():
    with pytest.raises(ValueError, match=r"layer_norm: input shape \(2, 3\) does not end with normalized_shape \(4,\)"):
        F.layer_norm(ta.randn(2, 3), (4,))
    with pytest.raises(ValueError, match=r"linear: input \(2, 3\) and weight \(4, 5\)"):
        F.linear(ta.randn(2, 3), ta.randn(4, 5))


def test_failed_op_keeps_grads_and_data():
    a = ta.randn(2, 3, requires_grad=True)
    (a * 2).sum().backward()
    grad_before, data_before = a.grad.numpy().copy(), a.numpy().copy()
    with pytest.raises(ValueError):
        (a @ ta.randn(2, 3)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), grad_before)
    np.testing.assert_array_equal(a.numpy(), data_before)


def test_bad_argument_types_and_values_name_the_op():
    x = ta.randn(2, 3)
    with pytest.raises(TypeError, match="mse_loss: target must be a tensor, got ndarray"):
        F.mse_loss(x, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="linear: input must be a tensor, got ndarray"):
        F.linear(np.zeros((2, 3)), ta.randn(4, 3))
    with pytest.raises(TypeError, match="shape arguments must be ints"):
        x.reshape(2.5, 2)
    with pytest.raises(ValueError, match="flatten: dim 5 is out of range"):
        x.flatten(5)
    with pytest.raises(TypeError, match="dropout: expected a float32 or float64 tensor"):
        F.dropout(ta.arange(4))
    with pytest.raises(ValueError, match="cat: zero-dimensional tensors cannot be concatenated"):
        ta.cat([ta.tensor(1.0), ta.tensor(2.0)])
    with pytest.raises(TypeError, match="sum: dim must be an int"):
        x.sum(dim="a")
    with pytest.raises(TypeError, match="layer_norm: eps must be a non-negative number"):
        F.layer_norm(x, 3, eps="a")
