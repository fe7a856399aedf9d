"""Training entry point: report, figures, saved models, resume after interruption, the CLI."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from lipvae_tf import checks, train
from lipvae_tf.model import LipschitzVAE, StandardVAE

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(source="sample", train_limit=256, test_limit=64, hidden_units=(32, 32), epochs=2,
            batch_size=64, ll_samples=4, verbose=0)


def test_run_writes_a_report_that_meets_its_target(tmp_path):
    config = train.TrainConfig(**TINY, output_dir=str(tmp_path))
    result = train.run(config)
    with open(tmp_path / "report.json", encoding="utf-8") as handle:
        on_disk = json.load(handle)
    assert on_disk["target_met"] is True and result["target_met"] is True
    lipschitz = on_disk["models"]["lipschitz_vae"]
    assert lipschitz["certified_radius"]["best"]["min"] >= config.target_radius
    assert lipschitz["certified_radius_at_start"]["best"]["min"] >= config.target_radius
    assert set(lipschitz["certified_radius"]) == set(train.certificate_methods(
        train.build_model(config))) >= {"paper", "markov", "chi2", "best"}
    assert on_disk["resumed"] is False and lipschitz["resumed"] is None
    assert len(lipschitz["history"]["loss"]) == 2
    assert on_disk["replicas"] == 1  # the default strategy
    assert on_disk["data"] == {"train_source": "sample", "test_source": "sample",
                               "train_images": 256, "test_images": 64,
                               "validation_images": 0}
    for figure in on_disk["figures"].values():
        assert os.path.getsize(figure) > 5000  # a real PNG, not an empty file
    loaded = keras.models.load_model(lipschitz["model_path"])
    assert isinstance(loaded, LipschitzVAE)
    assert isinstance(keras.models.load_model(on_disk["models"]["standard_vae"]["model_path"]),
                      StandardVAE)
    assert os.listdir(tmp_path / "lipschitz_vae" / "logs")  # TensorBoard wrote events
    summary = train.format_summary(result)
    assert "lipschitz_vae" in summary and "standard_vae" in summary and "True" in summary
    # a median radius of 0 is said to certify nothing (the zoo table shows such a model as n/a)
    assert on_disk["models"]["standard_vae"]["certified_radius"]["best"]["median"] > 0
    assert "certifies nothing" not in summary
    standard = result["models"]["standard_vae"]["certified_radius"]["best"]
    standard["median"] = standard["min"] = 0.0
    assert "standard_vae: a certified radius of 0 certifies nothing" in train.format_summary(result)
    # lipvae_tf 0.1's certificate and the current one on the same weights: one line, in the report
    comparison = on_disk["certificate_comparison"]
    assert comparison["lipvae_tf_0.1"] | {"radius": None} == {
        "method": "best", "reconstruction": "parameter", "use_std_cap": False, "radius": None}
    # the default: a fixed posterior std (no cap to use), certified by the exact ncx2 bound
    assert comparison["current"] | {"radius": None} == {
        "method": "best", "reconstruction": "mean", "use_std_cap": False,
        "posterior_std": 0.05, "radius": None}
    assert "fixed posterior std gamma = 0.05" in summary
    assert lipschitz["certified_radius"]["best"] == lipschitz["certified_radius"]["ncx2"]
    assert comparison["current"]["radius"] == lipschitz["certified_radius"]["best"]
    assert comparison["r"] == 8.0 and comparison["p"] == 0.5 and comparison["images"] == 64
    model = keras.models.load_model(lipschitz["model_path"])
    test_x = train.load_images(config, "test")[0]
    legacy = model.certified_radius(test_x, 8.0, 0.5, method="best", reconstruction="parameter",
                                    use_std_cap=False)
    old, new = comparison["lipvae_tf_0.1"]["radius"], comparison["current"]["radius"]
    assert old["median"] == pytest.approx(float(np.median(legacy)), rel=1e-12)
    assert old["min"] == pytest.approx(float(legacy.min()), rel=1e-12)
    assert new["median"] > 2 * old["median"] and new["min"] > old["min"]  # cap and E[x|z]
    assert comparison["median_ratio"] == pytest.approx(new["median"] / old["median"])
    lines = [line for line in summary.splitlines() if "lipvae_tf 0.1" in line]
    assert len(lines) == 1, summary
    assert (f"median {old['median']:.4f} min {old['min']:.4f}" in lines[0]
            and f"median {new['median']:.4f} min {new['min']:.4f}" in lines[0]), lines[0]
    # each side names what it certifies; a fixed std has no cap to leave out
    assert ("lambda = sigmoid(logits) certified)" in lines[0]
            and "E[x|z] certified, fixed std 0.05)" in lines[0]), lines[0]
    # the figure shows the certified reconstruction g(mu(x)) in the model's mode (predict)
    rows = train.reconstruction_rows({"lipschitz_vae": model}, test_x[:3])
    (label, images), = [(k, v) for k, v in rows.items() if k.startswith("Lipschitz VAE")]
    assert "g(mu(x)) = E[x|z]" in label and "certified" in label
    np.testing.assert_array_equal(images, model.predict(test_x[:3], verbose=0))


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated interruption after the first epoch")


def test_an_interrupted_run_resumes_from_its_last_epoch(tmp_path):
    config = train.TrainConfig(**(TINY | dict(epochs=3)), output_dir=str(tmp_path))
    x = np.random.default_rng(0).random((128, 28, 28, 1), dtype=np.float32)
    first = train.build_model(config)
    with pytest.raises(KeyboardInterrupt):
        train.fit(first, x, x[:32], config, str(tmp_path), extra_callbacks=(_Interrupt(),))
    resumed = train.build_model(config)
    history = train.fit(resumed, x, x[:32], config, str(tmp_path))
    assert len(history["loss"]) == 3  # the whole run: epoch 1 from the checkpoint, then 2, 3
    assert not os.path.exists(tmp_path / "backup")  # cleaned up after a finished run


def test_a_checkpoint_of_other_validation_images_or_more_epochs_is_not_adopted(tmp_path):
    """A review: a rerun on other validation images resumed and compared their ELBO with the
    old images' best (early stopping restored epoch 1 where a fresh run restores epoch 3), and
    a rerun with fewer epochs than the checkpoint returned the longer training unannounced."""
    config = train.TrainConfig(**(TINY | dict(epochs=2, baseline=False)),
                               output_dir=str(tmp_path))
    x = np.random.default_rng(0).random((128, 28, 28, 1), dtype=np.float32)
    validation = x[:32]
    train.fit_run(train.build_model(config), x, validation, config, str(tmp_path),
                  keep_checkpoint=True)
    with pytest.raises(ValueError, match=r"written by another setting \(the validation images\)"):
        train.fit_run(train.build_model(config), x, np.full_like(validation, 0.5),
                      dataclasses.replace(config, epochs=3), str(tmp_path))
    with pytest.raises(ValueError, match=r"holds 2 trained epochs, more than epochs=1: rerun with "
                                         r"epochs >= 2"):
        train.fit_run(train.build_model(config), x, validation,
                      dataclasses.replace(config, epochs=1), str(tmp_path))
    # the same run with more epochs continues it
    longer = train.fit_run(train.build_model(config), x, validation,
                           dataclasses.replace(config, epochs=3), str(tmp_path))
    assert longer.resumed["epoch"] == 2 and len(longer.history["loss"]) == 3


class _InterruptInEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            raise KeyboardInterrupt("simulated interruption in epoch 2")


def test_a_checkpoint_inside_the_epoch_after_the_last_is_not_adopted(tmp_path):
    """An operator's review (2026-12-04): a 3-epoch run killed 30 steps into epoch 2, rerun with
    epochs=1, trained nothing and delivered the checkpoint's weights (1 epoch and 30 steps) as
    a 1-epoch model (kernels 1.8 from a clean run's): only epoch > epochs was refused."""
    config = train.TrainConfig(**(TINY | dict(epochs=3, baseline=False, checkpoint_steps=1)),
                               output_dir=str(tmp_path))
    x = np.random.default_rng(0).random((128, 28, 28, 1), dtype=np.float32)
    with pytest.raises(KeyboardInterrupt):
        train.fit(train.build_model(config), x, x[:32], config, str(tmp_path),
                  extra_callbacks=(_InterruptInEpoch2(),))
    with pytest.raises(ValueError, match=r"holds 1 trained epoch and 1 step of the next, more "
                                         r"than epochs=1: rerun with epochs >= 2"):
        train.fit(train.build_model(config), x, x[:32], dataclasses.replace(config, epochs=1),
                  str(tmp_path))
    resumed = train.fit(train.build_model(config), x, x[:32],
                        dataclasses.replace(config, epochs=2), str(tmp_path))
    assert len(resumed["loss"]) == 2


def test_an_interruption_after_training_resumes_with_nothing_left_to_train(tmp_path,
                                                                            monkeypatch):
    """A newcomer's Ctrl-C during the certification after training: the checkpoint had been
    deleted when training ended and the model was not saved yet, so the rerun trained every
    epoch again. Now the checkpoint lives until the model is saved: the rerun trains nothing
    and delivers the uninterrupted run's model."""
    config = train.TrainConfig(**(TINY | dict(baseline=False)), output_dir=str(tmp_path / "a"))
    whole = train.run(config)["models"]["lipschitz_vae"]
    certify = train.certify
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first call certifies the untrained model at the start
            raise KeyboardInterrupt("simulated Ctrl-C after training")
        return certify(*args, **kwargs)

    monkeypatch.setattr(train, "certify", interrupted)
    config_b = train.TrainConfig(**(TINY | dict(baseline=False)), output_dir=str(tmp_path / "b"))
    with pytest.raises(KeyboardInterrupt):
        train.run(config_b)
    assert os.path.isdir(train.checkpoint_dir(str(tmp_path / "b" / "lipschitz_vae")))
    result = train.run(config_b)
    again = result["models"]["lipschitz_vae"]
    assert again["resumed"]["epoch"] == config.epochs  # nothing left to train
    # the summary said "from epoch 3 step 0" of this 2-epoch run (an operator's review)
    assert "resumed from a checkpoint (lipschitz_vae after its training)" in (
        train.format_summary(result))
    assert again["history"] == whole["history"]
    assert not os.path.exists(train.checkpoint_dir(str(tmp_path / "b" / "lipschitz_vae")))
    ours, theirs = (keras.models.load_model(r["model_path"]) for r in (again, whole))
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_interrupted_after_both_models_were_saved_resumes_them_without_training(
        tmp_path, monkeypatch):
    """A review (2026-12-03): a model's checkpoint was deleted as soon as its .keras was
    saved, and `run` never reuses a saved .keras, so a run interrupted later (during the
    baseline, or the figures) trained the Lipschitz VAE again from scratch and reported
    resumed: None. The checkpoints now live until report.json is written."""
    config = train.TrainConfig(**TINY, output_dir=str(tmp_path / "a"))
    whole = train.run(config)["models"]
    figures = train._figures
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("simulated Ctrl-C while drawing the figures")
        return figures(*args, **kwargs)

    monkeypatch.setattr(train, "_figures", interrupted)
    config_b = train.TrainConfig(**TINY, output_dir=str(tmp_path / "b"))
    with pytest.raises(KeyboardInterrupt):
        train.run(config_b)
    again = train.run(config_b)["models"]
    for name in ("lipschitz_vae", "standard_vae"):
        assert again[name]["resumed"]["epoch"] == config.epochs  # nothing trained again
        assert again[name]["history"] == whole[name]["history"]
        assert not os.path.exists(train.checkpoint_dir(str(tmp_path / "b" / name)))
        ours, theirs = (keras.models.load_model(r[name]["model_path"]) for r in (again, whole))
        for a, b in zip(ours.weights, theirs.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_too_many_validation_images_are_refused_before_anything_is_trained(tmp_path,
                                                                           monkeypatch):
    """A newcomer's run: --validation_images=300 of 256 training images was refused 32 s in,
    after the model was built, certified and announced as training. (The model, its budget
    design, is built first, in well under a second: an infeasible target is refused before the
    data loads.)"""
    def never(*args, **kwargs):
        raise AssertionError("certified or trained before checking validation_images")

    monkeypatch.setattr(train, "certify", never)
    monkeypatch.setattr(train, "train_one", never)
    config = train.TrainConfig(**(TINY | dict(validation_images=300)), output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"validation_images must be 0 \(validate on the test "
                                         r"set\) or an integer in \[1, 256 - batch_size = 192\], "
                                         r"got 300"):
        train.run(config)
    # no batch is left whatever the count: said so, not as the empty range [1, -28]
    small = dataclasses.replace(config, validation_images=10, batch_size=300)
    with pytest.raises(ValueError, match=r"validation_images=10 leaves no batch to train on: "
                                         r"the 256 training images are not more than "
                                         r"batch_size=300"):
        train.run(small)


def test_an_earlier_runs_files_in_the_output_dir_are_named_before_loading_data(tmp_path,
                                                                              monkeypatch, capsys):
    """A run into a directory that holds a finished run's files says so (which files, and that
    the others stay), before anything is loaded; an empty directory gets no note."""
    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(train, "load_images", stop)
    for name in ("report.json", "standard_vae.keras"):
        (tmp_path / name).write_text("{}")
    config = train.TrainConfig(**(TINY | dict(verbose=1)), output_dir=str(tmp_path))
    with pytest.raises(Stop):
        train.run(config)
    out = capsys.readouterr().out
    assert (f"note: {tmp_path} holds an earlier run's report.json, standard_vae.keras; this run "
            "replaces the files it writes and leaves the others as they are") in out
    with pytest.raises(Stop):
        train.run(dataclasses.replace(config, output_dir=str(tmp_path / "fresh")))
    assert "earlier run" not in capsys.readouterr().out


def test_explicit_constants_and_bad_configs(tmp_path):
    model = train.build_model(train.TrainConfig(constants=(2.0, 1.5, 3.0), hidden_units=(16, 16)))
    assert model.encoder_mean_budget == 2.0 and model.decoder_budget == 3.0
    with pytest.raises(ValueError, match="target_radius or constants"):
        train.build_model(train.TrainConfig(target_radius=None))
    with pytest.raises(ValueError, match="infeasible"):
        train.build_model(train.TrainConfig(target_radius=500.0))
    # a fixed std has no std network: its M_sigma was dropped silently (a review, 2026-12-04)
    with pytest.raises(ValueError, match=r"^constants: M_sigma=1.5 is a learned std's constant, "
                                         r"and posterior_std=0.05 fixes the std: give 0 there "
                                         r"\(--constants=2.0,0,3.0\)"):
        train.build_model(train.TrainConfig(constants=(2.0, 1.5, 3.0), posterior_std=0.05))
    with pytest.raises(ValueError, match=r"^constants: M_sigma=0 leaves a learned std no budget"):
        train.build_model(train.TrainConfig(constants=(2.0, 0.0, 3.0), posterior_std=None))
    fixed = train.build_model(train.TrainConfig(constants=(2.0, 0.0, 3.0), posterior_std=0.05,
                                                hidden_units=(16, 16)))
    assert fixed.posterior_std == 0.05 and fixed.lipschitz_constants()["encoder_std"] == 0.0


def test_the_posterior_std_is_fixed_by_default_and_learned_on_request():
    from absl import flags

    from lipvae_tf import design
    small = dict(hidden_units=(16, 16))
    fixed = train.build_model(train.TrainConfig(**small))
    assert fixed.posterior_std == design.DEFAULT_POSTERIOR_STD == 0.05
    assert fixed.encoder_std_net is None and fixed.std_cap is None
    learned = train.build_model(train.TrainConfig(posterior_std=None, **small))
    assert learned.posterior_std is None and learned.std_cap == design.DEFAULT_STD_CAP
    assert train.std_settings(train.TrainConfig(posterior_std=None, std_cap=0.2)) == (None, 0.2)
    assert train.std_settings(train.TrainConfig(posterior_std=0.02)) == (0.02, None)
    # explicit constants: "auto" learns the std (their M_sigma is the std network's)
    assert train.std_settings(train.TrainConfig(constants=(1.0, 1.0, 1.0))) == (None, 0.1)
    with pytest.raises(ValueError, match="std_cap applies to a learned posterior std"):
        train.TrainConfig(std_cap=0.2)  # refused, not silently unused
    for bad in ("fixed", 0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="posterior_std"):
            train.TrainConfig(posterior_std=bad)
    with pytest.raises(ValueError, match="std_cap"):
        train.TrainConfig(posterior_std=None, std_cap=0.0)
    for name, kwargs in (("std_cap", dict(std_cap=0.2)), ("encoder_std", dict(encoder_std=2.0))):
        with pytest.raises(ValueError, match=f"{name} applies to a learned posterior std"):
            LipschitzVAE.from_target(1.0, 8.0, **kwargs, **small)
    # the command line: a number, "learned" or "auto"
    try:
        for argument, expected in (("--posterior_std=learned", None),
                                   ("--posterior_std=0.03", 0.03),
                                   ("--posterior_std=auto", "auto")):
            flags.FLAGS.unparse_flags()
            flags.FLAGS(["lipvae-train", argument])
            assert train.config_from_flags().posterior_std == expected
        # flags that do not parse or contradict each other: one line naming the flag (a
        # newcomer's run: raw int()/float() messages, a silently dropped --target_radius)
        for arguments, message in (
                (["--posterior_std=wide"], "--posterior_std takes a number"),
                (["--constants=1,x,3"], "--constants takes three numbers"),
                (["--hidden_units=512,abc"], "--hidden_units takes comma-separated integers"),
                (["--constants=3,3,3", "--target_radius=2"], "exclude each other"),
                (["--learning_rate=-1"], "learning_rate must be"),
                (["--seed=-1"], "seed must be"),
                # echoed in report.json, unused (an operator's review, 2026-12-04)
                (["--architecture=conv", "--hidden_units=7"],
                 "--hidden_units sets the MLP's widths; --architecture=conv")):
            flags.FLAGS.unparse_flags()
            flags.FLAGS(["lipvae-train", *arguments])
            with pytest.raises(ValueError, match=message):
                train.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()


def test_an_interrupted_runs_baseline_checkpoint_is_said_under_nobaseline(tmp_path, capsys):
    """An operator's review (2026-12-04): rerun with --nobaseline, a folder whose earlier run
    was interrupted in its baseline kept standard_vae/backup without a word."""
    orphan = train.checkpoint_dir(str(tmp_path / "standard_vae"))
    os.makedirs(orphan)
    train.run(train.TrainConfig(**(TINY | dict(baseline=False, verbose=1, epochs=1)),
                                output_dir=str(tmp_path)))
    assert (f"note: {orphan} holds an interrupted run's baseline checkpoint, which this run "
            "(--nobaseline) leaves as it is") in capsys.readouterr().out
    assert os.path.isdir(orphan)


def test_an_output_dir_that_cannot_be_created_is_named(tmp_path):
    """An operator's review (2026-12-04): --output_dir=/proc/foo failed with "[Errno 2] No such
    file or directory: '/proc/foo'", naming no setting."""
    with pytest.raises(ValueError, match=r"output_dir=/proc/lipvae_tf_run: cannot make a folder "
                                         r"in /proc"):  # checks.folder_path, before the work
        train.run(train.TrainConfig(**TINY, output_dir="/proc/lipvae_tf_run"))


def test_a_folder_another_worker_makes_meanwhile_is_neither_an_error_nor_removed(
        tmp_path, monkeypatch):
    """The CI of 2026-12-04: the two workers of a multi-worker run check their run folders under
    one shared parent at the same moment; the check's probe made and removed that parent by name,
    so one worker failed with "cannot make a folder ... (File exists)" when the other had just
    made it. Here the other worker makes it between the check's scan and its probe."""
    shared, real_access = tmp_path / "runs", os.access

    def the_other_worker_makes_the_parent(path, mode):
        os.makedirs(shared / "workers" / "worker_1", exist_ok=True)
        return real_access(path, mode)

    monkeypatch.setattr(checks.os, "access", the_other_worker_makes_the_parent)
    path = shared / "backup"
    assert checks.folder_path("backup_dir", path) == str(path)
    assert (shared / "workers" / "worker_1").is_dir()  # the other worker's folders stay
    assert sorted(os.listdir(tmp_path)) == ["runs"]  # and the probe left nothing behind


def test_a_ctrl_c_says_how_to_resume_in_one_line(tmp_path, monkeypatch, capsys):
    """The same review: Ctrl-C during training printed Keras' 60-line traceback."""
    def interrupted(config):
        raise KeyboardInterrupt

    from absl import flags

    monkeypatch.setattr(train, "run", interrupted)
    try:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["lipvae-train", f"--output_dir={tmp_path}"])
        with pytest.raises(SystemExit, match=rf"interrupted; the checkpoint in {tmp_path} "
                                             r"keeps .*run the same command again to resume"):
            train.main(["lipvae-train"])
    finally:
        flags.FLAGS.unparse_flags()


def test_command_line_trains_and_prints_the_summary(tmp_path):
    command = [sys.executable, "-m", "lipvae_tf.train", "--source=sample", "--train_limit=128",
               "--test_limit=32", "--hidden_units=16,16", "--epochs=1", "--ll_samples=2",
               "--nobaseline", f"--output_dir={tmp_path}", "--target_radius=0.5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "target met on every test input: True" in done.stdout
    assert (tmp_path / "report.json").exists()
    bad = subprocess.run(command + ["--constants=1,2"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "three numbers" in bad.stderr


def _quiet_env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_multi_worker_without_a_cluster_says_it_trains_alone(tmp_path):
    """A newcomer's review: --strategy=multi_worker without TF_CONFIG trained as one worker and
    said nothing."""
    env = {k: v for k, v in _quiet_env().items() if k != "TF_CONFIG"}
    done = subprocess.run([sys.executable, "-m", "lipvae_tf.train", "--strategy=multi_worker",
                           "--target_radius=500", "--source=sample",
                           f"--output_dir={tmp_path}"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert ("note: --strategy=multi_worker with no cluster of several tasks in TF_CONFIG: this "
            "process trains alone, as one worker") in done.stdout, done.stdout + done.stderr


def test_verbose_2_shows_no_progress_bar_for_the_log_likelihood(capsys):
    """--verbose=2 ("a line per epoch") drew the IWAE progress bar, escape codes and all, into
    piped logs."""
    config = train.TrainConfig(**(TINY | dict(verbose=2, ll_samples=2)))
    model = train.build_model(config)
    model.compile(keras.optimizers.Adam(1e-3))
    capsys.readouterr()
    result = train.evaluate(model, np.zeros((8, 28, 28, 1), "float32"), config)
    out = capsys.readouterr().out
    assert np.isfinite(result["log_likelihood_iwae"])
    assert "\x1b[" not in out and "━" not in out, out


def test_explicit_constants_have_no_target(tmp_path):
    config = train.TrainConfig(**(TINY | dict(epochs=1, baseline=False)), constants=(3.0, 3.0, 3.0),
                               output_dir=str(tmp_path))
    result = train.run(config)
    assert result["target_met"] is None and train.target_radius(config) is None
    summary = train.format_summary(result)
    assert "target met" not in summary and "no target radius asked for" in summary
    from lipvae_tf import report
    radii = train.certify(train.build_model(config), np.zeros((2, 28, 28, 1), np.float32), config)
    ax = report.radius_histogram_figure(radii, train.target_radius(config)).axes[0]
    assert not ax.lines  # no target line


def test_help_lists_the_flags_exits_0_and_the_main_job_help_does_not_train():
    """absl exits with status 1 after printing --help (so `lipvae-train --help && ...` stopped);
    every command of the package exits 0, as argparse does."""
    scripts = os.path.join(os.path.dirname(sys.executable), "lipvae-train")
    for command in ([scripts, "--help"], [sys.executable, "-m", "lipvae_tf.train", "--help"],
                    [scripts, "--helpfull"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env=_quiet_env())
        assert "--target_radius" in done.stdout and "--checkpoint_steps" in done.stdout, command
        assert done.returncode == 0, command
        # what the command does, not only "USAGE: lipvae-train [flags]" (a newcomer's run)
        assert "Train a certified LipschitzVAE (robustness stated upfront)" in done.stdout, command
    for module, flag in (("lipvae_tf.evaluate", "--models"), ("lipvae_tf.zoo", "overwrite")):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                              text=True, timeout=120, env=_quiet_env())
        assert done.returncode == 0 and flag in done.stdout, (module, done.stderr[-2000:])
    done = subprocess.run([sys.executable, "-m", "lipvae_tf", "--help"], capture_output=True,
                          text=True, timeout=120, env=_quiet_env())
    assert done.returncode == 0 and "usage: python -m lipvae_tf" in done.stdout
    assert "main job:" not in done.stdout  # it did not start training


_ERROR = "python -m lipvae_tf.train: error"  # the command as typed


def test_a_command_line_error_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lipvae_tf.train", "--target_radius=500",
                           "--source=sample", f"--output_dir={tmp_path}"], capture_output=True,
                          text=True, timeout=120, env=_quiet_env())
    assert done.returncode != 0 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(_ERROR)]
    assert len(errors) == 1 and "target_radius=500" in errors[0], done.stderr[-2000:]
    # a stray positional argument: one line, not the whole --help (a newcomer's review)
    for command in (["lipvae_tf.train", "stray"], ["lipvae_tf.evaluate", "--models=m.keras",
                                                   "stray"]):
        done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                              timeout=120, env=_quiet_env())
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode != 0 and len(lines) == 1, done.stderr[-2000:]
        assert lines[0] == (f"python -m {command[0]}: error: unexpected arguments ['stray']: "
                            "every setting is a --flag=value (see --help)")
    # a bad setting is refused before any training
    done = subprocess.run([sys.executable, "-m", "lipvae_tf.train", "--ll_samples=0",
                           "--source=sample", f"--output_dir={tmp_path / 'bad'}"],
                          capture_output=True, text=True, timeout=120, env=_quiet_env())
    errors = [line for line in done.stderr.splitlines() if line.startswith(_ERROR)]
    assert errors == [f"{_ERROR}: ll_samples must be an integer >= 1, got 0"], (
        done.stderr[-2000:])
    assert "training" not in done.stdout and not (tmp_path / "bad").exists()


def test_the_command_line_prints_no_cuda_error_and_importing_the_library_sets_nothing(tmp_path):
    """Issue 15 item 6: a CPU-only machine printed TensorFlow's "E0000 ... failed call to cuInit"
    on every run. The entry points set TF's C++ log level before TensorFlow loads (the package
    imports lazily while a command starts); importing the library leaves the environment alone
    and registers the Keras classes."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "lipvae_tf.train", "--target_radius=500",
                           "--source=sample", f"--output_dir={tmp_path}"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert _ERROR in done.stderr  # it got past TensorFlow's device set-up
    assert not [line for line in done.stderr.splitlines()
                if line.startswith("E0000") or "cuInit" in line], done.stderr[-2000:]
    # TensorFlow >= 2.20 logs through absl before absl is initialised, whatever the level
    assert not [line for line in done.stderr.splitlines()
                if re.match(r"[IW]\d{4} ", line) or "absl::InitializeLog" in line
                or line.startswith("To enable the following instructions")], done.stderr[-2000:]
    probe = ("import os, sys, lipvae_tf as lv; before = 'tensorflow' in sys.modules; "
             "version = lv.__version__; from lipvae_tf import train, StdCap; "
             "print(before, version, 'TF_CPP_MIN_LOG_LEVEL' in os.environ, "
             "lv.LipschitzVAE.__module__, sorted(lv.__all__) == sorted(n for n in lv.__all__ "
             "if hasattr(lv, n)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.stdout.split() == ["True", "0.2.0", "False", "lipvae_tf.model", "True"], (
        done.stdout + done.stderr[-2000:])


def test_a_users_package_run_with_m_registers_the_classes(tmp_path):
    """A newcomer's review (2026-12-03): `python -m myapp`, whose package imports lipvae_tf,
    was taken for one of the package's commands (sys.argv[0] is "-m" while a package run with
    -m is imported), so the Keras classes were not registered and load_model failed."""
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("import lipvae_tf\n")
    (package / "__main__.py").write_text(
        "import keras\n"
        "layer = keras.saving.get_registered_object('lipvae_tf>LipschitzDense')\n"
        "print(layer.__name__ if layer is not None else None)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    for command in (["-m", "myapp"], ["-mmyapp"], ["-X", "utf8", "-m", "myapp"]):
        done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                              timeout=120, env=env, cwd=tmp_path)
        assert done.stdout.split() == ["LipschitzDense"], done.stdout + done.stderr[-2000:]


def _native_log_filter(text: str, level: int) -> str:
    import lipvae_tf
    return subprocess.run([sys.executable, "-I", "-S", "-c", lipvae_tf._NATIVE_LOG_FILTER,
                           str(level)], input=text, capture_output=True, text=True,
                          timeout=60).stdout


def test_the_native_log_filter_drops_only_lines_below_the_level():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n"
            "I0000 00:00:1796158178.885496   10900 port.cc:153] oneDNN custom operations are on.\n"
            "I0000 00:00:1796158221.415684   10944 cpu_feature_guard.cc:227] This TensorFlow "
            "binary is optimized\n"
            "To enable the following instructions: AVX2 FMA, in other operations, rebuild.\n"
            "/x/y.py:3: DeprecationWarning: kept, it is Python's\n"
            "W0000 00:00:1796158221.5 10944 a.cc:1] a warning\n"
            "E0000 00:00:1796158221.6 10944 b.cc:2] failed call to cuInit\n"
            "F0000 00:00:1796158221.7 10944 c.cc:3] fatal\n"
            "Traceback (most recent call last):\n")
    assert _native_log_filter(text, 3).splitlines() == [
        "/x/y.py:3: DeprecationWarning: kept, it is Python's",
        "F0000 00:00:1796158221.7 10944 c.cc:3] fatal",
        "Traceback (most recent call last):"]
    assert len(_native_log_filter(text, 1).splitlines()) == 5  # W, E kept too


def test_a_crash_inside_the_filtered_import_still_shows_its_message(tmp_path):
    """The filter runs in a process of its own: a fatal line written just before an abort inside
    `import tensorflow` reaches the terminal (a filter inside the crashing process would die
    with it), and the INFO line before it does not."""
    (tmp_path / "tensorflow.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 00:00:1796158178.885496   10900 port.cc:153] noise\\n')\n"
        "os.write(2, b'F0000 00:00:1796158178.9 10900 cpu.cc:9] this CPU lacks AVX\\n')\n"
        "os.abort()\n")
    # (argv[0] "-m" and a module of the package after -m: the package imports as at a
    # command's start, without TensorFlow)
    probe = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); sys.argv[0] = '-m'; "
             "sys.orig_argv = [sys.executable, '-m', 'lipvae_tf.train']; "
             "import lipvae_tf; lipvae_tf._import_tensorflow_at_the_log_level()")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                            "PYTHONPATH": _ROOT})
    assert done.returncode != 0
    assert "this CPU lacks AVX" in done.stderr and "noise" not in done.stderr, done.stderr


@pytest.mark.parametrize("imports", ["import keras, lipvae_tf", "import lipvae_tf, keras"])
def test_a_keras_file_loads_after_importing_the_package(imports, tmp_path):
    """A newcomer's run: `keras.saving.load_model` of a trained model in a fresh process that
    only imported the package (its classes were registered only on first use of a name)."""
    model = LipschitzVAE(2, hidden_units=(8,))
    model(np.zeros((1, 28, 28, 1), np.float32))
    model.save(tmp_path / "m.keras")
    probe = (f"{imports}; m = keras.saving.load_model({str(tmp_path / 'm.keras')!r}); "
             "print(type(m).__name__, m.reconstruction)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.stdout.split() == ["LipschitzVAE", "mean"], done.stderr[-2000:]


def test_the_validation_split_is_held_out_of_the_training_set():
    images = np.arange(1000, dtype=np.float32).reshape(1000, 1, 1, 1)
    config = train.TrainConfig(validation_images=200, batch_size=100, seed=3)
    kept, held_out = train.split_validation(images, config)
    assert kept.shape == (800, 1, 1, 1) and held_out.shape == (200, 1, 1, 1)
    assert not set(kept.ravel()) & set(held_out.ravel())  # disjoint, nothing lost
    assert set(kept.ravel()) | set(held_out.ravel()) == set(images.ravel())
    again = train.split_validation(images, config)[1]
    np.testing.assert_array_equal(held_out, again)  # a function of the seed
    other = train.split_validation(images, train.TrainConfig(validation_images=200,
                                                             batch_size=100, seed=4))[1]
    assert not np.array_equal(held_out, other)
    for bad in (0, 901):  # (negative, fractional and bool counts: refused by TrainConfig)
        with pytest.raises(ValueError, match=r"validation_images must be 0 \(validate on the test "
                                             r"set\) or an integer in \[1, 1000 - batch_size = "
                                             r"900\]"):
            train.split_validation(images, train.TrainConfig(validation_images=bad,
                                                             batch_size=100))


def test_convergence_settings_are_checked_and_become_keras_callbacks():
    assert train.convergence_callbacks(train.TrainConfig()) == ()
    callbacks = train.convergence_callbacks(train.TrainConfig(
        early_stopping_patience=4, reduce_lr_patience=2, min_delta=1.5))
    plateau, early = callbacks
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau) and plateau.patience == 2
    assert isinstance(early, keras.callbacks.EarlyStopping) and early.patience == 4
    assert early.restore_best_weights and early.monitor == plateau.monitor == "val_elbo"
    # bad settings fail when the config is made, before any data is read or model trained
    for field, bad, match in (
            ("early_stopping_patience", 0, r"early_stopping_patience must be an integer >= 1 "
                                           r"\(or unset\), got 0"),
            ("reduce_lr_patience", 1.5, "reduce_lr_patience must be an integer >= 1"),
            ("early_stopping_patience", True, "early_stopping_patience must be an integer"),
            ("checkpoint_steps", 0, r"checkpoint_steps must be an integer >= 1 \(or unset\)"),
            ("ll_samples", 0, "ll_samples must be an integer >= 1, got 0"),
            ("epochs", 0, "epochs must be an integer >= 1, got 0"),
            ("validation_images", -1, "validation_images must be an integer >= 0"),
            ("min_delta", -1.0, "min_delta must be a finite number of nats >= 0"),
            ("min_delta", float("nan"), "min_delta must be a finite number of nats >= 0"),
            ("min_delta", float("inf"), "min_delta must be a finite number of nats >= 0"),
            ("min_delta", True, "min_delta must be a finite number of nats >= 0, got True"),
            ("posterior_std", True, "posterior_std must be 'auto', None"),
            ("posterior_std", -0.05, "posterior_std must be 'auto', None"),
            ("reconstruction", "median", "reconstruction must be one of"),
            ("split", "half", "split must be one of")):
        with pytest.raises(ValueError, match=match):
            train.TrainConfig(**{field: bad})
    # NumPy scalars are numbers (np.float32(0.05) was refused as a posterior_std)
    config = train.TrainConfig(posterior_std=np.float32(0.05), min_delta=np.float64(0.5))
    assert train.std_settings(config)[0] == np.float32(0.05)


def test_early_stopping_ends_the_run_and_restores_the_best_epoch(tmp_path):
    """min_delta so large that no epoch after the first improves: the run stops after
    1 + patience epochs of a cap of 20, with the first epoch's weights."""
    config = train.TrainConfig(source="sample", hidden_units=(8,), latent_dim=2, epochs=20,
                               batch_size=64, verbose=0, early_stopping_patience=2,
                               min_delta=1e9)
    x = np.random.default_rng(0).random((128, 28, 28, 1), dtype=np.float32)
    model = train.build_model(config)

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.first = [w.copy() for w in self.model.get_weights()]

    snapshot = Snapshot()
    result = train.fit_run(model, x, x[:32], config, str(tmp_path), extra_callbacks=(snapshot,))
    assert result.stopped_early and result.best_epoch == 0
    assert len(result.history["loss"]) == 3
    for restored, first in zip(model.get_weights(), snapshot.first):
        np.testing.assert_array_equal(restored, first)


def test_early_stopping_follows_the_finalized_model_and_training_keeps_its_kernels():
    """`FinalizedValidation` logs the validation ELBO of the model `finalize()` would deliver,
    evaluated on projected copies of the kernels, and leaves the kernels bit for bit as they
    were; the convergence callbacks follow it for a Lipschitz model, not for a plain one."""
    from lipvae_tf import data, distribute
    keras.utils.set_random_seed(3)
    images = data.load_sample("train")[0][:384]
    model = LipschitzVAE.from_target(1.0, 8.0, latent_dim=4, hidden_units=(32, 32), seed=3)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(images[:256], epochs=2, batch_size=64, verbose=0)
    for variable in model.trainable_variables:  # kernels well above their bounds
        if variable.constraint is not None:
            variable.assign(variable * 1.5)
    assert train.monitored_metric(model) == "val_finalized_elbo"
    assert train.monitored_metric(StandardVAE(4, hidden_units=(8,))) == "val_elbo"
    validation = distribute.evaluation_dataset(images[256:], 64)
    callback = train.FinalizedValidation(validation)
    callback.set_model(model)
    unprojected = model.evaluate(validation, verbose=0, return_dict=True)["elbo"]
    before = [v.numpy() for v in model.weights]
    logs = {}
    callback.on_epoch_end(0, logs)
    for kept, now in zip(before, model.weights):
        np.testing.assert_array_equal(kept, now.numpy())
    projected = model.finalize()  # the kernels the callback projected and put back
    assert projected and sorted(projected) == sorted(k.path for k in model.constrained_kernels())
    assert StandardVAE(4, hidden_units=(8,)).constrained_kernels() == []
    expected = model.evaluate(validation, verbose=0, return_dict=True)["elbo"]
    # the same projected model, with other noise draws (the seed generator moved on)
    assert abs(logs["val_finalized_elbo"] - expected) < 5.0
    assert abs(unprojected - expected) > 20.0  # so the check above tells the two apart
    callbacks = train.convergence_callbacks(train.TrainConfig(early_stopping_patience=2),
                                            "val_finalized_elbo")
    assert callbacks[0].monitor == "val_finalized_elbo"


def test_an_infeasible_target_is_refused_before_the_data_loads(tmp_path):
    """A newcomer's run (2026-12-03): --target_radius=100 loaded all 60000 images before it
    said the target was infeasible; here the data folder does not even exist."""
    config = train.TrainConfig(target_radius=100.0, source="idx", idx_dir=str(tmp_path / "no"),
                               output_dir=str(tmp_path / "run"), verbose=0)
    with pytest.raises(ValueError, match="target_radius"):
        train.run(config)


def test_format_comparison_has_no_ratio_when_the_legacy_median_is_zero():
    zero = {"median": 0.0, "min": 0.0}
    comparison = {"r": 8.0, "p": 0.5, "median_ratio": None,
                  "lipvae_tf_0.1": {"method": "best", "reconstruction": "parameter",
                                    "radius": zero},
                  "current": {"method": "best", "reconstruction": "mean", "use_std_cap": False,
                              "posterior_std": 0.05, "radius": {"median": 0.5, "min": 0.2}}}
    line = train.format_comparison(comparison)
    assert line.endswith("(0.1's median is 0: no ratio)") and "median 0.5000 min 0.2000" in line
