"""Training and certification speed of LipschitzVAE, side by side in one run.

Same architecture for every VAE: encoder mean and encoder std towers 784-512-512-16, decoder
16-512-512-784, Bernoulli ELBO, Adam, batch 256, 60000 images of 28x28 in [0, 1].
1. Epoch time of LipschitzVAE (Björck after each step, GroupSort) / the plain Keras VAE of the
   same architecture (Dense + GroupSort, no constraint). Goal <= 1.3x. Interleaved full epochs;
   the fastest of each. Two more rows explain the ratio: the plain VAE with ReLU (StandardVAE,
   what most users train) and LipschitzVAE with its kernel constraints switched off (the
   difference to LipschitzVAE is the cost of the per-step Björck projection).
2. Epoch time of the same VAE from deel-lip 1.5.0 SpectralDense + GroupSort2 (legacy Keras, in
   a subprocess with TF_USE_LEGACY_KERAS=1; bench/deel_lip_vae.py) / LipschitzVAE. Goal >= 15x.
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

from lipvae_tf import layers as ll  # noqa: E402
from lipvae_tf.model import LipschitzVAE, StandardVAE  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES, BATCH, LATENT, ROUNDS = 60000, 256, 16, 3
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


def epoch_seconds(model: keras.Model, x: np.ndarray) -> float:
    start = time.perf_counter()
    model.fit(x, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def training_speed(x: np.ndarray) -> dict[str, float]:
    """Fastest of ROUNDS interleaved epochs for each model (after a traced warm-up)."""
    models = {"lipschitz_vae": LipschitzVAE.from_target(1.0, 8.0, **SHAPE),
              "plain_vae_groupsort": GroupSortVAE(**SHAPE),
              "plain_vae_relu": StandardVAE(**SHAPE),
              "lipschitz_vae_unprojected": unprojected_lipschitz_vae()}
    warm = x[: 2 * BATCH + len(x) % BATCH]
    for model in models.values():
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(warm, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    seconds = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            seconds[name].append(epoch_seconds(model, x))
    for name, values in seconds.items():
        print(f"  {name:<26} epochs: {', '.join(f'{v:.2f}' for v in values)} s")
    return {name: min(values) for name, values in seconds.items()}


def deel_lip_speed() -> dict:
    """deel-lip VAE epoch time, from its own interpreter (legacy Keras) in a subprocess."""
    sys.path.insert(0, HERE)
    import deel_env  # noqa: E402 (bench helper next to this file)

    python = deel_env.ensure_deel_python()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "deel.json")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        subprocess.run([python, os.path.join(HERE, "deel_lip_vae.py"), "--epochs", "1",
                        "--examples", str(EXAMPLES), "--batch", str(BATCH),
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
    train = training_speed(x)
    ours, plain = train["lipschitz_vae"], train["plain_vae_groupsort"]
    print(f"epoch: LipschitzVAE {ours:.2f} s, plain Keras VAE (GroupSort) {plain:.2f} s -> "
          f"ratio {ours / plain:.2f}x (goal <= 1.3x)")
    print(f"  vs plain VAE with ReLU {train['plain_vae_relu']:.2f} s: "
          f"{ours / train['plain_vae_relu']:.2f}x; projection share: LipschitzVAE without it "
          f"{train['lipschitz_vae_unprojected']:.2f} s "
          f"({train['lipschitz_vae_unprojected'] / plain:.2f}x the plain GroupSort VAE)")
    if not args.skip_deel:
        deel = deel_lip_speed()
        print(f"epoch: deel-lip {deel['deel_lip_version']} SpectralDense VAE "
              f"{deel['seconds_per_epoch']:.2f} s -> LipschitzVAE is "
              f"{deel['seconds_per_epoch'] / ours:.1f}x faster (goal >= 15x)")
    cert = certification_speed(x[:10000])
    print(f"10k inputs: certified_radius {cert['certify']:.3f} s, one forward pass "
          f"{cert['forward']:.3f} s -> ratio {cert['certify'] / cert['forward']:.2f}x "
          f"(goal <= 2x)")


if __name__ == "__main__":
    main()
