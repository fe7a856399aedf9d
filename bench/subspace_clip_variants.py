"""Ways to compute the subspace clip's step: time per step and quality, side by side in one run.

The default per-step control (`constraint="subspace_clip"`) tracks a k = 16 subspace of each
dense kernel W (rows, cols) and clips the Ritz values above the bound. Its cost is the products
with W; these variants differ in how many they make per step and where the Rayleigh-Ritz step is
taken. The package's is "gram"; the others are written out here only to be measured.

- "gram" (the package's `lipvae_tf.constraints.subspace_clip`): Y = W W^T V, T = W^T Y, the
  Ritz pairs from the k x k Gram matrices of Y and T, the update: 4 rows cols k multiply-adds.
- "qr_svd" (the first version, until 2026-11-30): Q = qr(W W^T V), the SVD of Q^T W, the
  update: the same subspace and Ritz step as "gram", 4 rows cols k, plus a tall QR and a
  (k, cols) SVD.
- "gram_previous" (until 2026-12-03): "gram" as it was computed before: the products as W^T V,
  W (W^T V), W^T Y (images as columns), the Ritz step also for the latent heads whose k is
  min(rows, cols) (the package now clips those exactly from their small Gram matrix), a
  normalised old column for a dropped direction. The same subspace and clip: speed only.
- "middle" (3 rows cols k): Z = W^T V, Y = W Z, the Ritz pairs of span(Z) (image Y), the update:
  one product fewer, the Ritz step half an iteration behind "gram"'s.
- "alternating" (2 rows cols k): one product per step, with W or W^T in turn, the Ritz pairs of
  the previous step's subspace and the update: half an iteration per step (two more layer
  weights: the output-space subspace and which side is next).
- "every_2nd" (quality only, `--variants=every_2nd`): "gram" on every 2nd step, nothing in
  between (a step counter as a third layer weight).

Speed: the per-step control alone for the 6 constrained kernels of the MLP VAE of
bench/train_speed.py (784-512-512-16 encoder mean, 16-512-512-784 decoder), compiled, the
fastest of interleaved rounds. Quality: the default recipe (`python -m lipvae_tf.train
--source=sample --epochs=10 --nobaseline`: R* = 1, r = 8, p = 1/2, fixed posterior std 0.05;
and `--posterior_std=learned` for one seed) with each variant swapped in, test log p(x)
(IWAE-64) on the bundled sample's 1000 test images.

    .venv/bin/python bench/subspace_clip_variants.py [--skip_quality] [--seeds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lipvae_tf import constraints as lc  # noqa: E402
from lipvae_tf import train  # noqa: E402

SHAPES = [(784, 512), (512, 512), (512, 16), (16, 512), (512, 512), (512, 784)]
RANK, ROUNDS, CALLS = 16, 7, 100
_ON_BOUND = 1 + lc._ROUNDOFF_ULPS * np.finfo(np.float32).eps  # the package's "on the bound"


def _clip(kernel, inputs, outputs, ritz, max_norm):
    """kernel - inputs diag(max(ritz - c, 0)) outputs^T, for orthonormal inputs and outputs."""
    excess = tf.where(ritz > max_norm * _ON_BOUND, ritz - max_norm, tf.zeros_like(ritz))
    return kernel - tf.matmul(inputs * excess[None, :], outputs, transpose_b=True)


def qr_svd_step(kernel, subspace, max_norm):
    """The first version of `subspace_clip`."""
    q, _ = tf.linalg.qr(tf.matmul(kernel, tf.matmul(kernel, subspace, transpose_a=True)))
    s, p, r = tf.linalg.svd(tf.matmul(q, kernel, transpose_a=True))
    ritz = tf.matmul(q, p)
    return _clip(kernel, ritz, r, s, max_norm), ritz


def gram_previous_step(kernel, subspace, max_norm):
    """"gram" as the package computed it until 2026-12-03 (`_subspace_correction` then)."""
    v = tf.cast(subspace, kernel.dtype)
    y = lc._unit_columns(tf.matmul(kernel, tf.matmul(kernel, v, adjoint_a=True)))
    t = tf.matmul(kernel, y, adjoint_a=True)
    coefficients, ritz = _pairs(y, t)
    excess = tf.where(ritz > max_norm * _ON_BOUND, ritz - max_norm, tf.zeros_like(ritz))
    inputs = tf.matmul(y, coefficients)
    weights = tf.math.divide_no_nan(excess, ritz)
    correction = tf.matmul(inputs * weights[None, :], tf.matmul(t, coefficients),
                           adjoint_b=True)
    unit = tf.abs(tf.norm(tf.abs(inputs), axis=-2) - 1) < 0.5
    new = tf.where(unit[None, :], inputs, lc._unit_columns(v))
    return kernel - correction, new


def _pairs(basis, image):
    coefficients, ritz = lc._ritz_coefficients(basis, image)
    return tf.cast(coefficients, basis.dtype), tf.cast(ritz, basis.dtype)


def middle_step(kernel, subspace, max_norm):
    """Ritz pairs on span(W^T V), from its image W W^T V: one product fewer than "gram"."""
    z = tf.matmul(kernel, subspace, transpose_a=True)
    y = tf.matmul(kernel, z)
    coefficients, ritz = _pairs(z, y)
    outputs = tf.matmul(z, coefficients)
    inputs = tf.math.divide_no_nan(tf.matmul(y, coefficients), ritz[None, :])
    inputs = tf.where((ritz > 0)[None, :], inputs, subspace)
    return _clip(kernel, inputs, outputs, ritz, max_norm), inputs


def alternating_step(kernel, basis, other, max_norm, on_rows: bool):
    """One product with W (basis in the output space) or W^T (basis in the input space)."""
    image = tf.matmul(kernel, basis, transpose_a=on_rows)
    coefficients, ritz = _pairs(basis, image)
    near = tf.matmul(basis, coefficients)
    far = tf.math.divide_no_nan(tf.matmul(image, coefficients), ritz[None, :])
    far = tf.where((ritz > 0)[None, :], far, other)
    if on_rows:
        return _clip(kernel, near, far, ritz, max_norm), far
    return _clip(kernel, far, near, ritz, max_norm), far


class AlternatingSubspaceClip(lc.SubspaceClip):
    """The alternating variant as a layer constraint (its state: both sides and a flag)."""

    def state_spec(self, kernel_shape) -> dict:
        spec = super().state_spec(kernel_shape)
        rank = spec["subspace"][0][1]
        spec["output_subspace"] = ((int(kernel_shape[1]), rank), "float32",
                                   keras.initializers.RandomNormal(stddev=1.0))
        spec["subspace_side"] = ((), "int32", "zeros")
        return spec

    def __call__(self, w):
        kernel = tf.convert_to_tensor(w)
        inputs, outputs = self._weight("subspace"), self._weight("output_subspace")
        side = self._weight("subspace_side")
        left, right = tf.convert_to_tensor(inputs), tf.convert_to_tensor(outputs)

        def from_inputs():
            clipped, far = alternating_step(kernel, left, right, self.max_norm, True)
            return clipped, left, far

        def from_outputs():
            clipped, far = alternating_step(kernel, right, left, self.max_norm, False)
            return clipped, far, right

        clipped, new_left, new_right = tf.cond(tf.equal(side, 0), from_inputs, from_outputs)
        inputs.assign(new_left)
        outputs.assign(new_right)
        side.assign(1 - side)
        return clipped


class EverySecondStepSubspaceClip(lc.SubspaceClip):
    """"gram" on every 2nd step only, the kernel left as it is in between (a step counter)."""

    def state_spec(self, kernel_shape) -> dict:
        return {**super().state_spec(kernel_shape), "constraint_step": ((), "int64", "zeros")}

    def __call__(self, w):
        kernel, step = tf.convert_to_tensor(w), self._weight("constraint_step")
        due = tf.equal(tf.math.floormod(tf.convert_to_tensor(step), 2), 0)
        step.assign_add(tf.ones((), step.dtype))
        return tf.cond(due, lambda: _SUBSPACE_CLIP.__call__(self, kernel), lambda: kernel)


_SUBSPACE_CLIP = lc.SubspaceClip
STEPS = {"gram": lc.subspace_clip, "gram_previous": gram_previous_step, "qr_svd": qr_svd_step,
         "middle": middle_step}
CLASSES = {"alternating": AlternatingSubspaceClip, "every_2nd": EverySecondStepSubspaceClip}
VARIANTS = ("gram", "gram_previous", "qr_svd", "middle", "alternating")  # "every_2nd": quality
# only (--variants)


def speed() -> dict[str, float]:
    rng = np.random.default_rng(0)
    kernels = [tf.Variable((rng.normal(size=s) * 1.3 / np.sqrt(s[0])).astype(np.float32))
               for s in SHAPES]
    programs = {}
    for name in VARIANTS:
        state = [tf.Variable(rng.normal(size=(s[0], min(RANK, *s))).astype(np.float32))
                 for s in SHAPES]
        if name == "alternating":
            other = [tf.Variable(rng.normal(size=(s[1], min(RANK, *s))).astype(np.float32))
                     for s in SHAPES]
            side = tf.Variable(0)

            def program(state=state, other=other, side=side):
                def half_step(bases, targets, on_rows: bool) -> int:
                    for w, basis, target in zip(kernels, bases, targets):
                        clipped, far = alternating_step(w, basis, target, 1.0, on_rows)
                        w.assign(clipped)
                        target.assign(far)
                    return int(on_rows)
                side.assign(tf.cond(tf.equal(side, 0), lambda: half_step(state, other, True),
                                    lambda: half_step(other, state, False)))
        else:
            def program(state=state, step=STEPS[name]):
                for w, v in zip(kernels, state):
                    clipped, new = step(w, v, 1.0)
                    w.assign(clipped)
                    v.assign(new)
        programs[name] = tf.function(program)
    for program in programs.values():
        program()
    times = {name: [] for name in programs}
    for _ in range(ROUNDS):
        for name, program in programs.items():
            start = time.perf_counter()
            for _ in range(CALLS):
                program()
            times[name].append((time.perf_counter() - start) / CALLS * 1e3)
    best = {name: min(values) for name, values in times.items()}
    print(f"\nper-step control alone, 6 kernels {SHAPES}, k = {RANK}, {ROUNDS} rounds x {CALLS}")
    for name, value in best.items():
        print(f"  {name:<12} {value:6.3f} ms/step (min)  median {np.median(times[name]):6.3f}  "
              f"{value / best['gram']:.2f}x gram")
    return best


_CORRECTION = lc._subspace_correction  # what SubspaceClip's step calls


def _as_correction(step):
    """A dense variant in the form SubspaceClip calls (`constraints._subspace_correction`:
    correction, new subspace, largest Ritz value); conv blocks keep the package's step.
    (Replacing `lc.subspace_clip`, as this script first did, changed nothing: the layers do not
    call it, so those rows trained the default step.)"""
    def correction(kernel, subspace, max_norm):
        if kernel.dtype.is_complex or len(kernel.shape) != 2:
            return _CORRECTION(kernel, subspace, max_norm)
        clipped, new = step(kernel, subspace, max_norm)
        # the largest Ritz value, for SubspaceClip's exact-clip rule, as the package finds it
        top = _CORRECTION(kernel, subspace, max_norm)[2]
        return kernel - clipped, new, top
    return correction


def quality(variant: str, seed: int, posterior_std) -> dict:
    saved = lc._subspace_correction, lc.SubspaceClip
    if variant in CLASSES:
        lc.SubspaceClip = CLASSES[variant]
    elif variant != "gram":
        lc._subspace_correction = _as_correction(STEPS[variant])
    try:
        with tempfile.TemporaryDirectory() as out:
            config = train.TrainConfig(source="sample", epochs=10, baseline=False, seed=seed,
                                       posterior_std=posterior_std, output_dir=out, verbose=0)
            train.run(config)
            with open(os.path.join(out, "report.json")) as f:
                report = json.load(f)["models"]["lipschitz_vae"]
    finally:
        lc._subspace_correction, lc.SubspaceClip = saved
    print(f"  {variant} seed {seed} posterior_std {posterior_std}: test log p(x) "
          f"{report['test']['log_likelihood_iwae']:.1f}", flush=True)
    return {"log_px": report["test"]["log_likelihood_iwae"], "elbo": report["test"]["elbo"],
            "radius_min": report["certified_radius"]["best"]["min"],
            "train_seconds": report["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip_quality", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"quality runs of these, comma-separated ({VARIANTS} or every_2nd)")
    args = parser.parse_args()
    speed()
    if args.skip_quality:
        return
    runs = [(seed, "auto") for seed in range(args.seeds)] + [(0, None)]
    variants = ["gram"] + [v for v in args.variants.split(",") if v != "gram"]
    rows = {variant: [quality(variant, seed, std) for seed, std in runs] for variant in variants}
    print("\nquality, the bundled sample, 10 epochs: test log p(x) (IWAE-64), nats")
    labels = [f"seed {seed} {'fixed std' if std else 'learned std'}" for seed, std in runs]
    print(f"  {'variant':<12}" + "".join(f"{label:>24}" for label in labels)
          + f"{'mean - gram':>14}")
    for variant, results in rows.items():
        deltas = [r["log_px"] - g["log_px"] for r, g in zip(results, rows["gram"])]
        print(f"  {variant:<12}" + "".join(f"{r['log_px']:>24.1f}" for r in results)
              + f"{np.mean(deltas):>14.1f}")
    print("  certified radius min (every run): "
          f"{min(r['radius_min'] for results in rows.values() for r in results):.5f}")


if __name__ == "__main__":
    main()
