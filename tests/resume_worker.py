"""Worker for tests/test_resume.py: one session of a tiny `train.run`, optionally killed.

    python tests/resume_worker.py STRATEGY RUN_DIR WEIGHTS.npz [CRASH]

STRATEGY "converging" is "default" with early stopping and learning-rate reduction on a
validation split held out of the training set: no epoch improves by min_delta, so the learning
rate drops after epoch 2 and the run stops after epoch 3 of at most 5, restoring epoch 1's
weights (their counters and best weights must come back from the checkpoint).

Runs `train.run` (no baseline) into RUN_DIR under STRATEGY ("default", or "mirrored" over two
logical CPUs, configured here before TensorFlow starts), checkpointing every epoch and every
2 steps. CRASH is "epoch:K" (the process dies right after the checkpoint of the end of epoch K)
or "step:N" (right after optimizer step N, a mid-epoch checkpoint): `os._exit`, no clean-up,
as a killed process. Without CRASH the run finishes, and the weights, optimizer variables and
noise generator state right after training (before finalize) are written to WEIGHTS.npz.
"""
from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

STRATEGY, RUN_DIR, WEIGHTS = sys.argv[1:4]
CONVERGING = STRATEGY == "converging"
if CONVERGING:
    STRATEGY = "default"
CRASH = sys.argv[4] if len(sys.argv) > 4 else None
if STRATEGY == "mirrored":
    _CPU = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lipvae_tf import train  # noqa: E402

CRASH_EXIT = 75
CONFIG = train.TrainConfig(
    source="sample", train_limit=192, test_limit=32, hidden_units=(16,), latent_dim=4,
    epochs=3, batch_size=64, ll_samples=2, baseline=False, verbose=0, strategy=STRATEGY,
    checkpoint_steps=2, output_dir=RUN_DIR)  # 3 steps per epoch
if CONVERGING:  # 192 + 64 training images: still 3 steps per epoch
    CONFIG = dataclasses.replace(CONFIG, train_limit=256, epochs=5, validation_images=64,
                                 early_stopping_patience=2, reduce_lr_patience=1,
                                 min_delta=1e9)


class Crash(keras.callbacks.Callback):
    """Kills the process after the checkpoint callback (earlier in the list) has run."""

    def __init__(self, spec: str):
        super().__init__()
        kind, value = spec.split(":")
        self.kind, self.value = kind, int(value)

    def on_train_batch_end(self, batch, logs=None):
        if self.kind == "step" and int(self.model.optimizer.iterations.numpy()) == self.value:
            os._exit(CRASH_EXIT)

    def on_epoch_end(self, epoch, logs=None):
        if self.kind == "epoch" and epoch + 1 == self.value:
            os._exit(CRASH_EXIT)


_fit_run = train.fit_run


def fit_run(model, *args, extra_callbacks=(), **kwargs):
    crash = (Crash(CRASH),) if CRASH else ()
    result = _fit_run(model, *args, extra_callbacks=(*extra_callbacks, *crash), **kwargs)
    state = {f"model/{v.path}": np.asarray(v.numpy()) for v in model.variables}
    state |= {f"optimizer/{i}": np.asarray(v.numpy())
              for i, v in enumerate(model.optimizer.variables)}
    np.savez(WEIGHTS, **state)
    return result


train.fit_run = fit_run
train.run(CONFIG)
