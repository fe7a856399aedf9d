"""A training run killed and resumed (BackupAndRestore-style checkpoints) is the uninterrupted
run, bit for bit: weights, optimizer, noise generator state and the whole history.

Each session is a separate process (tests/resume_worker.py) that dies with `os._exit` right
after a checkpoint, as a killed job would: once at an epoch boundary, once mid-epoch (the
checkpoint every 2 steps of 3), then finishes. Under "mirrored" the worker trains on two
logical CPUs (two replicas).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lipvae_tf import distribute, train

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CRASH_EXIT = 75  # resume_worker.py's exit status when it kills itself


def _session(strategy: str, run_dir, weights, crash: str | None = None) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "resume_worker.py"), strategy, str(run_dir),
         str(weights), *([crash] if crash else [])],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode in (0, CRASH_EXIT), done.stderr[-4000:]
    return done.returncode


def _state(run_dir) -> dict:
    path = run_dir / "lipschitz_vae" / "backup" / train.ResumableBackup.STATE
    return json.loads(path.read_text())


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_a_killed_and_resumed_run_is_the_uninterrupted_run(strategy, tmp_path):
    assert _session(strategy, tmp_path / "whole", tmp_path / "whole.npz") == 0
    run = tmp_path / "resumed"
    assert _session(strategy, run, tmp_path / "unused.npz", "epoch:1") == CRASH_EXIT
    assert (_state(run)["epoch"], _state(run)["batch"]) == (1, 0)  # after the first epoch
    # the second session dies mid-epoch: 3 steps per epoch, checkpoint at step 2 of epoch 2
    assert _session(strategy, run, tmp_path / "unused.npz", "step:5") == CRASH_EXIT
    assert (_state(run)["epoch"], _state(run)["batch"]) == (1, 2)
    assert _session(strategy, run, tmp_path / "resumed.npz") == 0
    whole, resumed = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(whole.files) == sorted(resumed.files)
    assert any("seed_generator_state" in name for name in whole.files)
    differences = {name: float(np.max(np.abs(whole[name].astype(np.float64)
                                             - resumed[name].astype(np.float64))))
                   for name in whole.files}
    assert max(differences.values()) == 0.0, {k: v for k, v in differences.items() if v}
    # the report covers the whole run and says that it resumed, and from where
    reports = [json.loads((d / "report.json").read_text()) for d in (tmp_path / "whole", run)]
    assert reports[0]["resumed"] is False and reports[1]["resumed"] is True
    first, last = (r["models"]["lipschitz_vae"] for r in reports)
    assert first["resumed"] is None
    assert last["resumed"] == {"epoch": 1, "step": 2, "session": 3}
    assert len(last["history"]["loss"]) == 3
    assert last["history"].keys() == first["history"].keys()
    for key, values in first["history"].items():  # the resumed epoch's metrics included
        if strategy == "default":
            assert last["history"][key] == values, key
        else:  # each replica sums its own part of an epoch's metric: the resumed epoch's
            # total is added in another order (one float32 rounding)
            np.testing.assert_allclose(last["history"][key], values, rtol=1e-6, err_msg=key)
    assert last["train_seconds"] > 0
    assert not (run / "lipschitz_vae" / "backup").exists()  # removed once the run is complete


def test_early_stopping_and_learning_rate_reduction_resume_exactly(tmp_path):
    """Their counters (epochs without improvement, best value) and the early stopping's best
    weights are in the checkpoint: a run killed after the learning-rate drop and again
    mid-epoch stops at the same epoch with the same restored weights as the uninterrupted run
    (restarting the counters would train two more epochs)."""
    assert _session("converging", tmp_path / "whole", tmp_path / "whole.npz") == 0
    run = tmp_path / "resumed"
    assert _session("converging", run, tmp_path / "unused.npz", "epoch:2") == CRASH_EXIT
    saved = _state(run)
    plateau, early = saved["callbacks"]  # after the drop; one epoch without improvement
    assert plateau["wait"] == 0 and early["wait"] == 1 and early["best_epoch"] == 0
    # the checkpoint is the files its state names, nothing older
    assert set(os.listdir(run / "lipschitz_vae" / "backup")) == {
        train.ResumableBackup.STATE, saved["weights_file"], saved["best_weights_file"]}
    assert saved["weights_file"] == "weights-2-0.weights.h5"
    assert _session("converging", run, tmp_path / "unused.npz", "step:8") == CRASH_EXIT
    assert (_state(run)["epoch"], _state(run)["batch"]) == (2, 2)
    assert _session("converging", run, tmp_path / "resumed.npz") == 0
    whole, resumed = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(whole.files) == sorted(resumed.files)
    for name in whole.files:
        np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)
    reports = [json.loads((d / "report.json").read_text())["models"]["lipschitz_vae"]
               for d in (tmp_path / "whole", run)]
    for report in reports:
        assert report["epochs_trained"] == 3 and report["stopped_early"] is True
        assert report["best_epoch"] == 1  # counted from 1, as epochs_trained
        assert report["validation"] == "64 held-out training images"
        # (logged as the epoch ran: the drop at the end of epoch 2 shows from epoch 3)
        np.testing.assert_allclose(report["history"]["learning_rate"], [1e-3, 1e-3, 1e-4],
                                   rtol=1e-6)
    assert reports[0]["history"] == reports[1]["history"]
    data = json.loads((run / "report.json").read_text())["data"]
    assert data["train_images"] == 256 and data["validation_images"] == 64
    # killed after the checkpoint of the epoch at which it stopped, before the run was
    # complete: the next session trains no more and restores the same best weights
    stopped = tmp_path / "stopped"
    assert _session("converging", stopped, tmp_path / "unused.npz", "epoch:3") == CRASH_EXIT
    assert _state(stopped)["callbacks"][1]["stopped_epoch"] == 2
    assert _session("converging", stopped, tmp_path / "stopped.npz") == 0
    again = np.load(tmp_path / "stopped.npz")
    for name in whole.files:
        np.testing.assert_array_equal(whole[name], again[name], err_msg=name)
    report = json.loads((stopped / "report.json").read_text())["models"]["lipschitz_vae"]
    assert report["epochs_trained"] == 3 and report["best_epoch"] == 1
    assert report["resumed"] == {"epoch": 3, "step": 0, "session": 2}


def test_the_data_stream_starts_at_any_epoch_and_step():
    images = np.arange(10, dtype=np.float32)[:, None]
    whole, steps = distribute.training_dataset(images, 4, seed=3)
    batches = [b.numpy()[:, 0].tolist() for b in whole.take(4 * steps)]
    for epoch, batch in ((1, 0), (2, 0), (1, 2), (3, 1)):
        later, _ = distribute.training_dataset(images, 4, seed=3, start_epoch=epoch,
                                               start_batch=batch)
        got = [b.numpy()[:, 0].tolist() for b in later.take(2)]
        assert got == batches[epoch * steps + batch:epoch * steps + batch + 2], (epoch, batch)
    with pytest.raises(ValueError, match="start_batch must be an integer >= 0 and < steps"):
        distribute.training_dataset(images, 4, start_batch=3)
    with pytest.raises(ValueError, match="start_epoch"):
        distribute.training_dataset(images, 4, start_epoch=-1)


def _interrupted_after_one_epoch(config: train.TrainConfig, run_dir) -> np.ndarray:
    """Trains `config` on 64 random images in `run_dir` and interrupts it at the end of its
    first epoch (a checkpoint is left); the images."""
    import keras

    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(train.build_model(config), x, x[:8], config, str(run_dir),
                  extra_callbacks=(Stop(),))
    return x


def test_a_checkpoint_of_another_setting_is_refused(tmp_path):
    config = train.TrainConfig(architecture="conv", latent_dim=2, epochs=2, batch_size=32,
                               verbose=0, source="sample")
    x = _interrupted_after_one_epoch(config, tmp_path)
    other = train.TrainConfig(**{**config.__dict__, "batch_size": 16})
    with pytest.raises(ValueError, match="batch_size: 32 there, 16 now"):
        train.fit(train.build_model(other), x, x[:8], other, str(tmp_path))
    # another model (a checkpoint kept until the model is saved must not pass for it), or other
    # training images of the same number
    weaker = train.TrainConfig(**{**config.__dict__, "beta": 0.5})
    with pytest.raises(ValueError, match=r"another setting \(model settings beta\)"):
        train.fit(train.build_model(weaker), x, x[:8], weaker, str(tmp_path))
    with pytest.raises(ValueError, match=r"another setting \(the training images\)"):
        train.fit(train.build_model(config), x[::-1].copy(), x[:8], config, str(tmp_path))
    # the same weights, another training step: the conv kernels' over-relaxation
    relaxed = train.TrainConfig(**{**config.__dict__, "conv_relaxation": 1.5})
    with pytest.raises(ValueError, match="conv_relaxation: 1.0 there, 1.5 now"):
        train.fit(train.build_model(relaxed), x, x[:8], relaxed, str(tmp_path))
    with pytest.raises(ValueError, match="save_freq must be 'epoch' or a number of steps"):
        train.ResumableBackup(str(tmp_path), save_freq=0)


def test_a_damaged_checkpoint_is_a_clear_error_naming_its_folder(tmp_path):
    """An operator's review (2026-12-04): a damaged training_state.json raised json's own error
    (or a KeyError) naming no file, and a truncated weights file h5py's."""
    config = train.TrainConfig(latent_dim=2, hidden_units=(8,), epochs=2, batch_size=32,
                               verbose=0, source="sample", baseline=False)
    x = _interrupted_after_one_epoch(config, tmp_path)
    backup = next(tmp_path.rglob(train.ResumableBackup.STATE)).parent
    state = (backup / train.ResumableBackup.STATE).read_text()
    weights = backup / json.loads(state)["weights_file"]
    whole = weights.read_bytes()
    for damage, message in (
            (lambda: (backup / train.ResumableBackup.STATE).write_text("{"), "not valid JSON"),
            (lambda: (backup / train.ResumableBackup.STATE).write_text("[]"),
             "has no epoch, batch"),
            (lambda: weights.write_bytes(whole[: len(whole) // 2]), "cannot be read")):
        (backup / train.ResumableBackup.STATE).write_text(state)
        weights.write_bytes(whole)
        damage()
        with pytest.raises(ValueError, match=rf"checkpoint in .*backup is damaged: .*{message}.*"
                                             "delete that folder"):
            train.fit(train.build_model(config), x, x[:8], config, str(tmp_path))
