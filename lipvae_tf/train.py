"""Train a certified LipschitzVAE (robustness stated upfront) and certify the test set.

    python -m lipvae_tf.train --target_radius=1 --r=8 --p=0.5 --epochs=30 --output_dir=runs/fmnist

Steps: load data (tfds, IDX files or the bundled sample), design the Lipschitz budget for the
target, train with a progress bar, TensorBoard logs and BackupAndRestore checkpoints (re-running
the same command resumes), apply the converged projection, certify every test image with each
method, and write report.json, figures and the model (.keras) into the output directory.
Optionally trains the standard (unconstrained) VAE the same way as a baseline.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
import zipfile

import lipvae_tf

if lipvae_tf._is_cli(__name__, "lipvae-train"):  # a command, not an import: before TensorFlow loads
    lipvae_tf._cli_native_log_level()

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from lipvae_tf import bounds, checks, data, design, distribute, forward_error, report
from lipvae_tf.constraints import (
    CONSTRAINT_KINDS,
    DEFAULT_CONSTRAINT,
    DEFAULT_CONV_RELAXATION,
    check_relaxation,
    check_relaxation_applies,
    conv_kind,
)
from lipvae_tf.model import (
    ARCHITECTURES,
    LIKELIHOODS,
    RECONSTRUCTIONS,
    LipschitzVAE,
    StandardVAE,
)

__all__ = [
    "TrainConfig", "std_settings", "build_model", "load_images", "check_validation_images",
    "check_replica_split", "split_validation",
    "ResumableEarlyStopping", "ResumableReduceLROnPlateau", "ResumableBackup",
    "FinalizedValidation", "monitored_metric",
    "LEGACY_FINGERPRINT", "UNRECORDED_BEFORE", "model_fingerprint", "FitResult", "fit",
    "checkpoint_dir", "fit_run",
    "convergence_callbacks", "certify",
    "certificate_methods", "evaluate", "train_one", "run", "LEGACY_CERTIFICATE",
    "compare_certificates", "format_comparison", "target_radius", "reconstruction_rows",
    "config_from_flags", "main", "format_summary", "quiet_tensorflow_logs", "cli",
]


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on (written into the report)."""

    dataset: str = "fashion_mnist"
    source: str = "auto"
    data_dir: str | None = None
    idx_dir: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    architecture: str = "mlp"
    hidden_units: tuple[int, ...] = (512, 512)  # MLP widths (conv: filters are (32, 64))
    latent_dim: int = 10
    target_radius: float | None = 1.0
    r: float = 8.0
    p: float = 0.5
    method: str = "best"
    # the posterior std: "auto" is a fixed std design.DEFAULT_POSTERIOR_STD when designing for
    # target_radius and a learned one with explicit constants (their M_sigma is the std
    # network's); a number fixes it; None learns it under the cap std_cap (None: 0.1)
    posterior_std: float | str | None = "auto"
    std_cap: float | None = None
    constants: tuple[float, float, float] | None = None  # explicit (M_mu, M_sigma, M_g)
    likelihood: str = "continuous_bernoulli"
    beta: float = 1.0
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    ll_samples: int = 64
    baseline: bool = True
    output_dir: str = "runs/latest"
    seed: int = 0
    verbose: int = 1
    strategy: str = "default"  # tf.distribute: default, mirrored or multi_worker
    constraint: str = DEFAULT_CONSTRAINT  # per-step kernel control (lipvae_tf.constraints)
    conv_relaxation: float = DEFAULT_CONV_RELAXATION  # over-relaxation of the conv kernels' one
    checkpoint_steps: int | None = None  # also checkpoint every N steps (None: every epoch)
    reconstruction: str = "mean"  # what is certified: E[x | z] or the likelihood's parameter
    split: str = "decoder"  # how the budget is shared (lipvae_tf.design.SPLITS)
    # convergence: validate on the last `validation_images` of a seeded permutation of the
    # training set (0: validate on the test set), stop when the validation ELBO has not improved
    # by `min_delta` nats for `early_stopping_patience` epochs (best weights restored; `epochs`
    # is then the cap), and divide the learning rate by 10 after `reduce_lr_patience` such epochs
    validation_images: int = 0
    early_stopping_patience: int | None = None
    reduce_lr_patience: int | None = None
    min_delta: float = 0.0

    def __post_init__(self):
        """Checks the settings that would otherwise fail only after training (or never)."""
        for name, smallest, optional in (
                ("epochs", 1, False), ("batch_size", 1, False), ("ll_samples", 1, False),
                ("latent_dim", 1, False), ("validation_images", 0, False),
                ("checkpoint_steps", 1, True), ("early_stopping_patience", 1, True),
                ("reduce_lr_patience", 1, True), ("train_limit", 1, True),
                ("test_limit", 1, True)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
                    value < smallest):
                raise ValueError(f"{name} must be an integer >= {smallest}"
                                 f"{' (or unset)' if optional else ''}, got {value!r}")
        try:  # NumPy scalars too, not bools (True passed as 1 before)
            checks.non_negative_finite("min_delta", self.min_delta)
        except (TypeError, ValueError):
            raise ValueError(f"min_delta must be a finite number of nats >= 0, got "
                             f"{self.min_delta!r}") from None
        checks.one_of("verbose", self.verbose, (0, 1, 2))  # Keras' fit: silent, bar, lines
        checks.one_of("dataset", self.dataset, data.NAMES)
        checks.one_of("source", self.source, data.SOURCES)
        checks.one_of("architecture", self.architecture, ARCHITECTURES)
        checks.one_of("constraint", self.constraint, CONSTRAINT_KINDS)
        if self.architecture == "mlp":  # an empty --hidden_units= is a typo, not a linear VAE
            checks.positive_ints("hidden_units", self.hidden_units, minimum_length=1)
        checks.positive_finite("learning_rate", self.learning_rate)
        checks.non_negative_finite("beta", self.beta)
        check_relaxation("conv_relaxation", self.conv_relaxation)
        check_relaxation_applies(self.conv_relaxation, self.architecture,
                                 conv_kind(self.constraint))
        checks.seed("seed", self.seed)
        std_settings(self)  # the ValueError naming posterior_std or std_cap
        for name, allowed in (("reconstruction", RECONSTRUCTIONS), ("split", design.SPLITS),
                              ("method", bounds.METHODS), ("likelihood", LIKELIHOODS),
                              ("strategy", distribute.STRATEGIES)):
            checks.one_of(name, getattr(self, name), allowed)
        # the certificate's settings, before the data are loaded (they failed only after)
        if self.target_radius is not None:
            checks.positive_finite("target_radius", self.target_radius)
        checks.positive_finite("r", self.r)
        checks.probability_level("p", self.p)


def std_settings(config: TrainConfig) -> tuple[float | None, float | None]:
    """(posterior_std, std_cap) of the Lipschitz VAE that `config` builds: a fixed gamma and no
    cap, or None (a learned std) and its cap S. Raises ValueError naming posterior_std for a bad
    value, and naming std_cap when it is given with a fixed std (it applies to a learned one)."""
    gamma, cap = config.posterior_std, config.std_cap
    if gamma == "auto":
        gamma = None if config.constants is not None else design.DEFAULT_POSTERIOR_STD
    elif gamma is not None:
        try:  # NumPy scalars too (np.float32(0.05) was refused)
            checks.positive_finite("posterior_std", gamma)
        except (TypeError, ValueError):
            raise ValueError(f"posterior_std must be 'auto', None (a learned std) or a finite "
                             f"number > 0, got {config.posterior_std!r}") from None
    if cap is not None:
        cap = checks.positive_finite("std_cap", cap)
    return gamma, design.learned_std_cap(gamma, cap)


def build_model(config: TrainConfig) -> LipschitzVAE:
    """From the target radius (robustness upfront) or from explicit constants."""
    common = {**_shape_kwargs(config), **_control_kwargs(config)}
    gamma, cap = std_settings(config)
    if config.constants is not None:
        m_mu, m_sigma, m_g = config.constants
        if gamma is not None and m_sigma != 0:  # the model would name encoder_std, not this
            raise ValueError(
                f"constants: M_sigma={m_sigma!r} is a learned std's constant, and posterior_std="
                f"{gamma!r} fixes the std: give 0 there (--constants={m_mu!r},0,{m_g!r}) or "
                "learn the std (--posterior_std=learned)")
        if gamma is None and m_sigma == 0:
            raise ValueError(
                f"constants: M_sigma=0 leaves a learned std no budget: give it M_sigma > 0, or "
                f"fix the std (e.g. --posterior_std={design.DEFAULT_POSTERIOR_STD})")
        return LipschitzVAE(encoder_mean=m_mu, encoder_std=m_sigma, decoder=m_g,
                            std_cap=cap, posterior_std=gamma,
                            reconstruction=config.reconstruction, **common)
    if config.target_radius is None:
        raise ValueError("give either target_radius or constants")
    return LipschitzVAE.from_target(
        config.target_radius, config.r, config.p, method=config.method, std_cap=cap,
        posterior_std=gamma, split=config.split,
        reconstruction=config.reconstruction, **common,
    )


def _shape_kwargs(config: TrainConfig) -> dict:
    """The model arguments that the Lipschitz VAE and its StandardVAE baseline share."""
    return dict(latent_dim=config.latent_dim, architecture=config.architecture,
                hidden_units=tuple(config.hidden_units), likelihood=config.likelihood,
                beta=config.beta, seed=config.seed)


def _control_kwargs(config: TrainConfig) -> dict:
    """The kernel control's model arguments (the Lipschitz VAE's only)."""
    return dict(constraint=config.constraint, conv_relaxation=config.conv_relaxation)


def load_images(config: TrainConfig, split: str) -> tuple[np.ndarray, str]:
    """All images of a split as a float32 array, and the source they came from."""
    images, _, source = data.load_arrays(
        config.dataset, split, source=config.source, data_dir=config.data_dir,
        idx_dir=config.idx_dir, limit=config.train_limit if split == "train" else config.test_limit)
    return images, source


def check_validation_images(config: TrainConfig, train_images: int) -> int:
    """`config.validation_images` if it leaves at least one batch of the `train_images` to
    train on; ValueError naming it otherwise."""
    count = config.validation_images
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not (
            0 < count <= train_images - config.batch_size):
        if train_images <= config.batch_size:
            raise ValueError(
                f"validation_images={count!r} leaves no batch to train on: the {train_images} "
                f"training images are not more than batch_size={config.batch_size}; use "
                f"validation_images=0 (validate on the test set), more images or a smaller "
                f"batch_size")
        raise ValueError(f"validation_images must be 0 (validate on the test set) or an integer "
                         f"in [1, {train_images} - batch_size = "
                         f"{train_images - config.batch_size}], got {count!r}")
    return count


def check_replica_split(config: TrainConfig, replicas: int, train_images: int,
                        test_images: int) -> None:
    """ValueError naming the flags when a dataset's first batch does not split evenly across
    the `replicas` of the strategy: Keras' symbolic build fails on it under a MirroredStrategy
    (`InvalidArgumentError: Inputs to operation AddN ...`, after the data had loaded; an
    operator's review, 2026-12-04). A ragged last batch is fine."""
    if replicas == 1:
        return
    validation = config.validation_images
    firsts = [("training", min(config.batch_size, train_images - validation), "--batch_size"),
              ("validation", min(config.batch_size, validation or test_images),
               "--batch_size and --validation_images" if validation
               else "--batch_size and --test_limit"),
              ("test", min(config.batch_size, test_images), "--batch_size and --test_limit")]
    for what, size, to_choose in firsts:
        if size % replicas:
            raise ValueError(
                f"--strategy={config.strategy} runs {replicas} replicas, and the first {what} "
                f"batch holds {size} images, which do not split evenly across them (Keras' "
                f"symbolic build fails on that): choose {to_choose} so that it is a multiple of "
                f"{replicas}")


def split_validation(images: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training images, validation images): the last `config.validation_images` of the
    permutation of the training set drawn with `config.seed` are held out (the rest keep
    their order). Raises ValueError when fewer than one batch of training images would remain.
    """
    count = check_validation_images(config, len(images))
    order = np.random.default_rng(config.seed).permutation(len(images))
    held_out = np.sort(order[len(images) - count:])
    kept = np.sort(order[:len(images) - count])
    return images[kept], images[held_out]


class _CarriedState:
    """A Keras callback whose state survives `fit_run`'s several `fit` calls (an epoch resumed
    mid-way runs alone) and its checkpoints: the counters are reset by the first
    `on_train_begin` only, and `get_state`/`set_state` carry the attributes named in STATE
    ("best" a float, the others integers; None where the callback has not set them yet)."""

    STATE: tuple[str, ...] = ()

    def on_train_begin(self, logs=None):
        if not getattr(self, "_begun", False):
            super().on_train_begin(logs)
            self._begun = True

    def get_state(self) -> dict:
        return {key: None if getattr(self, key, None) is None else float(getattr(self, key))
                for key in self.STATE}

    def set_state(self, state: dict, best_weights: list | None = None) -> None:
        for key in self.STATE:
            value = state[key]
            setattr(self, key, value if key == "best" or value is None else int(value))
        self._begun = True


class ResumableEarlyStopping(_CarriedState, keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` (best weights kept) that resumes exactly; the best
    weights are restored by `restore_best()` once the whole run is over, not at the end of
    each `fit` call."""

    STATE = ("wait", "stopped_epoch", "best", "best_epoch")

    def __init__(self, **kwargs):
        super().__init__(restore_best_weights=True, **kwargs)

    def on_train_end(self, logs=None):
        pass  # not at the end of a partial epoch: fit_run calls restore_best() at the end

    def restore_best(self, model: keras.Model) -> int | None:
        """Loads the best epoch's weights into `model`; that epoch (0-based), or None if no
        epoch was seen."""
        if self.best_weights is None:
            return None
        if self.verbose:
            ended = (f"stopped after epoch {self.stopped_epoch + 1}" if self.stopped_epoch
                     else "no plateau before the epoch cap")
            print(f"early stopping: {ended}; restoring the weights of epoch "
                  f"{self.best_epoch + 1}", flush=True)
        with model.distribute_strategy.scope():
            model.set_weights(self.best_weights)
        return int(self.best_epoch)

    def set_state(self, state: dict, best_weights: list | None = None) -> None:
        super().set_state(state)
        self.best_weights = best_weights


class ResumableReduceLROnPlateau(_CarriedState, keras.callbacks.ReduceLROnPlateau):
    """`keras.callbacks.ReduceLROnPlateau` that resumes exactly (the learning rate itself is an
    optimizer variable, in the checkpoint with the optimizer)."""

    STATE = ("wait", "best", "cooldown_counter")


def _count(number: int, noun: str) -> str:
    """'1 step', '2 steps'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


class ResumableBackup(keras.callbacks.Callback):
    """Checkpoints a run so that resuming it gives the uninterrupted run, bit for bit.

    Like `keras.callbacks.BackupAndRestore` (whose `latest.weights.h5` it writes: the weights,
    the optimizer's slots and step, and the noise generator's state, see
    `LipschitzVAE.save_own_variables`), plus what Keras' callback leaves out: the step within
    the epoch (Keras restarts an epoch interrupted mid-way from its first batch, and loses the
    epoch number when interrupted twice), the running epoch metrics, the history of the
    finished epochs and the training time so far (`training_state.json`). `fit` reads
    `state()` before training to start the data stream where the checkpoint stopped.

    save_freq: "epoch" (at the end of every epoch) or a number of steps (every that many steps
    and at the end of every epoch).
    """

    WEIGHTS = "latest.weights.h5"  # the name checkpoints of lipvae_tf 0.2.0 and older used
    STATE = "training_state.json"

    def __init__(self, backup_dir: str, save_freq: str | int = "epoch",
                 stateful: tuple = ()):
        super().__init__()
        # callbacks with get_state()/set_state() (early stopping, learning-rate reduction):
        # their counters, and the early stopping's best weights, are part of the checkpoint
        self.stateful = tuple(stateful)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, (int, np.integer)) or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or a number of steps >= 1, "
                             f"got {save_freq!r}")
        # a file where the folder should be failed at the first checkpoint, after an epoch
        self.backup_dir = checks.folder_path("backup_dir", backup_dir)
        self.save_freq = save_freq
        self.epoch, self.batch_offset, self.steps_in_epoch = 0, 0, 0
        self.history: dict[str, list[float]] = {}
        self.fingerprint: dict = {}
        self.seconds_before, self._started = 0.0, time.perf_counter()  # this session's start
        self.sessions: list[dict] = []
        self.steps_per_epoch: int | None = None
        self._metric_states: list | None = None

    # what every checkpoint's state file holds (lipvae_tf 0.2.0's included)
    REQUIRED = ("epoch", "batch", "history", "seconds", "sessions", "fingerprint")

    def state(self) -> dict | None:
        """The saved training state, or None when there is no checkpoint.

        Raises:
            ValueError: naming the folder, if the state file is not valid JSON or lacks a
                value of `REQUIRED` (a damaged checkpoint raised json's own error, naming no
                file: an operator's review, 2026-12-04).
        """
        path = os.path.join(self.backup_dir, self.STATE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                saved = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(self._damaged(f"{self.STATE} is not valid JSON ({error})")) from None
        missing = [key for key in self.REQUIRED if not isinstance(saved, dict) or key not in saved]
        if missing:
            raise ValueError(self._damaged(f"{self.STATE} has no {', '.join(missing)}"))
        saved.setdefault("weights_file", self.WEIGHTS)
        if not os.path.isfile(os.path.join(self.backup_dir, saved["weights_file"])):
            return None
        return saved

    def _damaged(self, what: str) -> str:
        return (f"the checkpoint in {self.backup_dir} is damaged: {what}; delete that folder to "
                "train afresh")

    def restore(self, model: keras.Model, fingerprint: dict,
                epochs: int | None = None) -> dict | None:
        """Loads the checkpoint into `model` (compiled, optimizer built); its training state.

        fingerprint: what the checkpoint must have been written with (batch size, seed, data
        size...); a checkpoint of another setting raises a ValueError naming the difference.
        epochs: the run's epochs; a checkpoint holding more raises a ValueError (it would return
        the longer training). Both refusals come before anything is loaded into `model`.
        """
        self.fingerprint = fingerprint
        self.steps_per_epoch = fingerprint.get("steps_per_epoch")
        saved = self.state()
        if saved is None:
            return None
        # a setting that older checkpoints did not record had its default then; the model and
        # the data they did not record at all (not compared)
        written = {**LEGACY_FINGERPRINT, **saved["fingerprint"]}
        different = [_difference(k, written.get(k), v) for k, v in fingerprint.items()
                     if written.get(k) != v and not (k in UNRECORDED_BEFORE and k not in
                                                     saved["fingerprint"])]
        if different:
            raise ValueError(
                f"the checkpoint in {self.backup_dir} was written by another setting "
                f"({', '.join(different)}); rerun with the same flags, or delete that folder to "
                "start afresh")
        # a checkpoint inside epoch `epochs + 1` (saved["batch"] steps of it done) holds more
        # than `epochs` epochs too: its weights would be delivered as an `epochs`-epoch model
        # (an operator's review, 2026-12-04: a 1-epoch rerun of a 3-epoch run killed 30 steps
        # into epoch 2 trained nothing and reported those weights as 1 epoch)
        if epochs is not None and (saved["epoch"] > epochs
                                   or (saved["epoch"] == epochs and saved["batch"] > 0)):
            held = _count(saved["epoch"], "trained epoch") + (
                f" and {_count(saved['batch'], 'step')} of the next" if saved["batch"] else "")
            needed = saved["epoch"] + (1 if saved["batch"] else 0)
            raise ValueError(
                f"the checkpoint in {self.backup_dir} holds {held}, more than epochs={epochs}: "
                f"rerun with epochs >= {needed}, or delete that folder to train afresh")
        try:
            with model.distribute_strategy.scope():
                model.load_weights(os.path.join(self.backup_dir, saved["weights_file"]))
        except (OSError, ValueError) as error:  # h5py's error for a truncated file
            raise ValueError(self._damaged(f"{saved['weights_file']} cannot be read "
                                           f"({error})")) from None
        self.epoch, self.batch_offset = saved["epoch"], saved["batch"]
        self.history = saved["history"]
        self.seconds_before, self.sessions = saved["seconds"], saved["sessions"]
        self._metric_states = saved["metric_states"] if self.batch_offset else None
        best_weights = None
        if saved.get("best_weights_file"):
            try:
                with np.load(os.path.join(self.backup_dir, saved["best_weights_file"])) as stored:
                    best_weights = [stored[f"w{i}"] for i in range(len(stored.files))]
            except (OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
                raise ValueError(self._damaged(f"{saved['best_weights_file']} cannot be read "
                                               f"({error})")) from None
        for callback, state in zip(self.stateful, saved.get("callbacks", [])):
            callback.set_model(model)
            callback.set_state(state, best_weights)
        return saved

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.steps_in_epoch = epoch, 0
        if self._metric_states is not None:  # an epoch resumed mid-way: its running metrics
            _set_metric_states(self.model, self._metric_states)
            self._metric_states = None

    def on_train_batch_end(self, batch, logs=None):
        self.steps_in_epoch += 1
        done = self.batch_offset + self.steps_in_epoch
        # (the last step of an epoch is saved by on_epoch_end, after the validation)
        if self.save_freq != "epoch" and done % self.save_freq == 0 and (
                self.steps_per_epoch is None or done < self.steps_per_epoch):
            self.save(self.epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.batch_offset = 0
        self.save(epoch + 1, 0)

    def seconds(self) -> float:
        """Training time of the whole run so far (every session)."""
        return self.seconds_before + time.perf_counter() - self._started

    def save(self, epoch: int, batch: int) -> None:
        """Writes the checkpoint: the weights (and the early stopping's best weights) into
        files named by their position, then `training_state.json` naming them, replaced
        atomically. A process killed at any point leaves a consistent checkpoint: the previous
        state file still names the previous files, which are deleted only after it is replaced.
        """
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"weights-{epoch}-{batch}.weights.h5"
        self.model.save_weights(os.path.join(self.backup_dir, weights), overwrite=True)
        best_file = None
        for callback in self.stateful:
            best = getattr(callback, "best_weights", None)
            if best is not None:
                best_file = f"best-{int(callback.best_epoch)}.npz"
                path = os.path.join(self.backup_dir, best_file)
                if not os.path.isfile(path):  # written once per best epoch
                    np.savez(path + ".tmp.npz", **{f"w{i}": w for i, w in enumerate(best)})
                    os.replace(path + ".tmp.npz", path)
        state = {"epoch": epoch, "batch": batch, "history": self.history,
                 "metric_states": _metric_states(self.model) if batch else None,
                 "seconds": self.seconds(), "sessions": self.sessions,
                 "fingerprint": self.fingerprint, "weights_file": weights,
                 "best_weights_file": best_file,
                 "callbacks": [callback.get_state() for callback in self.stateful]}
        path = os.path.join(self.backup_dir, self.STATE)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(path + ".tmp", path)
        for name in os.listdir(self.backup_dir):  # the files the new state no longer names
            if name.startswith(("weights-", "best-", self.WEIGHTS)) and name not in (
                    weights, best_file):
                os.remove(os.path.join(self.backup_dir, name))

    def delete(self) -> None:
        """Removes the checkpoint (the run is complete)."""
        shutil.rmtree(self.backup_dir, ignore_errors=True)


# the settings that older checkpoints (lipvae_tf 0.2.0, and before conv_relaxation) did not
# record, as they were then
LEGACY_FINGERPRINT = {"validation_images": None, "early_stopping_patience": None,
                      "reduce_lr_patience": None, "min_delta": 0.0, "conv_relaxation": 1.0}


# recorded since 2026-12-01: a checkpoint kept until the model is saved let a rerun with another
# model (target, beta, likelihood...) or other data adopt a finished training; the validation
# images since 2026-12-02 (a resumed run compared the new data's ELBO with the old data's best)
UNRECORDED_BEFORE = ("model", "train_data_sha256", "validation_data_sha256")


def _difference(key: str, there, now) -> str:
    """One setting of a checkpoint's fingerprint against this run's, for the error message; for
    the model's config, the names of the settings that differ."""
    if key == "model" and isinstance(there, dict) and isinstance(now, dict):
        names = sorted(k for k in set(there) | set(now) if there.get(k) != now.get(k))
        return f"model settings {', '.join(names)}"
    if key == "train_data_sha256":
        return "the training images"
    if key == "validation_data_sha256":
        return "the validation images"
    return f"{key}: {there!r} there, {now!r} now"


def _sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def model_fingerprint(model: keras.Model) -> dict:
    """The model's config as JSON would read it back (tuples as lists), without its name: what
    a checkpoint's weights were trained as."""
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable")}
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _metric_states(model: keras.Model) -> list[list]:
    return [[np.asarray(v.numpy()).tolist() for v in metric.variables]
            for metric in model.metrics]


def _set_metric_states(model: keras.Model, states: list[list]) -> None:
    """Assigns saved metric totals and counts. Under several replicas the metrics' variables
    are summed on read: replica 0 takes the value and the others 0 (the sum is then exact)."""
    strategy = model.distribute_strategy
    variables = [v for metric in model.metrics for v in metric.variables]
    values = [np.asarray(value) for state in states for value in state]
    if strategy.num_replicas_in_sync == 1:
        for variable, value in zip(variables, values):
            variable.assign(value)
        return

    def assign():
        first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        for variable, value in zip(variables, values):
            value = tf.constant(value, variable.dtype)
            variable.assign(tf.where(first, value, tf.zeros_like(value)))

    strategy.run(tf.function(assign))


@dataclasses.dataclass
class FitResult:
    """What `fit_run` did: the whole run's history, its training time (every session), and how
    it resumed (None: it started from scratch)."""

    history: dict[str, list[float]]
    seconds: float
    resumed: dict | None
    stopped_early: bool = False  # the early stopping ended the run before config.epochs
    best_epoch: int | None = None  # 0-based epoch whose weights were restored (early stopping)


def fit(model: LipschitzVAE, train_x: np.ndarray, test_x: np.ndarray, config: TrainConfig,
        run_dir: str, extra_callbacks: tuple = ()) -> dict:
    """ELBO training with progress bar, TensorBoard and resumable checkpoints; the history of
    the whole run (`fit_run` also says whether and where it resumed)."""
    return fit_run(model, train_x, test_x, config, run_dir, extra_callbacks).history


def checkpoint_dir(run_dir: str) -> str:
    """Where `fit_run` keeps the checkpoint of a run in `run_dir`."""
    return os.path.join(run_dir, "backup")


def fit_run(model: LipschitzVAE, train_x: np.ndarray, test_x: np.ndarray, config: TrainConfig,
            run_dir: str, extra_callbacks: tuple = (), keep_checkpoint: bool = False
            ) -> FitResult:
    """ELBO training with progress bar, TensorBoard and checkpoints that resume exactly.

    Re-running with the same run_dir after an interruption resumes from the last checkpoint
    (every epoch, and every `config.checkpoint_steps` steps) and gives the weights of the
    uninterrupted run bit for bit on one device: the checkpoint holds the weights, the
    optimizer (step, slots; a learning-rate schedule follows the step), the noise generator's
    state and the position in the data stream (each epoch's order is a function of the seed
    and the epoch number). It also resumes under another number of replicas. Compiles in the
    strategy the model was built under; data is fed as global batches sharded by tf.data
    (lipvae_tf.distribute). The checkpoint is deleted at the end, unless `keep_checkpoint`:
    then the caller deletes `checkpoint_dir(run_dir)` once its results are written (a run
    interrupted in between resumes with no epoch left to train, not from scratch).
    """
    distribute.compile_in_scope(model, lambda: keras.optimizers.Adam(config.learning_rate))
    monitor = monitored_metric(model)
    convergence = convergence_callbacks(config, monitor)
    backup = ResumableBackup(checkpoint_dir(run_dir),
                             config.checkpoint_steps or "epoch", stateful=convergence)
    _, steps = distribute.training_dataset(train_x, config.batch_size, seed=config.seed)
    saved = backup.restore(model, {"batch_size": config.batch_size, "seed": config.seed,
                                   "train_images": len(train_x), "steps_per_epoch": steps,
                                   "learning_rate": config.learning_rate,
                                   "validation_images": config.validation_images or None,
                                   "early_stopping_patience": config.early_stopping_patience,
                                   "reduce_lr_patience": config.reduce_lr_patience,
                                   "min_delta": config.min_delta,
                                   "conv_relaxation": config.conv_relaxation,
                                   "model": model_fingerprint(model),
                                   "train_data_sha256": _sha256(train_x),
                                   # early stopping and the learning-rate drops follow it
                                   "validation_data_sha256": _sha256(test_x)},
                           epochs=config.epochs)
    # where this session took over: "epoch" = epochs completed (Keras' 0-based initial_epoch),
    # "step" = steps done of the next epoch, and which session of the run it is (2 = the first
    # resumption); the console names the epoch 1-based, as Keras' progress bar does
    resumed = None if saved is None else {"epoch": saved["epoch"], "step": saved["batch"],
                                          "session": len(saved["sessions"]) + 1}
    backup.sessions = [*backup.sessions, {"start_epoch": backup.epoch,
                                          "start_batch": backup.batch_offset}]
    if resumed and config.verbose:
        done = f"{_count(backup.epoch, 'epoch')} of {config.epochs} done"
        if backup.batch_offset:
            rest = (f"epoch {backup.epoch + 1} resumes after step {backup.batch_offset} of "
                    f"{steps} (Keras' bar shows that epoch's remaining "
                    f"{steps - backup.batch_offset} steps)")
        elif backup.epoch >= config.epochs:  # interrupted after training (while certifying)
            rest = "no training is left: the run goes on to finalize and certify"
        else:
            rest = f"epoch {backup.epoch + 1} starts"
        print(f"resuming {run_dir} from its checkpoint: {done}; {rest}", flush=True)
    validation = distribute.evaluation_dataset(test_x, config.batch_size)
    # the finalized validation first (the others read its value), the convergence callbacks
    # before the checkpoint, which saves their state
    finalized = ([FinalizedValidation(validation)]
                 if convergence and monitor == "val_finalized_elbo" else [])
    callbacks = [*finalized, keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
                 *convergence, backup, *extra_callbacks]
    epoch = backup.epoch
    early = next((c for c in convergence if isinstance(c, ResumableEarlyStopping)), None)
    stopped = bool(early and early.stopped_epoch)  # a checkpoint written when it stopped
    while epoch < config.epochs and not stopped:
        # an epoch interrupted mid-way runs alone for its remaining steps; then whole epochs
        start_batch = backup.batch_offset
        end = epoch + 1 if start_batch else config.epochs
        data, _ = distribute.training_dataset(train_x, config.batch_size, seed=config.seed,
                                              start_epoch=epoch, start_batch=start_batch)
        model.fit(data, steps_per_epoch=steps - start_batch, initial_epoch=epoch, epochs=end,
                  validation_data=validation, callbacks=callbacks, verbose=config.verbose,
                  shuffle=False)  # the dataset shuffles (per epoch, stateless)
        epoch, stopped = end, bool(model.stop_training)  # (any callback may stop the run)
    best_epoch = None if early is None else early.restore_best(model)
    epochs_run = len(backup.history.get("loss", []))
    if not keep_checkpoint:
        backup.delete()
    return FitResult(history=backup.history, seconds=backup.seconds(), resumed=resumed,
                     stopped_early=bool(early and early.stopped_epoch
                                        and epochs_run < config.epochs),
                     best_epoch=best_epoch)


class FinalizedValidation(keras.callbacks.Callback):
    """Adds `val_finalized_elbo` to each epoch's logs: the validation ELBO of the model that
    `finalize()` would make of the weights now (every constrained kernel projected exactly onto
    its bound), the model the run will deliver.

    The per-step controls steer: between projections the kernels sit above their bounds (5-7 %
    for the subspace clip's dense kernels at learning rate 1e-3, 7-17 % for conv kernels;
    BENCHMARKS.md, "The subspace clip during training"), so the plain validation ELBO ranks
    epochs by a model with more Lipschitz budget than it keeps. The kernels are copied, projected,
    evaluated and put back bit for bit, so training continues from the same weights (the
    evaluation's noise draws advance the model's seed generator, which the checkpoint holds).

    Keras calls callbacks in list order and each sees the logs as the ones before it left
    them: place this one before every callback that monitors `val_finalized_elbo`
    (`EarlyStopping`, `ReduceLROnPlateau`, `ModelCheckpoint`); after them they find no such
    metric (EarlyStopping then warns every epoch and never stops).

    Args:
        validation_data: what `keras.Model.evaluate` takes (here a batched `tf.data.Dataset`).
    """

    def __init__(self, validation_data):
        super().__init__()
        self.validation_data = validation_data

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        kept = [(v, v.numpy()) for v in model.constrained_kernels()]
        try:
            with model.distribute_strategy.scope():
                model.finalize()
            result = model.evaluate(self.validation_data, verbose=0, return_dict=True)
        finally:
            with model.distribute_strategy.scope():
                for variable, value in kept:
                    variable.assign(value)
        if logs is not None:
            logs["val_finalized_elbo"] = float(result["elbo"])


def monitored_metric(model: keras.Model) -> str:
    """What early stopping and learning-rate reduction follow: the finalized model's validation
    ELBO for a model with constrained kernels (`FinalizedValidation`), else the validation ELBO."""
    constrained = isinstance(model, LipschitzVAE) and bool(model.constrained_kernels())
    return "val_finalized_elbo" if constrained else "val_elbo"


def convergence_callbacks(config: TrainConfig, monitor: str = "val_elbo") -> tuple:
    """Early stopping and learning-rate reduction on `monitor` (a validation ELBO), as
    configured."""
    callbacks = []  # (the settings were checked by TrainConfig)
    common = dict(monitor=monitor, mode="max", min_delta=config.min_delta,
                  verbose=1 if config.verbose else 0)
    if config.reduce_lr_patience is not None:
        callbacks.append(ResumableReduceLROnPlateau(patience=config.reduce_lr_patience,
                                                    factor=0.1, **common))
    if config.early_stopping_patience is not None:
        callbacks.append(ResumableEarlyStopping(patience=config.early_stopping_patience,
                                                **common))
    return tuple(callbacks)


def certify(model: LipschitzVAE, images: np.ndarray, config: TrainConfig) -> dict:
    """Certified radius of every image with every method that applies to the model."""
    return {m: model.certified_radius(images, config.r, config.p, method=m)
            for m in certificate_methods(model)}


certificate_methods = report.certificate_methods


def evaluate(model: LipschitzVAE, test_x: np.ndarray, config: TrainConfig) -> dict:
    """Test ELBO terms (mean over the test set) and the importance-weighted log-likelihood."""
    metrics = model.evaluate(test_x, batch_size=config.batch_size, verbose=0, return_dict=True)
    # verbose 2 (a line per epoch): no progress bar, whose updates fill a piped log
    log_likelihood = model.log_likelihood(test_x, samples=config.ll_samples,
                                          verbose=config.verbose)
    return {**{k: float(v) for k, v in metrics.items()},
            "log_likelihood_iwae": float(log_likelihood.mean()), "iwae_samples": config.ll_samples}


def train_one(model: LipschitzVAE, name: str, train_x, test_x, config: TrainConfig,
              keep_checkpoint: bool = False) -> dict:
    """Train, finalize, evaluate and certify one model; save it as <output_dir>/<name>.keras.
    Its checkpoint (`checkpoint_dir`) is deleted once the model is saved, unless
    `keep_checkpoint`: then the caller deletes it once everything that follows is written
    (`run`: after report.json; a run interrupted after this model was saved trained it again
    from scratch on the rerun, a review of 2026-12-03)."""
    keep_checkpoint = checks.flag("keep_checkpoint", keep_checkpoint)
    run_dir = os.path.join(config.output_dir, name)
    if config.verbose:
        print(f"training {name} ({type(model).__name__}, {config.architecture}, "
              f"{config.epochs} epochs) -> {run_dir}", flush=True)
    before = model.lipschitz_constants()
    # validated on a held-out part of the training set when asked, else on the test set
    fit_x, validation_x = (split_validation(train_x, config) if config.validation_images
                           else (train_x, test_x))
    # the checkpoint outlives training until the model is saved: finalizing and certifying
    # take a while, and a run interrupted there resumed from scratch (a newcomer's Ctrl-C)
    fitted = fit_run(model, fit_x, validation_x, config, run_dir, keep_checkpoint=True)
    projection = model.finalize()  # converged projection before certifying ({} if unconstrained)
    radii = certify(model, test_x, config)
    model_path = os.path.join(config.output_dir, f"{name}.keras")
    model.save(model_path)
    if not keep_checkpoint:
        shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)
    return {
        "class": type(model).__name__,
        "constants_at_start": before,
        "constants": model.lipschitz_constants(),
        "finalize_iterations": projection,
        "train_seconds": fitted.seconds,  # every session of a resumed run
        "resumed": fitted.resumed,  # None, or where this session took over from a checkpoint
        "history": fitted.history,  # the whole run's epochs
        "epochs_trained": len(fitted.history.get("loss", [])),
        "stopped_early": fitted.stopped_early,
        # the restored epoch, counted from 1 as the progress bar and `epochs_trained` count
        "best_epoch": None if fitted.best_epoch is None else fitted.best_epoch + 1,
        "validation": "test set" if not config.validation_images else
        f"{config.validation_images} held-out training images",
        "test": evaluate(model, test_x, config),
        "certified_radius": {m: report.summarize(v) for m, v in radii.items()},
        "model_path": model_path,
        "_radii": radii,
    }


def run(config: TrainConfig) -> dict:
    """The whole job; returns the report (also written to <output_dir>/report.json).

    Models are built and trained under `config.strategy`; a non-chief worker of a multi-worker
    run writes into <output_dir>/workers/<task>.
    """
    # the output folder before anything runs (not in TrainConfig itself: the module's defaults
    # are one, and importing it must not depend on the current folder)
    checks.folder_path("output_dir", config.output_dir)
    # before training: the certificates at the end would refuse reduced-precision float32
    forward_error.check_float32_execution()
    # first: a MultiWorkerMirroredStrategy must be created before any other TensorFlow work
    strategy = distribute.make_strategy(config.strategy)
    waiting = distribute.worker_description(strategy)
    if waiting and config.verbose:
        print(waiting, flush=True)
    if config.strategy == "multi_worker" and not waiting and config.verbose:
        print("note: --strategy=multi_worker with no cluster of several tasks in TF_CONFIG: "
              "this process trains alone, as one worker", flush=True)
    config = dataclasses.replace(
        config, output_dir=distribute.worker_path(config.output_dir, strategy))
    keras.utils.set_random_seed(config.seed)
    try:
        os.makedirs(config.output_dir, exist_ok=True)
    except OSError as error:  # e.g. under /proc: the message named no setting
        raise ValueError(f"output_dir {config.output_dir!r} cannot be created: "
                         f"{error.strerror or error}") from error
    earlier = [name for name in ("report.json", "lipschitz_vae.keras", "standard_vae.keras")
               if os.path.isfile(os.path.join(config.output_dir, name))]
    if earlier and config.verbose:  # a finished run's files: said, not silently mixed
        print(f"note: {config.output_dir} holds an earlier run's {', '.join(earlier)}; this run "
              "replaces the files it writes and leaves the others as they are", flush=True)
    orphan = checkpoint_dir(os.path.join(config.output_dir, "standard_vae"))
    if not config.baseline and os.path.isdir(orphan) and config.verbose:
        # an interrupted run's baseline checkpoint, which this run neither resumes nor removes
        print(f"note: {orphan} holds an interrupted run's baseline checkpoint, which this run "
              "(--nobaseline) leaves as it is: rerun with --baseline to finish it, or delete it",
              flush=True)
    # the design first: an infeasible target was reported only after all the data had loaded
    model = distribute.build_in_scope(strategy, lambda: build_model(config))
    train_x, train_source = load_images(config, "train")
    test_x, test_source = load_images(config, "test")
    if config.validation_images:  # before anything is trained
        check_validation_images(config, len(train_x))
    check_replica_split(config, strategy.num_replicas_in_sync, len(train_x), len(test_x))
    if config.verbose:
        print(f"data: {len(train_x)} train images ({train_source}), {len(test_x)} test images "
              f"({test_source})", flush=True)
    start_radii = certify(model, test_x, config)
    results = {"lipschitz_vae": train_one(model, "lipschitz_vae", train_x, test_x, config,
                                          keep_checkpoint=True)}
    results["lipschitz_vae"]["certified_radius_at_start"] = {
        m: report.summarize(v) for m, v in start_radii.items()
    }
    comparison = compare_certificates(model, test_x, config, results["lipschitz_vae"]["_radii"])
    models = {"lipschitz_vae": model}
    if config.baseline:
        keras.utils.set_random_seed(config.seed)
        baseline = distribute.build_in_scope(strategy,
                                             lambda: StandardVAE(**_shape_kwargs(config)))
        results["standard_vae"] = train_one(baseline, "standard_vae", train_x, test_x, config,
                                            keep_checkpoint=True)
        models["standard_vae"] = baseline
    target = target_radius(config)
    figures = _figures(models, results, test_x, config, target)
    for result in results.values():
        result.pop("_radii")
    full = {
        "config": dataclasses.asdict(config),
        # the replicas in sync under config.strategy (1 and 2 looked the same in the report)
        "replicas": int(strategy.num_replicas_in_sync),
        "data": {"train_source": train_source, "test_source": test_source,
                 "train_images": len(train_x), "test_images": len(test_x),
                 # of the train images, held out for validation (0: validated on the test set)
                 "validation_images": config.validation_images},
        "design": model.design,
        # None when no target was asked for (explicit --constants)
        "target_met": None if target is None else bool(
            results["lipschitz_vae"]["certified_radius"][config.method]["min"] >= target),
        "models": results,
        # lipvae_tf 0.1's certificate and the current one, on the same trained weights
        "certificate_comparison": comparison,
        "figures": figures,
        # whether any model's training took over from a checkpoint (details per model)
        "resumed": any(r["resumed"] is not None for r in results.values()),
    }
    full["report_path"] = report.write_json(full, os.path.join(config.output_dir, "report.json"))
    for name in results:  # kept until now: a rerun of an interrupted run resumes, not retrains
        shutil.rmtree(checkpoint_dir(os.path.join(config.output_dir, name)), ignore_errors=True)
    return full


# the certificate of lipvae_tf 0.1: the paper's reconstruction lambda = sigmoid(logits), and the
# perturbed input's std bounded through M_sigma only (no std cap)
LEGACY_CERTIFICATE = {"method": "best", "reconstruction": "parameter", "use_std_cap": False}


def compare_certificates(model: LipschitzVAE, images: np.ndarray, config: TrainConfig,
                         radii: dict[str, np.ndarray] | None = None) -> dict:
    """lipvae_tf 0.1's certificate (`LEGACY_CERTIFICATE`) and the current one (config.method,
    the model's reconstruction mode, the std cap) of the same weights on `images`: settings and
    radius summaries of each, and the ratio of the medians. `radii`: the current certificates
    when already computed (`certify`)."""
    legacy = model.certified_radius(images, config.r, config.p, **LEGACY_CERTIFICATE)
    current = (radii[config.method] if radii is not None and config.method in radii
               else model.certified_radius(images, config.r, config.p, method=config.method))
    old, new = report.summarize(legacy), report.summarize(current)
    return {
        "r": config.r, "p": config.p, "images": len(images),
        "lipvae_tf_0.1": {**LEGACY_CERTIFICATE, "radius": old},
        "current": {"method": config.method, "reconstruction": model.reconstruction,
                    "use_std_cap": model.std_cap is not None,
                    "posterior_std": model.posterior_std, "radius": new},
        # undefined (None) when 0.1's median radius is 0: JSON has no inf
        "median_ratio": new["median"] / old["median"] if old["median"] > 0 else None,
    }


def format_comparison(comparison: dict) -> str:
    """One line: lipvae_tf 0.1's certificate against the current one, median and min. The
    reconstruction each certifies is named (lambda = sigmoid(logits) is 1/4-Lipschitz in the
    logits, E[x|z] 1/12: for the continuous Bernoulli most of the ratio is that choice)."""
    old, new = comparison["lipvae_tf_0.1"], comparison["current"]
    mode = {"mean": "E[x|z] certified", "parameter": "lambda = sigmoid(logits) certified"}
    fixed = new.get("posterior_std")
    # a fixed std has no cap to leave out; a learned std's cap is what 0.1 did not use
    legacy_std = "" if fixed is not None else ", no std cap"
    current_std = (f", fixed std {fixed:g}" if fixed is not None
                   else ", std cap" if new["use_std_cap"] else "")
    return (f"certificate on the same weights (r = {comparison['r']:g}, p = {comparison['p']:g}):"
            f" lipvae_tf 0.1's choices ({old['method']}, {mode[old['reconstruction']]}"
            f"{legacy_std}) median {old['radius']['median']:.4f} min "
            f"{old['radius']['min']:.4f} -> now ({new['method']}, "
            f"{mode.get(new['reconstruction'], new['reconstruction'])}{current_std}) median "
            f"{new['radius']['median']:.4f} min {new['radius']['min']:.4f} "
            + (f"({comparison['median_ratio']:.2f}x the median)"
               if comparison["median_ratio"] is not None else "(0.1's median is 0: no ratio)"))


def target_radius(config: TrainConfig) -> float | None:
    """The certified radius the run was asked to reach: None with explicit constants (they
    override target_radius, so no target was asked for)."""
    return None if config.constants is not None else config.target_radius


def _figures(models: dict, results: dict, test_x: np.ndarray, config: TrainConfig,
             target: float | None) -> dict:
    paths = {"radius_histogram": report.plot_radius_histogram(
        results["lipschitz_vae"]["_radii"], target,
        os.path.join(config.output_dir, "certified_radius_histogram.png"))}
    paths["reconstructions"] = report.plot_reconstructions(
        reconstruction_rows(models, test_x[:10]),
        os.path.join(config.output_dir, "reconstructions.png"),
        title="first test images and their certified reconstructions g(mu(x)) (no sampling)")
    return paths


def reconstruction_rows(models: dict, originals: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of the reconstructions figure: the originals, then per model the reconstruction
    its certificate is about, g(mu(x)) in the model's mode (`predict`, `reconstruct(sample=
    False)`), labelled with that mode."""
    mode = {"mean": "E[x|z]", "parameter": "lambda"}
    rows = {"original x": originals}
    for name, model in models.items():
        title = {"lipschitz_vae": "Lipschitz VAE", "standard_vae": "standard VAE"}.get(
            name, name.replace("_", " "))
        rows[f"{title}\ng(mu(x)) = {mode.get(model.reconstruction, model.reconstruction)}"
             f"\n{'certified' if name == 'lipschitz_vae' else 'baseline'}"] = model.reconstruct(
                 originals, sample=False)
    return rows


# ----- command line -------------------------------------------------------------------------

_DEFAULTS = TrainConfig()
flags.DEFINE_string("dataset", _DEFAULTS.dataset, "fashion_mnist or mnist")
flags.DEFINE_enum("source", _DEFAULTS.source, ["auto", "tfds", "idx", "sample"], "data source")
flags.DEFINE_string("data_dir", None, "tfds data directory")
flags.DEFINE_string("idx_dir", None, "directory of IDX files (*-ubyte[.gz])")
flags.DEFINE_integer("train_limit", None, "use only the first N training images")
flags.DEFINE_integer("test_limit", None, "use only the first N test images")
flags.DEFINE_enum("architecture", _DEFAULTS.architecture, ["mlp", "conv"], "network family")
flags.DEFINE_list("hidden_units", list(map(str, _DEFAULTS.hidden_units)), "MLP widths")
flags.DEFINE_integer("latent_dim", _DEFAULTS.latent_dim, "latent dimension m")
flags.DEFINE_float("target_radius", _DEFAULTS.target_radius, "certified radius R* to design for")
flags.DEFINE_float("r", _DEFAULTS.r, "reconstruction tolerance r (l2)")
flags.DEFINE_float("p", _DEFAULTS.p, "probability level p in [1/2, 1)")
flags.DEFINE_enum("method", _DEFAULTS.method, list(bounds.METHODS), "certificate to design for")
flags.DEFINE_string("posterior_std", _DEFAULTS.posterior_std, "the posterior std: a number "
                    "(a fixed std gamma), 'learned' (a std network capped at --std_cap), or "
                    f"'auto' (fixed at {design.DEFAULT_POSTERIOR_STD} when designing for "
                    "--target_radius, learned with --constants)")
flags.DEFINE_float("std_cap", None, f"S: cap on ||sigma(x)|| of a learned std (default "
                   f"{design.DEFAULT_STD_CAP})")
flags.DEFINE_list("constants", None, "explicit M_mu,M_sigma,M_g (overrides target_radius)")
flags.DEFINE_enum("likelihood", _DEFAULTS.likelihood, ["bernoulli", "continuous_bernoulli",
                                                       "gaussian"], "decoder likelihood")
flags.DEFINE_float("beta", _DEFAULTS.beta, "KL weight")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "training epochs")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "batch size")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate")
flags.DEFINE_integer("ll_samples", _DEFAULTS.ll_samples, "importance samples for test log p(x)")
flags.DEFINE_bool("baseline", _DEFAULTS.baseline, "also train the standard VAE baseline")
flags.DEFINE_string("output_dir", _DEFAULTS.output_dir, "where report, figures, models go")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "random seed")
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, list(distribute.STRATEGIES),
                  "tf.distribute strategy (multi_worker reads the cluster from TF_CONFIG; "
                  "mirrored: every GPU, else the logical CPUs TensorFlow shows, usually one)")
flags.DEFINE_integer("checkpoint_steps", None, "also checkpoint every N steps (default: every "
                     "epoch); re-running the command resumes from the last checkpoint")
flags.DEFINE_integer("verbose", _DEFAULTS.verbose, "0: silent, 1: progress bar, 2: a line per "
                     "epoch")
flags.DEFINE_enum("reconstruction", _DEFAULTS.reconstruction, list(RECONSTRUCTIONS),
                  "certified reconstruction: E[x | z] or the likelihood's parameter (paper)")
flags.DEFINE_enum("split", _DEFAULTS.split, list(design.SPLITS), "how the Lipschitz budget is "
                  "shared between the networks (lipvae_tf.design)")
flags.DEFINE_integer("validation_images", _DEFAULTS.validation_images, "hold out this many "
                     "training images for validation (0: validate on the test set)")
flags.DEFINE_integer("early_stopping_patience", None, "stop after this many epochs without a "
                     "validation-ELBO gain of min_delta; restores the best weights")
flags.DEFINE_integer("reduce_lr_patience", None, "divide the learning rate by 10 after this "
                     "many epochs without a validation-ELBO gain of min_delta")
flags.DEFINE_float("min_delta", _DEFAULTS.min_delta, "smallest validation-ELBO gain (nats) "
                   "that counts as an improvement")
flags.DEFINE_enum("constraint", _DEFAULTS.constraint, list(CONSTRAINT_KINDS),
                  "per-step kernel control: subspace_clip (the singular values above the bound "
                  "on a tracked 16-dim subspace, O(mnk); conv kernels: 2 dims per frequency "
                  "block), spectral_norm (power iteration, O(mn)), bjorck (orthonormal; dense "
                  "kernels, conv ones get subspace_clip) or spectral (exact clip); finalize() "
                  "clips exactly once")
flags.DEFINE_float("conv_relaxation", _DEFAULTS.conv_relaxation, "over-relaxation omega in "
                   "(0, 2) of the conv kernels' subspace clip (1: the plain step; 1.5 trains "
                   "better at few epochs); --architecture=conv only")


def config_from_flags() -> TrainConfig:
    """The TrainConfig of the command line. Raises ValueError naming the flag for a value that
    does not parse or flags that contradict each other (main prints it as one line)."""
    values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(TrainConfig)
              if f.name in flags.FLAGS}

    def parsed(flag: str, parse, expected: str):
        try:
            return parse(values[flag])
        except ValueError:
            raise ValueError(f"--{flag} takes {expected}, got {values[flag]!r}") from None

    if values.get("constants") is not None:
        values["constants"] = parsed("constants", lambda v: tuple(float(c) for c in v),
                                     "three numbers: M_mu,M_sigma,M_g")
        if len(values["constants"]) != 3:
            raise ValueError(f"--constants takes three numbers: M_mu,M_sigma,M_g, got "
                             f"{len(values['constants'])}")
        if flags.FLAGS["target_radius"].present:
            raise ValueError("--target_radius and --constants exclude each other: a target "
                             "designs the constants, explicit constants ask for no target")
    if flags.FLAGS["hidden_units"].present and values.get("architecture") == "conv":
        # it was echoed in report.json, unused (an operator's review, 2026-12-04)
        raise ValueError("--hidden_units sets the MLP's widths; --architecture=conv builds "
                         "stride-2 convolutions with (32, 64) filters and takes no widths")
    values["hidden_units"] = parsed("hidden_units", lambda v: tuple(int(u) for u in v),
                                    "comma-separated integers")
    gamma = values.get("posterior_std")
    if gamma not in ("auto", None):
        values["posterior_std"] = parsed(
            "posterior_std", lambda v: None if v == "learned" else float(v),
            "a number, 'learned' or 'auto'")
    return TrainConfig(**values)


def main(argv: list[str]) -> None:
    program = ("lipvae-train" if os.path.basename(sys.argv[0]) == "lipvae-train"
               else "python -m lipvae_tf.train")  # the command as it was typed
    report.refuse_positional_arguments(argv, program)
    with report.one_line_errors(program):
        config = config_from_flags()
        try:
            result = run(config)
        except KeyboardInterrupt:
            # a Ctrl-C printed Keras' 60-line traceback (an operator's review, 2026-12-04)
            sys.exit(f"{program}: interrupted; the checkpoint in {config.output_dir} keeps the "
                     "training up to its last save (every epoch, and every --checkpoint_steps "
                     "steps): run the same command again to resume")
    print(format_summary(result))


def format_summary(result: dict) -> str:
    """A short table: target, certified radii, test log-likelihood per model."""
    config, lines = result["config"], []
    sizes, held_out = result["data"], result["data"].get("validation_images") or 0
    lines.append(f"data: {sizes['train_images']} train"
                 f"{f' ({held_out} of them held out for validation)' if held_out else ''} / "
                 f"{sizes['test_images']} test images from {sizes['train_source']}")
    design = result["design"]
    if design and design.get("target_radius") is not None:
        def value(key: str, spec: str = ".3f") -> str:
            return "n/a" if design.get(key) is None else format(design[key], spec)

        lines.append(
            f"robustness stated upfront: every input certified at R* = "
            f"{value('target_radius', 'g')} for r = {value('r', 'g')}, p = {value('p', 'g')} "
            f"({design.get('method')}); budget M_mu = {value('encoder_mean')}, "
            f"M_sigma = {value('encoder_std')}, M_g = {value('decoder')}, "
            + (f"fixed posterior std gamma = {design['gamma']:g}" if design.get("gamma")
               else f"S = {design.get('std_cap')}"))
    header = (f"{'model':<16}{'cert. min':>11}{'cert. median':>14}{'test log p(x)':>15}"
              f"{'test ELBO':>11}{'train s':>9}")
    lines += [header, "-" * len(header)]
    for name, model in result["models"].items():
        radius = model["certified_radius"][config["method"]]
        lines.append(f"{name:<16}{radius['min']:>11.4f}{radius['median']:>14.4f}"
                     f"{model['test']['log_likelihood_iwae']:>15.1f}{model['test']['elbo']:>11.1f}"
                     f"{model['train_seconds']:>9.1f}")
    uncertified = [name for name, model in result["models"].items()
                   if model["certified_radius"][config["method"]]["median"] == 0]
    if uncertified:
        lines.append(f"{', '.join(uncertified)}: a certified radius of 0 certifies nothing (its "
                     f"Lipschitz bounds are too large for r = {config['r']:g}, "
                     f"p = {config['p']:g})")
    lv = result["models"]["lipschitz_vae"]["certified_radius"]
    lines.append("median certified radius per method (Lipschitz VAE): " + ", ".join(
        f"{m} {v['median']:.4f}" for m, v in lv.items()))
    if result.get("certificate_comparison"):
        lines.append(format_comparison(result["certificate_comparison"]))
    if result["target_met"] is None:
        lines.append("no target radius asked for (explicit constants): certified radii as above")
    else:
        lines.append(f"target met on every test input: {result['target_met']}")
    if result.get("resumed"):
        def resumed_at(resumed: dict) -> str:
            # a checkpoint of the finished training: no "epoch 3 step 0" of a 2-epoch run
            if resumed["epoch"] >= config["epochs"]:
                return "after its training"
            return f"from epoch {resumed['epoch'] + 1} step {resumed['step']}"

        where = ", ".join(f"{name} {resumed_at(m['resumed'])}"
                          for name, m in result["models"].items() if m.get("resumed"))
        lines.append(f"resumed from a checkpoint ({where}); history and times cover the whole run")
    lines.append(f"report: {result['report_path']} (figures: "
                 f"{', '.join(result['figures'].values())})")
    return "\n".join(lines)


quiet_tensorflow_logs = report.quiet_tensorflow_logs


def cli() -> None:
    """Console script entry point (lipvae-train): --help lists this module's flags."""
    for flag in flags.FLAGS.get_flags_for_module(__name__):
        # absl lists the flags of the module named by sys.argv[0] (the console script's file)
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    main_module = sys.modules["__main__"]
    if main_module.__doc__ is None:  # absl's --help prints __main__'s docstring: the script's
        main_module.__doc__ = __doc__  # wrapper has none (only "USAGE:" was printed)
    quiet_tensorflow_logs()
    report.run_command(main)


if __name__ == "__main__":
    cli()
