"""The subspace clip under large optimiser steps: how far outside the ball each step finds the
kernels, how often a step takes the exact clip (`SubspaceClip.exact_clip_above`), and where the
kernels end.

For each optimiser setting, the default model (`LipschitzVAE.from_target(1.0, 8.0)`, MLP
512-512, latent 10, fixed std) trains one epoch on the bundled sample (3000 images, batch 128,
seed 0), once with the package's default `exact_clip_above` and once with it switched off
(`math.inf`: the subspace step alone, what the package did before). Printed per run: the largest
Ritz value over the kernel's bound that any step found (before its clip), the steps that took
the exact clip, the largest exact kernel norm over its bound after the epoch, the last loss, and
the wall seconds of the fit.

    .venv/bin/python bench/large_steps.py
"""
from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lipvae_tf as lv  # noqa: E402
from lipvae_tf import constraints, data  # noqa: E402
from lipvae_tf import lipschitz as lp  # noqa: E402

SETTINGS = {
    "Adam 1e-3 (the README's)": lambda: keras.optimizers.Adam(1e-3),
    "Adam 3e-3": lambda: keras.optimizers.Adam(3e-3),
    "Adam 1e-2": lambda: keras.optimizers.Adam(1e-2),
    "SGD 1e-3, momentum 0.9": lambda: keras.optimizers.SGD(1e-3, momentum=0.9),
    "SGD 1e-2, momentum 0.9": lambda: keras.optimizers.SGD(1e-2, momentum=0.9),
}

_largest = tf.Variable(0.0, trainable=False)  # the step's largest Ritz value / bound
_step = constraints._subspace_correction


def _recording(kernel, subspace, max_norm):
    correction, state, top = _step(kernel, subspace, max_norm)
    _largest.assign(tf.maximum(_largest, tf.cast(top, tf.float32) / max_norm))
    return correction, state, top


constraints._subspace_correction = _recording


class _Steps(keras.callbacks.Callback):
    def __init__(self, threshold):
        super().__init__()
        self.threshold, self.tops = threshold, []

    def on_train_batch_begin(self, batch, logs=None):
        _largest.assign(0.0)

    def on_train_batch_end(self, batch, logs=None):
        self.tops.append(float(_largest.numpy()))


def run(name: str, exact_clip_above: float, images: np.ndarray) -> str:
    keras.utils.set_random_seed(0)
    vae = lv.LipschitzVAE.from_target(1.0, 8.0, latent_dim=10, seed=0)
    kernels = constraints.constrained_kernels(list(vae.lipschitz_networks().values()))
    for kernel in kernels:
        kernel.constraint.exact_clip_above = exact_clip_above
    vae.compile(SETTINGS[name]())
    steps = _Steps(exact_clip_above)
    start = time.perf_counter()
    history = vae.fit(images, epochs=1, batch_size=128, verbose=0, callbacks=[steps])
    seconds = time.perf_counter() - start
    tops = np.array(steps.tops)
    ends = [lp.dense_norm(k.numpy()) / k.constraint.max_norm if np.all(np.isfinite(k.numpy()))
            else math.inf for k in kernels]
    return (f"| {name} | {'off' if math.isinf(exact_clip_above) else exact_clip_above} | "
            f"{np.nanmax(tops):.4g} | {int(np.sum(tops > exact_clip_above))} / {len(tops)} | "
            f"{max(ends):.4g} | {history.history['loss'][-1]:.5g} | {seconds:.1f} |")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    images = data.load_sample("train")[0]
    print("| optimiser | exact_clip_above | largest Ritz / bound found | steps with the exact "
          "clip | largest norm / bound after the epoch | last loss | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in SETTINGS:
        for threshold in (constraints.DEFAULT_EXACT_CLIP_ABOVE, math.inf):
            print(run(name, threshold, images), flush=True)


if __name__ == "__main__":
    main()
