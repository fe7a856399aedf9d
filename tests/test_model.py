"""LipschitzVAE: robustness upfront, measured constants, empirical Lipschitz checks, Keras
idioms."""
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from operators import max_ratio_by_attack

from lipvae_tf import bounds
from lipvae_tf.model import LipschitzVAE, StandardVAE

tfd = tfp.distributions
SMALL = dict(hidden_units=(64, 64), conv_filters=(8, 16))
TINY_MLP = dict(latent_dim=2, hidden_units=(8, 8), image_shape=(4, 4, 1))
TARGET, R, P = 1.0, 8.0, 0.5


def _trained(model, train, epochs=2):
    model.compile(keras.optimizers.Adam(2e-3))
    history = model.fit(train, epochs=epochs, batch_size=128, verbose=0)
    return model, history.history


@pytest.mark.parametrize("method", ["markov", "chi2", "best", "paper"])
def test_from_target_certifies_every_input_before_and_after_training(images, method, tmp_path):
    train, test = images
    model = LipschitzVAE.from_target(TARGET, R, P, latent_dim=10, method=method, **SMALL)
    assert np.all(model.certified_radius(test, R, P, method=method) >= TARGET)
    _trained(model, train)
    # a newcomer's ModelCheckpoint file certified below R* without a word: sound, but not the
    # model that was designed
    with pytest.warns(UserWarning, match=r"above the model's budget \(encoder_mean [0-9.]+ > "
                                         r"1.*Call model.finalize\(\) before certifying"):
        unfinalized = model.certified_radius(test[:8], R, P, method=method)
    assert np.all(unfinalized < TARGET)
    model.finalize()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none once finalized
        after = model.certified_radius(test, R, P, method=method)
    assert np.all(after >= TARGET)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, LipschitzVAE)
    np.testing.assert_array_equal(loaded.certified_radius(test, R, P, method=method), after)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_loaded_model_continues_training_as_the_saved_one_would(images, tmp_path):
    """A `.keras` file holds the optimizer's state, and the loaded model comes back compiled
    with it: Keras skips `compile_from_config` for a model that overrides `compile`, and a
    loaded LipschitzVAE had no optimizer (its Adam moments were lost)."""
    train, _ = images
    model, _ = _trained(LipschitzVAE.from_target(TARGET, R, P, seed=0, **SMALL), train[:256],
                        epochs=1)
    model.save(tmp_path / "o.keras")
    loaded = keras.models.load_model(tmp_path / "o.keras")
    assert type(loaded.optimizer) is type(model.optimizer)
    _assert_continues_as_saved(model, loaded, train[:256])


def _assert_continues_as_saved(model, loaded, train) -> None:
    """The loaded model holds the optimizer's state and trains on bit for bit as the saved one."""
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for vae in (model, loaded):
        vae.fit(train, epochs=1, batch_size=128, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_frozen_part_stays_frozen_through_a_keras_file(images, tmp_path):
    """Fine-tuning: a practitioner froze the decoder (and one encoder layer), trained, saved and
    loaded; the loaded decoder came back trainable (the networks are rebuilt by __init__), and
    Keras dropped the optimizer's state with a warning (26 variables against 14 saved). The
    flags are in the config now, and the loaded model trains on exactly as the saved one."""
    train, _ = images
    model = LipschitzVAE.from_target(TARGET, R, P, seed=0, **SMALL)
    model.decoder_net.trainable = False
    model.encoder_mean_net.layers[0].trainable = False
    model, _ = _trained(model, train[:256], epochs=1)
    model.save(tmp_path / "frozen.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warned that it skipped the optimizer's state
        loaded = keras.models.load_model(tmp_path / "frozen.keras")
    assert not loaded.decoder_net.trainable and not loaded.encoder_mean_net.layers[0].trainable
    assert loaded.encoder_mean_net.trainable and loaded.encoder_mean_net.layers[-1].trainable
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    _assert_continues_as_saved(model, loaded, train[:256])
    # nothing frozen: the config is as before (the zoo's configs carry no such key)
    assert "frozen" not in LipschitzVAE.from_target(TARGET, R, P, **SMALL).get_config()


def test_weights_of_another_model_are_refused_with_a_message_that_says_so(tmp_path):
    """Keras' message for a nested network whose shapes differ read "expected 3 variables, but
    received 0" (a practitioner's review, 2026-12-02); the model says which settings to
    compare, and weights of a model built the same way load bit for bit."""
    saved = LipschitzVAE.from_target(TARGET, R, P, latent_dim=2, hidden_units=(16, 16))
    saved.save_weights(tmp_path / "a.weights.h5")
    other = LipschitzVAE.from_target(TARGET, R, P, latent_dim=3, hidden_units=(16, 16))
    with pytest.raises(ValueError, match="do not fit this model: they were saved from a model "
                                         "built with other settings"):
        other.load_weights(tmp_path / "a.weights.h5")
    same = LipschitzVAE.from_target(TARGET, R, P, latent_dim=2, hidden_units=(16, 16))
    same.load_weights(tmp_path / "a.weights.h5")
    for a, b in zip(saved.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the same shapes, other layer factors (settings, not weights): another map, refused
    for settings in (dict(target_radius=2 * TARGET), dict(reconstruction="parameter"),
                     dict(posterior_std=0.1)):
        args = dict(target_radius=TARGET, latent_dim=2, hidden_units=(16, 16)) | settings
        other = LipschitzVAE.from_target(args.pop("target_radius"), R, P, **args)
        with pytest.raises(ValueError, match="other layer factors"):
            other.load_weights(tmp_path / "a.weights.h5")
        # Keras' skip_mismatch turned the refusal into a warning ("1 objects could not be
        # loaded") and loaded every layer's weights anyway (a power user's review, 2026-12-04)
        before = other.get_weights()
        with pytest.raises(ValueError, match="other layer factors.*skip_mismatch"):
            other.load_weights(tmp_path / "a.weights.h5", skip_mismatch=True)
        for a, b in zip(before, other.get_weights()):
            np.testing.assert_array_equal(a, b)  # left as it was


def test_fixed_std_model_uses_the_noncentral_certificate(images):
    train, test = images
    model = LipschitzVAE.from_target(TARGET, R, P, latent_dim=10, method="ncx2",
                                     posterior_std=0.05, **SMALL)
    _trained(model, train, epochs=1)
    model.finalize()
    radii = {m: model.certified_radius(test, R, P, method=m) for m in ("ncx2", "chi2", "best")}
    assert np.all(radii["ncx2"] >= TARGET)
    assert np.all(radii["best"] >= radii["ncx2"]) and np.all(radii["ncx2"] >= radii["chi2"])
    assert model.lipschitz_constants()["encoder_std"] == 0.0
    learned = LipschitzVAE(10, **SMALL)
    with pytest.raises(ValueError, match="ncx2|gamma"):
        learned.certified_radius(test[:4], R, P, method="ncx2")


def test_conv_architecture_certifies_and_round_trips(images, tmp_path):
    train, test = images
    model = LipschitzVAE.from_target(TARGET, R, P, architecture="conv", **SMALL)
    _, history = _trained(model, train[:512], epochs=1)
    model.finalize()
    assert np.all(model.certified_radius(test, R, P) >= TARGET)
    model.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras")
    np.testing.assert_array_equal(loaded.predict(test[:8], verbose=0),
                                  model.predict(test[:8], verbose=0))


def test_the_certificate_uses_the_measured_constants(images):
    """A kernel pushed beyond its constraint by hand raises the measured constant, and the
    certified radius drops by what the formula says for the larger constant."""
    _, test = images
    model = LipschitzVAE.from_target(TARGET, R, P, method="markov", **SMALL)
    before_constants = model.lipschitz_constants()
    before = model.certified_radius(test, R, P, method="markov")
    kernel = model.decoder_net.layers[0].kernel
    kernel.assign(kernel * 2.0)
    after_constants = model.lipschitz_constants()
    assert after_constants["decoder"] == pytest.approx(2 * before_constants["decoder"], rel=1e-5)
    after = model.certified_radius(test, R, P, method="markov")
    s = model.std_norms(test)
    c = after_constants
    expected = bounds.markov_radius(c["encoder_mean"], c["encoder_std"], c["decoder"], s,
                                    model.reconstruction_tolerance(R), P)
    np.testing.assert_allclose(after, expected, rtol=1e-12)
    assert np.all(after < 0.6 * before)


def _jacobian_norms(fn, points):
    with tf.GradientTape() as tape:
        tape.watch(points)
        out = tf.reshape(fn(points), (points.shape[0], -1))
    jac = tape.batch_jacobian(out, points)
    jac = tf.reshape(jac, (points.shape[0], out.shape[1], -1)).numpy().astype(np.float64)
    return np.linalg.norm(jac, ord=2, axis=(1, 2))


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_empirical_lipschitz_ratios_never_exceed_the_reported_constants(images, architecture):
    train, test = images
    model = LipschitzVAE(10, encoder_mean=3.0, encoder_std=2.0, decoder=4.0,
                         architecture=architecture, std_cap=None, **SMALL)
    _trained(model, train[:512], epochs=1)
    constants = model.lipschitz_constants()
    x = tf.constant(test[:64])
    z = tf.random.normal((64, 10))
    nets = {
        "encoder_mean": (model.encoder_mean_net, x, test.shape[1:]),
        "encoder_std": (model.encoder_std_net, x, test.shape[1:]),
        "decoder": (model.decode_mean, z, (10,)),
    }
    for name, (fn, points, shape) in nets.items():
        bound = constants[name]
        # pairs of inputs: near pairs and far pairs
        others = tf.random.shuffle(points)
        for a, b in ((points, others), (points, points + 0.01 * tf.random.normal(points.shape))):
            out = tf.norm(tf.reshape(fn(a) - fn(b), (64, -1)), axis=1)
            inp = tf.norm(tf.reshape(a - b, (64, -1)), axis=1) + 1e-12
            assert float(tf.reduce_max(out / inp)) <= bound, name
        jacobian = _jacobian_norms(fn, points)
        assert jacobian.max() <= bound, name
        _, attacked = max_ratio_by_attack(fn, shape, steps=60, count=64, start=points.numpy())
        assert attacked <= bound * (1 + 1e-5), name
        # not vacuous: the attack gets within a few times the bound (the conv std network,
        # which now starts inside its bound instead of at 1.8x, reached 0.296x after one epoch)
        assert attacked > 0.25 * bound, name


def test_encode_decode_return_tfp_distributions(images):
    _, test = images
    for likelihood, kind in (("bernoulli", tfd.Bernoulli),
                             ("continuous_bernoulli", tfd.ContinuousBernoulli),
                             ("gaussian", tfd.Normal)):
        model = LipschitzVAE(6, likelihood=likelihood, **SMALL)
        posterior = model.encode(test[:5])
        assert isinstance(posterior, tfd.MultivariateNormalDiag)
        assert posterior.event_shape == (6,) and posterior.batch_shape == (5,)
        likelihood_dist = model.decode(posterior.sample())
        assert isinstance(likelihood_dist.distribution, kind)
        assert likelihood_dist.event_shape == (28, 28, 1)
        assert likelihood_dist.log_prob(test[:5]).shape == (5,)
        assert np.all(np.linalg.norm(posterior.stddev(), axis=1) <= 0.1 * (1 + 1e-6))
        recon = model.reconstruct(test[:5])
        assert recon.shape == (5, 28, 28, 1) and recon.min() >= 0 and recon.max() <= 1


def test_elbo_training_improves_and_reports_metrics(images):
    train, test = images
    model = LipschitzVAE.from_target(TARGET, R, P, **SMALL)
    model.compile(keras.optimizers.Adam(2e-3))
    before = model.evaluate(test, verbose=0, return_dict=True)
    history = model.fit(train, epochs=3, batch_size=128, verbose=0,
                        validation_data=(test,)).history
    after = model.evaluate(test, verbose=0, return_dict=True)
    assert set(after) >= {"loss", "elbo", "reconstruction_log_likelihood", "kl"}
    assert after["elbo"] > before["elbo"] + 10
    assert history["loss"][-1] < history["loss"][0]
    np.testing.assert_allclose(after["elbo"], after["reconstruction_log_likelihood"] - after["kl"],
                               rtol=1e-4, atol=1e-3)
    iwae = model.log_likelihood(test[:64], samples=16)
    assert iwae.shape == (64,) and np.all(np.isfinite(iwae))
    same = model.evaluate(test[:64], verbose=0, return_dict=True)["elbo"]
    assert iwae.mean() >= same - 2  # the importance-weighted bound is tighter (up to noise)


def test_beta_weights_the_kl_in_the_loss(images):
    _, test = images
    model = LipschitzVAE(10, beta=0.25, seed=3, **SMALL)
    terms = model.elbo_terms(tf.constant(test[:32]))
    np.testing.assert_allclose(
        terms["loss"], -(terms["reconstruction_log_likelihood"] - 0.25 * terms["kl"]), rtol=1e-6)


def test_standard_vae_is_unconstrained_and_still_soundly_bounded(images, tmp_path):
    train, test = images
    baseline, _ = _trained(StandardVAE(10, **SMALL), train[:512], epochs=1)
    assert all(isinstance(layer, keras.layers.Dense)
               for layer in baseline.encoder_mean_net.layers if hasattr(layer, "kernel"))
    constants = baseline.lipschitz_constants()
    assert np.max(np.linalg.norm(baseline.posterior_params(test)[1], axis=1)) > 0.1  # no cap
    x = tf.constant(test[:64])
    assert _jacobian_norms(baseline.encoder_mean_net, x).max() <= constants["encoder_mean"]
    baseline.save(tmp_path / "s.keras")
    assert isinstance(keras.models.load_model(tmp_path / "s.keras"), StandardVAE)
    # no kernel control: none in its config, and the control arguments that configs saved
    # before (the zoo's) carried load without effect
    assert "constraint" not in baseline.get_config()
    # a LipschitzVAE MLP saved with conv_relaxation=1.5 (the default for an hour on
    # 2026-12-01, acting on no kernel) loads as the same model with 1
    mlp = LipschitzVAE(2, hidden_units=(8,))
    assert LipschitzVAE.from_config({**mlp.get_config(),
                                     "conv_relaxation": 1.5}).conv_relaxation == 1.0
    with pytest.raises(ValueError, match="conv_relaxation=1.5 acts on the conv kernels'"):
        LipschitzVAE(2, hidden_units=(8,), conv_relaxation=1.5)  # asked for: refused
    legacy = {**baseline.get_config(), "constraint": "bjorck", "bjorck_iterations": 1}
    assert isinstance(StandardVAE.from_config(legacy), StandardVAE)


def test_codes_the_model_computes_itself_are_not_checked_as_a_users():
    """Only a user's latent codes are refused for NaN: with NaN weights, the model's own codes
    give NaN reconstructions (what Keras' TerminateOnNaN and a NaN loss report), not an error
    about a z the user never passed."""
    model = LipschitzVAE(2, hidden_units=(8,))
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    model(x)
    kernel = model.constrained_kernels()[0]  # the encoder mean's first
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    assert np.all(np.isnan(model(x).numpy()))
    with pytest.raises(ValueError, match="z must be finite latent codes"):
        model.decode_mean(np.full((2, 2), np.nan, np.float32))


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((4, 28, 28)), ValueError, "x must have shape"),
    (np.zeros((4, 28, 28, 1), np.uint8), TypeError, "divide integer pixels by 255"),
    (np.full((2, 28, 28, 1), np.nan, np.float32), ValueError, "NaN or Inf"),
    (np.full((2, 28, 28, 1), 2.0, np.float32), ValueError, r"\[0, 1\]"),
])
def test_certified_radius_rejects_bad_images(bad, error, match):
    model = LipschitzVAE(10, **SMALL)
    with pytest.raises(error, match=match):
        model.certified_radius(bad, R, P)


@pytest.mark.parametrize("bad,error,match", [
    (np.full((64, 28, 28, 1), 0.5, np.float32), None, None),  # the harness can pass
    ("nan", ValueError, r"x contains NaN or Inf values"),
    # the range found is named (a newcomer's run: "no NaN or Inf" misread 0-255 pixels)
    ("x255", ValueError,
     r"x must hold pixel values in \[0, 1\], got range \[127.5, 127.5\] \(divide 0-255 "
     r"pixels by 255\)"),
    (np.full((64, 28, 28, 1), 128, np.uint8), TypeError, "divide integer pixels by 255"),
    (np.zeros((64, 28, 28), np.float32), ValueError, "must have shape"),
])
def test_training_and_inference_refuse_bad_images(bad, error, match):
    """fit trained on NaN pixels (12 of 18 weights NaN) or 0..255 pixels (loss inf) without a
    word, and predict / encode / model(x) answered for them (a review, 2026-12-01). An array's
    bad pixels are a one-line ValueError before Keras starts (the graph's InvalidArgumentError
    came with a 30-line traceback, 2026-12-02); a dataset's are refused in the graph
    (test_keras_inputs)."""
    if isinstance(bad, str):
        bad = np.full((64, 28, 28, 1), 0.5, np.float32) * (255.0 if bad == "x255" else 1.0)
        bad[5, 3, 3, 0] = np.nan if bad.max() <= 1 else bad[5, 3, 3, 0]
    model = LipschitzVAE.from_target(TARGET, R, latent_dim=2, hidden_units=(8, 8))
    model.compile(keras.optimizers.Adam(1e-3))
    calls = (lambda: model.fit(bad, epochs=1, batch_size=32, verbose=0),
             lambda: model.evaluate(bad, batch_size=32, verbose=0),
             lambda: model.predict(bad, verbose=0), lambda: model.encode(bad),
             lambda: model(bad))
    for index, call in enumerate(calls):
        if error is None:
            call()
            continue
        with pytest.raises(error) as raised:
            call()
        message = str(raised.value)
        if index < 4:  # fit, evaluate, predict, encode: one line naming x
            assert "\n" not in message and re.search(match, message), message[-500:]
        else:  # model(x): Keras wraps the error of `call` (its argument `inputs`) in lines
            assert re.search(match.replace("x ", "inputs ", 1), message), message[-500:]
    if error is None:
        assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    for decode in (model.decode_mean, model.decode):  # decode: a raw matmul error before
        with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\)"):
            decode(tf.zeros((2, 3)))


def test_predict_after_predict_refuses_another_image_shape():
    """A newcomer's run: after a first predict, Keras relaxed the trace to any shape, and a
    single image or flattened images failed inside Sequential ("Cannot take the length of shape
    with unknown rank") instead of saying which shape was expected."""
    model = LipschitzVAE(2, posterior_std=0.05, hidden_units=(8,))
    x = np.full((5, 28, 28, 1), 0.5, np.float32)
    first = model.predict(x, verbose=0)
    for bad in (x[0], x.reshape(5, 784), np.repeat(x, 2, axis=3)):
        with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                           match=r"must have shape \(batch, 28, 28, 1\)|expected shape "
                                 r"\[\?,28,28,1\]"):
            model.predict(bad, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)


@pytest.mark.parametrize("kwargs,match", [
    (dict(r=0.0), "r must be"), (dict(r=-1.0), "r must be"), (dict(p=0.4), "p must be"),
    (dict(p=1.0), "p must be"), (dict(method="grid"), "method must be one of"),
])
def test_certified_radius_rejects_bad_parameters(images, kwargs, match):
    model = LipschitzVAE(10, **SMALL)
    args = dict(r=R, p=P, method="best") | kwargs
    with pytest.raises(ValueError, match=match):
        model.certified_radius(images[1][:4], **args)


@pytest.mark.parametrize("call,error,match", [
    (lambda m, x: LipschitzVAE(2, hidden_units=8), TypeError, "hidden_units must be a sequence"),
    (lambda m, x: LipschitzVAE(2, architecture="conv", conv_filters=()), ValueError,
     "conv_filters must hold at least 1"),
    (lambda m, x: LipschitzVAE(2, beta="1"), TypeError, "beta must be a real number"),
    (lambda m, x: m.certified_radius(x, r="8", p=0.5), TypeError, "r must be a real number"),
    (lambda m, x: m.certified_radius(x, 8.0, p=np.full(3, 0.5)), ValueError,
     r"p \(3,\)"),
    (lambda m, x: m.reconstruct(x, batch_size=0), ValueError, "batch_size must be an integer"),
    (lambda m, x: m.reconstruct(x, sample="no"), TypeError, "sample must be a bool"),
    (lambda m, x: m.log_likelihood(x, batch_size=0), ValueError, "batch_size must be an int"),
])
def test_arguments_that_escaped_validation_get_typed_errors(images, call, error, match):
    """Found by a review (2026-12-01): a raw 'int object is not iterable', an IndexError, a
    string taken as a number or a truthy flag, range() refusing a zero step."""
    model = LipschitzVAE.from_target(TARGET, R, latent_dim=2, hidden_units=(8, 8))
    with pytest.raises(error, match=match):
        call(model, images[1][:4])


def test_infeasible_target_is_a_clear_error():
    with pytest.raises(ValueError, match="target_radius=.*infeasible"):
        LipschitzVAE.from_target(100.0, R, P, **SMALL)
    with pytest.raises(ValueError, match="latent_dim"):
        LipschitzVAE(0)
    with pytest.raises(ValueError, match="architecture"):
        LipschitzVAE(10, architecture="rnn")


def test_log_likelihood_shows_progress_on_request(capsys):
    """A newcomer's run (2026-12-02): the evaluate command sat silent for about 18 s while it
    computed the log-likelihood of 10k images."""
    vae = LipschitzVAE(latent_dim=2, hidden_units=(8,))
    x = np.full((5, 28, 28, 1), 0.5, "float32")
    quiet = vae.log_likelihood(x, samples=2, batch_size=2, verbose=0)
    assert capsys.readouterr().out == ""
    assert quiet.shape == (5,) and quiet.dtype == np.float64
    vae.log_likelihood(x, samples=2, batch_size=2, verbose=1)
    assert "5/5" in capsys.readouterr().out
    vae.log_likelihood(x, samples=2, batch_size=2, verbose="auto")
    assert "5/5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="verbose"):
        vae.log_likelihood(x, verbose=3)


class _PassThroughVAE(LipschitzVAE):
    """The usual subclass: a pass-through constructor that adds a metric."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = keras.metrics.Mean(name="extra")


class _OwnKeywordVAE(_PassThroughVAE):
    def __init__(self, *args, weight_of_extra: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_of_extra = weight_of_extra


def test_from_target_takes_the_constructor_keywords_of_a_pass_through_subclass():
    """from_target checked keywords against the subclass's own signature, (*args, **kwargs),
    and refused hidden_units ("unexpected keyword arguments hidden_units"), which the
    constructor takes."""
    vae = _PassThroughVAE.from_target(1.0, 8.0, **TINY_MLP)
    assert type(vae) is _PassThroughVAE and vae.hidden_units == (8, 8)
    own = _OwnKeywordVAE.from_target(1.0, 8.0, weight_of_extra=0.5, **TINY_MLP)
    assert own.weight_of_extra == 0.5 and own.latent_dim == 2
    with pytest.raises(TypeError, match="unexpected keyword arguments hiden_units"):
        _OwnKeywordVAE.from_target(1.0, 8.0, hiden_units=(8,), latent_dim=2)  # a typo


class _SummaryVAE(LipschitzVAE):
    @property
    def budget_summary(self):  # read-only, a name no certificate code reads
        return self.encoder_mean_budget, self.decoder_budget


def test_a_read_only_property_under_a_new_name_keeps_the_certificate():
    """Any property a subclass added was taken for an override: certified_radius raised
    "_SummaryVAE overrides budget_summary of LipschitzVAE", which has no such attribute."""
    keras.utils.set_random_seed(0)
    ours = _SummaryVAE(posterior_std=0.05, decoder=8.0, **TINY_MLP)
    keras.utils.set_random_seed(0)
    plain = LipschitzVAE(posterior_std=0.05, decoder=8.0, **TINY_MLP)
    x = np.random.default_rng(0).uniform(size=(3, 4, 4, 1)).astype("float32")
    assert ours.budget_summary == (1.0, 8.0)
    np.testing.assert_array_equal(ours.certified_radius(x, 8.0, 0.5),
                                  plain.certified_radius(x, 8.0, 0.5))
