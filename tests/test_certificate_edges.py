"""The certificates at the edges of float arithmetic, NumPy (`bounds`) and graph
(`graph_bounds`) twins alike: tiny magnitudes that TF's kernels flush, p next to 1, roots that
cancellation would round up, and the arguments each twin refuses (an adversarial review,
2026-12-03: each test fails on the code before its fix)."""
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import bounds, graph_bounds

P_NEAR_ONE = 1 - 2.0**-53  # the largest float64 below 1


def _markov_exact_root(m_mu, m_sigma, m_g, s, r, p) -> float:
    """Largest d with M_mu^2 d^2 + (s + M_sigma d)^2 + s^2 <= (1 - p) r^2 / M_g^2, in exact
    rational arithmetic for m_sigma = 0 (squared: d^2 <= (budget - 2 s^2) / M_mu^2)."""
    assert m_sigma == 0
    m_mu, m_g, s, r, p = map(Fraction, (m_mu, m_g, s, r, p))
    return (1 - p) * r * r / (m_g * m_g) - 2 * s * s, m_mu * m_mu


@pytest.mark.parametrize("method", ["markov", "paper", "best"])
def test_tiny_magnitudes_never_give_an_infinite_or_oversized_graph_radius(method):
    """TF's CPU kernels flush subnormal results to zero: at M_mu = r / M_g = 1e-75 and
    p = 1 - 2^-53 Markov's discriminant (a product of four small factors) became 0 and the
    graph radius +inf. Those magnitudes are refused now (NaN in the graph); at the new floor
    (1e-60) the graph and NumPy radii are finite and at most the exact root."""
    old = graph_bounds.radius(method, 1.0, 0.0, 1.0, tf.constant([1e-85, 0.0], tf.float64),
                              tf.constant([1e-75, 1.0], tf.float64),
                              tf.constant([P_NEAR_ONE, 0.5], tf.float64), latent_dim=2).numpy()
    assert np.isnan(old[0]) and np.isfinite(old[1])
    with pytest.raises(ValueError, match="m_mu must be >= 1e-60"):
        graph_bounds.radius(method, 1e-75, 0.0, 1.0, [0.0], [1e-75], [P_NEAR_ONE], latent_dim=2)
    floor = 1e-60
    budget = (1 - P_NEAR_ONE) * floor * floor
    # s = 0, and s whose 2 s^2 cancels the budget down to its last bits
    for s in (0.0, float(np.sqrt(budget / 2)) * (1 - 4e-16)):
        args = (floor, 0.0, 1.0, np.array([s]), np.array([floor]), np.array([P_NEAR_ONE]))
        numpy_radius = float(bounds.radius(method, *args, latent_dim=2)[0])
        eager = float(graph_bounds.radius(method, *args, latent_dim=2).numpy()[0])
        traced = float(tf.function(lambda s, r, p: graph_bounds.radius(
            method, floor, 0.0, 1.0, s, r, p, latent_dim=2))(*args[3:]).numpy()[0])
        slack, a = _markov_exact_root(floor, 0.0, 1.0, s, floor, P_NEAR_ONE)
        for radius in (numpy_radius, eager, traced):
            assert np.isfinite(radius) and radius >= 0
            if method != "best":  # best may certify more by the chi-square forms
                assert Fraction(radius) ** 2 * a <= max(slack, 0), (s, radius)
            else:
                assert radius <= floor / floor  # never above r / (M_g M_mu)


def test_markov_budget_no_longer_loses_precision_to_a_subnormal_product():
    """(1 - p) r^2 was subnormal (1e-316) for r = 1e-150, M_g = 1e-75: NumPy's Markov radius
    came out 1e-8 relative above the exact root. M_g = 1e-75 is refused now; at the floor the
    radius is below the exact root."""
    with pytest.raises(ValueError, match="m_g must be >= 1e-60"):
        bounds.markov_radius(1.0, 0.0, 1e-75, 0.0, 1.0164336532601351e-150, P_NEAR_ONE)
    for r in (1.0164336532601351e-120, 3.3e-120, 1e-119):
        radius = float(bounds.markov_radius(1.0, 0.0, 1e-60, 0.0, r, P_NEAR_ONE))
        slack, a = _markov_exact_root(1.0, 0.0, 1e-60, 0.0, r, P_NEAR_ONE)
        assert radius > 0 and Fraction(radius) ** 2 * a <= slack


def test_graph_certificates_called_directly_refuse_what_bounds_refuses():
    """The per-method graph functions computed a radius for s < 0 (above the one at s = 0),
    p = 0.3 and a missing std_cap (TypeError); now the values known at the call get the
    ValueError naming the argument, as in bounds.py."""
    with pytest.raises(ValueError, match="s must be >= 0"):
        graph_bounds.best_radius(1.0, 1.0, 1.0, [-0.5], [2.0], [0.9], latent_dim=4)
    with pytest.raises(ValueError, match=r"p must be in \[1/2, 1\)"):
        graph_bounds.markov_radius(1.0, 0.0, 1.0, [0.1], [2.0], [0.3])
    with pytest.raises(ValueError, match=r"p must be in \[1/2, 1\)"):
        graph_bounds.chi2_quantile_upper(3, [1.0])
    with pytest.raises(ValueError, match="std_cap is required"):
        graph_bounds.capped_markov_radius(1.0, 0.0, 1.0, [0.1], [2.0], [0.9], std_cap=None)
    with pytest.raises(ValueError, match="s must be <= std_cap"):
        graph_bounds.capped_chi2_radius(1.0, 0.0, 1.0, [0.3], [2.0], [0.9], latent_dim=4,
                                        std_cap=0.2)
    with pytest.raises(ValueError, match="s_max"):
        graph_bounds.best_radius(1.0, 0.0, 1.0, [0.3], [2.0], [0.9], latent_dim=4, std_cap=0.5,
                                 s_max=[0.4])
    with pytest.raises(TypeError, match="std_cap must be a real number"):
        graph_bounds.radius("best", 1.0, 0.0, 1.0, [0.1], [2.0], [0.9], latent_dim=4,
                            std_cap=np.array([0.5]))
    # the values of a graph being traced are unknown: no Python error, `radius` masks them
    traced = tf.function(lambda s: graph_bounds.markov_radius(1.0, 0.0, 1.0, s, [2.0], [0.9]))
    assert np.isfinite(traced(tf.constant([0.1], tf.float64)).numpy()).all()


def test_graph_certificates_take_float32_and_integer_tensors():
    """A float32 or int tensor raised TF's "Tensor conversion requested dtype float64"; they
    are cast (exactly) and give the float64 input's radius."""
    expected = graph_bounds.radius("best", 1.0, 0.5, 2.0, tf.constant([0.25], tf.float64),
                                   tf.constant([8.0], tf.float64),
                                   tf.constant([0.75], tf.float64), latent_dim=4).numpy()
    served = graph_bounds.radius("best", 1.0, 0.5, 2.0, tf.constant([0.25], tf.float32),
                                 tf.constant([8], tf.int32), tf.constant([0.75], tf.float32),
                                 latent_dim=4).numpy()
    np.testing.assert_array_equal(served, expected)
    with pytest.raises(TypeError, match="must be real"):
        graph_bounds.radius("best", 1.0, 0.5, 2.0, tf.constant([True]), [8.0], [0.75],
                            latent_dim=4)


def test_graph_radius_accepts_the_s_max_that_numpy_accepts():
    """s_max = s (1 + 2^-52) passes bounds.py's check (s_max <= s (1 + 4u)) but was NaN in the
    graph; both certify it now, to the same radius."""
    s = 0.125
    s_max = s * (1 + 2.0**-52)
    numpy_radius = bounds.radius("best", 1.0, 0.0, 1.0, s, 2.0, 0.9, latent_dim=4, std_cap=0.5,
                                 s_max=s_max)
    served = graph_bounds.radius("best", 1.0, 0.0, 1.0, [s], [2.0], [0.9], latent_dim=4,
                                 std_cap=0.5, s_max=[s_max]).numpy()
    assert np.isfinite(served[0])
    np.testing.assert_allclose(served[0], numpy_radius, rtol=1e-12)


def test_graph_ncx2_cdf_lower_refuses_values_it_cannot_take():
    """x = inf, NaN or < 0 failed in a gather with index -2147483648; now a ValueError naming
    the argument (bounds.ncx2_cdf_lower takes inf; the graph's twin documents that it does not)."""
    for bad in (np.inf, np.nan, -1.0):
        with pytest.raises(ValueError, match="x must be finite and >= 0"):
            graph_bounds.ncx2_cdf_lower([bad], 3, [0.0])
    with pytest.raises(ValueError, match="lam must be finite and >= 0"):
        graph_bounds.ncx2_cdf_lower([1.0], 3, [-0.5])
    np.testing.assert_allclose(graph_bounds.ncx2_cdf_lower([1.0], 3, [0.5]).numpy(),
                               bounds.ncx2_cdf_lower(1.0, 3, 0.5), rtol=1e-12)


def test_values_that_float64_would_round_are_refused():
    """A long double p = 1/2 - 1e-18 rounded into [1/2, 1) and was certified; a 64-bit int r
    above 2^53 was rounded. Exactly representable values still pass."""
    below_half = np.longdouble(0.5) - np.longdouble(1e-18)
    if below_half != np.longdouble(0.5):  # a long double wider than float64 (x86-64 Linux)
        with pytest.raises(ValueError, match="p must hold values that float64 represents"):
            bounds.radius("markov", 1.0, 0.0, 1.0, 0.1, 8.0, below_half, latent_dim=2)
    with pytest.raises(ValueError, match="r must hold values that float64 represents exactly"):
        bounds.radius("markov", 1.0, 0.0, 1.0, 0.1, np.int64(2**53 + 1), 0.5, latent_dim=2)
    exact = bounds.radius("markov", 1.0, 0.0, 1.0, 0.1, np.int64(8), np.longdouble(0.5),
                          latent_dim=2)
    assert exact == bounds.radius("markov", 1.0, 0.0, 1.0, 0.1, 8.0, 0.5, latent_dim=2)


def test_ncx2_cdf_lower_refuses_strings_and_absurd_degrees():
    """x = "3" was parsed as 3.0; latent_dim = 10**30 overflowed an int64 cast with a warning."""
    with pytest.raises(TypeError, match="x must be a real number"):
        bounds.ncx2_cdf_lower("3", 3, 0.0)
    for call in (lambda: bounds.chi2_quantile_upper(10**30, 0.5),
                 lambda: bounds.radius("ncx2", 1.0, 0.0, 1.0, 0.1, 8.0, 0.5, latent_dim=10**30,
                                       gamma=0.01),
                 lambda: graph_bounds.chi2_quantile_upper(2**31, [0.5])):
        with pytest.raises(ValueError, match=r"must be an integer <= 2147483647"):
            call()


def test_chi2_reach_is_rounded_down_where_little_noise_leaves_it_to_rounding():
    """A second review (2026-12-03): with noise far below the reach, r / M_g - M_mu d cancels
    and its rounding to nearest decided the bisection: the graph certified a radius above even
    the noise-free bound r / (M_g M_mu), NumPy one whose exact chi-square tail exceeds 1 - p."""
    from scipy import stats
    m_mu, m_g, gamma = 103.13719100637884, 0.049120973380011757, 1e-30
    r = np.array([0.04525762301903833, 4.9e-33])
    traced = tf.function(lambda r: graph_bounds.radius(
        "chi2", m_mu, 0.0, m_g, tf.zeros_like(r), r, tf.fill(tf.shape(r), tf.constant(
            0.9, tf.float64)), latent_dim=2, gamma=gamma))(tf.constant(r)).numpy()
    for radius in (traced[0], bounds.radius("chi2", m_mu, 0.0, m_g, 0.0, r, 0.9, latent_dim=2,
                                            gamma=gamma)[0]):
        assert Fraction(float(r[0])) / Fraction(m_g) - Fraction(m_mu) * Fraction(float(radius)) >= 0
    m_mu, m_g, p = 1069595654.7741627, 6.207264769855969e71, 0.9998779296875
    r = np.array([1.240761929886848e51, 1e12])
    s = np.full(2, 3.64e-37)
    radius = float(bounds.radius("chi2", m_mu, 0.0, m_g, s, r, p, latent_dim=3)[0])
    reach = Fraction(float(r[0])) / Fraction(m_g) - Fraction(m_mu) * Fraction(radius)
    u = float(reach * reach / (Fraction(2) * Fraction(float(s[0]))) ** 2)
    assert stats.chi2.sf(u, 3) <= 1 - p


def test_graph_and_numpy_agree_on_the_reach_limits_and_radius_masks_without_raising():
    """r / M_g = 1e-60 exactly: NumPy certified, the traced graph gave NaN (TF rewrote r / M_g
    into r (1 / M_g)). Eager `radius` with M_g > 1e60 raised on an invalid row ("r / M_g must
    be >= 1e-60, got 1e-70": its stand-in r = 1), and a tf.Variable argument of a per-method
    certificate failed inside tf.function (NotImplementedError from .numpy())."""
    numpy_radius = bounds.radius("markov", 1.0, 0.0, 7.0, 0.0, 7e-60, 0.9, latent_dim=2)
    traced = tf.function(lambda r: graph_bounds.radius("markov", 1.0, 0.0, 7.0, [0.0], r, [0.9],
                                                       latent_dim=2))
    served = traced(tf.constant([7e-60], tf.float64)).numpy()
    assert np.isfinite(served[0]) and numpy_radius > 0
    np.testing.assert_allclose(served[0], numpy_radius, rtol=1e-12)
    eager = graph_bounds.radius("markov", 1.0, 0.0, 1e70, [1.0, 1.0], [1e70, -1.0], [0.9, 0.9],
                                latent_dim=2).numpy()
    assert np.isfinite(eager[0]) and np.isnan(eager[1])
    level = tf.Variable([0.9], dtype=tf.float64)
    inside = tf.function(lambda: graph_bounds.markov_radius(1.0, 0.0, 1.0, [0.1], [1.0], level))
    np.testing.assert_array_equal(inside().numpy(),
                                  graph_bounds.markov_radius(1.0, 0.0, 1.0, [0.1], [1.0], [0.9]))
    for certify in (bounds.radius, graph_bounds.radius):
        with pytest.raises(ValueError, match=r"gamma sqrt\(latent_dim\)"):
            certify("markov", 1.0, 0.0, 1.0, [0.0], [1.0], [0.9], latent_dim=100, gamma=1e74)


def test_the_paper_radius_is_rounded_down_near_zero_too():
    """A proof-read (2026-12-03): (sqrt(inside) - 2 M_sigma s) / A cancels near R1 = 0 and gave
    6.77e-16 against an exact root of 6.74e-16 (the paper's inequality violated by 6.8e-18);
    the rationalised form stays below it, in NumPy and in the graph, and never above Markov's."""
    args = (7.559284666881605e-05, 2.8624960382828477, 0.760792412759977, 0.17699177725761098,
            0.6358176269991767, 0.8205954762536131)

    def excess(radius):
        m_mu, m_sigma, m_g, s, r, p = map(Fraction, args)
        d = Fraction(float(radius))
        return m_mu**2 * d * d + (m_sigma * d + 2 * s) ** 2 - (1 - p) * r * r / (m_g * m_g)

    for radius in (bounds.paper_markov_radius(*args),
                   graph_bounds.paper_markov_radius(*args[:3], [args[3]], [args[4]],
                                                    [args[5]]).numpy()[0]):
        assert 0 < radius and excess(radius) <= 0
    assert bounds.paper_markov_radius(*args) <= bounds.markov_radius(*args)


def test_best_radius_names_gamma_and_stays_quiet_on_overflowing_trials():
    """best_radius with gamma sqrt(m) > 1e75 said "s must be <= 1e75" (an s the caller never
    passed); trial spreads overflowing at huge d printed NumPy overflow warnings."""
    import warnings
    with pytest.raises(ValueError, match=r"gamma sqrt\(latent_dim\)"):
        bounds.best_radius(1.0, 0.0, 1.0, 0.0, 1.0, 0.9, latent_dim=100, gamma=1e74)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        radius = bounds.best_radius(1e-60, 1e75, 1.0, 0.0, 1e75, 0.5, latent_dim=3)
    assert np.isfinite(radius) and radius > 0
