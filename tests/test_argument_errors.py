"""Bad arguments and misuse get a typed error that names the argument, never a raw Python or
TensorFlow error and never a silently wrong value (a Keras user's review, 2026-12-01: each case
below was accepted, or failed with an AttributeError / KeyError / TF traceback, before)."""
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import lipvae_tf as lv
from lipvae_tf import attacks, bounds, conv_spectrum, design, evaluate, export, report, train, zoo
from lipvae_tf import constraints as lc
from lipvae_tf import layers as ll
from lipvae_tf import model as lm

IMAGES = np.zeros((2, 28, 28, 1), "float32")
RAGGED = [IMAGES[0].tolist(), [1.0]]


def _built_by_hand(layer):
    layer.build((None, 5, 5, 1))
    return layer


@pytest.fixture(scope="module")
def vae():
    return lv.LipschitzVAE.from_target(1.0, 8.0, hidden_units=(8,), latent_dim=2)


def _cases(vae, tmp_path):
    plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])
    return {
        "use_bias as a string": (lambda: lv.LipschitzDense(4, use_bias="no"),
                                 TypeError, "use_bias must be a bool"),
        "conv use_bias as a string": (lambda: lv.LipschitzConv2D(4, 3, use_bias="yes"),
                                      TypeError, "use_bias must be a bool"),
        "export finalize as a string": (
            lambda: export.export_saved_model(vae, tmp_path / "a", finalize="no"),
            TypeError, "finalize must be a bool"),
        "attack radius as a string": (lambda: attacks.maximum_damage_attack(vae, IMAGES, "2"),
                                      TypeError, "radius must be a real number"),
        "attack on a plain Keras model": (
            lambda: attacks.maximum_damage_attack(plain, IMAGES, 1.0),
            TypeError, "model must be a lipvae_tf LipschitzVAE"),
        "margin on a plain Keras model": (lambda: attacks.estimate_margin(plain, IMAGES, 8.0),
                                          TypeError, "model must be a lipvae_tf"),
        "REST body with p = 2": (
            lambda: export.rest_request(IMAGES, "certify", r=8.0, p=2.0),
            ValueError, r"p must be a probability in \[1/2, 1\)"),
        "REST body with r = 0": (lambda: export.rest_request(IMAGES, "certify", r=0.0, p=0.5),
                                 ValueError, "r must be > 0"),
        "REST body with r as a string": (
            lambda: export.rest_request(IMAGES, "certify", r="8", p=0.5),
            TypeError, "r must be a real number"),
        "a float64 model": (lambda: lv.LipschitzVAE(dtype="float64"),
                            ValueError, "dtype must be float32"),
        "a mixed-precision model": (lambda: lv.LipschitzVAE(dtype="mixed_float16"),
                                    ValueError, "dtype must be float32"),
        "design as a string": (lambda: lv.LipschitzVAE(design="x"),
                               TypeError, "design must be the dict"),
        "bound of an unbuilt layer": (lambda: lv.layer_lipschitz_bound(lv.LipschitzDense(3)),
                                      ValueError, "is not built"),
        "finalize None": (lambda: lv.finalize_constraints(None),
                          TypeError, "model_or_layers must be a Keras model"),
        "zoo.load(None)": (lambda: zoo.load(None), TypeError, "name must be a zoo model name"),
        "legacy HDF5 save": (lambda: vae.save(str(tmp_path / "m.h5")),
                             ValueError, "legacy HDF5 format"),
        "legacy HDF5 through keras.saving": (
            lambda: keras.saving.save_model(vae, str(tmp_path / "k.h5")), ValueError,
            "keras.saving.save_model to a .h5 path: the legacy HDF5 format cannot hold a "
            "LipschitzVAE"),
        # a newcomer's run (2026-12-02): --verbose=7 was accepted
        "a verbose of 7": (lambda: train.TrainConfig(verbose=7), ValueError,
                           r"verbose must be one of \(0, 1, 2\), got 7"),
        "a train_limit of 0": (lambda: train.TrainConfig(train_limit=0),
                               ValueError, "train_limit must be an integer >= 1"),
        "conv_relaxation of 2": (lambda: train.TrainConfig(conv_relaxation=2.0),
                                 ValueError, "conv_relaxation must be in"),
        "conv_relaxation on an MLP (TrainConfig)": (
            lambda: train.TrainConfig(conv_relaxation=1.5), ValueError,
            r"conv_relaxation=1.5 acts on the conv kernels' subspace clip only; this model has "
            r"architecture='mlp'"),
        "conv_relaxation on an MLP": (
            lambda: lv.LipschitzVAE(2, hidden_units=(8,), conv_relaxation=0.5), ValueError,
            "conv_relaxation=0.5 acts on the conv kernels' subspace clip only"),
        "conv_relaxation under spectral_norm": (
            lambda: lv.LipschitzVAE(2, architecture="conv", conv_constraint="spectral_norm",
                                    conv_relaxation=1.5), ValueError,
            "conv constraint 'spectral_norm': leave conv_relaxation at 1"),
        "from_target(posterior_std=-1)": (
            lambda: lv.LipschitzVAE.from_target(1.0, 8.0, posterior_std=-1), ValueError,
            "posterior_std must be a finite number > 0, got -1"),
        "from_target(image_shape=(28, 28, -1)), checked before it is used": (
            lambda: lv.LipschitzVAE.from_target(1.0, 8.0, image_shape=(28, 28, -1)),
            ValueError, "image_shape must be an integer >= 1, got -1"),
        "from_target(image_shape='abc')": (
            lambda: lv.LipschitzVAE.from_target(1.0, 8.0, image_shape="abc"), TypeError,
            "image_shape must be a sequence of integers >= 1"),
        "from_target(r below the reconstruction's rounding), naming r": (
            lambda: lv.LipschitzVAE.from_target(1.0, 1e-6), ValueError,
            r"r must be > 3.34e-06 \(the float32 rounding of the reconstruction\), got 1e-06"),
        "from_target(posterior_std=1e-46), 0 in float32": (
            lambda: lv.LipschitzVAE.from_target(1.0, 8.0, posterior_std=1e-46), ValueError,
            r"posterior_std must lie between 1.17549e-38 and 3.40282e\+38, the positive normal "
            r"float32 numbers \(the model computes in float32\), got 1e-46"),
        "std_cap=1e-40, subnormal in float32": (
            lambda: lv.LipschitzVAE(2, hidden_units=(8,), std_cap=1e-40), ValueError,
            "std_cap must lie between 1.17549e-38"),
        "posterior_std=1e39, inf in float32": (
            lambda: lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=1e39), ValueError,
            "posterior_std must lie between"),
        "gaussian_scale=1e39": (
            lambda: lv.LipschitzVAE(2, hidden_units=(8,), likelihood="gaussian",
                                    gaussian_scale=1e39), ValueError,
            "gaussian_scale must lie between"),
        "NaN latent codes": (lambda: vae.decode_mean(np.full((2, 2), np.nan, np.float32)),
                             ValueError, "z must be finite latent codes; got NaN or Inf"),
        "Inf latent codes": (lambda: vae.decode(np.full((2, 2), np.inf, np.float32)),
                             ValueError, "z must be finite latent codes"),
        "complex latent codes (the imaginary part was dropped)": (
            lambda: vae.decode_mean(np.full((2, 2), 50j)), TypeError,
            "z must hold real numbers \\(latent codes\\), got dtype complex128"),
        "bool latent codes": (lambda: vae.decode(np.ones((2, 2), bool)), TypeError,
                              "z must hold real numbers"),
        "a kernel control on the StandardVAE": (
            lambda: lv.StandardVAE(2, hidden_units=(8,), constraint="bjorck"), ValueError,
            "constraint='bjorck': a StandardVAE has plain Keras layers without a kernel control"),
        "no hidden layers": (lambda: train.TrainConfig(hidden_units=()),
                             ValueError, "hidden_units must hold at least 1"),
        # refused before the data are loaded (a newcomer's run: after 60000 images were read)
        "TrainConfig(p=0.3)": (lambda: train.TrainConfig(p=0.3), ValueError,
                               r"p must be a probability in \[1/2, 1\), got 0.3"),
        "TrainConfig(target_radius=0)": (lambda: train.TrainConfig(target_radius=0), ValueError,
                                         "target_radius must be a finite number > 0, got 0"),
        "TrainConfig(method='chi')": (lambda: train.TrainConfig(method="chi"), ValueError,
                                      "method must be one of"),
        "an unknown dataset (TrainConfig)": (
            lambda: train.TrainConfig(dataset="cifar10"), ValueError,
            r"dataset must be one of \('fashion_mnist', 'mnist'\), got 'cifar10'"),
        "an unknown data source (TrainConfig)": (
            lambda: train.TrainConfig(source="web"), ValueError, r"source must be one of"),
        "evaluate's p = 1, before any model is loaded": (
            lambda: evaluate.EvalConfig(models={"a": "/no/such.keras"}, p=1.0), ValueError,
            r"p must be a probability in \[1/2, 1\), got 1.0"),
        "evaluate's restarts = 0": (
            lambda: evaluate.EvalConfig(models={"a": "m.keras"}, restarts=0), ValueError,
            "restarts must be an integer >= 1"),
        "evaluate's attack norm 0": (
            lambda: evaluate.EvalConfig(models={"a": "m.keras"}, attack_norms=(1.0, 0.0)),
            ValueError, "attack_norms must be a finite number > 0"),
        "StandardVAE.from_target": (
            lambda: lv.StandardVAE.from_target(1.0, 8.0), TypeError,
            r"StandardVAE.from_target: a StandardVAE's plain layers take no Lipschitz budget"),
        "a conv image too small for the last convolution": (
            lambda: lv.LipschitzVAE(2, architecture="conv", image_shape=(4, 196, 1)), ValueError,
            r"image_shape height and width must be multiples of 4 and at least 6, got "
            r"\(4, 196, 1\)"),
        "a conv image the halvings do not divide": (
            lambda: lv.StandardVAE(2, architecture="conv", image_shape=(30, 30, 1)), ValueError,
            r"halves the image 2 times with 3 x 3 kernels: image_shape .* multiples of 4"),
        # a docstring review's findings (2026-12-02): each was accepted, or failed elsewhere
        "Inglot's tail bound at m = 1": (lambda: bounds.inglot_log_tail(0.5, 1), ValueError,
                                         "m must be an integer >= 2, got 1"),
        "chi2_radius with gamma = 1e-200": (
            lambda: bounds.chi2_radius(1.0, 0.0, 2.0, 0.0, 4.0, latent_dim=10, gamma=1e-200),
            ValueError, r"gamma must be >= 1e-60"),
        "best_radius with a fixed std and a cap": (
            lambda: bounds.best_radius(1.0, 0.0, 2.0, 0.0, 4.0, latent_dim=10, gamma=0.05,
                                       std_cap=0.1),
            ValueError, r"std_cap does not apply to a fixed encoder std \(gamma\)"),
        "best_radius with cap_only='yes'": (
            lambda: bounds.best_radius(1.0, 0.0, 2.0, 0.05, 4.0, latent_dim=10, std_cap=0.1,
                                       cap_only="yes"),
            TypeError, "cap_only must be a bool, got str"),
        "capped_markov_radius with cap_only=1": (
            lambda: bounds.capped_markov_radius(1.0, 0.0, 2.0, 0.05, 4.0, std_cap=0.1,
                                                cap_only=1),
            TypeError, "cap_only must be a bool, got int"),
        "budget_radius of a learned std without a cap": (
            lambda: design.budget_radius(1.0, 1.0, 2.0, r=8.0, p=0.5, latent_dim=10,
                                         method="markov"),
            ValueError, r"std_cap is required for a learned std \(gamma None\)"),
        "design_budget with a fixed std and encoder_std": (
            lambda: design.design_budget(1.0, 8.0, latent_dim=10, gamma=0.05, encoder_std=123.0),
            ValueError, "encoder_std=123.0 applies to a learned std; a fixed posterior std"),
        "design_budget with r_slack as a string": (
            lambda: design.design_budget(1.0, 8.0, latent_dim=10, r_slack="0.1"),
            TypeError, "r_slack must be a real number"),
        "expected_damage with x + delta above 1": (
            lambda: attacks.expected_damage(vae, IMAGES + 0.5, np.full_like(IMAGES, 0.6)),
            ValueError, r"x \+ delta must hold pixel values in \[0, 1\], got range"),
        "robust_counts with x + delta below 0": (
            lambda: attacks.robust_counts(vae, IMAGES, np.full_like(IMAGES, -0.1), 8.0, 4),
            ValueError, r"x \+ delta must hold pixel values in \[0, 1\]"),
        "random_perturbation of pixels outside [0, 1]": (
            lambda: attacks.random_perturbation(IMAGES + 2.0, 1.0), ValueError,
            r"x must hold pixel values in \[0, 1\], got range \[2, 2\]"),
        # a newcomer's run (2026-12-02): these named StdCap's max_norm
        "from_target(std_cap=-1)": (
            lambda: lv.LipschitzVAE.from_target(1.0, 8.0, posterior_std=None, std_cap=-1),
            ValueError, "std_cap must be a finite number > 0, got -1"),
        "from_target(std_cap='a')": (
            lambda: lv.LipschitzVAE.from_target(1.0, 8.0, posterior_std=None, std_cap="a"),
            TypeError, "std_cap must be a real number"),
        # an attacker's review (2026-12-02): this said "got range [1e-12, 1]"
        "a float64 pixel just above 1": (
            lambda: attacks.random_perturbation(
                np.concatenate([np.full((1, 28, 28, 1), 1 + 1e-12), np.full((1, 28, 28, 1),
                                                                        1e-12)]), 1.0),
            ValueError, r"got range \[1e-12, 1.000000000001\]"),
        "summarize of no values": (lambda: report.summarize([]), ValueError,
                                   "values must hold at least one number"),
        "a learning curve's best epoch 0": (
            lambda: report.learning_curves_figure({"a": ([1.0, 2.0], 0)}), ValueError,
            r"the best epoch of 'a' must be an int in \[1, 2\]"),
        "list_models(bundled_only='yes')": (lambda: zoo.list_models(bundled_only="yes"),
                                            TypeError, "bundled_only must be a bool"),
        # a newcomer's run: these said "got dtype object"
        "certified_radius(None)": (lambda: vae.certified_radius(None, 8.0), TypeError,
                                   "x must be an array of floating-point images .* got NoneType"),
        "certified_radius of a dict": (
            lambda: vae.certified_radius({"images": IMAGES}, 8.0), TypeError,
            "x must be an array of floating-point images .* got dict"),
        # an adversarial review (2026-12-03): ragged nesting gave NumPy's message, no name
        "certified_radius of ragged lists": (
            lambda: vae.certified_radius(RAGGED, 8.0), ValueError,
            "x is nested lists that are not one array"),
        "reconstruct of ragged lists": (lambda: vae.reconstruct(RAGGED), ValueError,
                                        "x is nested lists that are not one array"),
        "log_likelihood of ragged lists": (lambda: vae.log_likelihood(RAGGED), ValueError,
                                           "x is nested lists that are not one array"),
        "estimate_margin of ragged lists": (
            lambda: attacks.estimate_margin(vae, RAGGED, 8.0), ValueError,
            "x is nested lists that are not one array"),
        "fit on ragged lists": (lambda: vae.fit(RAGGED, verbose=0), ValueError,
                                "x is nested lists that are not one array"),
        "REST body of ragged lists": (lambda: export.rest_request(RAGGED), ValueError,
                                      "images is nested lists that are not one array"),
        "bound of a Keras conv built by hand": (
            lambda: lv.layer_lipschitz_bound(_built_by_hand(keras.layers.Conv2D(2, 3))),
            ValueError, r"only a call in a model fixes \(build\(\) does not"),
        "LipschitzDense(activation=...)": (
            lambda: lv.LipschitzDense(4, activation="relu"), TypeError,
            r"LipschitzDense takes no activation \(got activation='relu'\): add the "
            "activation as a layer of its own"),
        "LipschitzConv2D(activation=...)": (
            lambda: lv.LipschitzConv2D(4, 3, activation="relu"), TypeError,
            "LipschitzConv2D takes no activation"),
        "the VAE's output shape for flat images": (
            lambda: vae.compute_output_shape((None, 784)), ValueError,
            r"input_shape must be \(batch, 28, 28, 1\), got \(None, 784\)"),
        "ragged r": (lambda: vae.certified_radius(IMAGES, [[8.0], [8.0, 8.0]]), ValueError,
                     "r is nested lists that are not one array"),
        # each failed in os.makedirs after the work (NotADirectoryError, a traceback at the
        # command line), or wrote nothing and said "File exists"
        "a train output_dir under a file": (
            lambda: train.run(train.TrainConfig(output_dir=str(_a_file(tmp_path) / "run"),
                                                source="sample")), ValueError,
            r"output_dir=.*a_file/run is under .*a_file, which is a file, not a folder"),
        "an evaluation output_dir that is a file": (
            lambda: evaluate.run(evaluate.EvalConfig(models={"m": "m.keras"},
                                                     output_dir=str(_a_file(tmp_path)))),
            ValueError, r"output_dir=.*a_file is a file, not a folder"),
        "a checkpoint folder that is a file": (
            lambda: train.ResumableBackup(str(_a_file(tmp_path))), ValueError,
            r"backup_dir=.*a_file is a file, not a folder"),
        "a zoo build's run_root under a file": (
            lambda: zoo.build("fashion_mnist_mlp_r1", run_root=str(_a_file(tmp_path) / "runs")),
            ValueError, r"run_root=.*a_file/runs is under .*a_file, which is a file"),
        "an empty output_dir": (lambda: train.run(train.TrainConfig(output_dir="")), ValueError,
                                "output_dir must be a folder path, got an empty string"),
        "an export path under a file": (
            lambda: export.export_saved_model(vae, _a_file(tmp_path) / "m", version=1),
            ValueError, r"path=.*a_file/m is under .*a_file, which is a file"),
    }


def _a_file(folder):
    path = folder / "a_file"
    path.write_text("")
    return path


@pytest.mark.parametrize("case", list(_cases(None, None)))
def test_each_bad_argument_gets_a_typed_error_naming_it(vae, tmp_path, case):
    call, error, message = _cases(vae, tmp_path)[case]
    with pytest.raises(error, match=message):
        call()


def test_the_vae_states_its_output_shape(vae):
    """Keras' compute_output_shape raised NotImplementedError (a newcomer's review)."""
    assert vae.compute_output_shape((None, 28, 28, 1)) == (None, 28, 28, 1)
    assert vae.compute_output_shape((5, 28, 28, 1)) == vae.predict(IMAGES[:1].repeat(5, 0),
                                                                   verbose=0).shape


def test_the_legacy_hdf5_checkpoint_is_refused_before_training(vae, tmp_path):
    vae.compile("adam")
    with pytest.raises(ValueError, match="legacy HDF5"):
        vae.fit(IMAGES, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(
            str(tmp_path / "c.h5"))])
    assert not (tmp_path / "c.h5").exists()


def test_an_empty_margin_estimate_is_empty_and_quiet(vae, recwarn):
    estimate = attacks.estimate_margin(vae, IMAGES[:0], 8.0)
    assert estimate.margin.shape == estimate.upper.shape == (0,)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_zoo_command_refuses_a_flag_it_does_not_read(monkeypatch):
    monkeypatch.setattr(flags.FLAGS["output"], "present", 1)
    with pytest.raises(SystemExit, match="list does not take --output"):
        zoo.main(["zoo", "list"])


def test_a_zoo_flag_is_named_as_the_user_wrote_it():
    """`zoo build NAME --override_epochs=0` said "epochs must be an integer >= 1"."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "build", "fashion_mnist_mlp_r1",
                           "--override_epochs=0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("python -m lipvae_tf.zoo: error: --override_epochs must "
                                        "be an integer >= 1, got 0"), done.stderr[-2000:]


@pytest.mark.parametrize("error, expected", [
    (KeyError("unknown model 'x'"), "prog: error: unknown model 'x'"),
    (NotADirectoryError(20, "Not a directory", "a/b"), "prog: error: [Errno 20] Not a directory: "
                                                      "'a/b'"),
    (ValueError("bad"), "prog: error: bad"),
])
def test_a_users_error_at_the_command_line_is_one_line(error, expected):
    """Each command had its own try/except: a KeyError printed with repr quotes in train and
    evaluate, and a folder where a file was (NotADirectoryError) ended in a traceback."""
    with pytest.raises(SystemExit) as exited, report.one_line_errors("prog"):
        raise error
    assert str(exited.value) == expected


def test_a_fault_of_the_package_keeps_its_traceback():
    with pytest.raises(RuntimeError, match="a fault"), report.one_line_errors("prog"):
        raise RuntimeError("a fault")


def test_a_reader_that_closes_the_pipe_ends_a_command_quietly():
    """`python -m lipvae_tf.zoo card NAME | head` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    command = subprocess.Popen([sys.executable, "-m", "lipvae_tf.zoo", "table"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    command.stdout.close()  # the reader is gone before the first line is written
    _, errors = command.communicate(timeout=300)
    assert command.returncode == 1
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors, errors.decode()[-2000:]


def test_importing_the_commands_does_not_depend_on_the_current_folder(tmp_path):
    """The commands' modules build their default configs at import: a check of the default
    output folder there made `import lipvae_tf.train` fail where `runs` is a file (or the
    current folder is not writable)."""
    import subprocess
    import sys

    (tmp_path / "runs").write_text("")
    done = subprocess.run([sys.executable, "-c", "import lipvae_tf.train, lipvae_tf.evaluate, "
                           "lipvae_tf.zoo, lipvae_tf.__main__"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_std_statistics_bounds_refuses_a_subset_of_an_eager_chains_stds():
    """Layers called eagerly record no output width: sigma[:, :1] of a 3-wide chain was taken,
    s undercounted (0.17 for a true 0.5) and every certificate inflated. The width now comes from
    the last Dense's kernel carried through the layers after it."""
    dense, act, cap = keras.layers.Dense(3), keras.layers.Activation("softplus"), ll.StdCap(0.5)
    sigma = cap(act(dense(tf.random.uniform((4, 5), seed=1)))).numpy()
    with pytest.raises(ValueError, match="sigma has 1 columns.*outputs 3"):
        lm.std_statistics_bounds([dense, act, cap], sigma[:, :1])
    s, _ = lm.std_statistics_bounds([dense, act, cap], sigma)
    assert np.all(s >= np.linalg.norm(sigma.astype(np.float64), axis=1))


def test_zero_kernels_name_the_network_not_an_argument():
    """A zero encoder-mean kernel gave "m_mu must be > 0", an argument the caller never passed;
    the error now names the network and its constant."""
    vae = lm.LipschitzVAE(latent_dim=1, hidden_units=(), image_shape=(2, 2, 1), std_cap=None,
                          posterior_std=0.5)
    x = np.full((2, 2, 2, 1), 0.5, np.float32)
    vae(x)
    for layer in lc.iter_layers(vae.encoder_mean_net):
        if getattr(layer, "kernel", None) is not None:
            layer.kernel.assign(tf.zeros_like(layer.kernel))
    with pytest.raises(ValueError, match="encoder mean network's verified Lipschitz constant "
                                         "M_mu = 0.0 is below 1e-60"):
        vae.certified_radius(x, 0.5, 0.9)


def test_constraint_helpers_validate_when_called():
    """Each raised late, unnamed or not at all: Björck's start_inside on a conv kernel
    (AttributeError), check_relaxation_applies at relaxation 1 (nothing), iter_layers(None)
    (only when iterated), a grid the stride does not divide (NumPy's reshape error, or a
    power iteration on another operator)."""
    conv_kernel = np.ones((3, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="BjorckOrthonormal expects a kernel of rank 2"):
        lc.start_inside(conv_kernel, lc.BjorckOrthonormal())
    with pytest.raises(ValueError, match="architecture must be one of"):
        lc.check_relaxation_applies(1.0, "cnn", "subspace_clip")
    with pytest.raises(ValueError, match="conv_constraint must be one of"):
        lc.check_relaxation_applies(1.0, "mlp", "zz")
    with pytest.raises(TypeError, match="model_or_layers must be"):
        lc.iter_layers(None)
    assert isinstance(lc.iter_layers(keras.layers.Dense(2)), list)
    with pytest.raises(ValueError, match="grid_hw must be divisible by the strides"):
        lc.clip_conv_spectrum(tf.constant(conv_kernel), 1.0, (9, 9), (2, 2))
    with pytest.raises(ValueError, match="grid_hw must be divisible by the strides"):
        lc.power_iteration(tf.constant(conv_kernel), tf.ones((9, 9, 2)), grid_hw=(9, 9),
                           strides=(2, 2))
    with pytest.raises(ValueError, match="grid_hw must be divisible by the strides"):
        conv_spectrum.operator_norm(tf.constant(conv_kernel), (9, 8), (2, 2))
    with pytest.raises(ValueError, match="padding must be one of"):
        conv_spectrum.circular_grid((8, 8), (3, 3), (1, 1), None)
    assert conv_spectrum.circular_grid(8, 3, 2, "same") == (10, 10)


def test_sort_neighbour_pairs_refuses_a_scalar_with_a_value_error():
    with pytest.raises(ValueError, match="even, known last dimension"):
        ll.sort_neighbour_pairs(tf.constant(1.0))


def test_copy_model_base_refuses_a_source_that_is_not_a_model_base(tmp_path):
    """Any folder was copied into place as if it were a TF Serving model base."""
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "todo.txt").write_text("x")
    with pytest.raises(ValueError, match="must be a TF Serving model base folder.*todo.txt"):
        export.copy_model_base(unrelated, tmp_path / "served")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="it is empty"):
        export.copy_model_base(tmp_path / "empty", tmp_path / "served")
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        export.copy_model_base(tmp_path / "missing", tmp_path / "served")
    assert not (tmp_path / "served").exists()


def test_a_later_batchs_bad_pixels_get_the_eager_checks_messages():
    """A newcomer (2026-12-03): a NaN in a later batch was reported as "must hold finite pixel
    values in [0, 1] (divide 0-255 pixels by 255); got min nan"; the graph's message now says
    NaN as the eager check does, and gives the 0-255 hint only where it applies."""
    vae = lm.LipschitzVAE(latent_dim=2, hidden_units=(8,), image_shape=(4, 4, 1),
                          posterior_std=0.5)
    vae.compile(keras.optimizers.Adam(1e-3))
    x = np.full((8, 4, 4, 1), 0.5, np.float32)
    for value, message in ((np.nan, r"^x contains NaN or Inf values \(checked in the graph"),
                           (300.0, r"^x must hold pixel values in \[0, 1\]; got min 0.5 and "
                                   r"max 300 \(checked in the graph"),
                           (200.0, r"max 200 \(divide 0-255 pixels by 255\)")):
        bad = x.copy()
        bad[5, 1, 1, 0] = value
        with pytest.raises(ValueError, match=message):
            vae.fit(tf.data.Dataset.from_tensor_slices(bad).batch(4), verbose=0)


def test_from_target_refuses_unknown_keywords_first_with_a_type_error():
    """A newcomer (2026-12-03): from_target(..., foo=1) designed the budget, then Keras raised
    "Unrecognized keyword arguments" (a ValueError) from the constructor."""
    with pytest.raises(TypeError, match="from_target got unexpected keyword arguments foo"):
        lm.LipschitzVAE.from_target(1.0, 8.0, foo=1)
    vae = lm.LipschitzVAE.from_target(1.0, 8.0, latent_dim=2, hidden_units=(8,),
                                      image_shape=(4, 4, 1), name="named")
    assert vae.name == "named"


def test_attack_radius_errors_echo_the_value():
    from lipvae_tf import attacks
    vae = lm.LipschitzVAE(latent_dim=2, hidden_units=(8,), image_shape=(4, 4, 1),
                          posterior_std=0.5)
    x = np.full((2, 4, 4, 1), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"radius must be finite and >= 0, got -1.0"):
        attacks.maximum_damage_attack(vae, x, radius=-1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_units=(15,)), r"hidden_units must be multiples of 2 .*GroupSort.*got \(15,\)"),
    (dict(architecture="conv", conv_filters=(3, 6)), r"conv_filters must be multiples of 2"),
    (dict(posterior_std=None, std_cap=1e-20), r"^std_cap=1e-20 is too small for float32"),
])
def test_the_model_names_the_argument_behind_a_layer_error(kwargs, message):
    """An odd width failed inside GroupSort ("needs a last dimension divisible by 2") and a
    cap whose square underflows named StdCap's max_norm: neither named what the user wrote."""
    for build in (lambda: lm.LipschitzVAE(2, **kwargs),
                  lambda: lm.LipschitzVAE.from_target(0.1, 8.0, latent_dim=2, **kwargs)):
        with pytest.raises(ValueError, match=message):
            build()
    if "std_cap" not in kwargs:  # ReLU takes any width
        lm.StandardVAE(2, **kwargs)


@pytest.mark.parametrize("kwargs, named", [
    (dict(std_cap=1e-30), "std_cap=1e-30"), (dict(std_cap=0.2), "std_cap=0.2"),
    (dict(encoder_std=3.0), "encoder_std=3.0"),
    (dict(std_cap=0.2, encoder_std=3.0), "std_cap=0.2 and encoder_std=3.0: apply to"),
])
def test_a_fixed_std_refuses_a_cap_or_std_constant_it_would_drop(kwargs, named):
    """A review (2026-12-04): the constructor dropped std_cap=1e-30 (or any cap, any encoder_std)
    silently with a fixed posterior std, which from_target and reconfigured refuse; the defaults
    (written by get_config for a fixed std) still load."""
    with pytest.raises(ValueError, match=rf"^{re.escape(named)}.*posterior_std=0.05 fixes"):
        lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=0.05, **kwargs)
    vae = lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=0.05, std_cap=0.1, encoder_std=1.0)
    assert vae.std_cap is None and vae.encoder_std_budget == 0.0
    assert type(vae).from_config(vae.get_config()).posterior_std == vae.posterior_std
    with pytest.raises(ValueError, match=r"^std_cap applies to a learned posterior std, and"):
        vae.reconfigured(std_cap=0.2)
    # the default as float32 is the default; an array is named; a learned std's own settings
    # do not make reconfigured name them when it switches to a fixed std (a review)
    lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=0.05, std_cap=np.float32(0.1))
    with pytest.raises(TypeError, match="encoder_std"):
        lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=0.05, encoder_std=np.ones(2))
    learned = lv.LipschitzVAE(2, hidden_units=(8,), posterior_std=None, encoder_std=2.0)
    with pytest.raises(ValueError, match="changes the shapes or number of the weights"):
        learned.reconfigured(posterior_std=0.05)
