"""The evaluation entry point: report, figures, CLI parsing and errors."""
import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from damage import truncate_weights

from lipvae_tf import bounds, data, evaluate, zoo
from lipvae_tf.model import LipschitzVAE, StandardVAE

SHAPE = dict(latent_dim=4, hidden_units=(32,), seed=0)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    train, _ = data.load_sample("train")
    paths = {}
    for name, model in {"lip": LipschitzVAE.from_target(0.5, 8.0, **SHAPE),
                        "std": StandardVAE(**SHAPE)}.items():
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(train[:512], epochs=1, batch_size=128, verbose=0)
        model.finalize()
        paths[name] = str(root / f"{name}.keras")
        model.save(paths[name])
    return paths


def _config(paths, output_dir):
    return evaluate.EvalConfig(
        models=paths, source="sample", num_inputs=4, test_limit=64, samples=200,
        bisection_steps=2, restarts=1, steps=5, attack_norms=(1.0,), ll_samples=2,
        output_dir=str(output_dir))


def test_evaluation_writes_report_and_figures(saved_models, tmp_path):
    result = evaluate.run(_config(saved_models, tmp_path))
    with open(tmp_path / "evaluation.json") as handle:
        written = json.load(handle)
    assert set(written["models"]) == {"lip", "std"}
    lip, std = written["models"]["lip"], written["models"]["std"]
    assert lip["certified_radius"]["best"]["min"] >= 0.5  # designed for R* = 0.5
    assert lip["estimated_margin"]["min"] >= lip["certified_radius"]["best"]["min"]
    assert lip["certificate_violations"] == 0
    assert lip["paper_r1_reference_constants"] is not None and std[
        "paper_r1_reference_constants"] is None
    assert std["certificate_violations"] in (None, 0)  # None: some certificate is 0, no audit
    assert lip["probability_curve"]["norms"] == [0.0, 1.0]
    assert all(0 <= q <= 1 for q in lip["probability_curve"]["probability"])
    assert np.isfinite(lip["test_log_likelihood_iwae"])
    for path in result["figures"].values():
        assert os.path.getsize(path) > 1000
    assert set(result["figures"]) == {"margin_vs_certificate", "probability_vs_norm", "pareto",
                                      "adversarial_grid_lip", "adversarial_grid_std"}
    table = evaluate.format_table(result)
    lines = table.splitlines()
    # the data it read named first (a newcomer compared a sample-trained model's numbers on the
    # IDX test set with the main job's), the columns explained last
    assert lines[0] == "data: 64 test images from sample"
    assert lines[1].startswith("| model |") and "| lip |" in table and len(lines) == 6
    assert lines[-1].startswith("cert. <method>: median certified radius")
    assert "R1 ref.: the published R1" in lines[-1]


def test_model_list_parsing_and_errors(saved_models, tmp_path):
    assert evaluate.parse_models(["a=x/m.keras", "y/other.keras"]) == {
        "a": "x/m.keras", "other": "y/other.keras"}
    with pytest.raises(ValueError, match="twice"):
        evaluate.parse_models(["a=1.keras", "a=2.keras"])
    with pytest.raises(FileNotFoundError, match="missing"):
        evaluate.load_models({"missing": str(tmp_path / "nope.keras")})
    with pytest.raises(ValueError, match="at least one"):
        evaluate.load_models({})
    config = _config(saved_models, tmp_path)
    config.num_inputs = 10**6
    with pytest.raises(ValueError, match="num_inputs"):
        evaluate.run(config)


def test_command_line_requires_models():
    completed = subprocess.run([sys.executable, "-m", "lipvae_tf.evaluate"], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode != 0
    assert "--models" in completed.stderr


def test_a_bad_attack_norm_is_one_line_naming_the_flag(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "lipvae_tf.evaluate", "--models=m.keras", "--attack_norms=1,x",
         f"--output_dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert completed.returncode != 0
    assert ("error: attack_norms must be numbers separated by commas, got '1,x'"
            in completed.stderr), completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("content", [b"", b"not a zip", "zip-without-config"])
def test_a_corrupt_keras_file_is_named_as_such(tmp_path, content):
    """A newcomer's run (2026-12-02): an empty or corrupt .keras file, which exists, was
    answered with Keras' "File not found"."""
    path = tmp_path / "bad.keras"
    if content == "zip-without-config":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.weights.h5", b"")
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=r"model 'bad': .*bad.keras is not a valid .keras "
                                         r"archive"):
        evaluate.load_models({"bad": str(path)})


def test_a_keras_file_with_truncated_weights_is_named_as_such(tmp_path):
    """An operator's review (2026-12-04): h5py's OSError ("Unable to synchronously open
    file"), which the command line printed as a traceback, naming no model."""
    path = tmp_path / "bad.keras"
    truncate_weights(zoo.model_dir("fashion_mnist_mlp_r1") / "model.keras", path)
    with pytest.raises(ValueError, match=r"model 'bad': .*bad.keras cannot be read .*a damaged "
                                         r"\.keras file"):
        evaluate.load_models({"bad": str(path)})


def test_the_table_marks_a_margin_the_attack_never_broke():
    """A newcomer's run (2026-12-02): the table showed an unbroken input's margin as 28.0000
    (sqrt(784), the largest radius tried) while its footer called it the radius at which the
    attack broke; evaluation.json said "unbroken_inputs"."""
    summary = {"median": 28.0, "min": 1.0}
    model = {"certified_radius": {m: summary for m in bounds.METHODS},
             "paper_r1_reference_constants": None, "estimated_margin": summary,
             "tightness_median": 0.1, "certificate_violations": 0,
             "test_log_likelihood_iwae": 100.0, "unbroken_inputs": 3}
    table = evaluate.format_table({"models": {"a": model, "b": {**model,
                                                                "unbroken_inputs": 0}}})
    assert "| >= 28.0000 (3 unbroken) |" in table
    assert "| b |" in table and "| 28.0000 |" in table.split("| b |")[1]
    assert "inputs it never broke" in table.splitlines()[-1]


def test_tightness_counts_every_input_and_the_audit_every_certified_one(monkeypatch):
    """An adversarial review (2026-12-04): inputs the attack broke at every radius (margin 0)
    were dropped from the median certificate / margin (their ratio is infinite), a model
    without any ratio reported 0.0, a median over unbroken inputs (margins that are lower
    bounds) was printed as a plain value, and one input certified 0 skipped the whole audit."""
    from lipvae_tf import attacks

    model = LipschitzVAE(latent_dim=2, hidden_units=(8,), posterior_std=0.05)
    x = np.full((4, 28, 28, 1), 0.5, np.float32)
    certified = np.array([0.0, 1.0, 1.0, 1.0])
    monkeypatch.setattr(LipschitzVAE, "certified_radius",
                        lambda self, images, r, p, method: certified)
    margins, upper = np.array([0.0, 2.0, 4.0, 28.0]), np.array([0.1, 3.0, 5.0, np.inf])

    def estimate(*args, **kwargs):
        return attacks.MarginEstimate(margin=margins, upper=upper,
                                      probability_upper=np.full(4, 0.4), confidence=0.99,
                                      samples=10, r=8.0, p=0.5, test_confidence=0.99)

    audited = []

    def audit(model, images, radii, *args, **kwargs):
        audited.append(radii)
        return np.full(len(radii), 0.9)

    monkeypatch.setattr(attacks, "estimate_margin", estimate)
    monkeypatch.setattr(attacks, "audit_certificate", audit)
    monkeypatch.setattr(evaluate, "probability_curve", lambda *args: {})
    config = evaluate.EvalConfig(num_inputs=4)
    result = evaluate.evaluate_model(model, x, config, log_likelihood_mean=1.0)
    # ratios: 0/0 left out, 1/2, 1/4, 1/28 (an upper bound: unbroken)
    assert result["tightness_median"] == 0.25 and result["tightness_inputs"] == 3
    assert result["tightness_is_upper_bound"]
    np.testing.assert_array_equal(audited[0], [1.0, 1.0, 1.0])
    assert result["certificate_violations"] == 0 and result["audited_inputs"] == 3
    margins[0], certified[0] = 0.0, 1.0  # broken at every radius, yet certified: infinite
    assert evaluate.evaluate_model(model, x, config, 1.0)["tightness_median"] == 0.375
    certified[:], margins[:] = 0.0, 0.0
    nothing = evaluate.evaluate_model(model, x, config, 1.0)
    assert nothing["tightness_median"] is None and nothing["certificate_violations"] is None
    row = {"certified_radius": {m: {"median": 1.0} for m in bounds.METHODS},
           "paper_r1_reference_constants": None, "estimated_margin": {"median": 3.0},
           "certificate_violations": None, "test_log_likelihood_iwae": 1.0,
           "unbroken_inputs": 1}
    table = evaluate.format_table({"models": {
        "upper": {**row, "tightness_median": 0.25, "tightness_is_upper_bound": True},
        "none": {**row, "tightness_median": None}}})
    assert "| <= 0.250 |" in table.split("| upper |")[1].splitlines()[0]
    assert "| n/a | n/a |" in table.split("| none |")[1].splitlines()[0]


USER_MODULE = '''
import keras
import lipvae_tf as lv


@keras.saving.register_keras_serializable(package="usermodels")
class LoggingVAE(lv.LipschitzVAE):
    """A user's subclass: its own training step, the model's computation unchanged."""

    def train_step(self, data):
        return super().train_step(data)
'''


def test_a_users_model_class_is_loaded_after_imports(tmp_path):
    """A user's registered LipschitzVAE subclass could not be evaluated from the command line
    (the module that registers it was never imported; Keras' error printed the whole config).
    --imports imports it first; without it the error is one line that names the flag."""
    (tmp_path / "usermodels.py").write_text(USER_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    save = ("import numpy as np, usermodels\n"
            "m = usermodels.LoggingVAE.from_target(0.5, 8.0, latent_dim=4, hidden_units=(16,), "
            "seed=0)\n"
            "m.compile('adam')\n"
            "m.fit(np.full((32, 28, 28, 1), 0.5, 'float32'), epochs=1, verbose=0)\n"
            "m.finalize()\n"
            f"m.save({str(tmp_path / 'user.keras')!r})\n")
    subprocess.run([sys.executable, "-c", save], env=env, check=True, timeout=300,
                   capture_output=True)
    command = [sys.executable, "-m", "lipvae_tf.evaluate", f"--models={tmp_path / 'user.keras'}",
               "--source=sample", "--num_inputs=1", "--test_limit=8", "--samples=50",
               "--restarts=1", "--steps=1", "--bisection_steps=1", "--attack_norms=1",
               "--ll_samples=2", f"--output_dir={tmp_path / 'out'}"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert "Could not locate class 'LoggingVAE'" in message and "--imports=" in message
    assert "Full object config" not in message
    missing = subprocess.run(command + ["--imports=nosuchmodule"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert "error: imports: cannot import 'nosuchmodule'" in missing.stderr
    loaded = subprocess.run(command + ["--imports=usermodels"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "| user |" in loaded.stdout
    with open(tmp_path / "out" / "evaluation.json") as handle:
        written = json.load(handle)
    assert written["config"]["imports"] == ["usermodels"]
    assert written["models"]["user"]["certified_radius"]["best"]["min"] >= 0.5


def test_the_adversarial_grid_names_its_model_and_attack(tmp_path, monkeypatch):
    """A newcomer's run (2026-12-04): adversarial_grid_lip.png had no title; only the file
    name said which model it showed, and nothing named the attack or its radius."""
    drawn = {}

    def capture(rows, path, title=None):
        drawn.update(rows=rows, title=title)
        return path

    monkeypatch.setattr(evaluate.report, "plot_reconstructions", capture)
    model = LipschitzVAE.from_target(0.5, 8.0, 0.5, latent_dim=2, hidden_units=(8,), seed=0)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    config = evaluate.EvalConfig(grid_radius=1.5)
    evaluate.adversarial_grid(model, x, np.array([0, 1, 0, 1]), config,
                              str(tmp_path / "g.png"), count=2, name="lip")
    assert drawn["title"].startswith("lip: latent attack")
    assert "||delta||_2 <= 1.5" in drawn["title"]
    assert all(len(images) == 2 for images in drawn["rows"].values())
