"""Settings that traced graphs and certificates both read are fixed once set (FixedConfig).

An adversarial review changed a model after its graphs were traced: a std cap tightened from
0.5 to 0.005 certified 0.045 while `reconstruct` still sampled with the old cap (P = 0.0007 at
delta = 0 where p = 1/2 was certified); the reconstruction mode switched from "parameter" to
"mean" certified 4x the radius while `reconstruct` still returned the sigmoid; a lowered fixed
std, a changed `Shift.offset` (the certificate's s(x) stale, the SavedModel's fresh) the same.
Now every such reassignment raises, `reconfigured` builds the changed model, and a network whose
layers change after construction cannot be certified.
"""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import lipvae_tf as lv
from lipvae_tf import attacks
from lipvae_tf import layers as ll

SHAPE = (4, 4, 1)
TINY_MLP = dict(latent_dim=2, hidden_units=(8, 8), image_shape=SHAPE)


def small_vae(**kwargs) -> lv.LipschitzVAE:
    keras.utils.set_random_seed(0)
    return lv.LipschitzVAE(4, hidden_units=(16,), image_shape=SHAPE, **kwargs)


def images(count: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(count, *SHAPE)).astype("float32")


MODEL_SETTINGS = sorted(lv.LipschitzVAE._fixed_attributes)


@pytest.mark.parametrize("name", MODEL_SETTINGS)
def test_every_model_setting_is_fixed_after_construction(name):
    model = small_vae(posterior_std=None, std_cap=0.5)
    model.reconstruct(images())  # traced
    before = getattr(model, name)
    with pytest.raises(AttributeError, match=rf"LipschitzVAE\.{name} is fixed.*reconfigured"):
        setattr(model, name, 0.5)
    assert getattr(model, name) is before
    # nor deleted and set again (a review: `del vae.posterior_std; vae.posterior_std = 0.0005`
    # certified with the new std while the traced graphs sampled with the old one)
    with pytest.raises(AttributeError, match=rf"LipschitzVAE\.{name} is fixed once set and "
                                             r"cannot be deleted"):
        delattr(model, name)
    assert getattr(model, name) is before


def built(layer: keras.layers.Layer, shape) -> keras.layers.Layer:
    layer(np.zeros((1, *shape), "float32"))
    return layer


LAYER_SETTINGS = [
    (lambda: built(ll.LipschitzDense(4, lipschitz=1 / 3), (6,)), sorted(
        ll.LipschitzDense._fixed_attributes)),
    (lambda: built(ll.LipschitzConv2D(2, 3, strides=2, lipschitz=0.5), (8, 8, 1)), sorted(
        ll.LipschitzConv2D._fixed_attributes)),
    (lambda: built(ll.LipschitzConv2DTranspose(2, 3, strides=2), (4, 4, 2)), sorted(
        ll.LipschitzConv2DTranspose._fixed_attributes)),
    (lambda: built(ll.GroupSort(2), (4,)), ["group_size"]),
    (lambda: built(ll.Scale(1 / 7), (4,)), ["factor"]),
    (lambda: built(ll.Shift(1e-4), (4,)), ["offset"]),
    (lambda: built(ll.StdCap(0.1), (4,)), ["max_norm"]),
]


@pytest.mark.parametrize("make, names", LAYER_SETTINGS)
def test_every_layer_setting_that_a_bound_or_graph_reads_is_fixed(make, names):
    layer = make()
    assert "lipschitz" in names or len(names) == 1
    weights = getattr(layer, "_weight_attributes", frozenset())
    present = [name for name in names if name in vars(layer)]  # state only for stateful kinds
    assert set(names) - weights <= set(present)
    assert ("kernel" in names) == ("kernel" in present) == ("bias" in present)
    for name in present:
        before = getattr(layer, name)
        hint = r"\.assign\(value\)" if name in weights else "from_config"
        with pytest.raises(AttributeError,
                           match=rf"{type(layer).__name__}\.{name} is fixed.*{hint}"):
            setattr(layer, name, before)
        with pytest.raises(AttributeError, match=rf"{type(layer).__name__}\.{name} is fixed "
                                                 r"once set and cannot be deleted"):
            delattr(layer, name)
        assert getattr(layer, name) is before
    # attributes that nothing traced depends on stay assignable (Keras' own)
    layer.trainable = False
    assert not layer.trainable


def test_the_reviews_tightened_cap_is_refused_and_reconfigured_samples_with_the_new_cap():
    model = small_vae(posterior_std=None, std_cap=0.5)
    std_net = model.encoder_std_net
    last_dense = [layer for layer in std_net.layers if isinstance(layer, ll.LipschitzDense)][-1]
    last_dense.bias.assign(np.full(4, 5.0, "float32"))  # every std at the cap
    x = np.repeat(images(1), 4000, axis=0)
    spread_before = np.std(model.reconstruct(x), axis=0).mean()
    np.testing.assert_allclose(model.std_norms(x[:1]), 0.5, rtol=1e-6)
    with pytest.raises(AttributeError, match="StdCap.max_norm is fixed"):
        std_net.layers[-1].max_norm = 0.005
    tightened = model.reconfigured(std_cap=0.005)
    np.testing.assert_allclose(tightened.std_norms(x[:1]), 0.005, rtol=1e-6)
    # the sampled reconstruction follows the cap the certificate uses: the decoder is the same
    # (weights copied), so the spread of f(x) shrinks with sigma, about 100x
    spread_after = np.std(tightened.reconstruct(x), axis=0).mean()
    assert spread_after < spread_before / 30, (spread_before, spread_after)
    assert model.reconstruct(x[:2]).shape == x[:2].shape  # the old model is unchanged


def test_reconfigured_copies_every_weight_and_the_noise_state_and_refuses_new_shapes():
    model = small_vae(posterior_std=0.05, reconstruction="parameter")
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(images(8), epochs=1, batch_size=4, verbose=0)  # moves weights, state and noise
    mean = model.reconfigured(reconstruction="mean")
    assert (mean.reconstruction, model.reconstruction) == ("mean", "parameter")
    assert len(mean.weights) == len(model.weights)
    for new, old in zip(mean.weights, model.weights):
        np.testing.assert_array_equal(new.numpy(), old.numpy(), err_msg=old.path)
    for new, old in zip(mean.decoder_net.layers, model.decoder_net.layers):  # same logits
        assert ({**new.get_config(), "name": None} == {**old.get_config(), "name": None})
    np.testing.assert_array_equal(mean.seed_generator.state.numpy(),
                                  model.seed_generator.state.numpy())
    x = images()
    assert mean.lipschitz_constants() == model.lipschitz_constants(reconstruction="mean")
    np.testing.assert_array_equal(
        mean.certified_radius(x, 0.5, 0.5),
        model.certified_radius(x, 0.5, 0.5, reconstruction="mean"))
    with pytest.raises(ValueError, match=r"reconfigured\(hidden_units=\(8,\)\) changes the shapes"):
        model.reconfigured(hidden_units=(8,))
    with pytest.raises(ValueError, match=r"reconfigured\(latent_dim=5\) changes the shapes"):
        model.reconfigured(latent_dim=5)
    with pytest.raises(TypeError):
        model.reconfigured(no_such_setting=1)
    # a fixed std ignores both: a change to either was accepted and dropped (a review)
    for change in ({"std_cap": 0.3}, {"encoder_std": 5.0}):
        with pytest.raises(ValueError, match=f"{next(iter(change))} applies to a learned"):
            model.reconfigured(**change)
    assert model.reconfigured(std_cap=None).std_cap is None


def test_reconfigured_keeps_the_design_record_for_training_settings_only():
    """A design record is a claim (target, certified radius at the designed constants) about
    the settings it was designed for: reconfigured(reconstruction=...) kept it, and the export
    metadata of the new model still claimed radius 1.0 where it certified 0.27 (a review)."""
    model = lv.LipschitzVAE.from_target(1.0, 8.0, latent_dim=4, hidden_units=(8,))
    assert model.design["target_radius"] == 1.0
    assert model.reconfigured(beta=0.5, seed=3).design == model.design
    for change in ({"reconstruction": "parameter"}, {"posterior_std": 0.2}):
        assert model.reconfigured(**change).design is None, change


def test_a_network_whose_layers_changed_after_construction_is_not_certified():
    model = small_vae(posterior_std=None, std_cap=0.5)
    x = images()
    model.reconstruct(x)  # traced with the Shift and the cap
    assert np.all(np.isfinite(model.certified_radius(x, 0.5, 0.5)))
    model.encoder_std_net.pop()  # the StdCap
    for certify in (lambda: model.certified_radius(x, 0.5, 0.5), model.lipschitz_constants,
                    lambda: model.std_norms(x)):
        with pytest.raises(RuntimeError, match="encoder_std network's layers changed"):
            certify()


def test_a_fixed_std_model_whose_encoder_changed_is_not_certified_on_any_path():
    """An adversarial review (2026-12-02): with a fixed posterior std no step of
    certified_radius(..., absolute_rounding=True) checked the networks, and a popped and
    replaced encoder layer (the traced graph keeps the old one) was certified 142.5 while 0 of
    2000 pairs of reconstructions stayed within r."""
    from lipvae_tf import layers as ll

    model = small_vae(posterior_std=0.05)
    x = images()
    model.reconstruct(x)
    model.encoder_mean_net.pop()
    model.encoder_mean_net.add(ll.LipschitzDense(model.latent_dim, lipschitz=1e-3))
    for certify in (lambda: model.certified_radius(x, 0.5, 0.5),
                    lambda: model.certified_radius(x, 0.5, 0.5, absolute_rounding=True),
                    lambda: model.absolute_rounding_slack(x, 0.5, 0.5)):
        with pytest.raises(RuntimeError, match="encoder_mean network's layers changed"):
            certify()


def test_a_plain_keras_layer_whose_settings_changed_is_not_certified(tmp_path):
    """The package's layers refuse a changed setting (FixedConfig); a plain Keras layer in a
    network (the std network's softplus, an unconstrained std network's Dense) does not, and
    a traced graph keeps the old activation while the constant would follow the new one
    (softplus -> sigmoid: 1/4 of the constant). A save and load changes no setting."""
    model = small_vae(posterior_std=None, std_cap=0.5)
    x = images()
    model.reconstruct(x)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for vae in (model, loaded):
        np.testing.assert_array_equal(vae.certified_radius(x, 0.5, 0.5),
                                      model.certified_radius(x, 0.5, 0.5))
    model.decoder_net.trainable = False  # freezing changes nothing the graph computes
    np.testing.assert_array_equal(model.certified_radius(x, 0.5, 0.5),
                                  loaded.certified_radius(x, 0.5, 0.5))
    softplus = next(layer for layer in model.encoder_std_net.layers
                    if isinstance(layer, keras.layers.Activation))
    softplus.activation = keras.activations.sigmoid
    for certify in (lambda: model.certified_radius(x, 0.5, 0.5), model.lipschitz_constants):
        with pytest.raises(RuntimeError, match="settings of layer .* changed"):
            certify()


class _TwoImageModel:
    """Reconstructs `image` from inputs brighter than 1/2 and zeros otherwise, with no noise:
    the distance between x and a darkened x + delta is ||image||, deterministically."""

    latent_dim = 1

    def __init__(self, image: np.ndarray):
        self.image = tf.constant(image.reshape(1, 2, 2, -1))

    def check_images(self, x, name="x"):
        return np.asarray(x, np.float32)

    def posterior_params(self, x):
        mu = tf.reduce_mean(tf.reshape(x, (tf.shape(x)[0], -1)), axis=1, keepdims=True)
        return mu, tf.zeros_like(mu)

    def decode_mean(self, z):
        bright = tf.cast(z > 0.5, tf.float32)[:, :, None, None]
        return bright * self.image


@pytest.mark.parametrize("seed", range(4))
def test_the_audit_counts_a_pair_only_when_its_distance_really_is_within_r(seed):
    """Two reviews: r went to the counting graph as float32(r), up to 6e-8 relative above r;
    then the distance itself was a float32 norm, which can round a distance above r down to r.
    Here r is that float32 norm and the exact distance exceeds it: no pair may count."""
    rng = np.random.default_rng(seed)
    for _ in range(1000):  # an image whose float32 norm is below its exact norm
        image = rng.uniform(0.1, 1, size=(2, 2, 3)).astype(np.float32)
        float32_norm = float(tf.norm(tf.constant(image.reshape(-1))).numpy())
        exact = math.sqrt(sum(float(v) ** 2 for v in image.reshape(-1).astype(np.float64)))
        if exact > float32_norm:
            break
    x = np.full((1, 2, 2, 3), 0.75, np.float32)
    model = _TwoImageModel(image)
    assert attacks.robust_counts(model, x, np.full_like(x, -0.5), float32_norm, 50)[0] == 0
    assert attacks.robust_counts(model, x, np.full_like(x, -0.5), exact * (1 + 1e-12), 50)[0] == 50


@pytest.mark.parametrize("decoder", [0.37, 1.0, 2.6180339887, 7.826, 13.3])
@pytest.mark.parametrize("start, mode", [("parameter", "mean"), ("mean", "parameter")])
def test_a_mode_change_keeps_every_decoder_factor_for_any_budget(decoder, start, mode):
    """From "parameter" to "mean" no float64 budget gives the old logit budget exactly for
    about 12 % of budgets (x 12 then / 12); the factors the layers apply must still agree."""
    model = small_vae(posterior_std=0.05, reconstruction=start, decoder=decoder)
    changed = model.reconfigured(reconstruction=mode)
    for old, new in zip(model.decoder_net.layers, changed.decoder_net.layers):
        if hasattr(old, "lipschitz"):
            assert np.float32(old.lipschitz) == np.float32(new.lipschitz)
    ratio = model.output_lipschitz(mode) / model.output_lipschitz()
    np.testing.assert_allclose(changed.decoder_budget, decoder * ratio, rtol=1e-15)
    z = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(changed.decoder_net(z).numpy(), model.decoder_net(z).numpy())


def test_a_tensor_assigned_over_a_kernel_is_refused_and_never_measured():
    """An adversarial review: `decoder_out.kernel = tf.constant(kernel * 1e-3)` after
    `reconstruct` was traced was accepted; the certificate measured the new tensor (R = 63.9 at
    r = 0.5) while the traced `reconstruct` kept the old variable and moved by 7.1 at a
    perturbation of norm 14. The package's layers now refuse the assignment; any layer whose
    weight attribute is not one of its weights (a plain Keras layer, a registered one) is
    refused where a bound would be measured from it."""
    model = small_vae(posterior_std=0.05)
    x = images()
    model.reconstruct(x)
    out = model.decoder_net.get_layer("decoder_out")
    kernel = out.kernel
    for name in ("kernel", "bias"):
        with pytest.raises(AttributeError, match=rf"LipschitzDense\.{name} is fixed once set.*"
                                                 rf"layer\.{name}\.assign\(value\)"):
            setattr(out, name, tf.constant(getattr(out, name).numpy() * 1e-3))
    assert out.kernel is kernel
    # a plain Keras layer takes the tensor (Dense keeps its bias in a plain attribute): the
    # model refuses to certify until the weight is back
    baseline = lv.StandardVAE(4, hidden_units=(16,), image_shape=SHAPE)
    baseline.reconstruct(x)
    dense = next(layer for layer in baseline.encoder_std_net.layers
                 if isinstance(layer, keras.layers.Dense))
    bias = dense.bias
    dense.bias = tf.constant(bias.numpy() + 3.0)
    for certify in (lambda: baseline.certified_radius(x, 0.5, 0.5), baseline.lipschitz_constants):
        with pytest.raises(RuntimeError, match=rf"layer {dense.name!r} \(Dense\) of the "
                                               r"encoder_std network: bias not among its weights"):
            certify()
    dense.bias = bias
    assert np.all(np.isfinite(baseline.certified_radius(x, 0.5, 0.5)))
    # a user's layer with a registered rule keeps its kernel in a plain attribute: a tensor
    # over it is not measured
    layer = _PlainKernel()
    keras.Sequential([keras.Input((3,)), layer])
    assert lv.layer_lipschitz_bound(layer) == pytest.approx(2.0)
    layer.kernel = tf.constant(layer.kernel.numpy() * 1e-3)
    with pytest.raises(TypeError, match=r"layer '_*plain_kernel.*': its kernel is a .*Tensor, not "
                                        r"one of the layer's weights.*kernel\.assign\(value\)"):
        lv.layer_lipschitz_bound(layer)


class _PlainKernel(keras.layers.Layer):
    """y = x W, W = 2 I, kept in a plain attribute, with a bound rule registered below."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1],) * 2,
                                      initializer=keras.initializers.Identity(2.0))

    def call(self, inputs):
        return inputs @ self.kernel


@lv.register_lipschitz_bound(_PlainKernel)
def _plain_kernel_bound(layer):
    return lv.lipschitz.dense_norm(lv.lipschitz.applied_kernel(layer))


class _TemperedVAE(lv.LipschitzVAE):
    """An adversarial review's subclass (2026-12-03): samples the posterior at 3 sigma."""

    def _sample_latent(self, mu, sigma):
        return super()._sample_latent(mu, 3.0 * sigma)


class _TrainingOnlyVAE(lv.LipschitzVAE):
    """Overrides what Keras users override around a model: the step, the loss, the metrics."""

    def train_step(self, data):
        return super().train_step(data)

    def compute_loss(self, *args, **kwargs):
        return super().compute_loss(*args, **kwargs)

    @property
    def metrics(self):
        return super().metrics


def _linear_vae(kind: type) -> lv.LipschitzVAE:
    """mu = <x, w> - 2 and g(z) = sigmoid(0.1 V z), every constant attained (the review's)."""
    vae = kind(latent_dim=2, hidden_units=(), image_shape=(4, 4, 1), encoder_mean=1.0,
               decoder=0.1, posterior_std=0.05, likelihood="bernoulli",
               reconstruction="parameter")
    encoder, decoder = vae.encoder_mean_net.layers[1], vae.decoder_net.layers[0]
    kernel = np.zeros((16, 2), "float32")
    kernel[:, 0] = 0.25
    encoder.kernel.assign(kernel)
    encoder.bias.assign(np.array([-2.0 * encoder.lipschitz, 0.0], "float32"))
    kernel = np.zeros((2, 16), "float32")
    kernel[0], kernel[1, :8], kernel[1, 8:] = 0.25, 0.25, -0.25
    decoder.kernel.assign(kernel)
    decoder.bias.assign(np.zeros(16, "float32"))
    return vae


def test_a_subclass_that_samples_otherwise_is_not_certified():
    """Its certificate would be the base class's (noise gamma eps), while it draws 3 gamma eps:
    at delta = 0 its reconstructions stay within r with probability 0.36 < p = 1/2."""
    x, r, p, n = np.full((1, 4, 4, 1), 0.5, "float32"), 0.02, 0.5, 20_000
    base, tempered = _linear_vae(lv.LipschitzVAE), _linear_vae(_TemperedVAE)
    assert base.certified_radius(x, r, p)[0] > 0.18
    batch = np.repeat(x, n, 0)
    within = {}
    for name, model in (("base", base), ("tempered", tempered)):
        first, second = (model.reconstruct(batch).astype("float64") for _ in range(2))
        within[name] = np.mean(np.linalg.norm((first - second).reshape(n, -1), axis=1) <= r)
    assert within["base"] > 0.95 and within["tempered"] < 0.4  # the subclass breaks p
    for certify in (lambda: tempered.certified_radius(x, r, p), tempered.lipschitz_constants,
                    lambda: tempered.certified_radius(x, r, p, absolute_rounding=True)):
        with pytest.raises(TypeError, match="overrides _sample_latent of LipschitzVAE"):
            certify()


@pytest.mark.parametrize("name", ["call", "posterior_params", "decode_mean", "_output",
                                  "reconstruct", "predict"])
def test_a_subclass_overriding_how_the_model_computes_is_not_certified(name):
    kind = type("Custom", (lv.LipschitzVAE,),
                {name: lambda self, *args, **kwargs: None})
    model = kind(4, hidden_units=(16,), image_shape=SHAPE, posterior_std=None, std_cap=0.5)
    with pytest.raises(TypeError, match=f"Custom overrides {name} of LipschitzVAE"):
        model.certified_radius(images(), 0.5, 0.5)
    with pytest.raises(TypeError, match=f"overrides {name}"):
        model.std_statistics(images())


def test_a_subclass_overriding_training_only_is_certified_as_its_base():
    x = images()
    radii = []
    for kind in (lv.LipschitzVAE, _TrainingOnlyVAE):
        keras.utils.set_random_seed(0)
        model = kind(4, hidden_units=(16,), image_shape=SHAPE, posterior_std=None,
                     std_cap=0.5)
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(x, epochs=1, verbose=0)
        radii.append(model.certified_radius(x, 8.0, 0.5))
    np.testing.assert_array_equal(*radii)
    assert np.all(radii[0] > 0)


@pytest.mark.parametrize("kind", ["spectral", "spectral_norm", "bjorck"])
def test_reconfigured_changes_the_constraint_kind(kind):
    """reconfigured(constraint=...) is documented for the constraint kinds, but the kinds keep
    other state (a subspace, a power-iteration vector, none), so set_weights failed: "changes
    the shapes or number of the weights ... build a new model and train it instead"."""
    keras.utils.set_random_seed(0)
    vae = lv.LipschitzVAE.from_target(1.0, 8.0, **TINY_MLP)  # the default kind, subspace_clip
    x = np.random.default_rng(0).uniform(size=(16, 4, 4, 1)).astype("float32")
    vae.compile(keras.optimizers.Adam(1e-3))
    vae.fit(x, epochs=1, batch_size=8, verbose=0)
    other = vae.reconfigured(constraint=kind)
    assert other.constraint == kind and other.design == vae.design
    assert sum(len(layer.weights) for layers in other._network_layers().values()
               for layer in layers) == len(other.weights)  # every weight is a layer's
    for name, layers in vae._network_layers().items():
        for old, new in zip(layers, other._network_layers()[name]):
            for attribute in ("kernel", "bias"):
                if getattr(old, attribute, None) is not None:
                    np.testing.assert_array_equal(getattr(old, attribute).numpy(),
                                                  getattr(new, attribute).numpy())
    np.testing.assert_array_equal(other.certified_radius(x, 8.0, 0.5),
                                  vae.certified_radius(x, 8.0, 0.5))
    other.compile(keras.optimizers.Adam(1e-3))
    other.fit(x, epochs=1, batch_size=8, verbose=0)  # the new kind's state steers its steps
    with pytest.raises(ValueError, match="changes the shapes or number of the weights"):
        vae.reconfigured(constraint=kind, hidden_units=(8, 4))
