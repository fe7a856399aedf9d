"""Certificates that use the std cap S for the perturbed input (docs/theory.md section 9)."""
import math

import numpy as np
import pytest
from scipy import stats

from lipvae_tf import bounds


def _settings(count, seed):
    rng = np.random.default_rng(seed)
    std_cap = rng.uniform(0.02, 0.5, count)
    s = std_cap * rng.uniform(0, 1, count)
    return dict(m_mu=rng.uniform(0.5, 10, count), m_sigma=rng.uniform(0, 10, count),
                m_g=rng.uniform(0.5, 10, count), s=s, r=rng.uniform(1, 10, count),
                p=rng.uniform(0.5, 0.95, count)), std_cap


def test_chi2_quantile_upper_is_a_verified_upper_bound_within_1e_10():
    for m in (1, 2, 5, 10, 16, 64):
        for p in (0.5, 0.75, 0.9, 0.99, 0.999):
            q = float(bounds.chi2_quantile_upper(m, p))
            exact = stats.chi2.ppf(p, m)
            assert exact <= q <= exact * (1 + 1e-10), (m, p, q, exact)
            assert stats.chi2.cdf(q, m) >= p
    shaped = bounds.chi2_quantile_upper(10, np.array([[0.5, 0.9], [0.9, 0.5]]))
    assert shaped.shape == (2, 2) and shaped[0, 0] == shaped[1, 1]


def _monte_carlo(d, m_mu, m_g, sigma, sigma_shift, r, rng, samples=200_000):
    """P(||g(z') - g(z)|| <= r), g = M_g * identity, the mean moved by M_mu d along axis 0."""
    latent_dim = len(sigma)
    shift = np.eye(latent_dim)[0] * m_mu * d
    eps, eps2 = rng.standard_normal((2, samples, latent_dim))
    delta = m_g * (shift + sigma_shift * eps2 - sigma * eps)
    return np.mean(np.linalg.norm(delta, axis=1) <= r)


def _stds(rng, latent_dim, s, shifted_norm, layout):
    """sigma(x) of norm s and sigma(x') of norm shifted_norm, concentrated on axis 0 (worst for the
    mean shift's direction), on axis 1 (orthogonal), or spread at random."""
    if layout == "axis0":
        return np.eye(latent_dim)[0] * s, np.eye(latent_dim)[0] * shifted_norm
    if layout == "axis1":
        return np.eye(latent_dim)[1] * s, np.eye(latent_dim)[1] * shifted_norm
    a, b = rng.uniform(size=(2, latent_dim))
    return a / np.linalg.norm(a) * s, b / np.linalg.norm(b) * shifted_norm


@pytest.mark.parametrize("cap_only", [False, True])
@pytest.mark.parametrize("method", ["markov_cap", "chi2_cap"])
def test_monte_carlo_never_below_the_certified_probability(method, cap_only):
    rng = np.random.default_rng(17)
    checked = 0
    for trial in range(14):
        latent_dim = int(rng.choice([2, 5, 10, 16]))
        m_mu, m_sigma, m_g = rng.uniform(0.5, 5, 3)
        r, p = rng.uniform(1, 8), float(rng.choice([0.5, 0.75, 0.9]))
        std_cap = rng.uniform(0.05, 0.35) * r / m_g  # the noise matters: certificates near 0
        s = std_cap * rng.uniform(0.2, 1.0)
        layout = ["axis0", "axis1", "spread"][trial % 3]
        sigma, _ = _stds(rng, latent_dim, s, 1.0, layout)
        radius = float(bounds.radius(method, m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                     std_cap=std_cap, s_max=np.max(sigma), cap_only=cap_only))
        if radius == 0:
            continue
        checked += 1
        # the worst std the certificate allows at x': with cap_only, any with norm <= S
        shifted_norm = std_cap if cap_only else min(s + m_sigma * radius, std_cap)
        for shifted_layout in ("axis0", "axis1", "spread"):
            _, sigma_shift = _stds(rng, latent_dim, s, shifted_norm, shifted_layout)
            empirical = _monte_carlo(radius, m_mu, m_g, sigma, sigma_shift, r, rng)
            standard_error = math.sqrt(p * (1 - p) / 200_000)
            assert empirical >= p - 4 * standard_error, (trial, layout, empirical, p)
    assert checked >= 8


def test_monte_carlo_catches_a_model_whose_cap_is_not_enforced():
    """The same harness sees the failure when sigma(x') exceeds the cap the certificate assumed
    (a broken model: StdCap removed after design), so the test above can fail."""
    rng = np.random.default_rng(3)
    m_mu, m_sigma, m_g, r, p, latent_dim, std_cap = 1.0, 50.0, 1.0, 1.0, 0.5, 10, 0.25
    s = std_cap
    radius = float(bounds.radius("best", m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                 std_cap=std_cap))
    assert radius > 0
    sigma = np.full(latent_dim, s / math.sqrt(latent_dim))
    honest = _monte_carlo(radius, m_mu, m_g, sigma, sigma, r, rng)
    assert honest >= p
    uncapped = np.full(latent_dim, (s + m_sigma * radius) / math.sqrt(latent_dim))
    assert _monte_carlo(radius, m_mu, m_g, sigma, uncapped, r, rng) < p


def test_capped_forms_dominate_the_uncapped_ones_and_best_takes_the_max():
    settings, std_cap = _settings(300, seed=4)
    markov = bounds.markov_radius(**settings)
    capped_markov = bounds.capped_markov_radius(**settings, std_cap=std_cap)
    capped_chi2 = bounds.capped_chi2_radius(**settings, latent_dim=10, std_cap=std_cap)
    assert np.all(capped_markov >= markov)
    assert np.mean(capped_markov > markov * 1.01) > 0.3
    best = bounds.best_radius(**settings, latent_dim=10, std_cap=std_cap)
    expected = np.maximum.reduce([
        bounds.best_radius(**settings, latent_dim=10), capped_markov, capped_chi2])
    np.testing.assert_array_equal(best, expected)
    # s_max (the largest coordinate) below s only helps, and s_max = s is the default
    smaller = bounds.capped_chi2_radius(**settings, latent_dim=10, std_cap=std_cap,
                                        s_max=settings["s"] / 2)
    assert np.all(smaller >= capped_chi2)
    np.testing.assert_array_equal(capped_chi2, bounds.capped_chi2_radius(
        **settings, latent_dim=10, std_cap=std_cap, s_max=settings["s"]))


@pytest.mark.parametrize("cap_only", [False, True])
@pytest.mark.parametrize("method", ["markov_cap", "chi2_cap"])
def test_capped_radius_agrees_with_a_fine_grid_and_never_exceeds_it(method, cap_only):
    settings, std_cap = _settings(30, seed=8)
    radius = bounds.radius(method, **settings, latent_dim=10, std_cap=std_cap, cap_only=cap_only)
    assert np.any(radius > 0)
    for i in range(30):
        mu, sg, g, s, r, p = (settings[k][i] for k in ("m_mu", "m_sigma", "m_g", "s", "r", "p"))
        cap = std_cap[i]
        grid = np.linspace(0, r / (g * mu), 200_001)[:-1]
        noise_var = np.full_like(grid, cap**2) if cap_only else np.minimum(s + sg * grid, cap) ** 2
        if method == "chi2_cap":
            q = stats.chi2.ppf(p, 10)
            ok = mu * grid + np.sqrt(q * (noise_var + s**2)) <= r / g
        else:
            whole = (mu * grid) ** 2 + noise_var + s**2 <= (1 - p) * r**2 / g**2
            ok = whole | (mu * grid + np.sqrt((noise_var + s**2) / (1 - p)) <= r / g)
        grid_radius = grid[ok].max() if ok.any() else 0.0
        step = grid[1] - grid[0]
        assert radius[i] <= grid_radius + step * (1 + 1e-9)
        assert grid_radius <= radius[i] + 1e-9 * grid[-1]


def test_cap_only_never_uses_the_std_network_constant():
    """cap_only bounds sigma(x') by S alone (docs/theory.md section 15): never above the capped
    forms that also use s + M_sigma d, and the same whatever M_sigma is."""
    settings, std_cap = _settings(300, seed=5)
    full = bounds.radius("best", **settings, latent_dim=10, std_cap=std_cap)
    alone = bounds.radius("best", **settings, latent_dim=10, std_cap=std_cap, cap_only=True)
    assert np.all(alone <= full) and np.any(alone < full) and np.any(alone > 0)
    for m_sigma in (0.0, 1e3):
        np.testing.assert_array_equal(alone, bounds.radius(
            "best", **{**settings, "m_sigma": m_sigma}, latent_dim=10, std_cap=std_cap,
            cap_only=True))
    np.testing.assert_array_equal(alone, np.maximum(*(
        bounds.radius(method, **settings, latent_dim=10, std_cap=std_cap, cap_only=True)
        for method in bounds.CAPPED_METHODS)))


def test_the_reference_setting_certifies_above_1_2():
    """M = 5 for all three networks (decoder before its sigmoid: M_g = 5/4), S = 0.1, m = 10,
    r = 8, p = 1/2, at the worst-case std s = S. The published R1 gives 0.139 at M_g = 5 (the
    sigmoid not counted) and 0.620 at M_g = 5/4; the capped forms double the uncapped 0.63."""
    best = float(bounds.radius("best", 5.0, 5.0, 1.25, 0.1, 8.0, 0.5, latent_dim=10, std_cap=0.1))
    uncapped = float(bounds.radius("best", 5.0, 5.0, 1.25, 0.1, 8.0, 0.5, latent_dim=10))
    assert best >= 1.2 and uncapped < 0.7
    published = [float(bounds.paper_markov_radius(5.0, 5.0, m_g, 0.1, 8.0, 0.5))
                 for m_g in (5.0, 1.25)]
    np.testing.assert_allclose(published, [0.1387, 0.6197], atol=1e-4)


@pytest.mark.parametrize("call,match", [
    (lambda: bounds.radius("chi2_cap", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4), "needs std_cap"),
    (lambda: bounds.radius("markov_cap", 1.0, 1.0, 1.0, 0.2, 1.0, latent_dim=4, std_cap=0.1),
     "s must be <= std_cap"),
    (lambda: bounds.radius("best", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, std_cap=0.0),
     "std_cap must be > 0"),
    (lambda: bounds.radius("best", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, gamma=0.1,
                           std_cap=0.1), "std_cap does not apply"),
    (lambda: bounds.capped_chi2_radius(1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, std_cap=0.2,
                                       s_max=0.15), "s_max"),
    (lambda: bounds.capped_chi2_radius(1.0, 1.0, 1.0, 0.1, 1.0, 1.0, latent_dim=4,
                                       std_cap=0.2), "p must be in"),
    (lambda: bounds.capped_markov_radius(1.0, 1.0, 1.0, 0.1, 0.0, std_cap=0.2), "r must be > 0"),
    (lambda: bounds.chi2_quantile_upper(10, 0.3), "p must be in"),
    (lambda: bounds.radius("chi2", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, std_cap=0.2,
                           cap_only=True), "cap_only=True bounds"),
    (lambda: bounds.radius("best", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, cap_only=True),
     "it needs std_cap"),
])
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _proven_quantile_bound(m, p):
    """The smaller of Cantelli's and Laurent & Massart's bounds of the p-quantile of chi2_m."""
    t = math.log(1 / (1 - p))
    return min(m + math.sqrt(2 * m * p / (1 - p)), m + 2 * math.sqrt(m * t) + 2 * t)


def test_quantile_close_to_one_stays_verified_and_equal_in_numpy_and_the_graph():
    """Where the CDF's lower bound cannot verify p (p within ~1e-9 of 1) the quantile stays at or
    below the proven start, the smaller of Cantelli's and Laurent & Massart's bounds (docs/theory.md
    section 9.2); NumPy and the graph agree."""
    from lipvae_tf import graph_bounds
    for m in (1, 10):
        for p in (1 - 1e-9, 1 - 1e-10, 1 - 1e-13, 1 - 2**-52):
            q = float(bounds.chi2_quantile_upper(m, p))
            assert q >= stats.chi2.isf(1 - p, m)
            assert q <= _proven_quantile_bound(m, p) * (1 + 1e-12)
            graph = float(graph_bounds.chi2_quantile_upper(m, np.array([p])).numpy()[0])
            assert graph >= stats.chi2.isf(1 - p, m)  # each is verified on its own
            # the lower bound loses accuracy this close to 1, where TF and NumPy tip differently
            assert abs(graph - q) <= 1e-6 * q, (m, p, graph, q)


@pytest.mark.parametrize("m, p", [(10, 1 - 1e-10), (10, 1 - 1e-11), (1, 1 - 1e-11),
                                  (64, 1 - 1e-12), (784, 1 - 2**-52)])
def test_quantile_near_one_is_within_a_few_percent_of_the_exact_one(m, p):
    """A review (2026-12-04): from Cantelli's end the bisection stayed there, 4.5e5 to 1.1e7
    against exact quantiles of 46 to 178. From Laurent & Massart's it ends within 1 % (4 % at
    m = 784, p = 1 - 2^-52, where the proven end itself is returned), never below the quantile,
    and the graph agrees."""
    from lipvae_tf import graph_bounds
    exact = stats.chi2.isf(1 - p, m)
    q = float(bounds.chi2_quantile_upper(m, p))
    assert exact <= q <= exact * (1.01 if m < 784 else 1.04), (m, p, q, exact)
    assert stats.chi2.sf(q, m) <= 1 - p
    graph = float(graph_bounds.chi2_quantile_upper(m, np.array([p])).numpy()[0])
    assert exact <= graph and abs(graph - q) <= 1e-6 * q, (graph, q)


def test_chi2_cap_certifies_near_p_1_with_the_laurent_massart_start():
    """q = 4.5e5 (Cantelli's end) left nothing to certify; the quantile 73.4 certifies 1.79."""
    from lipvae_tf import graph_bounds
    args = (1.0, 1.0, 1.0, 0.1, 3.0, 1 - 1e-11)
    radius = float(bounds.capped_chi2_radius(*args, latent_dim=10, std_cap=0.1))
    assert radius > 1.7
    # the exact quantile certifies at most a hair more (within its 1e-3 relative excess)
    reach, variance = 3.0, 0.1**2 + 0.1**2
    assert radius <= reach - math.sqrt(stats.chi2.isf(1e-11, 10) * variance)
    served = graph_bounds.radius("chi2_cap", *args[:3], np.array([0.1]), np.array([3.0]),
                                 np.array([1 - 1e-11]), latent_dim=10, std_cap=0.1)
    assert float(served.numpy()[0]) == pytest.approx(radius, rel=1e-9)


def test_closed_forms_do_not_certify_through_cancellation():
    """A review found budget - S^2 - s^2 = -6.5e-16 in exact arithmetic giving a positive radius."""
    args = dict(m_mu=1.0, m_sigma=0.0, m_g=0.9119165272445149, s=4.326713741588081,
                r=8.522620174134943, p=0.571342696633164)
    assert float(bounds.capped_markov_radius(**args, std_cap=4.326713741588081)) == 0.0


def test_best_certifies_a_one_dimensional_latent_without_inglot():
    radius = bounds.radius("best", 1.0, 1.0, 1.0, 0.05, 2.0, 0.5, latent_dim=1, std_cap=0.1)
    assert radius > 0
    with pytest.raises(ValueError, match="latent_dim"):
        bounds.radius("chi2", 1.0, 1.0, 1.0, 0.05, 2.0, 0.5, latent_dim=1)


# ---- the triangle forms without a cap (docs/theory.md section 2, "Without a cap") ------------

UNCAPPED = {"markov": lambda *args, latent_dim, s_max: bounds._triangle_markov_radius(*args),
            "chi2": bounds._triangle_chi2_radius, "best": bounds.best_radius}


@pytest.mark.parametrize("form", ["markov", "chi2", "best"])
def test_monte_carlo_never_below_the_certified_probability_without_a_cap(form):
    """A learned std without a cap: sigma(x') is bounded only by s + M_sigma d. At the radius,
    with ||sigma(x')|| = s + M_sigma R laid out three ways and the mean moved by M_mu R, the
    estimated probability is never below p (4 standard errors)."""
    rng = np.random.default_rng(23)
    checked = gains = 0
    for trial in range(12):
        latent_dim = int(rng.choice([2, 5, 10, 16]))
        m_mu, m_sigma, m_g = rng.uniform(0.5, 3, 3)
        r, p = rng.uniform(1, 8), float(rng.choice([0.5, 0.75, 0.9, 0.99]))
        s = rng.uniform(0.02, 0.25) * r / m_g  # the noise matters
        layout = ["axis0", "axis1", "spread"][trial % 3]
        sigma, _ = _stds(rng, latent_dim, s, 1.0, layout)
        radius = float(UNCAPPED[form](m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                      s_max=np.max(sigma)))
        legacy = float(bounds.best_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                          s_max=np.max(sigma), legacy=True))
        if radius == 0:
            continue
        checked += 1
        gains += radius > legacy * 1.01
        for shifted_layout in ("axis0", "axis1", "spread"):
            _, sigma_shift = _stds(rng, latent_dim, s, s + m_sigma * radius, shifted_layout)
            empirical = _monte_carlo(radius, m_mu, m_g, sigma, sigma_shift, r, rng)
            standard_error = math.sqrt(p * (1 - p) / 200_000)
            assert empirical >= p - 4 * standard_error, (trial, layout, empirical, p)
    assert checked >= 8, checked
    # where the chi-square form beats the old candidates: the new forms are what was tested (the
    # Markov one alone rarely does, only for a mean shift far larger than the noise)
    assert gains >= (1 if form == "markov" else 3), gains


def test_monte_carlo_sees_an_uncapped_radius_that_ignores_the_std_growth():
    """The harness can fail: the chi-square triangle radius computed with M_sigma = 0 for a std
    network of constant 2 (sigma(x') of norm s + 2 R, spread evenly) certifies 0.9 and gives 0.04,
    while the radius with M_sigma = 2 holds."""
    rng = np.random.default_rng(4)
    m_mu, m_g, s, r, p, latent_dim = 1.0, 1.0, 0.1, 2.0, 0.9, 10
    sigma = np.full(latent_dim, s / math.sqrt(latent_dim))
    for m_sigma, holds in ((0.0, False), (2.0, True)):
        radius = float(bounds._triangle_chi2_radius(m_mu, m_sigma, m_g, s, r, p,
                                                    latent_dim=latent_dim))
        shifted = np.full(latent_dim, (s + 2.0 * radius) / math.sqrt(latent_dim))
        assert (_monte_carlo(radius, m_mu, m_g, sigma, shifted, r, rng) >= p) == holds


@pytest.mark.parametrize("constants, s, s_max, r, p, m, legacy, new", [
    ((1.0, 1.0, 1.0), 0.05, 0.05, 2.0, 0.99, 16, 0.2145, 0.2545),
    ((1.0, 0.5, 2.0), 0.2, 0.05, 4.0, 0.999, 16, 0.0, 0.1742),
    ((1.0, 1.0, 1.0), 0.3, 0.3, 3.0, 0.9, 2, 0.5309, 0.7195),
])
def test_best_without_a_cap_takes_the_triangle_forms(constants, s, s_max, r, p, m, legacy, new):
    """A review (2026-12-03): `best` for a learned std without a cap left out the M_sigma
    branches of the capped forms; with them it certifies the reviewer's numbers. legacy=True
    keeps the old candidates (lipvae_tf 0.1's comparison), and the graph agrees."""
    from lipvae_tf import graph_bounds
    args = (*constants, s, r, p)
    best = float(bounds.best_radius(*args, latent_dim=m, s_max=s_max))
    old = float(bounds.best_radius(*args, latent_dim=m, s_max=s_max, legacy=True))
    assert best >= new - 5e-5 and best > old  # the review's numbers are rounded to 4 digits
    assert old == pytest.approx(legacy, abs=1e-4)  # unchanged
    assert old == float(np.maximum.reduce([
        bounds.chi2_radius(*args, latent_dim=m), bounds.markov_radius(*args),
        bounds.paper_markov_radius(*args)]))
    assert best == float(np.maximum.reduce([
        old, bounds._triangle_markov_radius(*args),
        bounds._triangle_chi2_radius(*args, latent_dim=m, s_max=s_max)]))
    # the same as the capped chi-square form under a cap far above every std
    assert best == pytest.approx(float(bounds.capped_chi2_radius(
        *args, latent_dim=m, std_cap=1e70, s_max=s_max)), rel=1e-12)
    served = graph_bounds.radius("best", *constants, np.array([s]), np.array([r]),
                                 np.array([p]), latent_dim=m, s_max=np.array([s_max]))
    assert float(served.numpy()[0]) == pytest.approx(best, rel=1e-9)
    assert float(bounds.radius("best", *args, latent_dim=m, s_max=s_max, legacy=True)) == old


def test_s_max_is_checked_without_a_cap_too():
    from lipvae_tf import graph_bounds
    with pytest.raises(ValueError, match="s_max"):
        bounds.radius("best", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, s_max=0.2)
    with pytest.raises(ValueError, match="s_max"):
        bounds.radius("markov", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, s_max=0.01)
    with pytest.raises(ValueError, match="legacy=True"):
        bounds.radius("best", 1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, std_cap=0.2, legacy=True)
    with pytest.raises(TypeError, match="legacy must be a bool"):
        bounds.best_radius(1.0, 1.0, 1.0, 0.1, 1.0, latent_dim=4, legacy="yes")
    served = graph_bounds.radius("best", 1.0, 1.0, 1.0, np.array([0.1, 0.1, 0.1]), 1.0, 0.5,
                                 latent_dim=4, s_max=np.array([0.2, 0.01, 0.1])).numpy()
    assert np.isnan(served[0]) and np.isnan(served[1]) and served[2] > 0
