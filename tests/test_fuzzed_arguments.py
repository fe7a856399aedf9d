"""Bad arguments that a fuzzing review of the public API (2026-12-03) found accepted silently,
turned into a wrong value, or refused with an error that named nothing. Each is refused now with a
typed error naming the argument; the values that were wrong are asserted directly."""
import json
import os
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import lipvae_tf as lv
from lipvae_tf import (
    attacks,
    bounds,
    constraints,
    data,
    graph_bounds,
    layers,
    lipschitz,
    report,
    zoo,
)

KERNEL = np.random.default_rng(0).normal(size=(3, 3, 1, 2))


# ----- soundness: a value that overstated a bound or a certificate ------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_conv_kernel_with_nan_or_inf_has_no_bound_instead_of_a_bound_of_zero(bad):
    kernel = KERNEL.copy()
    kernel[0, 0, 0, 0] = bad  # one entry was enough: the bound came back 0.0
    with pytest.raises(ValueError, match="kernel contains NaN or Inf"):
        lipschitz.conv_norm_bound(kernel, (8, 8), (1, 1), "same")
    with pytest.raises(ValueError, match="kernel contains NaN or Inf"):
        lipschitz.dense_norm(np.full((3, 3), bad))  # LinAlgError before


def test_s_max_below_the_root_mean_square_is_refused_as_it_inflated_the_certificate():
    args = (1.0, 0.0, 2.0, 0.05, 4.0)
    honest = bounds.capped_chi2_radius(*args, latent_dim=3, std_cap=0.1)
    with pytest.raises(ValueError, match="s_max .* must be >= s / sqrt"):
        bounds.capped_chi2_radius(*args, latent_dim=3, std_cap=0.1, s_max=0.0)  # was 1.923
    with pytest.raises(ValueError, match="s_max"):
        bounds.best_radius(*args, latent_dim=3, std_cap=0.1, s_max=0.0)
    # the smallest possible s_max, s / sqrt(m), certifies more than s_max = s, and a value a
    # rounding below it is read as it (the larger variance is the sound side)
    floor = 0.05 / np.sqrt(3)
    at_floor = bounds.capped_chi2_radius(*args, latent_dim=3, std_cap=0.1, s_max=floor)
    assert at_floor > honest
    assert bounds.capped_chi2_radius(*args, latent_dim=3, std_cap=0.1,
                                     s_max=floor * (1 - 1e-9)) == at_floor
    # the graph agrees: NaN (a request it cannot raise on) below the floor, the same value at it
    graph = graph_bounds.radius("chi2_cap", 1.0, 0.0, 2.0, [0.05, 0.05], 4.0, 0.5, latent_dim=3,
                                std_cap=0.1, s_max=[0.0, floor]).numpy()
    assert np.isnan(graph[0]) and graph[1] == pytest.approx(at_floor, rel=1e-9)


def test_graph_certificates_check_their_frozen_constants():
    with pytest.raises(ValueError, match="m_mu must be > 0"):  # was an infinite radius
        graph_bounds.markov_radius(0.0, 0.0, 2.0, 0.05, 4.0, 0.5)
    with pytest.raises(ValueError, match="m must be an integer >= 2"):
        graph_bounds.inglot_log_tail(1.0, 1)
    with pytest.raises(ValueError, match="1-D"):  # a ConcatOp error before
        graph_bounds.ncx2_cdf_lower(1.0, 3, 1.0)
    with pytest.raises(TypeError, match="m_g must be a Python number"):
        graph_bounds.paper_markov_radius(1.0, 0.0, tf.constant(2.0), 0.05, 4.0, 0.5)


@pytest.mark.parametrize("call, match", [
    (lambda: constraints.clip_dense_spectrum(tf.eye(3), -1.0), "max_norm"),  # gave -I
    (lambda: constraints.clip_conv_spectrum(tf.ones((3, 3, 1, 1)), 1.0, (0, 0), (1, 1)),
     "grid_hw"),
    (lambda: constraints.bjorck_orthonormalize(tf.eye(3), -1), "iterations"),
    (lambda: constraints.bjorck_orthonormalize(tf.eye(3), 1, beta=0.7), "beta"),
    (lambda: constraints.power_iteration(tf.eye(3), tf.ones((4,)), 1), "vector must have"),
    (lambda: constraints.power_iteration(tf.eye(3), tf.ones((3,)), -1), "iterations"),
    (lambda: constraints.subspace_clip(tf.eye(3), tf.ones((3, 2)), -1.0), "max_norm"),
    (lambda: constraints.subspace_clip(tf.eye(3), tf.ones((4, 2)), 1.0), "subspace must"),
    (lambda: constraints.clip_dense_spectrum(tf.ones((2, 3, 3)), 1.0), "rank 2"),
    (lambda: constraints.start_inside(np.full((3, 3), np.nan, "float32"),
                                      constraints.SpectralClip(1.0)), "kernel contains NaN"),
    (lambda: constraints.conv_kind("bogus"), "constraint must be one of"),
    (lambda: constraints.relaxation_acts("bogus", "subspace_clip"), "architecture"),
])
def test_the_functional_constraints_refuse_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_start_inside_names_a_missing_constraint():
    with pytest.raises(TypeError, match="constraint must be"):
        constraints.start_inside(np.eye(3, dtype="float32"), None)


# ----- the Lipschitz layers and their measurements -------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: lipschitz.conv_norm_bound(KERNEL, (28, 28), (0, 1), "same"), ValueError, "strides"),
    (lambda: lipschitz.conv_norm_bound(KERNEL, (0, 28), (1, 1), "same"), ValueError, "input_hw"),
    (lambda: lipschitz.conv_norm_bound(KERNEL, (8, 8), (1, 1), None), TypeError, "padding"),
    (lambda: lipschitz.conv_norm_bound(np.ones((3, 3)), (8, 8), (1, 1), "same"), ValueError,
     "kernel must have 4"),
    (lambda: lipschitz.product_rounded_up(1e308, 1e308), ValueError, "overflows"),
    (lambda: lipschitz.product_rounded_up(-1.0, 1.0), ValueError, "a must be"),
    (lambda: lipschitz.applied_value("a", "float32"), TypeError, "value must be a real"),
    (lambda: lipschitz.applied_value(1e40, "float32"), ValueError, "beyond the largest finite"),
    (lambda: lipschitz.unit_roundoff(None), TypeError, "dtype"),
    (lambda: lipschitz.chain_layers(None), TypeError, "keras.Model"),
    (lambda: lipschitz.scaled_bound(keras.layers.Dense(2), 1.0), TypeError, "lipschitz factor"),
    (lambda: lipschitz.applied_kernel(keras.layers.Dense(2)), ValueError, "not built"),
    (lambda: layers.LipschitzConv2D(2, kernel_size=None), ValueError, "kernel_size must be"),
    (lambda: layers.LipschitzConv2D(2, 3, strides=3.0), ValueError, "strides must be"),
    (lambda: layers.LipschitzConv2D(2, 3, padding=None), ValueError, "got None"),
    (lambda: layers.StdCap(1e-45), ValueError, "max_norm must lie between"),
    (lambda: layers.Shift(1e39), ValueError, "offset must lie between"),
    (lambda: layers.sort_neighbour_pairs(tf.ones((2, 5))), ValueError, "even"),
])
def test_layers_and_measurements_name_a_bad_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_dense_layer_called_on_another_width_is_refused_by_its_input_spec():
    layer = lv.LipschitzDense(4)
    layer(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.ones((2, 4), "float32"))  # an InvalidArgumentError from the matmul before


# ----- attacks and statistics ----------------------------------------------------------------

@pytest.mark.parametrize("successes, trials, error", [
    (0, np.nan, ValueError), (3, np.inf, ValueError), (2, 10.5, ValueError),
    (True, 10, TypeError), ("3", 10, TypeError), ([1, 2], [10, 10, 10], ValueError),
])
def test_clopper_pearson_refuses_counts_that_are_not_counts(successes, trials, error):
    for bound in (attacks.clopper_pearson_upper, attacks.clopper_pearson_lower):
        with pytest.raises(error, match="successes|trials"):
            bound(successes, trials, 0.9)


def test_a_radius_beyond_float32_is_refused_instead_of_giving_nan_perturbations():
    x = np.full((2, 4, 4, 1), 0.5, np.float32)
    with pytest.raises(ValueError, match="radius must be <="):
        attacks.random_perturbation(x, 1e39)
    assert np.all(np.isfinite(attacks.random_perturbation(x, 3e38)))


@pytest.mark.parametrize("radius", [-1.0, np.nan, "1"])
def test_project_ball_box_refuses_a_bad_radius(radius):
    x = np.full((2, 4, 4, 1), 0.5, np.float32)
    with pytest.raises((ValueError, TypeError), match="radius"):
        attacks.project_ball_box(tf.zeros_like(x), x, radius)
    with pytest.raises(ValueError, match="x must hold one image per row"):
        attacks.project_ball_box(tf.zeros_like(x), x[:1], 1.0)


@pytest.fixture(scope="module")
def tiny_vae():
    return lv.LipschitzVAE(2, hidden_units=(8,), std_cap=0.1)


def test_reconstruction_distance_checks_its_shapes_and_model(tiny_vae):
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    noise = np.zeros((3, 2, 2), np.float32)
    assert attacks.reconstruction_distance(tiny_vae, x, x, noise, noise).shape == (3, 2)
    with pytest.raises(ValueError, match="x_prime must have the shape of x"):
        attacks.reconstruction_distance(tiny_vae, x, x[:1], noise, noise)  # was broadcast
    with pytest.raises(ValueError, match="noise must have shape"):
        attacks.reconstruction_distance(tiny_vae, x, x, noise[:, :, :1], noise)
    with pytest.raises(TypeError, match="model must be a lipvae_tf"):
        attacks.reconstruction_distance(keras.Sequential([keras.layers.Flatten()]), x, x,
                                        noise, noise)


# ----- the model ----------------------------------------------------------------------------

def test_model_methods_name_none_and_a_bad_batch_size(tiny_vae):
    for method in (tiny_vae.encode, tiny_vae, tiny_vae.std_norms):
        with pytest.raises(TypeError, match="x must be|inputs must be"):
            method(None)
    for method in (tiny_vae.decode, tiny_vae.decode_mean):
        with pytest.raises(TypeError, match="z must be"):
            method(None)
    x = np.full((2, 28, 28, 1), 0.5, np.float32)
    fixed = lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=0.05)
    for model in (tiny_vae, fixed):  # the fixed-std model ignored batch_size altogether
        for batch_size, error in ((0, ValueError), (True, TypeError), ("4", TypeError)):
            with pytest.raises(error, match="batch_size"):
                model.std_statistics(x, batch_size=batch_size)


def test_std_cap_is_checked_even_where_a_fixed_std_does_not_use_it():
    with pytest.raises(TypeError, match="std_cap"):  # was accepted, and became None
        lv.LipschitzVAE(2, hidden_units=(8,), std_cap="x", posterior_std=0.05)


def test_a_keras_file_with_nan_weights_is_refused_when_loaded(tiny_vae, tmp_path):
    path = tmp_path / "vae.keras"
    tiny_vae.save(path)
    # the weights file, rewritten with every decoder kernel NaN, put back into the archive
    with zipfile.ZipFile(path) as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5", "r+") as store:
        def poison(name, item):
            if isinstance(item, h5py.Dataset) and "decoder" in name and item.ndim == 2:
                item[...] = np.nan
        store.visititems(poison)
    rebuilt = tmp_path / "rebuilt.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rebuilt, "w") as target:
        for item in source.infolist():
            payload = ((tmp_path / "model.weights.h5").read_bytes()
                       if item.filename == "model.weights.h5" else source.read(item.filename))
            target.writestr(item, payload)
    with pytest.raises(ValueError, match="holds NaN or Inf"):
        keras.models.load_model(rebuilt)  # loaded, and reconstructed NaN images, before
    with pytest.raises(ValueError, match="NaN or Inf"):
        tiny_vae.load_weights(rebuilt)
    not_zip = tmp_path / "not_a_zip.keras"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a .keras archive"):  # zipfile.BadZipFile before
        tiny_vae.load_weights(not_zip)


# ----- data, reports, the zoo ---------------------------------------------------------------

def test_data_folders_that_the_source_does_not_read_are_refused():
    with pytest.raises(ValueError, match="idx_dir and data_dir|data_dir and idx_dir"):
        data.load_arrays("fashion_mnist", "train", source="sample", idx_dir="/x",
                         data_dir="/nonexistent")
    with pytest.raises(TypeError, match="data_dir"):
        data.resolve_source("fashion_mnist", "train", data_dir=3)


def test_summaries_and_bins_refuse_what_made_them_nan_or_was_ignored(tmp_path):
    with pytest.raises(ValueError, match="values contains NaN"):
        report.summarize([np.nan, 1.0])  # every quantile was NaN
    with pytest.raises(ValueError, match="values must have 1 dimensions"):
        report.summarize([[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="count"):
        report.histogram_bins([1.0, 2.0], count=0)
    with pytest.raises(ValueError, match="edge must be finite"):
        report.histogram_bins([1.0, 2.0], edge=np.nan)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        report.plot_pareto({"a": (1.0, 1.0)}, str(tmp_path / "file" / "p.png"))
    written = report.plot_pareto({"a": (1.0, 1.0)}, str(tmp_path / "new" / "p.png"))
    assert (tmp_path / "new" / "p.png").stat().st_size > 0 and written.endswith("p.png")


def test_zoo_helpers_refuse_a_single_name_an_unknown_dataset_and_a_bad_folder(tmp_path):
    with pytest.raises(TypeError, match="names must be a list"):
        zoo.cards_table("fashion_mnist_mlp_r1")  # asked for models "f", "a", ... before
    with pytest.raises(TypeError, match="names must be a list"):
        zoo.validation_curves("fashion_mnist_mlp_r1")
    with pytest.raises(ValueError, match="dataset must be one of"):
        zoo.list_models("cifar")  # listed nothing, without a word
    with pytest.raises(NotADirectoryError, match="not an existing folder"):
        zoo.write_manifest(tmp_path / "missing")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps({}))
    assert zoo.write_manifest(str(folder)).name == "manifest.json"  # a str path works
    with pytest.raises(ValueError, match="epochs"):
        zoo.build("fashion_mnist_mlp_r1", epochs=0)  # hidden by the weights check before
    with pytest.raises(TypeError, match="modes must be a collection"):
        zoo.certified_by_reconstruction(None, None, 8.0, 0.5, modes="mean")


def test_zoo_commands_refuse_the_training_flags_they_do_not_read():
    result = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "table", "--p=0.3",
                             "--epochs=-5"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "table does not take --epochs, --p" in result.stderr


def test_a_design_record_its_constants_do_not_reproduce_is_refused():
    vae = lv.LipschitzVAE.from_target(1.0, 8.0, hidden_units=(8,), latent_dim=3)
    config = vae.get_config()
    assert lv.LipschitzVAE.from_config(config).design == vae.design  # an honest record loads
    for field, value in (("target_radius", 100.0), ("certified_radius", 100.0),
                         ("decoder", vae.design["decoder"] * 2)):
        edited = {**config, "design": {**config["design"], field: value}}
        with pytest.raises(ValueError, match="design record does not hold together"):
            lv.LipschitzVAE.from_config(edited)  # loaded, and exported as "design met", before
    with pytest.raises(ValueError, match="missing \\['target_radius'\\]"):
        lv.LipschitzVAE(3, hidden_units=(8,), design={
            k: v for k, v in vae.design.items() if k != "target_radius"})


# ----- from an adversarial review of the certificates (2026-12-03) ----------------------------

@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_bias_is_refused_by_the_certificate_and_the_export(value, tmp_path):
    vae = lv.LipschitzVAE.from_target(1.0, 8.0, 0.5, latent_dim=4, hidden_units=(16,))
    bias = vae.encoder_mean_net.layers[-1].bias
    bias.assign(np.where(np.arange(bias.shape[0]) == 0, value, bias.numpy()).astype("float32"))
    x = np.full((2, 28, 28, 1), 0.3, np.float32)
    assert not np.isfinite(vae.reconstruct(x, sample=False)).all()
    with pytest.raises(ValueError, match="encoder_mean_out/bias' holds NaN or Inf"):
        vae.certified_radius(x, 8.0, 0.5)  # 1.00002 before, for NaN reconstructions
    from lipvae_tf import export
    with pytest.raises(ValueError, match="holds NaN or Inf"):  # NaN: "weights changed" before
        export.export_saved_model(vae, str(tmp_path / "m"))


def test_reduced_precision_execution_is_refused_by_the_certificate(monkeypatch):
    vae = lv.LipschitzVAE.from_target(1.0, 8.0, 0.5, latent_dim=4, hidden_units=(16,))
    x = np.full((2, 28, 28, 1), 0.3, np.float32)
    assert vae.certified_radius(x, 8.0, 0.5).min() >= 1.0
    for name in ("TF_SET_ONEDNN_FPMATH_MODE", "ONEDNN_DEFAULT_FPMATH_MODE"):
        with monkeypatch.context() as patch:
            patch.setenv(name, "BF16")
            with pytest.raises(RuntimeError, match=f"{name}='BF16'"):
                vae.certified_radius(x, 8.0, 0.5)
        with monkeypatch.context() as patch:
            patch.setenv(name, "strict")  # the default mode is fine
            assert vae.certified_radius(x, 8.0, 0.5).min() >= 1.0
    option = "auto_mixed_precision_onednn_bfloat16"
    tf.config.optimizer.set_experimental_options({option: True})
    try:
        with pytest.raises(RuntimeError, match=option):
            vae.certified_radius(x, 8.0, 0.5)
    finally:
        tf.config.optimizer.set_experimental_options({option: False})
    assert vae.certified_radius(x, 8.0, 0.5).min() >= 1.0


def test_the_training_command_refuses_reduced_precision_before_it_trains(tmp_path):
    env = {**os.environ, "TF_SET_ONEDNN_FPMATH_MODE": "BF16"}
    result = subprocess.run(
        [sys.executable, "-m", "lipvae_tf.train", "--source=sample", "--train_limit=64",
         "--test_limit=16", "--epochs=1", f"--output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1
    assert "error: TensorFlow is set to compute float32" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "report.json").exists()


# ----- what the checks above must not break (a review of them, 2026-12-03) -------------------

def test_the_checked_attack_helpers_still_trace_and_differentiate(tiny_vae):
    x = tf.Variable(np.full((2, 28, 28, 1), 0.5, np.float32))
    noise = np.zeros((3, 2, 2), np.float32)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(attacks.reconstruction_distance(tiny_vae, x, x * 0.9, noise, noise))
    assert tape.gradient(total, x) is not None  # None when the inputs became constants
    traced = tf.function(lambda a: attacks.reconstruction_distance(tiny_vae, a, a, noise, noise))
    assert traced(x).shape == (3, 2)
    images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
    projected = tf.function(attacks.project_ball_box)(tf.ones_like(images), tf.constant(images),
                                                      tf.constant(1.0))
    assert np.all(np.linalg.norm(projected.numpy().reshape(4, -1), axis=1) <= 1.0)
    attacks.project_ball_box(tf.zeros_like(images), images, np.ones((4, 1), np.float32))


def test_the_checked_measurements_still_take_what_they_took():
    import ml_dtypes
    assert lipschitz.applied_value(np.array(0.3), "float32") == float(np.float32(0.3))
    assert lipschitz.applied_value(tf.constant(0.3), "float32") == float(np.float32(0.3))
    # within half an ulp of float32's largest value it rounds to it, not to inf
    largest = float(np.finfo(np.float32).max)
    assert lipschitz.applied_value(largest * (1 + 2**-26), "float32") == largest
    assert lipschitz.dense_norm(np.eye(3).astype(ml_dtypes.bfloat16)) == pytest.approx(1.0)
    # a fixed std's M_sigma is 0, as lipschitz_constants() and design records report it
    fixed = lv.LipschitzVAE(4, encoder_std=0.0, posterior_std=0.05, hidden_units=(8,))
    assert fixed.lipschitz_constants()["encoder_std"] == 0.0
    with pytest.raises(ValueError, match="encoder_std"):
        lv.LipschitzVAE(4, encoder_std=0.0, hidden_units=(8,))  # a learned std needs one
    assert zoo.validation_curves(name for name in ()) == {}  # any iterable of names


def test_train_one_alone_still_deletes_its_checkpoint(tmp_path):
    from lipvae_tf import train
    config = train.TrainConfig(source="sample", train_limit=64, test_limit=16, epochs=1,
                               hidden_units=(8,), batch_size=32, ll_samples=2, verbose=0,
                               baseline=False, output_dir=str(tmp_path))
    images = data.load_sample("train")[0][:64]
    model = train.build_model(config)
    train.train_one(model, "m", images, images[:16], config)
    assert not (tmp_path / "m" / "backup").exists()  # a second call with other settings works
    train.train_one(train.build_model(config), "m", images, images[:16],
                    train.TrainConfig(**{**config.__dict__, "learning_rate": 5e-4}))


def test_a_refused_weights_file_leaves_the_model_as_it_was(tmp_path):
    model = lv.LipschitzVAE(2, hidden_units=(8,), std_cap=0.1)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r+") as store:
        def poison(name, item):
            if isinstance(item, h5py.Dataset) and "decoder" in name and item.ndim == 2:
                item[...] = np.nan
        store.visititems(poison)
    before = [w.numpy() for w in model.weights]
    with pytest.raises(ValueError, match="are corrupted: some hold NaN or Inf"):
        model.load_weights(path)  # was "do not fit this model: ... other settings"
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_zoo_command_run_as_a_script_refuses_its_own_unread_flags():
    result = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "list", "--overwrite"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "list does not take --overwrite" in result.stderr
