"""Training and certification speed of LipschitzVAE, side by side in one run.

MLP: encoder mean and encoder std towers 784-512-512-16, decoder 16-512-512-784, Bernoulli ELBO,
Adam, 28x28 images in [0, 1], at batch 256 and at batch 128. Conv: the zoo's conv VAE shape
(filters 32, 64, latent 10, stride-2 3x3 convolutions and transposed convolutions), batch 128.
1. Training step time of LipschitzVAE with its default per-step control (the subspace clip,
   `constraint="subspace_clip"`, for dense kernels) and a learned std network under its cap
   (`posterior_std=None`) / the plain Keras VAE of the same architecture (Dense + GroupSort(2),
   no constraint). Goal <= 1.15x (MLP). Two rows for the model `from_target` builds by default
   (a fixed posterior std: no std network) and the plain VAE of that architecture (the same
   fixed std), with their ratio. More rows: the same
   LipschitzVAE with spectral-norm clipping by power iteration (`constraint="spectral_norm"`),
   with Björck after every step (`constraint="bjorck"`), and with its kernel constraints switched
   off (its layers alone). Conv (goal <= 1.3x): the default (the subspace clip, per frequency
   block of each conv kernel), `spectral_norm`, and the exact clip after every step
   (`constraint="spectral"`, the conv default before; a few short chunks).
   All contenders of one architecture and batch size run in interleaved rounds of one 40-step
   `fit` chunk each (after a traced warm-up); the fastest chunk of each counts, and the ratios
   are taken within the run (this machine is shared and switches between fast and slow phases).
2. Step time of the same MLP VAE from deel-lip 1.5.0 SpectralDense + GroupSort2 (legacy Keras, in
   a subprocess with TF_USE_LEGACY_KERAS=1; bench/deel_lip_vae.py; the fastest of 6 chunks of
   40 steps) / LipschitzVAE with each dense per-step control, at each batch size. Goal >= 20x
   for the default. Also deel-lip / the plain VAEs (no control at all): the ceiling of that
   ratio for any per-step control on this machine.
3. Certification time for 10k inputs (`certified_radius`, method "best") / one stochastic
   forward pass of the VAE on the same 10k. Goal <= 2x.
Run: `.venv/bin/python bench/train_speed.py [--skip_deel] [--skip_conv] [--conv_only]
[--rounds N]`
(or `make bench`).
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

from lipvae_tf import constraints as lc  # noqa: E402
from lipvae_tf import design  # noqa: E402
from lipvae_tf import layers as ll  # noqa: E402
from lipvae_tf.model import LipschitzVAE, StandardVAE  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES, BATCHES, LATENT = 60000, (256, 128), 16
ROUNDS, CHUNK_STEPS = 10, 40
SHAPE = dict(latent_dim=LATENT, hidden_units=(512, 512), likelihood="bernoulli")
# the zoo's conv VAE (zoo/fashion_mnist_conv_r1): filters (32, 64), latent 10, batch 128
CONV_SHAPE = dict(latent_dim=10, architecture="conv", conv_filters=(32, 64),
                  likelihood="bernoulli")
CONV_BATCH = 128


class GroupSortVAE(StandardVAE):
    """The plain Keras VAE of the goal: unconstrained Dense/Conv layers with GroupSort(2)."""

    def _activation(self, name: str) -> keras.layers.Layer:
        return ll.GroupSort(2, name=name)


def lipschitz_vae(constraint: str | None, shape: dict) -> LipschitzVAE:
    """`LipschitzVAE.from_target(1, 8)` with this per-step control and a learned std network
    under its cap (`posterior_std=None`: the plain VAE's architecture); None: every kernel
    constraint removed after building (its layers without any projection)."""
    model = LipschitzVAE.from_target(1.0, 8.0, constraint=constraint or lc.DEFAULT_CONSTRAINT,
                                     posterior_std=None, **shape)
    if constraint is None:
        for variable in model.trainable_variables:
            variable.constraint = None
    return model


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).random((count, 28, 28, 1), dtype=np.float32)


def chunk_ms_per_step(model: keras.Model, x: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    model.fit(x, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / (len(x) // batch) * 1e3


def interleaved(models: dict[str, keras.Model], x: np.ndarray, batch: int, rounds: int,
                steps: dict[str, int] | None = None) -> dict[str, list[float]]:
    """ms per training step of each model: `rounds` rounds, each model one chunk per round.

    steps: chunk length per model when not CHUNK_STEPS (a very slow contender runs fewer).
    """
    steps = steps or {}
    for model in models.values():  # compile, trace, warm up
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(x[: 2 * batch], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            chunk = x[: steps.get(name, CHUNK_STEPS) * batch]
            times[name].append(chunk_ms_per_step(model, chunk, batch))
    return times


def report(title: str, times: dict[str, list[float]], baseline: str, ours: str,
           goal: float) -> dict[str, float]:
    """Prints min / median per contender and its ratios to the baseline; the fastest chunks."""
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    print(f"\n{title}")
    print(f"  {'contender':<44}{'ms/step min':>12}{'median':>9}{'x plain (min)':>15}"
          f"{'x plain (median)':>18}")
    for name in times:
        print(f"  {name:<44}{best[name]:>12.2f}{median[name]:>9.2f}"
              f"{best[name] / best[baseline]:>15.3f}{median[name] / median[baseline]:>18.3f}")
    ratio = best[ours] / best[baseline]
    print(f"  -> {ours} / {baseline}: {ratio:.3f}x (fastest chunks; goal <= {goal}x: "
          f"{'met' if ratio <= goal else 'NOT met'}), medians "
          f"{median[ours] / median[baseline]:.3f}x")
    return best


def projection_ms(model: keras.Model, repeats: int = CHUNK_STEPS) -> float:
    """One application of every kernel constraint, as the optimiser runs it after each step
    (compiled; the power-iteration vectors are updated as in training)."""
    constrained = [v for v in model.trainable_variables if v.constraint is not None]
    project = tf.function(lambda: [v.assign(v.constraint(v)) for v in constrained])
    project()
    start = time.perf_counter()
    for _ in range(repeats):
        project()
    return (time.perf_counter() - start) / repeats * 1e3


DENSE_KINDS = ("subspace_clip", "spectral_norm", "bjorck")  # the per-step controls compared
DEFAULT_ROW = "lipschitz_vae default model (fixed std)"
PLAIN_FIXED_ROW = "plain_vae_groupsort fixed std"
CONV_DEFAULT_ROW = "lipschitz_conv_vae default model (fixed std)"
CONV_PLAIN_FIXED_ROW = "plain_conv_vae_groupsort fixed std"


def kind_row(kind: str) -> str:
    """The row name of the LipschitzVAE trained with this per-step control."""
    return f"lipschitz_vae {kind}" + (" (default)" if kind == lc.DEFAULT_CONSTRAINT else "")


def projection_speed(rounds: int, kinds=DENSE_KINDS, shape=None,
                     what: str = "the MLP VAE") -> dict[str, float]:
    """ms per step of the per-step control alone, for the constrained kernels of a VAE."""
    models = {kind: lipschitz_vae(kind, shape or SHAPE) for kind in kinds}
    count = sum(v.constraint is not None for v in models[kinds[0]].trainable_variables)
    times = {kind: [] for kind in models}
    for _ in range(rounds):
        for kind, model in models.items():
            times[kind].append(projection_ms(model))
    print(f"\nthe per-step control alone ({count} constrained kernels of {what}), "
          f"{rounds} rounds")
    for kind, values in times.items():
        print(f"  {kind:<14} ms/step: min {min(values):6.2f}  median {np.median(values):6.2f}")
    return {kind: min(values) for kind, values in times.items()}


def mlp_speed(x: np.ndarray, batch: int, rounds: int) -> dict[str, float]:
    models = {"plain_vae_groupsort": GroupSortVAE(**SHAPE)}
    models.update({kind_row(kind): lipschitz_vae(kind, SHAPE) for kind in DENSE_KINDS})
    models["lipschitz_vae unprojected"] = lipschitz_vae(None, SHAPE)
    # what from_target builds by default: a fixed posterior std, so no std network (a smaller
    # architecture than the plain VAE's; its own row, not the goal's ratio)
    models[DEFAULT_ROW] = LipschitzVAE.from_target(1.0, 8.0, **SHAPE)
    # ... and the plain VAE of that architecture: the same fixed std, no std network
    models[PLAIN_FIXED_ROW] = GroupSortVAE(posterior_std=design.DEFAULT_POSTERIOR_STD, **SHAPE)
    times = interleaved(models, x, batch, rounds)
    best = report(f"MLP VAE 784-512-512-{LATENT}, batch {batch}, {rounds} rounds x "
                  f"{CHUNK_STEPS} steps", times, "plain_vae_groupsort",
                  kind_row(lc.DEFAULT_CONSTRAINT), 1.15)
    print(f"  -> {DEFAULT_ROW} / {PLAIN_FIXED_ROW} (the same architecture): "
          f"{best[DEFAULT_ROW] / best[PLAIN_FIXED_ROW]:.3f}x (fastest chunks), medians "
          f"{np.median(times[DEFAULT_ROW]) / np.median(times[PLAIN_FIXED_ROW]):.3f}x")
    return best


def conv_speed(x: np.ndarray, rounds: int, exact_rounds: int) -> dict[str, float]:
    default = f"lipschitz_conv_vae {lc.DEFAULT_CONV_CONSTRAINT} (default)"
    models = {"plain_conv_vae_groupsort": GroupSortVAE(**CONV_SHAPE),
              default: lipschitz_vae(lc.DEFAULT_CONV_CONSTRAINT, CONV_SHAPE),
              "lipschitz_conv_vae spectral_norm": lipschitz_vae("spectral_norm",
                                                                         CONV_SHAPE),
              "lipschitz_conv_vae unprojected": lipschitz_vae(None, CONV_SHAPE),
              # the conv model from_target builds by default (a fixed std, no std network) and
              # the plain conv VAE of that architecture
              CONV_DEFAULT_ROW: LipschitzVAE.from_target(1.0, 8.0, **CONV_SHAPE),
              CONV_PLAIN_FIXED_ROW: GroupSortVAE(posterior_std=design.DEFAULT_POSTERIOR_STD,
                                                 **CONV_SHAPE)}
    times = interleaved(models, x, CONV_BATCH, rounds)
    if exact_rounds:  # the exact frequency-domain clip every step: slow, a few short chunks
        exact = {"lipschitz_conv_vae exact clip (spectral)": lipschitz_vae("spectral",
                                                                           CONV_SHAPE)}
        times.update(interleaved(exact, x, CONV_BATCH, exact_rounds,
                                 steps={name: 8 for name in exact}))
    best = report(f"conv VAE (zoo shape: filters 32, 64, latent 10), batch {CONV_BATCH}, "
                  f"{rounds} rounds x {CHUNK_STEPS} steps", times, "plain_conv_vae_groupsort",
                  default, 1.3)
    print(f"  -> {CONV_DEFAULT_ROW} / {CONV_PLAIN_FIXED_ROW} (the same architecture): "
          f"{best[CONV_DEFAULT_ROW] / best[CONV_PLAIN_FIXED_ROW]:.3f}x (fastest chunks), medians "
          f"{np.median(times[CONV_DEFAULT_ROW]) / np.median(times[CONV_PLAIN_FIXED_ROW]):.3f}x")
    # the control alone varies far less than the steps on this shared machine
    projection_speed(rounds, ("subspace_clip", "spectral_norm", "spectral"), CONV_SHAPE,
                     "the conv VAE")
    return best


def deel_lip_speed(batch: int) -> dict:
    """deel-lip VAE step time, from its own interpreter (legacy Keras) in a subprocess."""
    sys.path.insert(0, HERE)
    import deel_env  # noqa: E402 (bench helper next to this file)

    python = deel_env.ensure_deel_python()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "deel.json")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        # the same measure as ours: the fastest of several CHUNK_STEPS-step epochs
        subprocess.run([python, os.path.join(HERE, "deel_lip_vae.py"), "--epochs", "6",
                        "--examples", str(CHUNK_STEPS * batch), "--batch", str(batch),
                        "--latent", str(LATENT), "--json", out],
                       env=env, check=True, stdout=subprocess.DEVNULL, timeout=1800)
        with open(out, encoding="utf-8") as handle:
            return json.load(handle)


def certification_speed(x: np.ndarray) -> dict[str, float]:
    """Fastest of several rounds: certified_radius on x vs one stochastic forward pass on x."""
    model = LipschitzVAE.from_target(1.0, 8.0, **SHAPE)
    model.finalize()
    model.certified_radius(x[:256], 8.0)  # trace
    model.reconstruct(x[:256])
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
    parser.add_argument("--skip_conv", action="store_true", help="leave out the conv VAE")
    parser.add_argument("--conv_only", action="store_true",
                        help="only the conv VAE's rows (no MLP, control-alone, deel-lip or "
                             "certification rows)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    parser.add_argument("--exact_conv_rounds", type=int, default=2,
                        help="8-step chunks of the conv VAE with the exact clip (0: skip)")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x = images(CHUNK_STEPS * max(BATCHES))
    print(f"{os.cpu_count()} CPU cores; ratios are taken between chunks of the same run")
    if args.conv_only:
        conv_speed(x, args.rounds, args.exact_conv_rounds)
        return
    ours = {batch: mlp_speed(x, batch, args.rounds) for batch in BATCHES}
    projection_speed(args.rounds)
    if not args.skip_conv:
        conv_speed(x, args.rounds, args.exact_conv_rounds)
    if not args.skip_deel:
        for batch in BATCHES:
            deel = deel_lip_speed(batch)
            theirs = deel["seconds_per_step"] * 1e3
            speedups = ", ".join(f"{kind} {theirs / ours[batch][kind_row(kind)]:.1f}x"
                                 for kind in DENSE_KINDS)
            speedups += f"; the default model (fixed std) {theirs / ours[batch][DEFAULT_ROW]:.1f}x"
            print(f"\nbatch {batch}: deel-lip {deel['deel_lip_version']} SpectralDense VAE "
                  f"{theirs:.1f} ms/step (fastest of 6 chunks) -> LipschitzVAE faster by "
                  f"{speedups} (goal >= 20x for the default, {lc.DEFAULT_CONSTRAINT})")
            # the ceiling of that ratio for any per-step control: deel-lip against the plain
            # VAE of the same architecture, which has no control at all (measured in this run)
            plain, plain_fixed = ours[batch]["plain_vae_groupsort"], ours[batch][PLAIN_FIXED_ROW]
            print(f"  ceiling: deel-lip / plain VAE (no control at all) {theirs / plain:.1f}x, "
                  f"/ plain VAE with the fixed std {theirs / plain_fixed:.1f}x: a control that "
                  f"cost nothing would reach these ratios, no more")
    cert = certification_speed(images(10000))
    print(f"\n10k inputs: certified_radius {cert['certify']:.3f} s, one forward pass "
          f"{cert['forward']:.3f} s -> ratio {cert['certify'] / cert['forward']:.2f}x "
          f"(goal <= 2x)")


if __name__ == "__main__":
    main()
