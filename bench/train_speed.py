"""Training and certification speed of LipschitzVAE, side by side in one run.

Same architecture for every VAE: encoder mean and encoder std towers 784-512-512-16, decoder
16-512-512-784, Bernoulli ELBO, Adam, batch 256, 60000 images of 28x28 in [0, 1].
1. Training step time of LipschitzVAE (Björck after each step, GroupSort) / the plain Keras VAE
   of the same architecture (Dense + GroupSort, no constraint). Goal <= 1.3x. Interleaved chunks
   of 40 steps, the fastest chunk of each (also given per 60000-image epoch). Three more rows
   explain the ratio: the plain VAE with ReLU (StandardVAE, what most users train), LipschitzVAE
   with its kernel constraints switched off, and the projection of its 9 kernels alone.
2. Step time of the same VAE from deel-lip 1.5.0 SpectralDense + GroupSort2 (legacy Keras, in
   a subprocess with TF_USE_LEGACY_KERAS=1; bench/deel_lip_vae.py; the fastest of 6 chunks of
   40 steps) / LipschitzVAE. Goal >= 15x.
3. Certification time for 10k inputs (`certified_radius`, method "best": verified constants,
   std norms, bisection) / one stochastic forward pass of the VAE on the same 10k. Goal <= 2x.
Run: `.venv/bin/python bench/train_speed.py [--skip_deel]` (or `make bench`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lipvae_tf import layers as ll  # noqa: E402
from lipvae_tf.model import LipschitzVAE, StandardVAE  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES, BATCH, LATENT = 60000, 256, 16
ROUNDS, CHUNK_STEPS = 10, 40
SHAPE = dict(latent_dim=LATENT, hidden_units=(512, 512), likelihood="bernoulli")


class GroupSortVAE(StandardVAE):
    """The plain Keras VAE of the goal: unconstrained Dense layers with GroupSort(2)."""

    def _activation(self, name: str) -> keras.layers.Layer:
        return ll.GroupSort(2, name=name)


def unprojected_lipschitz_vae() -> LipschitzVAE:
    """LipschitzVAE with every kernel constraint removed: its layers, without the projection."""
    model = LipschitzVAE.from_target(1.0, 8.0, **SHAPE)
    for variable in model.trainable_variables:
        variable.constraint = None
    return model


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).random((count, 28, 28, 1), dtype=np.float32)


def chunk_ms_per_step(model: keras.Model, x: np.ndarray) -> float:
    start = time.perf_counter()
    model.fit(x, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / (len(x) // BATCH) * 1e3


def projection_ms(model: LipschitzVAE) -> float:
    """One application of every kernel constraint (what the optimiser adds after each step)."""
    constrained = [v for v in model.trainable_variables if v.constraint is not None]
    project = tf.function(lambda: [v.assign(v.constraint(v)) for v in constrained])
    project()
    start = time.perf_counter()
    for _ in range(CHUNK_STEPS):
        project()
    return (time.perf_counter() - start) / CHUNK_STEPS * 1e3


def training_speed(x: np.ndarray) -> dict[str, list[float]]:
    """ms per training step of each model, ROUNDS interleaved chunks of CHUNK_STEPS steps.

    Short interleaved chunks, not whole epochs: this machine switches between a fast and a
    slow phase (about 1.8x apart, lasting seconds to minutes), and the fastest chunk of each
    model is the one comparable number.
    """
    lipschitz_vae = LipschitzVAE.from_target(1.0, 8.0, **SHAPE)
    models = {"lipschitz_vae": lipschitz_vae,
              "plain_vae_groupsort": GroupSortVAE(**SHAPE),
              "plain_vae_relu": StandardVAE(**SHAPE),
              "lipschitz_vae_unprojected": unprojected_lipschitz_vae()}
    chunk = x[: CHUNK_STEPS * BATCH]
    for model in models.values():
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(chunk[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    times = {name: [] for name in [*models, "projection_only"]}
    for _ in range(ROUNDS):
        for name, model in models.items():
            times[name].append(chunk_ms_per_step(model, chunk))
        times["projection_only"].append(projection_ms(lipschitz_vae))
    for name, values in times.items():
        print(f"  {name:<26} ms/step: min {min(values):6.2f}  median {np.median(values):6.2f}")
    return times


def deel_lip_speed() -> dict:
    """deel-lip VAE epoch time, from its own interpreter (legacy Keras) in a subprocess."""
    sys.path.insert(0, HERE)
    import deel_env  # noqa: E402 (bench helper next to this file)

    python = deel_env.ensure_deel_python()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "deel.json")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        # the same measure as ours: the fastest of several CHUNK_STEPS-step epochs
        subprocess.run([python, os.path.join(HERE, "deel_lip_vae.py"), "--epochs", "6",
                        "--examples", str(CHUNK_STEPS * BATCH), "--batch", str(BATCH),
                        "--latent", str(LATENT), "--json", out],
                       env=env, check=True, stdout=subprocess.DEVNULL, timeout=1800)
        with open(out, encoding="utf-8") as handle:
            return json.load(handle)


def certification_speed(x: np.ndarray) -> dict[str, float]:
    """Fastest of several rounds: certified_radius on x vs one stochastic forward pass on x."""
    model = LipschitzVAE.from_target(1.0, 8.0, **SHAPE)
    model.finalize()
    model.certified_radius(x[:BATCH], 8.0)  # trace
    model.reconstruct(x[:BATCH])
    times = {"certify": [], "forward": []}
    for _ in range(5):
        start = time.perf_counter()
        radii = model.certified_radius(x, 8.0, 0.5, method="best")
        times["certify"].append(time.perf_counter() - start)
        start = time.perf_counter()
        model.reconstruct(x)
        times["forward"].append(time.perf_counter() - start)
    assert np.all(radii >= 1.0)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip_deel", action="store_true", help="leave out the deel-lip VAE")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x = images(EXAMPLES)
    print(f"VAE 784-512-512-{LATENT} (x3 networks), batch {BATCH}, {EXAMPLES} images, "
          f"{os.cpu_count()} CPU cores")
    times = training_speed(x)
    best = {name: min(values) for name, values in times.items()}
    steps = -(-EXAMPLES // BATCH)
    ours, plain = best["lipschitz_vae"], best["plain_vae_groupsort"]
    print(f"step (fastest chunk): LipschitzVAE {ours:.1f} ms, plain Keras VAE (GroupSort) "
          f"{plain:.1f} ms -> ratio {ours / plain:.2f}x (goal <= 1.3x); medians: "
          f"{np.median(times['lipschitz_vae']) / np.median(times['plain_vae_groupsort']):.2f}x")
    print(f"  epoch of {EXAMPLES} images ({steps} steps): {ours * steps / 1e3:.2f} s vs "
          f"{plain * steps / 1e3:.2f} s")
    relu = best["plain_vae_relu"]
    print(f"  plain VAE with ReLU {relu:.1f} ms ({ours / relu:.2f}x); "
          f"LipschitzVAE without its projection {best['lipschitz_vae_unprojected']:.1f} ms; the "
          f"projection alone {best['projection_only']:.1f} ms "
          f"({best['projection_only'] / plain:.2f}x the plain step)")
    if not args.skip_deel:
        deel = deel_lip_speed()
        theirs = deel["seconds_per_step"] * 1e3
        print(f"step (fastest chunk): deel-lip {deel['deel_lip_version']} SpectralDense VAE "
              f"{theirs:.1f} ms ({theirs * steps / 1e3:.1f} s per epoch) -> LipschitzVAE is "
              f"{theirs / ours:.1f}x faster (goal >= 15x)")
    cert = certification_speed(x[:10000])
    print(f"10k inputs: certified_radius {cert['certify']:.3f} s, one forward pass "
          f"{cert['forward']:.3f} s -> ratio {cert['certify'] / cert['forward']:.2f}x "
          f"(goal <= 2x)")


if __name__ == "__main__":
    main()
