"""SavedModel export: the signatures reproduce the Keras model in a fresh process that cannot import
lipvae_tf, saved_model_cli lists them, a TF Serving REST body round-trips, and the in-graph
certificates (graph_bounds) equal the NumPy ones (bounds)."""
import json
import math
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import bounds, data, export, graph_bounds
from lipvae_tf import model as model_lib
from lipvae_tf.model import LipschitzVAE

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "serving_client.py")
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
RADIUS_RTOL = 1e-6  # signature vs model.certified_radius (measured: equal to the last bit)
GRAPH_RTOL = 1e-9  # graph_bounds vs bounds (measured: <= 1.2e-13, 2026-12-03)
N, N_REST = 16, 8
R_ROWS = np.linspace(4.0, 12.0, N)
P_ROWS = np.tile([0.5, 0.6, 0.75, 0.9], N // 4)
# name: (LipschitzVAE.from_target kwargs, certify method, TF Serving version)
MODELS = {
    "mlp": (dict(latent_dim=4, hidden_units=(32,), posterior_std=None), "best", 1),
    "conv": (dict(latent_dim=4, architecture="conv", conv_filters=(4, 8), posterior_std=None),
             "chi2", None),
    "fixed": (dict(latent_dim=4, hidden_units=(32,), posterior_std=0.05, method="ncx2"), "best",
              None),
    "default": (dict(latent_dim=4, hidden_units=(32,)), "best", None),  # a fixed std of 0.05
}


@pytest.fixture(scope="module")
def images():
    train, _ = data.load_sample("train")
    test, _ = data.load_sample("test")
    return train[:256], test[:N]


@pytest.fixture(scope="module")
def exported(images, tmp_path_factory):
    """Each model trained a few steps, exported, and its Keras reference outputs."""
    train, test = images
    base = tmp_path_factory.mktemp("export")
    result = {}
    for name, (kwargs, method, version) in MODELS.items():
        model = LipschitzVAE.from_target(1.0, 8.0, **kwargs)
        model.compile(keras.optimizers.Adam(1e-2))
        model.fit(train, epochs=1, batch_size=64, verbose=0)
        directory = export.export_saved_model(model, base / name, method=method, version=version)
        mu, sigma = model.posterior_params(test)
        result[name] = dict(
            model=model, dir=directory, base=str(base / name), method=method,
            reconstruction=model.predict(test, verbose=0), mu=mu.numpy(), sigma=sigma.numpy(),
            radius=model.certified_radius(test, R_ROWS, P_ROWS, method),
            rest_radius=model.certified_radius(test[:N_REST], R_ROWS[:N_REST], P_ROWS[:N_REST],
                                               method),
        )
    return result


@pytest.fixture(scope="module")
def served(exported, images, tmp_path_factory):
    """One fresh Python process (tests/serving_client.py, lipvae_tf import refused) calls every
    signature of every export, directly and through TF Serving REST bodies."""
    _, test = images
    jobs, index = [], {}
    for name, e in exported.items():
        def add(key, job):
            index[name, key] = len(jobs)
            jobs.append({"export_dir": e["dir"], **job})

        full = test.tolist()
        add("reconstruct", {"signature": "serving_default", "arrays": {"images": full}})
        add("encode", {"signature": "encode", "arrays": {"images": full}})
        add("certify", {"signature": "certify",
                        "arrays": {"images": full, "r": R_ROWS.tolist(), "p": P_ROWS.tolist()}})
        add("metadata", {"body": export.metadata_request()})
        for signature in ("serving_default", "encode"):
            add(f"rest_{signature}", {"body": export.rest_request(test[:N_REST], signature)})
        add("rest_certify", {"body": export.rest_request(
            test[:N_REST], "certify", r=R_ROWS[:N_REST], p=P_ROWS[:N_REST])})
    folder = tmp_path_factory.mktemp("client")
    jobs_path, results_path = folder / "jobs.json", folder / "results.json"
    jobs_path.write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, CLIENT, str(jobs_path), str(results_path)], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(results_path.read_text())
    return {key: results["replies"][i] for key, i in index.items()}, results


def _relative(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300), initial=0.0)


def test_the_fresh_process_never_imported_lipvae_tf(served):
    _, results = served
    assert results["lipvae_tf_modules"] == []


@pytest.mark.parametrize("name", list(MODELS))
def test_every_signature_equals_the_keras_model(exported, served, name):
    replies, _ = served
    e = exported[name]
    np.testing.assert_allclose(replies[name, "reconstruct"]["reconstruction"], e["reconstruction"],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(replies[name, "encode"]["latent_mean"], e["mu"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(replies[name, "encode"]["latent_std"], e["sigma"], rtol=0, atol=1e-6)
    radius = np.array(replies[name, "certify"]["certified_radius"])
    assert np.all(e["radius"] > 0) and len(np.unique(e["radius"])) > N // 2  # a real test
    assert _relative(radius, e["radius"]) <= RADIUS_RTOL
    assert np.all(radius <= e["radius"] * (1 + RADIUS_RTOL))


@pytest.mark.parametrize("name", list(MODELS))
def test_a_rest_body_fed_as_tf_serving_does_gives_the_keras_outputs(exported, served, images,
                                                                     name):
    replies, _ = served
    e = exported[name]
    body = export.rest_request(images[1][:2], "certify", r=8.0, p=[0.5, 0.9])
    assert json.loads(json.dumps(body)) == body
    assert body["signature_name"] == "certify" and set(body["instances"][1]) == {"images", "r", "p"}
    assert body["instances"][1]["r"] == 8.0 and body["instances"][1]["p"] == 0.9
    np.testing.assert_array_equal(np.array(body["instances"][0]["images"], np.float32),
                                  images[1][0])  # float32 pixels survive JSON exactly
    reconstruction = replies[name, "rest_serving_default"]["predictions"]  # one output: bare rows
    np.testing.assert_allclose(reconstruction, e["reconstruction"][:N_REST], rtol=0, atol=1e-6)
    rows = replies[name, "rest_encode"]["predictions"]  # several outputs: one object per row
    np.testing.assert_allclose([row["latent_mean"] for row in rows], e["mu"][:N_REST], atol=1e-6)
    np.testing.assert_allclose([row["latent_std"] for row in rows], e["sigma"][:N_REST], atol=1e-6)
    radius = replies[name, "rest_certify"]["predictions"]
    assert _relative(radius, e["rest_radius"]) <= RADIUS_RTOL


def test_signature_names_dtypes_and_shapes(exported, served):
    _, results = served
    for e in exported.values():
        shape = [None, *e["model"].image_shape]
        signatures = results["signatures"][e["dir"]]
        assert set(signatures) == set(export.SIGNATURES)
        image = {"dtype": "float32", "shape": shape}
        assert signatures["serving_default"] == {"inputs": {"images": image},
                                                 "outputs": {"reconstruction": image}}
        latent = {"dtype": "float32", "shape": [None, e["model"].latent_dim]}
        assert signatures["encode"] == {"inputs": {"images": image},
                                        "outputs": {"latent_mean": latent, "latent_std": latent}}
        row = {"dtype": "float64", "shape": [None]}
        assert signatures["certify"] == {"inputs": {"images": image, "r": row, "p": row},
                                         "outputs": {"certified_radius": row}}


def test_metadata_holds_the_frozen_constants(exported, served):
    replies, _ = served
    for name, e in exported.items():
        model, constants = e["model"], e["model"].lipschitz_constants()
        (row,) = replies[name, "metadata"]["predictions"]
        assert row["encoder_mean_lipschitz"] == constants["encoder_mean"]
        assert row["encoder_std_lipschitz"] == constants["encoder_std"]
        assert row["decoder_lipschitz"] == constants["decoder"]
        assert row["latent_dim"] == model.latent_dim and row["method"] == e["method"]
        assert row["image_shape"] == list(model.image_shape)
        gamma = row["posterior_std"]
        assert (math.isnan(gamma) if model.posterior_std is None else gamma == model.posterior_std)
        applied = row["posterior_std_applied"]  # float32(0.05) > 0.05: the certificate's gamma
        assert (math.isnan(applied) if model.posterior_std is None
                else applied == float(np.float32(model.posterior_std)) > model.posterior_std)
        card = export.read_metadata(e["dir"])
        assert card["lipschitz_constants"] == constants and card["method"] == e["method"]
        assert card["latent_dim"] == model.latent_dim and row["lipvae_tf_version"] == \
            card["lipvae_tf_version"]
        assert card["design"] == model.design and card["design_met"] is True
        # the Serving client sees it too (a newcomer's run: only assets.extra had it)
        assert row["design_met"] == ("true" if model.design else "none")
        designed = (model.design or {}).get("target_radius")
        assert (row["design_target_radius"] == designed if designed
                else math.isnan(row["design_target_radius"]))


def test_metadata_says_when_the_model_is_outside_its_design(exported, tmp_path):
    """A model whose weights no longer fit its design record (here a decoder kernel scaled x4,
    exported without finalize) still certifies what its weights give, and its metadata says
    that the design's claim does not hold (design_met false), instead of repeating it."""
    model = exported["default"]["model"].reconfigured(seed=7)  # a copy; keeps the design
    kernel = [layer for layer in model.decoder_net.layers if hasattr(layer, "kernel")][-1].kernel
    kernel.assign(kernel * 4.0)
    directory = export.export_saved_model(model, tmp_path / "outside", finalize=False)
    card = export.read_metadata(directory)
    assert card["design"]["target_radius"] == 1.0 and card["design_met"] is False
    assert card["lipschitz_constants"]["decoder"] > card["design"]["decoder"]


def test_a_design_record_of_another_latent_dim_is_not_met(exported):
    """A review: a model of latent_dim 64 built with the design record of latent_dim 4 (its
    constants inside the record's) certified 0 where the record claims 0.5, and its metadata
    said design_met true: the radius depends on m through the chi-square quantiles."""
    model = exported["default"]["model"]
    record = model.design
    other = LipschitzVAE(64, encoder_mean=record["encoder_mean"], decoder=record["decoder"],
                            posterior_std=record["gamma"], hidden_units=(16,),
                            image_shape=model.image_shape, design=record)
    constants = other.lipschitz_constants()
    assert constants["encoder_mean"] <= record["encoder_mean"]
    assert constants["decoder"] <= record["decoder"]
    assert export._design_met(model, model.lipschitz_constants()) is True
    assert export._design_met(other, constants) is False


def test_a_design_record_of_another_image_size_is_not_met():
    """An adversarial review (2026-12-04): the record of a 28 x 28 model on a 64 x 64 x 3 one
    (constants, std and latent_dim all the record's) was "met" while every input certified 1 %
    below the target: from_target takes the reconstruction's rounding slack, which grows with
    the number of pixels, off r."""
    designed = LipschitzVAE.from_target(1e-4, 1e-3, latent_dim=2, posterior_std=1e-5,
                                        hidden_units=(8,))
    record = designed.design
    larger = LipschitzVAE(2, encoder_mean=record["encoder_mean"], decoder=record["decoder"],
                          posterior_std=1e-5, encoder_std=0.0, hidden_units=(8,),
                          image_shape=(64, 64, 3), design=record)
    for model in (designed, larger):
        model.finalize()
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    assert larger.certified_radius(x, 1e-3, 0.5).min() < record["target_radius"]
    assert export._design_met(larger, larger.lipschitz_constants()) is False
    assert export._design_met(designed, designed.lipschitz_constants()) is True


def test_saved_model_cli_lists_the_signatures(exported):
    e = exported["mlp"]
    assert os.path.isfile(os.path.join(e["base"], "1", "saved_model.pb"))  # TF Serving layout
    assert os.listdir(e["base"]) == ["1"]  # no staging folder left behind
    shown = subprocess.run([SAVED_MODEL_CLI, "show", "--all", "--dir", e["dir"]],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    for signature, names in {"serving_default": ["images", "reconstruction"],
                             "encode": ["images", "latent_mean", "latent_std"],
                             "certify": ["images", "r", "p", "certified_radius"]}.items():
        block = text.split(f"signature_def['{signature}']:")[1].split("signature_def[")[0]
        assert "Method name is: tensorflow/serving/predict" in block
        for tensor in names:
            assert f"['{tensor}'] tensor_info" in block, (signature, tensor)
    assert "dtype: DT_DOUBLE" in text.split("signature_def['certify']:")[1]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_weight_is_stored_once_and_bit_exact(exported, name):
    """Keras' ExportArchive.track would store each weight twice (keras-team/keras#23553)."""
    e = exported[name]
    reader = tf.train.load_checkpoint(os.path.join(e["dir"], "variables", "variables"))
    stored = [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
              if key.endswith("VARIABLE_VALUE")]
    weights = [w.numpy() for w in e["model"].trainable_weights]
    assert sum(a.size for a in stored) == sum(w.size for w in weights)
    for w in weights:
        assert sum(a.shape == w.shape and np.array_equal(a, w) for a in stored) >= 1


def test_invalid_rows_get_nan_and_a_mismatched_batch_is_refused(exported, images):
    _, test = images
    e = exported["mlp"]
    certify = tf.saved_model.load(e["dir"]).signatures["certify"]
    # r just above the magnitude limit was served a radius (the slack taken off first), which
    # certified_radius refuses (an adversarial review, 2026-12-04)
    above_limit = np.nextafter(1e75, np.inf)
    r = np.array([8, 0, -1, np.inf, np.nan, 8, 8, 8, 8.0, above_limit])
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 1.0, np.nan, 0.5, 0.5])
    x = test[: len(r)].copy()
    x[8, 0, 0, 0] = np.nan
    radius = certify(images=tf.constant(x), r=tf.constant(r), p=tf.constant(p))[
        "certified_radius"].numpy()
    assert np.all(np.isnan(radius[1:])) and np.isfinite(radius[0])
    np.testing.assert_allclose(radius[0], e["model"].certified_radius(x[:1], 8.0, 0.5)[0],
                               rtol=RADIUS_RTOL)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one value per image"):
        certify(images=tf.constant(test[:3]), r=tf.constant(r[:2]), p=tf.constant(p[:2]))
    # a review (2026-12-03): the shapes were compared by broadcasting, so r and p of shape
    # (1, 1) for one image, (2, 2) for two, or scalars for three passed the check (and failed
    # deep in the graph, or were broadcast); TF Serving's columnar format sends such shapes
    for n, r_bad in ((1, [[8.0]]), (2, [[8.0, 8.0], [8.0, 8.0]]), (3, 8.0)):
        p_bad = np.full(np.shape(r_bad), 0.5)
        for r_in, p_in in ((r_bad, p_bad), (r_bad, np.full(n, 0.5)), (np.full(n, 8.0), p_bad)):
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=r"Shape of tensor [rp] \[[0-9,]*\] is not compatible with "
                                     r"expected shape \[\?\]"):
                certify(images=tf.constant(test[:n]), r=tf.constant(r_in, tf.float64),
                        p=tf.constant(p_in, tf.float64))


@pytest.mark.parametrize("name", ["mlp", "fixed"])
def test_an_r_above_the_diameter_is_certified_as_the_diameter(exported, images, name):
    """A review (2026-12-04): each row's certificate grows in cost with r (200 rows of distinct
    r near 4000 took 257 s and 7.4 GB); any r above sqrt(D) = 28 is met by every perturbation,
    so both the signature and certified_radius certify it as 28, and distinct large r cost what
    r = 28 costs."""
    _, test = images
    e = exported[name]
    certify = tf.saved_model.load(e["dir"]).signatures["certify"]
    r = np.array([28.0, 28.0 + 1e-9, 40.0, 4000.0, 4001.0, 1e75, 27.0, 8.0])
    x = np.repeat(test[:1], len(r), axis=0)
    p = np.full(len(r), 0.5)
    served = certify(images=tf.constant(x), r=tf.constant(r), p=tf.constant(p))[
        "certified_radius"].numpy()
    ours = e["model"].certified_radius(x, r, p)
    assert _relative(served, ours) <= RADIUS_RTOL and np.all(served <= ours * (1 + RADIUS_RTOL))
    np.testing.assert_array_equal(ours[:6], ours[0])  # every r >= 28 as 28
    assert ours[7] < ours[6] < ours[0]  # below the diameter the radius still grows with r


@pytest.mark.parametrize("name", ["mlp", "conv", "default"])
def test_certify_refuses_weights_edited_after_export(exported, images, tmp_path, name):
    """The frozen constants hold for the exported weights only. A SavedModel whose kernels were
    scaled after export (loaded, edited, saved again) kept certifying with them: 1.00002 for
    weights whose encoder mean moved 45x further than M_mu allows (a review, 2026-12-01)."""
    _, test = images
    e = exported[name]
    loaded = tf.saved_model.load(e["dir"])
    rows = (tf.constant(R_ROWS[:4]), tf.constant(P_ROWS[:4]))
    before = loaded.signatures["certify"](images=tf.constant(test[:4]), r=rows[0], p=rows[1])
    np.testing.assert_allclose(before["certified_radius"].numpy(), e["radius"][:4],
                               rtol=RADIUS_RTOL)
    kernels = [v for v in loaded.signatures["certify"].variables if "kernel" in v.name]
    assert kernels
    kernels[-1].assign(kernels[-1] * 4.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="weights differ from those"):
        loaded.signatures["certify"](images=tf.constant(test[:4]), r=rows[0], p=rows[1])
    edited = str(tmp_path / "edited")  # the edit saved as a new SavedModel is refused too
    tf.saved_model.save(loaded, edited, signatures=dict(loaded.signatures))
    reloaded = tf.saved_model.load(edited)
    with pytest.raises(tf.errors.InvalidArgumentError, match="weights differ from those"):
        reloaded.signatures["certify"](images=tf.constant(test[:4]), r=rows[0], p=rows[1])
    # undone (x4 then /4 is exact), the weights are the exported ones again and certify answers
    captured = reloaded.signatures["certify"].variables
    edited_kernel = next(v for v in captured if v.name == kernels[-1].name)
    edited_kernel.assign(edited_kernel / 4.0)
    again = reloaded.signatures["certify"](images=tf.constant(test[:4]), r=rows[0], p=rows[1])
    np.testing.assert_array_equal(again["certified_radius"].numpy(),
                                  before["certified_radius"].numpy())
    # a one-ulp change to one bias is caught as well
    bias = next(v for v in captured if "bias" in v.name)
    bias.assign(np.nextafter(bias.numpy(), np.float32(np.inf)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="weights differ from those"):
        reloaded.signatures["certify"](images=tf.constant(test[:4]), r=rows[0], p=rows[1])


@pytest.mark.parametrize("shape", [(2, 32, 32, 1), (2, 28, 28, 3), (2, 784, 1, 1)])
def test_every_signature_refuses_images_of_another_shape(exported, shape):
    """A loaded signature does not enforce its spec's shape, and a fixed std's certificate never
    reads the pixels: a batch of another shape got a finite radius (a review, 2026-12-01)."""
    loaded = tf.saved_model.load(exported["default"]["dir"])
    images = tf.zeros(shape, tf.float32)
    rows = tf.constant([8.0, 8.0], tf.float64), tf.constant([0.5, 0.5], tf.float64)
    calls = {"certify": lambda: loaded.signatures["certify"](images=images, r=rows[0], p=rows[1]),
             "serving_default": lambda: loaded.signatures["serving_default"](images=images),
             "encode": lambda: loaded.signatures["encode"](images=images)}
    for call in calls.values():
        with pytest.raises(tf.errors.InvalidArgumentError):
            call()


def test_export_refuses_bad_arguments_and_overwrites_only_when_asked(exported, images,
                                                                     tmp_path):
    model = exported["fixed"]["model"]
    with pytest.raises(TypeError, match="LipschitzVAE"):
        export.export_saved_model(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "a")
    with pytest.raises(ValueError, match="method"):
        export.export_saved_model(model, tmp_path / "a", method="gauss")
    with pytest.raises(ValueError, match="ncx2"):
        export.export_saved_model(exported["mlp"]["model"], tmp_path / "a", method="ncx2")
    with pytest.raises(ValueError, match="version"):
        export.export_saved_model(model, tmp_path / "a", version=-1)
    with pytest.raises(TypeError, match="version"):
        export.export_saved_model(model, tmp_path / "a", version="1")
    with pytest.raises(TypeError, match="path"):
        export.export_saved_model(model, 3)
    with pytest.raises(FileExistsError, match="overwrite"):
        export.export_saved_model(model, exported["mlp"]["base"], version=1)
    assert not os.path.exists(tmp_path / "a")

    target = tmp_path / "again"
    target.mkdir()
    (target / "old.txt").write_text("a project's file")
    # overwrite replaces an earlier export only (a review lost a project folder's files)
    with pytest.raises(FileExistsError, match="holds no saved_model.pb: overwrite=True replaces "
                                              "an earlier SavedModel only"):
        export.export_saved_model(model, target, overwrite=True)
    assert os.listdir(target) == ["old.txt"]
    (target / "saved_model.pb").write_bytes(b"an earlier export")
    directory = export.export_saved_model(model, target, method="paper", overwrite=True)
    assert sorted(os.listdir(directory)) == ["assets", "assets.extra", "fingerprint.pb",
                                             "saved_model.pb", "variables"]
    assert export.read_metadata(directory)["method"] == "paper"
    _, test = images
    radius = tf.saved_model.load(directory).signatures["certify"](
        images=tf.constant(test), r=tf.constant(R_ROWS), p=tf.constant(P_ROWS))
    expected = model.certified_radius(test, R_ROWS, P_ROWS, "paper")
    assert _relative(radius["certified_radius"].numpy(), expected) <= RADIUS_RTOL


def test_rest_request_refuses_bad_arguments(images):
    _, test = images
    with pytest.raises(ValueError, match="signature_name"):
        export.rest_request(test[:2], "predict")
    with pytest.raises(ValueError, match="needs r and p"):
        export.rest_request(test[:2], "certify", r=8.0)
    with pytest.raises(ValueError, match="belong to the 'certify'"):
        export.rest_request(test[:2], "encode", r=8.0)
    with pytest.raises(ValueError, match="one value per image"):
        export.rest_request(test[:2], "certify", r=[8.0, 8.0, 8.0], p=0.5)
    with pytest.raises(ValueError, match="finite"):
        export.rest_request(test[:2], "certify", r=8.0, p=np.nan)
    with pytest.raises(TypeError, match="floating"):
        export.rest_request((test[:2] * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="shape"):
        export.rest_request(test[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        export.rest_request(test[:2] * 2)
    # a review (2026-12-03): each was accepted, and the server refuses an empty 'instances'
    # list, and answers NaN for r at or below the reconstruction's rounding or above 1e75
    with pytest.raises(ValueError, match="at least one image"):
        export.rest_request(test[:0])
    slack = model_lib.reconstruction_rounding_slack(test.shape[1:])
    with pytest.raises(ValueError, match=r"r must be > 3\.34e-06 \(the float32 rounding"):
        export.rest_request(test[:2], "certify", r=[8.0, slack], p=0.5)
    with pytest.raises(ValueError, match="r must be <= 1e"):
        export.rest_request(test[:2], "certify", r=1e100, p=0.5)
    assert export.rest_request(test[:1], "certify", r=slack * 1.01, p=0.5)["instances"][0][
        "r"] == slack * 1.01


# the std: learned under a cap, learned without one (best adds the triangle forms), fixed
CASES = [(method, std) for method in bounds.METHODS for std in ("capped", "uncapped", "fixed")
         if (std == "fixed" or method != "ncx2")
         and not (std != "capped" and method in bounds.CAPPED_METHODS)]


def test_graph_bounds_equal_the_numpy_bounds_and_never_exceed_them():
    """In a tf.function, as served: graph optimisation (Grappler) may reorder a few float64
    operations, so closed forms can differ by a few ulps; bisections by their 1e-12 bracket."""
    rng = np.random.default_rng(5)
    n, certified = 128, []
    for trial in range(6):
        m_mu, m_sigma, m_g = np.exp(rng.uniform(-0.5, 2.0, 3))
        latent_dim = int(rng.choice([2, 3, 10, 64]))
        gamma = float(np.exp(rng.uniform(-2.5, -1)))
        s = np.exp(rng.uniform(-6, 0, n)) * rng.uniform(0.05, 1)
        s[:4] = 0.0  # no noise: u = inf in the chi-square certificate
        r, p = np.exp(rng.uniform(-1, 2.5, n)), rng.uniform(0.5, 0.999, n)
        p[4:8] = 0.5
        pick = rng.integers(0, 16, n)  # fixed std: 16 distinct (r, p) rows (ncx2 solves each once)
        rows = {"capped": (r, p), "uncapped": (r, p), "fixed": (r[pick], p[pick])}
        # s_max anywhere in [s / sqrt(m), s], where max_i sigma_i lies
        s_max = s * rng.uniform(1 / np.sqrt(latent_dim), 1, n)
        extra = {"capped": dict(std_cap=float(s.max()) * 1.5, s_max=s_max),  # capped forms join
                 "uncapped": dict(s_max=s_max), "fixed": dict(gamma=gamma)}

        @tf.function
        def all_methods(s, r, p, r_fixed, p_fixed):
            given = {"capped": (r, p), "uncapped": (r, p), "fixed": (r_fixed, p_fixed)}
            return {f"{method}/{std}": graph_bounds.radius(
                method, m_mu, m_sigma, m_g, s, *given[std], latent_dim=latent_dim, **extra[std])
                for method, std in CASES}

        graph = all_methods(s, r, p, *rows["fixed"])
        for method, std in CASES:
            numpy = bounds.radius(method, m_mu, m_sigma, m_g, s, *rows[std],
                                  latent_dim=latent_dim, **extra[std])
            ours = graph[f"{method}/{std}"].numpy()
            assert np.all((ours == 0) == (numpy == 0)), (method, std, trial)
            relative = (ours - numpy) / np.where(numpy == 0, 1.0, numpy)
            assert np.max(np.abs(relative)) <= GRAPH_RTOL, (method, std, trial)
            assert np.all(relative <= GRAPH_RTOL)  # never above the NumPy certificate
            certified.append(np.mean(numpy > 0))
    assert 0.3 < np.mean(certified) < 0.95  # the inputs cover both certified and not certified


def test_graph_bounds_give_nan_for_invalid_rows_and_leave_the_others():
    s = np.array([0.01, 0.01, 0.01, 0.01, np.nan, -1.0, 0.01, 0.02])
    r = np.array([8.0, 0.0, np.inf, 8.0, 8.0, 8.0, 8.0, 6.0])
    p = np.array([0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.3, 0.75])
    for method in ("paper", "markov", "chi2", "best"):
        graph = graph_bounds.radius(method, 2.0, 2.0, 2.0, s, r, p, latent_dim=10).numpy()
        valid = [0, 7]
        assert np.all(np.isnan(np.delete(graph, valid)))
        np.testing.assert_allclose(graph[valid], bounds.radius(
            method, 2.0, 2.0, 2.0, s[valid], r[valid], p[valid], latent_dim=10), rtol=GRAPH_RTOL)
    graph = graph_bounds.radius("ncx2", 2.0, 0.0, 2.0, 0.0, r, p, latent_dim=10, gamma=0.05)
    assert np.isnan(graph.numpy()[1]) and np.isfinite(graph.numpy()[0])


def test_graph_bounds_validate_the_frozen_constants():
    with pytest.raises(ValueError, match="method"):
        graph_bounds.radius("grid", 1.0, 1.0, 1.0, 0.1, 8.0, 0.5, latent_dim=10)
    with pytest.raises(ValueError, match="gamma"):
        graph_bounds.radius("ncx2", 1.0, 1.0, 1.0, 0.1, 8.0, 0.5, latent_dim=10)
    with pytest.raises(ValueError, match="m_g"):
        graph_bounds.radius("markov", 1.0, 1.0, -1.0, 0.1, 8.0, 0.5, latent_dim=10)
    with pytest.raises(ValueError, match="latent_dim"):
        graph_bounds.radius("chi2", 1.0, 1.0, 1.0, 0.1, 8.0, 0.5, latent_dim=1)


def test_read_metadata_names_what_the_folder_is(tmp_path):
    """A newcomer's run (2026-12-02): read_metadata of a `vae.export()` folder raised a raw
    FileNotFoundError for assets.extra/lipvae_tf_metadata.json."""
    with pytest.raises(FileNotFoundError, match="not an exported model folder"):
        export.read_metadata(tmp_path / "nothing")
    keras_export = tmp_path / "keras_export"
    keras_export.mkdir()
    (keras_export / "saved_model.pb").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="written by model.export"):
        export.read_metadata(keras_export)
    (keras_export / "assets.extra").mkdir()
    metadata = keras_export / export.METADATA_FILE
    for content, match in (("{", "is not valid JSON"), ("[1]", "holds a JSON list")):
        metadata.write_text(content)
        with pytest.raises(ValueError, match=match):
            export.read_metadata(keras_export)
    metadata.write_text('{"method": "best"}')
    assert export.read_metadata(keras_export) == {"method": "best"}
    # the base folder of a versioned export (a newcomer's run, 2026-12-03)
    base = tmp_path / "versioned"
    shutil.copytree(keras_export, base / "3")
    shutil.copytree(keras_export, base / "0012")  # named as its folder, not as int("0012")
    with pytest.raises(FileNotFoundError, match=r"base folder of a versioned export.*read "
                                                r".*versioned/0012 \(versions 3, 0012\)"):
        export.read_metadata(base)


def test_exporting_logs_no_deprecation_warning(tmp_path):
    """A newcomer's review: every export logged TF's 'LinearOperator.graph_parents ... is
    deprecated' (the prior, a TFP distribution, was an attribute that SavedModel tracking walks).
    In a fresh process: TF logs a deprecation once per process."""
    script = (
        "import sys, numpy as np, lipvae_tf as lv\n"
        "from lipvae_tf import export\n"
        "vae = lv.LipschitzVAE(latent_dim=2, hidden_units=(8,))\n"
        "vae.predict(np.zeros((1, 28, 28, 1), 'float32'), verbose=0)\n"
        "vae.export(sys.argv[1] + '/keras_export')\n"
        "export.export_saved_model(vae, sys.argv[1] + '/served')\n"
        "print('exported')\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert "exported" in done.stdout, done.stderr[-3000:]
    assert "deprecated" not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize("cls, kwargs", [
    (LipschitzVAE, dict(hidden_units=(16,))),
    (LipschitzVAE, dict(architecture="conv")),
    (LipschitzVAE, dict(hidden_units=(16,), posterior_std=None, std_cap=0.1)),
    (model_lib.StandardVAE, dict(hidden_units=(16,))),
])
def test_tf_saved_model_save_writes_a_serving_default(cls, kwargs, images, tmp_path):
    """A practitioner's review (2026-12-03): `tf.saved_model.save(vae, path)` wrote a SavedModel
    with no signature and nothing callable (the model is built at construction, and Keras takes
    the default signature from the first build call), where a Sequential gets serving_default."""
    _, test = images
    keras.utils.set_random_seed(0)
    vae = cls(4, **kwargs)
    tf.saved_model.save(vae, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    assert list(loaded.signatures) == ["serving_default"]
    (output,) = loaded.signatures["serving_default"](inputs=tf.constant(test[:3])).values()
    np.testing.assert_array_equal(output.numpy(), vae.predict(test[:3], verbose=0))
