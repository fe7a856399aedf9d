"""Per-step training time of a Lipschitz MLP divided by the same MLP with plain Dense.

Contenders: the subspace clip (`constraint="subspace_clip"`, the package's default,
`constraints.DEFAULT_CONSTRAINT`), spectral-norm clipping by power iteration
(`constraint="spectral_norm"`, Miyato et al. 2018) and Björck with N iterations after every step
(`constraint="bjorck"`). The default's row is marked.

MLP 784-512-512-16, GroupSort(2) activations, batch 256 (and 1024), Adam, MSE on random data.
All models are timed in the same process, interleaved over several rounds; the fastest and the
median step time of each are compared (noise from other processes only ever adds time).
Run: `.venv/bin/python bench/constraint_overhead.py` (or `make bench`).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lipvae_tf import constraints as lc  # noqa: E402
from lipvae_tf import layers as ll  # noqa: E402
from lipvae_tf import lipschitz as lp  # noqa: E402

BATCHES, STEPS_PER_ROUND, ROUNDS = (256, 1024), 20, 12
WIDTHS = (512, 512, 16)


def build(kind: str) -> keras.Model:
    """kind: 'plain' (Dense), 'subspace_clip' or 'spectral_norm' (LipschitzDense with that
    control) or 'bjorck-N' (LipschitzDense with N Björck iterations per step)."""
    stack = [keras.Input((784,))]
    for i, units in enumerate(WIDTHS):
        if kind == "plain":
            stack.append(keras.layers.Dense(units, kernel_initializer="orthogonal"))
        elif kind in ("subspace_clip", "spectral_norm"):
            stack.append(ll.LipschitzDense(units, constraint=kind))
        else:
            iterations = int(kind.split("-")[1])
            stack.append(ll.LipschitzDense(units, constraint="bjorck",
                                           bjorck_iterations=iterations))
        if i < len(WIDTHS) - 1:
            stack.append(ll.GroupSort(2))
    model = keras.Sequential(stack)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def time_round(model: keras.Model, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / STEPS_PER_ROUND


def compare(batch: int, kinds: list[str]) -> None:
    """Interleaved rounds, so that machine noise hits every model alike."""
    x = np.random.normal(size=(batch * STEPS_PER_ROUND, 784)).astype("float32")
    y = np.random.normal(size=(batch * STEPS_PER_ROUND, WIDTHS[-1])).astype("float32")
    models = {kind: build(kind) for kind in kinds}
    for model in models.values():  # trace and warm up
        time_round(model, x, y, batch)
    times = {kind: [] for kind in kinds}
    for _ in range(ROUNDS):
        for kind in kinds:
            times[kind].append(time_round(models[kind], x, y, batch))
    best = {kind: float(np.min(t)) for kind, t in times.items()}
    median = {kind: float(np.median(t)) for kind, t in times.items()}
    print(f"\nMLP 784-512-512-16, GroupSort, batch {batch}, "
          f"{ROUNDS} rounds x {STEPS_PER_ROUND} steps")
    print(f"{'model':<14}{'ms/step min':>12}{'median':>8}{'ratio (min)':>13}{'ratio (median)':>16}"
          f"{'max sigma after':>17}")
    for kind in kinds:
        sigma = max(lp.dense_norm(layer.kernel.numpy()) for layer in models[kind].layers
                    if hasattr(layer, "kernel"))
        label = f"{kind} *" if kind == lc.DEFAULT_CONSTRAINT else kind
        print(f"{label:<14}{1e3 * best[kind]:>12.2f}{1e3 * median[kind]:>8.2f}"
              f"{best[kind] / best['plain']:>13.2f}{median[kind] / median['plain']:>16.2f}"
              f"{sigma:>17.7f}")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    keras.utils.set_random_seed(0)
    compare(BATCHES[0], ["plain", "subspace_clip", "spectral_norm", "bjorck-1", "bjorck-2",
                         "bjorck-3"])
    compare(BATCHES[1], ["plain", "subspace_clip", "spectral_norm", "bjorck-1"])
    print("\n* the package's default control (constraints.DEFAULT_CONSTRAINT)")
    print("\n(plain Dense kernels are unconstrained; "
          "their largest singular value is shown for contrast)")


if __name__ == "__main__":
    main()
