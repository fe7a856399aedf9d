"""The certified reconstruction E[x | z] ("mean") or sigmoid(logits) ("parameter"), the new
recipe's certificates on trained and bundled weights, and audits that can fail."""
from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from operators import max_ratio_by_attack

from lipvae_tf import attacks, data, zoo
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp
from lipvae_tf.model import CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ, LipschitzVAE

tfd = tfp.distributions
SMALL = dict(hidden_units=(64, 64))
TARGET, R, P = 1.0, 8.0, 0.5


@pytest.fixture(scope="module")
def trained(images):
    train, _ = images
    keras.utils.set_random_seed(1)
    # the learned std under its cap (posterior_std=None): what the cap-aware certificates certify
    model = LipschitzVAE.from_target(TARGET, R, P, seed=1, posterior_std=None, **SMALL)
    model.compile(keras.optimizers.Adam(2e-3))
    model.fit(train, epochs=3, batch_size=128, verbose=0)
    model.finalize()
    return model


def test_continuous_bernoulli_mean_is_one_twelfth_lipschitz_in_its_logit():
    """dE[x]/d eta = Var(x) <= 1/12, reached at eta = 0 (finite differences of TFP's mean)."""
    eta = np.linspace(-60.0, 60.0, 1_200_001)
    mean = tfd.ContinuousBernoulli(logits=tf.constant(eta), dtype=tf.float64).mean().numpy()
    slopes = np.diff(mean) / np.diff(eta)
    assert slopes.max() <= CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ * (1 + 1e-6)
    assert slopes.max() >= CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ * (1 - 1e-6)  # tight at 0
    assert np.all(slopes > 0)
    # the constant bounds 1/12 itself: float64's nearest value, 1/12 - 4.6e-18, is below it
    assert Fraction(CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ) >= Fraction(1, 12)
    assert CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ == np.nextafter(1 / 12, 1)
    # lambda = 0.9 has mean 0.670, not 0.9: the mean is not the shape parameter
    lam_09 = tfd.ContinuousBernoulli(probs=tf.constant(0.9, tf.float64),
                                     dtype=tf.float64).mean().numpy()
    assert abs(lam_09 - 0.670) < 1e-3


@pytest.mark.parametrize("likelihood,reconstruction", [
    ("continuous_bernoulli", "mean"), ("continuous_bernoulli", "parameter"),
    ("bernoulli", "mean"), ("gaussian", "mean")])
def test_decode_mean_is_the_certified_reconstruction_of_the_mode(likelihood, reconstruction):
    model = LipschitzVAE(10, likelihood=likelihood, reconstruction=reconstruction,
                         decoder=30.0, **SMALL)
    z = tf.random.stateless_normal((64, 10), seed=(1, 2))
    g = model.decode_mean(z).numpy()
    assert g.dtype == np.float32 and g.shape == (64, 28, 28, 1)
    logits = model.decoder_net(z).numpy().astype(np.float64)
    if likelihood == "continuous_bernoulli" and reconstruction == "mean":
        np.testing.assert_allclose(g, model.decode(z).mean().numpy(), atol=2e-6, rtol=0)
        # 1 / (1 - e^-eta) - 1 / eta, and its series 1/2 + eta/12 - eta^3/720 near 0 (NumPy)
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = -1 / np.expm1(-logits) - 1 / logits
        exact = np.where(np.abs(logits) < 1e-3, 0.5 + logits / 12 - logits**3 / 720, closed)
        assert model.output_lipschitz() == CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ
    else:
        exact = 1 / (1 + np.exp(-logits))
        assert model.output_lipschitz() == 0.25
    # M_g: the logits network's bound times the output map's constant, never rounded below
    assert Fraction(model.lipschitz_constants()["decoder"]) >= Fraction(
        lp.network_lipschitz_bound(model.decoder_net)) * Fraction(model.output_lipschitz())
    # rounded once from float64: within OUTPUT_ROUNDING (2^-24) of the exact value per pixel
    assert np.max(np.abs(g - exact)) <= 2.0**-24
    np.testing.assert_array_equal(model.predict(np.full((2, 28, 28, 1), 0.5, np.float32),
                                                verbose=0),
                                  model(np.full((2, 28, 28, 1), 0.5, np.float32)).numpy())


@pytest.mark.parametrize("reconstruction", ["mean", "parameter"])
def test_jacobian_and_attack_of_the_reconstruction_stay_below_the_reported_decoder_constant(
        reconstruction):
    model = LipschitzVAE(10, reconstruction=reconstruction, decoder=2.0, **SMALL)
    bound = model.lipschitz_constants()["decoder"]
    z = tf.random.stateless_normal((32, 10), seed=(3, 4)) * 0.1
    with tf.GradientTape() as tape:
        tape.watch(z)
        out = tf.reshape(tf.cast(model.decode(z).mean() if reconstruction == "mean"
                                 else model.decode_mean(z), tf.float64), (32, -1))
    jacobian = tape.batch_jacobian(out, z).numpy()
    norms = np.linalg.norm(jacobian, ord=2, axis=(1, 2))
    assert norms.max() <= bound
    _, attacked = max_ratio_by_attack(model.decode_mean, (10,), steps=60, count=32,
                                      start=z.numpy())
    assert attacked <= bound * (1 + 1e-5)
    assert attacked > 0.5 * bound  # near the logits' 0 the slopes reach 1/12 (or 1/4)


def test_the_new_recipe_certifies_every_input_and_round_trips(images, trained, tmp_path):
    _, test = images
    model = trained
    assert model.reconstruction == "mean" and not model.constrain_std
    assert not any(isinstance(layer, ll.LipschitzDense) for layer in model.encoder_std_net.layers)
    radius = model.certified_radius(test, R, P)
    assert np.all(radius >= TARGET)
    # the same weights under the paper's reconstruction certify less, and today's (no cap) less
    parameter = model.certified_radius(test, R, P, reconstruction="parameter")
    uncapped = model.certified_radius(test, R, P, reconstruction="parameter", use_std_cap=False)
    assert np.all(parameter < radius) and np.all(uncapped <= parameter)
    path = tmp_path / "new.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.reconstruction == "mean" and loaded.constrain_std is False
    np.testing.assert_array_equal(loaded.certified_radius(test, R, P), radius)
    np.testing.assert_array_equal(loaded.predict(test[:8], verbose=0),
                                  model.predict(test[:8], verbose=0))


def test_the_audit_finds_no_violation_and_catches_a_model_whose_cap_was_removed(images, trained,
                                                                                 tmp_path):
    _, test = images
    x = test[:24]
    radius = trained.certified_radius(x, R, P)
    upper = attacks.audit_certificate(trained, x, radius, R, P, confidence=0.999, samples=2000,
                                      restarts=2, steps=30)
    assert np.all(upper > P), upper.min()
    # broken: the StdCap is removed after design (a cap of 100), the old certificate kept
    path = tmp_path / "broken.keras"
    trained.save(path)
    broken = keras.models.load_model(path).reconfigured(std_cap=100.0)
    cap = broken.encoder_std_net.layers[-1]
    assert isinstance(cap, ll.StdCap) and cap.max_norm == 100.0
    bias = broken.encoder_std_net.layers[-4].bias  # the std network's last Dense (pre-softplus)
    bias.assign(bias + 3.0)  # untamed stds, as an uncapped network may produce
    assert np.median(broken.std_norms(x)) > 1.0
    upper = attacks.audit_certificate(broken, x, radius, R, P, confidence=0.999, samples=2000,
                                      restarts=2, steps=30)
    assert np.sum(upper <= P) >= 1


def test_bundled_zoo_weights_certify_far_more_with_the_new_certificates():
    """Weights trained with equal constants for lambda (the zoo's paper recipe; issue 13
    measured lipvae_tf 0.1's fashion_mnist_mlp_r1, of the same design): on the bundled test
    sample, r = 8, p = 1/2, median `best` radius >= 1.8 for lambda and >= 5 for the mean, where
    0.1's certificate (no std cap, lambda) gives about 1."""
    model = zoo.load("fashion_mnist_mlp_r1_paper")
    test, _ = data.load_sample("test")
    old = model.certified_radius(test, R, P, reconstruction="parameter", use_std_cap=False)
    parameter = model.certified_radius(test, R, P, reconstruction="parameter")
    mean = model.certified_radius(test, R, P, reconstruction="mean")
    assert 0.99 < np.median(old) < 1.05
    assert np.median(parameter) >= 1.8 and np.median(mean) >= 5.0


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(reconstruction="median"), ValueError, "reconstruction must be one of"),
    (dict(constrain_std="no"), TypeError, "constrain_std must be a bool"),
    (dict(constrain_std=False, std_cap=None), ValueError, "constrain_std=False needs"),
    (dict(constrain_std=False, posterior_std=0.1), ValueError, "constrain_std=False needs"),
])
def test_bad_modes_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        LipschitzVAE(10, **SMALL, **kwargs)


def test_bad_certificate_arguments_name_the_argument(images):
    _, test = images
    model = LipschitzVAE(10, **SMALL)
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        model.certified_radius(test[:2], R, P, reconstruction="lambda")
    with pytest.raises(ValueError, match="r must be"):
        model.certified_radius(test[:2], 0.0, P)
    with pytest.raises(ValueError, match="r must be > 3.3"):
        model.certified_radius(test[:2], 1e-7, P)
    with pytest.raises(ValueError, match="p must be in"):
        model.certified_radius(test[:2], R, 1.0)
    with pytest.raises(ValueError, match="p must be in"):
        model.certified_radius(test[:2], R, 0.4)
    # a cap that the graph does not enforce: the StdCap taken off the std network
    model.encoder_std_net.pop()
    with pytest.raises(RuntimeError, match="encoder_std network's layers changed"):
        model.certified_radius(test[:2], R, P)


def test_a_std_network_changed_after_certifying_is_refused_and_a_rebuilt_one_measured(images):
    """A review found the compiled s(x) kept the StdCap it was first traced with; a later one
    that `reconstruct` kept its own. A network changed in place is now refused, and the changed
    model is built anew (`reconfigured`), whose graphs all see the new cap."""
    _, test = images
    model = LipschitzVAE.from_target(TARGET, R, P, posterior_std=None, **SMALL)
    x = test[:16]
    assert np.all(model.certified_radius(x, R, P) >= TARGET)
    wide = model.reconfigured(std_cap=50.0)
    model.encoder_std_net.pop()
    model.encoder_std_net.add(ll.StdCap(50.0))
    for certify in (lambda: model.certified_radius(x, R, P), lambda: model.std_norms(x)):
        with pytest.raises(RuntimeError, match="layers changed"):
            certify()
    s = wide.std_norms(x)
    # the measured norm with the std network's relative rounding margin (about 3e-6 here)
    margin = lp.output_rounding_factor(wide.encoder_std_net)
    np.testing.assert_allclose(
        s, np.linalg.norm(wide.encode(x).stddev().numpy(), axis=1) * margin, rtol=1e-6)
    assert np.all(s > 1.0) and np.all(wide.certified_radius(x, R, P) < TARGET)


@pytest.mark.parametrize("target,r,std_cap", [(0.01, 0.25, 0.1), (0.05, 0.3, 0.1),
                                              (0.001, 0.01, 0.001)])
def test_small_tolerances_still_certify_the_designed_target(images, target, r, std_cap):
    """The design uses r less the reconstruction's rounding and the cap as applied."""
    _, test = images
    model = LipschitzVAE.from_target(target, r, P, posterior_std=None, std_cap=std_cap, **SMALL)
    assert np.all(model.certified_radius(test[:64], r, P) >= target)
    with pytest.raises(TypeError, match="use_std_cap must be a bool"):
        model.certified_radius(test[:2], r, P, use_std_cap="no")
