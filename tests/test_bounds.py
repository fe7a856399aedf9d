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
        mu, sg, g, s, r, p = (float(settings[k][i])
                              for k in ("m_mu", "m_sigma", "m_g", "s", "r", "p"))
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
    lhs = ((settings["m_mu"] * d) ** 2 + (settings["s"] + settings["m_sigma"] * d) ** 2
           + settings["s"] ** 2)
    rhs = (1 - settings["p"]) * settings["r"] ** 2 / settings["m_g"] ** 2
    positive = d > 0
    np.testing.assert_allclose(lhs[positive], rhs[positive], rtol=1e-10)
    assert np.all(2 * settings["s"][~positive] ** 2 >= rhs[~positive])


@pytest.mark.parametrize("latent_dim,gamma",
                         [(10, None), (2, None), (32, None), (10, 0.05), (2, 0.1)])
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


@pytest.mark.parametrize("method", ["markov", "paper", "chi2", "chi2_fixed", "ncx2"])
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
            radius = bounds.chi2_radius(m_mu, 0.0, m_g, 0.0, r, p, latent_dim=latent_dim,
                                        gamma=gamma)
        elif method == "ncx2":
            gamma = rng.uniform(0.05, 0.4) * r / m_g / math.sqrt(latent_dim)
            radius = bounds.ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma)
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
            if method == "ncx2":  # the harness is its exact worst case: no slack either
                assert empirical <= p + 4 * standard_error, (trial, empirical, p)


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
    # legacy=True: lipvae_tf 0.1's candidates, bit for bit (train.LEGACY_CERTIFICATE)
    legacy = bounds.best_radius(**settings, latent_dim=10, legacy=True)
    np.testing.assert_array_equal(
        legacy, np.maximum.reduce([chi2, bounds.markov_radius(**settings),
                                   bounds.paper_markov_radius(**settings)]))
    # without a cap the triangle forms join (docs/theory.md section 2, "Without a cap")
    np.testing.assert_array_equal(best, np.maximum.reduce([
        legacy, bounds._triangle_markov_radius(**settings),
        bounds._triangle_chi2_radius(**settings, latent_dim=10)]))
    assert np.all(best >= legacy)


@pytest.mark.parametrize("kwargs,match", [
    (dict(r=0.0), "r must be > 0"),
    (dict(r=-1.0), "r must be > 0"),
    (dict(p=0.4), "p must be in"),
    (dict(p=1.0), "p must be in"),
    (dict(s=np.nan), "s must be finite"),
    (dict(m_mu=0.0), "m_mu must be > 0"),
    (dict(m_sigma=-1.0), "m_sigma must be >= 0"),
    (dict(r=1e155), r"r must be <= 1e\+75"),  # (1 - p) r^2 overflowed: the paper's form gave inf
    (dict(r=1e70, m_g=1e-10), r"r / M_g must be <= 1e\+75"),
    (dict(m_sigma=1e80), r"m_sigma must be <= 1e\+75"),
    (dict(m_g=1e-80), r"m_g must be >= 1e-60"),
    (dict(r=1e-169), r"r / M_g must be >= 1e-60"),  # squares underflowed: noise dropped out
    (dict(r=2021 * 5e-324, m_g=3.0), r"r / M_g must be >= 1e-60"),  # a subnormal reach
])
def test_bad_arguments_name_the_argument(kwargs, match):
    args = dict(m_mu=1.0, m_sigma=1.0, m_g=1.0, s=0.1, r=1.0, p=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        bounds.markov_radius(**args)
    with pytest.raises(ValueError, match="latent_dim"):
        bounds.chi2_radius(1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=1)  # Inglot needs m >= 2


def test_a_reach_below_the_magnitude_floor_is_refused_and_one_above_it_scales():
    """A review (2026-12-03): at s = 1e-170, r = 1e-169 the squares in the triangle forms
    underflowed to 0 and `best` without a cap certified reach / M_mu = 10 (in units of 1e-170)
    against the exact 6.357, as if there were no noise (a Monte Carlo put P at 0.50 for
    p = 0.99); a subnormal reach rounded up past r / M_g. Below the floor NumPy raises and the
    graph gives NaN; above it the same problem in units of 1e-60 certifies what it does in
    units of 1 (to the forms' rounding), and the floor itself is accepted as written."""
    import tensorflow as tf

    from lipvae_tf import graph_bounds
    unit = bounds.radius("best", 1.0, 0.0, 1.0, 1.0, 10.0, 0.99, latent_dim=1)
    for scale in (1e-60, 1e-20, 1e20):
        scaled = bounds.radius("best", 1.0, 0.0, 1.0, scale, 10 * scale, 0.99, latent_dim=1)
        assert float(scaled / scale) == pytest.approx(float(unit), rel=1e-12)
    for m_sigma, std_cap in ((0.0, None), (1.0, None), (0.0, 1e-170)):
        with pytest.raises(ValueError, match=r"r / M_g must be >= 1e-60"):
            bounds.radius("best", 1.0, m_sigma, 1.0, 1e-170, 1e-169, 0.99, latent_dim=2,
                          std_cap=std_cap)
        served = graph_bounds.radius(
            "best", 1.0, m_sigma, 1.0, tf.constant([1e-170, 0.1], tf.float64),
            tf.constant([1e-169, 1.0], tf.float64), tf.constant([0.99, 0.99], tf.float64),
            latent_dim=2, std_cap=None if std_cap is None else 0.2).numpy()
        assert np.isnan(served[0]) and np.isfinite(served[1]), served
    floor = bounds.radius("markov", 1e-60, 0.0, 1e-60, 0.0, 1e-5, 0.5, latent_dim=2)
    assert np.isfinite(floor) and floor > 0


def test_every_certificate_stays_finite_and_below_the_mean_shift_limit_up_to_the_limit():
    """Inside the magnitude limit (1e75) no product overflows: every method's radius is finite and
    at most r / (M_g M_mu) (the mean shift alone uses up r there); outside it the NumPy
    certificates raise and the graph's are NaN (an adversarial review, 2026-12-01: at
    r / M_g = 1e155 the paper's form returned inf and the Markov forms NaN)."""
    import tensorflow as tf

    from lipvae_tf import graph_bounds
    rng = np.random.default_rng(11)
    count = 200
    m_mu, m_g = 10.0 ** rng.uniform(-30, 30, count), 10.0 ** rng.uniform(-30, 30, count)
    r = np.minimum(10.0 ** rng.uniform(-5, 74, count) * m_g, 1e74)
    m_sigma, s = 10.0 ** rng.uniform(-30, 30, count), 10.0 ** rng.uniform(-30, 30, count)
    limit = r / (m_g * m_mu)
    for method in ("paper", "markov", "chi2", "markov_cap", "chi2_cap", "best"):
        cap = s * 2 if method in bounds.CAPPED_METHODS or method == "best" else None
        radius = bounds.radius(method, m_mu, m_sigma, m_g, s, r, 0.5, latent_dim=10, std_cap=cap)
        assert np.all(np.isfinite(radius)) and np.all(radius >= 0), method
        assert np.all(radius <= limit * (1 + 1e-12)), method
    for method in ("paper", "markov", "best"):
        served = graph_bounds.radius(method, 1.0, 0.0, 1.0, tf.constant([0.1, 0.1], tf.float64),
                                     tf.constant([1.0, 1e155], tf.float64),
                                     tf.constant([0.5, 0.5], tf.float64), latent_dim=10).numpy()
        assert np.isfinite(served[0]) and np.isnan(served[1]), (method, served)


# ---- noncentral chi-square (fixed std), mean reconstruction, dispatch ----------------------------

def _ncx2_cdf_reference(x, m, lam):
    """scipy's noncentral chi-square CDF (its chi2 at lam = 0, which ncx2 does not accept)."""
    from scipy import stats  # test-only dependency
    return np.where(lam == 0, stats.chi2.cdf(x, m), stats.ncx2.cdf(x, m, np.maximum(lam, 1e-300)))


def test_ncx2_cdf_lower_never_exceeds_scipy_and_agrees_to_1e9():
    rng = np.random.default_rng(11)
    count = 20_000
    m = rng.integers(1, 65, count)
    lam = np.where(rng.uniform(size=count) < 0.1, 0.0, 10 ** rng.uniform(-3, 4, count))
    mean, sd = m + lam, np.sqrt(2 * (m + 2 * lam))
    x = np.maximum(mean + sd * rng.uniform(-8, 8, count), 0.0)  # tails to bulk, lam up to 1e4
    ours = bounds.ncx2_cdf_lower(x, m, lam)
    reference = _ncx2_cdf_reference(x, m, lam)
    assert np.all(ours <= reference + 1e-12)  # a lower bound (up to scipy's own rounding)
    assert np.max(reference - ours) <= 1e-9
    upper = reference > 1e-3  # where certificates live (p >= 1/2): relative agreement
    assert np.max((reference - ours)[upper] / reference[upper]) <= 1e-9
    assert np.median(np.abs(ours - reference)[upper] / reference[upper]) <= 1e-12


def test_ncx2_cdf_lower_edges_and_the_cantelli_fallback():
    np.testing.assert_array_equal(
        bounds.ncx2_cdf_lower([0.0, np.inf, 5.0, 3.0], 3, [2.0, 1.0, np.inf, 0.0])[:3], [0, 1, 0])
    # m = 2, lam = 0: the chi-square CDF 1 - exp(-x / 2) in closed form
    x = np.linspace(0.01, 60, 50)
    ours = bounds.ncx2_cdf_lower(x, 2, 0.0)
    assert np.all(ours <= -np.expm1(-x / 2)) and np.allclose(ours, -np.expm1(-x / 2), rtol=1e-12)
    # beyond the exact range: Cantelli, still below the truth
    lam, m = 1e8, 10
    sd = math.sqrt(2 * (m + 2 * lam))
    x = lam + m + sd * np.array([-1.0, 1.0, 3.0, 10.0])
    ours = bounds.ncx2_cdf_lower(x, m, lam)
    assert np.all(ours <= _ncx2_cdf_reference(x, m, lam))
    t = x - lam - m
    np.testing.assert_allclose(ours, np.where(t > 0, t**2 / (sd**2 + t**2), 0.0), rtol=1e-9)


def _log_poisson_60_digits(n, mu):
    """log(mu^n e^-mu / Gamma(n + 1)) in 60-digit decimals (Stirling, 10 terms, at z >= 30)."""
    from decimal import Decimal, localcontext
    from fractions import Fraction
    bernoulli = [Fraction(1, 6), Fraction(-1, 30), Fraction(1, 42), Fraction(-1, 30),
                 Fraction(5, 66), Fraction(-691, 2730), Fraction(7, 6), Fraction(-3617, 510),
                 Fraction(43867, 798), Fraction(-174611, 330)]
    with localcontext() as context:
        context.prec = 60
        pi = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
        z, log_product = Decimal(float(n)) + 1, Decimal(0)
        while z < 30:
            log_product += z.ln()
            z += 1
        log_gamma = (z - Decimal("0.5")) * z.ln() - z + (2 * pi).ln() / 2 - log_product
        for k, b in enumerate(bernoulli, 1):
            coefficient = Decimal(b.numerator) / Decimal(b.denominator) / (2 * k * (2 * k - 1))
            log_gamma += coefficient / z ** (2 * k - 1)
        mu = Decimal(float(mu))
        return float(Decimal(float(n)) * mu.ln() - mu - log_gamma)


def test_log_poisson_error_bound_holds_against_a_60_digit_reference():
    rng = np.random.default_rng(5)
    large = np.floor(10 ** rng.uniform(1, 5, 60)) + rng.choice([0, 0.5], 60)  # half-integers too
    n = np.concatenate([np.arange(0, 20, 0.5), large])
    mu = np.maximum(n + rng.normal(size=n.size) * 4 * np.sqrt(n + 1), 1e-3)
    value, error = bounds._log_poisson(n, mu)
    for i in range(n.size):
        exact = _log_poisson_60_digits(n[i], mu[i])
        assert abs(value[i] - exact) <= error[i] + 1e-16 * abs(exact), (n[i], mu[i])
    assert np.all(error < 1e-9)  # the margin stays small


def _fixed_settings(count, seed):
    rng = np.random.default_rng(seed)
    m_mu, m_g = rng.uniform(0.5, 10, (2, count))
    r, p = rng.uniform(1, 10, count), rng.uniform(0.5, 0.95, count)
    return m_mu, m_g, r, p, rng


def test_ncx2_radius_is_the_exact_root_from_below():
    from scipy import optimize, stats
    for latent_dim in (1, 2, 10, 64):
        m_mu, m_g, r, p, rng = _fixed_settings(10, latent_dim)
        gamma = rng.uniform(0.02, 0.5, 10) * r / m_g / math.sqrt(latent_dim)
        radius = bounds.ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma)
        for i in range(10):
            x = r[i] ** 2 / (2 * gamma[i] ** 2 * m_g[i] ** 2)

            def margin(d):
                lam = max(m_mu[i] ** 2 * d**2 / (2 * gamma[i] ** 2), 1e-300)
                return stats.ncx2.cdf(x, latent_dim, lam) - p[i]

            if margin(0.0) <= 0:
                assert radius[i] == 0
                continue
            root = optimize.brentq(margin, 0.0, r[i] / (m_g[i] * m_mu[i]), xtol=1e-300, rtol=1e-14)
            assert root * (1 - 1e-9) <= radius[i] <= root * (1 + 1e-13), (latent_dim, i)


def test_ncx2_bisection_agrees_with_a_fine_grid_and_never_exceeds_it():
    m_mu, m_g, r, p, rng = _fixed_settings(8, 21)
    for i in range(8):
        latent_dim = int(rng.choice([2, 7, 32]))
        gamma = rng.uniform(0.03, 0.4) * r[i] / m_g[i] / math.sqrt(latent_dim)
        radius = float(bounds.ncx2_radius(m_mu[i], m_g[i], r[i], p[i], latent_dim=latent_dim,
                                          gamma=gamma))
        assert radius > 0
        top = r[i] / (m_g[i] * m_mu[i])
        grid = np.linspace(0, top, 10_001)[:-1]
        x = r[i] ** 2 / (2 * gamma**2 * m_g[i] ** 2)
        ok = bounds.ncx2_cdf_lower(x, latent_dim, m_mu[i] ** 2 * grid**2 / (2 * gamma**2)) >= p[i]
        grid_radius = grid[ok].max()
        assert np.all(ok[grid <= grid_radius])  # the certified set is an interval
        assert grid_radius <= radius + 1e-12 * top
        assert radius <= grid_radius + (grid[1] - grid[0])


def test_ncx2_dominates_chi2_and_markov_for_a_fixed_std():
    """It is the exact worst case, so every other sound certificate must lie below it."""
    ratios = []
    for latent_dim in (2, 5, 10, 32, 64):
        m_mu, m_g, r, p, rng = _fixed_settings(60, latent_dim + 100)
        gamma = rng.uniform(0.02, 0.3, 60) * r / m_g / math.sqrt(latent_dim)
        ncx2 = bounds.ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma)
        chi2 = bounds.chi2_radius(m_mu, 0.0, m_g, 0.0, r, p, latent_dim=latent_dim, gamma=gamma)
        markov = bounds.markov_radius(m_mu, 0.0, m_g, gamma * math.sqrt(latent_dim), r, p)
        assert np.all(ncx2 >= chi2 * (1 - 1e-11)) and np.all(ncx2 >= markov * (1 - 1e-11))
        ratios.append(ncx2[chi2 > 0] / chi2[chi2 > 0])
    assert np.median(np.concatenate(ratios)) > 1.1  # measured: ~1.24


@pytest.mark.parametrize("latent_dim, gamma, r, p", [
    (10, 0.05, 1.2 * math.sqrt(2), 1 - 1e-12),  # the CDF lower bound's shortfall ~ 1 - p
    (10, 0.05, 1.2 * math.sqrt(2), 1 - 1e-13),
    (2, 1e-4, 1.5, 0.999),  # the Cantelli regime, x/2 > 2.7e7
])
def test_where_ncx2_safety_margins_dominate_best_takes_chi2(latent_dim, gamma, r, p):
    """A review of docs/theory.md (2026-12-03): "the noncentral one always wins" held for the
    exact radius, not for the computed one, whose margins dominate near p = 1 and for large x;
    the chi-square radius is sound there (exact tail 3e-18 at it) and `best` takes it."""
    chi2 = float(bounds.radius("chi2", 1.0, 0.0, 1.0, 0.0, r, p, latent_dim=latent_dim,
                               gamma=gamma))
    ncx2 = float(bounds.radius("ncx2", 1.0, 0.0, 1.0, 0.0, r, p, latent_dim=latent_dim,
                               gamma=gamma))
    best = float(bounds.radius("best", 1.0, 0.0, 1.0, 0.0, r, p, latent_dim=latent_dim,
                               gamma=gamma))
    assert ncx2 < chi2 == best
    # the exact worst case holds at the chi-square radius (M_mu = M_g = 1: z' - z = d e +
    # gamma (eps' - eps), so ||z' - z||^2 / (2 gamma^2) is noncentral chi-square with
    # noncentrality d^2 / (2 gamma^2)); its tail from scipy, 1 - p at most
    from scipy import stats  # test-only dependency

    tail = stats.ncx2.sf(r**2 / (2 * gamma**2), latent_dim, chi2**2 / (2 * gamma**2))
    assert tail <= 1 - p


def test_ncx2_harness_sees_a_radius_overstated_by_5_percent():
    """Exactness the other way: at 1.05 R the worst-case probability is measurably below p."""
    rng = np.random.default_rng(3)
    for latent_dim, p in ((2, 0.5), (10, 0.75), (16, 0.9)):
        m_mu, m_g, r = 2.0, 1.5, 4.0
        gamma = 0.2 * r / m_g / math.sqrt(latent_dim)
        radius = float(bounds.ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma))
        empirical = _monte_carlo_probability(1.05 * radius, m_mu, 0.0, m_g, 0.0, r, latent_dim,
                                             True, rng, gamma=gamma)
        assert empirical < p - 4 * math.sqrt(p * (1 - p) / 200_000), (latent_dim, p, empirical)


def test_mean_reconstruction_radius_is_deterministic_and_above_every_stochastic_one():
    settings = _random_settings(500, seed=9)
    radius = bounds.mean_reconstruction_radius(settings["m_mu"], settings["m_g"], settings["r"])
    exact = settings["r"] / (settings["m_g"] * settings["m_mu"])
    assert np.all(radius <= exact) and np.allclose(radius, exact, rtol=1e-15, atol=0)
    assert np.all(bounds.best_radius(**settings, latent_dim=10) < radius)
    # a linear encoder mean and decoder with exactly these constants reach r at the radius
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    delta = rng.standard_normal(6)
    delta *= float(bounds.mean_reconstruction_radius(3.0, 2.0, 5.0)) / np.linalg.norm(delta)
    moved = 2.0 * (3.0 * q @ delta)  # g(mu(x + delta)) - g(mu(x)) for mu = 3 Q x, g = 2 z
    assert np.linalg.norm(moved) <= 5.0 and np.linalg.norm(moved) == pytest.approx(5.0, rel=1e-14)


def test_best_for_a_fixed_std_takes_ncx2():
    m_mu, m_g, r, p, rng = _fixed_settings(100, 4)
    gamma = rng.uniform(0.02, 0.3, 100) * r / m_g / math.sqrt(10)
    noise = dict(m_sigma=rng.uniform(0, 5, 100), s=rng.uniform(0, 1, 100))  # ignored with gamma
    best = bounds.best_radius(m_mu, noise["m_sigma"], m_g, noise["s"], r, p, latent_dim=10,
                              gamma=gamma)
    s = gamma * math.sqrt(10) * (1 + 2**-51)
    expected = np.maximum.reduce([
        bounds.ncx2_radius(m_mu, m_g, r, p, latent_dim=10, gamma=gamma),
        bounds.chi2_radius(m_mu, 0.0, m_g, 0.0, r, p, latent_dim=10, gamma=gamma),
        bounds.markov_radius(m_mu, 0.0, m_g, s, r, p),
        bounds.paper_markov_radius(m_mu, 0.0, m_g, s, r, p)])
    np.testing.assert_array_equal(best, expected)
    np.testing.assert_array_equal(best, bounds.ncx2_radius(m_mu, m_g, r, p, latent_dim=10,
                                                           gamma=gamma))


def test_radius_dispatches_over_methods():
    assert bounds.METHODS == ("paper", "markov", "chi2", "ncx2", "markov_cap", "chi2_cap", "best")
    settings = _random_settings(50, seed=5)
    learned = {
        "paper": bounds.paper_markov_radius(**settings), "markov": bounds.markov_radius(**settings),
        "chi2": bounds.chi2_radius(**settings, latent_dim=10),
        "best": bounds.best_radius(**settings, latent_dim=10),
    }
    for method, expected in learned.items():
        np.testing.assert_array_equal(bounds.radius(method, **settings, latent_dim=10), expected)
    with pytest.raises(ValueError, match="method 'ncx2' needs gamma"):
        bounds.radius("ncx2", **settings, latent_dim=10)
    with pytest.raises(ValueError, match="method must be one of"):
        bounds.radius("ncx", **settings, latent_dim=10)
    # fixed std: m_sigma and s are ignored (s = 0 must not certify a noiseless Markov radius)
    gamma = 0.02
    fixed = {k: settings[k] for k in ("m_mu", "m_g", "r", "p")}
    for method in set(bounds.METHODS) - set(bounds.CAPPED_METHODS):
        a = bounds.radius(method, fixed["m_mu"], 0.0, fixed["m_g"], 0.0, fixed["r"], fixed["p"],
                          latent_dim=10, gamma=gamma)
        b = bounds.radius(method, **settings, latent_dim=10, gamma=gamma)
        np.testing.assert_array_equal(a, b)
    markov = bounds.markov_radius(fixed["m_mu"], 0.0, fixed["m_g"], gamma * math.sqrt(10),
                                  fixed["r"], fixed["p"])
    dispatched = bounds.radius("markov", **settings, latent_dim=10, gamma=gamma)
    np.testing.assert_allclose(dispatched, markov, rtol=1e-13)
    assert np.all(dispatched <= markov * (1 + 1e-14))  # s rounded up (ulp-level)
    np.testing.assert_array_equal(bounds.radius("ncx2", **settings, latent_dim=10, gamma=gamma),
                                  bounds.ncx2_radius(**fixed, latent_dim=10, gamma=gamma))
    # the result takes the broadcast shape of every argument, ignored ones included
    shaped = bounds.radius("ncx2", 1.0, 0.0, 1.0, np.zeros(3), 1.0, latent_dim=4, gamma=0.05)
    assert shaped.shape == (3,)


def _ncx2(r=1.0, m_g=1.0, p=0.5, latent_dim=4, **gamma):
    return bounds.ncx2_radius(1.0, m_g, r, p, latent_dim=latent_dim, **gamma)


@pytest.mark.parametrize("call,error,match", [
    (lambda: _ncx2(gamma=0.0), ValueError, "gamma must be > 0"),
    (lambda: _ncx2(gamma=np.nan), ValueError, "gamma must be finite"),
    (lambda: _ncx2(latent_dim=0, gamma=0.1), ValueError, "latent_dim"),
    (lambda: _ncx2(latent_dim=2.0, gamma=0.1), TypeError, "latent_dim"),
    (lambda: _ncx2(), TypeError, "gamma"),
    (lambda: _ncx2(r=-1.0, gamma=0.1), ValueError, "r must be > 0"),
    (lambda: _ncx2(m_g=0.0, gamma=0.1), ValueError, "m_g must be > 0"),
    (lambda: _ncx2(p=1.0, gamma=0.1), ValueError, "p must be in"),
    (lambda: bounds.ncx2_cdf_lower(-1.0, 2, 1.0), ValueError, "x must be"),
    (lambda: bounds.ncx2_cdf_lower(1.0, 2, np.nan), ValueError, "lam must be"),
    (lambda: bounds.ncx2_cdf_lower(1.0, 0, 1.0), ValueError, "m must be"),
    (lambda: bounds.ncx2_cdf_lower(1.0, 2.5, 1.0), TypeError, "m must be"),
    (lambda: bounds.ncx2_cdf_lower(1.0, np.array([2, 0]), 1.0), ValueError, "m must be"),
    (lambda: bounds.mean_reconstruction_radius(1.0, 0.0, 1.0), ValueError, "m_g must be > 0"),
    (lambda: bounds.mean_reconstruction_radius(np.inf, 1.0, 1.0), ValueError,
     "m_mu must be finite"),
    (lambda: bounds.radius("markov", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=2, gamma=-1.0), ValueError,
     "gamma must be > 0"),
    (lambda: bounds.radius("markov", 1.0, 1.0, 1.0, -0.1, 1.0, latent_dim=2), ValueError,
     "s must be >= 0"),
])
def test_new_functions_reject_bad_arguments_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_ncx2_radius_solves_each_distinct_input_once_with_the_same_result(monkeypatch):
    """A fixed std gives every image of a model the same noncentral chi-square problem: 10k
    images took 9 s of bisection in `zoo verify` (a newcomer's profile). Each distinct (r, p,
    constants) row is now solved once, and each input gets exactly the radius it gets alone."""
    r = np.array([8.0, 8.0, 4.0, 8.0, 4.0, 8.0])
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.9])
    alone = [float(bounds.ncx2_radius(1.0, 7.8, ri, pi, latent_dim=10, gamma=0.05))
             for ri, pi in zip(r, p)]
    sizes = []
    lower = bounds.ncx2_cdf_lower

    def counted(x, m, lam):
        sizes.append(np.size(x))
        return lower(x, m, lam)

    monkeypatch.setattr(bounds, "ncx2_cdf_lower", counted)
    together = bounds.ncx2_radius(1.0, 7.8, r, p, latent_dim=10, gamma=0.05)
    assert together.tolist() == alone  # bit for bit
    assert max(sizes) == 3  # three distinct rows, not six
    assert bounds.ncx2_radius(1.0, 7.8, np.full((2, 3), 8.0), 0.5, latent_dim=10,
                              gamma=0.05).shape == (2, 3)


@pytest.mark.parametrize("method", ["chi2", "best", "ncx2", "markov"])
def test_an_array_of_gammas_certifies_each_gamma_as_a_scalar_would(method):
    """radius promises the broadcast shape of all its arguments: chi2 (and best, which takes it)
    refused an array gamma with scalar constants ("cannot broadcast a non-scalar to a scalar")."""
    gammas = np.array([0.05, 0.1, 0.3])
    together = bounds.radius(method, 1.0, 0.0, 2.0, 0.0, 4.0, 0.5, latent_dim=10, gamma=gammas)
    alone = [float(bounds.radius(method, 1.0, 0.0, 2.0, 0.0, 4.0, 0.5, latent_dim=10, gamma=g))
             for g in gammas]
    assert together.shape == (3,)
    # a vector bisection runs until its widest bracket closes: the others may go a step further
    np.testing.assert_allclose(together, alone, rtol=2e-12)
    assert together[0] > together[1] > together[2] > 0  # more noise, a smaller radius
