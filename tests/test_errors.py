"""Bad input is a clear error: a ValueError/TypeError (RuntimeError for mixed devices, as PyTorch) whose
message names the op and the shapes, dtypes or values that are wrong, raised before any kernel runs, and a
failed call leaves every tensor, parameter and generator as it was.

The probe table BAD goes across the public API: each row is something a newcomer might hand in, with the error
and the pattern its message must match. (Odd input that PyTorch accepts is accepted: tests/test_accepted_inputs.py;
save/load errors: tests/test_serialization.py.)
"""
import warnings

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.nn as nn
import tinyattn.nn.functional as F
from tinyattn.testing import gradcheck


# ---- the core ops, one test per family -----------------------------------------------------------------

def test_matmul_names_mismatched_inner_and_batch_dimensions():
    with pytest.raises(ValueError, match=r"matmul: \(3, 4\) @ \(5, 2\): inner dimensions 4 and 5 differ"):
        ta.randn(3, 4) @ ta.randn(5, 2)
    with pytest.raises(ValueError, match=r"matmul \(batch dims\): shapes \(2,\) and \(3,\) do not broadcast"):
        ta.randn(2, 3, 4) @ ta.randn(3, 4, 5)


def test_shapes_that_do_not_broadcast_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) do not broadcast"):
        ta.randn(2, 3) + ta.randn(4)
    with pytest.raises(ValueError, match=r"mul: shapes"):
        ta.randn(2, 3) * ta.randn(3, 2)


def test_integer_tensors_are_refused_where_floats_are_required():
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


def test_cross_entropy_names_out_of_range_nonfinite_and_misshapen_targets():
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


def test_backward_of_a_non_scalar_without_a_gradient_is_refused():
    y = ta.randn(2, 2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()


def test_shape_ops_name_the_bad_shape_dims_or_index():
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


def test_layer_norm_and_linear_name_mismatched_shapes():
    with pytest.raises(ValueError, match=r"layer_norm: input shape \(2, 3\) does not end with normalized_shape \(4,\)"):
        F.layer_norm(ta.randn(2, 3), (4,))
    with pytest.raises(ValueError, match=r"linear: input \(2, 3\) and weight \(4, 5\)"):
        F.linear(ta.randn(2, 3), ta.randn(4, 5))


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


# ---- the probe across the public API --------------------------------------------------------------------

def r(*shape, dtype=np.float32, seed=0):
    """A tensor of fixed random values."""
    return ta.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def mha(*args, **kwargs):
    return nn.MultiheadAttention(*args, **kwargs)


# (id, call, error, pattern): `call` gets a scratch folder; the pattern is searched in
# the message, and names the op and what is wrong with the input.
BAD = [
    # ---- factories: sizes ----
    ("zeros-float-size", lambda d: ta.zeros(2.7), TypeError, r"zeros: size must be .*int.*2\.7"),
    ("ones-float-size", lambda d: ta.ones(2.5), TypeError, r"ones: size .*2\.5"),
    ("randn-float-size", lambda d: ta.randn(2.5), TypeError, r"randn: size .*2\.5"),
    ("rand-float-size", lambda d: ta.rand(3, 2.5), TypeError, r"rand: size .*2\.5"),
    ("zeros-float-in-tuple", lambda d: ta.zeros((2, 2.5)), TypeError, r"zeros: size .*2\.5"),
    ("zeros-negative", lambda d: ta.zeros(-1), ValueError, r"zeros: negative dimension -1 in size \(-1,\)"),
    ("randn-negative", lambda d: ta.randn(3, -2), ValueError, r"randn: negative dimension -2 in size \(3, -2\)"),
    ("zeros-None", lambda d: ta.zeros(None), TypeError, r"zeros: size .*None"),
    ("zeros-str", lambda d: ta.zeros("3"), TypeError, r"zeros: size .*'3'"),
    ("zeros-bool", lambda d: ta.zeros(True), TypeError, r"zeros: size .*True"),
    ("zeros-nested", lambda d: ta.zeros([2, [3]]), TypeError, r"zeros: size .*\[3\]"),
    ("full-float-size", lambda d: ta.full(2.5, 1.0), TypeError, r"full: size .*2\.5"),
    ("full-str-value", lambda d: ta.full((2,), "a"), TypeError, r"full: fill_value must be a number, got str"),
    ("full-None-value", lambda d: ta.full((2,), None), TypeError, r"full: fill_value must be a number, got NoneType"),
    ("randint-float-size", lambda d: ta.randint(0, 10, 2.5), TypeError, r"randint: size .*2\.5"),
    # ---- factories: dtypes and values ----
    ("zeros-unknown-dtype", lambda d: ta.zeros(2, dtype="floaty"), TypeError, r"zeros: unknown dtype 'floaty'"),
    ("zeros-complex-dtype", lambda d: ta.zeros(2, dtype=np.complex64), TypeError, r"zeros: unsupported dtype complex64"),
    ("ones-object-dtype", lambda d: ta.ones(2, dtype=object), TypeError, r"ones: unsupported dtype object"),
    ("randn-int-dtype", lambda d: ta.randn(2, dtype=ta.int64), TypeError, r"randn: .*floating.*int64"),
    ("rand-int-dtype", lambda d: ta.rand(2, dtype=ta.int64), TypeError, r"rand: .*floating.*int64"),
    ("zeros-int-requires-grad", lambda d: ta.zeros(2, dtype=ta.int64, requires_grad=True), TypeError,
     r"zeros: only floating-point tensors can require gradients, got dtype int64"),
    ("arange-zero-step", lambda d: ta.arange(0, 5, 0), ValueError, r"arange: step must be nonzero"),
    ("arange-wrong-sign", lambda d: ta.arange(5, 0), ValueError, r"arange: .*5.*0.*step 1"),
    ("arange-inf", lambda d: ta.arange(0, float("inf")), ValueError, r"arange: .*inf"),
    ("arange-nan", lambda d: ta.arange(0, float("nan")), ValueError, r"arange: .*nan"),
    ("arange-str", lambda d: ta.arange("a"), TypeError, r"arange: .*'a'"),
    ("randint-empty-range", lambda d: ta.randint(5, 2, (3,)), ValueError, r"randint: low 5 must be less than high 2"),
    ("randint-equal-bounds", lambda d: ta.randint(5, 5, (3,)), ValueError, r"randint: low 5 must be less than high 5"),
    ("randint-complex-dtype", lambda d: ta.randint(0, 3, (2,), dtype=np.complex64), TypeError, r"randint: .*complex64"),
    ("zeros_like-ndarray", lambda d: ta.zeros_like(np.zeros(3)), TypeError, r"zeros_like: .*tensor.*ndarray"),
    ("ones_like-int", lambda d: ta.ones_like(3), TypeError, r"ones_like: .*tensor.*int"),
    ("from_numpy-list", lambda d: ta.from_numpy([1, 2]), TypeError, r"from_numpy: expected a numpy array, got list"),
    ("from_numpy-object", lambda d: ta.from_numpy(np.array([1, None])), TypeError, r"from_numpy: .*dtype object"),
    ("randn-bad-device", lambda d: ta.randn(2, device="tpu"), ValueError, r"device: .*'tpu'"),
    ("tensor-str", lambda d: ta.tensor("abc"), TypeError, r"tensor: expected a number, .* got str"),
    ("tensor-None", lambda d: ta.tensor(None), TypeError, r"tensor: expected a number, .* got NoneType"),
    ("tensor-dict", lambda d: ta.tensor({"a": 1}), TypeError, r"tensor: expected a number, .* got dict"),
    ("tensor-complex", lambda d: ta.tensor(1 + 2j), TypeError, r"tensor: expected a number, .* got complex"),
    ("tensor-ragged", lambda d: ta.tensor([[1, 2], [3]]), ValueError,
     r"tensor: nested lists of different lengths .*\[\[1, 2\], \[3\]\]"),
    ("tensor-list-with-str", lambda d: ta.tensor([1, "a"]), TypeError, r"tensor: expected numbers, got \[1, 'a'\]"),
    ("tensor-list-with-None", lambda d: ta.tensor([1.0, None]), TypeError, r"tensor: expected numbers, got \[1\.0, None\]"),
    ("tensor-object-array", lambda d: ta.tensor(np.array([1, None])), TypeError, r"tensor: unsupported dtype object"),
    ("tensor-unknown-dtype", lambda d: ta.tensor([1, 2], dtype="floaty"), TypeError, r"tensor: unknown dtype 'floaty'"),
    ("tensor-complex-dtype", lambda d: ta.tensor([1.0], dtype=np.complex64), TypeError, r"tensor: unsupported dtype complex64"),
    ("Tensor-None", lambda d: ta.Tensor(None), TypeError, r"tensor: expected a number, .* got NoneType"),
    ("Tensor-str", lambda d: ta.Tensor("abc"), TypeError, r"tensor: expected a number, .* got str"),
    ("Tensor-ragged", lambda d: ta.Tensor([[1, 2], [3]]), ValueError, r"tensor: nested lists of different lengths"),
    ("Tensor-object-array", lambda d: ta.Tensor(np.array([1, None])), TypeError, r"tensor: unsupported dtype object"),
    ("Tensor-complex-dtype", lambda d: ta.Tensor([1.0], dtype=np.complex64), TypeError, r"tensor: unsupported dtype complex64"),
    ("Tensor-unknown-dtype", lambda d: ta.Tensor([1.0], dtype="floaty"), TypeError, r"tensor: unknown dtype 'floaty'"),
    ("to-complex", lambda d: r(2).to(np.complex64), TypeError, r"to: unsupported dtype complex64"),
    ("to-object", lambda d: r(2).to(dtype=object), TypeError, r"to: unsupported dtype object"),
    ("to-str-dtype", lambda d: r(2).to(dtype="U3"), TypeError, r"to: unsupported dtype <U3"),
    ("to-cpu-complex", lambda d: r(2).to("cpu", np.complex64), TypeError, r"to: unsupported dtype complex64"),
    ("cast-complex", lambda d: ta.functional.cast(r(2), np.complex128), TypeError, r"cast: unsupported dtype complex128"),
    ("softmax-complex-dtype", lambda d: F.softmax(r(2), -1, dtype=np.complex64), TypeError,
     r"softmax: unsupported dtype complex64"),
    ("log_softmax-unknown-dtype", lambda d: F.log_softmax(r(2), -1, dtype="floaty"), TypeError,
     r"log_softmax: unknown dtype 'floaty'"),
    ("manual_seed-str", lambda d: ta.manual_seed("a"), TypeError, r"manual_seed: seed must be an int, got 'a'"),
    ("manual_seed-float", lambda d: ta.manual_seed(2.5), TypeError, r"manual_seed: seed must be an int, got 2\.5"),
    ("manual_seed-None", lambda d: ta.manual_seed(None), TypeError, r"manual_seed: seed must be an int, got None"),
    ("manual_seed-too-large", lambda d: ta.manual_seed(2**64), ValueError,
     r"manual_seed: seed must be in \[-2\*\*63, 2\*\*64\), got 18446744073709551616"),
    ("manual_seed-too-small", lambda d: ta.manual_seed(-2**63 - 1), ValueError, r"manual_seed: .*-9223372036854775809"),
    # ---- elementwise, matmul, shapes (checks that already existed, held here with the rest) ----
    ("add-no-broadcast", lambda d: r(2, 3) + r(4), ValueError, r"add: shapes \(2, 3\) and \(4,\) do not broadcast"),
    ("add-str", lambda d: r(2) + "a", TypeError, r"add: unsupported operand of type str"),
    ("add-None", lambda d: r(2) + None, TypeError, r"add: unsupported operand of type NoneType"),
    ("matmul-inner", lambda d: r(3, 4) @ r(5, 2), ValueError, r"matmul: \(3, 4\) @ \(5, 2\): inner dimensions 4 and 5"),
    ("matmul-dtypes", lambda d: r(2, 2) @ r(2, 2, dtype=np.float64), TypeError, r"matmul: dtypes differ: float32 and float64"),
    ("matmul-0d", lambda d: r() @ r(2), ValueError, r"matmul: .*at least 1 dimension"),
    ("matmul-int", lambda d: ta.arange(4).reshape(2, 2) @ ta.arange(4).reshape(2, 2), TypeError, r"matmul: .*int64"),
    ("where-float-cond", lambda d: ta.where(r(2), r(2), r(2)), TypeError, r"where: .*bool.*float32"),
    ("masked_fill-float-mask", lambda d: r(2).masked_fill(r(2), 0.0), TypeError, r"masked_fill: .*bool.*float32"),
    ("exp-int", lambda d: ta.exp(ta.arange(3)), TypeError, r"exp: .*int64"),
    ("reshape-wrong-count", lambda d: r(2, 3).reshape(4), ValueError, r"reshape: .*\(2, 3\) into \(4,\)"),
    ("reshape-two-minus-one", lambda d: r(6).reshape(-1, -1), ValueError, r"reshape: .*\(6,\)"),
    ("permute-repeat", lambda d: r(2, 3).permute(0, 0), ValueError, r"permute: dims \(0, 0\)"),
    ("permute-too-few", lambda d: r(2, 3).permute(0), ValueError, r"permute: .*\(2, 3\)"),
    ("permute-out-of-range", lambda d: r(2, 3).permute(0, 5), ValueError,
     r"permute: dims \(0, 5\) are not a permutation of the 2 axes of shape \(2, 3\)"),
    ("permute-out-of-range-negative", lambda d: r(2, 3).permute(-3, 1), ValueError, r"permute: dims \(-3, 1\)"),
    ("permute-float", lambda d: r(2, 3).permute(0, 1.0), TypeError, r"permute: dims must be ints, got \(0, 1\.0\)"),
    ("reshape-float", lambda d: r(3).reshape(2.5), TypeError, r"reshape: shape arguments must be ints, got \(2\.5,\)"),
    ("view-float-in-tuple", lambda d: r(6).view((2, 3.0)), TypeError, r"reshape: shape arguments must be ints"),
    ("flatten-start-after-end", lambda d: r(2, 1, 3).flatten(1, 0), ValueError,
     r"flatten: start_dim 1 comes after end_dim 0 \(shape \(2, 1, 3\)\)"),
    ("flatten-negative-start-after-end", lambda d: r(2, 3).flatten(-1, 0), ValueError,
     r"flatten: start_dim -1 comes after end_dim 0"),
    ("flatten-0d-out-of-range", lambda d: r().flatten(5), ValueError, r"flatten: dim 5 is out of range"),
    ("transpose-out-of-range", lambda d: r(2, 3).transpose(0, 5), ValueError, r"transpose: .*5.*2 dimensions"),
    ("unsqueeze-out-of-range", lambda d: r(2, 3).unsqueeze(5), ValueError, r"unsqueeze: dim .*out of range"),
    ("expand-incompatible", lambda d: r(2, 3).expand(2, 4), ValueError, r"expand: cannot expand shape \(2, 3\) to \(2, 4\)"),
    ("expand-negative", lambda d: r(3).expand(-2, 3), ValueError, r"expand: size -2 \(position 0 of \(-2, 3\)\) is negative"),
    ("expand-negative-existing-dim", lambda d: r(1, 3).expand(2, -3), ValueError, r"expand: size -3 .* is negative"),
    ("expand-minus-one-leading", lambda d: r(3).expand(-1, 3), ValueError,
     r"expand: -1 is not allowed in a new leading dim .*\(-1, 3\)"),
    ("expand-float", lambda d: r(3).expand(2.0, 3), TypeError, r"expand: sizes must be ints"),
    ("cat-empty", lambda d: ta.cat([]), ValueError, r"cat: expected a non-empty sequence"),
    ("cat-mismatch", lambda d: ta.cat([r(2, 3), r(3, 3)], dim=1), ValueError, r"cat: shapes \[\(2, 3\), \(3, 3\)\]"),
    ("cat-dtypes", lambda d: ta.cat([r(2), r(2, dtype=np.float64)]), TypeError, r"cat: dtypes differ"),
    ("cat-non-tensor", lambda d: ta.cat([r(2), [1.0, 2.0]]), TypeError, r"cat: expected tensors, got list"),
    ("stack-empty", lambda d: ta.stack([]), ValueError, r"stack: expected a non-empty sequence"),
    ("stack-shapes", lambda d: ta.stack([r(2), r(3)]), ValueError, r"stack: .*same shape.*\(2,\).*\(3,\)"),
    ("index-out-of-range", lambda d: r(2, 3)[5], IndexError, r"getitem: invalid index for a tensor of shape \(2, 3\)"),
    ("index-float", lambda d: r(3)[1.0], IndexError, r"getitem: .*shape \(3,\)"),
    ("index-too-many", lambda d: r(3)[0, 0], IndexError, r"getitem: .*shape \(3,\)"),
    ("index-float-array", lambda d: r(3)[np.array([0.0])], TypeError, r"getitem: .*float64"),
    ("sum-dim-out-of-range", lambda d: r(2, 3).sum(dim=2), ValueError, r"sum: dim 2 is out of range"),
    ("mean-int", lambda d: ta.arange(3).mean(), TypeError, r"mean: .*int64"),
    ("amax-empty", lambda d: ta.zeros(0).amax(), ValueError, r"amax: cannot reduce an empty tensor of shape \(0,\)"),
    ("softmax-dim-out-of-range", lambda d: r(2, 3).softmax(dim=5), ValueError, r"softmax: dim 5 .*2 dimensions"),
    ("softmax-int", lambda d: F.softmax(ta.arange(3), -1), TypeError, r"softmax: .*int64"),
    ("item-many", lambda d: r(2).item(), ValueError, r"item: .*shape \(2,\)"),
    ("backward-non-scalar", lambda d: (r(2).requires_grad_() * 2).backward(), RuntimeError, r"scalar outputs"),
    ("backward-no-grad", lambda d: r(2).sum().backward(), RuntimeError, r"does not require grad"),
    # ---- linear and layer_norm ----
    ("linear-shapes", lambda d: F.linear(r(2, 3), r(4, 5)), ValueError, r"linear: input \(2, 3\) and weight \(4, 5\)"),
    ("linear-dtypes", lambda d: F.linear(r(2, 3), r(4, 3, dtype=np.float64)), TypeError,
     r"linear: dtypes differ: input float32, weight float64"),
    ("linear-ndarray", lambda d: F.linear(np.zeros((2, 3)), r(4, 3)), TypeError, r"linear: input must be a tensor, got ndarray"),
    ("layer_norm-weight-float64", lambda d: F.layer_norm(r(2, 4), (4,), weight=ta.ones(4, dtype=ta.float64)),
     TypeError, r"layer_norm: .*input float32.*weight float64"),
    ("layer_norm-bias-float64", lambda d: F.layer_norm(r(2, 4), (4,), bias=ta.zeros(4, dtype=ta.float64)),
     TypeError, r"layer_norm: .*input float32.*bias float64"),
    ("layer_norm-input-float64", lambda d: F.layer_norm(r(2, 4, dtype=np.float64), (4,), weight=ta.ones(4)),
     TypeError, r"layer_norm: .*input float64.*weight float32"),
    ("layer_norm-shape", lambda d: F.layer_norm(r(2, 3), (4,)), ValueError,
     r"layer_norm: input shape \(2, 3\) does not end with normalized_shape \(4,\)"),
    ("layer_norm-weight-shape", lambda d: F.layer_norm(r(2, 4), (4,), weight=ta.ones(3)), ValueError,
     r"layer_norm: weight shape \(3,\) differs from normalized_shape \(4,\)"),
    ("layer_norm-float-shape", lambda d: F.layer_norm(r(2, 4), 4.0), TypeError, r"layer_norm: normalized_shape .*4\.0"),
    ("layer_norm-eps-str", lambda d: F.layer_norm(r(2, 4), (4,), eps="a"), TypeError, r"layer_norm: eps must be a non-negative number, got str"),
    ("layer_norm-eps-negative", lambda d: F.layer_norm(r(2, 4), (4,), eps=-1.0), ValueError,
     r"layer_norm: eps must be a non-negative number, got -1\.0"),
    ("layer_norm-ndarray", lambda d: F.layer_norm(np.zeros((2, 4)), (4,)), TypeError,
     r"layer_norm: input must be a tensor, got ndarray"),
    ("layer_norm-int", lambda d: F.layer_norm(ta.arange(4).reshape(1, 4), (4,)), TypeError, r"layer_norm: .*int64"),
    # ---- nn layers: sizes and arguments ----
    ("Linear-negative", lambda d: nn.Linear(-1, 3), ValueError, r"Linear: in_features must be a non-negative int, got -1"),
    ("Linear-float", lambda d: nn.Linear(2.5, 3), TypeError, r"Linear: in_features must be .*int, got 2\.5"),
    ("Linear-str", lambda d: nn.Linear(3, "4"), TypeError, r"Linear: out_features must be .*int, got '4'"),
    ("Linear-None", lambda d: nn.Linear(3, None), TypeError, r"Linear: out_features .*None"),
    ("LayerNorm-negative", lambda d: nn.LayerNorm(-1), ValueError, r"LayerNorm: normalized_shape .*-1"),
    ("LayerNorm-float", lambda d: nn.LayerNorm(4.0), TypeError, r"LayerNorm: normalized_shape .*4\.0"),
    ("LayerNorm-str-in-tuple", lambda d: nn.LayerNorm((2, "a")), TypeError, r"LayerNorm: normalized_shape .*'a'"),
    ("LayerNorm-eps-str", lambda d: nn.LayerNorm(4, eps="a"), TypeError, r"LayerNorm: eps must be a non-negative number, got str"),
    ("LayerNorm-wrong-input", lambda d: nn.LayerNorm(4)(r(2, 3)), ValueError, r"layer_norm: input shape \(2, 3\)"),
    ("Embedding-negative", lambda d: nn.Embedding(-1, 3), ValueError, r"Embedding: num_embeddings .*-1"),
    ("Embedding-float", lambda d: nn.Embedding(3, 2.5), TypeError, r"Embedding: embedding_dim .*2\.5"),
    ("embedding-out-of-range", lambda d: nn.Embedding(4, 2)(ta.tensor([0, 4])), ValueError,
     r"embedding: index value 4 is out of range \[0, 4\)"),
    ("embedding-negative-index", lambda d: nn.Embedding(4, 2)(ta.tensor([-1])), ValueError, r"embedding: index value -1"),
    ("embedding-float-index", lambda d: nn.Embedding(4, 2)(ta.tensor([1.0])), TypeError,
     r"embedding: index must be an integer tensor, got dtype float32"),
    ("embedding-bool-index", lambda d: nn.Embedding(4, 2)(ta.tensor([True])), TypeError,
     r"embedding: index must be an integer tensor, got dtype bool"),
    ("embedding-1d-weight", lambda d: F.embedding(ta.tensor([0]), r(4)), ValueError, r"embedding: weight must be 2-D"),
    ("embedding-ndarray-weight", lambda d: F.embedding(ta.tensor([0]), np.zeros((3, 2))), TypeError,
     r"embedding: weight must be a tensor, got ndarray"),
    ("embedding-list-weight", lambda d: F.embedding(ta.tensor([0]), [[1.0, 2.0]]), TypeError,
     r"embedding: weight must be a tensor, got list"),
    ("Dropout-above-1", lambda d: nn.Dropout(1.5), ValueError, r"Dropout: p must be in \[0, 1\], got 1\.5"),
    ("Dropout-negative", lambda d: nn.Dropout(-0.1), ValueError, r"Dropout: p must be in \[0, 1\], got -0\.1"),
    ("Dropout-str", lambda d: nn.Dropout("0.5"), TypeError, r"Dropout: p must be a number, got str"),
    ("Dropout-None", lambda d: nn.Dropout(None), TypeError, r"Dropout: p must be a number, got NoneType"),
    ("dropout-above-1", lambda d: F.dropout(r(3), 1.5), ValueError, r"dropout: probability p must be in \[0, 1\], got 1\.5"),
    ("dropout-nan", lambda d: F.dropout(r(3), float("nan")), ValueError, r"dropout: .*nan"),
    ("dropout-int", lambda d: F.dropout(ta.arange(3), 0.5), TypeError, r"dropout: .*int64"),
    ("dropout-None", lambda d: F.dropout(r(3), None), TypeError, r"dropout: probability p must be a number, got NoneType"),
    ("dropout-str", lambda d: F.dropout(r(3), "0.5"), TypeError, r"dropout: probability p must be a number, got str"),
    ("dropout-ndarray-input", lambda d: F.dropout(np.zeros(3), 0.5), TypeError, r"dropout: input must be a tensor, got ndarray"),
    ("Conv1d-kernel-0", lambda d: nn.Conv1d(2, 3, kernel_size=0), ValueError, r"Conv1d: kernel_size must be a positive int, got 0"),
    ("Conv1d-negative-in", lambda d: nn.Conv1d(-1, 3, 3), ValueError, r"Conv1d: in_channels must be a non-negative int, got -1"),
    ("Conv1d-negative-out", lambda d: nn.Conv1d(2, -3, 3), ValueError, r"Conv1d: out_channels .*got -3"),
    ("Conv1d-float-kernel", lambda d: nn.Conv1d(2, 3, 2.5), TypeError, r"Conv1d: kernel_size must be a positive int, got 2\.5"),
    ("Conv1d-stride-0", lambda d: nn.Conv1d(2, 3, 3, stride=0), ValueError, r"Conv1d: stride must be a positive int, got 0"),
    ("Conv1d-negative-padding", lambda d: nn.Conv1d(2, 3, 3, padding=-1), ValueError,
     r"Conv1d: padding must be a non-negative int, got -1"),
    ("Conv1d-padding-full", lambda d: nn.Conv1d(2, 3, 3, padding="full"), ValueError, r"Invalid padding string 'full'"),
    ("RNN-negative", lambda d: nn.RNN(-1, 3), ValueError, r"RNN: input_size must be a positive int, got -1"),
    ("RNN-zero-hidden", lambda d: nn.RNN(3, 0), ValueError, r"RNN: hidden_size must be a positive int, got 0"),
    ("RNN-float", lambda d: nn.RNN(2.5, 3), TypeError, r"RNN: input_size must be a positive int, got 2\.5"),
    ("GELU-approximate", lambda d: nn.GELU("bogus"), ValueError, r"GELU: approximate must be .*'bogus'"),
    ("TransformerEncoderLayer-heads", lambda d: nn.TransformerEncoderLayer(16, 3), ValueError,
     r"MultiheadAttention: embed_dim 16 is not divisible by num_heads 3"),
    ("TransformerEncoderLayer-dropout", lambda d: nn.TransformerEncoderLayer(8, 2, dropout=1.5), ValueError,
     r"dropout must be in \[0, 1\], got 1\.5"),
    # ---- attention ----
    ("MHA-zero-embed", lambda d: mha(0, 1), ValueError,
     r"MultiheadAttention: embed_dim and num_heads must be positive, got embed_dim=0 and num_heads=1"),
    ("MHA-negative-embed", lambda d: mha(-4, 2), ValueError, r"MultiheadAttention: .*embed_dim=-4"),
    ("MHA-zero-heads", lambda d: mha(16, 0), ValueError, r"MultiheadAttention: .*num_heads=0"),
    ("MHA-heads-not-dividing", lambda d: mha(16, 3), ValueError,
     r"MultiheadAttention: embed_dim 16 is not divisible by num_heads 3"),
    ("MHA-float-embed", lambda d: mha(16.0, 4), TypeError, r"MultiheadAttention: embed_dim must be an int, got 16\.0"),
    ("MHA-negative-kdim", lambda d: mha(8, 2, kdim=-1), ValueError, r"MultiheadAttention: kdim .*-1"),
    ("MHA-dropout", lambda d: mha(8, 2, dropout=1.5), ValueError, r"MultiheadAttention: dropout must be in \[0, 1\], got 1\.5"),
    ("MHA-4d-query", lambda d: mha(8, 2)(r(1, 3, 1, 8), r(3, 1, 8), r(3, 1, 8)), ValueError,
     r"MultiheadAttention: query, key and value must all be"),
    ("MHA-feature-size", lambda d: mha(8, 2)(r(3, 1, 6), r(3, 1, 6), r(3, 1, 6)), ValueError,
     r"MultiheadAttention: query feature size 6 != 8"),
    ("MHA-mask-shape", lambda d: mha(8, 2)(r(3, 1, 8), r(3, 1, 8), r(3, 1, 8), attn_mask=ta.zeros(3, 4)), ValueError,
     r"MultiheadAttention: attn_mask of shape \(3, 4\) should be \(3, 3\)"),
    ("MHA-padding-mask-shape", lambda d: mha(8, 2)(r(3, 1, 8), r(3, 1, 8), r(3, 1, 8), key_padding_mask=ta.zeros(1, 4)),
     ValueError, r"MultiheadAttention: key_padding_mask of shape \(1, 4\) should be \(1, 3\)"),
    ("MHA-int-mask", lambda d: mha(8, 2)(r(3, 1, 8), r(3, 1, 8), r(3, 1, 8), attn_mask=ta.zeros(3, 3, dtype=ta.int64)),
     TypeError, r"MultiheadAttention: masks must be bool or float, got dtype int64"),
    ("MHA-float64-mask", lambda d: mha(8, 2)(r(3, 1, 8), r(3, 1, 8), r(3, 1, 8), attn_mask=ta.zeros(3, 3, dtype=ta.float64)),
     TypeError, r"MultiheadAttention: attn_mask dtype float64 differs from the query's float32"),
    ("MHA-input-dtype", lambda d: mha(8, 2)(r(3, 1, 8, dtype=np.float64), r(3, 1, 8, dtype=np.float64),
                                              r(3, 1, 8, dtype=np.float64)),
     TypeError, r"MultiheadAttention: .*float64.*parameters are float32"),
    ("MHA-int-input", lambda d: mha(8, 2)(ta.zeros(3, 1, 8, dtype=ta.int64), ta.zeros(3, 1, 8, dtype=ta.int64),
                                            ta.zeros(3, 1, 8, dtype=ta.int64)),
     TypeError, r"MultiheadAttention: .*int64"),
    ("sdpa-1d", lambda d: F.scaled_dot_product_attention(r(4), r(4), r(4)), ValueError,
     r"scaled_dot_product_attention: query needs at least 2 dims"),
    ("sdpa-head-dims", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 5, 6), r(2, 5, 6)), ValueError,
     r"scaled_dot_product_attention: query and key head dims differ \(4 vs 6\)"),
    ("sdpa-lengths", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 5, 4), r(2, 6, 4)), ValueError,
     r"scaled_dot_product_attention: key and value lengths differ \(5 vs 6\)"),
    ("sdpa-batch", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(3, 3, 4), r(3, 3, 4)), ValueError,
     r"scaled_dot_product_attention: batch dims do not broadcast"),
    ("sdpa-dtypes", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4, dtype=np.float64), r(2, 3, 4)),
     TypeError, r"scaled_dot_product_attention: dtypes differ"),
    ("sdpa-mask-shape", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 5, 4), r(2, 5, 4),
                                                                   attn_mask=ta.ones(3, 4, dtype=ta.bool)),
     ValueError, r"scaled_dot_product_attention: attn_mask of shape \(3, 4\) does not broadcast to \(2, 3, 5\)"),
    ("sdpa-int-mask", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4), r(2, 3, 4),
                                                                 attn_mask=ta.zeros(3, 3, dtype=ta.int64)),
     TypeError, r"scaled_dot_product_attention: attn_mask must be bool or float, got dtype int64"),
    ("sdpa-float64-mask", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4), r(2, 3, 4),
                                                                     attn_mask=ta.zeros(3, 3, dtype=ta.float64)),
     TypeError, r"scaled_dot_product_attention: attn_mask dtype float64 differs from the query's float32"),
    ("sdpa-dropout", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4), r(2, 3, 4), dropout_p=1.5),
     ValueError, r"scaled_dot_product_attention: dropout_p must be in \[0, 1\], got 1\.5"),
    ("sdpa-scale-str", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4), r(2, 3, 4), scale="a"),
     TypeError, r"scaled_dot_product_attention: scale must be a number, got str"),
    ("sdpa-window-str", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4), r(2, 3, 4), window="a"),
     TypeError, r"scaled_dot_product_attention: window must be a non-negative integer, got 'a'"),
    ("sdpa-window-negative", lambda d: F.scaled_dot_product_attention(r(2, 3, 4), r(2, 3, 4), r(2, 3, 4), window=-1),
     ValueError, r"scaled_dot_product_attention: window must be a non-negative integer, got -1"),
    ("sdpa-head-dim-0", lambda d: F.scaled_dot_product_attention(r(2, 3, 0), r(2, 3, 0), r(2, 3, 4)), ValueError,
     r"scaled_dot_product_attention: the head dim E must be positive"),
    ("sdpa-ndarray", lambda d: F.scaled_dot_product_attention(np.zeros((2, 3, 4)), r(2, 3, 4), r(2, 3, 4)), TypeError,
     r"scaled_dot_product_attention: query must be a tensor, got ndarray"),
    ("SelfAttention-negative", lambda d: nn.SelfAttention(-1, 4, 4), ValueError, r"SelfAttention: d_in must be a positive int, got -1"),
    ("SelfAttention-zero-dqk", lambda d: nn.SelfAttention(4, 0, 4), ValueError, r"SelfAttention: d_qk must be a positive int, got 0"),
    ("SelfAttention-float", lambda d: nn.SelfAttention(4, 2.5, 4), TypeError, r"SelfAttention: d_qk must be a positive int, got 2\.5"),
    ("SelfAttention-window-str", lambda d: nn.SelfAttention(4, 4, 4, window="a"), TypeError,
     r"SelfAttention: window must be a non-negative integer, got 'a'"),
    ("SelfAttention-window-negative", lambda d: nn.SelfAttention(4, 4, 4, window=-1), ValueError,
     r"SelfAttention: window must be a non-negative integer, got -1"),
    ("SelfAttention-relevance", lambda d: nn.SelfAttention(4, 4, 4, relevance="cosine"), ValueError,
     r"SelfAttention: relevance must be one of .*'cosine'"),
    ("SelfAttention-normalizer", lambda d: nn.SelfAttention(4, 4, 4, normalizer="tanh"), ValueError,
     r"SelfAttention: normalizer must be one of .*'tanh'"),
    ("SelfAttention-input", lambda d: nn.SelfAttention(4, 4, 4)(r(3, 5)), ValueError,
     r"SelfAttention: expected input \(\.\.\., N, 4\), got \(3, 5\)"),
    # ---- positional encodings ----
    ("Rotary-odd", lambda d: nn.RotaryEmbedding(5), ValueError, r"RotaryEmbedding: head_dim must be even, got 5"),
    ("Rotary-negative", lambda d: nn.RotaryEmbedding(-2), ValueError, r"RotaryEmbedding: head_dim must be a positive int, got -2"),
    ("Rotary-zero", lambda d: nn.RotaryEmbedding(0), ValueError, r"RotaryEmbedding: head_dim must be a positive int, got 0"),
    ("Rotary-float", lambda d: nn.RotaryEmbedding(2.5), TypeError, r"RotaryEmbedding: head_dim must be a positive int, got 2\.5"),
    ("Rotary-float-max-len", lambda d: nn.RotaryEmbedding(4, max_len=10.0), TypeError, r"RotaryEmbedding: max_len .*10\.0"),
    ("Rotary-base-str", lambda d: nn.RotaryEmbedding(4, base="a"), TypeError, r"RotaryEmbedding: base must be a positive number"),
    ("Rotary-base-zero", lambda d: nn.RotaryEmbedding(4, base=0), ValueError, r"RotaryEmbedding: base must be a positive number, got 0"),
    ("Sinusoidal-negative", lambda d: nn.SinusoidalPositionalEncoding(-1), ValueError,
     r"SinusoidalPositionalEncoding: d_model must be a positive int, got -1"),
    ("Sinusoidal-float", lambda d: nn.SinusoidalPositionalEncoding(2.5), TypeError,
     r"SinusoidalPositionalEncoding: d_model must be a positive int, got 2\.5"),
    ("Sinusoidal-negative-max-len", lambda d: nn.SinusoidalPositionalEncoding(4, max_len=-1), ValueError,
     r"SinusoidalPositionalEncoding: max_len must be a positive int, got -1"),
    ("Sinusoidal-complex-dtype", lambda d: nn.SinusoidalPositionalEncoding(4, dtype=np.complex64), TypeError,
     r"SinusoidalPositionalEncoding: unsupported dtype complex64"),
    ("Rotary-head-dim", lambda d: nn.RotaryEmbedding(4).rotate(r(3, 6)), ValueError,
     r"RotaryEmbedding: expected head_dim 4, got input of shape \(3, 6\)"),
    ("Sinusoidal-too-long", lambda d: nn.SinusoidalPositionalEncoding(4, max_len=3)(r(5, 4)), ValueError,
     r"SinusoidalPositionalEncoding: sequence length 5 exceeds max_len 3"),
    ("Learned-1d", lambda d: nn.LearnedPositionalEncoding(3, 4)(r(4)), ValueError,
     r"LearnedPositionalEncoding: expected input \(\.\.\., T, d\), got shape \(4,\)"),
    # ---- losses ----
    ("cross_entropy-bool-target", lambda d: F.cross_entropy(r(3, 5), ta.tensor([True, False, True])), TypeError,
     r"cross_entropy: target must be an integer tensor, got dtype bool"),
    ("cross_entropy-float-target", lambda d: F.cross_entropy(r(3, 5), ta.tensor([1.0, 2.0, 3.0])), TypeError,
     r"cross_entropy: target must be an integer tensor, got dtype float32"),
    ("cross_entropy-nan-target", lambda d: F.cross_entropy(r(3, 5), ta.tensor([0.0, float("nan"), 1.0])), ValueError,
     r"cross_entropy: target contains NaN or inf"),
    ("cross_entropy-out-of-range", lambda d: F.cross_entropy(r(3, 5), ta.tensor([0, 5, 1])), ValueError,
     r"cross_entropy: target value 5 is out of range \[0, 5\)"),
    ("cross_entropy-negative", lambda d: F.cross_entropy(r(3, 5), ta.tensor([0, -1, 1])), ValueError,
     r"cross_entropy: target value -1 is out of range \[0, 5\)"),
    ("cross_entropy-target-shape", lambda d: F.cross_entropy(r(3, 5), ta.tensor([0, 1])), ValueError,
     r"cross_entropy: input \(3, 5\) expects target of shape \(3,\), got \(2,\)"),
    ("cross_entropy-0d", lambda d: F.cross_entropy(r(), ta.tensor(0)), ValueError, r"cross_entropy: input must have a class axis"),
    ("cross_entropy-no-classes", lambda d: F.cross_entropy(r(3, 0), ta.tensor([0, 0, 0])), ValueError,
     r"cross_entropy: target value 0 is out of range \[0, 0\)"),
    ("cross_entropy-None-target", lambda d: F.cross_entropy(r(3, 5), None), TypeError,
     r"cross_entropy: target must be a tensor .*NoneType"),
    ("cross_entropy-reduction", lambda d: F.cross_entropy(r(3, 5), ta.tensor([0, 1, 2]), reduction="avg"), ValueError,
     r"cross_entropy: reduction must be one of .*'avg'"),
    ("cross_entropy-int-input", lambda d: F.cross_entropy(ta.zeros(3, 5, dtype=ta.int64), ta.tensor([0, 1, 2])),
     TypeError, r"cross_entropy: .*int64"),
    ("mse_loss-no-broadcast", lambda d: F.mse_loss(r(3), r(4)), ValueError, r"mse_loss: shapes \(3,\) and \(4,\) do not broadcast"),
    ("mse_loss-reduction", lambda d: F.mse_loss(r(3), r(3), reduction="avg"), ValueError, r"mse_loss: reduction must be one of .*'avg'"),
    ("mse_loss-int-input", lambda d: F.mse_loss(ta.arange(3), r(3)), TypeError, r"mse_loss: .*int64"),
    ("mse_loss-None-target", lambda d: F.mse_loss(r(3), None), TypeError, r"mse_loss: target must be a tensor, got NoneType"),
    # ---- state dicts ----
    ("load_state_dict-missing", lambda d: nn.Linear(2, 3).load_state_dict({"weight": ta.zeros(3, 2)}),
     RuntimeError, r"load_state_dict.*[Mm]issing.*bias"),
    ("load_state_dict-unexpected", lambda d: nn.Linear(2, 3).load_state_dict(
        {"weight": ta.zeros(3, 2), "bias": ta.zeros(3), "extra": ta.zeros(1)}), RuntimeError,
     r"load_state_dict.*[Uu]nexpected.*extra"),
    ("load_state_dict-list", lambda d: nn.Linear(2, 3).load_state_dict([1]), TypeError,
     r"load_state_dict for Linear: expected a dict-like state_dict.*list"),
    ("load_state_dict-strings", lambda d: nn.Linear(2, 3).load_state_dict({"weight": [["a", "b"]] * 3, "bias": ta.zeros(3)}),
     TypeError, r"load_state_dict for Linear: key 'weight' holds a value of dtype <U1"),
    ("load_state_dict-shape", lambda d: nn.Linear(2, 3).load_state_dict({"weight": ta.zeros(2, 2), "bias": ta.zeros(3)}),
     (ValueError, RuntimeError), r"load_state_dict.*weight.*\(2, 2\).*\(3, 2\)"),
    # ---- gradcheck misuse ----
    ("gradcheck-float32", lambda d: gradcheck(lambda t: t * 2, [r(2).requires_grad_()]), TypeError,
     r"gradcheck\(.*\): input 0 is float32; use float64"),
    ("gradcheck-no-grad", lambda d: gradcheck(lambda t: t * 2, [r(2, dtype=np.float64)]), ValueError,
     r"gradcheck\(.*\): no input requires grad"),
    ("gradcheck-returns-float", lambda d: gradcheck(lambda t: float(t.sum()), [r(2, dtype=np.float64).requires_grad_()]),
     TypeError, r"gradcheck\(.*\): fn must return a tensor or a tuple of tensors, got float"),
    ("gradcheck-returns-None-in-tuple", lambda d: gradcheck(lambda t: (t * 2, None), [r(2, dtype=np.float64).requires_grad_()]),
     TypeError, r"gradcheck\(.*\): fn must return .*got NoneType at output 1"),
    ("gradcheck-int-inputs", lambda d: gradcheck(lambda t: t, 3), TypeError,
     r"gradcheck\(.*\): inputs must be a tensor or a sequence of inputs, got int"),
]


@pytest.mark.parametrize("call, error, pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in BAD])
def test_bad_input_is_a_clear_error(call, error, pattern, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. PyTorch-style warnings on the way; the error is what counts
        with pytest.raises(error, match=pattern):
            call(str(tmp_path))


# Mixing devices (on the GPU, or Numba's CUDA simulator that tests/conftest.py turns on without one).
DEVICES = [
    ("add", lambda: r(2) + r(2).to("cuda"), r"[Aa]dd: expected all tensors on the same device.*cpu.*cuda"),
    ("matmul", lambda: r(2, 2) @ r(2, 2).to("cuda"), r"[Mm]atmul: expected all tensors on the same device"),
    ("linear", lambda: F.linear(r(2, 3).to("cuda"), r(4, 3)), r"[Ll]inear: expected all tensors on the same device"),
    ("layer_norm", lambda: F.layer_norm(r(2, 4).to("cuda"), (4,), weight=ta.ones(4)),
     r"[Ll]ayer_?[Nn]orm: expected all tensors on the same device"),
    ("cross_entropy", lambda: F.cross_entropy(r(3, 5).to("cuda"), ta.tensor([0, 1, 2])),
     r"cross_entropy: expected all tensors on the same device, got cuda and cpu"),
    ("embedding", lambda: F.embedding(ta.tensor([0], device="cuda"), r(3, 2)),
     r"embedding: expected all tensors on the same device, got cpu and cuda"),
    ("sdpa", lambda: F.scaled_dot_product_attention(r(2, 3, 4).to("cuda"), r(2, 3, 4), r(2, 3, 4)),
     r"[Ss]caled_?[Dd]ot_?[Pp]roduct_?[Aa]ttention: expected all tensors on the same device"),
    ("mse_loss", lambda: F.mse_loss(r(3).to("cuda"), r(3)), r"(mse_loss|MSELoss): expected all tensors on the same device"),
]


@pytest.mark.parametrize("call, pattern", [pytest.param(c, p, id=i) for i, c, p in DEVICES])
def test_mixed_devices_are_a_clear_error(call, pattern):
    with pytest.raises(RuntimeError, match=pattern):
        call()


def test_bad_ids_are_unique():
    ids = [row[0] for row in BAD]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("data", [None, "abc", {"a": 1}, 1 + 2j, [[1, 2], [3]], [1, "a"], np.array([1, None])],
                         ids=["None", "str", "dict", "complex", "ragged", "list-with-str", "object-array"])
def test_Tensor_and_tensor_refuse_data_alike(data):
    with pytest.raises((TypeError, ValueError)) as via_factory:
        ta.tensor(data)
    with pytest.raises(type(via_factory.value)) as via_class:
        ta.Tensor(data)
    assert str(via_class.value) == str(via_factory.value)


# ---- nothing half-modified ----------------------------------------------------------------------

def test_failed_op_keeps_grads_and_data():
    a = ta.randn(2, 3, requires_grad=True)
    (a * 2).sum().backward()
    grad_before, data_before = a.grad.numpy().copy(), a.numpy().copy()
    with pytest.raises(ValueError):
        (a @ ta.randn(2, 3)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), grad_before)
    np.testing.assert_array_equal(a.numpy(), data_before)


def test_failed_calls_leave_inputs_and_parameters_alone():
    x = r(3, 1, 8)
    x.requires_grad_()
    layer = nn.MultiheadAttention(8, 2)
    norm = nn.LayerNorm(4)
    params = {name: p.numpy().copy() for name, p in [*layer.named_parameters(), *norm.named_parameters()]}
    x_before = x.numpy().copy()
    with pytest.raises(TypeError):
        layer(x, x, x, attn_mask=ta.zeros(3, 3, dtype=ta.float64))
    with pytest.raises(ValueError):
        layer(x, x, x, key_padding_mask=ta.zeros(1, 4))
    with pytest.raises(TypeError):
        F.layer_norm(r(2, 4), (4,), weight=ta.ones(4, dtype=ta.float64), bias=norm.bias)
    with pytest.raises(ValueError):
        F.scaled_dot_product_attention(x, x, x, dropout_p=2.0)
    np.testing.assert_array_equal(x.numpy(), x_before)
    assert x.grad is None
    for name, p in [*layer.named_parameters(), *norm.named_parameters()]:
        np.testing.assert_array_equal(p.numpy(), params[name])
        assert p.grad is None


def test_failed_load_state_dict_changes_no_parameter():
    layer = nn.Linear(2, 3)
    before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    bad = {"weight": ta.zeros(3, 2), "bias": ta.zeros(4)}  # weight fits, bias does not
    with pytest.raises((ValueError, RuntimeError), match="load_state_dict"):
        layer.load_state_dict(bad)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_failed_manual_seed_keeps_the_generator():
    ta.manual_seed(3)
    expected = ta.rand(4).numpy()
    ta.manual_seed(3)
    for bad in ("a", 2.5, None, 2**64):
        with pytest.raises((TypeError, ValueError), match="manual_seed: "):
            ta.manual_seed(bad)
    np.testing.assert_array_equal(ta.rand(4).numpy(), expected)
