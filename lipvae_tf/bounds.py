"""Certified r-robustness margins (THEORY.md section 3) as pure, vectorised numpy functions.

Arguments broadcast: Lipschitz constants m_mu (encoder mean), m_sigma (encoder std), m_g (decoder),
s = ||sigma(x)||_2, reconstruction tolerance r, probability level p in [1/2, 1). Each returns the
radius d such that every ||delta|| < d keeps P(||f(x + delta) - f(x)|| <= r) >= p; 0 where no
certificate exists. Derivations: docs/theory.md.
"""
from __future__ import annotations

import math

import numpy as np

from lipvae_tf import checks

BISECTION_STEPS = 200  # halvings; stops earlier once the bracket is 1e-12 relative


def _validated(m_mu, m_sigma, m_g, s, r, p):
    arrays = {
        "m_mu": np.asarray(m_mu, np.float64), "m_sigma": np.asarray(m_sigma, np.float64),
        "m_g": np.asarray(m_g, np.float64), "s": np.asarray(s, np.float64),
        "r": np.asarray(r, np.float64), "p": np.asarray(p, np.float64),
    }
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value}")
    for name in ("m_mu", "m_g", "r"):
        if np.any(arrays[name] <= 0):
            raise ValueError(f"{name} must be > 0, got {arrays[name]}")
    for name in ("m_sigma", "s"):
        if np.any(arrays[name] < 0):
            raise ValueError(f"{name} must be >= 0, got {arrays[name]}")
    if np.any((arrays["p"] < 0.5) | (arrays["p"] >= 1)):
        raise ValueError(f"p must be in [1/2, 1), got {arrays['p']}")
    return np.broadcast_arrays(*arrays.values())


def _budget(m_g, r, p):
    """(1 - p) r^2 / M_g^2: the bound on E||z' - z||^2 that Markov turns into probability p."""
    return (1 - p) * r**2 / m_g**2


def paper_markov_radius(m_mu, m_sigma, m_g, s, r, p=0.5) -> np.ndarray:
    """The published closed form R1 (Barrett et al. 2022), r^2/2 replaced by (1 - p) r^2."""
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    a = m_mu**2 + m_sigma**2
    inside = a * _budget(m_g, r, p) - 4 * m_mu**2 * s**2
    radius = (np.sqrt(np.maximum(inside, 0)) - 2 * m_sigma * s) / a
    return np.where(inside > 0, np.maximum(radius, 0), 0.0)


def markov_radius(m_mu, m_sigma, m_g, s, r, p=0.5) -> np.ndarray:
    """Largest d with M_mu^2 d^2 + (s + M_sigma d)^2 + s^2 <= (1 - p) r^2 / M_g^2 (closed form).

    The exact second moment of z' - z under independent noise; never below the paper's R1.
    """
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    a = m_mu**2 + m_sigma**2
    slack = _budget(m_g, r, p) - 2 * s**2  # the d = 0 term must leave room
    discriminant = (m_sigma * s) ** 2 + a * slack
    radius = (np.sqrt(np.maximum(discriminant, 0)) - m_sigma * s) / a
    return np.where(slack > 0, radius, 0.0)


def inglot_log_tail(u, m) -> np.ndarray:
    """log of Inglot's (2010) bound on P(chi2_m >= u), valid for u > m - 2 (+inf elsewhere)."""
    u = np.asarray(u, np.float64)
    log_c = -0.5 * math.log(math.pi) + 0.5 * (m - (m - 1) * math.log(m))
    valid = u > m - 2
    safe_u = np.where(valid & np.isfinite(u), u, m)  # placeholder, masked below
    value = log_c + 0.5 * m * np.log(safe_u) - 0.5 * safe_u - np.log(safe_u - m + 2)
    return np.where(valid, np.where(np.isinf(u), -np.inf, value), np.inf)  # tail(inf) = 0


def _chi2_u(d, m_mu, m_sigma, m_g, s, r, gamma):
    """The chi-square quantile u(d) that ||noise|| must exceed for the reconstruction to move > r."""
    reach = np.maximum(r / m_g - m_mu * d, 0.0)
    if gamma is not None:
        return reach**2 / (2 * gamma**2)
    with np.errstate(divide="ignore", invalid="ignore"):  # no noise: u = inf (0/0 only at the top)
        return reach**2 / (m_sigma * d + 2 * s) ** 2


def chi2_radius(m_mu, m_sigma, m_g, s, r, p=0.5, *, latent_dim: int, gamma=None) -> np.ndarray:
    """Inglot chi-square certificate R2, solved by bisection (not on a grid).

    Learned std: u(d) = (r/M_g - M_mu d)^2 / (M_sigma d + 2 s)^2. Fixed std sigma = gamma * 1
    (pass gamma; m_sigma and s are then ignored): u(d) = (r/M_g - M_mu d)^2 / (2 gamma^2).
    A d is certified when u(d) > m - 2 and the tail bound at u(d) is <= 1 - p. The bound at d
    covers every d' <= d, so the bisection's lower end is always a sound radius; for m >= 2 the
    tail bound decreases in u, so the certified set is an interval and bisection finds its end.
    """
    # minimum 2: for m = 1 Inglot's bound tends to 0 as u -> 0 while the true tail tends to 1.
    latent_dim = checks.positive_int("latent_dim", latent_dim, minimum=2)
    m_mu, m_sigma, m_g, s, r, p = _validated(m_mu, m_sigma, m_g, s, r, p)
    if gamma is not None:
        gamma = np.broadcast_to(np.asarray(gamma, np.float64), m_mu.shape)
        if not np.all(np.isfinite(gamma)) or np.any(gamma <= 0):
            raise ValueError(f"gamma must be finite and > 0, got {gamma}")
    log_level = np.log1p(-p)

    def certified(d):
        u = _chi2_u(d, m_mu, m_sigma, m_g, s, r, gamma)
        return (u > latent_dim - 2) & (inglot_log_tail(u, latent_dim) <= log_level)

    lo = np.zeros(m_mu.shape)  # stays 0 where nothing is certified
    hi = r / (m_g * m_mu)  # u(hi) = 0: never certified
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        good = certified(mid)
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
        if np.all(hi - lo <= 1e-12 * hi):
            break
    return lo


def best_radius(m_mu, m_sigma, m_g, s, r, p=0.5, *, latent_dim: int, gamma=None) -> np.ndarray:
    """The largest of the sound certificates that apply (Markov forms need the learned-std s)."""
    candidates = [chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim, gamma=gamma)]
    if gamma is None:
        candidates += [paper_markov_radius(m_mu, m_sigma, m_g, s, r, p),
                       markov_radius(m_mu, m_sigma, m_g, s, r, p)]
    return np.maximum.reduce(candidates)
