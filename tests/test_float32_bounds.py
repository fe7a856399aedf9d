"""Every bound is an upper bound of what the float32 graph computes (issue 15, item 3).

Each layer type is evaluated in float32 and measured in float64: ratios over pairs with
non-tiny differences and Jacobian norms (tf.GradientTape) never exceed the reported bound, on
inputs chosen to reach it (identity kernels, factors whose float32 value is above the real one:
float32(1/3), float32(1/7), float32(0.1)). StdCap's `output_norm_bound` is the cap as applied.
"""
from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp

FACTORS = [1 / 3, 1 / 7, 0.1, 3.0]


def _pairs(shape, rng, count=400):
    """(x, x') float32 pairs with ||x - x'|| comparable to ||x||: (x, 0), (x, -x), (x, x + t),
    basis vectors and all-ones rows (every coordinate rounds the same way)."""
    size = int(np.prod(shape))
    x = rng.normal(size=(count, size)) * rng.uniform(0.1, 10, size=(count, 1))
    x = np.concatenate([x, np.eye(size), np.ones((1, size)), 3 * np.ones((1, size))])
    t = rng.normal(size=x.shape) * np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(size)
    first = np.concatenate([x, x, x])
    second = np.concatenate([np.zeros_like(x), -x, x + t])
    cast = lambda a: a.astype(np.float32).reshape(-1, *shape)  # noqa: E731
    return cast(first), cast(second)


def _max_pair_ratio(layer, shape, seed=0) -> float:
    x, x2 = _pairs(shape, np.random.default_rng(seed))
    out = layer(tf.constant(x)).numpy().astype(np.float64) - layer(tf.constant(x2)).numpy()
    diff_in = (x.astype(np.float64) - x2.astype(np.float64)).reshape(len(x), -1)
    keep = np.linalg.norm(diff_in, axis=1) > 0
    ratios = np.linalg.norm(out.reshape(len(x), -1), axis=1)[keep] / np.linalg.norm(
        diff_in, axis=1)[keep]
    return float(ratios.max())


def _max_jacobian_norm(layer, shape, seed=0, count=3) -> float:
    rng = np.random.default_rng(seed + 1)
    norms = []
    for _ in range(count):
        x = tf.constant(rng.normal(size=(1, *shape)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        jacobian = tape.jacobian(y, x).numpy().astype(np.float64)
        norms.append(np.linalg.norm(jacobian.reshape(int(np.prod(y.shape)), -1), 2))
    return float(max(norms))


def _check(layer, shape, hit=True):
    bound = lp.layer_lipschitz_bound(layer)
    pairs, jacobian = _max_pair_ratio(layer, shape), _max_jacobian_norm(layer, shape)
    measured = bound * (1 + 1e-12)  # the float64 measurement's own round-off (~1e-16)
    assert pairs <= measured, (pairs, bound)
    assert jacobian <= measured, (jacobian, bound)
    if hit:  # the inputs do reach the bound: the check is not vacuous
        assert max(pairs, jacobian) >= bound * (1 - 1e-6), (pairs, jacobian, bound)
    return bound


def _identity_conv_kernel(k, channels):
    kernel = np.zeros((k, k, channels, channels), np.float32)
    kernel[k // 2, k // 2] = np.eye(channels)
    return kernel


@pytest.mark.parametrize("factor", FACTORS)
def test_issue_example_dense_identity_one_third(factor):
    layer = ll.LipschitzDense(4, lipschitz=factor, kernel_initializer="identity", use_bias=False)
    keras.Sequential([keras.Input((4,)), layer])
    ratio = float(np.linalg.norm(layer(np.eye(4, dtype="float32")[:1]).numpy().astype(np.float64)))
    assert ratio == float(np.float32(factor))  # the factor as applied
    assert lp.layer_lipschitz_bound(layer) >= ratio
    _check(layer, (4,))


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("bias", [False, True])
def test_lipschitz_dense(factor, bias):
    # A bias adds rounding of the order of u |bias| whatever the difference of the inputs: an
    # absolute error, not a Lipschitz one; it stays inside the margin while the bias is small
    # beside the outputs (see docs/theory.md on the float32 graph).
    layer = ll.LipschitzDense(6, lipschitz=factor, use_bias=bias,
                              bias_initializer=keras.initializers.Constant(1e-3))
    layer.build((None, 6))
    layer.kernel.assign(np.eye(6, dtype=np.float32))
    _check(layer, (6,))


@pytest.mark.parametrize("factor", [1 / 3, 0.1])
@pytest.mark.parametrize("padding", ["same", "circular"])
def test_lipschitz_conv2d(factor, padding):
    layer = ll.LipschitzConv2D(2, 3, padding=padding, lipschitz=factor, use_bias=False)
    layer.build((None, 5, 5, 2))
    layer.kernel.assign(_identity_conv_kernel(3, 2))
    _check(layer, (5, 5, 2))


@pytest.mark.parametrize("factor", [1 / 7, 0.1])
def test_lipschitz_conv2d_transpose(factor):
    layer = ll.LipschitzConv2DTranspose(2, 3, strides=1, padding="same", lipschitz=factor,
                                        use_bias=False)
    layer.build((None, 4, 4, 2))
    layer.kernel.assign(_identity_conv_kernel(3, 2))
    _check(layer, (4, 4, 2))


@pytest.mark.parametrize("factor", [1 / 3, 1 / 7, 0.1, -0.1])
def test_scale(factor):
    _check(ll.Scale(factor), (5,))


def test_shift_std_cap_and_permutations():
    _check(ll.Shift(1e-3), (5,))
    for layer in (ll.GroupSort(2), ll.MaxMin()):
        assert _check(layer, (6,)) == 1.0  # permutations are exact in every dtype
    # pairs inside the ball of radius 100: the cap rescales by its rounded factor
    _check(ll.StdCap(100.0), (5,), hit=False)
    _check(ll.StdCap(1 / 3), (5,), hit=False)


@pytest.mark.parametrize("make,shape", [
    (lambda: keras.layers.Dense(4, bias_initializer=keras.initializers.Constant(1e-3)), (4,)),
    (lambda: keras.layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros"), (4, 4, 2)),
    (lambda: keras.layers.Conv2DTranspose(2, 3, padding="same", kernel_initializer="zeros"),
     (4, 4, 2)),
])
def test_keras_layers(make, shape):
    layer = make()
    keras.Sequential([keras.Input(shape), layer])
    if len(layer.kernel.shape) == 4:
        layer.kernel.assign(_identity_conv_kernel(3, 2) * np.float32(1 / 3))
    else:
        layer.kernel.assign(np.eye(4, dtype=np.float32) * np.float32(0.1))
    _check(layer, shape)


# ----- the std cap as applied -----------------------------------------------------------------

def _cap_rows(cap, n, rng):
    """Rows that probe the cap: random directions at scales within +-2000 ulps of the cap,
    just inside it, far inside, far outside, huge (squares overflow), tiny (squares underflow),
    one-hot and constant rows, and the non-finite rows of an upstream overflow."""
    c = float(np.float32(cap))
    v = rng.normal(size=(4000, n))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    near = c * (1 + rng.integers(-2000, 2000, size=(4000, 1)) * 2.0**-24)
    rows = [v * near, v * rng.uniform(0, 2 * c, size=(4000, 1)),
            v * 10.0 ** rng.uniform(-30, 25, size=(4000, 1)),
            np.eye(n) * c, np.eye(n) * c * (1 + 2.0**-23), np.ones((1, n)) * c / np.sqrt(n),
            np.ones((1, n)) * 1e19, np.ones((1, n)) * 1e-25, _non_finite_rows(n)]
    return np.concatenate(rows).astype(np.float32)


def _non_finite_rows(n):
    rows = np.zeros((4, n))
    rows[0, 0] = np.inf
    rows[1, :2] = [-np.inf, np.inf]
    rows[2, :2] = [np.nan, 3.0]
    rows[3] = np.nan
    return rows


def test_std_cap_of_an_overflowed_input_is_the_projections_limit():
    """An unconstrained std network can overflow to inf (an adversarial review, 2026-12-01:
    kernels of 1e37), and inf * 0 gave a NaN std that broke the cap a certificate under
    absolute round-off relies on. The output is the projection's limit instead."""
    layer = ll.StdCap(0.1)
    out = layer(tf.constant(_non_finite_rows(3).astype(np.float32))).numpy()
    h = 0.1 / np.sqrt(2)
    np.testing.assert_allclose(out, [[0.1, 0, 0], [-h, h, 0], [0, 0.1, 0], [0, 0, 0]],
                               rtol=1e-6)
    assert np.linalg.norm(out.astype(np.float64), axis=1).max() <= layer.output_norm_bound(3)


@pytest.mark.parametrize("cap,n", [(0.1, 10), (0.1, 2), (1 / 3, 16), (0.07, 64), (2.5, 10)])
def test_std_cap_output_norm_bound_covers_every_float32_output(cap, n):
    layer = ll.StdCap(cap)
    rows = _cap_rows(cap, n, np.random.default_rng(n))
    eager = layer(tf.constant(rows)).numpy()
    # what the certificates measure and the served graph computes: TF's graph optimiser once
    # turned cap / sqrt(m) into cap * rsqrt(m) there, outside the bound's derivation
    graph = tf.function(lambda v: layer(v))(tf.constant(rows)).numpy()
    np.testing.assert_array_equal(eager, graph)
    norms = np.linalg.norm(graph.astype(np.float64), axis=1)
    bound = layer.output_norm_bound(n)
    assert np.all(np.isfinite(norms))
    assert norms.max() <= bound, (norms.max() / cap - 1, bound / cap - 1)
    assert bound <= cap * (1 + 1e-5)
    assert bound >= float(np.float32(cap))  # at least the cap as applied


def test_std_cap_as_applied_exceeds_the_nominal_cap():
    """Why the bound exists: the float32 graph's norms exceed S = 0.1 (float32(0.1) > 0.1)."""
    layer = ll.StdCap(0.1)
    rows = _cap_rows(0.1, 10, np.random.default_rng(0))
    norms = np.linalg.norm(layer(tf.constant(rows)).numpy().astype(np.float64), axis=1)
    assert norms.max() > 0.1
    assert norms.max() <= layer.output_norm_bound(10) <= 0.1 * (1 + 1e-6)


def test_std_cap_output_norm_bound_in_float64_and_arguments():
    layer = ll.StdCap(0.1, dtype="float64")
    rows = _cap_rows(0.1, 10, np.random.default_rng(1)).astype(np.float64)
    norms = np.linalg.norm(layer(tf.constant(rows)).numpy(), axis=1)
    # keras.ops.cast(0.1, "float64") goes through float32: the cap as applied is float32(0.1)
    applied = float(keras.ops.convert_to_numpy(keras.ops.cast(0.1, "float64")))
    assert norms.max() <= layer.output_norm_bound(10) <= applied * (1 + 1e-13)
    with pytest.raises(ValueError, match="features"):
        layer.output_norm_bound(0)
    with pytest.raises(TypeError, match="features"):
        layer.output_norm_bound(2.5)
    with pytest.raises(ValueError, match="too small"):
        ll.StdCap(1e-30).output_norm_bound(10)


def test_a_fixed_posterior_std_is_certified_as_the_graph_applies_it():
    """posterior_std=0.05 fills sigma with float32(0.05) = 0.05 + 7.5e-10: the certificate (it
    decreases in gamma) must use that value, not 0.05 (as it did before this test)."""
    from lipvae_tf import bounds
    from lipvae_tf.model import LipschitzVAE

    keras.utils.set_random_seed(0)
    model = LipschitzVAE(4, posterior_std=0.05, hidden_units=(16,), image_shape=(4, 4, 1),
                         encoder_mean=2.0, decoder=2.0)
    x = np.random.default_rng(0).uniform(size=(3, 4, 4, 1)).astype(np.float32)
    _, sigma = model.posterior_params(tf.constant(x))
    applied = model.posterior_std_bound()
    assert applied == float(np.float32(0.05)) > 0.05
    assert np.all(sigma.numpy().astype(np.float64) <= applied)
    s, s_max = model.std_statistics(x)
    assert np.all(s_max == applied) and np.allclose(s, applied * 2)
    c = model.lipschitz_constants()
    radius = model.certified_radius(x, 2.0, method="ncx2")
    kwargs = dict(latent_dim=4, std_cap=None)
    r_exact = model.reconstruction_tolerance(2.0)
    as_applied = bounds.radius("ncx2", c["encoder_mean"], c["encoder_std"], c["decoder"], s,
                               r_exact, 0.5, gamma=applied, **kwargs)
    nominal = bounds.radius("ncx2", c["encoder_mean"], c["encoder_std"], c["decoder"], s,
                            r_exact, 0.5, gamma=0.05, **kwargs)
    assert np.all(radius == as_applied) and np.all(radius < nominal)


@pytest.mark.parametrize("first, second", [(1 / 3, 1 / 3), (1 / 7, 0.1), (3.0, 0.3)])
def test_a_networks_bound_is_the_exact_product_of_its_layers_bounds_rounded_up(first, second):
    """The float64 product of the layers' bounds rounds to nearest, and for these factors below
    the exact product (a plain `*` gave a network bound under it); `product_rounded_up` never
    does, and moves an inexact product by one ulp only."""
    layers = [ll.Scale(first), ll.Scale(second)]
    model = keras.Sequential([keras.Input((2,)), *layers])
    exact = Fraction(lp.layer_lipschitz_bound(layers[0])) * Fraction(
        lp.layer_lipschitz_bound(layers[1]))
    assert Fraction(float(exact)) < exact  # the case the old code got wrong
    bound = lp.network_lipschitz_bound(model)
    assert exact <= Fraction(bound) <= exact + Fraction(np.spacing(bound))
    # an exact product is left as it is
    assert lp.product_rounded_up(0.5, 3.0) == 1.5 and lp.product_rounded_up(0.0, 0.1) == 0.0


def test_the_measured_std_norm_is_never_below_the_exact_norm_of_the_float32_stds():
    """s(x) enters every certificate as an upper bound: the float64 norm of the float32 stds
    rounds to nearest (below the exact norm for about half the inputs, which the old code
    returned as it was); `std_statistics` rounds it up. A fixed std: gamma sqrt(m) as well."""
    from lipvae_tf.model import LipschitzVAE
    keras.utils.set_random_seed(3)
    kwargs = dict(hidden_units=(16,), image_shape=(4, 4, 1), encoder_mean=2.0, decoder=2.0)
    model = LipschitzVAE(10, std_cap=0.1, **kwargs)
    x = np.random.default_rng(2).uniform(size=(300, 4, 4, 1)).astype(np.float32)
    s, s_max = model.std_statistics(x)
    sigma = model.encoder_std_net(tf.constant(x)).numpy()
    for row, norm, largest in zip(sigma, s, s_max):
        exact_square = sum(Fraction(float(v)) ** 2 for v in row)
        assert Fraction(norm) ** 2 >= exact_square
        assert largest >= float(row.max())
    # the std network's relative margin, and never above the cap as applied (every std of this
    # model sits at the cap)
    margin, cap = lp.output_rounding_factor(model.encoder_std_net), model.std_cap_bound()
    assert 1 < margin < 1 + 1e-5
    expected = np.linalg.norm(sigma.astype(np.float64), axis=1) * margin
    assert np.all(expected > cap)
    np.testing.assert_array_equal(s, cap)
    np.testing.assert_array_equal(s_max, np.minimum(sigma.max(axis=1).astype(np.float64) * margin,
                                                    cap))
    wide = LipschitzVAE(10, std_cap=None, **kwargs)
    s, _ = wide.std_statistics(x)
    sigma = wide.encoder_std_net(tf.constant(x)).numpy().astype(np.float64)
    np.testing.assert_allclose(
        s, np.linalg.norm(sigma, axis=1) * lp.output_rounding_factor(wide.encoder_std_net),
        rtol=1e-14)
    for latent_dim in (3, 7, 10):  # sqrt(3), sqrt(7): irrational
        fixed = LipschitzVAE(latent_dim, posterior_std=0.05, **kwargs)
        s, _ = fixed.std_statistics(x[:2])
        gamma = fixed.posterior_std_bound()
        assert np.all([Fraction(v) ** 2 >= Fraction(gamma) ** 2 * latent_dim for v in s])


def _exact_std_network(net, x) -> np.ndarray:
    """The std network's exact map of its float32 weights (as applied), in float64."""
    from lipvae_tf.layers import StdCap
    h = x.reshape(len(x), -1).astype(np.float64)
    for layer in net.layers:
        if isinstance(layer, ll.LipschitzDense):
            h = (h @ lp.applied_kernel(layer)) * lp.applied_value(layer.lipschitz, "float32")
            h = h + lp.applied_kernel(layer, "bias")
        elif isinstance(layer, ll.GroupSort):
            a, b = h[:, 0::2], h[:, 1::2]
            h = np.stack([np.maximum(a, b), np.minimum(a, b)], axis=2).reshape(h.shape)
        elif isinstance(layer, keras.layers.Activation):
            h = np.logaddexp(0.0, h)  # softplus
        elif isinstance(layer, ll.Shift):
            h = h + lp.applied_value(layer.offset, "float32")
        elif isinstance(layer, StdCap):
            raise AssertionError("a model without a cap is meant")
        elif not isinstance(layer, keras.layers.Flatten):
            raise AssertionError(f"unexpected layer {type(layer).__name__}")
    return h


def test_the_measured_std_bounds_the_exact_maps_std_as_the_constants_bound_its_slopes():
    """s(x) is measured on the float32 graph, whose stds round to nearest at every step; the
    exact map's ||sigma(x)|| exceeded that norm on 1656 of 4000 inputs by up to 3.1e-7 relative
    (a review, 2026-12-02), enough to overstate a Markov radius near its threshold. With the std
    network's relative margin (the one its Lipschitz bound carries) s and s_max bound it."""
    from lipvae_tf.model import LipschitzVAE
    keras.utils.set_random_seed(0)
    model = LipschitzVAE(4, hidden_units=(32,), image_shape=(4, 4, 1), std_cap=None,
                         encoder_std=3.0, decoder=4.0)
    x = np.random.default_rng(0).uniform(size=(4000, 4, 4, 1)).astype(np.float32)
    s, s_max = model.std_statistics(x)
    exact = _exact_std_network(model.encoder_std_net, x)
    plain = np.linalg.norm(model.encoder_std_net(tf.constant(x)).numpy().astype(np.float64), axis=1)
    assert np.any(np.linalg.norm(exact, axis=1) > plain)  # what the margin is for
    assert np.all(np.linalg.norm(exact, axis=1) <= s)
    assert np.all(exact.max(axis=1) <= s_max)


def test_a_float64_perturbation_is_covered_up_to_the_input_rounding():
    """certified_radius is a radius between float32 images (docs/theory.md section 7): rounding
    x and x + delta to float32 lengthens a float64 delta by at most sqrt(D) 2^-24, reached
    when every pixel of x rounds one way and every pixel of x + delta the other."""
    d = 28 * 28
    ulp = 2.0**-24  # float32 spacing in [1/2, 1)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 0.9, size=(200, d))
    delta = rng.normal(size=(200, d)) * rng.uniform(1e-7, 1e-2, size=(200, 1))
    # the worst case: x just above a float32 value, x + delta just below the one k ulps up
    base = np.float32(0.75).astype(np.float64)
    worst_x = np.full((1, d), base + 0.499 * ulp)
    worst_delta = np.full((1, d), (3.501 - 0.499) * ulp)  # x + delta rounds up to base + 4 ulp
    x, delta = np.concatenate([x, worst_x]), np.concatenate([delta, worst_delta])
    as_fed = (x + delta).astype(np.float32).astype(np.float64) - x.astype(np.float32)
    lengthening = np.linalg.norm(as_fed, axis=1) - np.linalg.norm(delta, axis=1)
    assert np.all(lengthening <= np.sqrt(d) * ulp * (1 + 1e-9))
    assert lengthening[-1] > 0.99 * np.sqrt(d) * ulp  # the slack is reached, not loose


def test_the_std_statistics_map_is_for_a_std_network_only():
    """The map that `certify` traces (`std_statistics_map`) is public for the exporter; a model
    with a fixed posterior std has no std network to map and says so (instead of failing on a
    None network inside the rounding factor)."""
    from lipvae_tf.model import LipschitzVAE

    fixed = LipschitzVAE.from_target(1.0, 8.0, latent_dim=2, hidden_units=(8,))
    with pytest.raises(ValueError, match="fixed posterior std"):
        fixed.std_statistics_map()


def test_the_std_cap_bound_holds_under_flush_to_zero():
    """An adversarial review (2026-12-02): with the half-subnormal of gradual underflow as the
    error of a rounding, a cap of 1.1e-19 had the bound 1.1e-19 while the layer returned rows of
    norm 3.2e-19 (squares of 1e-19 flush to 0, so the norm is 0 and the cap is not applied).
    With the smallest normal number such a cap is refused, and caps it accepts hold."""
    with pytest.raises(ValueError, match="too small for float32"):
        ll.StdCap(1.1e-19).output_norm_bound(10)
    for cap, value in [(1e-17, 1e-19), (1e-17, 3e-18), (1e-16, 1e-19)]:
        layer = ll.StdCap(cap)
        x = tf.constant(np.full((1, 10), value, np.float32))
        for y in (layer(x), tf.function(layer)(x)):
            assert np.linalg.norm(y.numpy().astype(np.float64)) <= layer.output_norm_bound(10)


def test_std_statistics_bounds_of_a_custom_std_network_are_the_models_own():
    """`model.std_statistics_bounds` gives a custom model (notebook 04) the same s(x), s_max(x)
    as `LipschitzVAE.std_statistics` gives its own std network (the notebook's hand-copied
    rounding had drifted from it: float64 products rounded to nearest, not up), with the cap
    of a StdCap last layer, and without one; bad stds are refused naming `sigma`."""
    from lipvae_tf.model import LipschitzVAE, std_statistics_bounds
    keras.utils.set_random_seed(3)
    kwargs = dict(hidden_units=(16,), image_shape=(4, 4, 1), encoder_mean=2.0, decoder=2.0)
    x = np.random.default_rng(2).uniform(size=(50, 4, 4, 1)).astype(np.float32)
    for std_cap in (0.1, 10.0, None):  # every std at the cap; none at it; no cap
        model = LipschitzVAE(10, std_cap=std_cap, **kwargs)
        sigma = model.encoder_std_net(tf.constant(x)).numpy()
        expected = model.std_statistics(x)
        for network in (model.encoder_std_net, lp.chain_layers(model.encoder_std_net)):
            got = std_statistics_bounds(network, sigma)
            for a, b in zip(got, expected):
                assert a.dtype == np.float64 and a.shape == (50,)
                np.testing.assert_array_equal(a, b)
    for bad, pattern in ((sigma[0], "sigma must have 2 dimensions"),
                         (np.where(sigma > 0, np.nan, sigma), "sigma contains NaN"),
                         (-sigma, "stds >= 0"), (sigma[:, :0], "m >= 1")):
        with pytest.raises(ValueError, match=pattern):
            std_statistics_bounds(model.encoder_std_net, bad)
    # a review (2026-12-03): stds the chain cannot have computed were taken as they were
    capped = LipschitzVAE(10, std_cap=0.1, **kwargs)
    sigma = capped.encoder_std_net(tf.constant(x)).numpy()
    for bad, pattern in (
            (sigma[:, :5], "sigma has 5 columns, but the chain's last layer"),  # half the norm
            (np.full((2, 10), 1e-170), r"non-zero stds must be in \[1e-60"),  # norm underflowed
            (np.full((2, 10), 1e170), r"non-zero stds must be in \[1e-60"),  # norm was inf
            (sigma * 10, "above the cap as applied")):  # silently capped
        with pytest.raises(ValueError, match=pattern):
            std_statistics_bounds(capped.encoder_std_net, bad)
    with pytest.raises(ValueError, match="at least one layer"):
        std_statistics_bounds([], sigma)
    with pytest.raises(TypeError, match="std_network must be a Keras model"):
        std_statistics_bounds("encoder", sigma)
