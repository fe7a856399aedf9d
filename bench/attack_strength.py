"""How much a stronger attack lowers the estimated margin: is the cards' tightness understated?

`attacks.estimate_margin` at the settings of `python -m lipvae_tf.evaluate` (and so of the zoo
cards: 5 restarts x 40 steps x 16 noise samples per step, 8 bisection steps, 2000 noise pairs per
probability, confidence 0.99) against the same estimate with twice the restarts, and with 3x the
steps and 2x the samples per step (6x the attack's gradient work), on the first `--images` test
images of the bundled Fashion-MNIST sample, for each `--models` zoo model (r and p of its card).
A stronger attack can only lower a margin (up to the noise of the probability tests), so the
ratios stronger / default say by how much the default overstates it, and the certificate /
margin ratio (tightness) the cards report is understated by the same factor.

    .venv/bin/python bench/attack_strength.py [--images 24] [--models fashion_mnist_mlp_r1]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from lipvae_tf import attacks, data, evaluate, zoo  # noqa: E402

DEFAULTS = evaluate.EvalConfig()
CONTENDERS = {  # name: the attack's settings
    "default (5 restarts x 40 steps x 16)": dict(restarts=DEFAULTS.restarts, steps=DEFAULTS.steps),
    "10 restarts x 40 steps x 16": dict(restarts=2 * DEFAULTS.restarts, steps=DEFAULTS.steps),
    "5 restarts x 120 steps x 32": dict(restarts=DEFAULTS.restarts, steps=3 * DEFAULTS.steps,
                                        attack_samples=32),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="test images of the sample")
    parser.add_argument("--models", default="fashion_mnist_mlp_r1",
                        help="comma-separated zoo names")
    args = parser.parse_args()
    test_x, _ = data.load_sample("test")
    x = test_x[:args.images]
    for name in args.models.split(","):
        model = zoo.load(name)
        certificate = zoo.model_card(name)["certificate"]
        r, p = float(certificate["r"]), float(certificate["p"])
        certified = model.certified_radius(x, r, p, method="best")
        print(f"\n{name}: r = {r:g}, p = {p:g}, {len(x)} test images of the bundled sample, "
              f"median certified radius {np.median(certified):.3f}")
        print(f"  {'attack':40s} {'seconds':>8s} {'median margin':>14s} {'mean':>7s} "
              f"{'x default (medians)':>20s} {'per input: median, min':>23s} {'tightness':>10s}")
        margins = {}
        for label, settings in CONTENDERS.items():
            started = time.perf_counter()
            estimate = attacks.estimate_margin(
                model, x, r, p, confidence=DEFAULTS.confidence, samples=DEFAULTS.samples,
                bisection_steps=DEFAULTS.bisection_steps, seed=DEFAULTS.seed, verbose=False,
                **settings)
            seconds = time.perf_counter() - started
            margins[label] = estimate.margin
            default = next(iter(margins.values()))
            per_input = estimate.margin / default
            print(f"  {label:40s} {seconds:8.0f} {np.median(estimate.margin):14.3f} "
                  f"{np.mean(estimate.margin):7.3f} "
                  f"{np.median(estimate.margin) / np.median(default):20.3f} "
                  f"{np.median(per_input):11.3f}, {np.min(per_input):9.3f} "
                  f"{np.median(certified / estimate.margin):10.3f}", flush=True)


if __name__ == "__main__":
    main()
