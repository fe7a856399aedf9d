"""Dtype policies (issue 15, item 5): a bound follows the dtype the layer computes in.

The package's layers refuse compute dtypes other than float32/float64 (under "mixed_float16" a
layer would multiply by a float16 copy of its kernel whose norm exceeds the measured one), and
`layer_lipschitz_bound` refuses every layer that computes in another dtype, Keras' own included:
Keras casts the input to the compute dtype, a rounding that even a layer which only moves values
does not undo (an adversarial review, 2026-12-04). A float32 layer fed float64 tensors in a graph
carries one more rounding margin.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp
from lipvae_tf.constraints import finalize_constraints

MIXED = ["mixed_float16", "mixed_bfloat16"]


@pytest.fixture(params=MIXED)
def mixed_policy(request):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy(previous)


REFUSING = {
    "LipschitzDense": (lambda **kw: ll.LipschitzDense(4, **kw), (6,)),
    "LipschitzConv2D": (lambda **kw: ll.LipschitzConv2D(2, 3, **kw), (5, 5, 2)),
    "LipschitzConv2DTranspose": (lambda **kw: ll.LipschitzConv2DTranspose(2, 3, **kw), (4, 4, 2)),
    "Scale": (lambda **kw: ll.Scale(0.5, **kw), (4,)),
    "Shift": (lambda **kw: ll.Shift(0.1, **kw), (4,)),
    "StdCap": (lambda **kw: ll.StdCap(0.1, **kw), (4,)),
}


@pytest.mark.parametrize("name", sorted(REFUSING))
def test_layers_refuse_a_mixed_policy_with_a_clear_error(mixed_policy, name):
    make, _ = REFUSING[name]
    compute = mixed_policy.split("_")[1]
    with pytest.raises(ValueError, match=rf"dtype: {name} .* would compute in {compute} .*"
                                         rf"{mixed_policy}.*dtype='float32'"):
        make()


@pytest.mark.parametrize("name", sorted(REFUSING))
def test_layers_with_an_explicit_float32_dtype_work_under_a_mixed_policy(mixed_policy, name):
    make, shape = REFUSING[name]
    layer = make(dtype="float32")
    y = layer(tf.random.normal((3, *shape)))
    assert y.dtype == tf.float32 and layer.compute_dtype == "float32"
    bound = lp.layer_lipschitz_bound(layer)
    if hasattr(layer, "kernel"):  # the kernel it computes with is the one measured
        assert layer.kernel.dtype == "float32"
        assert bound >= 0.99


@pytest.mark.parametrize("name", sorted(REFUSING))
def test_a_policy_changed_after_construction_is_refused_at_call(name):
    make, shape = REFUSING[name]
    layer = make()
    layer(tf.random.normal((2, *shape)))
    layer.dtype_policy = "mixed_float16"
    assert layer.compute_dtype == "float16"
    with pytest.raises(ValueError, match=f"dtype: {name} .*float16"):
        layer(tf.random.normal((2, *shape)))
    if hasattr(layer, "kernel"):  # and a bound asked for anyway measures the float16 copy
        kernel16 = layer.kernel.numpy().astype(np.float16).astype(np.float64)
        assert lp.applied_kernel(layer).tolist() == kernel16.tolist()


REDUCED = {  # layers whose bound was 1 (or their kernel's norm) under a reduced-precision policy
    "GroupSort": (lambda: ll.GroupSort(2), (2,)),
    "MaxMin": (ll.MaxMin, (2,)),
    "Flatten": (keras.layers.Flatten, (2, 1)),
    "ReLU": (keras.layers.ReLU, (2,)),
    "linear": (lambda: keras.layers.Activation("linear"), (2,)),
    "Dense": (lambda: keras.layers.Dense(2, use_bias=False, kernel_initializer="identity"), (2,)),
}


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_a_layer_computing_in_reduced_precision_is_refused_a_bound(mixed_policy, name):
    """An adversarial review (2026-12-04): GroupSort, Flatten, ReLU and a linear Activation
    under a mixed policy were bounded by 1, but Keras rounds their float32 input to the compute
    dtype: for the pair (x, 0) with x = 1 + 2^-8 + 2^-10 the bfloat16 graph moves the output
    by 1.0029 x ||x|| (float16: 1.0004 at a finer x)."""
    make, shape = REDUCED[name]
    layer = make()  # made under the mixed policy
    model = keras.Sequential([keras.Input(shape), layer])
    assert layer.compute_dtype == mixed_policy.split("_")[1]
    x = np.zeros((1, *shape), np.float32)
    fine = 2.0**-8 if mixed_policy == "mixed_bfloat16" else 2.0**-11  # the dtype's u
    x.flat[0] = 1 + fine + fine / 4
    ratio = np.linalg.norm(np.asarray(model(x), np.float64)) / np.linalg.norm(x)
    assert ratio > 1 + 1e-4  # what the layer computes: beyond any margin of a bound of 1
    with pytest.raises(ValueError, match=f"dtype: {type(layer).__name__} .* would compute in "
                                         f"{layer.compute_dtype}"):
        lp.layer_lipschitz_bound(layer)
    with pytest.raises(ValueError, match="would compute in"):
        lp.network_lipschitz_bound(model)
    with pytest.raises(ValueError, match="would compute in"):
        lp.output_rounding_factor(model)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_reduced_precision_input_layer_is_refused_a_bound(dtype):
    """keras.Input(dtype="bfloat16") rounds the model's float32 input before a float32 Dense;
    the chain's bound was the Dense's alone (1.0000005 against 1.0029 measured)."""
    model = keras.Sequential([keras.Input((2,), dtype=dtype),
                              keras.layers.Dense(2, use_bias=False, kernel_initializer="identity",
                                                 dtype="float32")])
    fine = 2.0**-8 if dtype == "bfloat16" else 2.0**-11  # the dtype's u
    x = np.array([[1 + fine + fine / 4, 0.0]], np.float32)
    ratio = np.linalg.norm(np.asarray(model(x), np.float64)) / np.linalg.norm(x)
    assert ratio > 1 + 1e-4
    with pytest.raises(ValueError, match=f"takes its input as {dtype}"):
        lp.network_lipschitz_bound(model)


def test_a_float32_layer_fed_float64_in_a_graph_carries_the_rounding_of_its_input():
    """A float32 Flatten after keras.Input(dtype="float64") rounds its input to float32: not
    exact, so it gets the float32 rounding margin, in its bound and in the output factor."""
    flatten, relu = keras.layers.Flatten(), keras.layers.ReLU()
    model = keras.Sequential([keras.Input((2, 1), dtype="float64"), flatten, relu])
    margin = 1 + lp.rounding_margin("float32")
    assert lp.rounds_its_input(flatten) and not lp.rounds_its_input(relu)
    assert lp.layer_lipschitz_bound(flatten) == margin
    assert lp.layer_lipschitz_bound(relu) == 1.0
    assert lp.network_lipschitz_bound(model) == margin
    assert lp.output_rounding_factor(model) == lp.product_rounded_up(margin, margin)  # and ReLU
    x = np.array([[[1 + 2.0**-24 + 2.0**-30], [0.0]]])  # rounds up to 1 + 2^-23 in float32
    ratio = np.linalg.norm(np.asarray(model(x), np.float64)) / np.linalg.norm(x)
    assert 1 < ratio <= lp.network_lipschitz_bound(model)
    float32_model = keras.Sequential([keras.Input((2, 1)), keras.layers.Flatten()])
    assert lp.network_lipschitz_bound(float32_model) == 1.0  # nothing to round


def test_float64_layers_are_bounded_as_they_compute():
    layer = ll.LipschitzDense(4, lipschitz=1 / 3, kernel_initializer="identity", use_bias=False,
                              constraint="spectral", dtype="float64")
    layer.build((None, 4))
    y = layer(tf.constant(np.eye(4)[:1], tf.float64)).numpy()
    assert y.dtype == np.float64
    bound = lp.layer_lipschitz_bound(layer)
    assert float(np.linalg.norm(y)) <= bound <= float(np.linalg.norm(y)) * (1 + 1e-9)


def test_keras_dense_under_a_mixed_policy_is_refused(mixed_policy):
    """The issue's case: Dense(64) on 128 features multiplies by a float16 copy of its kernel,
    whose norm is above the float32 master's. It was measured in float16 with that dtype's
    margin; now every reduced-precision layer is refused (its input's rounding, float16's
    overflow at 65504)."""
    dense = keras.layers.Dense(64, kernel_initializer="orthogonal")
    keras.Sequential([keras.Input((128,)), dense])
    assert dense.compute_dtype != "float32" and dense.kernel.dtype == "float32"
    master = np.linalg.norm(dense.kernel.numpy().astype(np.float64), 2)
    dtype = tf.float16 if mixed_policy == "mixed_float16" else tf.bfloat16
    used = np.linalg.norm(tf.cast(dense.kernel, dtype).numpy().astype(np.float64), 2)
    assert used > master * (1 + 1e-5)  # the copy is measurably larger than the master
    with pytest.raises(ValueError, match=f"dtype: Dense 'dense.*' would compute in {dtype.name} "
                                         f"\\(dtype policy '{mixed_policy}'\\)"):
        lp.layer_lipschitz_bound(dense)


def test_a_lipschitz_vae_under_mixed_float16_is_refused_at_construction():
    from lipvae_tf.model import LipschitzVAE

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with pytest.raises(ValueError, match="mixed_float16"):
            LipschitzVAE(4, hidden_units=(8,))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert keras.mixed_precision.global_policy().name == previous.name


@pytest.mark.parametrize("constraint", ["spectral_norm", "subspace_clip", "spectral"])
def test_float64_conv_layers_build_train_and_are_bounded_under_every_constraint(constraint):
    """spectral_norm's float32 power vector met the float64 kernel in one convolution: the
    layer failed at build with a dtype error."""
    layer = ll.LipschitzConv2D(3, 3, strides=2, lipschitz=0.5, constraint=constraint,
                               dtype="float64")
    layer.build((None, 8, 8, 2))
    layer.kernel.assign(layer.kernel * 4.0)
    layer.kernel.assign(layer.kernel.constraint(layer.kernel))  # one step's control
    assert layer.kernel.dtype == "float64"
    y = layer(tf.ones((1, 8, 8, 2), tf.float64))
    assert y.dtype == tf.float64 and np.isfinite(y.numpy()).all()
    finalize_constraints([layer])
    assert lp.layer_lipschitz_bound(layer) <= 0.5 * (1 + 1e-9)


@pytest.mark.parametrize("constraint", ["spectral_norm", "subspace_clip", "bjorck"])
def test_float64_dense_layers_build_and_step_under_every_stateful_constraint(constraint):
    layer = ll.LipschitzDense(5, lipschitz=0.5, constraint=constraint, dtype="float64")
    layer.build((None, 7))
    layer.kernel.assign(layer.kernel * 3.0)
    layer.kernel.assign(layer.kernel.constraint(layer.kernel))
    assert layer.kernel.dtype == "float64" and np.isfinite(layer.kernel.numpy()).all()
    finalize_constraints([layer])
    assert lp.layer_lipschitz_bound(layer) <= 0.5 * (1 + 1e-9)


@pytest.mark.parametrize("policy", [*MIXED, "float64", "float16"])
def test_the_models_own_policy_stays_float32(policy):
    """An adversarial review (2026-12-04): `vae.dtype_policy = "mixed_bfloat16"` was accepted,
    Keras then rounded the images to bfloat16 before `call`, and `call`, `predict` and
    `serving_default` moved the reconstruction by 2.2e-2 between images 2e-6 apart (1440 x the
    Lipschitz bound) while `certified_radius` certified the float32 map unchanged."""
    import lipvae_tf as lv

    vae = lv.LipschitzVAE.from_target(1.0, 8.0, latent_dim=4, hidden_units=(16,))
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    before = vae.certified_radius(x, 8.0)
    with pytest.raises(ValueError, match=rf"dtype_policy of a LipschitzVAE must stay float32 .*"
                                         rf"got '{policy}'"):
        vae.dtype_policy = policy
    assert vae.dtype_policy.name == "float32" and vae(x).dtype == tf.float32
    vae.dtype_policy = "float32"  # the policy it has stays allowed
    np.testing.assert_array_equal(vae.certified_radius(x, 8.0), before)
    # set around the setter, the policy is refused where the model is certified
    vae.__dict__["_dtype_policy"] = keras.dtype_policies.get(policy)
    with pytest.raises(RuntimeError, match=rf"own dtype policy is '{policy}'"):
        vae.certified_radius(x, 8.0)
