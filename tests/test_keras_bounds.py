"""Plain Keras layers: every class `layer_lipschitz_bound` accepts is checked against the exact
operator norm of the layer's linear map; unknown layers raise TypeError naming their class; the
registry lets a user's own layer join."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.models.functional import Functional  # what a Sequential runs
from operators import dense_matrix

import lipvae_tf as lv
from lipvae_tf import forward_error as fe
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp


def _exact(layer, input_shape) -> float:
    """Exact norm of x -> layer(x) - layer(0) (the bias removed), from the layer's own matrix."""
    zero = layer(tf.zeros((1, *input_shape)))

    def op(x):
        return tf.cast(layer(tf.cast(x, tf.float32)) - zero, tf.float64)

    return float(np.linalg.norm(dense_matrix(op, input_shape), 2))


def _randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))


CASES = [  # (id, layer factory, input shape)
    *[(f"dense-bias{b}", lambda b=b: keras.layers.Dense(5, use_bias=b), (7,)) for b in (0, 1)],
    *[(f"conv1d-{pad}-s{s}-bias{b}",
       lambda pad=pad, s=s, b=b: keras.layers.Conv1D(3, 3, strides=s, padding=pad, use_bias=b),
       (9, 2)) for pad in ("valid", "same", "causal") for s in (1, 2) for b in (0, 1)],
    # causal padding makes the run input longer than a kernel longer than the input (a review
    # found such layers refused as if TF's faulty CPU shapes)
    *[(f"conv1d-causal-kernel4-input3-s{s}",
       lambda s=s: keras.layers.Conv1D(3, 4, strides=s, padding="causal"), (3, 2))
      for s in (1, 2)],
    *[(f"conv2d-{pad}-s{s}-bias{b}",
       lambda pad=pad, s=s, b=b: keras.layers.Conv2D(3, 3, strides=s, padding=pad, use_bias=b),
       (6, 5, 2)) for pad in ("valid", "same") for s in (1, 2) for b in (0, 1)],
    *[(f"conv2dT-{pad}-s{s}-bias{b}",
       lambda pad=pad, s=s, b=b: keras.layers.Conv2DTranspose(3, 3, strides=s, padding=pad,
                                                              use_bias=b),
       (4, 5, 2)) for pad in ("valid", "same") for s in (1, 2) for b in (0, 1)],
    ("conv2dT-same-s2-output_padding",
     lambda: keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1),
     (4, 4, 2)),
    ("conv2dT-valid-s3-kernel2", lambda: keras.layers.Conv2DTranspose(2, 2, strides=3), (3, 4, 2)),
    *[(f"conv1dT-{pad}-s{s}",
       lambda pad=pad, s=s: keras.layers.Conv1DTranspose(3, 3, strides=s, padding=pad),
       (5, 2)) for pad in ("valid", "same") for s in (1, 2)],
]


@pytest.mark.parametrize("make,input_shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_keras_layer_bound_is_above_the_exact_operator_norm(make, input_shape):
    layer = make()
    keras.Sequential([keras.Input(input_shape), layer])
    _randomise(layer, seed=len(input_shape) * 10 + layer.weights[0].shape[-1])
    exact = _exact(layer, input_shape)
    bound = lp.layer_lipschitz_bound(layer)
    assert np.isfinite(bound)
    assert bound >= exact * (1 + 1e-7)  # above the norm, with the float32 rounding margin
    if isinstance(layer, keras.layers.Dense):
        assert bound == pytest.approx(exact, rel=1e-6)  # exact up to the margin
    else:
        # zero padding: a guaranteed, slightly loose bound (looser where the padding is most
        # of the input: a causal kernel longer than the input)
        assert bound <= (2.0 if layer.kernel_size[0] > input_shape[0] else 1.3) * exact


def test_the_issue_example_and_a_conv_standard_vae_are_bounded():
    from lipvae_tf.model import StandardVAE

    layer = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")
    model = keras.Sequential([keras.Input((4, 4, 2)), layer])
    assert lp.network_lipschitz_bound(model) >= _exact(layer, (4, 4, 2))
    constants = StandardVAE(4, architecture="conv", conv_filters=(2, 3)).lipschitz_constants()
    assert all(np.isfinite(v) and v > 0 for v in constants.values()), constants


def test_activation_of_a_keras_conv_is_counted():
    layer = keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")
    keras.Sequential([keras.Input((5, 5, 1)), layer])
    linear = keras.layers.Conv2D(2, 3, padding="same")
    keras.Sequential([keras.Input((5, 5, 1)), linear])
    linear.kernel.assign(layer.kernel)
    assert lp.layer_lipschitz_bound(layer) == pytest.approx(
        0.25 * lp.layer_lipschitz_bound(linear), rel=1e-12)


class _Custom(keras.layers.Layer):
    def call(self, x):
        return 2 * x


class _DenseWithOwnCall(keras.layers.Dense):
    def call(self, x):
        return 10 * super().call(x)


@pytest.mark.parametrize("make,input_shape,name", [
    (lambda: keras.layers.BatchNormalization(), (4,), "BatchNormalization"),
    (lambda: keras.layers.LayerNormalization(), (4,), "LayerNormalization"),
    (lambda: keras.layers.DepthwiseConv2D(3), (5, 5, 2), "DepthwiseConv2D"),
    (lambda: keras.layers.SeparableConv2D(2, 3), (5, 5, 2), "SeparableConv2D"),
    (lambda: keras.layers.Conv3D(2, 3), (4, 4, 4, 1), "Conv3D"),
    (lambda: keras.layers.Conv2D(2, 3, groups=2), (5, 5, 2), "Conv2D"),
    (lambda: keras.layers.Conv2D(2, 3, dilation_rate=2), (6, 6, 1), "Conv2D"),
    (lambda: keras.layers.Conv2DTranspose(2, 3, dilation_rate=2), (4, 4, 1), "Conv2DTranspose"),
    (lambda: keras.layers.Conv1D(2, 3, data_format="channels_first"), (2, 6), "Conv1D"),
    (lambda: keras.layers.Add(), None, "Add"),
    (lambda: keras.layers.Embedding(5, 3), (4,), "Embedding"),
    (lambda: _Custom(), (4,), "_Custom"),
    (lambda: _DenseWithOwnCall(3), (4,), "_DenseWithOwnCall"),
])
def test_unknown_layers_raise_a_type_error_naming_their_class(make, input_shape, name):
    layer = make()
    if input_shape is not None:
        keras.Sequential([keras.Input(input_shape), layer])
    with pytest.raises(TypeError, match=name):
        lp.layer_lipschitz_bound(layer)


def test_not_a_layer_is_a_type_error():
    with pytest.raises(TypeError, match="keras.layers.Layer.*ndarray"):
        lp.layer_lipschitz_bound(np.eye(3))


def test_registered_rule_bounds_a_users_layer_and_its_plain_subclasses():
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    class NamedDoubler(Doubler):
        pass

    class Tripler(Doubler):
        def call(self, x):
            return x * 3.0

    with pytest.raises(TypeError, match="Doubler"):
        lp.layer_lipschitz_bound(Doubler())

    @lp.register_lipschitz_bound(Doubler)
    def _doubler(layer):
        return 2.0 * (1 + lp.rounding_margin(layer.compute_dtype))

    assert lp.layer_lipschitz_bound(Doubler()) == pytest.approx(2.0, rel=1e-6)
    assert lp.layer_lipschitz_bound(NamedDoubler()) == lp.layer_lipschitz_bound(Doubler())
    with pytest.raises(TypeError, match="Tripler.*overrides call"):
        lp.layer_lipschitz_bound(Tripler())
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), Doubler()])
    assert lp.network_lipschitz_bound(model) == pytest.approx(
        lp.layer_lipschitz_bound(model.layers[0]) * lp.layer_lipschitz_bound(model.layers[1]))


@pytest.mark.parametrize("returned, error, match", [
    (-1.0, ValueError, "returned -1.0: a bound must be finite and >= 0"),
    (float("nan"), ValueError, "returned nan"), (float("inf"), ValueError, "returned inf"),
    ("abc", TypeError, "returned str 'abc', not a real number"),
    (None, TypeError, "returned NoneType"), (True, TypeError, "returned bool"),
])
def test_a_registered_rule_must_return_a_bound(monkeypatch, returned, error, match):
    """A practitioner's review (2026-12-02): a rule returning -1 made a network's bound
    -1.32 without a word; NaN, inf and a string raised errors naming neither layer nor rule."""
    monkeypatch.setattr(lp, "_RULES", dict(lp._RULES))

    class Odd(keras.layers.Layer):
        def call(self, x):
            return x

    @lp.register_lipschitz_bound(Odd)
    def odd_rule(layer):
        return returned

    model = keras.Sequential([keras.Input((3,)), Odd(name="odd")])
    with pytest.raises(error, match=match) as raised:
        lp.network_lipschitz_bound(model)
    assert "odd_rule" in str(raised.value) and "'odd'" in str(raised.value)


@pytest.mark.parametrize("args", [(), (int,), (keras.layers.Dense, "Conv2D")])
def test_register_rejects_non_layer_classes(args):
    with pytest.raises(TypeError, match="register_lipschitz_bound"):
        lp.register_lipschitz_bound(*args)


def test_a_kernel_with_nan_or_inf_has_no_bound_and_the_error_names_the_layer():
    """A review: a NaN kernel made certified_radius raise numpy's "SVD did not converge"."""
    for bad in (np.nan, np.inf):
        layer = keras.layers.Dense(3, name="diverged")
        keras.Sequential([keras.Input((4,)), layer])
        kernel = layer.kernel.numpy()
        kernel[1, 2] = bad
        layer.kernel.assign(kernel)
        with pytest.raises(ValueError, match="layer 'diverged': its kernel holds NaN or Inf"):
            lp.layer_lipschitz_bound(layer)


@pytest.mark.parametrize("make,input_shape", [
    (lambda: keras.layers.Dense(3, name="adapted"), (4,)),
    (lambda: keras.layers.Conv1D(2, 3, name="adapted"), (6, 2)),
    (lambda: keras.layers.Conv2D(2, 3, name="adapted"), (5, 5, 2)),
])
def test_a_lora_layer_is_refused_by_name_not_mistaken_for_a_replaced_kernel(make, input_shape):
    """Found by a review: with LoRA enabled, `layer.kernel` is kernel + (alpha / rank) A B
    computed in the graph, and the error said a tensor had been assigned over the kernel."""
    layer = make()
    keras.Sequential([keras.Input(input_shape), layer])
    layer.enable_lora(2)
    layer.lora_kernel_b.assign(np.ones(layer.lora_kernel_b.shape, "float32"))
    with pytest.raises(TypeError, match="layer 'adapted' .* has LoRA enabled \\(rank 2\\)"):
        lp.layer_lipschitz_bound(layer)


def test_a_quantized_layer_is_refused_by_name():
    layer = keras.layers.Dense(4, name="small")
    keras.Sequential([keras.Input((8,)), layer])
    layer.quantize("int8")
    with pytest.raises(TypeError, match="layer 'small' of type Dense is quantized \\(int8\\)"):
        lp.layer_lipschitz_bound(layer)


def _elu_alpha_3(x):
    return keras.activations.elu(x, alpha=3.0)  # slope 3 just below 0


def _relu_times_5(x):
    return 5.0 * keras.activations.relu(x)


_elu_alpha_3.__name__, _relu_times_5.__name__ = "elu", "relu"  # names Keras knows


@pytest.mark.parametrize("function,slope", [(_elu_alpha_3, 3.0), (_relu_times_5, 5.0)])
@pytest.mark.parametrize("where", ["Activation", "Dense"])
def test_a_users_function_named_like_a_keras_activation_is_refused(function, slope, where):
    """A review (soundness): the constant was looked up by the function's name, so a function
    of the user's named "elu" got elu's 1 while the model's measured ratio was 3."""
    dense = keras.layers.Dense(4, kernel_initializer="identity", use_bias=False,
                               activation=function if where == "Dense" else None)
    layers = [dense] + ([keras.layers.Activation(function)] if where == "Activation" else [])
    model = keras.Sequential([keras.Input((4,)), *layers])
    x = np.full((1, 4), 1e-3 if function is _relu_times_5 else -1e-3, "float32")
    ratio = float(np.linalg.norm(model(x) - model(x * 2)) / np.linalg.norm(x))
    assert ratio == pytest.approx(slope, rel=1e-2)  # what the model computes
    with pytest.raises(TypeError, match="no Lipschitz constant known .* by identity, not by name"):
        lp.network_lipschitz_bound(model)


@pytest.mark.parametrize("activation", [lambda x: x, keras.layers.ReLU(), "selu"])
def test_an_activation_without_a_known_constant_is_a_type_error(activation):
    """A lambda's serialisation raised a raw OSError (no source code), a layer object a
    TypeError about an unhashable dict."""
    layer = keras.layers.Dense(3, activation=activation)
    keras.Sequential([keras.Input((4,)), layer])
    with pytest.raises(TypeError, match="no Lipschitz constant known for activation"):
        lp.layer_lipschitz_bound(layer)


@pytest.mark.parametrize("name", sorted(lp.ACTIVATION_CONSTANTS))
def test_keras_own_activations_keep_their_constants(name):
    by_name = keras.layers.Dense(3, activation=name)
    by_function = keras.layers.Dense(3, activation=keras.activations.get(name))
    for layer in (by_name, by_function):
        keras.Sequential([keras.Input((4,)), layer])
        assert lp.activation_constant(layer.activation) == lp.ACTIVATION_CONSTANTS[name]
    _check_slope(keras.activations.get(name), lp.ACTIVATION_CONSTANTS[name])


@pytest.mark.parametrize("function,name", [
    (tf.nn.relu, "relu"), (tf.math.tanh, "tanh"), (tf.nn.silu, "silu"),
    (tf.math.sigmoid, "sigmoid"), (tf.nn.leaky_relu, "leaky_relu"), (keras.ops.relu, "relu"),
    (keras.ops.hard_sigmoid, "hard_sigmoid"), (keras.ops.softplus, "softplus"),
])
def test_the_same_maps_from_tf_nn_and_keras_ops_are_known(function, name):
    """Recognised by identity, they keep the constant of the Keras activation they compute,
    and the slope measured on a fine grid is below it."""
    assert lp.activation_constant(function) == lp.ACTIVATION_CONSTANTS[name]
    _check_slope(function, lp.ACTIVATION_CONSTANTS[name])


def _check_slope(function, constant):
    grid = np.linspace(-8, 8, 200_001)  # float64: the slopes, not float32 round-off
    values = np.asarray(function(tf.constant(grid)), dtype=np.float64)
    slopes = np.abs(np.diff(values) / np.diff(grid))
    assert slopes.max() <= constant * (1 + 1e-10)  # float64 differences
    assert slopes.max() >= constant * 0.99  # the constant is attained


class _StandardisedConv2D(keras.layers.Conv2D):
    """Keras' documented weight-standardised convolution: only `convolution_op` is its own."""

    def convolution_op(self, inputs, kernel):
        mean, variance = keras.ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
        return super().convolution_op(inputs, (kernel - mean) / keras.ops.sqrt(variance + 1e-10))


class _Dense10(ll.LipschitzDense):
    def _finish(self, outputs):
        return super()._finish(10.0 * outputs)


class _Conv5(ll.LipschitzConv2D):
    def _convolve(self, inputs):
        return 5.0 * super()._convolve(inputs)


class _Boosted(keras.Sequential):
    def call(self, inputs, training=None, mask=None):
        return 100.0 * super().call(inputs, training=training, mask=mask)


class _BoostedFunctional(keras.Model):
    def __init__(self):
        inputs = keras.Input((4,))
        super().__init__(inputs, ll.LipschitzDense(4)(inputs))

    def call(self, inputs, training=None, mask=None):
        return 100.0 * super().call(inputs, training=training, mask=mask)


class _Renamed(ll.LipschitzDense):
    """Overrides only how it is made and described: computes as LipschitzDense."""

    def __init__(self, units, **kwargs):
        super().__init__(units, name=kwargs.pop("name", "renamed"), **kwargs)

    def get_config(self):
        return super().get_config()


@pytest.mark.parametrize("make, shape, replaced", [
    (lambda: _StandardisedConv2D(2, 3, use_bias=False), (8, 8, 1), "convolution_op"),
    (lambda: _Dense10(4), (4,), "_finish"),
    (lambda: _Conv5(2, 3), (6, 6, 1), "_convolve"),
], ids=["keras-weight-standardised-conv", "dense-finish", "conv-convolve"])
def test_a_subclass_that_replaces_any_computing_method_has_no_bound(make, shape, replaced):
    """An attacker's review (2026-12-02): the registry only checked that a subclass kept
    `call`, so Keras' weight-standardised Conv2D (its own `convolution_op`) was bounded at 0.02
    from its raw kernel while computing with a standardised one of norm about 4, and a
    LipschitzVAE built on it claimed a radius of 2374 that an attack broke at 5."""
    layer = make()
    keras.Sequential([keras.Input(shape), layer])
    assert replaced in lp.overridden_computation(layer, type(layer).__mro__[1])
    with pytest.raises(TypeError, match=f"{type(layer).__name__}.*overrides {replaced}"):
        lp.layer_lipschitz_bound(layer)
    with pytest.raises(TypeError, match=type(layer).__name__):
        fe.layer_error(layer)


@pytest.mark.parametrize("make", [
    lambda: _Boosted([keras.Input((4,)), ll.LipschitzDense(4)]), _BoostedFunctional,
], ids=["sequential", "functional"])
def test_a_model_whose_call_is_its_own_is_not_bounded_as_its_layers(make):
    model = make()
    with pytest.raises(TypeError, match="overrides call.*not the map it computes"):
        lp.network_lipschitz_bound(model)
    with pytest.raises(TypeError, match="overrides call"):
        fe.chain_errors(model)


def test_a_subclass_that_only_renames_or_reconfigures_keeps_its_bound():
    plain, renamed = ll.LipschitzDense(4), _Renamed(4)
    for layer in (plain, renamed):
        keras.Sequential([keras.Input((4,)), layer])
    renamed.kernel.assign(plain.kernel)
    assert lp.overridden_computation(renamed, ll.LipschitzDense) == ()
    assert lp.layer_lipschitz_bound(renamed) == lp.layer_lipschitz_bound(plain)
    assert fe.layer_error(renamed) == fe.layer_error(plain)


def test_a_call_set_on_the_instance_is_an_override():
    layer = ll.LipschitzDense(4)
    keras.Sequential([keras.Input((4,)), layer])
    layer.call = lambda inputs: 10.0 * inputs
    assert lp.overridden_computation(layer, ll.LipschitzDense) == ("call",)
    with pytest.raises(TypeError, match="overrides call"):
        lp.layer_lipschitz_bound(layer)


def test_a_vae_whose_std_cap_is_a_subclass_claiming_its_own_bound_is_refused():
    class LooseCap(ll.StdCap):  # keeps call: only the S the certificate reads is its own
        def output_norm_bound(self, latent_dim):
            return 1e-3 * super().output_norm_bound(latent_dim)

    vae = lv.LipschitzVAE(4, encoder_mean=1.0, decoder=1.0, std_cap=0.1)
    vae.build((None, 28, 28, 1))
    cap = vae.encoder_std_net.layers[-1]
    vae.encoder_std_net.layers[-1].__class__ = LooseCap
    # refused as a changed layer (its class is part of its settings), and by
    # std_cap_bound's own check that the cap computes as StdCap
    with pytest.raises(RuntimeError, match="LooseCap"):
        vae.certified_radius(np.zeros((1, 28, 28, 1), "float32"), 8.0)
    vae.__dict__["_built_configs"] = {  # as if it had been built with the subclass
        name: [lv.model._settings(layer) for layer in layers]
        for name, layers in vae.__dict__["_built_layers"].items()}
    with pytest.raises(ValueError, match="LooseCap overriding output_norm_bound"):
        vae.std_cap_bound()
    cap.__class__ = ll.StdCap


def test_a_keras_conv_shared_by_models_of_different_input_sizes_has_no_bound():
    """An attacker's review (2026-12-02): a Conv2D shared by a 3 x 3 and a 16 x 16 model was
    bounded on the first model's grid (3.0) while the second computed a map of norm 3.96."""
    conv = keras.layers.Conv2D(1, 2, padding="same", use_bias=False)
    small = keras.Sequential([keras.Input((3, 3, 1)), conv])
    conv.kernel.assign(np.array([[1., -1.], [-1., 1.]], "float32").reshape(2, 2, 1, 1))
    assert lp.network_lipschitz_bound(small) >= _exact(conv, (3, 3, 1))
    big = keras.Sequential([keras.Input((16, 16, 1)), conv])
    assert _exact(conv, (16, 16, 1)) > 3.9
    for model in (small, big):
        with pytest.raises(ValueError, match="several sizes") as error:
            lp.network_lipschitz_bound(model)
        assert "(3, 3, 1)" in str(error.value) and "(16, 16, 1)" in str(error.value)


@pytest.mark.parametrize("make, constant", [
    (keras.layers.ReLU, 1.0), (lambda: keras.layers.ReLU(max_value=6.0), 1.0),
    (lambda: keras.layers.ReLU(negative_slope=0.3), 1.0),
    (lambda: keras.layers.LeakyReLU(negative_slope=0.2), 1.0),
    (lambda: keras.layers.LeakyReLU(negative_slope=3.0), 3.0),
])
def test_keras_relu_layers_have_their_slope_bound(make, constant):
    """A newcomer's run (2026-12-02): keras.layers.Dense was bounded but the ReLU layer raised
    "no verified Lipschitz bound"."""
    layer = make()
    model = keras.Sequential([keras.Input((64,)), layer])
    bound = lp.network_lipschitz_bound(model)
    assert constant <= bound <= constant * (1 + 1e-6)
    rng = np.random.default_rng(0)
    a, b = (rng.normal(scale=4.0, size=(256, 64)).astype("float32") for _ in range(2))
    b[:, ::2] = a[:, ::2] - 1e-3  # pairs across the kink and the cap
    moved = np.linalg.norm(model(a).numpy().astype("float64") - model(b).numpy(), axis=1)
    assert np.all(moved <= bound * np.linalg.norm(a.astype("float64") - b, axis=1))
    assert moved.max() / np.linalg.norm(a.astype("float64") - b, axis=1).max() > 0.1 * constant


def test_a_relu_with_a_threshold_or_a_nan_slope_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.ReLU(threshold=0.5)])
    with pytest.raises(ValueError, match="threshold 0.5 is discontinuous"):
        lp.network_lipschitz_bound(model)
    for layer in (keras.layers.ReLU(negative_slope=float("nan")),
                  keras.layers.LeakyReLU(negative_slope=float("nan"))):
        with pytest.raises(ValueError, match="negative_slope nan .* not a finite number"):
            lp.network_lipschitz_bound(keras.Sequential([keras.Input((4,)), layer]))


def _jacobian_norm(model, shape):
    x = tf.random.uniform((1, *shape), seed=1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
    jacobian = tape.jacobian(y, x).numpy().astype("float64")
    return float(np.linalg.norm(jacobian.reshape(int(np.prod(y.shape)), -1), 2))


def test_overrides_hidden_by_a_metaclass_a_later_patch_or_a_property_are_found():
    """An attacker's review (2026-12-03) of the subclass check: a metaclass with a `__dict__`
    property hid a `call` override from inspect.getattr_static (bound 1.0, map 100); a class
    patched after its first (cached) check was never checked again (bound 1.0, map 100); a
    property named like an instance attribute (`lipschitz`) was not among the base's names."""
    class Meta(type(ll.LipschitzDense)):
        __dict__ = property(lambda cls: type.__dict__["__dict__"].__get__(cls))

    class Hidden(ll.LipschitzDense, metaclass=Meta):
        def call(self, inputs):
            return 100.0 * super().call(inputs)

    class Later(ll.LipschitzDense):
        pass

    class Shadowing(ll.LipschitzDense):
        @property
        def lipschitz(self):
            return 50.0 if tf.inside_function() else 1.0

        @lipschitz.setter
        def lipschitz(self, value):
            pass

    layers = {kind: kind(4, kernel_initializer="identity") for kind in (Hidden, Later, Shadowing)}
    for layer in layers.values():
        keras.Sequential([keras.Input((4,)), layer])
    assert lp.layer_lipschitz_bound(layers[Later]) < 1.01
    Later.call = lambda self, inputs: 100.0 * ll.LipschitzDense.call(self, inputs)
    for kind, replaced in ((Hidden, "__class__, call"), (Later, "call"),
                           (Shadowing, "lipschitz")):
        with pytest.raises(TypeError, match=f"overrides {replaced} of LipschitzDense"):
            lp.layer_lipschitz_bound(layers[kind])
    assert _jacobian_norm(keras.Sequential([keras.Input((4,)), layers[Hidden]]), (4,)) > 99


def test_subclasses_that_only_add_data_or_wrap_building_keep_their_bound():
    """The same review: Python 3.13 gives every class its own __firstlineno__ and
    __static_attributes__, which made every subclass look overriding; a build or
    compute_output_spec that calls super(), a new method, and plain class data (Keras'
    supports_masking, FixedConfig's _fixed_attributes) do not change the map either."""
    class Plain(ll.LipschitzDense):
        __firstlineno__ = 3
        __static_attributes__ = ("extra",)
        supports_masking = True
        _fixed_attributes = ll.LipschitzDense._fixed_attributes | {"extra"}

        def build(self, input_shape):
            super().build(input_shape)

        def compute_output_spec(self, *args, **kwargs):
            return super().compute_output_spec(*args, **kwargs)

        def describe(self):
            return "plain"

    layer = Plain(4)
    keras.Sequential([keras.Input((4,)), layer])
    assert lp.overridden_computation(layer, ll.LipschitzDense) == ()
    assert lp.layer_lipschitz_bound(layer) < 1.01


def test_nested_and_shared_functional_models_are_chains():
    """The same review: a Functional model nested in another, and a layer shared by a decoder
    and an autoencoder, were refused ("not a chain")."""
    inner_input = keras.Input((4,))
    inner = keras.Model(inner_input, ll.LipschitzDense(4, lipschitz=2.0)(inner_input))
    outer_input = keras.Input((4,))
    outer = keras.Model(outer_input, ll.LipschitzDense(4, lipschitz=3.0)(inner(outer_input)))
    assert lp.network_lipschitz_bound(outer) == pytest.approx(6.0, rel=1e-5)
    shared = ll.LipschitzDense(4, lipschitz=5.0)
    decoder_input = keras.Input((4,))
    decoder = keras.Model(decoder_input, shared(decoder_input))
    autoencoder_input = keras.Input((4,))
    autoencoder = keras.Model(autoencoder_input,
                              shared(ll.LipschitzDense(4)(autoencoder_input)))
    assert lp.network_lipschitz_bound(decoder) == pytest.approx(5.0, rel=1e-5)
    assert lp.network_lipschitz_bound(autoencoder) == pytest.approx(5.0, rel=1e-5)
    # a layer called twice in one chain is two steps of it (a power user's review, 2026-12-04:
    # refused as "not a chain of layers at 'head'", naming a layer that was not the cause)
    twice_input = keras.Input((4,))
    twice = keras.Model(twice_input, shared(shared(twice_input)))
    assert lp.network_lipschitz_bound(twice) == pytest.approx(25.0, rel=1e-5)
    sorting = ll.GroupSort(2)
    head = ll.LipschitzDense(4, lipschitz=2.0)
    chain = keras.Model(twice_input, head(shared(sorting(shared(twice_input)))))
    assert lp.chain_layers(chain) == [shared, sorting, shared, head]
    assert lp.network_lipschitz_bound(chain) == pytest.approx(50.0, rel=1e-5)
    # a real branch is named where it starts, with the layers that take the tensor
    hidden = shared(twice_input)
    fork = keras.Model(twice_input, keras.layers.Add()([head(hidden), sorting(hidden)]))
    with pytest.raises(TypeError, match=r"not a chain of layers after '[^']+': the tensor "
                                        r"there goes to .*group_sort.* \(2 calls\)"):
        lp.network_lipschitz_bound(fork)


def test_dropout_called_with_training_true_is_refused():
    """The same review: Dropout(0.9)(x, training=True) in a Functional model (Monte Carlo
    dropout) was bounded by 1 while every call scaled the kept values by 10."""
    inputs = keras.Input((4,))
    dropout = keras.layers.Dropout(0.9)
    model = keras.Model(inputs, dropout(inputs, training=True))
    with pytest.raises(ValueError, match="training=True"):
        lp.network_lipschitz_bound(model)
    with pytest.raises(ValueError, match="training=True"):
        lp.layer_lipschitz_bound(dropout)
    plain = keras.Model(inputs, keras.layers.Dropout(0.9)(inputs))
    assert lp.network_lipschitz_bound(plain) == 1.0


@pytest.mark.parametrize("training", [1, np.True_, "tensor"], ids=["one", "numpy", "tensor"])
def test_dropout_called_with_a_true_training_of_another_type_is_refused(training):
    """An adversarial review (2026-12-04): only `training is True` was refused, so Dropout(0.5)
    called with training=1 (or np.True_, or a boolean tensor) was bounded by 1 while it
    doubled differences."""
    inputs = keras.Input((1000,))
    dropout = keras.layers.Dropout(0.5)
    training = tf.constant(True) if training == "tensor" else training
    model = keras.Model(inputs, dropout(inputs, training=training))
    e = np.zeros((1, 1000), np.float32)
    e[0, :10] = 1.0
    assert np.linalg.norm(model(e)) > 1.2 * np.linalg.norm(e)  # it drops and scales by 2
    with pytest.raises(ValueError, match="training=True"):
        lp.network_lipschitz_bound(model)
    with pytest.raises(ValueError, match="training=True"):
        lp.layer_lipschitz_bound(dropout)
    for off in (False, np.False_, None):
        plain = keras.Model(inputs, keras.layers.Dropout(0.5)(inputs, training=off))
        assert lp.network_lipschitz_bound(plain) == 1.0


class _TwiceSequential(keras.Sequential):
    """A Sequential whose `build` (the only method it overrides) wires each layer twice into
    the graph `call` runs."""

    def build(self, input_shape=None):
        super().build(input_shape)
        x = inputs = self._layers[0].output
        for layer in self._layers[1:]:
            x = layer(layer(x))
        self._functional = Functional(inputs=inputs, outputs=x)


def test_a_sequential_is_bounded_by_the_graph_it_runs():
    """An adversarial review (2026-12-04): `build` counts as a harmless override, but
    Sequential.build wires `_functional`, the graph `call` runs; a subclass calling each layer
    twice there computed 9 x while bounded by 3. The chain is now walked in that graph."""
    dense = keras.layers.Dense(4, use_bias=False,
                               kernel_initializer=keras.initializers.Identity(gain=3.0))
    model = _TwiceSequential([keras.Input((4,)), dense])
    x = np.ones((1, 4), np.float32)
    ratio = np.linalg.norm(model(x)) / np.linalg.norm(x)
    assert ratio == pytest.approx(9.0)
    assert [layer.name for layer in lp.chain_layers(model)] == [dense.name, dense.name]
    assert ratio <= lp.network_lipschitz_bound(model) <= 9.0 * (1 + 1e-5)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        4, use_bias=False, kernel_initializer=keras.initializers.Identity(gain=3.0))])
    assert lp.network_lipschitz_bound(plain) == pytest.approx(3.0, rel=1e-5)


@pytest.mark.parametrize("activation", ["elu", keras.activations.elu, tf.nn.elu, keras.ops.elu],
                         ids=["name", "keras", "tf.nn", "ops"])
def test_elu_is_refused_with_its_reason(activation):
    """An adversarial review (2026-12-04): TF computes elu as exp(x) - 1, so near 0 its float32
    values are off by up to 2^-24 absolute; with the constant 1 a Dense(elu) on the pair
    (x, 2x), x = -1.49e-8, moved its output by 4 x ||x||."""
    layer = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones",
                               activation=activation)
    model = keras.Sequential([keras.Input((1,)), layer])
    x = np.array([[-1.4903902e-8]], np.float32)  # exp(2x) rounds to 1 - 2^-24, exp(x) to 1
    assert abs(float(model(2 * x)[0, 0] - model(x)[0, 0])) > 3.9 * abs(float(x[0, 0]))
    with pytest.raises(TypeError, match="activation 'elu' is refused: TensorFlow computes "
                                        r"elu\(x\) as exp\(x\) - 1"):
        lp.layer_lipschitz_bound(layer)
    assert "elu" not in lp.ACTIVATION_CONSTANTS


def test_a_lipschitz_layer_under_a_policy_set_after_build_is_refused():
    """The same review: a LipschitzDense whose dtype policy was set to float16 after build was
    bounded from its float16 kernel (0.0 for entries of 2e-8, which float16 flushes)."""
    layer = ll.LipschitzDense(4)
    keras.Sequential([keras.Input((4,)), layer])
    layer.dtype_policy = "float16"
    with pytest.raises(ValueError, match="would compute in float16"):
        lp.layer_lipschitz_bound(layer)


def test_bfloat16_relu_and_nan_max_value():
    """The same review: every ReLU under bfloat16 failed with NumPy's "object __array__ method
    not producing an array"; ReLU(max_value=nan), whose outputs are NaN, was bounded by 1."""
    layer = keras.layers.LeakyReLU(negative_slope=0.3, dtype="bfloat16")
    keras.Sequential([keras.Input((4,)), layer])
    # refused with the dtype's own message since 2026-12-04 (bfloat16 rounds the input)
    with pytest.raises(ValueError, match="would compute in bfloat16"):
        lp.layer_lipschitz_bound(layer)
    assert lp.applied_value(0.3, "bfloat16") == 0.30078125
    with pytest.raises(ValueError, match="max_value nan"):
        lp.network_lipschitz_bound(keras.Sequential([keras.Input((4,)),
                                                     keras.layers.ReLU(max_value=float("nan"))]))


def test_network_bound_names_its_argument_and_an_empty_chain_is_the_identity():
    """A newcomer's run (2026-12-03): a string was refused as "layer must be a
    keras.layers.Layer", naming an argument the function does not have."""
    for value in ("model", 3, keras.layers.Dense(3)):
        with pytest.raises(TypeError, match="model_or_layers must be a Keras model or an "
                                            "iterable of layers"):
            lp.network_lipschitz_bound(value)
    assert lp.network_lipschitz_bound([]) == 1.0


def test_a_property_that_may_shadow_what_the_package_reads_still_counts():
    """The rule kept: a property with a setter, or one named as code of the base class or of
    the package reads it (getattr(layer, "factor", ...) included), may change the map."""

    class ReadOnlyFactor(ll.LipschitzDense):
        @property
        def factor(self):
            return 2.0

    class WithSetter(ll.LipschitzDense):
        @property
        def anything_new(self):
            return 1.0

        @anything_new.setter
        def anything_new(self, value):
            pass

    assert lp.overridden_computation(ReadOnlyFactor(4), ll.LipschitzDense) == ("factor",)
    assert lp.overridden_computation(WithSetter(4), ll.LipschitzDense) == ("anything_new",)
