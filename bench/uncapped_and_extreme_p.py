"""Two certificates made sharper on 2026-12-03, measured side by side with the old ones in one run:

1. `best` for a learned std without a cap: lipvae_tf 0.1's candidates (`legacy=True`: chi-square,
   paper and Markov) against the current ones, which add the M_sigma branches of the two
   triangle forms (docs/theory.md section 2, "Without a cap"); on a review's settings and on an
   uncapped learned-std model (the bundled sample's test images).
2. The verified chi-square quantile near p = 1: the bisection used to start at Cantelli's end and
   stay there where the CDF's lower bound cannot verify p; it now starts at the smaller of
   Cantelli's and Laurent & Massart's ends (section 9.2). Printed: both ends, the verified
   quantile, the exact one (scipy), and a capped chi-square radius that was 0.

    python bench/uncapped_and_extreme_p.py
"""
from __future__ import annotations

import argparse
import math

import keras
import numpy as np
from scipy import stats

from lipvae_tf import bounds, data
from lipvae_tf.model import LipschitzVAE

U = np.finfo(np.float64).eps / 2

# (M_mu, M_sigma, M_g, s, s_max, r, p, m): a review's settings (2026-12-03)
SETTINGS = [(1.0, 1.0, 1.0, 0.05, 0.05, 2.0, 0.99, 16), (1.0, 0.5, 2.0, 0.2, 0.05, 4.0, 0.999, 16),
            (1.0, 1.0, 1.0, 0.3, 0.3, 3.0, 0.9, 2)]
QUANTILES = [(10, 1 - 1e-10), (10, 1 - 1e-11), (1, 1 - 1e-11), (64, 1 - 1e-12)]


def uncapped_settings() -> None:
    print("best, learned std, no cap: lipvae_tf 0.1's candidates -> current")
    for m_mu, m_sigma, m_g, s, s_max, r, p, m in SETTINGS:
        kwargs = dict(latent_dim=m, s_max=s_max)
        old = bounds.radius("best", m_mu, m_sigma, m_g, s, r, p, legacy=True, **kwargs)
        new = bounds.radius("best", m_mu, m_sigma, m_g, s, r, p, **kwargs)
        print(f"  M = ({m_mu:g}, {m_sigma:g}, {m_g:g}), s = {s:g}, s_max = {s_max:g}, r = {r:g}, "
              f"p = {p:g}, m = {m}: {float(old):.4f} -> {float(new):.4f}")


def uncapped_model(images: int, seed: int, epochs: int) -> None:
    keras.utils.set_random_seed(seed)
    model = LipschitzVAE(8, posterior_std=None, std_cap=None, hidden_units=(256, 256),
                         encoder_mean=1.0, encoder_std=1.0, decoder=8.0)
    train_x, test_x = data.load_sample("train")[0], data.load_sample("test")[0][:images]
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(train_x, epochs=epochs, batch_size=128, verbose=0)
    model.finalize()
    print(f"an uncapped learned-std LipschitzVAE (m = 8, M_mu = M_sigma = 1, M_g = 8, {epochs} "
          f"epochs on the bundled sample, seed {seed}, finalized), {images} of its test images, "
          "median / min:")
    for r, p in ((8.0, 0.5), (8.0, 0.99), (16.0, 0.5), (16.0, 0.99)):
        old = model.certified_radius(test_x, r, p, use_std_cap=False)
        new = model.certified_radius(test_x, r, p)
        ratio = np.median(new) / np.median(old) if np.median(old) > 0 else math.inf
        print(f"  r = {r:g}, p = {p:g}: {np.median(old):.4f} / {old.min():.4f} -> "
              f"{np.median(new):.4f} / {new.min():.4f} ({ratio:.3f}x the median)")


def quantiles() -> None:
    print("verified chi2_m p-quantile: Cantelli's end, Laurent-Massart's end, the verified q, "
          "the exact quantile")
    for m, p in QUANTILES:
        cantelli = (m + math.sqrt(2 * m * p / (1 - p))) * (1 + 16 * U)
        t = -math.log(1 - p) * (1 + 8 * U)
        laurent_massart = (m + 2 * math.sqrt(m * t) + 2 * t) * (1 + 16 * U)
        q = float(bounds.chi2_quantile_upper(m, p))
        exact = float(stats.chi2.isf(1 - p, m))
        print(f"  m = {m}, 1 - p = {1 - p:.0e}: {cantelli:.6g}, {laurent_massart:.6g}, q = {q:.6g},"
              f" exact {exact:.6g} (q / exact = {q / exact:.4f})")
    radius = bounds.capped_chi2_radius(1, 1, 1, 0.1, 3.0, 1 - 1e-11, latent_dim=10, std_cap=0.1)
    print(f"  capped_chi2_radius(M = 1, 1, 1, s = S = 0.1, r = 3, p = 1 - 1e-11, m = 10) = "
          f"{float(radius):.4f} (0 when q was Cantelli's end, 4.5e5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="test images of the sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of the model")
    args = parser.parse_args()
    uncapped_settings()
    uncapped_model(args.images, args.seed, args.epochs)
    quantiles()


if __name__ == "__main__":
    main()
