"""LipschitzVAE under Keras' fit / evaluate / predict / compile: per-example weights, the input
forms Keras accepts, and clear errors for the ones this model cannot use (a review's run as a
Keras user)."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf.model import LipschitzVAE

TINY = dict(hidden_units=(32,), latent_dim=4)
_METRICS = ("loss", "elbo", "reconstruction_log_likelihood", "kl")


@pytest.fixture
def vae():
    model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    model.compile(keras.optimizers.SGD(1e-2))
    return model


def test_zero_sample_weights_leave_the_weights_unchanged(vae, images):
    x = images[0][:64]
    before = [v.numpy() for v in vae.trainable_variables]
    vae.fit(x, sample_weight=np.zeros(64), batch_size=64, verbose=0)
    for old, variable in zip(before, vae.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    vae.fit(x, sample_weight=np.ones(64), batch_size=64, verbose=0)
    assert any(np.any(old != v.numpy()) for old, v in zip(before, vae.trainable_variables))


def test_weighted_evaluate_is_the_weighted_mean(vae, images):
    x = images[0][:64]
    weights = np.zeros(64)
    weights[3] = 2.0
    # the KL term is deterministic given x: the weighted mean is image 3's KL
    weighted = vae.evaluate(x, sample_weight=weights, return_dict=True, verbose=0)["kl"]
    single = vae.evaluate(x[3:4], return_dict=True, verbose=0)["kl"]
    np.testing.assert_allclose(weighted, single, rtol=1e-5)
    # the same through (x, y, w) datasets
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(64), weights)).batch(16)
    np.testing.assert_allclose(vae.evaluate(dataset, return_dict=True, verbose=0)["kl"], single,
                               rtol=1e-5)


def test_class_weight_becomes_per_example_weights(vae, images):
    x, labels = images[0][:64], np.arange(64) % 10
    before = [v.numpy() for v in vae.trainable_variables]
    vae.fit(x, labels, class_weight={c: 0.0 for c in range(10)}, batch_size=64, verbose=0)
    for old, variable in zip(before, vae.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())


@pytest.mark.parametrize("weights, error", [
    (np.full(64, np.nan), ValueError), (-np.ones(64), ValueError),
    (np.array(["a"] * 64), TypeError)])
def test_bad_sample_weights_are_refused(vae, images, weights, error):
    with pytest.raises(error, match="sample_weight"):
        vae.fit(images[0][:64], sample_weight=weights, verbose=0)


def test_bad_weights_inside_a_dataset_are_refused_in_the_graph(vae, images):
    x = images[0][:16]
    dataset = tf.data.Dataset.from_tensor_slices((x, x, -np.ones(16, "float32"))).batch(8)
    # a one-line ValueError (it was TF's InvalidArgumentError after a page of graph trace)
    with pytest.raises(ValueError, match=r"^sample_weight must be >= 0 \(checked in the graph"):
        vae.fit(dataset, verbose=0)


@pytest.mark.parametrize("argument", [{"loss": "mse"}, {"metrics": ["mae"]},
                                      {"weighted_metrics": ["mae"]}, {"loss_weights": [1.0]}])
def test_compile_refuses_what_it_would_not_use(argument):
    model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    name = next(iter(argument))
    with pytest.raises(ValueError, match=f"compile got {name}"):
        model.compile("adam", **argument)
    model.compile("adam", metrics=[])  # an empty list asks for nothing


def test_xla_is_refused_and_auto_runs_the_graph_executor(images, tmp_path):
    """A newcomer's run (2026-12-01): under jit_compile=True XLA dropped the in-graph checks,
    and a dataset with a NaN pixel turned every weight into NaN. "auto", Keras' default (XLA on
    a GPU), runs the graph executor, where the checks hold."""
    model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    with pytest.raises(ValueError, match="jit_compile=True"):
        model.compile("adam", jit_compile=True)
    # an uncompiled model (the zoo's files carry no compile config) and Keras' setter too: on
    # a GPU both would have resolved to XLA
    assert LipschitzVAE.from_target(1.0, 8.0, **TINY).jit_compile is False
    model.compile("adam", jit_compile="auto")
    assert model.jit_compile is False
    with pytest.warns(UserWarning, match="jit_compile"):
        model.jit_compile = True
    assert model.jit_compile is False
    x = images[0][:16].copy()
    x[3, 5, 5, 0] = np.nan
    with pytest.raises(ValueError, match=r"^x contains NaN or Inf values \(checked in the graph"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0)
    # a file saved under XLA before compile refused it loads, compiled without XLA
    keras.Model.compile(model, optimizer="adam", jit_compile=True)
    model.save(tmp_path / "xla.keras")
    loaded = keras.models.load_model(tmp_path / "xla.keras")
    assert loaded.jit_compile is False and loaded.optimizer is not None
    # and one compiled with a loss through Keras' own compile loads, without it
    keras.Model.compile(model, optimizer="adam", loss="mse")
    model.save(tmp_path / "loss.keras")
    with pytest.warns(UserWarning, match="loss are dropped"):
        loaded = keras.models.load_model(tmp_path / "loss.keras")
    assert loaded.optimizer is not None


def _bad_inputs(x):
    return {
        "flattened": (x.reshape(len(x), -1), ValueError, r"x must have shape \(batch, 28, 28, 1\)"),
        "no channel axis": (x[..., 0], ValueError, "x must have shape"),
        "unbatched dataset": (tf.data.Dataset.from_tensor_slices(x), ValueError,
                              r"single images \(element shape \(28, 28, 1\)\): batch it"),
        "a list of two arrays": ([x, x], TypeError, "x is a list of 2 arrays"),
        "dict": ({"images": x}, TypeError, "x must be images, not a dict"),
        "dataset of dicts": (tf.data.Dataset.from_tensor_slices({"images": x}).batch(8),
                             TypeError, "not of dicts"),
        "uint8": ((x * 255).astype("uint8"), TypeError, "divide integer pixels by 255"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(np.zeros((2, 28, 28, 1), "float32"))))
def test_bad_inputs_get_the_same_typed_error_before_and_after_a_first_fit(vae, images, case):
    x = images[0][:32]
    bad, error, message = _bad_inputs(x)[case]
    with pytest.raises(error, match=message):
        vae.fit(bad, verbose=0)
    vae.fit(x, verbose=0)
    vae.predict(x[:4], verbose=0)
    # after Keras traced its functions, the same input must get the same error (it got a raw
    # EnsureShape InvalidArgumentError from the traced graph before)
    for call in (lambda: vae.fit(bad, verbose=0), lambda: vae.evaluate(bad, verbose=0),
                 lambda: vae.predict(bad, verbose=0)):
        with pytest.raises(error, match=message):
            call()


def test_validation_data_is_checked(vae, images):
    x = images[0][:32]
    with pytest.raises(ValueError, match="validation_data must have shape"):
        vae.fit(x, validation_data=(x.reshape(32, -1),), verbose=0)


def test_positional_arguments_are_checked_like_named_ones(vae, images):
    """Keras' fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
    validation_data, shuffle, class_weight, sample_weight) and evaluate(x, y, batch_size,
    verbose, sample_weight): positional validation_data and sample_weight were passed on
    unchecked (and a positional sample_weight without y dropped by Keras)."""
    x = images[0][:32]
    with pytest.raises(ValueError, match="validation_data must have shape"):
        vae.fit(x, None, 32, 1, 0, None, 0.0, x.reshape(32, -1))
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        vae.fit(x, None, 32, 1, 0, None, 0.0, None, True, None, -np.ones(32))
    history = vae.fit(x, None, 32, 1, 0, None, 0.0, x[:16])
    assert "val_elbo" in history.history
    # a positional sample_weight is kept: zero weights leave the weights unchanged
    before = [v.numpy() for v in vae.trainable_variables]
    vae.fit(x, None, 32, 1, 0, None, 0.0, None, True, None, np.zeros(32))
    for old, variable in zip(before, vae.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    weights = np.zeros(32)
    weights[3] = 1.0
    np.testing.assert_allclose(
        vae.evaluate(x, None, 32, 0, weights, return_dict=True)["kl"],
        vae.evaluate(x[3:4], return_dict=True, verbose=0)["kl"], rtol=1e-5)
    with pytest.raises(TypeError, match="batch_size both by position and by name"):
        vae.fit(x, None, 32, batch_size=16)
    with pytest.raises(TypeError, match="fit\\(\\) takes at most"):
        vae.fit(x, None, *range(20))


def test_a_generator_as_validation_data_is_evaluated_whole(vae, images):
    """fit's validation pass calls evaluate, which peeked into the cached generator: one batch
    per pass was lost, and a 2-batch generator ended in "x is a generator that yields no
    batches" (a review's run)."""
    x = images[0][:64]

    def batches(count):
        for i in range(count):
            yield x[16 * i:16 * (i + 1)]

    class CountBatches(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            self.seen = batch + 1

    for count in (2, 4):
        counter = CountBatches()
        history = vae.fit(batches(4), epochs=1, verbose=0, validation_data=batches(count),
                          callbacks=[counter])
        assert counter.seen == count and "val_elbo" in history.history


def test_validation_weights_without_labels_are_kept(vae, images):
    """validation_data=(x, None, w): Keras packs it as x alone and dropped w (the unweighted
    validation KL was reported)."""
    x = images[0][:48]
    weights = np.zeros(48)
    weights[3] = 1.0
    history = vae.fit(images[0][:64], batch_size=64, verbose=0,
                      validation_data=(x, None, weights))
    # the weights were zero for every training image but none: compare with evaluate's
    np.testing.assert_allclose(
        history.history["val_kl"][0],
        vae.evaluate(x[3:4], return_dict=True, verbose=0)["kl"], rtol=1e-5)
    with pytest.raises(ValueError, match="validation_data's sample_weight must be finite"):
        vae.fit(images[0][:64], verbose=0, validation_data=(x, None, -weights))


def test_empty_inputs(vae, images):
    empty = images[0][:0]
    out = vae.predict(empty, verbose=0)
    assert out.shape == (0, 28, 28, 1) and out.dtype == np.float32
    for call in (vae.fit, vae.evaluate):
        with pytest.raises(ValueError, match="x holds no images"):
            call(empty, verbose=0)


def test_accepted_input_forms(vae, images):
    x = images[0][:32]
    labelled = tf.data.Dataset.from_tensor_slices((x, np.arange(32))).batch(8)
    assert set(vae.fit(labelled, verbose=0).history) == {
        "loss", "elbo", "kl", "reconstruction_log_likelihood"}
    assert np.isfinite(vae.evaluate(tf.constant(x), return_dict=True, verbose=0)["elbo"])
    predicted = vae.predict(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0)
    np.testing.assert_allclose(predicted, vae.predict(x, verbose=0), atol=1e-6)


def test_a_target_of_other_images_is_flagged_as_unused(vae, images):
    """A newcomer's denoising run, fit(x_noisy, x_clean), trained on x_noisy alone without a
    word. fit(x, x), the autoencoder idiom, and labels stay quiet."""
    x = images[0][:32]
    with pytest.warns(UserWarning, match="y holds images, and the model trains on the ELBO of x "
                                         "alone: y is not used"):
        vae.fit(np.clip(x + 0.1, 0, 1), x, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        vae.fit(x, x, verbose=0)
        vae.fit(x, np.arange(32), verbose=0)


def test_generators_of_bare_batches_train_and_a_bad_first_batch_is_refused(images):
    """A newcomer's run (2026-12-01): a generator of bare image batches got Keras' ValueError
    (its adapter wants tuples), and flattened images from a generator failed only inside the
    graph. The first batch is checked before Keras starts, and bare batches are passed on."""
    x = images[0][:128]
    model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    model.compile(keras.optimizers.Adam(1e-3))
    history = model.fit((x[i:i + 32] for i in range(0, 128, 32)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict((x[i:i + 32] for i in range(0, 64, 32)), verbose=0).shape == (64, 28,
                                                                                      28, 1)
    with pytest.raises(ValueError, match=r"x \(its first batch\) must have shape"):
        model.fit((x[i:i + 32].reshape(32, -1) for i in range(0, 128, 32)), verbose=0)
    with pytest.raises(ValueError, match="yields no batches"):
        model.fit((b for b in []), verbose=0)
    # what Keras refuses beside a generator is refused before its first batch is taken
    batches = (x[i:i + 32] for i in range(0, 128, 32))
    for given in ({"sample_weight": np.ones(32)}, {"y": x[:32]}, {"class_weight": {0: 1.0}}):
        with pytest.raises(ValueError, match=f"generator, which takes no {next(iter(given))}"):
            model.fit(batches, verbose=0, **given)
    assert len(list(batches)) == 4  # nothing was consumed


class _Batches(keras.utils.PyDataset):
    """Four batches of 32 of `x`, the one at `bad_at` made by `bad` (a keras.utils.PyDataset)."""

    def __init__(self, x, bad_at=None, bad=None):
        super().__init__()
        self.x, self.bad_at, self.bad = x, bad_at, bad

    def __len__(self):
        return 4

    def __getitem__(self, index):
        batch = self.x[32 * index:32 * index + 32]
        return self.bad(batch) if index == self.bad_at else batch


def test_a_py_datasets_first_batch_is_checked_and_a_failed_fit_leaves_the_model_usable(images):
    """A newcomer's run: a PyDataset of uint8 batches got a clear TypeError, but from inside
    Keras' trace, after which every fit failed ("Creating variables on a non-first call to a
    function decorated with tf.function"); a PyDataset of dicts got "Expected any non-tensor
    type, but got a tensor instead" from train_step. The first batch is now checked before
    Keras starts, and a failed fit leaves the next one to trace afresh."""
    x = images[0][:128]
    model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    model.compile(keras.optimizers.Adam(1e-3))
    bad_first = {
        "uint8": (TypeError, r"x \(its first batch\) must hold floating-point images",
                  lambda b: (255 * b).astype("uint8")),
        "flattened": (ValueError, r"x \(its first batch\) must have shape",
                      lambda b: b.reshape(len(b), -1)),
        "dict": (TypeError, r"x \(its first batch\) must be images, not a dict",
                 lambda b: {"images": b}),
        "dict in a tuple": (TypeError, r"x \(its first batch\) must be images, not a dict",
                            lambda b: ({"images": b},)),
    }
    for error, message, bad in bad_first.values():
        with pytest.raises(error, match=message):
            model.fit(_Batches(x, 0, bad), verbose=0)
    # a bad later batch fails in the graph (pixels outside [0, 1]); the model still trains
    with pytest.raises(ValueError, match="pixel values in \\[0, 1\\].*got min 0 and max 255"):
        model.fit(_Batches(x, 2, lambda b: 255 * b), verbose=0)
    history = model.fit(_Batches(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 4 + 2  # two steps of the failed fit


def test_class_weight_needs_labels_and_weights_may_be_a_list(vae, images):
    x = images[0][:64]
    with pytest.raises(ValueError, match="class_weight weights each image by its label"):
        vae.fit(x, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight weights each image by its label"):
        vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), class_weight={0: 1.0},
                verbose=0)
    assert np.isfinite(vae.fit(x, sample_weight=[1.0] * 64, verbose=0).history["loss"][0])
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        vae.fit(x, sample_weight=[float("nan")] * 64, verbose=0)


@pytest.mark.parametrize("policy", ["float64", "mixed_float16", "mixed_bfloat16"])
def test_a_global_dtype_policy_other_than_float32_is_refused(policy):
    """Under set_floatx("float64") the model was built and then failed deep inside TFP's KL in
    fit; under a mixed policy the message advised a model dtype that did not help."""
    keras.config.set_dtype_policy(policy)
    try:
        for dtype in (None, "float32"):
            with pytest.raises(ValueError, match=f"global dtype policy is '{policy}'"):
                LipschitzVAE.from_target(1.0, 8.0, dtype=dtype, **TINY)
    finally:
        keras.config.set_dtype_policy("float32")
    LipschitzVAE.from_target(1.0, 8.0, **TINY)


def test_keras_export_serves_call(vae, images, tmp_path):
    """Keras' own `export` refused the model ("never called": it is built at construction)."""
    x = images[0][:8]
    vae.export(str(tmp_path / "served"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_array_equal(served.serve(tf.constant(x)).numpy(), vae(x).numpy())
    # a newcomer's run (2026-12-02): a second export wrote over the first without a word,
    # while export_saved_model refuses the same
    with pytest.raises(FileExistsError, match="served exists.*overwrite=True"):
        vae.export(str(tmp_path / "served"), verbose=False)
    vae.export(str(tmp_path / "served"), verbose=False, overwrite=True)
    (tmp_path / "empty").mkdir()
    vae.export(str(tmp_path / "empty"), verbose=False)


def test_certified_radius_checks_its_arguments_before_any_work(images, monkeypatch):
    model = LipschitzVAE.from_target(1.0, 8.0, posterior_std=None, **TINY)
    x = images[0][:16]

    def no_work(*args, **kwargs):
        raise AssertionError("the expensive part ran before the arguments were checked")

    # on the class: a callable set on the instance is an override the certificate refuses
    monkeypatch.setattr(LipschitzVAE, "std_statistics", no_work)
    monkeypatch.setattr(LipschitzVAE, "lipschitz_constants", no_work)
    for arguments, message in (({"method": "bestt"}, "method must be one of"),
                               ({"method": "ncx2"}, "needs gamma"),
                               ({"reconstruction": "meen"}, "reconstruction must be one of"),
                               ({"r": np.ones(3)}, "one value or one per input"),
                               ({"p": 1.0}, "p must be in")):
        with pytest.raises(ValueError, match=message):
            model.certified_radius(x, **{"r": 8.0, **arguments})


def test_weights_of_unknown_rank_are_checked_when_the_step_runs(vae, images):
    """A fit with (batch, 1) weights after one with (batch,) retraces with weights of unknown
    rank, as weights from tf.py_function have: the shape check moves into the graph (it raised
    'Cannot iterate over a shape with unknown rank' while writing its own message)."""
    x = images[0][:64]
    vae.fit(x, sample_weight=np.ones(64, "float32"), batch_size=32, verbose=0)
    vae.fit(x, sample_weight=np.ones((64, 1), "float32"), batch_size=32, verbose=0)
    vae.evaluate(x, sample_weight=np.ones(64, "float32"), verbose=0)
    vae.evaluate(x, sample_weight=np.ones((64, 1), "float32"), verbose=0)

    def unknown_rank(weights):
        return tf.py_function(lambda w: w, [weights], tf.float32)

    def dataset(weights):
        return tf.data.Dataset.from_tensor_slices((x, np.zeros(64), weights)).batch(16).map(
            lambda images, labels, w: (images, labels, unknown_rank(w)))

    fresh = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    fresh.compile(keras.optimizers.SGD(1e-2))
    assert dataset(np.ones(64, "float32")).element_spec[2].shape.rank is None
    before = [v.numpy() for v in fresh.trainable_variables]
    fresh.fit(dataset(np.zeros((64, 1), "float32")), verbose=0)  # zero weights: no change
    for old, variable in zip(before, fresh.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        fresh.fit(dataset(np.ones((64, 2), "float32")), verbose=0)
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        fresh.fit(dataset(-np.ones(64, "float32")), verbose=0)


def test_a_loss_scale_optimizer_makes_the_same_step_as_the_optimizer_it_wraps(images):
    """Keras' LossScaleOptimizer divides the gradients by its scale in `apply`; the train step
    scales the loss first, as Keras' own does (each step was 1/32768 of the SGD step)."""
    x = images[0][:32]

    def one_step(optimizer):
        keras.utils.set_random_seed(0)
        model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
        model.compile(optimizer)
        before = [v.numpy() for v in model.trainable_variables]
        model.train_on_batch(x)
        return [v.numpy() - old for old, v in zip(before, model.trainable_variables)]

    plain = one_step(keras.optimizers.SGD(1e-3))
    scaled = one_step(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1e-3)))
    factor = one_step(keras.optimizers.SGD(1e-3, loss_scale_factor=64.0))
    assert max(np.abs(step).max() for step in plain) > 1e-5
    for step, other, third in zip(plain, scaled, factor):
        np.testing.assert_allclose(other, step, rtol=1e-3, atol=1e-7)
        np.testing.assert_allclose(third, step, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_no_images_at_all_is_a_type_error_naming_x(vae, method):
    with pytest.raises(TypeError, match="x must be images, got None"):
        getattr(vae, method)(None, verbose=0)


class _GuideStyleVAE(LipschitzVAE):
    """A custom train_step as Keras' guide writes one, through `compute_loss`."""

    def train_step(self, data):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, sample_weight=sample_weight)
            scaled = self.optimizer.scale_loss(loss)
        self.optimizer.apply(tape.gradient(scaled, self.trainable_variables),
                             self.trainable_variables)
        return {"loss": loss}


class _MetricsReportingVAE(LipschitzVAE):
    """A newcomer's train_step (2026-12-03): it returned compute_metrics' values, all zeros."""

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables),
                             self.trainable_variables)
        return self.compute_metrics(x, None, None)


def test_a_custom_train_step_reports_what_the_built_in_step_reports(images):
    x = images[0][:64]
    histories = []
    for kind in (LipschitzVAE, _MetricsReportingVAE):
        keras.utils.set_random_seed(0)
        model = kind.from_target(1.0, 8.0, **TINY)
        model.compile(keras.optimizers.Adam(1e-3))
        histories.append(model.fit(x, epochs=2, batch_size=32, shuffle=False,
                                   verbose=0).history)
    assert set(histories[1]) == set(_METRICS)
    for name in _METRICS:
        assert histories[1][name] == histories[0][name], name
    assert histories[1]["elbo"][0] < 0 and histories[1]["kl"][0] > 0  # not zeros


def test_compute_loss_is_the_loss_fit_minimises(images):
    """A subclass whose train_step calls compute_loss(x=...) makes the built-in step, bit for
    bit (it raised Keras' 'Provide a loss argument in compile()', which compile refuses)."""
    x = images[0][:32]
    initial, trained = [], []
    for kind in (LipschitzVAE, _GuideStyleVAE):
        keras.utils.set_random_seed(0)
        model = kind.from_target(1.0, 8.0, **TINY)
        model.compile(keras.optimizers.SGD(1e-2))
        initial.append([v.numpy() for v in model.trainable_variables])
        model.train_on_batch(x)
        trained.append([v.numpy() for v in model.trainable_variables])
    for start, other_start, ours, theirs in zip(*initial, *trained):
        np.testing.assert_array_equal(start, other_start)
        np.testing.assert_array_equal(ours, theirs)
    assert any(np.any(a != b) for a, b in zip(initial[0], trained[0]))  # the step moved them
    # the weighted batch mean of the per-image negative ELBO, sampled like elbo_terms
    model = LipschitzVAE.from_target(1.0, 8.0, **TINY)
    weights = np.zeros(32, "float32")
    weights[4] = 32.0
    model.seed_generator.state.assign([7, 0])
    value = float(model.compute_loss(x=x, sample_weight=weights))
    model.seed_generator.state.assign([7, 0])
    assert value == pytest.approx(float(model.elbo_terms(x)["loss"][4]), rel=1e-6)
    with pytest.raises(TypeError, match="compute_loss needs x=, the images"):
        model.compute_loss(y=x, y_pred=x)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: m.train_on_batch({"a": x}), TypeError, "x must be images, not a dict"),
    (lambda m, x: m.train_on_batch(x, class_weight={0: 1.0}), ValueError,
     "class_weight weights each image by its label"),
    (lambda m, x: m.train_on_batch(x[:0]), ValueError, "x holds no images"),
    (lambda m, x: m.train_on_batch(x.reshape(len(x), -1)), ValueError, "x must have shape"),
    (lambda m, x: m.train_on_batch(x, sample_weight=-np.ones(len(x))), ValueError,
     "sample_weight must be finite and >= 0"),
    (lambda m, x: m.test_on_batch(255 * x), ValueError, r"x must hold pixel values in \[0, 1\]"),
    (lambda m, x: m.predict_on_batch(x.reshape(len(x), -1)), ValueError, "x must have shape"),
])
def test_the_on_batch_calls_check_their_inputs_as_fit_does(vae, images, call, error, match):
    """A practitioner's review (2026-12-02): train_on_batch on a dict raised TF's "Expected any
    non-tensor type", on zero images took a step on nothing (iterations 1), on flattened images
    an EnsureShape error naming no argument; class_weight without labels an IndexError."""
    x = images[0][:16]
    vae.predict(x, verbose=0)  # a first trace: Keras then relaxes shapes, as in a user's loop
    with pytest.raises(error, match=match):
        call(vae, x)
    assert int(vae.optimizer.iterations.numpy()) == 0


def test_the_on_batch_calls_train_and_evaluate_as_fit_does(images):
    x = images[0][:16]
    weights = np.linspace(0.0, 2.0, 16)
    vae, twin = (LipschitzVAE.from_target(1.0, 8.0, seed=3, **TINY) for _ in range(2))
    for model in (vae, twin):
        model.compile(keras.optimizers.SGD(1e-2))
    twin.set_weights(vae.get_weights())
    vae.train_on_batch(x, sample_weight=weights)
    twin.fit(x, sample_weight=weights, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(vae.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert vae.predict_on_batch(x[:0]).shape == (0, *vae.image_shape)
    np.testing.assert_array_equal(vae.predict_on_batch(x), vae.predict(x, verbose=0))
    assert set(vae.test_on_batch(x, sample_weight=weights, return_dict=True)) >= {"elbo", "kl"}


def test_a_nested_list_of_images_is_one_array(vae, images):
    """A newcomer's run (2026-12-02): fit, evaluate and predict of x.tolist() failed with a
    42 KB Keras message (a list is one array per model input), while reconstruct and
    certified_radius took it."""
    x = images[0][:8]
    as_list = x.tolist()
    np.testing.assert_array_equal(vae.predict(as_list, verbose=0), vae.predict(x, verbose=0))
    np.testing.assert_array_equal(vae.predict_on_batch(as_list), vae.predict_on_batch(x))
    vae.evaluate(as_list, verbose=0)
    vae.fit(as_list, epochs=1, batch_size=8, verbose=0, validation_data=(as_list,))
    vae.train_on_batch(as_list)
    vae.test_on_batch(as_list)
    # Keras' list of one input array (a newcomer's run, 2026-12-03: shape (1, 8, 28, 28, 1))
    np.testing.assert_array_equal(vae.predict([x], verbose=0), vae.predict(x, verbose=0))
    with pytest.raises(ValueError, match="x is nested lists that are not one array"):
        vae.predict([x[0].tolist(), x[0, :27].tolist()], verbose=0)
    with pytest.raises(TypeError, match="x is a list of <U"):
        vae.fit([["a"]], verbose=0)
    with pytest.raises(TypeError, match="x must hold floating-point images.*divide integer"):
        vae.predict((x * 255).astype(int).tolist(), verbose=0)


@pytest.mark.parametrize("weight, error", [(-1.0, ValueError), (float("nan"), ValueError),
                                           ("a", TypeError)])
def test_a_bad_class_weight_is_refused_before_training(vae, images, weight, error):
    """A newcomer's run (2026-12-02): {0: -1.0} failed in the graph as an InvalidArgumentError
    naming sample_weight."""
    with pytest.raises(error, match=r"class_weight\[0\]"):
        vae.fit(images[0][:16], np.arange(16) % 10,
                class_weight={0: weight, **{c: 1.0 for c in range(1, 10)}}, verbose=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1, got 0"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (dict(epochs=-1), ValueError, "epochs must be an integer >= 1, got -1"),
    (dict(epochs=0), ValueError, "epochs must be an integer >= 1, got 0"),
    (dict(epochs=2, initial_epoch=3), ValueError, r"initial_epoch must be an integer in \[0, "),
])
def test_fit_refuses_loop_arguments_that_train_nothing_or_anything(vae, images, kwargs, error,
                                                                   match):
    """A newcomer's run (2026-12-02): fit(batch_size=0) trained, fit(epochs=-1) returned an
    empty history, both silently."""
    with pytest.raises(error, match=match):
        vae.fit(images[0][:16], verbose=0, **kwargs)


def test_class_weight_keys_must_be_labels(vae, images):
    """A newcomer's run (2026-12-03): string keys matched no label and every image kept weight
    1 (loss 225 where zero weights give 0); a dataset's label without a key was a raw GatherV2
    InvalidArgumentError. Keras' own rules otherwise hold (a review the same day: {1: 5.0},
    float keys 0.0 and initial_epoch == epochs are legitimate Keras)."""
    x, labels = images[0][:32], np.arange(32) % 10
    with pytest.raises(TypeError, match="class_weight's keys must be integer labels, got '0'"):
        vae.fit(x, labels, class_weight={str(c): 0.0 for c in range(10)}, verbose=0)
    with pytest.raises(TypeError, match="got 0.5"):
        vae.fit(x, labels, class_weight={0.5: 1.0}, verbose=0)
    before = [v.numpy() for v in vae.trainable_variables]
    vae.fit(x, labels, class_weight={float(c): 0.0 for c in range(10)}, batch_size=32,
            verbose=0)  # float keys match as Keras matches them: every weight 0, no change
    for old, variable in zip(before, vae.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    vae.fit(x, labels, class_weight={1: 5.0}, verbose=0)  # Keras: the others keep weight 1
    assert vae.fit(x, epochs=2, initial_epoch=2, verbose=0).history == {}
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(8)
    with pytest.raises(ValueError, match="class_weight has weights for labels 0 to 0, and a "
                                         "batch holds label"):
        vae.fit(dataset, class_weight={0: 2.0}, verbose=0)
    # a user's own table lookup out of range is not blamed on class_weight
    table = tf.range(5, dtype=tf.int64)
    remapped = dataset.map(lambda images, label: (images, tf.gather(table, label)))
    with pytest.raises(tf.errors.InvalidArgumentError):
        vae.fit(remapped, class_weight={c: 1.0 for c in range(10)}, verbose=0)
    vae.fit(dataset, class_weight={c: 1.0 for c in range(10)}, verbose=0)


def test_validation_data_as_a_list_is_keras_tuple(vae, images):
    """The same review: a list [x_val, y_val] was refused as "a list of 2 arrays"; Keras
    reads it as the tuple."""
    x = images[0][:32]
    history = vae.fit(x, validation_data=[x[:16], x[:16]], verbose=0)
    assert "val_loss" in history.history
    history = vae.fit(x, validation_data=[x[:16].tolist()], verbose=0)
    assert "val_loss" in history.history


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_predict_and_evaluate_refuse_a_batch_size_of_zero(vae, images, method):
    """A newcomer's run (2026-12-03): predict(batch_size=0) ran on batches of 32."""
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        getattr(vae, method)(images[0][:8], batch_size=0, verbose=0)


def test_graph_check_messages_are_found_in_the_multi_replica_format():
    """A review (2026-12-03): under MirroredStrategy TF prefixes the assertion with
    "(0) INVALID_ARGUMENT:", and the one-line ValueError was not raised."""
    from lipvae_tf.keras_inputs import _graph_checks_as_value_errors
    mirrored = ("Graph execution error:\n\n2 root error(s) found.\n  (0) INVALID_ARGUMENT:  "
                "assertion failed: [x must hold finite pixel values in [0, 1]; got min 0 and max "
                "255]\n\t [[{{node Assert/Assert}}]]")
    with pytest.raises(ValueError, match=r"^x must hold finite pixel values in \[0, 1\]; got "
                                         r"min 0 and max 255 \(checked in the graph"):
        with _graph_checks_as_value_errors(None):
            raise tf.errors.InvalidArgumentError(None, None, mirrored)
    gather = "indices[0] = 3 is not in [0, 2)\n\t [[{{node GatherV2}}]]"
    with pytest.raises(ValueError, match="class_weight has weights for labels 0 to 1"):
        with _graph_checks_as_value_errors({0: 1.0, 1: 1.0}):
            raise tf.errors.InvalidArgumentError(None, None, gather)
    with pytest.raises(tf.errors.InvalidArgumentError):  # a table of another size: not ours
        with _graph_checks_as_value_errors({c: 1.0 for c in range(10)}):
            raise tf.errors.InvalidArgumentError(None, None, gather)


def test_the_certificate_and_reconstruct_take_a_dataset_as_fit_does(vae, images):
    """A newcomer's review: fit took the dataset that data.load_dataset returns, while
    certified_radius, reconstruct and log_likelihood refused it."""
    x = images[0][:24]
    labelled = tf.data.Dataset.from_tensor_slices((x, np.zeros(24, "int64"))).batch(10)
    np.testing.assert_array_equal(vae.certified_radius(labelled, 8.0),
                                  vae.certified_radius(x, 8.0))
    assert vae.reconstruct(tf.data.Dataset.from_tensor_slices(x).batch(7)).shape == x.shape
    assert vae.log_likelihood(labelled, samples=2).shape == (24,)
    with pytest.raises(ValueError, match="x is an infinite dataset"):
        vae.certified_radius(tf.data.Dataset.from_tensor_slices(x).batch(8).repeat(), 8.0)
    with pytest.raises(ValueError, match="x is a dataset of single images"):
        vae.reconstruct(tf.data.Dataset.from_tensor_slices(x))
    empty = tf.data.Dataset.from_tensor_slices(x[:0]).batch(4)
    assert vae.certified_radius(empty, 8.0).shape == (0,)
