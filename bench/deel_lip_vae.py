"""Epoch time of a VAE built from deel-lip 1.5.0 SpectralDense + GroupSort2 (legacy Keras).

The speed anchor for bench/train_speed.py. Same architecture as LipschitzVAE there: encoder
mean tower 784-512-512-m and a std tower of the same shape (softplus), decoder
m-512-512-784 with a sigmoid output, GroupSort2 between SpectralDense layers; reparameterised
sample, Bernoulli ELBO, Adam, `fit` (tf.function). Data: uniform [0, 1] pixels from a fixed
seed (the content does not matter for timing). One short warm-up fit (traces the full and the
partial batch) is excluded; then `--epochs` epochs are timed, each on its own.
deel-lip needs tf_keras, so this script sets TF_USE_LEGACY_KERAS=1 before importing TF.
Run (interpreter from bench/deel_env.py):
  TF_USE_LEGACY_KERAS=1 .venv/bin/python bench/deel_lip_vae.py --epochs 1 --examples 60000 \
      --batch 256 --latent 16 --json out.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # must precede the TensorFlow import
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import deel.lip  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from deel.lip.activations import GroupSort2  # noqa: E402
from deel.lip.initializers import SpectralInitializer  # noqa: E402
from deel.lip.layers import SpectralDense  # noqa: E402

PIXELS, HIDDEN = 784, (512, 512)
SEEDS = itertools.count()


def tower(widths: tuple[int, ...], input_dim: int, name: str) -> keras.Sequential:
    """SpectralDense layers of the given widths with GroupSort2 between them (none at the end).

    Each layer gets its own seeded initializer: SpectralDense's default one is a single shared
    unseeded instance, which would give same-shape layers (mean and std towers) equal kernels.
    """
    stack: list[keras.layers.Layer] = [keras.Input((input_dim,))]
    for i, units in enumerate(widths):
        init = SpectralInitializer(base_initializer=keras.initializers.Orthogonal(seed=next(SEEDS)))
        stack.append(SpectralDense(units, kernel_initializer=init))
        if i < len(widths) - 1:
            stack.append(GroupSort2())
    return keras.Sequential(stack, name=name)


class DeelVAE(keras.Model):
    """Gaussian encoder (separate mean and std towers) and Bernoulli decoder, ELBO train step."""

    def __init__(self, latent: int) -> None:
        super().__init__()
        self.mean = tower(HIDDEN + (latent,), PIXELS, "encoder_mean")
        self.std = tower(HIDDEN + (latent,), PIXELS, "encoder_std")
        self.decoder = tower(HIDDEN + (PIXELS,), latent, "decoder")

    def call(self, x: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Decoder logits of a reparameterised sample, the mean and the std of q(z|x)."""
        mu = self.mean(x, training=training)
        sigma = tf.nn.softplus(self.std(x, training=training)) + 1e-6
        z = mu + sigma * tf.random.normal(tf.shape(mu))
        return self.decoder(z, training=training), mu, sigma

    def train_step(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        """One Adam step on the negative ELBO (binary cross-entropy + analytic KL), batch mean."""
        with tf.GradientTape() as tape:
            logits, mu, sigma = self(x, training=True)
            xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)
            bce = tf.reduce_sum(xent, -1)
            kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - 2.0 * tf.math.log(sigma), -1)
            loss = tf.reduce_mean(bce + kl)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss}


class EpochTimer(keras.callbacks.Callback):
    """Wall and process CPU time of every epoch of a fit call (CPU/wall well below the core
    count means other processes took the cores: the timing is then not trustworthy)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start[0])
        self.cpu_seconds.append(time.process_time() - self._start[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (after a warm-up)")
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--json", help="write the result here as JSON")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((args.examples, PIXELS), dtype=np.float32)
    model = DeelVAE(args.latent)
    model.compile(keras.optimizers.Adam(1e-3))
    # Warm-up: two full batches plus the epoch's partial last batch, so nothing traces later.
    warm = 2 * args.batch + args.examples % args.batch
    model.fit(x[:warm], batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
    timer, load_before = EpochTimer(), os.getloadavg()[0]
    history = model.fit(x, batch_size=args.batch, epochs=args.epochs, verbose=0, callbacks=[timer])

    steps = math.ceil(args.examples / args.batch)
    best = min(timer.seconds)
    result = {
        "deel_lip_version": deel.lip.__version__,
        "tf_version": tf.__version__,
        "tf_keras_version": keras.__version__,
        "seconds_per_epoch": best,
        "steps_per_epoch": steps,
        "seconds_per_step": best / steps,
        "epoch_seconds": timer.seconds,
        "epoch_cpu_seconds": timer.cpu_seconds,
        "cpu_count": os.cpu_count(),
        "loadavg_1min_before_after": [load_before, os.getloadavg()[0]],
        "examples": args.examples, "batch": args.batch, "latent": args.latent,
        "final_loss": float(history.history["loss"][-1]),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
