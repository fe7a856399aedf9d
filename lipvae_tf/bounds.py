"""Certified r-robustness margins (Barrett et al., AISTATS 2022, section 3; docs/theory.md) as pure,
vectorised numpy functions.

Arguments broadcast: Lipschitz constants m_mu (encoder mean), m_sigma (encoder std), m_g (decoder),
s = ||sigma(x)||_2, reconstruction tolerance r, probability level p in [1/2, 1), and for a fixed
encoder std sigma = gamma * 1 the scalar or array gamma. Each returns the radius d such that every
||delta|| < d keeps P(||f(x + delta) - f(x)|| <= r) >= p; 0 where no certificate exists.
`radius(method, ...)` dispatches over METHODS with one uniform signature.
Derivations: docs/theory.md.

References:
- B. Barrett, A. Camuto, M. Willetts, T. Rainforth, "Certifiably Robust Variational
  Autoencoders", AISTATS 2022 (PMLR 151), section 3: the Markov certificate R1 and the
  chi-square certificate R2, https://proceedings.mlr.press/v151/barrett22a.html
  (https://arxiv.org/abs/2102.07559)
- T. Inglot, "Inequalities for quantiles of the chi-square distribution", Probability and
  Mathematical Statistics 30(2), 2010, pp. 339-351: the tail bound of `inglot_log_tail`.
- N. L. Johnson, S. Kotz, N. Balakrishnan, "Continuous Univariate Distributions", vol. 2, 2nd
  ed., Wiley 1995, chapter 29: the noncentral chi-square CDF as a Poisson mixture of central ones.
- B. Laurent, P. Massart, "Adaptive estimation of a quadratic functional by model selection",
  Annals of Statistics 28(5), 2000, pp. 1302-1338, Lemma 1: the chi-square tail bound that
  starts `chi2_quantile_upper`'s bisection, https://doi.org/10.1214/aos/1015957395
- NIST Digital Library of Mathematical Functions, https://dlmf.nist.gov: 5.11.1 and 5.11(ii) (the
  Stirling series of lgamma and its error bound), 8.7.1 (the regularised incomplete gamma function
  as a series of Poisson terms, which `ncx2_cdf_lower` sums).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import ArrayLike

from lipvae_tf import _shared_numerics as numerics
from lipvae_tf import checks
from lipvae_tf._shared_numerics import (
    HALF_LOG_2PI as _HALF_LOG_2PI,
)
from lipvae_tf._shared_numerics import (
    MAGNITUDE_FLOOR as _FLOOR,
)
from lipvae_tf._shared_numerics import (
    MAGNITUDE_LIMIT as _LIMIT,
)
from lipvae_tf._shared_numerics import (
    MAX_TERMS as _MAX_TERMS,
)
from lipvae_tf._shared_numerics import (
    POISSON_TAIL as _TAIL,
)
from lipvae_tf._shared_numerics import (
    STIRLING as _STIRLING,
)
from lipvae_tf._shared_numerics import (
    STIRLING_FROM as _STIRLING_FROM,
)
from lipvae_tf._shared_numerics import (
    STIRLING_NEXT as _STIRLING_NEXT,
)
from lipvae_tf._shared_numerics import (
    UNIT_ROUNDOFF as _U,  # one float64 operation errs by <= _U relative
)

__all__ = [
    "BISECTION_STEPS", "paper_markov_radius", "markov_radius", "inglot_log_tail", "chi2_radius",
    "ncx2_cdf_lower", "ncx2_radius", "mean_reconstruction_radius", "chi2_quantile_upper",
    "capped_markov_radius", "capped_chi2_radius", "best_radius", "METHODS", "CAPPED_METHODS",
    "CAP_ONLY_METHODS", "radius", "check_method", "checked", "check_std_statistics",
    "S_MAX_SLACK",
]

BISECTION_STEPS = 200  # halvings; stops earlier once the bracket is 1e-12 relative

# The arguments and the result that the certificates share, written once and put into each
# docstring where it says <certificate arguments> / <certified radius> (`_shared_docs`).
_SHARED_DOCS = {
    "<certificate arguments>": (
        "m_mu: M_mu, the Lipschitz constant of the encoder mean: array_like, > 0.\n"
        "m_sigma: M_sigma, the Lipschitz constant of the encoder std: array_like, >= 0.\n"
        "m_g: M_g, the Lipschitz constant of the reconstruction g (decoder and output map,\n"
        "    docs/theory.md section 7): array_like, > 0.\n"
        "s: ||sigma(x)||_2, the l2 norm of the encoder std at the input: array_like, >= 0.\n"
        "r: the reconstruction tolerance, an l2 distance in pixel space: array_like, > 0.\n"
        "p: the probability level: array_like, in [1/2, 1)."),
    "<certified radius>": (
        "float64 array of the arguments' broadcast shape: the certified radius R, an l2 norm in\n"
        "pixel space (every ||delta||_2 < R keeps P(||f(x + delta) - f(x)||_2 <= r) >= p); 0\n"
        "where the certificate certifies nothing."),
}


_shared_docs = numerics.docstring_placeholders(_SHARED_DOCS)


_POSITIVE = ("m_mu", "m_g", "r", "gamma", "std_cap")
_NON_NEGATIVE = ("m_sigma", "s", "s_max")
_DIVISORS = ("m_mu", "m_g", "gamma")


def checked(**values) -> list[np.ndarray]:
    """The named arguments as broadcast float64 arrays; ValueError naming the first bad one.

    Besides finiteness, signs and p in [1/2, 1): the constants, s, r and r / m_g (when both are
    given) at most MAGNITUDE_LIMIT = 1e75, and the divisors M_mu, M_g and gamma and r / m_g at
    least MAGNITUDE_FLOOR = 1e-60, so that the certificates' products stay finite and their
    squares normal (_shared_numerics; docs/theory.md section 5, "Magnitudes").

    Args:
        **values: the arguments by name, each a real number or array_like of them. The name
            sets the rule: m_mu, m_g, r, gamma and std_cap must be > 0; m_sigma, s and s_max
            >= 0; p in [1/2, 1). Every argument but p must be finite and <= 1e75, the divisors
            m_mu, m_g and gamma >= 1e-60, and r / m_g in [1e-60, 1e75] when both are given.
            Other names are checked for finiteness and magnitude only.

    Returns:
        A list of float64 arrays, one per argument in the order given, broadcast to one shape.

    Raises:
        TypeError: if a value is not real (a string, a bool, an object; `checks.real_array`).
        ValueError: naming the first argument that breaks its rule, or if the arguments do not
            broadcast to one shape.
    """
    arrays = {}
    for name, value in values.items():
        arrays[name] = checks.real_array(name, value)
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value}")
    for name, value in arrays.items():
        if name in _POSITIVE and np.any(value <= 0):
            raise ValueError(f"{name} must be > 0, got {value}")
        if name in _NON_NEGATIVE and np.any(value < 0):
            raise ValueError(f"{name} must be >= 0, got {value}")
        if name == "p" and np.any((value < 0.5) | (value >= 1)):
            raise ValueError(f"p must be in [1/2, 1), got {value}")
        if name != "p" and np.any(value > _LIMIT):
            raise ValueError(f"{name} must be <= {_LIMIT:g} (the certificates' float64 "
                             f"products must stay finite), got {np.max(value)!r}")
        if name in _DIVISORS and np.any(value < _FLOOR):
            raise ValueError(f"{name} must be >= {_FLOOR:g} (the certificates divide by "
                             f"it), got {np.min(value)!r}")
    if "r" in arrays and "m_g" in arrays:
        # compared as r against LIMIT M_g and FLOOR M_g, products the graph computes the same
        # way (TF rewrote its r / M_g into r (1 / M_g), an ulp off, and refused r / M_g = 1e-60)
        reach = arrays["r"] / arrays["m_g"]
        if np.any(arrays["r"] > _LIMIT * arrays["m_g"]):
            raise ValueError(f"r / M_g must be <= {_LIMIT:g} (the certificates square it), got "
                             f"{np.max(reach)!r}")
        if np.any(arrays["r"] < _FLOOR * arrays["m_g"]):
            raise ValueError(f"r / M_g must be >= {_FLOOR:g} (the certificates square it, and "
                             f"below that float64 loses the precision their rounding margins "
                             f"assume), got {np.min(reach)!r}")
    try:
        return np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"{name} {np.shape(value)}" for name, value in arrays.items())
        raise ValueError(f"the arguments must broadcast to one shape (one value, or one per "
                         f"input), got {shapes}") from None


def _validated(m_mu, m_sigma, m_g, s, r, p):
    return checked(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g, s=s, r=r, p=p)


def _budget(m_g, r, p):
    """(1 - p) r^2 / M_g^2: the bound on E||z' - z||^2 that Markov turns into probability p."""
    return (1 - p) * r**2 / m_g**2


@_shared_docs
def paper_markov_radius(m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike,
                        r: ArrayLike, p: ArrayLike = 0.5) -> np.ndarray:
    """The published closed form R1 (Barrett et al. 2022), r^2/2 replaced by (1 - p) r^2.

    R1 = (sqrt(A (1 - p) r^2 / M_g^2 - 4 M_mu^2 s^2) - 2 M_sigma s) / A, A = M_mu^2 + M_sigma^2:
    the positive root of M_mu^2 d^2 + (M_sigma d + 2 s)^2 = (1 - p) r^2 / M_g^2, the paper's
    bound of E||z' - z||^2 turned into probability p by Markov's inequality (Barrett et al. 2022,
    section 3; docs/theory.md section 1, which shows it is never above `markov_radius`). The
    result is rounded down.

    Args:
        <certificate arguments>

    Returns:
        <certified radius>

    Raises:
        TypeError, ValueError: for arguments that `checked` refuses, naming the argument.
    """
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    a = m_mu**2 + m_sigma**2
    budget = _budget(m_g, r, p)
    # rationalised, R1 = (B - 4 s^2) / (sqrt(A B - 4 M_mu^2 s^2) + 2 M_sigma s): the first
    # version subtracted 2 M_sigma s from the square root, which cancels near R1 = 0, where the
    # relative 64 ulps did not cover it (6.77e-16 against an exact 6.74e-16: a review,
    # 2026-12-03). The numerator is rounded down, the square root's argument up (8 roundoffs
    # per side cover their few operations), so the quotient is rounded down.
    slack = budget * (1 - 8 * _U) - 4 * s**2 * (1 + 8 * _U)
    inside = a * budget * (1 + 8 * _U) - 4 * m_mu**2 * s**2 * (1 - 8 * _U)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only where slack <= 0, masked
        radius = np.maximum(slack, 0) / (np.sqrt(np.maximum(inside, 0)) + 2 * m_sigma * s) * (
            1 - 64 * _U)
    return np.where(slack > 0, radius, 0.0)


@_shared_docs
def markov_radius(m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike, r: ArrayLike,
                  p: ArrayLike = 0.5) -> np.ndarray:
    """Largest d with M_mu^2 d^2 + (s + M_sigma d)^2 + s^2 <= (1 - p) r^2 / M_g^2 (closed form).

    The exact second moment of z' - z under independent noise; never below the paper's R1
    (docs/theory.md section 1). With a fixed std sigma = gamma * 1, pass m_sigma = 0 and
    s = gamma sqrt(m): the moment is then exact (docs/theory.md section 5; `radius` does this).
    The positive root is computed in rationalised form and rounded down.

    Args:
        <certificate arguments>

    Returns:
        <certified radius>

    Raises:
        TypeError, ValueError: for arguments that `checked` refuses, naming the argument.
    """
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    a = m_mu**2 + m_sigma**2
    # the d = 0 term must leave room; rounded down, so cancellation cannot certify a point
    slack = _budget(m_g, r, p) * (1 - 8 * _U) - 2 * s**2 * (1 + 8 * _U)
    discriminant = (m_sigma * s) ** 2 + a * np.maximum(slack, 0)
    # the positive root, rationalised (no cancellation), rounded down by a few dozen ulps
    with np.errstate(invalid="ignore"):  # 0/0 only where slack <= 0, masked below
        radius = np.maximum(slack, 0) / (np.sqrt(discriminant) + m_sigma * s) * (1 - 64 * _U)
    return np.where(slack > 0, radius, 0.0)


def inglot_log_tail(u: ArrayLike, m: ArrayLike) -> np.ndarray:
    """log of Inglot's (2010) bound on P(chi2_m >= u), valid for u > m - 2 (+inf elsewhere).

    The bound is C_m u^(m/2) e^(-u/2) / (u - m + 2) with C_m = pi^(-1/2) e^(m/2) m^(-(m-1)/2)
    (Inglot 2010; docs/theory.md section 2). It holds for m >= 2 only: m = 1 raises.

    Args:
        u: array_like of real thresholds of the chi-square variable. +inf gives -inf (a tail of
            0); NaN and u <= m - 2 give +inf (no bound).
        m: the degrees of freedom (the latent dimension), an int >= 2.

    Returns:
        float64 array of u's shape: the natural log of the bound.

    Raises:
        TypeError / ValueError: naming m unless it is an int >= 2 (for m = 1 the bound tends to
            0 as u -> 0 while the true tail tends to 1).
    """
    m = checks.positive_int("m", m, minimum=2, maximum=numerics.MAX_DEGREES)
    u = np.asarray(u, np.float64)
    log_c = -0.5 * math.log(math.pi) + 0.5 * (m - (m - 1) * math.log(m))
    valid = u > m - 2
    safe_u = np.where(valid & np.isfinite(u), u, m)  # placeholder, masked below
    value = log_c + 0.5 * m * np.log(safe_u) - 0.5 * safe_u - np.log(safe_u - m + 2)
    return np.where(valid, np.where(np.isinf(u), -np.inf, value), np.inf)  # tail(inf) = 0


def _chi2_u(d, m_mu, m_sigma, m_g, s, r, gamma):
    """The chi-square quantile u(d) that ||noise|| must exceed for the reconstruction to move
    > r."""
    # the reach rounded down: near the top (little noise) r / M_g and M_mu d cancel, and
    # their rounding to nearest, not Inglot's slack, decided a radius above the exact root
    reach = np.maximum(r / m_g * (1 - 4 * _U) - m_mu * d * (1 + 4 * _U), 0.0)
    if gamma is not None:
        return reach**2 / (2 * gamma**2)
    # no noise: u = inf (0/0 only at the top); a spread overflowing at a huge trial d: u = 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return reach**2 / (m_sigma * d + 2 * s) ** 2


@_shared_docs
def chi2_radius(m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike, r: ArrayLike,
                p: ArrayLike = 0.5, *, latent_dim: int,
                gamma: ArrayLike | None = None) -> np.ndarray:
    """Inglot chi-square certificate R2, solved by bisection (not on a grid).

    Learned std: u(d) = (r/M_g - M_mu d)^2 / (M_sigma d + 2 s)^2. Fixed std sigma = gamma * 1
    (pass gamma; m_sigma and s are then ignored): u(d) = (r/M_g - M_mu d)^2 / (2 gamma^2).
    A d is certified when u(d) > m - 2 and the tail bound at u(d) is <= 1 - p. The bound at d
    covers every d' <= d, so the bisection's lower end is always a sound radius; for m >= 2 the
    tail bound decreases in u, so the certified set is an interval and bisection finds its end
    (to 1e-12 relative). Barrett et al. 2022, section 3 (R2), with Inglot's (2010) tail bound
    (`inglot_log_tail`); derivation and the bisection's soundness: docs/theory.md section 2.

    Args:
        <certificate arguments>
        latent_dim: m, the latent dimension, an int >= 2 (Inglot's bound fails for m = 1).
        gamma: None for a learned std, or the fixed posterior std gamma: array_like, > 0,
            broadcast with the other arguments (`checked`'s rules for a divisor).

    Returns:
        <certified radius>

    Raises:
        TypeError: if latent_dim is not an int, or an argument is not real (`checked`).
        ValueError: if latent_dim < 2, or for arguments (gamma included) that `checked`
            refuses.
    """
    # minimum 2: for m = 1 Inglot's bound tends to 0 as u -> 0 while the true tail tends to 1.
    latent_dim = checks.positive_int("latent_dim", latent_dim, minimum=2,
                                     maximum=numerics.MAX_DEGREES)
    if gamma is None:
        m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    else:
        m_mu, m_sigma, m_g, s, r, p, gamma = checked(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g, s=s,
                                                     r=r, p=p, gamma=gamma)
    log_level = np.log1p(-p)

    def certified(d):
        u = _chi2_u(d, m_mu, m_sigma, m_g, s, r, gamma)
        return (u > latent_dim - 2) & (inglot_log_tail(u, latent_dim) <= log_level)

    # lo stays 0 where nothing is certified; u(hi) = 0 at hi: never certified
    return _bisect(certified, np.zeros(m_mu.shape), r / (m_g * m_mu))[0]


def _bisect(moves_lo, lo, hi, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise bisection of [lo, hi]: lo moves to the midpoints where `moves_lo` holds, hi to
    the others, until every bracket is within rtol relative (at most BISECTION_STEPS halvings).
    For the end of an interval [0, R) of certified radii, moves_lo = certified: lo is then always
    a verified radius."""
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        good = moves_lo(mid)
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
        if np.all(hi - lo <= rtol * hi):
            break
    return lo, hi


# ---- exact noncentral chi-square certificate (fixed std) ----------------------------------------

_CHUNK = 1 << 17  # array elements per vectorised block (cache-sized)


def _log_poisson(n, mu):
    """log(mu^n e^-mu / Gamma(n + 1)) for real n >= 0, mu >= 0, and a bound on its absolute error.

    Written as n log(mu / z) + (z - mu) - ... with z = n + 1 (shifted to >= 8) so that no large
    terms cancel near the mode. The error bound allows 16 unit roundoffs per unit of magnitude of
    the pieces (numpy's log/exp are accurate to a few ulps) plus the Stirling truncation error.
    """
    n, mu = np.broadcast_arrays(n, mu)
    z = n + 1.0
    shift = np.ceil(np.maximum(_STIRLING_FROM - z, 0.0))
    big = z + shift
    log_product = np.zeros(big.shape)
    small = shift > 0
    if np.any(small):
        z_small, shift_small = z[small], shift[small]
        product = np.ones(z_small.shape)
        for k in range(_STIRLING_FROM):
            product *= np.where(k < shift_small, z_small + k, 1.0)
        log_product[small] = np.log(product)
    inverse = 1.0 / big
    inverse_squared = inverse * inverse
    series = np.full(big.shape, _STIRLING[-1])
    for coefficient in reversed(_STIRLING[:-1]):
        series = series * inverse_squared + coefficient
    series *= inverse
    log_big = np.log(big)
    with np.errstate(divide="ignore", invalid="ignore"):
        head = np.where(n == 0, 0.0, n * np.log(mu / big))  # mu / big may underflow to 0
    value = head + (big - mu) - (shift + 0.5) * log_big - _HALF_LOG_2PI - series + log_product
    magnitude = n + np.abs(head) + np.abs(big - mu) + (shift + 1) * log_big + log_product
    error = 16 * _U * (magnitude + np.abs(value) + 4) + _STIRLING_NEXT * inverse**15
    at_zero = mu == 0  # Poisson(0) is a point mass at n = 0
    value = np.where(at_zero, np.where(n == 0, 0.0, -np.inf), value)
    return value, np.where(at_zero, 0.0, error)


def _window(mu):
    """Integer range [lo, hi] outside which Poisson(mu) has mass <= e^-_TAIL per side
    (Bernstein)."""
    lo = np.maximum(np.ceil(mu - np.sqrt(2 * _TAIL * mu)), 0.0)
    hi = np.floor(mu + _TAIL / 3 + np.sqrt(_TAIL**2 / 9 + 2 * _TAIL * mu))
    return lo, hi


def _ncx2_cdf_block(half_m, y, mu, i_lo, i_hi, j_lo, j_hi):
    """sum_{i_lo <= i <= i_hi} pi_y(m/2 + i) W(i), W(i) = sum_{j_lo <= j <= min(i, j_hi)} w_j, where
    pi_y(a) = e^-y y^a / Gamma(a + 1) and w_j = Poisson(j; mu): each term rounded down."""
    count_i = (i_hi - i_lo + 1).astype(np.int64)
    count_j = (j_hi - j_lo + 1).astype(np.int64)
    j = j_lo[:, None] + np.arange(max(count_j.max(), 1))
    log_w, error_w = _log_poisson(j, mu[:, None])
    weights = np.where(j <= j_hi[:, None], np.exp(log_w - error_w), 0.0)
    cumulative = np.cumsum(weights, axis=1)
    i = i_lo[:, None] + np.arange(max(count_i.max(), 1))
    log_pi, error_pi = _log_poisson(half_m[:, None] + i, y[:, None])
    masses = np.where(i <= i_hi[:, None], np.exp(log_pi - error_pi), 0.0)
    column = np.clip(np.minimum(i, j_hi[:, None]) - j_lo[:, None], 0, cumulative.shape[1] - 1)
    total = np.sum(masses * np.take_along_axis(cumulative, column.astype(np.int64), axis=1), axis=1)
    # exp (<= 4 ulps each), the cumulative sum, the products and the final sum of positive terms
    total = total * (1 - 8 * _U * (count_i + count_j + 16))
    return np.where((count_i > 0) & (count_j > 0), total, 0.0)


def ncx2_cdf_lower(x: ArrayLike, m: ArrayLike, lam: ArrayLike) -> np.ndarray:
    """A guaranteed lower bound on the noncentral chi-square CDF P(chi2'_m(lam) <= x).

    Poisson mixture F = sum_j Poisson(j; lam/2) P(m/2 + j, x/2) (Johnson, Kotz & Balakrishnan
    1995, chapter 29), rearranged with DLMF 8.7.1 into one sum of positive terms (docs/theory.md
    section 3, "A guaranteed lower bound on the CDF"). Leaving terms out and rounding every term
    down can only lower it, so it never exceeds the true CDF; it is within ~2e-11 of it for
    lam <= 1e4. Arrays broadcast; x and lam may be +inf. Beyond _MAX_TERMS terms (x/2 or lam/2
    above ~2.7e7) it uses the (sound, looser) Cantelli bound (docs/theory.md section 3).

    Args:
        x: array_like of real CDF arguments, >= 0; +inf gives 1 (for a finite lam).
        m: the degrees of freedom: an int >= 1, or an integer array of them.
        lam: array_like of real noncentralities, >= 0; +inf gives 0.

    Returns:
        float64 array of the broadcast shape of x, m and lam, in [0, 1].

    Raises:
        TypeError: if a scalar m is not an int (a float or a bool), or x or lam does not hold
            real numbers (a string is not parsed).
        ValueError: if x or lam holds NaN or negative values, if m < 1 or m > MAX_DEGREES
            (2^31 - 1), if an array m is not of an integer dtype, or if the shapes do not
            broadcast.
    """
    x, lam = checks.real_array("x", x), checks.real_array("lam", lam)  # no strings
    for name, value in (("x", x), ("lam", lam)):
        if np.any(np.isnan(value)) or np.any(value < 0):
            raise ValueError(f"{name} must be >= 0 (inf allowed), got {value}")
    m = np.asarray(m)
    if np.ndim(m) == 0:
        m = np.asarray(checks.positive_int("m", m.item(), maximum=numerics.MAX_DEGREES))
    elif m.dtype.kind not in "iu" or np.any(m < 1) or np.any(m > numerics.MAX_DEGREES):
        raise ValueError(f"m must be integers in [1, {numerics.MAX_DEGREES}], got {m}")
    x, m, lam = np.broadcast_arrays(x, m.astype(np.float64), lam)
    shape = x.shape
    x, m, lam = x.ravel(), m.ravel(), lam.ravel()
    result = np.zeros(x.shape)
    finite = np.isfinite(x) & np.isfinite(lam)
    result[np.isinf(x) & np.isfinite(lam)] = 1.0  # (inf lam: 0, a lower bound whatever x is)

    y, mu, half_m = x / 2, lam / 2, m / 2  # exact: scaling by 2
    y_lo, y_hi = _window(np.where(finite, y, 0.0))
    j_lo, j_hi = _window(np.where(finite, mu, 0.0))
    i_lo = np.maximum(np.maximum(np.ceil(y_lo - half_m), 0.0), j_lo)  # W(i) = 0 below j_lo
    i_hi = np.floor(y_hi - half_m)
    j_hi = np.minimum(j_hi, i_hi)  # W is only needed up to the last i
    length = np.maximum(i_hi - i_lo, j_hi - j_lo) + 1
    exact = finite & (length <= _MAX_TERMS)

    rough = np.flatnonzero(finite & ~exact)
    if rough.size:  # Cantelli: P(X - E X >= t) <= V / (V + t^2), E X = m + lam, V = 2 (m + 2 lam)
        mean, variance = m[rough] + lam[rough], 2 * (m[rough] + 2 * lam[rough])
        t = np.maximum(x[rough] - mean - 8 * _U * (x[rough] + mean), 0.0)
        result[rough] = t**2 / (variance + t**2) * (1 - 64 * _U)

    order = np.flatnonzero(exact)
    order = order[np.argsort(length[order], kind="stable")]
    sorted_length = np.maximum(length[order], 1.0)
    start = 0
    while start < order.size:  # blocks of similar window lengths (little padding), <= _CHUNK
        rows = np.arange(1, order.size - start + 1) * sorted_length[start:]  # increasing
        stop = start + max(int(np.searchsorted(rows, _CHUNK, side="right")), 1)
        similar = np.searchsorted(sorted_length, 1.25 * sorted_length[start] + 32, side="right")
        stop = min(stop, max(int(similar), start + 1))
        block = order[start:stop]
        result[block] = _ncx2_cdf_block(half_m[block], y[block], mu[block], i_lo[block],
                                        i_hi[block], j_lo[block], j_hi[block])
        start = stop
    return np.clip(result, 0.0, 1.0).reshape(shape)


def ncx2_radius(m_mu: ArrayLike, m_g: ArrayLike, r: ArrayLike, p: ArrayLike = 0.5, *,
                latent_dim: int, gamma: ArrayLike) -> np.ndarray:
    """Exact worst-case certificate for a fixed encoder std sigma = gamma * 1, by bisection.

    z' - z = mu' - mu + gamma (eps' - eps), so ||z' - z||^2 / (2 gamma^2) is noncentral chi2_m with
    noncentrality <= lam(d) = M_mu^2 d^2 / (2 gamma^2), and the CDF falls as lam grows: d is
    certified when ncx2_cdf_lower(r^2 / (2 gamma^2 M_g^2), m, lam(d)) >= p. The largest such d is
    found to 1e-12 relative; the lower end of the bracket is always a verified point. Needs no
    m_sigma or s (the std does not move), hence the short signature; radius("ncx2", ...) takes the
    uniform one and refuses gamma=None. Beyond Barrett et al. 2022: docs/theory.md section 3.

    Args:
        m_mu: M_mu, the Lipschitz constant of the encoder mean: array_like, > 0.
        m_g: M_g, the Lipschitz constant of the reconstruction g: array_like, > 0.
        r: the reconstruction tolerance, an l2 distance in pixel space: array_like, > 0.
        p: the probability level: array_like, in [1/2, 1).
        latent_dim: m, the latent dimension, an int >= 1.
        gamma: the fixed posterior std gamma: array_like, > 0.

    Returns:
        float64 array of the arguments' broadcast shape: the certified radius R, an l2 norm in
        pixel space (every ||delta||_2 < R keeps P(||f(x + delta) - f(x)||_2 <= r) >= p); 0
        where even d = 0 is not certified.

    Raises:
        TypeError: if latent_dim is not an int, or an argument is not real (`checked`).
        ValueError: if latent_dim < 1, or for arguments that `checked` refuses.
    """
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    m_mu, m_g, r, p, gamma = checked(m_mu=m_mu, m_g=m_g, r=r, p=p, gamma=gamma)
    shape = m_mu.shape
    # x rounded down and lam rounded up (a few operations, <= 8 roundoffs): both lower the CDF
    with np.errstate(over="ignore", divide="ignore"):
        x = (r**2 / (2 * gamma**2 * m_g**2) * (1 - 8 * _U)).ravel()
        scale = (m_mu**2 / (2 * gamma**2) * (1 + 8 * _U)).ravel()
    p = p.ravel()
    hi = (r / (m_g * m_mu)).ravel()  # the mean shift alone reaches r / M_g: P < 1/2 there
    # (x, scale, p, hi) determine an input's radius, and a fixed std gives every input of a
    # model the same ones (unless r or p vary): each distinct row is solved once (10k images of
    # the default model took 9 s of bisection, one row takes a millisecond)
    rows, inverse = np.unique(np.stack([x, scale, p, hi], axis=1), axis=0, return_inverse=True)
    radii = _ncx2_bisection(*rows.T, latent_dim)
    return radii[inverse.ravel()].reshape(shape)


def _ncx2_bisection(x, scale, p, hi, latent_dim: int) -> np.ndarray:
    """The largest d in [0, hi] with ncx2_cdf_lower(x, m, scale d^2) >= p, per element, by
    bisection to 1e-12 relative from below (0 where even d = 0 fails)."""
    lo = np.zeros(x.shape)  # stays 0 where nothing is certified
    hi = hi.copy()
    active = np.flatnonzero(np.isfinite(x))  # r / (gamma M_g) > ~1e154 overflows: reported as 0
    # else even d = 0 fails
    active = active[ncx2_cdf_lower(x[active], latent_dim, 0.0) >= p[active]]
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo[active] + hi[active])
        lam = scale[active] * mid**2 * (1 + 4 * _U)  # rounded up
        good = ncx2_cdf_lower(x[active], latent_dim, lam) >= p[active]
        lo[active] = np.where(good, mid, lo[active])
        hi[active] = np.where(good, hi[active], mid)
        active = active[hi[active] - lo[active] > 1e-12 * hi[active]]
        if active.size == 0:
            break
    return lo


def mean_reconstruction_radius(m_mu: ArrayLike, m_g: ArrayLike, r: ArrayLike) -> np.ndarray:
    """r / (M_g M_mu): every ||delta|| <= R keeps ||g(mu(x + delta)) - g(mu(x))|| <= r.

    A deterministic certificate for the mean reconstruction g(mu(x)), not for the sampled f(x); so
    it is not one of METHODS and not part of best_radius (every stochastic radius is below it).
    docs/theory.md section 4. Rounded down by 4 unit roundoffs.

    Args:
        m_mu: M_mu, the Lipschitz constant of the encoder mean: array_like, > 0.
        m_g: M_g, the Lipschitz constant of the reconstruction g: array_like, > 0.
        r: the tolerance, an l2 distance in pixel space: array_like, > 0.

    Returns:
        float64 array of the broadcast shape: R, an l2 norm in pixel space.

    Raises:
        TypeError, ValueError: for arguments that `checked` refuses, naming the argument.
    """
    m_mu, m_g, r = checked(m_mu=m_mu, m_g=m_g, r=r)
    return r / (m_g * m_mu) * (1 - 4 * _U)  # two roundings: never above the exact quotient


# ---- certificates that use the std cap for the perturbed input (docs/theory.md section 9) -------

def _quantile_bracket(latent_dim, p):
    """A proven upper bound of chi2_m's p-quantile, the smaller of two, each rounded up:
    Cantelli's P(chi2_m >= m + t) <= 2m / (2m + t^2) = 1 - p at t^2 = 2 m p / (1 - p), so
    m + sqrt(2 m p / (1 - p)); and Laurent & Massart's (2000, Lemma 1)
    P(chi2_m >= m + 2 sqrt(m t) + 2 t) <= e^-t = 1 - p at t = log(1 / (1 - p)), so
    m + 2 sqrt(m t) + 2 t (far smaller for p near 1: 86 against 4.5e5 at m = 10,
    p = 1 - 1e-10). 1 - p is exact in float64 for p in [1/2, 1) (Sterbenz), t is rounded up
    (a log accurate to a few ulps), and each sum of a few positive terms is raised by 16 unit
    roundoffs (docs/theory.md section 9.2)."""
    cantelli = (latent_dim + math.sqrt(2 * latent_dim * p / (1 - p))) * (1 + 16 * _U)
    t = -math.log(1 - p) * (1 + 8 * _U)  # > 0: 1 - p <= 1/2
    laurent_massart = (latent_dim + 2 * math.sqrt(latent_dim * t) + 2 * t) * (1 + 16 * _U)
    return min(cantelli, laurent_massart)


@functools.lru_cache(maxsize=1024)
def _chi2_quantile_upper_scalar(latent_dim: int, p: float) -> float:
    """Smallest float64 q (to 1e-15 relative) with ncx2_cdf_lower(q, m, 0) >= p, by bisection."""
    # hi starts at a proven bound (`_quantile_bracket`) and moves only to midpoints where
    # ncx2_cdf_lower(mid) >= p: it is always sound, whether or not the computed lower bound is
    # monotone in q. Where that lower bound falls short of p (p within ~1e-9 of 1 and q large)
    # hi stays at the proven end, which Laurent & Massart keep within a few % of the quantile.
    _, hi = _bisect(lambda q: ncx2_cdf_lower(q, latent_dim, 0.0) < p, np.zeros(()),
                    np.asarray(_quantile_bracket(latent_dim, p)), rtol=1e-15)
    return float(hi)


def chi2_quantile_upper(latent_dim: int, p: ArrayLike) -> np.ndarray:
    """A verified upper bound q of the p-quantile of chi2_m: P(chi2_m <= q) >= p.

    Found by bisection on `ncx2_cdf_lower(q, m, 0)` (a guaranteed lower bound of the chi-square
    CDF), from the smaller of Cantelli's and Laurent & Massart's (2000, Lemma 1) proven bounds,
    so P(chi2_m <= q) >= p: q is either a point where ncx2_cdf_lower(q, m, 0) >= p or that
    proven bound itself. q is within ~2e-11 relative of the exact quantile for p <= 0.999 (1e-8
    at p = 1 - 1e-6) and within a few % of it for p up to 1 - 1e-12 (docs/theory.md section
    9.2). p broadcasts; values are cached per (m, p).

    Args:
        latent_dim: m, the degrees of freedom, an int >= 1.
        p: array_like of probability levels in [1/2, 1).

    Returns:
        float64 array of p's shape: q for each p.

    Raises:
        TypeError: if latent_dim is not an int, or p is not real.
        ValueError: if latent_dim < 1, or p is not finite or not in [1/2, 1).
    """
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    (p,) = checked(p=p)
    unique, index = np.unique(p, return_inverse=True)
    values = np.array([_chi2_quantile_upper_scalar(latent_dim, float(v)) for v in unique])
    return values[index].reshape(p.shape)


# s_max below s / sqrt(m) by more than this relative amount is refused as a mistake; within it
# (the rounding of bounds computed from the same float32 stds) s / sqrt(m) is used instead
S_MAX_SLACK = 1e-6


def check_std_statistics(s: ArrayLike, *, std_cap: ArrayLike | None = None,
                         s_max: ArrayLike | None = None, latent_dim: int | None = None) -> None:
    """The checks the certificates of a learned std make of its statistics (`radius` and
    graph_bounds' certificates alike): with a cap, s <= std_cap (the cap holds for every input);
    with an s_max, s / sqrt(m) <= s_max <= s (no coordinate of sigma exceeds its norm, the
    largest is at least its root mean square; the lower end with latent_dim, up to
    `S_MAX_SLACK`, the upper up to 4 ulps). Nothing to check without std_cap or s_max.

    Args:
        s: ||sigma(x)||_2 per input, array_like, >= 0 (checked by `checked` beforehand).
        std_cap: None, or S, a bound of ||sigma(x')||_2 for every input x', > 0.
        s_max: None (s), or max_i sigma_i(x) per input, array_like.
        latent_dim: None, or m, for the lower end of s_max.

    Raises:
        ValueError: naming std_cap or s_max for a value that breaks its rule, or one that
            `checked` refuses; TypeError for one that is not real.
    """
    if std_cap is not None:
        _validated_cap(std_cap, s, s_max, latent_dim)
    elif s_max is not None:
        _validated_s_max(s, s_max, latent_dim)


def _validated_cap(std_cap, s, s_max, latent_dim: int | None = None):
    """(S, s_max) broadcast with s, checked: s <= S and s / sqrt(m) <= s_max <= s
    (`_validated_s_max`; only s_max <= s without latent_dim)."""
    if std_cap is None:
        raise ValueError("std_cap is required: the capped certificates use ||sigma(x')|| <= "
                         "std_cap for every input x' (a model with a StdCap layer)")
    s_max = s if s_max is None else s_max
    std_cap, s_max = checked(std_cap=std_cap, s_max=s_max)
    if np.any(std_cap <= 0):
        raise ValueError(f"std_cap must be > 0, got {std_cap}")
    if np.any(s > std_cap):
        raise ValueError(
            f"s must be <= std_cap (the cap holds for every input), got s up to {np.max(s)!r} > "
            f"std_cap {np.min(std_cap)!r}: pass the cap as the graph applies it "
            f"(StdCap.output_norm_bound)")
    return std_cap, _validated_s_max(s, s_max, latent_dim)


def _validated_s_max(s, s_max, latent_dim: int | None = None):
    """s_max (None: s) checked against s: s / sqrt(m) <= s_max <= s
    (||sigma|| / sqrt(m) <= max_i sigma_i <= ||sigma||; the lower end only with latent_dim). An
    s_max below s / sqrt(m) by at most `S_MAX_SLACK` relative is raised to s / sqrt(m): the
    larger variance bound is the sound side, and a too small s_max would have inflated the
    certificate."""
    (s_max,) = checked(s_max=s if s_max is None else s_max)
    if np.any(s_max > s * (1 + 4 * _U)):
        raise ValueError("s_max (the largest coordinate of sigma(x)) must be <= s = ||sigma(x)||")
    if latent_dim is not None:
        floor = s / math.sqrt(latent_dim)
        if np.any(s_max < floor * (1 - S_MAX_SLACK)):
            raise ValueError(
                f"s_max (the largest coordinate of sigma(x)) must be >= s / sqrt(latent_dim) = "
                f"||sigma(x)|| / sqrt({latent_dim}) (no coordinate of a vector is below its "
                f"root mean square), got s_max down to {np.min(s_max)!r} for s up to "
                f"{np.max(s)!r}")
        s_max = np.maximum(s_max, floor)
    return s_max


def _triangle_radius(m_mu, m_sigma, s, reach, factor, base, std_cap,
                     cap_only: bool = False) -> np.ndarray:
    """Largest d with M_mu d + sqrt(factor (min(s + M_sigma d, S)^2 + base)) <= reach.

    The left side is the smaller of two increasing functions of d, so the answer is the larger of
    the two roots: the cap branch in closed form, the M_sigma branch by bisection (to 1e-12
    relative; its lower end is always a verified point). Every evaluation is rounded up.
    cap_only: the cap branch alone (sigma(x') bounded by S only). std_cap None (no cap, S
    infinite): the M_sigma branch alone.
    """
    if std_cap is None:
        capped = np.zeros(np.shape(reach))
    else:
        noise = np.sqrt(factor * (std_cap**2 + base)) * (1 + 8 * _U)
        capped = np.maximum(reach - noise, 0) / m_mu * (1 - 8 * _U)
    if cap_only:
        return capped

    def fits(d):
        with np.errstate(over="ignore"):  # an infinite spread at a huge trial d: not certified
            spread = np.sqrt(factor * ((s + m_sigma * d) ** 2 + base))
            return (m_mu * d + spread) * (1 + 16 * _U) <= reach

    start = np.zeros(np.shape(reach))
    # at reach / M_mu the mean shift alone uses up the reach: never certified
    lo = _bisect(fits, start, reach / m_mu)[0]
    return np.maximum(capped, np.where(fits(start), lo, 0.0))


@_shared_docs
def capped_markov_radius(m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike,
                         r: ArrayLike, p: ArrayLike = 0.5, *, std_cap: ArrayLike,
                         cap_only: bool = False) -> np.ndarray:
    """The larger of two Markov certificates that use the std cap S (docs/theory.md section 9.1).

    Whole second moment: M_mu^2 d^2 + min(s + M_sigma d, S)^2 + s^2 <= (1 - p) r^2 / M_g^2.
    Noise only, with the triangle inequality ||z' - z|| <= M_mu d + ||noise||:
    M_mu d + sqrt((min(s + M_sigma d, S)^2 + s^2) / (1 - p)) <= r / M_g. The first is better when
    the noise dominates, the second (far) better when the mean shift does. Never below
    `markov_radius`, which it includes. cap_only=True bounds sigma(x') by S alone (min(...)
    replaced by S; m_sigma unused, `markov_radius` left out): see `radius`.
    docs/theory.md section 9.1 (eq. (9.0) for min(s + M_sigma d, S)).

    Args:
        <certificate arguments>
        std_cap: S, a bound of ||sigma(x')||_2 for every input x' (the cap as the float32
            graph applies it, `StdCap.output_norm_bound`), > 0 and >= s. Required.
        cap_only: if True, sigma(x') is bounded by S alone, never by s + M_sigma d (m_sigma is
            then validated but unused): see `radius`.

    Returns:
        <certified radius>

    Raises:
        TypeError: for an argument that is not real (`checked`).
        ValueError: if std_cap is None, if s > std_cap, or for arguments that `checked` refuses.
    """
    cap_only = checks.flag("cap_only", cap_only)
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    std_cap, _ = _validated_cap(std_cap, s, None)
    slack = _budget(m_g, r, p) * (1 - 8 * _U) - (std_cap**2 + s**2) * (1 + 8 * _U)
    whole = np.sqrt(np.maximum(slack, 0)) / m_mu * (1 - 64 * _U)
    whole = np.where(slack > 0, whole, 0.0)
    triangle = _markov_triangle(m_mu, m_sigma, m_g, s, r, p, std_cap, cap_only)
    if cap_only:
        return np.maximum(whole, triangle)
    return np.maximum.reduce([whole, triangle, markov_radius(m_mu, m_sigma, m_g, s, r, p)])


@_shared_docs
def capped_chi2_radius(m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike,
                       r: ArrayLike, p: ArrayLike = 0.5, *, latent_dim: int, std_cap: ArrayLike,
                       s_max: ArrayLike | None = None, cap_only: bool = False) -> np.ndarray:
    """Chi-square certificate with the std cap, solved to 1e-12 relative (not on a grid).

    The noise sigma(x') eps' - sigma(x) eps has independent N(0, v_i) coordinates with
    v_i <= V(d) = min(s + M_sigma d, S)^2 + s_max^2, s_max = max_i sigma_i(x) (s when not given),
    so ||noise||^2 <= V(d) chi2_m pointwise and, by the triangle inequality,
    P(||z' - z|| <= t) >= P(chi2_m <= (t - M_mu d)^2 / V(d)), t = r / M_g. With q a verified upper
    bound of chi2_m's p-quantile (`chi2_quantile_upper`), d is certified when
    M_mu d + sqrt(q V(d)) <= t (docs/theory.md section 9.2). cap_only=True: V = S^2 + s_max^2
    for every d (m_sigma unused; see `radius`).

    Args:
        <certificate arguments>
        latent_dim: m, the latent dimension, an int >= 1.
        std_cap: S, a bound of ||sigma(x')||_2 for every input x' (the cap as the float32
            graph applies it, `StdCap.output_norm_bound`), > 0 and >= s. Required.
        cap_only: if True, sigma(x') is bounded by S alone, never by s + M_sigma d (m_sigma is
            then validated but unused): see `radius`.
        s_max: max_i sigma_i(x), between s / sqrt(latent_dim) and s, array_like (None: s,
            always an upper bound).

    Returns:
        <certified radius>

    Raises:
        TypeError: if latent_dim is not an int, or an argument is not real (`checked`).
        ValueError: if latent_dim < 1, std_cap is None, s > std_cap, s_max > s or s_max <
            s / sqrt(latent_dim), or for arguments that `checked` refuses.
    """
    cap_only = checks.flag("cap_only", cap_only)
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    std_cap, s_max = _validated_cap(std_cap, s, s_max, latent_dim)
    return _chi2_triangle(m_mu, m_sigma, m_g, s, r, p, latent_dim, s_max, std_cap, cap_only)


def _markov_triangle(m_mu, m_sigma, m_g, s, r, p, std_cap, cap_only=False):
    """The noise-only Markov form on validated arrays (section 9.1 (b)): largest d with
    M_mu d + sqrt((min(s + M_sigma d, S)^2 + s^2) / (1 - p)) <= r / M_g; std_cap None: no cap."""
    reach = r / m_g * (1 - 4 * _U)  # t, rounded down
    return _triangle_radius(m_mu, m_sigma, s, reach, 1 / (1 - p) * (1 + 4 * _U), s**2,
                            std_cap, cap_only)


def _chi2_triangle(m_mu, m_sigma, m_g, s, r, p, latent_dim, s_max, std_cap, cap_only=False):
    """The chi-square triangle form on validated arrays (section 9.2): largest d with
    M_mu d + sqrt(q (min(s + M_sigma d, S)^2 + s_max^2)) <= r / M_g, q the verified chi2_m
    p-quantile; std_cap None: no cap."""
    q = chi2_quantile_upper(latent_dim, p) * (1 + 4 * _U)
    reach = r / m_g * (1 - 4 * _U)  # t, rounded down
    return _triangle_radius(m_mu, m_sigma, s, reach, q, s_max**2, std_cap, cap_only)


def _triangle_markov_radius(m_mu, m_sigma, m_g, s, r, p):
    """Largest d with M_mu d + sqrt(((s + M_sigma d)^2 + s^2) / (1 - p)) <= r / M_g: form (b)
    of `capped_markov_radius` without a cap (docs/theory.md section 2, "Without a cap")."""
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    return _markov_triangle(m_mu, m_sigma, m_g, s, r, p, None)


def _triangle_chi2_radius(m_mu, m_sigma, m_g, s, r, p, *, latent_dim: int, s_max=None):
    """Largest d with M_mu d + sqrt(q ((s + M_sigma d)^2 + s_max^2)) <= r / M_g, q the verified
    chi2_m p-quantile: `capped_chi2_radius` without a cap (docs/theory.md section 2, "Without a
    cap"). s_max as there (None: s)."""
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    s_max = _validated_s_max(s, s_max, latent_dim)
    return _chi2_triangle(m_mu, m_sigma, m_g, s, r, p, latent_dim, s_max, None)


def _chi2_form(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma):
    return chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim, gamma=gamma)


# what best_radius takes the maximum of, as graph_bounds takes it (numerics.best_candidates)
_FORMS = numerics.CertificateForms(
    chi2=_chi2_form, paper_markov_radius=paper_markov_radius, markov_radius=markov_radius,
    capped_markov_radius=capped_markov_radius, capped_chi2_radius=capped_chi2_radius,
    triangle_markov_radius=_triangle_markov_radius, triangle_chi2_radius=_triangle_chi2_radius,
    ncx2_radius=ncx2_radius)


@_shared_docs
def best_radius(m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike, r: ArrayLike,
                p: ArrayLike = 0.5, *, latent_dim: int, gamma: ArrayLike | None = None,
                std_cap: ArrayLike | None = None, s_max: ArrayLike | None = None,
                cap_only: bool = False, legacy: bool = False) -> np.ndarray:
    """The largest of the sound certificates that apply.

    Learned std (gamma None): chi-square, paper and tighter Markov, and with a std cap S the
    capped Markov and capped chi-square forms, without one the same two forms with sigma(x')
    bounded through M_sigma alone (`_triangle_markov_radius`, `_triangle_chi2_radius`;
    docs/theory.md section 2, "Without a cap"), which legacy=True leaves out. Fixed std
    sigma = gamma * 1 (m_sigma and s ignored): chi-square, the exact noncentral chi-square, and
    the Markov forms with M_sigma = 0 and s = gamma sqrt(m). The noncentral one is the exact
    worst case, so it dominates the others except where its safety margins do (p within about
    1e-11 of 1, or x/2 above about 2.7e7, docs/theory.md section 3), and the max keeps the rest
    for those. cap_only=True (a learned std with a cap): the two capped forms with sigma(x')
    bounded by S alone. The chi-square form enters only for latent_dim >= 2. docs/theory.md
    sections 1-3, 5 and 9.

    Args:
        <certificate arguments>
        latent_dim: m, the latent dimension, an int (>= 1; >= 2 for the chi-square form).
        gamma: None for a learned std, or the fixed posterior std gamma, > 0.
        std_cap: None, or S for a learned std under a cap (see `capped_markov_radius`).
        s_max: max_i sigma_i(x) for the (capped or uncapped) chi-square triangle form, between
            s / sqrt(latent_dim) and s (None: s).
        cap_only: the capped forms with sigma(x') bounded by S alone; needs gamma None and
            std_cap.
        legacy: the candidates of lipvae_tf 0.1 only (`train.LEGACY_CERTIFICATE`): for a learned
            std without a cap, chi-square, paper and Markov (the triangle forms left out); no
            change otherwise. Needs std_cap None.

    Returns:
        <certified radius>

    Raises:
        TypeError, ValueError: as the certificates it takes raise them (`checked`, latent_dim,
            s_max outside [s / sqrt(m), s]); ValueError also for std_cap with gamma (a fixed std
            has no cap), for cap_only=True without std_cap and for legacy=True with std_cap;
            TypeError for a cap_only or legacy that is not a bool (`check_method`).
    """
    if check_method("best", gamma=gamma, std_cap=std_cap, cap_only=cap_only, legacy=legacy):
        return np.maximum(
            capped_markov_radius(m_mu, m_sigma, m_g, s, r, p, std_cap=std_cap, cap_only=True),
            capped_chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                               std_cap=std_cap, s_max=s_max, cap_only=True))
    if gamma is not None:
        gamma = _checked_gamma(gamma, latent_dim)
    candidates = numerics.best_candidates(
        _FORMS, np.zeros(np.shape(m_mu)), m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
        gamma=gamma, std_cap=std_cap, s_max=s_max, legacy=legacy)
    return np.maximum.reduce(np.broadcast_arrays(*candidates))


def _checked_gamma(gamma, latent_dim: int) -> np.ndarray:
    """gamma checked (`checked`), with its fixed std's norm gamma sqrt(m) at most the magnitude
    limit: the ValueError names gamma, not the s derived from it."""
    (gamma,) = checked(gamma=gamma)
    if gamma.size:
        numerics.check_fixed_std_norm(float(np.max(gamma)), latent_dim)
    return gamma


def _fixed_std(gamma, latent_dim):
    """`numerics.fixed_std` of a gamma checked here: (0, gamma sqrt(m)), s rounded up."""
    (gamma,) = checked(gamma=gamma)
    return numerics.fixed_std(gamma, latent_dim)


METHODS = ("paper", "markov", "chi2", "ncx2", "markov_cap", "chi2_cap", "best")
CAPPED_METHODS = ("markov_cap", "chi2_cap")  # need std_cap: ||sigma(x')|| <= S for every x'
CAP_ONLY_METHODS = (*CAPPED_METHODS, "best")  # those radius(..., cap_only=True) accepts


def check_method(method: str, *, gamma: ArrayLike | None = None, std_cap: ArrayLike | None = None,
                 cap_only: bool = False, legacy: bool = False) -> bool:
    """Whether `radius` accepts `method` for this std (fixed gamma, or learned with or without
    a cap std_cap), `cap_only` and `legacy`, checked without any certificate work; returns
    cap_only.

    Args:
        method: the certificate's name, one of METHODS.
        gamma: the fixed posterior std, or None for a learned std (only None-ness is used).
        std_cap: the std cap S, or None (only None-ness is used).
        cap_only: whether the perturbed input's std is bounded by the cap alone, a bool.
        legacy: whether `best` takes lipvae_tf 0.1's candidates only, a bool.

    Returns:
        cap_only, as a bool.

    Raises:
        ValueError: for an unknown method, "ncx2" with a learned std, a capped method without
            std_cap, std_cap with a fixed std, cap_only with an uncapped method or no cap, or
            legacy with std_cap (lipvae_tf 0.1 had no std cap).
        TypeError: for a cap_only or legacy that is not a bool.
    """
    checks.one_of("method", method, METHODS)
    cap_only = checks.flag("cap_only", cap_only)
    if checks.flag("legacy", legacy) and std_cap is not None:
        raise ValueError(f"legacy=True takes the certificates of lipvae_tf 0.1, which had no "
                         f"std cap: pass std_cap=None, got std_cap={std_cap!r}")
    if cap_only and (method not in CAP_ONLY_METHODS or std_cap is None):
        raise ValueError(
            f"cap_only=True bounds sigma(x') by the cap alone: it needs std_cap and one of "
            f"{CAP_ONLY_METHODS}, got method={method!r}, std_cap={std_cap!r}")
    if gamma is not None and std_cap is not None:
        raise ValueError("std_cap does not apply to a fixed encoder std (gamma): pass one")
    if method == "ncx2" and gamma is None:
        raise ValueError("method 'ncx2' needs gamma: it applies only to a fixed encoder std "
                         "sigma = gamma * 1 (a learned std has no exact noncentral chi-square law)")
    if method in CAPPED_METHODS and std_cap is None:
        raise ValueError(f"method {method!r} needs std_cap (a learned std capped by StdCap)")
    return cap_only


@_shared_docs
def radius(method: str, m_mu: ArrayLike, m_sigma: ArrayLike, m_g: ArrayLike, s: ArrayLike,
           r: ArrayLike, p: ArrayLike = 0.5, *, latent_dim: int, gamma: ArrayLike | None = None,
           std_cap: ArrayLike | None = None, s_max: ArrayLike | None = None,
           cap_only: bool = False, legacy: bool = False) -> np.ndarray:
    """The certificate `method` (one of METHODS) with one uniform signature.

    gamma None: a learned std with constants m_sigma and s = ||sigma(x)||; "ncx2" does not apply
    (it needs a fixed std) and raises. gamma given: the std is gamma * 1 for every input, so m_sigma
    and s are ignored (validated only) and every method uses M_sigma = 0, s = gamma sqrt(m); the
    Markov forms are sound there since E||z' - z||^2 = ||mu' - mu||^2 + 2 gamma^2 m exactly.
    std_cap: S with ||sigma(x')|| <= S for EVERY input x' (as the graph applies it); the capped
    methods need it and "best" uses them when it is given (without it, "best" uses their
    M_sigma branches unless legacy=True: lipvae_tf 0.1's candidates). s_max: max_i sigma_i(x)
    per input (defaults to s, always an upper bound of it), checked whenever given with a learned
    std. cap_only=True: the perturbed input's std is
    bounded by the cap alone, never by s + M_sigma d (m_sigma validated, unused), for a std whose
    computed values M_sigma does not bound: under float32 absolute round-off a std network can
    jump by more than M_sigma d (`LipschitzVAE.certified_radius(absolute_rounding=True)`,
    docs/theory.md section 15); only "markov_cap", "chi2_cap" and "best" (their maximum) apply,
    and they need std_cap. The result has the broadcast shape of all the arguments.
    docs/theory.md section 5 for the signature; each method's own function for its formula.

    Args:
        method: one of METHODS: "paper" (`paper_markov_radius`), "markov" (`markov_radius`),
            "chi2" (`chi2_radius`), "ncx2" (`ncx2_radius`), "markov_cap"
            (`capped_markov_radius`), "chi2_cap" (`capped_chi2_radius`), "best"
            (`best_radius`).
        <certificate arguments>
        latent_dim: m, the latent dimension, an int >= 1 ("chi2" needs >= 2).
        gamma: None for a learned std, or the fixed posterior std gamma, > 0.
        std_cap: None, or S, > 0 and >= s, for a learned std under a cap.
        s_max: None (s), or max_i sigma_i(x), between s / sqrt(latent_dim) and s.
        cap_only: a bool, see above.
        legacy: a bool: "best" takes lipvae_tf 0.1's candidates only (`best_radius`); needs
            std_cap None.

    Returns:
        float64 array of the broadcast shape of all the array arguments: the certified radius
        R, an l2 norm in pixel space (every ||delta||_2 < R keeps
        P(||f(x + delta) - f(x)||_2 <= r) >= p); 0 where nothing is certified.

    Raises:
        ValueError: for a method that does not apply (`check_method`), latent_dim < 1 (< 2 for
            "chi2"), s > std_cap (whenever std_cap is given), s_max outside [s / sqrt(m), s]
            (whenever s_max or std_cap is given with a learned std), or arguments that
            `checked` refuses.
        TypeError: if cap_only or legacy is not a bool, latent_dim is not an int, or an
            argument is not real.
    """
    cap_only = check_method(method, gamma=gamma, std_cap=std_cap, cap_only=cap_only,
                            legacy=legacy)
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    arguments = dict(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g, s=s, r=r, p=p)
    if gamma is not None:
        arguments["gamma"] = gamma
    if std_cap is not None:
        arguments["std_cap"] = std_cap
    if s_max is not None:
        arguments["s_max"] = s_max
    values = checked(**arguments)  # validates the ignored ones too
    if gamma is not None:
        _checked_gamma(gamma, latent_dim)
    shape = values[0].shape
    # as graph_bounds.radius, whatever the method (values[3]: s, broadcast)
    check_std_statistics(values[3], std_cap=std_cap, s_max=None if gamma is not None else s_max,
                         latent_dim=latent_dim)
    if gamma is not None and method in ("paper", "markov"):
        m_sigma, s = _fixed_std(gamma, latent_dim)
    if method == "paper":
        result = paper_markov_radius(m_mu, m_sigma, m_g, s, r, p)
    elif method == "markov":
        result = markov_radius(m_mu, m_sigma, m_g, s, r, p)
    elif method == "chi2":
        result = chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim, gamma=gamma)
    elif method == "ncx2":
        result = ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma)
    elif method == "markov_cap":
        result = capped_markov_radius(m_mu, m_sigma, m_g, s, r, p, std_cap=std_cap,
                                      cap_only=cap_only)
    elif method == "chi2_cap":
        result = capped_chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                    std_cap=std_cap, s_max=s_max, cap_only=cap_only)
    else:
        result = best_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim, gamma=gamma,
                             std_cap=std_cap, s_max=s_max, cap_only=cap_only, legacy=legacy)
    return np.broadcast_to(result, shape).copy()
