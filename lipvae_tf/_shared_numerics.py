"""What the NumPy certificates (`lipvae_tf.bounds`) and their TensorFlow graph twins
(`lipvae_tf.graph_bounds`) share: the constants of their float64 arithmetic, the fixed std's
constants and the list of certificates that `best` takes the maximum of.

One definition for both makes "the same rounding, the same truncation and the same candidates in
both" structural: graph_bounds must reproduce bounds operation by operation (its module
docstring says how closely). Internal.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

# unit roundoff 2^-53: one float64 operation errs by <= UNIT_ROUNDOFF relative
UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2

# Every input of a certificate (the constants, s, r and the latent reach r / M_g) is at most
# MAGNITUDE_LIMIT, and every divisor (M_mu, M_g, gamma) at least its inverse: the certificates
# multiply up to four such values (e.g. (M_mu^2 + M_sigma^2) (1 - p) r^2 / M_g^2 <= 1e300; the
# largest, the paper's 4 M_mu^2 s^2, <= 4e300), which then stay finite in float64 (< 1.8e308).
# Beyond it the closed forms returned inf or NaN (an adversarial review, 2026-12-01: the paper's
# form gave inf at r / M_g = 1e155).
MAGNITUDE_LIMIT = 1e75
# ... and the divisors and the latent reach r / M_g at least MAGNITUDE_FLOOR: squares of smaller
# reaches fall below float64's normal range (subnormals lose relative precision, and a reach
# of 1e-170 had its noise terms underflow to 0, which certified reach / M_mu as if there were no
# noise: a review, 2026-12-03); every term that can still underflow is then below the
# certificates' relative rounding margins of the reach (docs/theory.md section 5, "Magnitudes").
# 1e-60, not 1e-75: TF's CPU kernels flush subnormal results to zero, and Markov's
# discriminant A (1 - p) r^2 / M_g^2, a product of four floors and 1 - p >= 2^-53, flushed to 0
# at 1e-75 and the graph's radius was inf (a review, 2026-12-03, later); at 1e-60 it is at least
# 6e-273 even after the cancellation in the slack, a normal float64 with 35 decades to spare
MAGNITUDE_FLOOR = 1e-60

# the largest latent dimension (degrees of freedom) the certificates take: the graph indexes
# with int32, and NumPy cast m = 1e30 to int64 with an overflow (an adversarial review,
# 2026-12-03)
MAX_DEGREES = 2**31 - 1

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Stirling series for lgamma (DLMF 5.11.1): B_2k / (2k (2k - 1)), k = 1..7. For real arguments the
# truncation error is at most the first omitted term, |B_16| / (16 * 15) / z^15 (DLMF 5.11(ii)).
STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
STIRLING_NEXT = 3617 / 122400
STIRLING_FROM = 8  # smaller z are shifted: lgamma(z) = lgamma(z + k) - log(z (z+1) ... (z+k-1))
# summation windows leave out Poisson mass <= e^-POISSON_TAIL per side (accuracy, not soundness)
POISSON_TAIL = 46.0
MAX_TERMS = 100_000  # longer windows (x/2 or lam/2 above ~2.7e7) use the Cantelli bound instead


def docstring_placeholders(table: dict[str, str]) -> Callable[[Callable], Callable]:
    """A decorator that fills each line of a docstring that is one of `table`'s keys (e.g.
    "<certificate arguments>") with its text, indented as the placeholder is: the arguments and
    errors the twin modules' certificates share, written once per module (python -OO strips
    docstrings: nothing to fill)."""
    def fill(function: Callable) -> Callable:
        if function.__doc__ is None:
            return function
        lines = []
        for line in function.__doc__.splitlines():
            text = table.get(line.strip())
            indent = line[:len(line) - len(line.lstrip())]
            lines += [indent + part for part in text.splitlines()] if text else [line]
        function.__doc__ = "\n".join(lines)
        return function

    return fill


def fixed_std(gamma: float, latent_dim: int) -> tuple[float, float]:
    """(M_sigma, s) of a fixed std sigma = gamma * 1 (a checked Python float gamma): it never
    moves, and ||sigma|| = gamma sqrt(m), rounded up (radii fall as s grows)."""
    return 0.0, gamma * math.sqrt(latent_dim) * (1 + 4 * UNIT_ROUNDOFF)


def check_fixed_std_norm(gamma: float, latent_dim: int) -> None:
    """A ValueError naming gamma when the fixed std's norm gamma sqrt(m) (`fixed_std`, the s the
    Markov forms use) is above MAGNITUDE_LIMIT: the error would otherwise name an s the caller
    never passed."""
    if fixed_std(gamma, latent_dim)[1] > MAGNITUDE_LIMIT:
        raise ValueError(f"gamma sqrt(latent_dim) (the fixed std's norm) must be <= "
                         f"{MAGNITUDE_LIMIT:g}, got gamma {gamma!r} and latent_dim {latent_dim}")


def norm_rounding_factor(terms: int) -> float:
    """1 + (terms + 4) u: a float64 l2 norm of `terms` values (sqrt of a sum of squares, in any
    summation order: the squares and sum err by <= terms u, which the root halves, and the
    correctly rounded root by u: (terms + 2) u / 2 in all; Higham 2002, section 3.1), multiplied
    by this factor in float64 (one more rounding, u), is never below the exact norm
    ((terms + 2) u / 2 + u + O(u^2) <= (terms + 4) u)."""
    return 1.0 + (terms + 4) * UNIT_ROUNDOFF


class CertificateForms(NamedTuple):
    """One implementation's certificates (bounds: NumPy; graph_bounds: TensorFlow), each called
    as the `bounds` function of the same name; `chi2` as (m_mu, m_sigma, m_g, s, r, p,
    latent_dim, gamma); `triangle_markov_radius` and `triangle_chi2_radius` as the bounds
    functions `_triangle_markov_radius` (m_mu, m_sigma, m_g, s, r, p) and `_triangle_chi2_radius`
    (the same, latent_dim= and s_max=)."""
    chi2: Callable
    paper_markov_radius: Callable
    markov_radius: Callable
    capped_markov_radius: Callable
    capped_chi2_radius: Callable
    triangle_markov_radius: Callable
    triangle_chi2_radius: Callable
    ncx2_radius: Callable


def best_candidates(forms: CertificateForms, zero, m_mu, m_sigma, m_g, s, r, p, *,
                    latent_dim: int, gamma, std_cap, s_max, legacy: bool = False) -> list:
    """The certificates `best_radius` takes the maximum of (docs/theory.md sections 1-3, 5, 9):
    chi-square (for latent_dim >= 2; else `zero`, the radius 0 in the forms' type), then for a
    learned std the paper and tighter Markov forms and, with a cap S, the capped Markov and
    chi-square forms, without one (unless `legacy`) the same two forms with sigma(x') bounded
    through M_sigma alone (section 2, "Without a cap"); for a fixed std gamma the Markov forms
    with M_sigma = 0 and s = gamma sqrt(m), and the noncentral chi-square form. legacy=True
    leaves the uncapped triangle forms out: the candidates of lipvae_tf 0.1's comparison
    (`train.LEGACY_CERTIFICATE`). Not reduced: each caller takes the maximum in its own
    arithmetic."""
    candidates = [forms.chi2(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma)
                  if latent_dim >= 2 else zero]  # Inglot's chi-square bound needs m >= 2
    if gamma is None:
        candidates += [forms.paper_markov_radius(m_mu, m_sigma, m_g, s, r, p),
                       forms.markov_radius(m_mu, m_sigma, m_g, s, r, p)]
        if std_cap is not None:  # their M_sigma branches are the triangle forms (and more)
            candidates += [
                forms.capped_markov_radius(m_mu, m_sigma, m_g, s, r, p, std_cap=std_cap),
                forms.capped_chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                         std_cap=std_cap, s_max=s_max),
            ]
        elif not legacy:
            candidates += [
                forms.triangle_markov_radius(m_mu, m_sigma, m_g, s, r, p),
                forms.triangle_chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                           s_max=s_max),
            ]
    else:
        fixed_sigma, fixed_s = fixed_std(gamma, latent_dim)
        candidates += [forms.paper_markov_radius(m_mu, fixed_sigma, m_g, fixed_s, r, p),
                       forms.markov_radius(m_mu, fixed_sigma, m_g, fixed_s, r, p),
                       forms.ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma)]
    return candidates
