"""Certificates: exact closed forms, bisection vs grid, and Monte Carlo against the claim."""
import math

import numpy as np
import pytest

from lipvae_tf import bounds


def _random_settings(count, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        m_mu=rng.uniform(0.5, 10, count), m_sigma=rng.uniform(0, 10, count),
        m_g=rng.uniform(0.5, 10, count), s=rng.uniform(0, 0.5, count),
        r=rng.uniform(1, 10, count), p=rng.uniform(0.5, 0.95, count),
    )


def test_paper_radius_matches_the_published_closed_form():
    settings = _random_settings(2000)
    ours = bounds.paper_markov_radius(**settings)
    for i in range(2000):
        mu, sg, g, s, r, p = (float(settings[k][i]) for k in ("m_mu", "m_sigma", "m_g", "s", "r", "p"))
        a = mu**2 + sg**2
        inside = a * (1 - p) * r**2 / g**2 - 4 * mu**2 * s**2
        expected = max((math.sqrt(inside) - 2 * sg * s) / a, 0.0) if inside > 0 else 0.0
        assert ours[i] == pytest.approx(expected, rel=1e-12, abs=1e-300)
    # positive exactly when s < r / (2 sqrt(2) M_g) at p = 1/2
    at_half = bounds.paper_markov_radius(2.0, 1.0, 4.0, np.array([0.35, 0.36]), 4.0, 0.5)
    assert at_half[0] > 0 and at_half[1] == 0  # threshold 4 / (8 sqrt 2) = 0.3536


def test_markov_radius_solves_its_quadratic_and_beats_the_paper():
    settings = _random_settings(5000, seed=1)
    tight = bounds.markov_radius(**settings)
    paper = bounds.paper_markov_radius(**settings)
    assert np.all(tight >= paper - 1e-12)
    assert np.mean(tight > paper * 1.01) > 0.5  # strictly better on most settings
    d = tight
    lhs = (settings["m_mu"] * d) ** 2 + (settings["s"] + settings["m_sigma"] * d) ** 2 + settings["s"] ** 2
    rhs = (1 - settings["p"]) * settings["r"] ** 2 / settings["m_g"] ** 2
    positive = d > 0
    np.testing.assert_allclose(lhs[positive], rhs[positive], rtol=1e-10)
    assert np.all(2 * settings["s"][~positive] ** 2 >= rhs[~positive])


@pytest.mark.parametrize("latent_dim,gamma", [(10, None), (2, None), (32, None), (10, 0.05), (2, 0.1)])
def test_chi2_bisection_agrees_with_a_fine_grid_and_never_exceeds_it(latent_dim, gamma):
    settings = _random_settings(40, seed=latent_dim)
    settings["s"] = settings["s"] * 0.2
    radius = bounds.chi2_radius(**settings, latent_dim=latent_dim, gamma=gamma)
    assert np.any(radius > 0)
    for i in range(40):
        one = {k: v[i] for k, v in settings.items()}
        top = one["r"] / (one["m_g"] * one["m_mu"])
        grid = np.linspace(0, top, 100_001)[:-1]
        u = bounds._chi2_u(grid, one["m_mu"], one["m_sigma"], one["m_g"], one["s"], one["r"], gamma)
        ok = (u > latent_dim - 2) & (bounds.inglot_log_tail(u, latent_dim) <= math.log1p(-one["p"]))
        grid_radius = grid[ok].max() if ok.any() else 0.0
        step = grid[1] - grid[0]
        assert grid_radius <= radius[i] + 1e-12 * top
        assert radius[i] <= grid_radius + step


def _monte_carlo_probability(d, m_mu, m_sigma, m_g, s, r, latent_dim, concentrated, rng,
                             samples=200_000, gamma=None):
    """P(||g(z') - g(z)|| <= r) for a worst-case-like configuration at perturbation size d.

    g = M_g * identity (Lipschitz exactly M_g); the mean moves by M_mu d along axis 0; sigma has
    norm s and sigma' norm s + M_sigma d, either concentrated on axis 0 or spread at random.
    """
    if gamma is not None:
        sigma = np.full(latent_dim, gamma)
        sigma_shift = sigma
    elif concentrated:
        sigma = np.eye(latent_dim)[0] * s
        sigma_shift = np.eye(latent_dim)[0] * (s + m_sigma * d)
    else:
        a, b = rng.uniform(size=(2, latent_dim))
        sigma = a / np.linalg.norm(a) * s
        sigma_shift = b / np.linalg.norm(b) * (s + m_sigma * d)
    shift = np.eye(latent_dim)[0] * m_mu * d
    eps, eps2 = rng.standard_normal((2, samples, latent_dim))
    delta = m_g * (shift + sigma_shift * eps2 - sigma * eps)
    return np.mean(np.linalg.norm(delta, axis=1) <= r)


@pytest.mark.parametrize("method", ["markov", "paper", "chi2", "chi2_fixed"])
def test_monte_carlo_never_below_the_certified_probability(method):
    rng = np.random.default_rng(7)
    for trial in range(12):
        latent_dim = int(rng.choice([2, 5, 10, 16]))
        m_mu, m_sigma, m_g = rng.uniform(0.5, 5, 3)
        r, p = rng.uniform(1, 8), rng.choice([0.5, 0.75, 0.9])
        gamma = None
        s = rng.uniform(0, 0.3) * r / m_g
        if method == "chi2_fixed":
            gamma = 0.1 * r / m_g / math.sqrt(latent_dim)
            radius = bounds.chi2_radius(m_mu, 0.0, m_g, 0.0, r, p, latent_dim=latent_dim, gamma=gamma)
        elif method == "chi2":
            radius = bounds.chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim)
        else:
            radius = getattr(bounds, f"{method}_radius" if method == "markov" else
                             "paper_markov_radius")(m_mu, m_sigma, m_g, s, r, p)
        radius = float(radius)
        if radius == 0:
            continue
        for concentrated in (True, False):
            empirical = _monte_carlo_probability(radius, m_mu, m_sigma, m_g, s, r, latent_dim,
                                                 concentrated, rng, gamma=gamma)
            standard_error = math.sqrt(p * (1 - p) / 200_000)
            assert empirical >= p - 4 * standard_error, (trial, concentrated, empirical, p)


def test_chi2_certifies_a_noiseless_encoder():
    """s = 0: at d = 0 there is no noise at all, so a positive radius must come out."""
    radius = bounds.chi2_radius(2.0, 1.0, 1.0, 0.0, 4.0, 0.5, latent_dim=10)
    assert 0 < radius < 2.0
    u = bounds._chi2_u(radius, 2.0, 1.0, 1.0, 0.0, 4.0, None)
    assert math.exp(bounds.inglot_log_tail(u, 10)) <= 0.5


def test_monte_carlo_harness_detects_an_overstated_radius():
    """At 1.2 x r / (M_g M_mu) the mean shift alone exceeds r: the harness must see the failure."""
    rng = np.random.default_rng(0)
    empirical = _monte_carlo_probability(1.2 * 4 / (2 * 1), 1.0, 0.5, 2.0, 0.05, 4.0, 10, True, rng)
    assert empirical < 0.5


def test_best_is_the_largest_sound_certificate():
    settings = _random_settings(200, seed=3)
    best = bounds.best_radius(**settings, latent_dim=10)
    chi2 = bounds.chi2_radius(**settings, latent_dim=10)
    np.testing.assert_array_equal(
        best, np.maximum.reduce([chi2, bounds.markov_radius(**settings),
                                 bounds.paper_markov_radius(**settings)]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(r=0.0), "r must be > 0"),
    (dict(r=-1.0), "r must be > 0"),
    (dict(p=0.4), "p must be in"),
    (dict(p=1.0), "p must be in"),
    (dict(s=np.nan), "s must be finite"),
    (dict(m_mu=0.0), "m_mu must be > 0"),
    (dict(m_sigma=-1.0), "m_sigma must be >= 0"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    args = dict(m_mu=1.0, m_sigma=1.0, m_g=1.0, s=0.1, r=1.0, p=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        bounds.markov_radius(**args)
    with pytest.raises(ValueError, match="latent_dim"):
        bounds.chi2_radius(1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=1)  # Inglot needs m >= 2
