"""Certification time of the default model (a fixed posterior std), against one forward pass.

`bench/train_speed.py` times the certification of the learned-std pair; the model that
`from_target` builds by default has a fixed std, whose "best" radius includes the exact
noncentral chi-square bisection (`bounds.ncx2_radius`). The bundled `fashion_mnist_mlp_r1`
(fixed std 0.05), its 10k Fashion-MNIST test images, r = 8, p = 1/2: `certified_radius(x, 8,
0.5, method="best")`, the fastest of 3 runs after a warm-up, against `predict` on the same
images (goal of issue 3: <= 2x one forward pass).

    .venv/bin/python bench/certify_default.py
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lipvae_tf import train, zoo  # noqa: E402

NAME = "fashion_mnist_mlp_r1"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    model = zoo.load(NAME)
    images, _ = train.load_images(zoo._train_config(zoo.model_config(NAME), "unused", None),
                                  "test")
    model.certified_radius(images[:10], 8.0, 0.5, method="best")  # traced, constants measured
    model.predict(images[:10], verbose=0)
    certify, forward = [], []
    for _ in range(3):
        start = time.perf_counter()
        model.certified_radius(images, 8.0, 0.5, method="best")
        certify.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.predict(images, verbose=0, batch_size=1024)
        forward.append(time.perf_counter() - start)
    print(f"{NAME}, {len(images)} images: certified_radius (best) {min(certify):.3f} s, "
          f"predict {min(forward):.3f} s, ratio {min(certify) / min(forward):.2f}x "
          f"(runs: {', '.join(f'{c:.3f}' for c in certify)} / "
          f"{', '.join(f'{f:.3f}' for f in forward)})")


if __name__ == "__main__":
    main()
