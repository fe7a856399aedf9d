"""How to spend a Lipschitz budget: the split between M_mu, M_g and the std cap S at one target
(and the default fixed posterior std gamma).

Every contender certifies every input at the same R* (r, p) by construction (design_budget); the
only difference is how the budget is split. Reports test log p(x) (IWAE-64), test ELBO, the
certified radius (min, median) and training seconds, measured side by side in one run.

    python bench/budget_split.py                      # Fashion-MNIST IDX (Debian), 20k train
    python bench/budget_split.py --sample             # the bundled sample (3000 / 1000)
"""
from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from lipvae_tf import data, design
from lipvae_tf.model import LipschitzVAE


def contenders(target: float, r: float, p: float) -> list[tuple[str, dict]]:
    """(label, from_target kwargs): the equal split, then M_mu and S swept under split='decoder'
    with a learned std under its cap, then the default: a fixed posterior std."""
    learned = dict(posterior_std=None)
    rows = [("equal split (S=0.1)", dict(split="equal", **learned))]
    for m_mu in (0.5, 1.0, 2.0, 3.0):
        rows.append((f"decoder split M_mu={m_mu} S=0.1", dict(encoder_mean=m_mu, **learned)))
    for cap in (0.05, 0.2, 0.4):
        rows.append((f"decoder split M_mu=1 S={cap}",
                     dict(encoder_mean=1.0, std_cap=cap, **learned)))
    rows.append((f"decoder split M_mu=1 gamma={design.DEFAULT_POSTERIOR_STD}", {}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="use the bundled sample")
    parser.add_argument("--train", type=int, default=None,
                        help="training images (default 20000; the sample's first N with --sample)")
    parser.add_argument("--test", type=int, default=None,
                        help="test images (default 2000; the sample's first N with --sample)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.0)
    parser.add_argument("--r", type=float, default=8.0)
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()
    if args.sample:  # the limits apply here too (they were ignored)
        train_x = data.load_sample("train")[0][:args.train]
        test_x = data.load_sample("test")[0][:args.test]
    else:
        train_x = data.load_arrays("fashion_mnist", "train", source="idx",
                                   limit=args.train or 20000)[0]
        test_x = data.load_arrays("fashion_mnist", "test", source="idx",
                                  limit=args.test or 2000)[0]
    print(f"train {len(train_x)}, test {len(test_x)}, epochs {args.epochs}, R*={args.target}, "
          f"r={args.r}, p={args.p}, reconstruction 'mean'")
    print(f"{'contender':34s} {'M_mu':>6s} {'M_sig':>6s} {'M_g':>6s} {'S/gam':>5s} {'logp':>8s} "
          f"{'ELBO':>8s} {'Rmin':>6s} {'Rmed':>6s} {'sec':>6s}")
    for label, kwargs in contenders(args.target, args.r, args.p):
        keras.utils.set_random_seed(0)
        vae = LipschitzVAE.from_target(args.target, args.r, args.p, seed=0, **kwargs)
        vae.compile(keras.optimizers.Adam(1e-3))
        start = time.perf_counter()
        vae.fit(train_x, epochs=args.epochs, batch_size=128, verbose=0)
        seconds = time.perf_counter() - start
        vae.finalize()
        radius = vae.certified_radius(test_x, args.r, args.p)
        log_px = float(np.mean(vae.log_likelihood(test_x, samples=64)))
        elbo = float(vae.evaluate(test_x, batch_size=512, verbose=0, return_dict=True)["elbo"])
        budget = vae.design
        m_sigma = budget["encoder_std"]
        print(f"{label:34s} {budget['encoder_mean']:6.3f} "
              f"{'free' if m_sigma is None else f'{m_sigma:.3f}':>6s} {budget['decoder']:6.3f} "
              f"{budget['std_cap'] or budget['gamma']:5.2f} {log_px:8.1f} {elbo:8.1f} "
              f"{radius.min():6.3f} {np.median(radius):6.3f} {seconds:6.1f}", flush=True)
    print(f"(design.DEFAULT_ENCODER_MEAN = {design.DEFAULT_ENCODER_MEAN}, "
          f"DEFAULT_STD_CAP = {design.DEFAULT_STD_CAP})")


if __name__ == "__main__":
    main()
