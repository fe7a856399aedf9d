"""Constants of the certificates' float64 arithmetic, shared by the NumPy certificates
(`lipvae_tf.bounds`) and their TensorFlow graph twins (`lipvae_tf.graph_bounds`).

One definition for both makes "the same rounding and the same truncation in both" structural:
graph_bounds must reproduce bounds operation by operation (docs/theory.md section 3). Internal.
"""
from __future__ import annotations

import math

import numpy as np

# unit roundoff 2^-53: one float64 operation errs by <= UNIT_ROUNDOFF relative
UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2

# Every input of a certificate (the constants, s, r and the latent reach r / M_g) is at most
# MAGNITUDE_LIMIT, and every divisor (M_mu, M_g, gamma) at least its inverse: the certificates
# multiply up to four such values (e.g. (M_mu^2 + M_sigma^2) (1 - p) r^2 / M_g^2), which then stay
# finite in float64 (1e300 < 1.8e308). Beyond it the closed forms returned inf or NaN (an
# adversarial review, 2026-12-01: the paper's form gave inf at r / M_g = 1e155).
MAGNITUDE_LIMIT = 1e75

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Stirling series for lgamma (DLMF 5.11.1): B_2k / (2k (2k - 1)), k = 1..7. For real arguments the
# truncation error is at most the first omitted term, |B_16| / (16 * 15) / z^15 (DLMF 5.11(ii)).
STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
STIRLING_NEXT = 3617 / 122400
STIRLING_FROM = 8  # smaller z are shifted: lgamma(z) = lgamma(z + k) - log(z (z+1) ... (z+k-1))
# summation windows leave out Poisson mass <= e^-POISSON_TAIL per side (accuracy, not soundness)
POISSON_TAIL = 46.0
MAX_TERMS = 100_000  # longer windows (x/2 or lam/2 above ~2.7e7) use the Cantelli bound instead
