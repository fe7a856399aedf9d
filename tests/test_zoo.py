"""The model zoo: sha256 verification, cards reproduced by the loaded models, SavedModels served
by a process that does not import lipvae_tf."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags
from damage import truncate_weights

from lipvae_tf import data, export, train, zoo

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "serving_client.py"
TINY = "fashion_mnist_mlp_r1"


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A one-model zoo built by `zoo.build` from a shrunken copy of a real config (sample data,
    one epoch), so that the build, verification and loading code runs in every test session."""
    root = tmp_path_factory.mktemp("zoo")
    source = zoo.model_dir(TINY)
    folder = root / source.parent.name / source.name
    folder.mkdir(parents=True)
    config = json.loads((source / "config.json").read_text())
    config["train"].update(source="sample", epochs=3, train_limit=640, test_limit=128,
                           ll_samples=2, verbose=0, validation_images=128, min_delta=1e9)
    config["evaluate"].update(num_inputs=4, samples=200, bisection_steps=2, restarts=1, steps=5,
                              ll_samples=2)
    (folder / "config.json").write_text(json.dumps(config))
    original = zoo.ZOO_DIR
    zoo.ZOO_DIR = root
    try:
        # the config says 3 epochs as well: the override only shows in the card's command
        card = zoo.build(TINY, epochs=3, run_root=str(tmp_path_factory.mktemp("runs")))
    finally:
        zoo.ZOO_DIR = original
    return root, card


@pytest.fixture
def zoo_copy(tiny_zoo, tmp_path, monkeypatch):
    """A private copy of the tiny zoo, the registry's folder during the test (it may damage it)."""
    root, _ = tiny_zoo
    copy = tmp_path / "zoo"
    shutil.copytree(root, copy)
    monkeypatch.setattr(zoo, "ZOO_DIR", copy)
    return copy


def _folder(root: Path) -> Path:
    return next(p for p in root.glob("*/*") if (p / "config.json").is_file())


def _flip_byte(path: Path, offset: int = 1000) -> None:
    """Tampers with a file: one byte in the middle inverted."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_build_writes_weights_saved_model_card_and_manifest(tiny_zoo):
    root, card = tiny_zoo
    folder = _folder(root)
    manifest = json.loads((folder / "manifest.json").read_text())["sha256"]
    assert {"model.keras", "card.json", "config.json",
            "saved_model/1/saved_model.pb"} <= set(manifest)
    # a newcomer's run (2026-12-02): the command left out the --override_epochs it was built with
    assert card["training_command"] == f"python -m lipvae_tf.zoo build {TINY} --override_epochs=3"
    assert card["data"]["train_images"] == 640 and len(card["data"]["test_sha256"]) == 64
    assert card["certified_radius"]["best"]["min"] >= 1.0  # designed for R* = 1
    # convergence: no epoch beats the first by min_delta, so the early stopping (patience of
    # the real config) ends the run before the cap of 3 epochs... or at it
    patience = card["train_config"]["early_stopping_patience"]
    assert card["epochs"] == min(3, 1 + patience) and card["epoch_cap"] == 3
    assert card["stopped_early"] is (1 + patience < 3) and card["best_epoch"] == 1
    assert card["validation"] == "128 held-out training images"
    assert len(card["curve"]["val_elbo"]) == len(card["curve"]["learning_rate"]) == card["epochs"]
    # both reconstructions certified and audited; the model's own mode meets the target
    assert card["reconstruction"] == "mean"
    by_mode = card["certified_radius_by_reconstruction"]
    assert set(by_mode) == set(card["audits_by_reconstruction"]) == {"mean", "parameter"}
    assert by_mode["mean"]["min"] >= 1.0 and by_mode["mean"] == card["certified_radius"]["best"]
    assert by_mode["parameter"]["median"] < by_mode["mean"]["median"]  # sigmoid 1/4 vs 1/12
    assert all(a["violations"] == 0 for a in card["audits_by_reconstruction"].values())
    assert card["median_l2_reconstruction_error"] > 0
    robustness = card["robustness_evaluation"]
    assert robustness["certificate_violations"] == 0
    assert robustness["certified_radius"]["best"]["min"] >= 1.0
    assert robustness["settings"]["confidence"] == 0.99
    assert (folder / "model.keras").stat().st_size < 6e6  # no optimizer state


def test_load_reproduces_the_card_and_exposes_the_saved_model(zoo_copy):
    card = zoo.model_card(TINY)
    images = train.load_images(zoo._train_config(zoo.model_config(TINY), "unused", None),
                               "test")[0]
    recomputed = zoo.certified_quantiles(TINY, images)
    for section in ("certified_radius", "certified_radius_by_reconstruction"):
        assert recomputed[section].keys() == card[section].keys()
        for method, summary in card[section].items():
            for key, value in summary.items():
                assert recomputed[section][method][key] == pytest.approx(value, rel=1e-9)
    signatures = zoo.load_saved_model(TINY).signatures
    assert {"serving_default", "encode", "certify"} <= set(signatures)
    # a newcomer's zoo.load(...).evaluate(x) failed: "You must call compile()"
    loaded = zoo.load(TINY)
    result = loaded.evaluate(images[:64], verbose=0, return_dict=True)
    assert np.isfinite(result["elbo"]) and loaded.optimizer.learning_rate.numpy() == (
        pytest.approx(zoo._train_config(zoo.model_config(TINY), "unused", None).learning_rate))


def test_a_loaded_zoo_model_saved_again_loads_without_an_optimizer_warning(zoo_copy, tmp_path):
    """A review (2026-12-04): zoo.load -> save -> keras.models.load_model warned "Skipping
    variable loading for optimizer 'adam', because it has 26 variables whereas the saved optimizer
    has 2 variables" (the compiled optimizer had not built its slots)."""
    import warnings

    import keras

    loaded = zoo.load(TINY)
    loaded.save(tmp_path / "again.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = keras.models.load_model(tmp_path / "again.keras")
    assert not [str(w.message) for w in caught if "optimizer" in str(w.message)]
    assert len(again.optimizer.variables) == len(loaded.optimizer.variables) > 2
    for mine, theirs in zip(loaded.weights, again.weights):
        assert np.array_equal(mine.numpy(), theirs.numpy())


def test_tampered_missing_or_unlisted_files_are_refused(zoo_copy):
    folder = _folder(zoo_copy)
    zoo.verify(TINY)
    _flip_byte(folder / "model.keras")
    with pytest.raises(zoo.ZooIntegrityError,
                       match=rf"model.keras does not match its sha256 .*restore your copy "
                             rf"of {re.escape(str(folder))} \(it is outside the repository's "
                             rf"zoo/\) or rebuild it with `python -m lipvae_tf.zoo build {TINY} "
                             rf"--overwrite`"):
        zoo.load(TINY)
    # git restores only the repository's own zoo (a newcomer's LIPVAE_ZOO_DIR copy was told to
    # run `git checkout` in a folder outside any repository)
    bundled = zoo.BUNDLED_ZOO_DIR / "fashion_mnist" / "mlp_r1"
    assert zoo._restore(bundled, "fashion_mnist_mlp_r1").startswith(
        f"restore the repository's copy (git checkout -- {bundled}) or rebuild it with")
    (folder / "model.keras").unlink()
    with pytest.raises(zoo.ZooIntegrityError, match="model.keras is missing"):
        zoo.load(TINY)
    # removed from the folder and the manifest alike: verify said "every file matches" and
    # load failed in Keras (an operator's review, 2026-12-04)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["sha256"]["model.keras"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(zoo.ZooIntegrityError,
                       match="manifest.json does not list model.keras, which every built"):
        zoo.verify(TINY)
    (folder / "saved_model" / "1" / "extra.bin").write_bytes(b"x")
    with pytest.raises(zoo.ZooIntegrityError, match="not in the manifest"):
        zoo.load_saved_model(TINY)


def test_corrupt_metadata_is_an_integrity_error_and_spares_the_other_models(zoo_copy):
    """Unreadable JSON was a raw JSONDecodeError / KeyError, and one corrupt config.json broke
    list_models and load for every model (a review, 2026-12-01)."""
    folder = _folder(zoo_copy)
    broken = folder.parent / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.warns(UserWarning, match="config.json"):
        assert zoo.list_models() == [TINY]
    zoo.load(TINY)  # the other model is unaffected
    with pytest.raises(zoo.ZooIntegrityError, match="unreadable"):
        zoo.model_config(f"{folder.parent.name}_broken")
    manifest = folder / "manifest.json"
    for text, match in (("{", "unreadable"), ("{}", "no 'sha256'"),
                        ('{"sha256": 3}', "not a table")):
        manifest.write_text(text)
        with pytest.raises(zoo.ZooIntegrityError, match=match):
            zoo.load(TINY)
    manifest.unlink()
    with pytest.raises(zoo.ZooIntegrityError, match="manifest.json is missing"):
        zoo.load(TINY)


def test_a_card_without_its_values_is_an_integrity_error_in_the_table(zoo_copy):
    """An operator's review (2026-12-04): a card.json edited together with its sha256 and
    lacking a value made `zoo table` print only the key's name (a bare KeyError)."""
    folder = _folder(zoo_copy)
    assert TINY in zoo.cards_table([TINY])
    for text, match in (('{"hello": 1}', "has no 'certified_radius'"),
                        ('{"certified_radius": 3}', "holds a value of the wrong kind")):
        (folder / "card.json").write_text(text)
        zoo.write_manifest(folder)
        with pytest.raises(zoo.ZooIntegrityError,
                           match=rf"card\.json: the card {match}.*rebuild it"):
            zoo.cards_table([TINY])


def _rewrite(folder: Path, file: str, change) -> None:
    """Edits a JSON file of the folder with `change(value)` (returning the new value) and
    rewrites the manifest: a tamper that passes `verify`."""
    value = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps(change(value)))
    zoo.write_manifest(folder)


@pytest.mark.parametrize("change, message", [
    (lambda c: c | {"kind": "lipshitz"}, r"kind must be one of .*'lipschitz', 'standard'"),
    (lambda c: c | {"train": []}, r"'train' must be a table of settings"),
    (lambda c: c | {"train": c["train"] | {"learning_rate": -5}}, "learning_rate"),
    (lambda c: c | {"train": c["train"] | {"epochz": 3}}, "epochz"),
    (lambda c: c | {"evaluate": c["evaluate"] | {"samples": 0}}, "samples"),
    (lambda c: c | {"evaluate": c["evaluate"] | {"models": {}}}, "cannot set 'models'"),
    (lambda c: {k: v for k, v in c.items() if k != "description"}, "no 'description'"),
    (lambda c: c | {"evalute": {}}, r"unknown keys \['evalute'\]"),
    (lambda c: c | {"train": c["train"] | {"dataset": "mnist"}}, "reads dataset 'mnist'"),
])
def test_a_config_that_breaks_its_rules_is_an_integrity_error(zoo_copy, change, message):
    """An operator's review (2026-12-04), each a config.json edited with its sha256: a typo of
    "kind" loaded a LipschitzVAE, "train": [] was a bare AttributeError, a negative learning
    rate was accepted, an unknown setting or a missing description failed late with the
    key's name only. Each is now a ZooIntegrityError naming the file, and `list` leaves the
    model out with that warning."""
    folder = _folder(zoo_copy)
    _rewrite(folder, "config.json", change)
    zoo.verify(TINY)  # the manifest agrees: the config's values are what is wrong
    pattern = rf"config\.json: .*{message}"
    with pytest.raises(zoo.ZooIntegrityError, match=pattern):
        zoo.load(TINY)
    with pytest.warns(UserWarning, match=pattern):
        assert zoo.list_models() == []
    with pytest.raises(SystemExit, match=r"^python -m lipvae_tf\.zoo: error: .*config\.json"):
        zoo.main(["zoo", "verify", TINY])


def test_a_config_name_that_is_no_str_or_a_config_that_is_a_folder_is_said(zoo_copy):
    """A name given as a list was "unhashable type: 'list'", and a config.json replaced by a
    folder dropped the model from `list` without a word (the docstrings promise a warning)."""
    folder = _folder(zoo_copy)
    by_path = f"{folder.parent.name}_{folder.name}"
    _rewrite(folder, "config.json", lambda c: c | {"name": [TINY]})
    with pytest.warns(UserWarning, match=rf"zoo model '{by_path}' left out: .*'name' must be a "
                                         "str"):
        assert zoo.list_models() == []
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    with pytest.warns(UserWarning, match=rf"'{by_path}' left out: .*config\.json: unreadable"):
        assert zoo.list_models() == []
    with pytest.raises(zoo.ZooIntegrityError, match="unreadable"):
        zoo.model_config(by_path)


@pytest.mark.parametrize("change, call, message", [
    (lambda c: c | {"curve": [1]}, lambda: zoo.validation_curves([TINY]), "wrong kind"),
    (lambda c: c | {"curve": {"val_elbo": ["x"]}}, lambda: zoo.validation_curves([TINY]),
     "wrong kind"),
    (lambda c: c | {"best_epoch": 99}, lambda: zoo.validation_curves([TINY]), "best_epoch"),
    (lambda c: {k: v for k, v in c.items() if k != "certificate"},
     lambda: zoo.certified_quantiles(TINY, np.zeros((2, 28, 28, 1), np.float32)),
     "has no 'certificate'"),
    (lambda c: c | {"certified_radius": {"nope": {}}},
     lambda: zoo.certified_quantiles(TINY, np.zeros((2, 28, 28, 1), np.float32)),
     "method must be one of"),
])
def test_a_card_of_the_wrong_shape_is_an_integrity_error(zoo_copy, change, call, message):
    """An operator's review (2026-12-04): "curve": [1] in a card edited with its sha256 was a
    bare AttributeError in `zoo curves`, a card without "certificate" "error: certificate" in
    `zoo verify`; now a ZooIntegrityError naming card.json."""
    _rewrite(_folder(zoo_copy), "card.json", change)
    with pytest.raises(zoo.ZooIntegrityError, match=rf"card\.json: the card .*{message}"):
        call()


def test_a_zoo_file_that_is_no_json_object_is_an_integrity_error(zoo_copy):
    """A card or manifest holding a JSON list (edited with its sha256) was returned as it was,
    and failed later where a value was read."""
    folder = _folder(zoo_copy)
    _rewrite(folder, "card.json", lambda card: [card])
    with pytest.raises(zoo.ZooIntegrityError, match=r"card\.json: not a table of values"):
        zoo.model_card(TINY)
    (folder / "manifest.json").write_text("[]")
    with pytest.raises(zoo.ZooIntegrityError, match=r"manifest\.json: not a table of values"):
        zoo.verify(TINY)


def test_a_truncated_model_file_with_its_manifest_is_an_integrity_error(zoo_copy):
    """Truncated together with its manifest entry, model.keras failed in Keras with "File not
    found" (an operator's review, 2026-12-04)."""
    folder = _folder(zoo_copy)
    whole = (folder / "model.keras").read_bytes()
    (folder / "model.keras").write_bytes(whole[: len(whole) // 2])
    zoo.write_manifest(folder)
    for call in (zoo.load, zoo.reexport):
        with pytest.raises(zoo.ZooIntegrityError, match=r"model\.keras is not a valid \.keras "
                                                        r"archive.*rebuild it"):
            call(TINY)
    # a valid zip whose weights are cut: h5py's OSError before
    (folder / "model.keras").write_bytes(whole)
    moved = folder / "intact.keras"
    (folder / "model.keras").rename(moved)
    truncate_weights(moved, folder / "model.keras")
    moved.unlink()
    zoo.write_manifest(folder)
    with pytest.raises(zoo.ZooIntegrityError, match=r"model\.keras cannot be read.*rebuild it"):
        zoo.load(TINY)


def test_two_folders_of_one_name_are_said_and_the_first_is_kept(zoo_copy):
    """An operator's review (2026-12-04): a second folder whose config.json named the same
    model silently replaced the first in `list` and `load`."""
    folder = _folder(zoo_copy)
    twin = folder.parent / "zz_twin"
    twin.mkdir()
    (twin / "config.json").write_bytes((folder / "config.json").read_bytes())
    with pytest.warns(UserWarning, match=rf"zoo model '{TINY}' is named in .*{folder.name} and "
                                         r"in .*zz_twin: the second is left out"):
        assert zoo.list_models() == [TINY]
    with pytest.warns(UserWarning, match="the second is left out"):
        assert zoo.model_dir(TINY) == folder


def test_unknown_and_unbundled_models_get_clear_errors():
    with pytest.raises(KeyError, match="no zoo model 'nope'"):
        zoo.load("nope")
    with pytest.raises(FileNotFoundError, match=r"weights not bundled.*zoo build mnist_mlp_r1` "
                                                 r"\(it reads the data with TFDS.*internet"):
        zoo.load("mnist_mlp_r1")
    assert "mnist_mlp_r1" in zoo.list_models("mnist")
    assert "mnist_mlp_r1" not in zoo.list_models(bundled_only=True)


# ----- the real, bundled zoo -----------------------------------------------------------------

FASHION = zoo.list_models("fashion_mnist")
BUNDLED = zoo.list_models("fashion_mnist", bundled_only=True)


def test_the_fashion_mnist_family_is_bundled():
    assert set(FASHION) == set(zoo.list_models("fashion_mnist", bundled_only=True))
    kinds = [zoo.model_config(n)["kind"] for n in FASHION]
    levels = {zoo.model_config(n)["train"]["target_radius"] for n in FASHION
              if zoo.model_config(n)["train"]["architecture"] == "mlp"} - {None}
    assert len(levels) >= 3 and "standard" in kinds
    assert any(zoo.model_config(n)["train"]["architecture"] == "conv" for n in FASHION)
    for name in FASHION:
        size = sum(f.stat().st_size for f in zoo.model_dir(name).rglob("*") if f.is_file())
        assert size <= 8e6, (name, size)


@pytest.mark.parametrize("name", FASHION)
def test_bundled_model_reproduces_its_card(name):
    if not data.DEBIAN_FASHION_MNIST_DIR.is_dir():
        pytest.skip("the cards are measured on dataset-fashion-mnist (installed by .ci/run)")
    card = zoo.model_card(name)
    images = train.load_images(zoo._train_config(zoo.model_config(name), "unused", None),
                               "test")[0]
    assert zoo._data_checksum(images) == card["data"]["test_sha256"]
    recomputed = zoo.certified_quantiles(name, images)
    for section in ("certified_radius", "certified_radius_by_reconstruction"):
        for method, summary in card[section].items():
            for key, value in summary.items():
                assert recomputed[section][method][key] == pytest.approx(value, rel=1e-6), (
                    section, method, key)
    # converged: the early stopping ended the run on a plateau of the validation ELBO
    assert card["stopped_early"] and card["epochs"] < card["epoch_cap"]
    assert len(card["curve"]["val_elbo"]) == card["epochs"]
    # the restored epoch: no later one beat it by min_delta nats on the curve early stopping
    # followed (the finalized model's, for cards trained since FinalizedValidation)
    followed = card["curve"].get("val_finalized_elbo") or card["curve"]["val_elbo"]
    assert len(followed) == card["epochs"]
    best = followed[card["best_epoch"] - 1]
    assert best >= max(followed) - card["train_config"]["min_delta"]
    assert card["best_epoch"] < card["epochs"]
    if card["kind"] == "lipschitz":
        target = card["design"]["target_radius"]
        assert card["certified_radius"][card["design"]["method"]]["min"] >= target
        # (best >= every method it takes the maximum of, the paper's recipe's "paper" too)
        assert card["certified_radius_by_reconstruction"][card["reconstruction"]]["min"] >= target
        evaluation = card["robustness_evaluation"]
        assert evaluation["certificate_violations"] == 0
        assert all(a["violations"] == 0 for a in card["audits_by_reconstruction"].values())
        assert (evaluation["estimated_margin"]["median"]
                >= card["certified_radius"]["best"]["median"])


def test_the_cards_table_shows_every_bundled_card_with_its_values():
    lines = zoo.cards_table().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {cells[0]: dict(zip(header, cells)) for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert set(rows) == set(zoo.list_models(bundled_only=True))
    for name, row in rows.items():
        assert len(row) == len(header)
        card = zoo.model_card(name)
        assert row["test log p(x)"] == f"{card['test']['log_likelihood_iwae']:.1f}"
        model = zoo.load(name)
        expected = (f"fixed {model.posterior_std:g}" if model.posterior_std is not None
                    else f"cap {model.std_cap:g}" if card["kind"] == "lipschitz" else "learned")
        assert row["posterior std"] == expected, name
        if card["kind"] == "lipschitz":
            cert = card["certified_radius"]["best"]
            assert row["cert. min / median"] == f"{cert['min']:.3f} / {cert['median']:.3f}"


def test_bundled_saved_models_serve_the_keras_outputs_without_lipvae_tf(tmp_path):
    test, _ = data.load_sample("test")
    x = test[:8]
    jobs, expected = [], {}
    for name in FASHION:
        folder = str(zoo.saved_model_path(name) / "1")
        model = zoo.load(name)
        expected[name] = (model.predict(x, verbose=0), model.certified_radius(x, 8.0, 0.5))
        jobs.append({"export_dir": folder, "signature": "serving_default",
                     "arrays": {"images": x.tolist()}})
        jobs.append({"export_dir": folder, "body": export.rest_request(x, "certify", r=8.0,
                                                                       p=0.5)})
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(CLIENT), "jobs.json", "results.json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["lipvae_tf_modules"] == []
    for i, name in enumerate(FASHION):
        reconstruction, radius = expected[name]
        np.testing.assert_allclose(results["replies"][2 * i]["reconstruction"], reconstruction,
                                   atol=1e-6)
        served = np.array(results["replies"][2 * i + 1]["predictions"], np.float64)
        np.testing.assert_allclose(served, radius, rtol=1e-6, atol=0)


def test_saved_model_cli_lists_the_zoo_signatures():
    cli = Path(sys.executable).parent / "saved_model_cli"
    folder = zoo.saved_model_path(BUNDLED[0]) / "1"
    shown = subprocess.run([str(cli), "show", "--all", "--dir", str(folder)], capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in ("serving_default", "encode", "certify", "metadata"):
        assert f"signature_def['{signature}']" in shown.stdout


def test_command_line_lists_and_exports(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    listed = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "list"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "mnist_mlp_r1" in listed.stdout and "[weights not bundled]" in listed.stdout
    table = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "table"], capture_output=True,
                           text=True, timeout=120, env=env)
    assert table.returncode == 0, table.stderr[-2000:]
    assert all(f"| {name} |" in table.stdout for name in BUNDLED)
    curves = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "curves",
                             f"--output={tmp_path / 'curves.png'}"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert curves.returncode == 0, curves.stderr[-2000:]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    target = tmp_path / "served"
    exported = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "export", BUNDLED[0],
                               f"--output={target}"], capture_output=True, text=True, timeout=120,
                              env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (target / "1" / "saved_model.pb").is_file()
    refused = subprocess.run([sys.executable, "-m", "lipvae_tf.zoo", "build"], capture_output=True,
                             text=True, timeout=120, env=env)
    assert refused.returncode != 0 and "build needs one model NAME" in refused.stderr


def test_build_refuses_to_replace_existing_weights(zoo_copy):
    before = (_folder(zoo_copy) / "model.keras").read_bytes()
    with pytest.raises(FileExistsError, match="already has weights.*overwrite"):
        zoo.build(TINY, epochs=1)
    assert (_folder(zoo_copy) / "model.keras").read_bytes() == before


def test_export_into_an_existing_folder_is_one_clear_error_unless_overwrite(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    target = tmp_path / "served"
    command = [sys.executable, "-m", "lipvae_tf.zoo", "export", BUNDLED[0], f"--output={target}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if "lipvae_tf.zoo: error" in line]
    assert len(errors) == 1 and "--overwrite" in errors[0], refused.stderr[-2000:]
    done = subprocess.run(command + ["--overwrite"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (target / "1" / "saved_model.pb").is_file()


def test_export_overwrite_replaces_saved_model_versions_only(tmp_path):
    """A review (2026-12-03): `zoo export --overwrite` removed whatever the folder held (a
    project folder's files, other versions' folders included) with shutil.rmtree, and copied
    in place, where a TF Serving instance could see half a version."""
    source = zoo.saved_model_path(BUNDLED[0])
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="holds src, not only SavedModel versions"
                           if overwrite else "already exists; pass overwrite=True"):
            export.copy_model_base(source, project, overwrite=overwrite)
    assert (project / "src" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]  # no staging left behind
    served = tmp_path / "served"
    assert export.copy_model_base(source, served) == str(served)
    shutil.copytree(served / "1", served / "2")  # a second version, as TF Serving lays them out
    export.copy_model_base(source, served, overwrite=True)
    assert sorted(p.name for p in served.iterdir()) == ["1"]
    assert ((served / "1" / "saved_model.pb").read_bytes()
            == (source / "1" / "saved_model.pb").read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "served"]


def test_a_build_interrupted_after_training_reuses_the_finished_training(zoo_copy, tmp_path):
    """The run folder's trained.json and model are reused by the next build of the same
    config: no second training, the same certificates."""
    runs = tmp_path / "runs"
    first = zoo.build(TINY, run_root=str(runs), overwrite=True)
    record = json.loads((runs / TINY / "trained.json").read_text())
    assert record["epochs_trained"] == first["epochs"]
    again = zoo.build(TINY, run_root=str(runs), overwrite=True)
    assert again["train_seconds"] == first["train_seconds"]  # the same record, not a new run
    assert again["certified_radius"] == first["certified_radius"]
    assert again["test"] == first["test"]


def test_a_zoo_output_where_a_file_is_is_refused_before_the_work(tmp_path, monkeypatch):
    """zoo export and curves into a path under a file ended in NotADirectoryError tracebacks,
    and export --overwrite onto a file in shutil.rmtree's."""
    (tmp_path / "a_file").write_text("")
    for argv, output, message in (
            (["zoo", "export", TINY], tmp_path / "a_file", "a_file is a file, not a folder"),
            (["zoo", "export", TINY], tmp_path / "a_file" / "m", "which is a file"),
            (["zoo", "curves"], tmp_path / "a_file" / "c.png", "a_file is a file, not a folder"),
            # an operator's review (2026-12-04): os.access says yes to root in /proc; the
            # copy then failed with an OSError naming no flag
            (["zoo", "export", TINY], "/proc/lipvae_nope", "cannot make a folder in /proc")):
        monkeypatch.setattr(flags.FLAGS["output"], "present", 1)
        monkeypatch.setattr(flags.FLAGS["output"], "value", str(output))
        monkeypatch.setattr(flags.FLAGS["overwrite"], "value", True)
        monkeypatch.setattr(flags.FLAGS["overwrite"], "present", argv[1] == "export")
        with pytest.raises(SystemExit) as exited:
            zoo.main(argv)
        assert str(exited.value).startswith("python -m lipvae_tf.zoo: error: output=")
        assert message in str(exited.value)
    assert (tmp_path / "a_file").read_text() == ""


def test_zoo_curves_refuses_an_output_that_is_not_a_png_file(tmp_path, monkeypatch):
    """An operator's review (2026-12-04): --output=<an existing folder> wrote <folder>.png
    beside it (matplotlib adds the suffix) and printed the folder as the file written."""
    for output, message in ((tmp_path, r"output must name a \.png file to write, got the "
                                       r"folder"),
                            (tmp_path / "curves", r"output must name a \.png file to write \(")):
        monkeypatch.setattr(flags.FLAGS["output"], "present", 1)
        monkeypatch.setattr(flags.FLAGS["output"], "value", str(output))
        with pytest.raises(SystemExit, match=message):
            zoo.main(["zoo", "curves"])
    assert not (tmp_path.parent / (tmp_path.name + ".png")).exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["zoo"], "no command"),
    (["zoo", "bogus"], "unknown command 'bogus'"),
    (["zoo", "card"], "card needs one model NAME"),
    (["zoo", "list", "extra"], "list takes no NAME"),
])
def test_a_bad_zoo_command_line_says_what_is_wrong(argv, message):
    """A newcomer's run: each printed the module's help and a bare usage line."""
    with pytest.raises(SystemExit) as exited:
        zoo.main(argv)
    assert str(exited.value).startswith("python -m lipvae_tf.zoo: error: ")
    assert message in str(exited.value)


def test_the_zoo_folder_is_read_when_used_and_a_missing_one_is_named(tmp_path, monkeypatch):
    """A newcomer's run (2026-12-02): LIPVAE_ZOO_DIR was read once at import, and a folder that
    does not exist gave an empty list and "known: none" without a word about the folder."""
    monkeypatch.setattr(zoo, "ZOO_DIR", None)
    monkeypatch.setenv("LIPVAE_ZOO_DIR", str(tmp_path))
    assert zoo.zoo_dir() == tmp_path and zoo.list_models() == []
    monkeypatch.setenv("LIPVAE_ZOO_DIR", str(tmp_path / "typo"))
    for call in (zoo.list_models, lambda: zoo.model_dir(TINY), lambda: zoo.load(TINY)):
        with pytest.raises(FileNotFoundError, match=r"zoo folder .*typo \(from LIPVAE_ZOO_DIR\) "
                                                    "does not exist"):
            call()
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("LIPVAE_ZOO_DIR", str(tmp_path / "a_file"))
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        zoo.zoo_dir()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LIPVAE_ZOO_DIR", "~")
    assert zoo.zoo_dir() == tmp_path
    monkeypatch.delenv("LIPVAE_ZOO_DIR")
    assert zoo.zoo_dir() == zoo.BUNDLED_ZOO_DIR


def test_the_verify_command_recomputes_the_constants_and_the_radii(zoo_copy, capsys):
    """`zoo verify` compared only the radii: a card whose constants were stale (a review found
    the bundled cards 1-2 ulps behind the measured ones) or wrong passed."""
    zoo._main(["zoo", "verify", TINY])
    out = capsys.readouterr().out
    assert "constant decoder" in out and "constant encoder_mean" in out and "MISMATCH" not in out
    folder = _folder(zoo_copy)
    card = json.loads((folder / "card.json").read_text())
    card["constants"]["decoder"] *= 1.001
    (folder / "card.json").write_text(json.dumps(card))
    zoo.write_manifest(folder)
    with pytest.raises(ValueError, match="1 constants or certified-radius summaries"):
        zoo._main(["zoo", "verify", TINY])
    assert "MISMATCH" in capsys.readouterr().out


def test_the_validation_curves_are_the_ones_early_stopping_followed():
    """Notebook 03 plotted `val_elbo` with the best epoch chosen on `val_finalized_elbo`: the
    conv model's circle sat 53 nats below that curve's peak. `validation_curves` gives the
    curve that was followed, on which the restored epoch is (within min_delta) the best."""
    curves = zoo.validation_curves(BUNDLED)
    assert len(curves) == len(BUNDLED)
    for name in BUNDLED:
        card = zoo.model_card(name)
        followed = "val_finalized_elbo" if card["curve"].get("val_finalized_elbo") else "val_elbo"
        label = f"{name} (finalized)" if followed == "val_finalized_elbo" else name
        values, best = curves[label]
        assert values == card["curve"][followed] and best == card["best_epoch"]
        assert values[best - 1] >= max(values) - 1.0, (name, values[best - 1], max(values))
    assert "fashion_mnist_conv_r1 (finalized)" in curves


def test_reexport_writes_the_saved_model_again_from_the_same_weights(zoo_copy, capsys):
    """The bundled SavedModels were re-exported by a script kept outside the repository
    (2026-12-03); `zoo reexport` is that step: same weights, same certify method, the
    constants measured again, a manifest that verifies."""
    folder = _folder(zoo_copy)
    keras_file = (folder / "model.keras").read_bytes()
    before = export.read_metadata(folder / "saved_model" / "1")
    images = data.load_sample("test")[0][:8]
    radius_before = zoo.load_saved_model(TINY).signatures["certify"](
        images=images, r=np.full(8, 8.0), p=np.full(8, 0.5))
    (folder / "saved_model" / "1" / "saved_model.pb").write_bytes(b"stale")  # an old graph
    zoo.write_manifest(folder)
    zoo._main(["zoo", "reexport", TINY])
    assert f"zoo reexport {TINY}" in capsys.readouterr().out
    assert (folder / "model.keras").read_bytes() == keras_file  # weights untouched
    zoo.verify(TINY)  # the manifest lists the new files
    after = export.read_metadata(folder / "saved_model" / "1")
    assert after["method"] == before["method"]
    assert before["lipschitz_constants"].keys() == after["lipschitz_constants"].keys()
    for key, value in before["lipschitz_constants"].items():
        assert after["lipschitz_constants"][key] == pytest.approx(value, rel=1e-12)
    radius_after = zoo.load_saved_model(TINY).signatures["certify"](
        images=images, r=np.full(8, 8.0), p=np.full(8, 0.5))
    for key in radius_before:
        np.testing.assert_allclose(radius_after[key].numpy(), radius_before[key].numpy(),
                                   rtol=1e-12)
    # a tampered model is refused before anything is written
    _flip_byte(folder / "model.keras")
    written = (folder / "saved_model" / "1" / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(zoo.ZooIntegrityError, match="model.keras does not match"):
        zoo.reexport(TINY)
    assert (folder / "saved_model" / "1" / "saved_model.pb").stat().st_mtime_ns == written
