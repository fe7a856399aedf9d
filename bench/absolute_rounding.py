"""What covering the absolute float32 round-off costs the bundled zoo models' certificates.

For each bundled Lipschitz zoo model, on the Fashion-MNIST test images (Debian IDX when
installed, else the bundled sample): the default certificate (`certified_radius`, the exact map
of the weights in use, docs/theory.md section 12) against the one with
`absolute_rounding=True` (section 15), min and median, the slack E_0 + E_d it subtracts from r,
and the seconds each takes.

    .venv/bin/python bench/absolute_rounding.py [--limit 10000] [--models NAME,NAME]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from lipvae_tf import data, zoo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=10000, help="test images")
    parser.add_argument("--models", default="", help="comma-separated zoo names (default: all)")
    args = parser.parse_args()
    images, _, source = data.load_arrays("fashion_mnist", "test", limit=args.limit)
    print(f"{len(images)} test images from {source}")
    print("| model | r, p | default min / median | absolute min / median | median ratio | "
          "slack median / max | seconds default / absolute |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in zoo.list_models("fashion_mnist", bundled_only=True):
        card = zoo.model_card(name)
        if card["kind"] != "lipschitz" or (args.models and name not in args.models.split(",")):
            continue
        vae = zoo.load(name)
        r, p = card["certificate"]["r"], card["certificate"]["p"]
        start = time.perf_counter()
        default = vae.certified_radius(images, r, p)
        middle = time.perf_counter()
        covered = vae.certified_radius(images, r, p, absolute_rounding=True)
        end = time.perf_counter()
        slack, _ = vae.absolute_rounding_slack(images, vae.reconstruction_tolerance(r), p)
        print(f"| {name} | {r:g}, {p:g} | {default.min():.4f} / {np.median(default):.4f} | "
              f"{covered.min():.4f} / {np.median(covered):.4f} | "
              f"{np.median(covered / default):.4f} | {np.median(slack):.3f} / {slack.max():.3f} | "
              f"{middle - start:.2f} / {end - middle:.2f} |", flush=True)


if __name__ == "__main__":
    main()
