"""What the README's attack snippet costs: the maximum-damage attack on 100 images and
`estimate_margin` on 8, at the snippet's settings, on the bundled `fashion_mnist_mlp_r1` and the
bundled Fashion-MNIST sample's test images, against one forward pass of the same images.

A newcomer's run of the README (2026-12-02) killed the snippet's former `estimate_margin` on 100
images with 2000 noise pairs after 23 minutes; the README now gives these times.

    .venv/bin/python bench/attack_cost.py
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from lipvae_tf import attacks, data, zoo  # noqa: E402

NAME = "fashion_mnist_mlp_r1"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    model = zoo.load(NAME)
    test_x, _ = data.load_sample("test")
    model.predict(test_x[:100], verbose=0)  # traced
    start = time.perf_counter()
    model.predict(test_x[:100], verbose=0)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    hit = attacks.maximum_damage_attack(model, test_x[:100], radius=2.0)
    attack = time.perf_counter() - start
    start = time.perf_counter()
    estimate = attacks.estimate_margin(model, test_x[:8], r=8.0, p=0.5, confidence=0.99,
                                       samples=500, verbose=False)
    margin = time.perf_counter() - start
    print(f"{NAME}: predict on 100 images {forward:.3f} s")
    print(f"maximum_damage_attack(radius=2.0), 100 images (5 restarts x 40 steps x 16 samples): "
          f"{attack:.1f} s ({attack / forward:.0f}x one forward pass), median damage "
          f"{np.median(hit.objective):.3f}")
    print(f"estimate_margin(r=8, p=0.5, confidence=0.99, samples=500), 8 images: {margin:.1f} s "
          f"({margin / 8:.1f} s per image), median margin {np.median(estimate.margin):.3f}")


if __name__ == "__main__":
    main()
