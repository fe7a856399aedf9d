"""Worker for tests/test_distribute.py: trains the tiny VAE on two logical CPU devices.

Logical devices must be configured before TensorFlow initialises its devices, which pytest's
process has already done, so the tests run this script in a subprocess:

    python tests/distribute_check.py equivalence|resume|split|all OUT.json RUN_DIR

equivalence: the same training (train.fit, same seed, same global batch) under the default
strategy (one device) and under MirroredStrategy over two logical CPUs; per-step and per-epoch
losses, kernels, and certificates after finalize(); and per-epoch losses with plain SGD, with
and without per-image weights.
resume: a BackupAndRestore checkpoint written under 2 replicas resumed under 1, and the reverse.
split: train.run under 2 replicas with a first batch that does not split evenly (refused).
all: each, as {"equivalence": ..., "resume": ..., "split": ...} (one process start). Results go
to OUT.json.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lipvae_tf import constraints, data, distribute, train  # noqa: E402

# Björck, whose kernels sit on the bound after every step, so that the replicas' kernels can be
# checked against it during training (test_subspace_clip checks the default kind's replicas)
CONFIG = train.TrainConfig(hidden_units=(32,), latent_dim=4, target_radius=1.0, r=8.0, p=0.5,
                           epochs=3, batch_size=64, verbose=0, seed=0, constraint="bjorck")
TRAIN_X = data.load_sample("train")[0][:256]
TEST_X = data.load_sample("test")[0][:64]


def constrained_kernels(model) -> dict:
    """{path: keras Variable} of every Björck-constrained kernel of the model."""
    layers = constraints.iter_layers(list(model.lipschitz_networks().values()))
    kernels = [getattr(layer, "kernel", None) for layer in layers]
    return {k.path: k for k in kernels
            if isinstance(getattr(k, "constraint", None), constraints.BjorckOrthonormal)}


def replica_spread(strategy, model) -> float:
    """Largest |difference| between the replicas' copies of any model or optimizer variable."""
    spread = 0.0
    for variable in [*model.variables, *model.optimizer.variables]:
        copies = [np.asarray(c) for c in strategy.experimental_local_results(variable.value)]
        spread = max([spread] + [float(np.max(np.abs(c.astype(np.float64) - copies[0])))
                                 for c in copies[1:]])
    return spread


class StepLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def train_once(strategy, run_dir: str) -> tuple[dict, dict]:
    keras.utils.set_random_seed(CONFIG.seed)
    model = distribute.build_in_scope(strategy, lambda: train.build_model(CONFIG))
    steps = StepLosses()
    started = time.perf_counter()
    history = train.fit(model, TRAIN_X, TEST_X, CONFIG, run_dir, extra_callbacks=(steps,))
    seconds = time.perf_counter() - started
    kernels = {path: v.numpy() for path, v in constrained_kernels(model).items()}
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "seconds": seconds,
        "history": history,
        "step_losses": steps.losses,
        "iterations": int(model.optimizer.iterations.numpy()),
        "replica_spread": replica_spread(strategy, model),
        "sigma_max": {p: float(np.linalg.norm(k.astype(np.float64), 2))
                      for p, k in kernels.items()},
        "targets": {p: v.constraint.scale for p, v in constrained_kernels(model).items()},
    }
    model.finalize()
    result["radius"] = model.certified_radius(TEST_X, r=8.0, p=0.5).tolist()
    return result, kernels


def sgd_losses(strategy) -> list[float]:
    """Per-epoch losses with plain SGD, which (unlike Adam) sees a gradient scaled by replicas."""
    keras.utils.set_random_seed(CONFIG.seed)
    model = distribute.build_in_scope(strategy, lambda: train.build_model(CONFIG))
    distribute.compile_in_scope(model, lambda: keras.optimizers.SGD(1e-3))
    dataset, steps = distribute.training_dataset(TRAIN_X, CONFIG.batch_size, seed=CONFIG.seed)
    history = model.fit(dataset, steps_per_epoch=steps, epochs=2, verbose=0, shuffle=False)
    return [float(v) for v in history.history["loss"]]


def weighted_losses(strategy) -> dict:
    """Per-epoch losses and the evaluated ELBO with per-image weights ((x, x, w) batches) and
    plain SGD: the weighted loss is summed over the global batch, as the unweighted one."""
    keras.utils.set_random_seed(CONFIG.seed)
    model = distribute.build_in_scope(strategy, lambda: train.build_model(CONFIG))
    distribute.compile_in_scope(model, lambda: keras.optimizers.SGD(1e-3))
    weights = np.random.default_rng(1).uniform(0.0, 2.0, len(TRAIN_X)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((TRAIN_X, TRAIN_X, weights)).batch(64)
    history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    evaluated = model.evaluate(dataset, verbose=0, return_dict=True)
    return {"loss": [float(v) for v in history.history["loss"]], "kl": float(evaluated["kl"])}


def equivalence(run_dir: str) -> dict:
    default, mirrored = distribute.make_strategy("default"), distribute.make_strategy("mirrored")
    one, one_kernels = train_once(default, os.path.join(run_dir, "1"))
    two, two_kernels = train_once(mirrored, os.path.join(run_dir, "2"))
    return {"one": one, "two": two, "kernel_difference": max(
        float(np.max(np.abs(one_kernels[p] - two_kernels[p]))) for p in one_kernels),
        "sgd": {"one": sgd_losses(default), "two": sgd_losses(mirrored)},
        "weighted": {"one": weighted_losses(default), "two": weighted_losses(mirrored)}}


class _Interrupt(keras.callbacks.Callback):
    """Records the state BackupAndRestore has just saved (it runs earlier), then interrupts."""

    def on_epoch_end(self, epoch, logs=None):
        self.iterations = int(self.model.optimizer.iterations.numpy())
        self.kernels = [v.numpy() for v in constrained_kernels(self.model).values()]
        raise KeyboardInterrupt("simulated interruption after the first epoch")


class _Begin(keras.callbacks.Callback):
    """Records the state BackupAndRestore has just restored (it runs earlier), and counts the
    epochs this (resumed) session trains: the history returned by `train.fit` covers the whole
    run, the epochs restored from the checkpoint included."""

    epochs_trained = 0

    def on_train_begin(self, logs=None):
        if not hasattr(self, "iterations"):  # the first fit call of the session
            self.iterations = int(self.model.optimizer.iterations.numpy())
            self.kernels = [v.numpy() for v in constrained_kernels(self.model).values()]

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_trained += 1


def resume_once(first, second, run_dir: str) -> dict:
    keras.utils.set_random_seed(CONFIG.seed)
    interrupted = distribute.build_in_scope(first, lambda: train.build_model(CONFIG))
    stop = _Interrupt()
    try:
        train.fit(interrupted, TRAIN_X, TEST_X, CONFIG, run_dir, extra_callbacks=(stop,))
        raise AssertionError("the interruption did not happen")
    except KeyboardInterrupt:
        pass
    keras.utils.set_random_seed(CONFIG.seed + 1)  # a different start: all state must come back
    resumed = distribute.build_in_scope(second, lambda: train.build_model(CONFIG))
    begin = _Begin()
    history = train.fit(resumed, TRAIN_X, TEST_X, CONFIG, run_dir, extra_callbacks=(begin,))
    return {
        "replicas": [first.num_replicas_in_sync, second.num_replicas_in_sync],
        "saved_iterations": stop.iterations,
        "restored_iterations": begin.iterations,
        "restored_kernels_equal": all(np.array_equal(a, b)
                                      for a, b in zip(stop.kernels, begin.kernels)),
        "epochs_after_resume": begin.epochs_trained,  # trained in the resumed session
        "history_epochs": len(history["loss"]),  # the whole run
        "final_iterations": int(resumed.optimizer.iterations.numpy()),
        "steps_per_epoch": -(-len(TRAIN_X) // CONFIG.batch_size),
        "epochs": CONFIG.epochs,
    }


def resume(run_dir: str) -> dict:
    one, two = distribute.make_strategy("default"), distribute.make_strategy("mirrored")
    return {"two_to_one": resume_once(two, one, os.path.join(run_dir, "2to1")),
            "one_to_two": resume_once(one, two, os.path.join(run_dir, "1to2"))}


def uneven_first_batch(run_dir: str) -> dict:
    """train.run under 2 mirrored replicas with a first batch of 33 images: the message it
    raises before training (Keras' symbolic build failed on it after the data had loaded)."""
    outcome = {}
    for name, changes in (("batch_size", dict(batch_size=33, test_limit=64)),
                          ("test_limit", dict(batch_size=64, test_limit=33))):
        config = train.TrainConfig(source="sample", train_limit=256, hidden_units=(16,),
                                   latent_dim=2, epochs=1, baseline=False, verbose=0,
                                   strategy="mirrored", output_dir=os.path.join(run_dir, name),
                                   **changes)
        try:
            train.run(config)
            outcome[name] = None
        except ValueError as error:
            outcome[name] = str(error)
        outcome[name + "_written"] = sorted(os.listdir(os.path.join(run_dir, name)))
    return outcome


if __name__ == "__main__":
    mode, out_path, run_dir = sys.argv[1:4]
    modes = {"equivalence": equivalence, "resume": resume, "split": uneven_first_batch}
    if mode == "all":
        result = {name: run(os.path.join(run_dir, name)) for name, run in modes.items()}
    else:
        result = modes[mode](run_dir)
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
